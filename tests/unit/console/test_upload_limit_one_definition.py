"""The 5 MB upload limit has one definition (issue 8 review, item 7): `SheetLimits.file_bytes` in the knowledge
matrix; the request guard (which cuts the body) and the console's route (which reads the file) take it from there.

On the old code `bot/request_guard.py` and `console/routes.py` each wrote `5 * 1024 * 1024` again, so changing the
matrix's limit left the app refusing (or spooling) by the old number."""

from __future__ import annotations

import ast
from pathlib import Path

from bot import request_guard
from console import routes as console
from knowledge_matrix.matrix import SheetLimits

ROOT = Path(__file__).resolve().parents[3]


def five_megabytes_literals(path: Path) -> list[int]:
    """Lines where the number 5 MB is written out: a number, or arithmetic on numbers only (`5 * 1024 * 1024`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        numbers_only = all(isinstance(part, (ast.BinOp, ast.Constant, ast.operator)) for part in ast.walk(node))
        if not isinstance(node, (ast.BinOp, ast.Constant)) or not numbers_only:
            continue
        value = node.value if isinstance(node, ast.Constant) else _arithmetic(node)
        if type(value) is int and value == FIVE_MB:
            found.add(node.lineno)
    return sorted(found)


FIVE_MB = 5 * 1024 * 1024


def _arithmetic(node: ast.expr) -> object:
    return eval(compile(ast.Expression(node), "<literal>", "eval"), {"__builtins__": {}})  # noqa: S307 - numbers only


def test_the_upload_limit_is_written_once() -> None:
    app_modules = sorted([*(ROOT / "bot").rglob("*.py"), *(ROOT / "console").rglob("*.py")])
    places = {str(path.relative_to(ROOT)): lines for path in app_modules if (lines := five_megabytes_literals(path))}
    assert places == {}, f"the 5 MB limit is written again in the app: {places}"
    assert SheetLimits().file_bytes == request_guard.MAX_UPLOAD_BYTES
    assert console.MAX_UPLOAD_BYTES is request_guard.MAX_UPLOAD_BYTES
    assert request_guard.BODY_LIMITS["/api/console/knowledge/drafts"] > SheetLimits().file_bytes
