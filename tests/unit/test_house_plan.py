"""The house plan (issue 10): imports run one way only, and no circle of modules.

Every module of our packages is read with `ast` (top-level imports, imports inside functions, imports under
`if TYPE_CHECKING:`). A package may import its own modules and packages on a lower floor; two packages on one floor
never import each other; and no chain of imports between modules comes back to where it started.

Would catch: `meta/` importing `connectors/` (the wire reaching up into the Rasa channel), `core.settings`
importing anything of ours, `console` importing `bot.request_guard`, `handoff` and `sandbox` importing each other,
or `knowledge_matrix.errors` → `validation` → `matrix` → `errors`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# From the ground up (README, "Layout"). bench/ and scripts/ sit above everything and are not checked.
FLOORS: dict[str, int] = {
    "core": 0,
    "meta": 1,
    "knowledge_matrix": 1,
    "outbox": 2,
    "comments": 3,
    "links": 3,
    "page_profile": 3,
    "contacts": 3,
    "handoff": 3,
    "sandbox": 3,
    "csat": 3,
    "answers": 3,
    "broadcasts": 4,
    "reports": 5,
    "console": 6,
    "connectors": 7,
    "actions": 7,
    "bot": 8,
}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    path: Path
    line: int
    target: str  # the imported module (or the package, when the name imported is not a module), dotted


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def our_modules() -> dict[str, Path]:
    return {module_name(path): path for package in FLOORS for path in sorted((ROOT / package).rglob("*.py"))}


def imports_of(name: str, path: Path, modules: dict[str, Path], text: str | None = None) -> Iterator[Import]:
    """Every import statement anywhere in the module (ast.walk reaches function bodies and `if TYPE_CHECKING:`)."""
    is_package = path.name == "__init__.py"
    text = path.read_text(encoding="utf-8") if text is None else text
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, path, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield Import(name, path, node.lineno, submodule if submodule in modules else base)


def package_of(module: str) -> str:
    return module.split(".")[0]


def all_imports() -> tuple[dict[str, Path], list[Import]]:
    modules = our_modules()
    found = [imp for name, path in modules.items() for imp in imports_of(name, path, modules)
             if package_of(imp.target) in FLOORS]
    return modules, found


def wrong_way(imports: list[Import]) -> list[str]:
    problems = []
    for imp in imports:
        source, target = package_of(imp.source), package_of(imp.target)
        if source == target:
            continue
        where = f"{imp.path.relative_to(ROOT)}:{imp.line}"
        if FLOORS[target] > FLOORS[source]:
            problems.append(f"{where}: {imp.source} (floor {FLOORS[source]}) imports {imp.target} "
                            f"(floor {FLOORS[target]}, above)")
        elif FLOORS[target] == FLOORS[source]:
            problems.append(f"{where}: {imp.source} imports {imp.target}, a neighbour on floor {FLOORS[source]}")
    return problems


def cycles(modules: dict[str, Path], imports: list[Import]) -> list[list[str]]:
    """Strongly connected components of more than one module (or a module importing itself), by Tarjan."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for imp in imports:
        if imp.target in graph:
            graph[imp.source].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:  # iterative, so a deep chain cannot hit the recursion limit
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in graph[node]:
                        found.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return found


def describe(component: list[str], imports: list[Import]) -> str:
    members = set(component)
    edges = sorted({f"{imp.source} → {imp.target} ({imp.path.relative_to(ROOT)}:{imp.line})"
                    for imp in imports if imp.source in members and imp.target in members})
    return " | ".join(edges)


def test_every_package_is_on_a_floor() -> None:
    top_level = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests"}
    assert top_level == set(FLOORS), "a new top-level package needs a floor in FLOORS (and the README's layout)"


def test_imports_run_down_only() -> None:
    _, imports = all_imports()
    assert imports, "the reader found no imports at all"
    assert wrong_way(imports) == []


def test_no_circle_of_modules() -> None:
    modules, imports = all_imports()
    assert [describe(component, imports) for component in cycles(modules, imports)] == []


def test_the_reader_sees_local_and_type_checking_imports() -> None:
    """The checks above would pass vacuously if the reader missed imports inside functions or under TYPE_CHECKING."""
    text = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bot import app\n"
            "def f():\n    import connectors.ingest\n    from . import settings\n    from .settings import ROOT\n")
    modules = {"core.settings": ROOT / "core" / "settings.py", "bot.app": ROOT / "bot" / "app.py",
               "connectors.ingest": ROOT / "connectors" / "ingest.py"}
    found = {(imp.line, imp.target) for imp in imports_of("core.probe", ROOT / "core" / "probe.py", modules, text)}
    assert found == {(1, "typing"), (3, "bot.app"), (5, "connectors.ingest"), (6, "core.settings"),
                     (7, "core.settings")}


def test_a_cycle_and_an_upward_import_are_named() -> None:
    modules = {"core.a": ROOT / "core" / "a.py", "core.b": ROOT / "core" / "b.py", "bot.c": ROOT / "bot" / "c.py"}
    imports = [Import("core.a", modules["core.a"], 3, "core.b"), Import("core.b", modules["core.b"], 4, "core.a"),
               Import("core.a", modules["core.a"], 5, "bot.c")]
    assert cycles(modules, imports) == [["core.a", "core.b"]]
    assert wrong_way(imports) == ["core/a.py:5: core.a (floor 0) imports bot.c (floor 8, above)"]
