"""The channel's processing loop (`MessengerInput._process_once`) for failures that are not a failed action call:
the outbox refusing writes (its SQLite file held by another writer), before a turn or in the middle of one, where
the error leaves Rasa's handler. Each attempt is recorded with its error, retried with a backoff, and after
MAX_PROCESSING_ATTEMPTS the event ends `failed` with the reason; a failure that goes away ends `done`, the replay's
replies deduplicated against what the failed attempt queued (same outbox keys), so the customer gets each once.

(Rasa's tracker store cannot be the failing part: Rasa wraps it in `FailSafeTrackerStore`, which logs a failed save
and keeps the tracker in memory instead of raising.)
"""

from __future__ import annotations

import time

import pytest
import yaml

from actions.session import AUTOMATION_DISCLOSURE
from connectors.messenger import MAX_PROCESSING_ATTEMPTS, MessengerInput
from core.settings import ROOT
from meta.events import parse_webhook
from sandbox import simulate
from tests.channel.conftest import OpenChannel
from tests.channel.support import PAGE_ID, ActionTap, ChannelServer, FakeGraph, WriteLock, eventually

UNANSWERABLE = "¿tienen sucursal en Loja con parqueadero para camiones?"  # not in any matrix: the knowledge action


def greetings() -> set[str]:
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    return {variant["text"] for variant in domain["responses"]["utter_greet"] if "text" in variant}


def statuses(channel: ChannelServer, user: str) -> list[str]:
    return [row["status"] for row in channel.journal(user)]


async def test_a_message_is_answered_and_done(channel: ChannelServer, fake_graph: FakeGraph) -> None:
    """The harness itself: a real turn through the channel ends `done` with the disclosure and a greeting."""
    user = "psid-channel-ok"
    assert await channel.say(user, "hola") == 200
    await eventually(lambda: statuses(channel, user) == ["done"], "the message done")
    await eventually(lambda: len(fake_graph.texts(user)) >= 2, "the replies sent")
    texts = fake_graph.texts(user)
    assert texts[0] == AUTOMATION_DISCLOSURE and len(texts) == 2 and texts[1] in greetings(), texts
    assert await channel.user_texts_in_tracker(user) == ["hola"]


def failed_attempts_logged(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for record in caplog.records if record.getMessage() == "processing a Messenger event failed")


async def test_a_failure_on_every_attempt_ends_failed_with_its_reason(
    channel: ChannelServer, fake_graph: FakeGraph, caplog: pytest.LogCaptureFixture
) -> None:
    """The outbox refuses every write (its SQLite file held by another writer): each attempt fails (the window is
    recorded first) and is logged, and after MAX_PROCESSING_ATTEMPTS the event is `failed` with the error as the
    reason. Fails on a loop that stops early, retries forever, marks the event done or loses the reason."""
    user = "psid-channel-always-fails"
    lock = WriteLock(channel.outbox_path)
    lock.take()
    try:
        assert await channel.say(user, "hola") == 200
        await eventually(lambda: statuses(channel, user) != ["pending"], "the message given up")
    finally:
        lock.close()
    [row] = channel.journal(user)
    assert row["status"] == "failed", row
    assert "OperationalError" in row["last_error"] and "database is locked" in row["last_error"], row
    assert failed_attempts_logged(caplog) == MAX_PROCESSING_ATTEMPTS
    assert row["attempts"] == MAX_PROCESSING_ATTEMPTS, "the journal counts each attempt once (the give-up is none)"
    assert fake_graph.requests == [] and await channel.user_texts_in_tracker(user) == [], "no turn ran"


async def test_a_transient_failure_mid_turn_is_retried_and_ends_done_with_each_reply_sent_once(
    channel: ChannelServer, fake_graph: FakeGraph, action_hook: ActionTap
) -> None:
    """The outbox refuses a write in the middle of a turn: the session start's disclosure was queued and sent, then
    the answer cannot be queued and the error leaves Rasa's handler (Rasa 3.6 sends a turn's messages outside its
    action's try; nothing is saved in the tracker). The failure goes away; the retry replays the whole turn under
    the same outbox keys and ends `done`: the customer got the disclosure once and the answer once, and Rasa
    counts the message once."""
    user = "psid-channel-fails-once"
    lock = WriteLock(channel.outbox_path)

    def lock_before_the_answer(action: str) -> None:  # on the tap's thread: it may wait
        if action != "action_knowledge_answer" or lock.taken:
            return
        for _ in range(600):  # the disclosure sent first, so only the answer meets the lock
            if [status for _key, status in channel.outbox_rows(user)] == ["sent"]:
                break
            time.sleep(0.05)
        lock.take()

    action_hook.before_action = lock_before_the_answer
    try:
        assert await channel.say(user, UNANSWERABLE) == 200
        await eventually(lambda: channel.journal(user)[0]["attempts"] >= 1, "the first attempt failing")
        [failed] = channel.journal(user)
    finally:
        lock.close()
    assert lock.taken == 1, "the turn reached the knowledge action"
    assert failed["status"] == "pending" and "database is locked" in failed["last_error"], failed
    await eventually(lambda: statuses(channel, user) == ["done"], "the retry done")
    await eventually(lambda: len(fake_graph.texts(user)) >= 2, "the answer sent")
    [row] = channel.journal(user)
    assert row["last_error"] is None and row["attempts"] == 2, row
    assert len(channel.outbox_keys(user)) == 2, f"nothing queued twice: {channel.outbox_keys(user)}"
    texts = fake_graph.texts(user)
    assert texts[0] == AUTOMATION_DISCLOSURE and AUTOMATION_DISCLOSURE not in texts[1:] and len(texts) == 2, texts
    assert await channel.user_texts_in_tracker(user) == [UNANSWERABLE], "the message counted once by Rasa"


def recorded(channel: MessengerInput, user: str, text: str, failed_attempts: int) -> None:
    """A message recorded before a restart, with `failed_attempts` already noted against it."""
    body = simulate.webhook_body(PAGE_ID, [simulate.text_message(PAGE_ID, user, text)])
    [stored] = channel.store.record(parse_webhook(body))
    for _ in range(failed_attempts):
        channel.store.note_attempt_failed(stored.id, "RuntimeError('before the restart')")


async def test_an_event_whose_attempts_ran_out_before_a_restart_is_failed_without_another_turn(
    open_channel: OpenChannel, fake_graph: FakeGraph
) -> None:
    """A crash between the last failed attempt and its verdict: at the next start the event is failed at once with
    that reason, not given a fourth attempt."""
    user = "psid-channel-exhausted"
    server = await open_channel(lambda channel: recorded(channel, user, "hola", MAX_PROCESSING_ATTEMPTS))
    await server.start()
    await eventually(lambda: statuses(server, user) != ["pending"], "the recovered event finished")
    [row] = server.journal(user)
    assert row["status"] == "failed" and row["last_error"] == "attempts exhausted before a restart", row
    assert row["attempts"] == MAX_PROCESSING_ATTEMPTS, row
    assert fake_graph.requests == [] and await server.user_texts_in_tracker(user) == [], "no fourth attempt"


async def test_attempts_made_before_a_restart_count_towards_the_limit(
    open_channel: OpenChannel, caplog: pytest.LogCaptureFixture
) -> None:
    """Two attempts failed before a restart: the recovered event gets one more, not three."""
    user = "psid-channel-one-left"
    server = await open_channel(lambda channel: recorded(channel, user, "hola", MAX_PROCESSING_ATTEMPTS - 1))
    lock = WriteLock(server.outbox_path)
    lock.take()
    try:
        await server.start()
        await eventually(lambda: statuses(server, user) != ["pending"], "the recovered event given up")
    finally:
        lock.close()
    [row] = server.journal(user)
    assert row["status"] == "failed" and "database is locked" in row["last_error"], row
    assert failed_attempts_logged(caplog) == 1, "one attempt was left"
    assert row["attempts"] == MAX_PROCESSING_ATTEMPTS, row
