"""A dead action server (kill -9) never means silence: messages wait for it (bounded), then the customer is told.

On the old code Rasa swallowed the failed action call ("Encountered an exception while running action"), the
connector marked the event done and the customer got nothing: each test below fails there. One stack for the
module, with a short bound (ACTION_OUTAGE_SECONDS) so the tests stay quick.
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
from bot.rasa_api import rasa_auth_headers
from bot.settings import DEMO_RASA_TOKEN
from bot.stack import Stack
from connectors.outage import OUTAGE_TEXT
from tests.conftest import require_or_skip
from tests.support.stack import Messenger, rasa_available, start_stack

BOUND_SECONDS = 12.0


@pytest.fixture(scope="module")
def outage_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_or_skip(rasa_available(), "the Rasa environment (.venv-rasa; run `make install`)")
    running = start_stack(
        Path(tmp_path_factory.mktemp("outage-stack")), extra_env={"ACTION_OUTAGE_SECONDS": str(BOUND_SECONDS)}
    )
    yield running
    running.stop()


@pytest.fixture
def messenger(outage_stack: Stack) -> Iterator[Messenger]:
    client = Messenger(outage_stack)
    yield client
    if "actions" not in outage_stack.processes:  # leave the action server up for the next test
        outage_stack.start_actions()
    client.http.close()


def new_user() -> str:
    return f"psid-{uuid.uuid4().hex[:12]}"


def kill_actions(stack: Stack) -> None:
    process = stack.processes.pop("actions")
    process.send_signal(signal.SIGKILL)
    process.wait()


def events_of(stack: Stack, user: str) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(str(stack.data_dir / "messenger.sqlite3"), timeout=10)) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT status, attempts, last_error FROM inbound_events WHERE user_id = ? ORDER BY id", (user,)
        ).fetchall()
    return [dict(row) for row in rows]


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
