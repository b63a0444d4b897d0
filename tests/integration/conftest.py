from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.stack import Stack
from tests.conftest import require_or_skip
from tests.support.stack import Messenger, rasa_available, start_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_or_skip(rasa_available(), "the Rasa environment (.venv-rasa; run `make install`)")
    running = start_stack(Path(tmp_path_factory.mktemp("stack")))
    yield running
    running.stop()


@pytest.fixture
def messenger(stack: Stack) -> Iterator[Messenger]:
    client = Messenger(stack)
    yield client
    client.http.close()
