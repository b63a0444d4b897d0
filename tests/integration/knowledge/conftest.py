"""The real default embedder, loaded once per test session for the knowledge matrix tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge_matrix.embedders import Embedder, create_embedder
from knowledge_matrix.errors import EmbedderUnavailableError
from knowledge_matrix.settings import DEFAULT_SETTINGS
from tests.conftest import require_or_skip

ROOT = Path(__file__).resolve().parents[3]
DEV_SET = ROOT / "tests/data/knowledge"  # a copy of the public dev set (../shared/eval), so CI always has it
HELD_OUT = ROOT / "tests" / "data" / "knowledge"
DEMO_MATRIX = ROOT / "data" / "knowledge_matrix.csv"


@pytest.fixture(scope="session")
def knowledge_embedder() -> Embedder:
    try:
        return create_embedder(DEFAULT_SETTINGS.embedder)
    except EmbedderUnavailableError as exc:
        require_or_skip(False, f"the default embedder ({exc})")
        raise
