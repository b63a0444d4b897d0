"""Markers come from the folder; services skip cleanly unless REQUIRE_SERVICES=1 (CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTS = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        relative = Path(str(item.fspath)).relative_to(TESTS)
        if relative.parts[0] in ("unit", "integration", "e2e"):
            item.add_marker(getattr(pytest.mark, relative.parts[0]))


def require_or_skip(available: bool, what: str) -> None:
    """Skip when a service is missing locally; fail in CI where REQUIRE_SERVICES=1."""
    if available:
        return
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"{what} is required (REQUIRE_SERVICES=1) but not available")
    pytest.skip(f"{what} not available")
