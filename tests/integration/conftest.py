from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.stack import Stack
from tests.support.stack import Messenger


@pytest.fixture
def messenger(stack: Stack) -> Iterator[Messenger]:
    client = Messenger(stack)
    yield client
    client.http.close()
