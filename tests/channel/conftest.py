"""Fixtures of the connector's in-process tests: they run with Rasa's Python (`.venv-rasa/bin/python -m pytest
tests/channel`, what `make test` runs after the main suite); the main run (.venv) does not collect this folder.

One action server (the project's, its own process from .venv) and one Rasa agent (from the trained model in
models/) serve the whole run; every test gets its own channel, journal, outbox and fake Graph API.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from core.settings import ROOT
from tests.channel.support import (
    ActionTap,
    ChannelServer,
    FakeGraph,
    channel_settings,
    free_port,
    with_short_outbox_busy_timeout,
)
from tests.conftest import require_or_skip

APP_PYTHON = ROOT / ".venv" / "bin" / "python"

# Warnings are errors (pyproject), here too. Rasa 3.6 and the libraries it pins warn when they are imported or
# loaded, each named by message and module; nothing else is ignored.
RASA_IMPORT_WARNINGS = (
    "ignore:pkg_resources is deprecated as an API:DeprecationWarning:apscheduler",
    "ignore:jax.xla_computation is deprecated:DeprecationWarning:tensorflow.lite.python.util",
    "ignore:non-integer arguments to randrange:DeprecationWarning:random",  # Keras seeding its initialisers
    "ignore:the load_module\\(\\) method is deprecated:DeprecationWarning:importlib._bootstrap",  # pykwalify
    "ignore::DeprecationWarning:matplotlib.fontconfig_pattern",  # pyparsing's renamed API, from Rasa's plots
    "ignore:Slot auto-fill has been removed:UserWarning:rasa.shared.core.slot_mappings",  # said for every domain
    "ignore::sqlalchemy.exc.SADeprecationWarning:rasa.core.tracker_store",  # SQLAlchemy 2.0 notices
)


def pytest_configure(config: pytest.Config) -> None:
    for line in RASA_IMPORT_WARNINGS:
        config.addinivalue_line("filterwarnings", line)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One event loop for the whole run, as Rasa has one for its process: the agent, loaded once, is used from
    it only (its stores and HTTP sessions are never carried from a closed loop to the next)."""
    for item in items:
        if pytest_asyncio.is_async_test(item):
            item.add_marker(pytest.mark.asyncio(loop_scope="session"), append=False)


@dataclass(frozen=True)
class ActionServer:
    webhook_url: str
    token: str


def newest_model() -> Path | None:
    """`make test` trains (or finds up to date) the model before the tests: the newest archive in models/ is it."""
    models = sorted((ROOT / "models").glob("*.tar.gz"), key=lambda path: path.stat().st_mtime)
    return models[-1] if models else None


def wait_healthy(url: str, process: subprocess.Popen, log: Path, attempts: int = 300) -> None:
    import time

    for _ in range(attempts):
        if process.poll() is not None:
            raise RuntimeError(f"the action server exited with {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the action server was not healthy at {url}; see {log}")


@pytest.fixture(scope="session")
def action_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ActionServer]:
    """The project's action server (`python -m actions.server`, the app's environment), as the stack starts it."""
    require_or_skip(APP_PYTHON.exists(), "the app's environment (.venv, for the action server; run `make install`)")
    data_dir = tmp_path_factory.mktemp("actions")
    port, token = free_port(), secrets.token_urlsafe(32)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BOT_DATA_DIR": str(data_dir), "ACTION_SERVER_TOKEN": token,
           "BOT_APP_URL": f"http://127.0.0.1:{free_port()}",  # closed: no test here hands off
           "LLM_API_KEY": "", "OPENAI_API_KEY": ""}  # no GPT fallback: a question not in the matrix gets "no answer"
    log = data_dir / "actions.log"
    with open(log, "ab") as out:
        process = subprocess.Popen([str(APP_PYTHON), "-m", "actions.server", "--port", str(port)], cwd=ROOT,
                                   env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", process, log)
        yield ActionServer(f"http://127.0.0.1:{port}/webhook", token)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def action_tap(action_server: ActionServer) -> Iterator[ActionTap]:
    """Between Rasa and the action server for the whole run; a test may set `before_action` (cleared after it)."""
    tap = ActionTap(action_server.webhook_url.removesuffix("/webhook"))
    yield tap
    tap.close()


@pytest.fixture
def action_hook(action_tap: ActionTap) -> Iterator[ActionTap]:
    yield action_tap
    action_tap.before_action = None


@pytest.fixture(scope="session")
def tracker_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rasa") / "rasa_tracker.sqlite3"


@pytest.fixture(scope="session")
def agent(action_server: ActionServer, action_tap: ActionTap, tracker_db: Path) -> Any:
    """Rasa's agent from the trained model, configured as endpoints.yml configures the real one (an SQL tracker
    store on SQLite, the action server with its bearer token), its action calls passing through `action_tap`."""
    model = newest_model()
    require_or_skip(model is not None, "a trained Rasa model in models/ (run `make train`)")
    from rasa.core.agent import Agent
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.utils.endpoints import EndpointConfig

    tracker_store = SQLTrackerStore(dialect="sqlite", db=str(tracker_db))
    endpoint = EndpointConfig(url=action_tap.base_url + "/webhook",
                              headers={"Authorization": f"Bearer {action_server.token}"})
    return Agent.load(str(model), tracker_store=tracker_store, action_endpoint=endpoint)


@pytest_asyncio.fixture(loop_scope="session")
async def fake_graph() -> AsyncIterator[FakeGraph]:
    graph = FakeGraph()
    await graph.start()
    yield graph
    await graph.close()


OpenChannel = Callable[..., Any]


@pytest_asyncio.fixture(loop_scope="session")
async def open_channel(
    tmp_path: Path, fake_graph: FakeGraph, action_server: ActionServer, agent: Any
) -> AsyncIterator[OpenChannel]:
    """Builds a channel on its own data directory, listening but not started (`ChannelServer.start`); closed at
    the end of the test. `prepare(channel)` runs on the `MessengerInput` before it listens. Its outbox gives up
    on a locked database after 1 s (`with_short_outbox_busy_timeout`)."""
    from connectors.messenger import MessengerInput

    opened: list[ChannelServer] = []

    async def open_one(prepare: Callable[[MessengerInput], None] | None = None) -> ChannelServer:
        settings = channel_settings(tmp_path / f"channel{len(opened)}", fake_graph.base_url,
                                    action_server.webhook_url, action_server.token)
        channel = MessengerInput(settings)
        with_short_outbox_busy_timeout(channel)
        if prepare is not None:
            prepare(channel)
        server = ChannelServer(channel, agent)
        opened.append(server)
        await server.listen()
        return server

    yield open_one
    for server in opened:
        await server.close()


@pytest_asyncio.fixture(loop_scope="session")
async def channel(open_channel: OpenChannel) -> ChannelServer:
    """A started channel (its worker, upkeep and recovery running), ready for webhooks."""
    server = await open_channel()
    await server.start()
    return server

