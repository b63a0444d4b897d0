"""The console's unit tests: a console store in a temporary directory, a clock the test moves, fast hashing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bot import errors
from console import routes as console
from console.auth import Authenticator
from console.store import ConsoleStore
from contacts.store import ContactsStore, open_contacts_store
from core.settings import DEMO_SERVICE_TOKEN, Settings
from tests.support.console_fakes import FakeHandoff, FakeKnowledgeEditor

START = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def fast_hasher() -> PasswordHasher:
    """Real argon2id with small costs: the same code path, a fraction of the time."""
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ConsoleStore]:
    opened = ConsoleStore(tmp_path / "console.sqlite3")
    yield opened
    opened.close()


@pytest.fixture
def auth(store: ConsoleStore, clock: Clock, tmp_path: Path) -> Authenticator:
    return Authenticator(store, Settings(data_dir=tmp_path), hasher=fast_hasher(), clock=clock)


# --- a console app over the fakes -------------------------------------------------------------------

PAGE = "100000000000001"
USERS = {
    "admin": ("admin", "admin-clave-1"),
    "agente": ("agent", "agente-clave-1"),
    "maria": ("agent", "maria-clave-1"),
    "editor": ("editor", "editor-clave-1"),
}


class ConsoleClient:
    """A TestClient logged in as one user, sending the CSRF header on every state-changing request."""

    def __init__(self, client: TestClient, csrf: str) -> None:
        self.client = client
        self.csrf = csrf

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.client.get(url, **kwargs)

    def send(self, method: str, url: str, **kwargs: Any) -> Any:
        headers = {"X-CSRF-Token": self.csrf, **kwargs.pop("headers", {})}
        return self.client.request(method, url, headers=headers, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.send("POST", url, **kwargs)


class ConsoleApp:
    def __init__(self, app: FastAPI, handoff: FakeHandoff, knowledge: FakeKnowledgeEditor, clock: Clock) -> None:
        self.app = app
        self.handoff = handoff
        self.knowledge = knowledge
        self.clock = clock

    def anonymous(self) -> TestClient:
        return TestClient(self.app, follow_redirects=False)

    def login(self, username: str) -> ConsoleClient:
        client = self.anonymous()
        answer = client.post("/api/console/login", json={"username": username, "password": USERS[username][1]})
        assert answer.status_code == 200, answer.text
        return ConsoleClient(client, answer.json()["csrf_token"])


def console_app(tmp_path: Path, clock: Clock, settings: Settings | None = None) -> ConsoleApp:
    settings = settings or Settings(data_dir=tmp_path)
    app = FastAPI()
    app.state.settings = settings
    auth = Authenticator(ConsoleStore(settings.console_db_path), settings, hasher=fast_hasher(), clock=clock)
    for username, (role, password) in USERS.items():
        auth.add_user(username, role, password)
    console.install(app, settings, auth)
    errors.install(app)  # the app's one error handler, as bot.app mounts it
    handoff, knowledge = FakeHandoff(clock), FakeKnowledgeEditor(clock)
    app.state.handoff = handoff
    app.state.knowledge_editor = knowledge
    return ConsoleApp(app, handoff, knowledge, clock)


@pytest.fixture
def console_env(tmp_path: Path, clock: Clock) -> ConsoleApp:
    return console_app(tmp_path, clock)


@pytest.fixture
def inbox_env(tmp_path: Path, clock: Clock) -> Iterator[tuple[ConsoleApp, ContactsStore]]:
    """The console as the app mounts it with a real contacts store (a SQLite file) beside its own: the inbox's."""
    settings = Settings(data_dir=tmp_path, service_token=DEMO_SERVICE_TOKEN)
    console = console_app(tmp_path, clock, settings)
    contacts = open_contacts_store(settings.store_url("contacts"))
    console.app.state.contacts = contacts
    yield console, contacts
    contacts.close()
