"""The outbox façade (`outbox.outbox.Outbox`): in-memory store, fake Graph transport, the clock fixed.

What callers ask of the outbox without its store or policy: enqueue (then the worker sends it), preview a decision
(nothing written), record that a user wrote, read the conversation window (the same read the worker decides on),
cancel a user's stale bot messages when a person takes over, and start and stop the worker.
"""

from __future__ import annotations

import ast
import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from core.settings import SANDBOX_PAGE_ID, Settings
from meta.graph import GraphClient
from outbox.model import MessageFilter, NewMessage, Outcome, Purpose, SenderKind, Status
from outbox.outbox import Outbox, open_outbox
from outbox.policy import NEVER_WROTE
from outbox.policy_file import PolicyFileError, load_policy
from outbox.store import InMemoryOutboxStore
from tests.unit.outbox.test_worker_store_outage import RecordingTransport

ROOT = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)
PAGE = SANDBOX_PAGE_ID
USER = "psid-facade"


def reply(text: str, user: str = USER, **fields: object) -> NewMessage:
    return NewMessage(PAGE, user, {"text": text}, purpose=Purpose.REPLY, sender=SenderKind.BOT, **fields)  # type: ignore[arg-type]


@pytest.fixture
def parts() -> tuple[Outbox, InMemoryOutboxStore, RecordingTransport]:
    store, transport = InMemoryOutboxStore(), RecordingTransport()
    client = GraphClient(Settings().page_tokens, transport=transport)
    return Outbox(store, client, load_policy(), worker_id="w1", page_rate=0, clock=lambda: T0), store, transport


async def test_an_enqueued_reply_is_sent_by_the_worker_once_and_a_known_key_is_not_queued_again(parts) -> None:
    outbox, store, transport = parts
    await outbox.record_user_message(PAGE, USER, T0 - timedelta(minutes=5))

    message, created = await outbox.enqueue(reply("hola", idempotency_key="k1"))
    again, created_again = await outbox.enqueue(reply("hola", idempotency_key="k1"))

    assert (created, created_again, again.id) == (True, False, message.id)
    assert await outbox.run_once() == 1
    sent = await outbox.get(message.id)
    assert (sent.status, sent.messaging_type) == (Status.SENT, "RESPONSE")
    assert [body["message"] for body in transport.sent] == [{"text": "hola"}]
    assert len(store.find(MessageFilter())) == 1


async def test_a_preview_decides_from_the_recorded_window_and_writes_nothing(parts) -> None:
    outbox, store, _transport = parts

    never = await outbox.preview(reply("hola"))
    await outbox.record_user_message(PAGE, USER, T0 - timedelta(hours=1))
    now = await outbox.preview(reply("hola"))
    two_days_on = await outbox.preview(reply("hola"), T0 + timedelta(days=2))

    assert (never.allowed, never.reason_code) == (False, NEVER_WROTE)
    assert (now.allowed, now.messaging_type) == (True, "RESPONSE")
    assert not two_days_on.allowed, "a bot reply 2 days after the user's last message is outside the 24 h window"
    assert store.find(MessageFilter()) == [], "a preview queues nothing"


async def test_the_conversation_window_is_the_user_s_last_own_message_on_that_page_and_the_page_s_opt_in(
    parts,
) -> None:
    outbox, store, _transport = parts
    await outbox.record_user_message(PAGE, USER, T0 - timedelta(hours=3))
    await outbox.record_user_message("999", USER, T0)  # another page's window is not this one's
    store.set_utility_templates(PAGE, True)

    window = await outbox.conversation_window(PAGE, USER)
    other_user = await outbox.conversation_window(PAGE, "someone-else")

    assert (window.last_user_message_at, window.page_utility_opt_in) == (T0 - timedelta(hours=3), True)
    assert other_user.last_user_message_at is None


async def test_a_takeover_cancels_the_bot_s_stale_messages_and_leaves_the_current_turn_and_people_s_ones(
    parts,
) -> None:
    outbox, store, _transport = parts
    backoff_user = "psid-backoff"
    backoff, _ = await outbox.enqueue(reply("reintento", user=backoff_user))
    [claimed] = store.claim("w0", T0, 30, 10)  # sent once, failed: back in the queue for a retry
    store.complete(claimed.id, "w0", Outcome(Status.PENDING, next_attempt_at=T0 + timedelta(minutes=1)))
    await outbox.record_user_message(PAGE, USER, T0)
    fresh, _ = await outbox.enqueue(reply("le paso con una persona"))  # the handoff notice itself
    later, _ = await outbox.enqueue(reply("¿sigue ahí?", user="other"))  # another user's: not touched
    scheduled, _ = await outbox.enqueue(
        NewMessage(PAGE, USER, {"text": "recordatorio"}, sender=SenderKind.BOT, not_before=T0 + timedelta(hours=1))
    )
    follow_up, _ = await outbox.enqueue(NewMessage(PAGE, USER, {"text": "encuesta"}, sender=SenderKind.BOT,
                                                   purpose=Purpose.FOLLOW_UP))
    human, _ = await outbox.enqueue(NewMessage(PAGE, USER, {"text": "soy Ana"}, sender=SenderKind.HUMAN,
                                               purpose=Purpose.FOLLOW_UP))

    cancelled = await outbox.cancel_stale_bot_messages(PAGE, USER, T0)
    cancelled_backoff = await outbox.cancel_stale_bot_messages(PAGE, backoff_user, T0)

    assert sorted(cancelled) == sorted([scheduled.id, follow_up.id])
    assert cancelled_backoff == [backoff.id], "a bot reply in retry backoff is from an earlier turn"
    statuses = {m.id: m.status for m in store.find(MessageFilter(limit=100))}
    assert statuses[fresh.id] is Status.PENDING and statuses[human.id] is Status.PENDING
    assert statuses[later.id] is Status.PENDING
    assert statuses[scheduled.id] is statuses[follow_up.id] is statuses[backoff.id] is Status.CANCELLED


async def test_started_the_worker_sends_in_the_background_until_stopped(tmp_path: Path) -> None:
    transport = RecordingTransport()
    client = GraphClient(Settings().page_tokens, transport=transport)
    outbox = open_outbox(f"sqlite:///{tmp_path / 'outbox.sqlite3'}", client, page_rate=0)
    outbox.start()
    try:
        await outbox.record_user_message(PAGE, USER, datetime.now(timezone.utc))
        message, _ = await outbox.enqueue(reply("al instante"))
        for _ in range(2000):  # the enqueue woke the worker; no time limit, only a bound on the polling
            if (await outbox.get(message.id)).status is Status.SENT:
                break
            await asyncio.sleep(0.005)
        assert (await outbox.get(message.id)).status is Status.SENT
    finally:
        await outbox.stop()
    after, _ = await outbox.enqueue(reply("después de parar", user="u-after"))
    await asyncio.sleep(0.05)
    assert (await outbox.get(after.id)).status is Status.PENDING, "a stopped outbox sends nothing"
    assert len(transport.sent) == 1
    outbox.close()


def test_a_broken_policy_file_opens_no_store(tmp_path: Path) -> None:
    broken = tmp_path / "policy.yml"
    broken.write_text("rules: [", encoding="utf-8")
    database = tmp_path / "outbox.sqlite3"

    with pytest.raises(PolicyFileError):
        open_outbox(f"sqlite:///{database}", GraphClient(Settings().page_tokens, transport=RecordingTransport()),
                    policy_file=broken)

    assert not database.exists()


def test_callers_see_neither_the_store_nor_the_policy(parts) -> None:
    outbox, _store, _transport = parts
    public = {name for name in dir(outbox) if not name.startswith("_")}
    assert not public & {"store", "policy", "worker", "run_store"}


def test_no_package_above_the_outbox_opens_its_store_worker_or_policy_file_itself() -> None:
    """The wiring is `open_outbox` only: the app, the channel, the console and the handoff import neither the
    store, nor the worker, nor the policy file (before: three wirings, and callers reaching into `worker.store`)."""
    behind = {"outbox.store", "outbox.worker", "outbox.policy_file"}
    found = []
    for package in ("handoff", "sandbox", "console", "connectors", "actions", "bot"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                    [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
                found += [f"{path.relative_to(ROOT)}:{node.lineno} {name}" for name in names if name in behind]
    assert found == []


async def test_a_public_reply_goes_under_the_comment_and_one_without_text_fails_with_its_reason(parts) -> None:
    outbox, _store, transport = parts
    comment_id = "880011223344_5"
    await outbox.record_user_message(PAGE, comment_id, T0 - timedelta(days=30))  # the comment: no window applies
    public, _ = await outbox.enqueue(NewMessage(PAGE, comment_id, {"text": "¡Te escribimos! 📩"},
                                                purpose=Purpose.PUBLIC_REPLY, idempotency_key="public:1"))
    empty, _ = await outbox.enqueue(NewMessage(PAGE, "880011223344_6", {"attachment": {"type": "image"}},
                                               purpose=Purpose.PUBLIC_REPLY))
    await outbox.record_user_message(PAGE, "880011223344_6", T0)

    assert await outbox.run_once() == 2

    sent, failed = await outbox.get(public.id), await outbox.get(empty.id)
    assert (sent.status, sent.messaging_type, sent.graph_message_id) == (Status.SENT, "COMMENT", "m_1")
    assert transport.sent == [{"message": "¡Te escribimos! 📩"}]
    assert (failed.status, failed.reason_code) == (Status.FAILED, "not_sendable")
