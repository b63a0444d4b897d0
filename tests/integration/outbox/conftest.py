"""The Graph sandbox (the app's, over real HTTP) that the outbox worker tests send to: two pages, one per token."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from bot.app import create_app
from core.settings import SANDBOX_PAGE_ID, SANDBOX_PAGE_TOKEN, Settings
from tests.support.servers import RunningServer, serve_asgi

PAGE_A, PAGE_B = SANDBOX_PAGE_ID, "100000000000002"
TOKENS = {PAGE_A: SANDBOX_PAGE_TOKEN, PAGE_B: "sandbox-page-token-b"}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = Settings(page_tokens=TOKENS, data_dir=tmp_path_factory.mktemp("sandbox"))
    with serve_asgi(create_app(settings)) as server:
        yield server


@pytest.fixture
def http(sandbox: RunningServer) -> Iterator[httpx.Client]:
    """A client of the sandbox, which starts each test with nothing sent and no failure injected."""
    with httpx.Client(base_url=sandbox.base_url, timeout=10) as client:
        client.delete("/sandbox/sent")
        client.delete("/sandbox/failures")
        yield client
        client.delete("/sandbox/failures")
