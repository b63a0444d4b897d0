"""An idle worker finds another process's new messages by its poll (OUTBOX_POLL_SECONDS), without a kick: Rasa's
replies are enqueued by the Rasa process and sent by the app's (or a standalone) worker. On SQLite the poll is a
look at the file's change counter (`data_version`), not a claim: an idle worker writes nothing until another
connection committed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.settings import SANDBOX_PAGE_ID, Settings
from meta.graph import GraphClient
from outbox import worker as worker_module
from outbox.model import NewMessage, Purpose, Status
from outbox.policy_file import load_policy
from outbox.store import SQLiteOutboxStore
from outbox.worker import OutboxWorker, utc_now
from tests.unit.outbox.test_worker_store_outage import RecordingTransport

USER = "psid-poll"


class CountingStore(SQLiteOutboxStore):
    claims = 0

    def claim(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.claims += 1
        return super().claim(*args, **kwargs)


async def wait_for(condition, seconds: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met")


async def test_an_idle_worker_claims_only_after_another_connection_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "FULL_ROUND_SECONDS", 3600.0)  # only the change look can wake it
    path = tmp_path / "outbox.sqlite3"
    app_store, rasa_store = CountingStore(path), SQLiteOutboxStore(path)  # two processes' connections
    transport = RecordingTransport()
    worker = OutboxWorker(app_store, GraphClient(Settings().page_tokens, transport=transport), load_policy(),
                          page_rate=0, poll_seconds=0.01)
    running = asyncio.create_task(worker.run())
    try:
        await wait_for(lambda: app_store.claims >= 1)
        await asyncio.sleep(0.3)  # ~30 polls with nothing new
        assert app_store.claims == 1, "an idle poll with nothing committed claims nothing"

        rasa_store.record_user_message(SANDBOX_PAGE_ID, USER, utc_now())
        message, _ = rasa_store.enqueue(NewMessage(SANDBOX_PAGE_ID, USER, {"text": "hola"}, purpose=Purpose.REPLY),
                                        utc_now())
        await wait_for(lambda: rasa_store.get(message.id).status is Status.SENT)  # no kick: the poll found it
        assert len(transport.sent) == 1
    finally:
        worker.stop()
        await running
        app_store.close()
        rasa_store.close()


async def test_a_store_without_a_change_look_is_claimed_every_poll(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_module, "FULL_ROUND_SECONDS", 3600.0)
    monkeypatch.delattr(SQLiteOutboxStore, "change_token")  # as PostgreSQL's store
    store = CountingStore(tmp_path / "outbox.sqlite3")
    worker = OutboxWorker(store, GraphClient(Settings().page_tokens, transport=RecordingTransport()), load_policy(),
                          poll_seconds=0.01)
    running = asyncio.create_task(worker.run())
    try:
        await wait_for(lambda: store.claims >= 5)
    finally:
        worker.stop()
        await running
        store.close()


async def test_another_process_enqueue_wakes_the_worker_through_its_wake_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app's worker listens on BOT_DATA_DIR/outbox.wake; the Rasa channel's outbox pings it after an enqueue:
    sent without waiting for a poll (here the poll is an hour)."""
    from outbox.outbox import WAKE_FILE_NAME, Outbox

    monkeypatch.setattr(worker_module, "FULL_ROUND_SECONDS", 3600.0)
    monkeypatch.delattr(SQLiteOutboxStore, "change_token")  # only the ping can wake it
    path = tmp_path / "outbox.sqlite3"
    transport = RecordingTransport()
    client = GraphClient(Settings().page_tokens, transport=transport)
    app = Outbox(CountingStore(path), client, load_policy(), page_rate=0, poll_seconds=3600)
    rasa = Outbox(SQLiteOutboxStore(path), client, load_policy(), page_rate=0)
    app.start(wake_path=tmp_path / WAKE_FILE_NAME)
    rasa.wake_others(tmp_path / WAKE_FILE_NAME)
    try:
        await wait_for(lambda: app._store.claims >= 1)  # type: ignore[attr-defined]
        await rasa.record_user_message(SANDBOX_PAGE_ID, USER, utc_now())
        message, _ = await rasa.enqueue(NewMessage(SANDBOX_PAGE_ID, USER, {"text": "hola"}, purpose=Purpose.REPLY))
        await wait_for(lambda: len(transport.sent) == 1)
        # The outcome is committed just after the Send API answered: wait for it rather than race it.
        await wait_for(lambda: rasa._store.get(message.id).status is Status.SENT)  # type: ignore[attr-defined]
        assert len(transport.sent) == 1
    finally:
        await app.stop()
        await rasa.stop()
        app.close()
        rasa.close()
    assert not (tmp_path / WAKE_FILE_NAME).exists(), "the listener removes its socket file at stop"
