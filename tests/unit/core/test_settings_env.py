"""Settings are read once, by `core.settings.load_settings()`: no other module reads the environment, every
variable is a checked `Settings` field, and the clients get the values they use, not the settings object."""

from __future__ import annotations

import argparse
import ast
from datetime import datetime, timezone
from pathlib import Path

import pytest

from core.settings import ROOT, Settings, SettingsError, data_dir_from_env, load_settings
from knowledge_matrix.cli import data_dir_from

PACKAGES = ("core", "meta", "knowledge_matrix", "outbox", "handoff", "sandbox", "console", "connectors", "actions",
            "bot")
READERS = frozenset({"environ", "environb", "getenv", "getenvb"})

# Reading the environment is core/settings.py's job. What else touches it, and why it is not reading a setting:
ALLOWED_ENV_ACCESS: dict[str, tuple[str, ...]] = {
    "core/settings.py": (),  # the one reader (every line may)
    # The launcher composes its child processes' environment: it copies os.environ and sets what they need.
    "bot/stack.py": (),
    # The Rasa launcher writes the variables endpoints-scale.yml reads, from the settings (bot/profile.py).
    "bot/rasa_launcher.py": ("rasa_endpoints_env",),
    # Sanic reads its own SANIC_* variables; the channel only asks whether the operator set this one.
    "connectors/messenger.py": ("SANIC_REQUEST_MAX_SIZE",),
    # Sets a thread-pool tuning of the embedding library for this process (a default, read by the library).
    "knowledge_matrix/embedders.py": ("OMP_WAIT_POLICY",),
}


def env_reads(source: str) -> list[tuple[int, str]]:
    """(line, text) of every use of os.environ / os.getenv (also through `import os as …` or `from os import …`)."""
    tree = ast.parse(source)
    lines = source.splitlines()
    os_names = {"os"}
    direct: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            os_names |= {alias.asname or alias.name for alias in node.names if alias.name == "os"}
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            direct |= {alias.asname or alias.name for alias in node.names if alias.name in READERS}
    found = []
    for node in ast.walk(tree):
        hit = (isinstance(node, ast.Attribute) and node.attr in READERS and isinstance(node.value, ast.Name)
               and node.value.id in os_names) or (isinstance(node, ast.Name) and node.id in direct)
        if hit:
            found.append((node.lineno, lines[node.lineno - 1].strip()))
    return sorted(found)


def test_the_guard_finds_every_way_of_reading_the_environment() -> None:
    source = """
import os
import os as system
from os import environ, getenv as ask

a = os.environ["A"]
b = os.getenv("B")
c = system.environ.get("C")
d = environ.get("D")
e = ask("E")
f = os.path.join("not", "a read")
"""
    assert [line for line, _ in env_reads(source)] == [6, 7, 8, 9, 10]


def test_no_module_outside_core_settings_reads_the_environment() -> None:
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            allowed = ALLOWED_ENV_ACCESS.get(relative)
            for line, text in env_reads(path.read_text(encoding="utf-8")):
                if allowed is None or (allowed and not any(name in text for name in allowed)):
                    offenders.append(f"{relative}:{line}: {text}")
    assert offenders == [], "read it as a Settings field in core/settings.py and pass the value:\n" + "\n".join(
        offenders)


# Constructors that still take the whole Settings: the Rasa channel assembles its parts (store, Graph client,
# outbox, handoff client) from them, and the handoff action reads six fields (hours, away message, pages…).
SETTINGS_TAKERS = {("connectors/messenger.py", "MessengerInput"), ("actions/handoff.py", "HandoffTrigger"),
                   ("actions/knowledge.py", "ActionKnowledgeAnswer")}  # actions: registered by the server


def takes_settings(arg: ast.arg) -> bool:
    """`settings: Settings`, `Settings | None`, or the same as a string."""
    if arg.annotation is None:
        return False
    text = ast.unparse(arg.annotation).strip("'\"")
    return "Settings" in (part.strip() for part in text.split("|"))


def test_clients_take_values_not_the_settings_object() -> None:
    takers = set()
    for package in ("meta", "outbox", "handoff", "sandbox", "connectors", "actions"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.ClassDef):
                    continue
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name == "__init__" and any(
                        takes_settings(arg) for arg in item.args.args + item.args.kwonlyargs
                    ):
                        takers.add((path.relative_to(ROOT).as_posix(), node.name))
    assert takers == SETTINGS_TAKERS


# --- the variables that moved into Settings ------------------------------------------------------------------

FIELDS = [
    # variable, field, default, a good value, what it becomes
    ("OUTBOX_BATCH_SIZE", "outbox_batch_size", 32, "8", 8),
    ("MESSENGER_UPKEEP_SECONDS", "messenger_upkeep_seconds", 30.0, "1.5", 1.5),
    ("MESSENGER_PROCESSING_CONCURRENCY", "messenger_processing_concurrency", 8, "2", 2),
    ("RASA_PORT", "rasa_port", 5005, "15005", 15005),
    ("ACTION_PORT", "action_port", 5055, "15055", 15055),
    ("APP_PORT", "app_port", 8000, "18000", 18000),
    ("WEBHOOK_PORT", "webhook_port", 5006, "15006", 15006),
    ("WEBHOOK_HOST", "webhook_host", "127.0.0.1", "0.0.0.0", "0.0.0.0"),
    ("RASA_INSTANCE_ID", "rasa_instance_id", "", "rasa-a", "rasa-a"),
    ("MESSENGER_FEEDER_POLL_SECONDS", "messenger_feeder_poll_seconds", 0.02, "0.05", 0.05),
    ("MESSENGER_CLAIM_LEASE_SECONDS", "messenger_claim_lease_seconds", 30.0, "10", 10.0),
    ("OUTBOX_POLL_SECONDS", "outbox_poll_seconds", 0.03, "0.02", 0.02),
    ("OUTBOX_IN_RASA", "outbox_in_rasa", False, "1", True),
    ("COMMENTS_POLL_SECONDS", "comments_poll_seconds", 1.0, "0.2", 0.2),
    ("OUTBOX_POLICY_FILE", "outbox_policy_file", None, "/etc/bot/policy.yml", Path("/etc/bot/policy.yml")),
    ("OUTBOX_RETIRED_TAGS_UNTIL", "outbox_retired_tags_until", None, "2026-02-10",
     datetime(2026, 2, 10, tzinfo=timezone.utc)),
    ("LLM_MODEL", "llm_model", "gpt-4o-mini", "llama3.1", "llama3.1"),
    ("LLM_TIMEOUT_SECONDS", "llm_timeout_seconds", 4.0, "3.5", 3.5),
    ("LLM_MAX_RETRIES", "llm_max_retries", 1, "0", 0),
    ("LLM_MAX_TOKENS", "llm_max_tokens", 300, "200", 200),
]


@pytest.mark.parametrize(("variable", "name", "default", "raw", "value"), FIELDS)
def test_each_variable_is_a_field_with_its_default(variable: str, name: str, default: object, raw: str,
                                                   value: object) -> None:
    assert getattr(load_settings({}), name) == default == getattr(Settings(), name)
    assert getattr(load_settings({variable: ""}), name) == default  # set but empty: the default
    parsed = getattr(load_settings({variable: raw}), name)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize(
    ("variable", "bad"),
    [
        ("OUTBOX_BATCH_SIZE", "0"),
        ("OUTBOX_BATCH_SIZE", "2.5"),
        ("OUTBOX_BATCH_SIZE", "many"),
        ("OUTBOX_BATCH_SIZE", "100000"),
        ("MESSENGER_UPKEEP_SECONDS", "0"),
        ("MESSENGER_UPKEEP_SECONDS", "-1"),
        ("MESSENGER_UPKEEP_SECONDS", "nan"),
        ("MESSENGER_UPKEEP_SECONDS", "soon"),
        ("MESSENGER_PROCESSING_CONCURRENCY", "0"),
        ("MESSENGER_PROCESSING_CONCURRENCY", "1.5"),
        ("RASA_PORT", "0"),
        ("ACTION_PORT", "70000"),
        ("APP_PORT", "http"),
        ("WEBHOOK_PORT", "0"),
        ("MESSENGER_FEEDER_POLL_SECONDS", "0"),
        ("MESSENGER_CLAIM_LEASE_SECONDS", "nan"),
        ("OUTBOX_POLL_SECONDS", "0"),
        ("OUTBOX_POLL_SECONDS", "soon"),
        ("OUTBOX_IN_RASA", "maybe"),
        ("COMMENTS_POLL_SECONDS", "0"),
        ("COMMENTS_POLL_SECONDS", "nan"),
        ("OUTBOX_RETIRED_TAGS_UNTIL", "27/04/2026"),
        ("OUTBOX_RETIRED_TAGS_UNTIL", "2026-13-01"),
        ("OUTBOX_RETIRED_TAGS_UNTIL", "2026-04-27T10:00:00"),  # a time without its zone
        ("LLM_TIMEOUT_SECONDS", "0"),
        ("LLM_TIMEOUT_SECONDS", "120"),
        ("LLM_TIMEOUT_SECONDS", "nan"),
        ("LLM_MAX_RETRIES", "-1"),
        ("LLM_MAX_RETRIES", "1.5"),
        ("LLM_MAX_TOKENS", "many"),
        ("LLM_MAX_TOKENS", "8"),
    ],
)
def test_a_bad_value_stops_the_start_naming_the_variable(variable: str, bad: str) -> None:
    with pytest.raises(SettingsError, match=variable) as refused:
        load_settings({variable: bad})
    assert repr(bad) in str(refused.value)  # the value it refused, quoted (none of these is a secret)


def test_a_retirement_time_keeps_its_zone_in_utc() -> None:
    assert load_settings({"OUTBOX_RETIRED_TAGS_UNTIL": "2026-04-27T05:00:00Z"}).outbox_retired_tags_until == datetime(
        2026, 4, 27, 5, tzinfo=timezone.utc)
    assert load_settings({"OUTBOX_RETIRED_TAGS_UNTIL": "2026-04-27T00:00:00-05:00"}).outbox_retired_tags_until == (
        datetime(2026, 4, 27, 5, tzinfo=timezone.utc))


def test_the_knowledge_cli_finds_the_data_dir_where_the_bot_does(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    monkeypatch.setenv("BOT_DATA_DIR", str(tmp_path / "data"))
    assert data_dir_from(argparse.Namespace(data_dir=None)) == load_settings().data_dir == tmp_path / "data"
    assert data_dir_from(argparse.Namespace(data_dir=str(tmp_path / "other"))) == tmp_path / "other"
    assert data_dir_from_env({}) == load_settings({}).data_dir == ROOT / "var"
