"""The scale profile on this machine's PostgreSQL, Redis and RabbitMQ: the whole stack with two Rasa instances (SQL
tracker store, Redis lock store, Pika broker), the journal and the stores on PostgreSQL, two standalone outbox
workers. One user's messages are processed by both instances with the replies in order and Rasa's tracker intact; a
pause from the app waits for a turn another instance is running; Rasa's events reach the console's live stream.

Each test's corner of the services is its own (tests/support/scale.py: schemas, exchange, queue, key prefix)."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.profile import feeder_names
from bot.stack import Stack
from core.settings import SANDBOX_PAGE_ID
from tests.conftest import require_or_skip
from tests.support.console_client import ConsoleSession, EventListener
from tests.support.scale import (
    ScaleNames,
    StackWatcher,
    journal_rows,
    journal_state,
    require_scale_services,
    scale_names,
    tracker_events,
)
from tests.support.stack import Messenger, rasa_available, response_texts, start_stack

GREET, THANKS = response_texts("utter_greet"), response_texts("utter_thanks")


@pytest.fixture(scope="module")
def names() -> Iterator[ScaleNames]:
    require_scale_services()
    require_or_skip(rasa_available(), "the Rasa environment (.venv-rasa; run `make install`)")
    with scale_names() as made:
        yield made


@pytest.fixture(scope="module")
def scale_stack(names: ScaleNames, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {**names.env(rasa_instances=2, outbox_workers=2),
           "MESSENGER_CLAIM_LEASE_SECONDS": "5"}  # a stopped instance's claim is not held for long
    stack = start_stack(Path(tmp_path_factory.mktemp("scale")), env, profile="scale", rasa_instances=2)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def messenger(scale_stack: Stack) -> Iterator[Messenger]:
    client = Messenger(scale_stack)
    yield client
    client.http.close()


def new_user() -> str:
    return f"scale-{uuid.uuid4().hex[:10]}"


def instance(stack: Stack, rasa: str) -> list[str]:
    """One instance's processes: the Rasa and, with MESSENGER_FEEDER=process (the default), the feeder beside it."""
    (feeder,) = feeder_names([rasa])
    return [rasa, *([feeder] if feeder in stack.processes else [])]


def claim_owner(stack: Stack, rasa: str) -> str:
    """Who claims for that instance in the journal: its feeder, or Rasa itself (MESSENGER_FEEDER=rasa)."""
    return instance(stack, rasa)[-1]


@contextmanager
def stopped(stack: Stack, name: str) -> Iterator[None]:
    """Freeze one instance (SIGSTOP: its Rasa and its feeder), so the other one must take what arrives; thaw it
    after."""
    names = instance(stack, name)
    for process in names:
        os.killpg(stack.processes[process].pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for process in names:
            os.killpg(stack.processes[process].pid, signal.SIGCONT)


def kinds_of_replies(texts: list[str]) -> list[str]:
    """The greetings and thanks among a user's replies, in the order they were sent."""
    return ["greet" if text in GREET else "thanks" for text in texts if text in GREET or text in THANKS]


def check_tracker(names: ScaleNames, user: str, sent: list[str]) -> list[dict[str, Any]]:
    """Rasa's stored events: each message once, in the order sent, each turn whole (no user message, pause or resume
    before the previous turn ended with action_listen)."""
    events = tracker_events(names, user)
    users = [event for event in events if event["event"] == "user"]
    assert [event["text"] for event in users] == sent
    message_ids = [event.get("message_id") for event in users]
    assert len(set(message_ids)) == len(message_ids), "a message was stored twice"
    in_turn = paused = False
    for event in events:
        if event["event"] == "user":
            assert not in_turn, "a message started a turn before the previous one ended: interleaved turns"
            in_turn = not paused  # while paused Rasa stores the message and predicts nothing: no turn
        elif event["event"] == "action" and event.get("name") == "action_listen":
            in_turn = False
        elif event["event"] in ("pause", "resume"):
            assert not in_turn, f"a {event['event']} landed inside a turn: Rasa's lock did not hold"
            paused = event["event"] == "pause"
    # A session's start events are stamped after the message that opened it; the messages themselves never go back.
    times = [event["timestamp"] for event in users]
    assert times == sorted(times), "Rasa's user messages are out of time order"
    return events


def test_one_users_messages_alternate_between_the_instances_in_order(
    scale_stack: Stack, names: ScaleNames, messenger: Messenger
) -> None:
    user = new_user()
    sent: list[str] = []
    with StackWatcher(names) as watcher:
        for number in range(20):
            text = "hola" if number % 2 == 0 else "muchas gracias"
            other = scale_stack.rasa_names[(number + 1) % 2]  # this one sleeps: the other instance must answer
            with stopped(scale_stack, other):
                assert messenger.say(user, text).status_code == 200
                sent.append(text)
                try:
                    messenger.wait_for(lambda: len(kinds_of_replies(messenger.texts(user))) == len(sent), 90,
                                       f"the reply to message {number + 1}")
                except AssertionError as exc:  # what the journal and its claims say, for whoever reads the failure
                    raise AssertionError(f"{exc}; {journal_state(names, user)}") from exc
                # The reply can be out (the outbox worker sent it) before the instance wrote the event's verdict:
                # freezing it in that gap would leave the event pending under its claim, and the other instance
                # would run the turn again once the lease ran out (a message stored twice in Rasa's tracker).
                messenger.wait_for(lambda: [s for _i, s in journal_rows(names, user)] == ["done"] * len(sent), 90,
                                   f"message {number + 1} done in the journal")
    assert kinds_of_replies(messenger.texts(user)) == ["greet", "thanks"] * 10
    assert watcher.owners[f"{SANDBOX_PAGE_ID}:{user}"] == {claim_owner(scale_stack, name)
                                                         for name in ("rasa", "rasa-2")}, "the journal's claims' owners"
    check_tracker(names, user, sent)
    rows = journal_rows(names, user)
    assert [status for _id, status in rows] == ["done"] * 20  # the journal on PostgreSQL, each event once


def test_a_burst_on_both_instances_is_answered_in_order_under_the_redis_lock(
    scale_stack: Stack, names: ScaleNames, messenger: Messenger
) -> None:
    user = new_user()
    sent = ["hola" if number % 2 == 0 else "muchas gracias" for number in range(20)]
    with StackWatcher(names) as watcher:
        for text in sent:
            assert messenger.say(user, text).status_code == 200
        messenger.wait_for(lambda: len(kinds_of_replies(messenger.texts(user))) == 20, 180, "20 replies")
    assert kinds_of_replies(messenger.texts(user)) == ["greet", "thanks"] * 10
    check_tracker(names, user, sent)
    assert f"{names.key_prefix}:lock:{user}" in watcher.lock_keys, "Rasa's Redis lock store was not used"


def test_a_pause_from_the_app_waits_for_the_turn_another_instance_runs(
    scale_stack: Stack, names: ScaleNames, messenger: Messenger
) -> None:
    user = new_user()
    conversation_id = f"{SANDBOX_PAGE_ID}:{user}"
    agent = ConsoleSession(scale_stack.app_url, "agente")
    sent = ["hola" if number % 2 == 0 else "muchas gracias" for number in range(20)]
    try:
        with StackWatcher(names) as watcher:
            with stopped(scale_stack, "rasa"):  # rasa-2 claims the conversation and starts its turns
                for text in sent:
                    assert messenger.say(user, text).status_code == 200
                second = claim_owner(scale_stack, "rasa-2")
                messenger.wait_for(lambda: second in watcher.owners.get(conversation_id, set()), 60,
                                   "rasa-2's claim")
                messenger.wait_for(lambda: f"{names.key_prefix}:lock:{user}" in watcher.lock_keys, 60,
                                   "a turn under Rasa's lock")
            # The app's Rasa API calls go to "rasa", whose append waits for rasa-2's turn to release the lock.
            answer = agent.post(f"/api/console/conversations/{conversation_id}/pause")
            assert answer.status_code == 200, answer.text
            messenger.wait_for(lambda: [s for _i, s in journal_rows(names, user)] == ["done"] * len(sent), 120,
                               "every message handled")
        events = check_tracker(names, user, sent)
        kinds = [event["event"] for event in events]
        assert kinds.count("pause") == 1
        answered = sum(1 for event in events[:kinds.index("pause")] if event["event"] == "user")
        assert 1 <= answered < len(sent), "the pause did not land while rasa-2 worked through the messages"
        summary = [(e["event"], e.get("text") or e.get("name")) for e in events]
        # Nothing predicted after the pause, whichever instance took the later messages; replies only to turns
        # before it (a reply still queued when the pause landed is cancelled: a person is answering now).
        assert "bot" not in kinds[kinds.index("pause"):], summary
        assert len(kinds_of_replies(messenger.texts(user))) <= answered, summary
    finally:
        agent.close()


def test_rasas_event_broker_feeds_the_consoles_live_stream(scale_stack: Stack, messenger: Messenger) -> None:
    user = new_user()
    conversation_id = f"{SANDBOX_PAGE_ID}:{user}"
    agent = ConsoleSession(scale_stack.app_url, "agente")
    live = EventListener(agent).start()
    try:
        assert messenger.say(user, "hola").status_code == 200
        said = live.wait_for(lambda e: e.kind == "user_message" and e.conversation_id == conversation_id, 90,
                             "the user's message from Rasa's broker")
        answered = live.wait_for(lambda e: e.kind == "bot_message" and e.conversation_id == conversation_id, 90,
                                 "the bot's reply from Rasa's broker")
        assert (said.data["text"], said.data["source"]) == ("hola", "rasa")
        assert answered.data["source"] == "rasa" and answered.data["text"]
    finally:
        live.stop()
        agent.close()
