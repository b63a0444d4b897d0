"""Markers come from the folder; services skip cleanly unless REQUIRE_SERVICES=1 (CI)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.stack import Stack

TESTS = Path(__file__).parent


LAYERS = ("unit", "integration", "e2e")


def _layer(item: pytest.Item) -> str:
    return Path(str(item.fspath)).relative_to(TESTS).parts[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Markers come from the folder; fast layers run first (unit, then integration, then e2e)."""
    for item in items:
        if _layer(item) in LAYERS:
            item.add_marker(getattr(pytest.mark, _layer(item)))
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
