"""The webhook process (connectors/webhook_server.py) in the real stack: Meta's deliveries go to it, it records them
in the journal and answers; Rasa's channel is fed from the journal (its feeder claims the events).

- one user's burst, one delivery per message as Meta sends them, is answered in order;
- a redelivery is handled once;
- the webhook process killed (SIGKILL) right after its 200: the event was durable, Rasa still answers it, and the
  supervisor-style restart of the webhook process serves again.
Its body cap (413 before reading a 30 MB declaration, a chunked body cut) is tested with Sanic's in
tests/integration/test_webhook_limits.py.
"""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing
from typing import Any

import httpx

from bot.stack import Stack
from sandbox import simulate
from tests.support.stack import PAGE_ID, Messenger, response_texts


def new_user() -> str:
    return f"psid-wp-{uuid.uuid4().hex[:10]}"


def journal(stack: Stack, user: str) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(str(stack.data_dir / "messenger.sqlite3"), timeout=10)) as conn:
        return conn.execute(
            "SELECT kind, status FROM inbound_events WHERE user_id = ? ORDER BY id", (user,)
        ).fetchall()


def kinds(texts: list[str]) -> list[str]:
    """Each reply named by the response it is a variant of (greet, thanks, goodbye), others left out."""
    names = {name: response_texts(f"utter_{name}") for name in ("greet", "thanks", "goodbye")}
    return [next(name for name, variants in names.items() if text in variants)
            for text in texts if any(text in variants for variants in names.values())]


def test_the_stack_gives_meta_the_webhook_process(stack: Stack) -> None:
    assert "webhook" in stack.processes
    assert stack.webhook_url.startswith(f"http://127.0.0.1:{stack.ports.webhook}/")
    assert httpx.get(stack.webhook_base_url + "/health", timeout=10).json()["status"] == "ok"
    assert stack.ports.webhook != stack.ports.rasa


def test_one_users_burst_through_the_webhook_process_is_answered_in_order(messenger: Messenger, stack: Stack) -> None:
    user = new_user()
    said = ["hola", "muchas gracias", "chao"]
    for text in said:  # one delivery each, back to back, as Meta sends a user's quick messages
        assert messenger.say(user, text).status_code == 200
    messenger.wait_for(lambda: [status for _kind, status in journal(stack, user)] == ["done"] * 3, 90,
                       "the three messages processed")
    messenger.wait_for(lambda: len(kinds(messenger.texts(user))) >= 3, 30, "three answers")
    assert kinds(messenger.texts(user)) == ["greet", "thanks", "goodbye"], messenger.texts(user)


def test_a_redelivery_through_the_webhook_process_is_handled_once(messenger: Messenger, stack: Stack) -> None:
    user = new_user()
    body = simulate.webhook_body(PAGE_ID, [simulate.text_message(PAGE_ID, user, "hola", mid=f"m.{user}")])
    raw, headers = simulate.signed_request(body, messenger.app_secret)
    for _ in range(3):  # Meta redelivers on a slow answer: the same mid
        assert messenger.deliver_raw(raw, headers).status_code == 200
    messenger.wait_for_text(user, response_texts("utter_greet"))
    messenger.wait_for(lambda: journal(stack, user) == [("message", "done")], 30, "one event, done")
    assert messenger.deliver_raw(raw, headers).status_code == 200  # after processing too
    texts = messenger.texts(user)
    assert sum(text in response_texts("utter_greet") for text in texts) == 1, texts
    assert journal(stack, user) == [("message", "done")]


def test_an_event_acknowledged_just_before_the_webhook_process_is_killed_is_still_answered(
    messenger: Messenger, stack: Stack
) -> None:
    user = new_user()
    answer = messenger.say(user, "hola")
    assert answer.status_code == 200
    stack.stop_process("webhook", kill=True)  # SIGKILL right after the 200: nothing may rest in its memory
    try:
        messenger.wait_for_text(user, response_texts("utter_greet"), timeout=90)
        assert [status for _kind, status in journal(stack, user)] == ["done"]
    finally:
        stack.start_webhook()
    second: Any = messenger.say(user, "muchas gracias")
    assert second.status_code == 200, "the restarted webhook process serves"
    messenger.wait_for_text(user, response_texts("utter_thanks"), timeout=90)

