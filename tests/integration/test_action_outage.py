"""A dead action server (kill -9) never means silence: messages wait for it (bounded), then the customer is told.

On the old code Rasa swallowed the failed action call ("Encountered an exception while running action"), the
connector marked the event done and the customer got nothing: each test below fails there. One stack for the
module, with a short bound (ACTION_OUTAGE_SECONDS) so the tests stay quick, and the GPT fallback pointed at a
local fake (`tests/support/fake_openai.py`) that can hang, so an action can be caught mid-call.
"""

from __future__ import annotations

import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from actions.session import AUTOMATION_DISCLOSURE
from bot.stack import Stack
from connectors.outage import OUTAGE_TEXT
from core.settings import DEMO_RASA_TOKEN
from handoff.rasa_api import rasa_auth_headers
from handoff.service import transcript_items
from tests.conftest import require_or_skip
from tests.integration.faults.support import repeated_replies
from tests.support.fake_openai import FAKE_API_KEY, RunningFakeOpenAI, serve_fake_openai
from tests.support.stack import Messenger, rasa_available, start_stack

BOUND_SECONDS = 12.0
LLM_TIMEOUT_SECONDS = 4.0  # how long an action may be caught mid-call while the fake LLM hangs; well under
# ACTION_TIMEOUT_SECONDS, so a hanging LLM ends in the honest reply, never in a timed-out action call
ACTION_TIMEOUT_SECONDS = 8.0  # above the LLM budget (settings refuse less); a hung action server costs 3 x this
UNANSWERABLE = "¿tienen sucursal en Loja con parqueadero para camiones?"  # not in the demo matrix: the fallback


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[RunningFakeOpenAI]:
    with serve_fake_openai() as server:
        yield server


@pytest.fixture(scope="module")
def outage_stack(tmp_path_factory: pytest.TempPathFactory, fake_llm: RunningFakeOpenAI) -> Iterator[Stack]:
    require_or_skip(rasa_available(), "the Rasa environment (.venv-rasa; run `make install`)")
    env = {
        "ACTION_OUTAGE_SECONDS": str(BOUND_SECONDS),
        "ACTION_TIMEOUT_SECONDS": str(ACTION_TIMEOUT_SECONDS),
        "LLM_API_KEY": FAKE_API_KEY,
        "LLM_BASE_URL": fake_llm.base_url,
        "LLM_TIMEOUT_SECONDS": str(LLM_TIMEOUT_SECONDS),
    }
    running = start_stack(Path(tmp_path_factory.mktemp("outage-stack")), extra_env=env)
    yield running
    running.stop()


@pytest.fixture
def messenger(outage_stack: Stack, fake_llm: RunningFakeOpenAI) -> Iterator[Messenger]:
    client = Messenger(outage_stack)
    yield client
    fake_llm.fake.set_behaviour("grounded")
    if "actions" not in outage_stack.processes:  # leave the action server up for the next test
        outage_stack.start_actions()
    client.http.close()


def new_user() -> str:
    return f"psid-{uuid.uuid4().hex[:12]}"


def kill_actions(stack: Stack) -> None:
    process = stack.processes.pop("actions")
    process.send_signal(signal.SIGKILL)
    process.wait()


def rows_of(database: Path, query: str, user: str) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(str(database), timeout=10)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(query, (user,)).fetchall()]


def events_of(stack: Stack, user: str) -> list[dict[str, Any]]:
    """The user's rows of the ingest journal, oldest first."""
    return rows_of(
        stack.data_dir / "messenger.sqlite3",
        "SELECT page_id, dedup_key, status, attempts, last_error, reverted_turns FROM inbound_events"
        " WHERE user_id = ? ORDER BY id",
        user,
    )


def user_texts_in_tracker(stack: Stack, user: str) -> list[str]:
    import httpx

    answer = httpx.get(f"{stack.rasa_url}/conversations/{user}/tracker", headers=rasa_auth_headers(DEMO_RASA_TOKEN))
    assert answer.status_code == 200, answer.text
    return [event.get("text") for event in answer.json()["events"] if event["event"] == "user"]


def test_a_message_waits_for_the_restarted_action_server_and_is_answered_once(
    messenger: Messenger, outage_stack: Stack
) -> None:
    user = new_user()
    kill_actions(outage_stack)
    assert messenger.say(user, "hola").status_code == 200
    time.sleep(3)
    assert messenger.texts(user) == [], "nothing is said while the action server is down (within the bound)"
    assert [e["status"] for e in events_of(outage_stack, user)] == ["pending"], "the message waits, not done"

    outage_stack.start_actions()
    messenger.wait_for(lambda: len(messenger.texts(user)) >= 2, 60, "the answer after the restart")
    time.sleep(1.5)  # anything sent twice would show up by now
    texts = messenger.texts(user)
    assert texts[0] == AUTOMATION_DISCLOSURE and len(texts) == 2, f"answered once, disclosure first: {texts}"
    assert OUTAGE_TEXT not in texts
    assert [e["status"] for e in events_of(outage_stack, user)] == ["done"]
    assert user_texts_in_tracker(outage_stack, user) == ["hola"], "the waiting left no duplicate in the tracker"


def test_an_outage_longer_than_the_bound_gets_the_honest_reply_and_a_failed_event(
    messenger: Messenger, outage_stack: Stack
) -> None:
    user = new_user()
    kill_actions(outage_stack)
    assert messenger.say(user, "hola").status_code == 200
    messenger.wait_for(lambda: OUTAGE_TEXT in messenger.texts(user), BOUND_SECONDS + 30, "the honest reply")
    assert messenger.say(user, "¿hay alguien?").status_code == 200  # the same outage: failed at once, told once
    messenger.wait_for(lambda: len(events_of(outage_stack, user)) == 2
                       and all(e["status"] == "failed" for e in events_of(outage_stack, user)), 30,
                       "both events failed")
    events = events_of(outage_stack, user)
    assert all("action server unavailable" in (e["last_error"] or "") for e in events), events
    assert "the customer was told" in events[0]["last_error"]
    assert "already told" in events[1]["last_error"]
    assert messenger.texts(user) == [OUTAGE_TEXT], "one honest reply per outage, nothing else"


def test_a_30_second_outage_during_which_messages_arrive(messenger: Messenger, outage_stack: Stack) -> None:
    """The action server is down for 30 s (longer than the bound) while messages keep arriving, then restarted:
    every message ends answered or visibly failed with an honest reply; none is left silent or pending."""
    users = [new_user() for _ in range(4)]
    kill_actions(outage_stack)
    down_at = time.monotonic()
    sent: list[str] = []
    for second in range(0, 30, 5):
        user = users[(second // 5) % len(users)]
        assert messenger.say(user, "hola").status_code == 200
        sent.append(user)
        time.sleep(max(0.0, down_at + second + 5 - time.monotonic()))
    outage_stack.start_actions()
    late = new_user()  # after the restart the bot answers again
    assert messenger.say(late, "hola").status_code == 200
    sent.append(late)

    def finished() -> bool:
        return all(e["status"] in ("done", "failed") for u in set(sent) for e in events_of(outage_stack, u))

    messenger.wait_for(finished, 90, "every message answered or failed")
    for user in set(sent):
        events = events_of(outage_stack, user)
        texts = messenger.texts(user)
        assert len(events) == sent.count(user), f"every message recorded: {events}"
        for event in events:
            if event["status"] == "failed":
                assert "action server unavailable" in event["last_error"], event
                assert OUTAGE_TEXT in texts, f"{user}: a failed message was told honestly: {texts}"
            else:
                assert texts and any(text != OUTAGE_TEXT for text in texts), f"{user}: answered: {texts}"
    assert messenger.texts(late)[0] == AUTOMATION_DISCLOSURE, "back to normal after the restart"
    assert [e["status"] for e in events_of(outage_stack, late)] == ["done"]


# --- the action server dying or hanging in the middle of a turn -------------------------------------------------


def tracker_events(stack: Stack, user: str) -> list[dict[str, Any]]:
    import httpx

    answer = httpx.get(f"{stack.rasa_url}/conversations/{user}/tracker", headers=rasa_auth_headers(DEMO_RASA_TOKEN))
    assert answer.status_code == 200, answer.text
    return list(answer.json()["events"])


def counted_user_turns(stack: Stack, user: str) -> list[str]:
    """The user's messages as the dialogue and the agents see them: reverted turns (`rewind`) dropped."""
    return [item.text for item in transcript_items(tracker_events(stack, user)) if item.author == "user"]


def wait_until_asked(fake_llm: RunningFakeOpenAI, asked_before: int, messenger: Messenger) -> None:
    messenger.wait_for(lambda: len(fake_llm.fake.chat_requests) > asked_before, 60,
                       "the knowledge action calling the (hanging) LLM")


def test_kill_9_of_the_action_server_while_an_action_runs_answers_once(
    messenger: Messenger, outage_stack: Stack, fake_llm: RunningFakeOpenAI
) -> None:
    """kill -9 of the action server while `action_knowledge_answer` is waiting on the LLM, then a restart: the
    turn is reverted and retried, the customer gets exactly one answer for the message, and the dialogue counts
    the message once. Fails on code that lets Rasa swallow the failed call (silence, event `done`), and on code
    whose retry reuses the failed attempt's positional reply keys (the answer deduplicated away against the
    greeting sent in the failed attempt)."""
    user = new_user()
    fake_llm.fake.set_behaviour("hang")
    asked_before = len(fake_llm.fake.chat_requests)
    assert messenger.say(user, UNANSWERABLE).status_code == 200
    wait_until_asked(fake_llm, asked_before, messenger)
    kill_actions(outage_stack)  # mid-call: the action is waiting on the LLM
    fake_llm.fake.set_behaviour("grounded")  # declines: the entries do not answer it
    outage_stack.start_actions()
    messenger.wait_for(lambda: events_of(outage_stack, user)[0]["status"] != "pending", 90, "the message finished")
    time.sleep(1.5)  # anything sent twice would show up by now
    texts = messenger.texts(user)
    events = events_of(outage_stack, user)
    assert [e["status"] for e in events] == ["done"], f"answered after the retry, not failed: {events}"
    assert (events[0]["attempts"] or 0) >= 1, "the killed attempt was counted as a failed one"
    # The fake LLM declines on the retry, which hands off at once (by design): the answer is the handoff's text.
    answers = [text for text in texts if text != AUTOMATION_DISCLOSURE]
    assert len(answers) == 1 and answers[0] != OUTAGE_TEXT, f"exactly one answer for the message: {texts}"
    assert texts[0] == AUTOMATION_DISCLOSURE and texts.count(AUTOMATION_DISCLOSURE) == 1, texts
    assert counted_user_turns(outage_stack, user) == [UNANSWERABLE], "one user turn for it after the revert"
    journal = events_of(outage_stack, user)
    assert journal[0]["reverted_turns"] >= 1, f"the undone turn was counted, so its retry got new keys: {journal}"
    assert repeated_replies(journal, outbox_replies(outage_stack, user)) == {}, (
        "nothing queued more often than once per turn, the undone turn included"
    )
    raw = [event for event in tracker_events(outage_stack, user) if event["event"] in ("user", "rewind")]
    assert [event["event"] for event in raw][-1] == "user" and any(e["event"] == "rewind" for e in raw), (
        "the failed turn was reverted (Rasa's UserUtteranceReverted), then the message counted once"
    )


def test_kill_9_of_the_action_server_mid_burst_every_message_answered_or_visibly_failed(
    messenger: Messenger, outage_stack: Stack, fake_llm: RunningFakeOpenAI
) -> None:
    """Several users write while the action server is killed with actions in flight, then restarted: every
    message ends `done` with an answer or `failed` with the honest reply; none is silent or left pending."""
    users = [new_user() for _ in range(4)]
    fake_llm.fake.set_behaviour("hang")
    asked_before = len(fake_llm.fake.chat_requests)
    for user in users[:2]:  # these two are mid-call at the kill
        assert messenger.say(user, UNANSWERABLE).status_code == 200
    for user in users[2:]:
        assert messenger.say(user, "hola").status_code == 200
    wait_until_asked(fake_llm, asked_before, messenger)
    kill_actions(outage_stack)
    for user in users:  # arriving while it is down
        assert messenger.say(user, "muchas gracias").status_code == 200
    fake_llm.fake.set_behaviour("grounded")
    time.sleep(2)
    outage_stack.start_actions()

    def finished() -> bool:
        return all(e["status"] in ("done", "failed") for user in users for e in events_of(outage_stack, user))

    messenger.wait_for(finished, 120, "every message answered or failed")
    time.sleep(1.5)
    for user in users:
        events = events_of(outage_stack, user)
        texts = messenger.texts(user)
        assert len(events) == 2, f"{user}: both messages recorded: {events}"
        done = [e for e in events if e["status"] == "done"]
        failed = [e for e in events if e["status"] == "failed"]
        assert all("action server unavailable" in (e["last_error"] or "") for e in failed), failed
        if failed:
            assert OUTAGE_TEXT in texts, f"{user}: a failed message was told honestly: {texts}"
        if done:
            assert any(text not in (OUTAGE_TEXT, AUTOMATION_DISCLOSURE) for text in texts), f"{user}: answered {texts}"
        answers = [text for text in texts if text != OUTAGE_TEXT]
        assert len(answers) == len(set(answers)), f"{user}: nothing said twice: {texts}"


class HangingActionServer:
    """Stands in for the action server on its port: `/health` says ok, every other request is accepted and never
    answered (a hung, not dead, server)."""

    def __init__(self, port: int) -> None:
        import socket
        import threading

        self.calls = 0
        self._open: list[socket.socket] = []
        self._sock = socket.create_server(("127.0.0.1", port))
        self._stopping = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import threading

        while not self._stopping:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: Any) -> None:
        with conn:
            request = conn.recv(65536)
            if request.startswith(b"GET /health"):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n"
                             b"Connection: close\r\n\r\n{\"status\": \"ok\"}")
                return
            self.calls += 1
            self._open.append(conn)
            while not self._stopping and conn.recv(65536):
                pass  # never answers; returns when the client hangs up

    def close(self) -> None:
        self._stopping = True
        self._sock.close()


def test_a_hung_action_server_is_bounded_by_the_action_timeout(messenger: Messenger, outage_stack: Stack) -> None:
    """An action server that accepts the call and never answers: each call ends at ACTION_TIMEOUT_SECONDS (not
    Rasa's 300 s), counts as a failed call, is retried, and the message then gets the honest reply and a failed
    event. Fails on code that kept Rasa's 300 s timeout (the message would still be pending minutes later)."""
    user = new_user()
    kill_actions(outage_stack)
    hung = HangingActionServer(outage_stack.ports.actions)
    try:
        assert messenger.say(user, "hola").status_code == 200
        messenger.wait_for(lambda: events_of(outage_stack, user)[0]["status"] != "pending",
                           3 * ACTION_TIMEOUT_SECONDS + 60, "the message given up after three bounded attempts")
    finally:
        hung.close()
    [event] = events_of(outage_stack, user)
    assert event["status"] == "failed", event
    assert f"did not answer within {ACTION_TIMEOUT_SECONDS:g} s" in event["last_error"], event
    assert hung.calls >= 3, f"each of the three attempts called it and was cut by the timeout: {hung.calls}"
    # The event is finished after the reply is queued; the outbox's worker sends it a moment later.
    messenger.wait_for(lambda: OUTAGE_TEXT in messenger.texts(user), 30, "the honest reply sent by the outbox")
    time.sleep(1.0)  # a second copy would show up by now
    assert messenger.texts(user) == [OUTAGE_TEXT], "the honest reply, once"
    assert counted_user_turns(outage_stack, user) == [], "every failed turn was reverted"


# --- a turn that fails outside Rasa's action call (the outbox refusing a write) -----------------------------------


def outbox_replies(stack: Stack, user: str) -> list[dict[str, Any]]:
    return rows_of(
        stack.data_dir / "outbox.sqlite3",
        "SELECT message, idempotency_key, status FROM messages WHERE recipient_id = ? ORDER BY id",
        user,
    )


def test_a_turn_whose_replies_the_outbox_refused_is_not_run_again_and_sends_nothing_twice(
    messenger: Messenger, outage_stack: Stack, fake_llm: RunningFakeOpenAI
) -> None:
    """`MESSENGER_FEEDER=process`: Rasa runs the turn (the model hangs, then the fallback gives up) and answers the
    feeder with its replies; the outbox refuses the feeder's write (its SQLite file held by another writer longer than
    the busy timeout: "database is locked"). Rasa already saved the turn, so the retry must queue the same replies
    again under the same keys, not run the turn a second time: the customer gets the notice and the answer once each,
    Rasa's tracker holds the message once and the model was asked once. Fails on a feeder that retries the whole turn
    (the tracker then holds the message twice, the model is asked twice). With `MESSENGER_FEEDER=rasa` the replies
    are queued from inside the turn and a refused write undoes it: tests/channel/test_processing.py."""
    user = new_user()
    fake_llm.fake.set_behaviour("hang")  # the turn stops in action_knowledge_answer until LLM_TIMEOUT_SECONDS
    asked_before = len(fake_llm.fake.chat_requests)
    assert messenger.say(user, UNANSWERABLE).status_code == 200
    wait_until_asked(fake_llm, asked_before, messenger)
    assert outbox_replies(outage_stack, user) == [], "nothing is queued before Rasa answers the feeder"
    failed_attempt: list[dict[str, Any]] = []
    with closing(sqlite3.connect(str(outage_stack.data_dir / "outbox.sqlite3"), timeout=30,
                                 isolation_level=None)) as holder:
        holder.execute("BEGIN EXCLUSIVE")  # every writer of the outbox now waits, then fails after its busy timeout
        try:
            def first_attempt_failed() -> bool:
                failed_attempt[:] = events_of(outage_stack, user)
                return (failed_attempt[0]["attempts"] or 0) >= 1

            messenger.wait_for(first_attempt_failed, LLM_TIMEOUT_SECONDS + 60,
                               "the feeder failing on the locked outbox when it queues the turn's replies")
        finally:
            holder.execute("ROLLBACK")
    assert "locked" in (failed_attempt[0]["last_error"] or ""), (
        f"the first attempt failed on the outbox write (the generic path, not an action call): {failed_attempt}"
    )
    messenger.wait_for(lambda: events_of(outage_stack, user)[0]["status"] != "pending", 90, "the message finished")
    time.sleep(1.5)  # anything sent twice would show up by now
    texts = messenger.texts(user)
    assert texts.count(AUTOMATION_DISCLOSURE) == 1, f"the notice once: {texts}"
    answers = [text for text in texts if text != AUTOMATION_DISCLOSURE]
    assert texts[0] == AUTOMATION_DISCLOSURE and len(answers) == 1, f"then the answer, once: {texts}"
    journal = events_of(outage_stack, user)
    assert [row["status"] for row in journal] == ["done"] and journal[0]["reverted_turns"] == 0, journal
    queued = outbox_replies(outage_stack, user)
    assert repeated_replies(journal, queued) == {}, f"nothing queued twice under the event's reply keys: {queued}"
    assert counted_user_turns(outage_stack, user) == [UNANSWERABLE], "Rasa ran (and saved) the turn once"
    assert len(fake_llm.fake.chat_requests) - asked_before == 1, "the model was asked once: the turn was not rerun"
