"""Markers come from the folder; services skip cleanly unless REQUIRE_SERVICES=1 (CI).

Imported by both test runs: the main one (.venv, Python 3.11) and the connector's own (tests/channel, run with
.venv-rasa's Python 3.10, where the app's packages such as httpx are absent): keep its imports to the standard
library and pytest.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from bot.stack import Stack

TESTS = Path(__file__).parent

# tests/channel imports the connector, which needs Rasa: it runs in Rasa's environment (`make test` runs both).
collect_ignore = [] if importlib.util.find_spec("rasa") is not None else ["channel"]


LAYERS = ("unit", "integration", "e2e")

# Run alone, after the parallel part of `make test` (marker `serial`): tests that restart a service the others share
# (PostgreSQL), and the tests whose kill -9, outage and multi-instance timings assume they have the cores to
# themselves (each failed once under two workers: a wait that ran out, Rasa slower than the app's call timeout).
SERIAL = ("integration/faults/", "integration/test_action_outage.py", "integration/test_webhook_limits.py",
          "integration/test_webhook_process.py", "integration/scale/")


def _layer(item: pytest.Item) -> str:
    return Path(str(item.fspath)).relative_to(TESTS).parts[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Markers come from the folder; fast layers run first (unit, then integration, then e2e)."""
    for item in items:
        if _layer(item) in LAYERS:
            item.add_marker(getattr(pytest.mark, _layer(item)))
        if Path(str(item.fspath)).relative_to(TESTS).as_posix().startswith(SERIAL):
            item.add_marker(pytest.mark.serial)
    items.sort(key=lambda item: LAYERS.index(_layer(item)) if _layer(item) in LAYERS else 0)


def require_or_skip(available: bool, what: str) -> None:
    """Skip when a service is missing locally; fail in CI where REQUIRE_SERVICES=1."""
    if available:
        return
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"{what} is required (REQUIRE_SERVICES=1) but not available")
    pytest.skip(f"{what} not available")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One real stack (Rasa, action server, app) per test session, on free ports."""
    from tests.support.stack import rasa_available, start_stack

    require_or_skip(rasa_available(), "the Rasa environment (.venv-rasa; run `make install`)")
    running = start_stack(Path(tmp_path_factory.mktemp("stack")))
    yield running
    running.stop()
