"""At-least-once without duplicates: kill -9 of Rasa after a turn already put its first reply in the outbox, then the
restart replays the turn, and the customer still gets every reply exactly once.

Why it holds: the webhook answers 200 once the event is in the ingest journal (`messenger.sqlite3`,
`inbound_events`, `pending`); Rasa saves the conversation only at the end of a turn, so after a crash the restarted
Rasa runs the whole turn again from the journal, session start and its disclosure included. Every reply of the turn
is queued under a key derived from the event, `reply:<page>:<dedup key>:<n>` (connectors/messenger.py
`MessengerOutput._idempotency_key`, `reply_key_prefix`): the replayed turn's n-th reply has the same key as the first
run's, and the outbox keeps one message per key, so what the first run queued is not queued, nor sent, again.

With `MESSENGER_FEEDER=process` (the default) the turn's replies reach the outbox only with Rasa's answer: a kill
mid-turn leaves nothing queued, the feeder waits for the restarted Rasa and runs the turn again, and each reply is
queued once (the second test). The first test pins `MESSENGER_FEEDER=rasa`, where the channel queues replies from
inside the turn, so a kill can come between two of them.

One stack per mode (its own), with the GPT fallback pointed at a local OpenAI-compatible fake
(`tests/support/fake_openai.py`) that hangs: the turn queues the disclosure (reply 1), then waits on the model for
the answer (reply 2), and Rasa is killed right there. Rasa is restarted the way `bot run` does it, by the stack's
`Supervisor` (bot/stack.py), not by the test.
"""

from __future__ import annotations

import collections
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from actions.session import AUTOMATION_DISCLOSURE
from bot.stack import Supervisor
from tests.conftest import require_or_skip
from tests.integration.faults.support import (
    StackFiles,
    event_reply_prefix,
    kill_9,
    repeated_replies,
    sandbox_sent,
    sqlite_rows,
    wait_until,
)
from tests.support.fake_openai import FAKE_API_KEY, RunningFakeOpenAI, serve_fake_openai
from tests.support.stack import Messenger, rasa_available, start_stack

# Reaches the GPT fallback (nothing in the demo matrix answers it); the fake answers it from the matrix's support
# entry once it stops hanging (tests/integration/test_knowledge_flow.py uses the same pair).
UNANSWERABLE = "¿tienen sucursal en Loja con parqueadero para camiones?"
SUPPORT_ANSWER = "Escríbanos a soporte@ecuabots.com y el equipo de soporte le ayudará."
# The model hangs this long at most (the whole budget of the fallback, LLM_TIMEOUT_SECONDS): Rasa is killed within it.
LLM_BUDGET_SECONDS = 30
# The second customer's disclosure meets a rate limit whose Retry-After keeps it `pending` past the kill.
RETRY_AFTER_SECONDS = 20


@dataclass
class ReplayStack(StackFiles):
    openai: RunningFakeOpenAI
    supervisor: Supervisor
    said: list[str]
    feeder: str  # MESSENGER_FEEDER


@pytest.fixture(scope="module", params=["rasa", "process"])
def replay(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplayStack]:
    require_or_skip(rasa_available(), "the Rasa environment (.venv-rasa; run `make install`)")
    with serve_fake_openai() as openai:
        env = {
            "LLM_API_KEY": FAKE_API_KEY,
            "LLM_BASE_URL": openai.base_url,
            "LLM_TIMEOUT_SECONDS": str(LLM_BUDGET_SECONDS),
            "MESSENGER_FEEDER": request.param,
        }
        stack = start_stack(Path(tmp_path_factory.mktemp("replay-stack")), extra_env=env)
        said: list[str] = []
        supervisor = Supervisor(stack, say=said.append)
        stopping = threading.Event()
        watcher = threading.Thread(target=supervisor.run, args=(stopping.is_set, 0.2), daemon=True)
        watcher.start()
        try:
            yield ReplayStack(stack, openai, supervisor, said, request.param)
        finally:
            stopping.set()
            watcher.join(timeout=10)
            stack.stop()


def new_user(tag: str) -> str:
    return f"psid-{tag}-{uuid.uuid4().hex[:10]}"


def event_of(replay: ReplayStack, user: str) -> Any | None:
    rows = sqlite_rows(
        replay.journal,
        "SELECT page_id, dedup_key, status, attempts, last_error, reverted_turns FROM inbound_events "
        "WHERE user_id = ? AND kind = 'message' ORDER BY id",
        [user],
    )
    assert len(rows) <= 1, f"one message from {user}, journaled once ({len(rows)})"
    return rows[0] if rows else None


def replies_of(replay: ReplayStack, event: Any) -> list[Any]:
    """The outbox messages queued under the reply keys of `event`, oldest first."""
    prefix = event_reply_prefix(event["page_id"], event["dedup_key"])
    return sqlite_rows(
        replay.outbox,
        "SELECT idempotency_key, message, status, attempts, reason_code FROM messages "
        "WHERE substr(idempotency_key, 1, ?) = ? ORDER BY id",
        [len(prefix), prefix],
    )


def text(row: Any) -> str:
    return json.loads(row["message"]).get("text", "")


def texts_sent(replay: ReplayStack, user: str) -> list[str]:
    """Every text the Send API accepted for `user`, in order, repeats included."""
    with httpx.Client(timeout=30) as http:
        return [item["body"]["message"].get("text", "") for item in sandbox_sent(http, replay.stack.app_url, user)]


def reply_key(event: Any, n: int) -> str:
    return f"{event_reply_prefix(event['page_id'], event['dedup_key'])}{n}"


@contextmanager
def asked_while_the_model_hangs(replay: ReplayStack, users: tuple[str, ...]) -> Iterator[None]:
    """Each user asks the question only the model can answer, with the model hanging; after the block it answers
    again (from its queue, then grounded)."""
    messenger = Messenger(replay.stack)
    replay.openai.fake.set_behaviour("hang")
    try:
        for user in users:
            assert messenger.say(user, UNANSWERABLE).status_code == 200
        yield
    finally:
        replay.openai.fake.set_behaviour("grounded")
        messenger.http.close()


def kill_rasa(replay: ReplayStack) -> Any:
    """kill -9 of Rasa mid-turn (it stays in the stack's processes: the supervisor sees it exit, as under `bot run`),
    with the answers of the replayed turns queued (the killed turns' calls still hang, until their budget ends)."""
    rasa = replay.stack.processes["rasa"]
    kill_9(rasa)
    replay.openai.fake.queue_reply(SUPPORT_ANSWER)
    replay.openai.fake.queue_reply(SUPPORT_ANSWER)
    return rasa


def wait_for_the_replay(replay: ReplayStack, users: tuple[str, ...], killed: Any) -> None:
    """The supervisor's restart of Rasa, then both events finished with their replies settled."""
    stack = replay.stack
    wait_until(lambda: stack.processes["rasa"] is not killed and stack.is_healthy("rasa"), 300,
               "the supervisor restarting Rasa", 0.5)

    def settled() -> bool:
        current = [event_of(replay, user) for user in users]
        return all(
            event is not None and event["status"] in ("done", "failed")
            and bool(replies_of(replay, event))
            and all(row["status"] not in ("pending", "sending") for row in replies_of(replay, event))
            for event in current
        )

    wait_until(settled, 240, "both replayed turns finished and their replies settled", 0.5)


def test_kill_9_of_rasa_mid_turn_each_reply_reaches_the_customer_exactly_once(replay: ReplayStack) -> None:
    """Two new customers ask a question the model must answer, and the model hangs. Each turn has queued its first
    reply, the automation disclosure (key `…:1`): the first customer's is already sent, the second's is still
    `pending` (Graph rate-limited it, Retry-After 20 s). Rasa is killed (kill -9) with both events `pending` in the
    journal and both turns waiting on the model; the supervisor restarts it and the journal replays both turns.

    The verdict: each event ends `done`; the outbox holds exactly the keys `…:1` (the disclosure) and `…:2` (the
    answer), one message each, both sent; the Send API accepted the disclosure once and the answer once, in that
    order; and the model was asked twice (the turn really ran again, so the replay queued the disclosure again, and
    the key made that a no-op).

    What breaks it: reply keys not derived from the event and the reply's position in the turn. Random per attempt
    (`…:<uuid4>:<n>`): the replayed session start queues the disclosure as a new message and each customer gets it
    twice (checked: the assertion on `texts_sent` fails with the disclosure twice). No key at all: the replies can no
    longer be found by the event's keys and the wait before the kill times out (the replay would queue the
    disclosure again, as with random keys). A worker that re-sent
    a message already `sent`, or the app's worker and Rasa's both sending the pending one, shows up as a repeat in
    `texts_sent` too."""
    if replay.feeder != "rasa":
        pytest.skip("replies queued from inside a turn: MESSENGER_FEEDER=rasa (process mode: the next test)")
    stack, fake = replay.stack, replay.openai.fake
    sent_first, pending_first = new_user("sent"), new_user("pending")
    users = (sent_first, pending_first)
    asked_before = len(fake.chat_requests)
    with httpx.Client(timeout=30) as http:
        rate_limit = {"code": 4, "count": 5, "retry_after_seconds": RETRY_AFTER_SECONDS, "recipient_id": pending_first}
        assert http.post(stack.app_url + "/sandbox/failures", json=rate_limit).status_code == 200
    with asked_while_the_model_hangs(replay, users):
        def first_reply_queued_and_turns_waiting() -> bool:
            events = [event_of(replay, user) for user in users]
            if any(event is None or event["status"] != "pending" for event in events):
                return False
            first, second = (replies_of(replay, event) for event in events)
            return (
                len(fake.chat_requests) - asked_before >= 2  # both turns wait on the model
                and [row["status"] for row in first] == ["sent"]
                and texts_sent(replay, sent_first) == [AUTOMATION_DISCLOSURE]
                and [(row["status"], row["reason_code"]) for row in second] == [("pending", "graph_4")]
            )

        wait_until(first_reply_queued_and_turns_waiting, 60, "the disclosures queued and both turns waiting", 0.05)
        rasa = kill_rasa(replay)
    for user in users:
        event = event_of(replay, user)
        assert event is not None and event["status"] == "pending", f"{user}: killed mid-turn, the event unfinished"
        assert [text(row) for row in replies_of(replay, event)] == [AUTOMATION_DISCLOSURE], (
            f"{user}: at the kill, the outbox held the turn's first reply only"
        )
    with httpx.Client(timeout=30) as http:  # Graph recovers
        http.delete(stack.app_url + "/sandbox/failures").raise_for_status()
    wait_for_the_replay(replay, users, rasa)

    assert any("Rasa exited with -9" in line for line in replay.said), replay.said
    assert replay.supervisor.restarts["rasa"] == 1, "Rasa was restarted once, by the supervisor"
    assert len(fake.chat_requests) - asked_before == 4, (
        "the model was asked twice per customer: the killed turn (hung) and the replayed turn (answered)"
    )
    for user in users:
        event = event_of(replay, user)
        assert event is not None
        # `attempts` counts attempts that reached a verdict (`finish` counts the one that succeeded).
        assert (event["status"], event["attempts"], event["last_error"], event["reverted_turns"]) == (
            "done", 1, None, 0
        ), f"{user}: the replayed turn is done; the killed one is neither a failure nor a revert ({dict(event)})"
        assert texts_sent(replay, user) == [AUTOMATION_DISCLOSURE, SUPPORT_ANSWER], (
            f"{user}: the Send API accepted each reply exactly once, in order"
        )
        replies = replies_of(replay, event)
        assert [(row["idempotency_key"], text(row), row["status"]) for row in replies] == [
            (reply_key(event, 1), AUTOMATION_DISCLOSURE, "sent"),
            (reply_key(event, 2), SUPPORT_ANSWER, "sent"),
        ], f"{user}: one message per key, the disclosure and the full answer, both sent"
        assert not repeated_replies([event], replies), f"{user}: nothing queued twice under the event's keys"
    tracker_rows = sqlite_rows(
        stack.data_dir / "rasa_tracker.sqlite3",
        "SELECT sender_id, type_name, data FROM events WHERE sender_id IN (?, ?) ORDER BY id",
        list(users),
    )
    said_by_bot = collections.Counter(
        (row["sender_id"], json.loads(row["data"]).get("text")) for row in tracker_rows if row["type_name"] == "bot"
    )
    for user in users:
        assert said_by_bot[(user, AUTOMATION_DISCLOSURE)] == 1 and said_by_bot[(user, SUPPORT_ANSWER)] == 1, (
            f"{user}: the conversation Rasa saved holds the replayed turn once (nothing of the killed turn was saved)"
        )


def test_kill_9_of_rasa_mid_turn_with_the_feeder_process_replays_each_reply_once(replay: ReplayStack) -> None:
    """`MESSENGER_FEEDER=process`: two new customers ask a question the model must answer, and the model hangs, so
    both turns wait inside Rasa while the feeder waits for their answers, with nothing queued (the replies come with
    the answer). Rasa is killed (kill -9); the feeder's calls fail, it waits for the supervisor's restart without
    spending the events' attempts, and runs both turns again. The verdict: each event `done` at its first counted
    attempt, the disclosure and the answer each queued once under the event's keys and sent once, in order.

    What breaks it: a feeder that counts Rasa's absence as failed attempts (the events end `failed` within seconds,
    long before the restart), or one that queues a turn's replies under new keys on the rerun."""
    if replay.feeder != "process":
        pytest.skip("the feeder process's behaviour: MESSENGER_FEEDER=process")
    fake = replay.openai.fake
    users = (new_user("fed-a"), new_user("fed-b"))
    asked_before = len(fake.chat_requests)
    with asked_while_the_model_hangs(replay, users):
        def both_turns_waiting() -> bool:
            events = [event_of(replay, user) for user in users]
            return (len(fake.chat_requests) - asked_before >= 2
                    and all(event is not None and event["status"] == "pending" for event in events))

        wait_until(both_turns_waiting, 60, "both turns waiting on the model", 0.05)
        for user in users:
            event = event_of(replay, user)
            assert event is not None and replies_of(replay, event) == [], "nothing queued before Rasa answers"
        rasa = kill_rasa(replay)
    wait_for_the_replay(replay, users, rasa)
    assert replay.supervisor.restarts["rasa"] == 1 and replay.supervisor.restarts.get("feeder", 0) == 0
    for user in users:
        event = event_of(replay, user)
        assert event is not None
        assert (event["status"], event["attempts"], event["last_error"], event["reverted_turns"]) == (
            "done", 1, None, 0
        ), f"{user}: Rasa's absence spent no attempt ({dict(event)})"
        assert texts_sent(replay, user) == [AUTOMATION_DISCLOSURE, SUPPORT_ANSWER]
        replies = replies_of(replay, event)
        assert [(row["idempotency_key"], text(row), row["status"]) for row in replies] == [
            (reply_key(event, 1), AUTOMATION_DISCLOSURE, "sent"),
            (reply_key(event, 2), SUPPORT_ANSWER, "sent"),
        ]
