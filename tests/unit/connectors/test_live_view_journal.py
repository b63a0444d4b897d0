"""The standby live-view notice is journaled like the window (issue 8, item 10).

What a user writes while another app holds the thread (standby) is not for Rasa; it reaches the agents' live view
through the app (`POST /internal/handoff/user-message`). It used to be fire-and-forget after the commit
(`handoff.in_background`): with the app down, or a crash after the 200, it was lost. Now `notice_pending` is set in
the ingest transaction and cleared only when the app confirms. Real SQLite, the real handoff client over real HTTP
to a small local stand-in for the app, which is first down (nothing listening), then up.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from connectors.handoff import AppHandoffClient
from connectors.ingest import RECORDED, IngestStore, JournalApplier
from core.settings import Settings
from meta.events import InboundEvent, parse_webhook
from tests.support import meta_payloads as meta

AT = datetime(2026, 1, 1, tzinfo=timezone.utc)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeApp:
    """The app's `/internal/handoff/user-message`, counting what reached the live view."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None

    async def _user_message(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        return web.json_response({"recorded": True})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/internal/handoff/user-message", self._user_message)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def app() -> AsyncIterator[FakeApp]:
    fake = FakeApp(free_port())  # not started: the app is down until a test starts it
    yield fake
    await fake.stop()


@pytest.fixture
async def handoff(app: FakeApp) -> AsyncIterator[AppHandoffClient]:
    client = AppHandoffClient(f"http://127.0.0.1:{app.port}", Settings().service_token, timeout_seconds=2)
    yield client
    await client.close()


def standby_message(mid: str, text: str) -> list[InboundEvent]:
    body = meta.webhook(meta.entry([meta.text_message(mid=mid, text=text)], standby=True))
    return parse_webhook(body)


def applier(store: IngestStore, handoff: AppHandoffClient, windows: list[str]) -> JournalApplier:
    async def record_window(event: InboundEvent) -> None:
        windows.append(event.mid or "")

    async def notify(event: InboundEvent) -> bool:  # what MessengerInput._notice_recorded does
        return await handoff.user_message(event.page_id, event.user_id, event.shown_text(), AT)

    return JournalApplier(store, record_window, notify)


async def test_a_standby_message_reaches_the_live_view_once_after_the_app_comes_back(
    tmp_path: Path, app: FakeApp, handoff: AppHandoffClient
) -> None:
    """Fails on the old code: the notice was neither journaled (no `notice_pending`) nor retried, so with the app down
    when the message arrived the live view never got it."""
    store = IngestStore(tmp_path / "messenger.sqlite3")
    windows: list[str] = []
    journal = applier(store, handoff, windows)
    try:
        (stored,) = store.record(standby_message("m_standby", "¿hay alguien?"))
        assert (stored.status, stored.window_pending, stored.notice_pending) == (RECORDED, True, True)

        await journal.apply([stored])  # the webhook's task after the 200: the app is down
        assert app.received == []
        assert [s.id for s in store.journaled()] == [stored.id], "the notice stays journaled while the app is down"
        assert store.journal_state(stored.id) == (False, True), "the window was applied, the notice was not"

        await app.start()
        await journal.apply(store.journaled())  # an upkeep round
        await journal.apply(store.journaled())  # and the next one: nothing left to send
        assert [item["text"] for item in app.received] == ["¿hay alguien?"], "in the live view exactly once"
        assert store.journaled() == []
        assert windows == ["m_standby"], "the window was recorded once"
    finally:
        store.close()


async def test_the_journaled_notice_survives_a_restart(tmp_path: Path, app: FakeApp, handoff: AppHandoffClient) -> None:
    """A crash right after the commit (nothing applied): the next start's upkeep sends it, once."""
    path = tmp_path / "messenger.sqlite3"
    store = IngestStore(path)
    store.record(standby_message("m_crash", "hola"))
    store.close()

    await app.start()
    reopened = IngestStore(path)
    try:
        journal = applier(reopened, handoff, [])
        await journal.apply(reopened.journaled())
        assert [item["text"] for item in app.received] == ["hola"]
        assert reopened.journaled() == []
    finally:
        reopened.close()


async def test_the_webhook_task_racing_the_upkeep_loop_sends_the_notice_once(
    tmp_path: Path, app: FakeApp, handoff: AppHandoffClient
) -> None:
    """Both hold the same journaled row (one from the webhook, one from an upkeep snapshot read before the other
    cleared it): the in-flight guard and the re-read flags keep it to one notice."""
    await app.start()
    store = IngestStore(tmp_path / "messenger.sqlite3")
    try:
        journal = applier(store, handoff, [])
        fresh = store.record(standby_message("m_race", "uno"))
        snapshot = store.journaled()
        await asyncio.gather(journal.apply(fresh), journal.apply(snapshot))
        await journal.apply(snapshot)  # a stale snapshot applied after the other finished
        assert [item["text"] for item in app.received] == ["uno"]
    finally:
        store.close()


async def test_two_rasa_instances_reading_one_journaled_row_send_the_notice_once(
    tmp_path: Path, app: FakeApp, handoff: AppHandoffClient
) -> None:
    """Every instance's feeder reads `journaled()` and hands the rows to its own applier: only the instance that
    takes the row (`take_journaled`) applies it; the window is recorded once too."""
    await app.start()
    path = tmp_path / "messenger.sqlite3"
    first_store, second_store = IngestStore(path), IngestStore(path)
    windows: list[str] = []
    try:
        first, second = applier(first_store, handoff, windows), applier(second_store, handoff, windows)
        first_store.record(standby_message("m_two_instances", "hola"))
        await asyncio.gather(first.apply(first_store.journaled()), second.apply(second_store.journaled()))
        assert [item["text"] for item in app.received] == ["hola"]
        assert windows == ["m_two_instances"]
        assert first_store.journaled() == []
    finally:
        first_store.close()
        second_store.close()


async def test_a_notice_the_app_did_not_confirm_is_put_back_for_any_instance(
    tmp_path: Path, app: FakeApp, handoff: AppHandoffClient
) -> None:
    """Taken by one instance while the app is down: the flag is set again, and another instance sends it later."""
    path = tmp_path / "messenger.sqlite3"
    first_store, second_store = IngestStore(path), IngestStore(path)
    try:
        (stored,) = first_store.record(standby_message("m_back", "otra vez"))
        await applier(first_store, handoff, []).apply([stored])
        assert second_store.journal_state(stored.id) == (False, True)
        await app.start()
        await applier(second_store, handoff, []).apply(second_store.journaled())
        assert [item["text"] for item in app.received] == ["otra vez"] and first_store.journaled() == []
    finally:
        first_store.close()
        second_store.close()


def test_only_standby_user_actions_journal_a_notice(tmp_path: Path) -> None:
    """Messages for Rasa reach the live view through processing; receipts and reactions have nothing to show."""
    store = IngestStore(tmp_path / "messenger.sqlite3")
    try:
        fresh = store.record(
            parse_webhook(meta.webhook(meta.entry([meta.text_message(mid="m_rasa"), meta.reaction("m_rasa")])))
            + parse_webhook(meta.webhook(meta.entry([meta.read(meta.T0)], standby=True)))
            + standby_message("m_sb", "hola")
        )
        assert [(s.event.kind.value, s.notice_pending) for s in fresh] == [
            ("message", False),
            ("reaction", False),
            ("read", False),
            ("message", True),
        ]
    finally:
        store.close()


async def test_a_journal_error_on_one_row_does_not_drop_the_rest_of_the_batch(
    tmp_path: Path, app: FakeApp, handoff: AppHandoffClient
) -> None:
    """The journal itself failing for one row (the SQLite file locked, a disk error) used to escape `apply` and skip
    every later row of that round; now that row stays journaled for the next round and the others are applied."""
    await app.start()
    store = IngestStore(tmp_path / "messenger.sqlite3")
    real_take = store.take_journaled
    first = store.record(standby_message("m_one", "uno"))[0]
    second = store.record(standby_message("m_two", "dos"))[0]

    def failing_once(event_id: int) -> tuple[bool, bool]:
        if event_id == first.id and not failing_once.failed:  # type: ignore[attr-defined]
            failing_once.failed = True  # type: ignore[attr-defined]
            raise OSError("disk I/O error")
        return real_take(event_id)

    failing_once.failed = False  # type: ignore[attr-defined]
    store.take_journaled = failing_once  # type: ignore[method-assign]
    try:
        journal = applier(store, handoff, [])
        await journal.apply([first, second])
        assert [item["text"] for item in app.received] == ["dos"], "the row after the failing one was applied"
        assert [s.id for s in store.journaled()] == [first.id], "the failing row stays journaled"
        await journal.apply(store.journaled())
        assert [item["text"] for item in app.received] == ["dos", "uno"], "and is applied in the next round"
    finally:
        store.close()
