"""Rasa's broker events → the console's live events: parsing, translation, the page directory, staleness, the
paused-conversation hand-over to the handoff service, bad messages, and the reconnect backoff (no broker needed)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from console.rasa_events import (
    BadRasaEvent,
    PageDirectory,
    RasaEventFeed,
    console_event,
    is_stale,
    parse_rasa_event,
    reconnect_delay,
)
from handoff.model import ConsoleEvent

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
PAGE = "100000000000001"


def raw(kind: str = "user", sender: str = "u1", at: datetime = NOW, **fields: Any) -> bytes:
    return json.dumps({"sender_id": sender, "event": kind, "timestamp": at.timestamp(), **fields}).encode()


def user(text: str = "hola", sender: str = "u1", page: str | None = PAGE, **metadata: Any) -> bytes:
    return raw("user", sender, text=text, metadata={**({"page_id": page} if page else {}), **metadata})


def test_a_rasa_event_is_parsed_with_its_time_in_utc() -> None:
    event = parse_rasa_event(user("hola"))
    assert (event.sender_id, event.kind, event.at, event.page_id) == ("u1", "user", NOW, PAGE)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "a JSON list"),
        (json.dumps({"event": "user", "timestamp": 1}).encode(), "no sender_id"),
        (json.dumps({"sender_id": "u", "timestamp": 1}).encode(), "no sender_id or event"),
        (json.dumps({"sender_id": "u", "event": "user", "timestamp": "yesterday"}).encode(), "no valid timestamp"),
        (json.dumps({"sender_id": "u", "event": "user", "timestamp": 1e300}).encode(), "no valid timestamp"),
        (json.dumps({"sender_id": "u", "event": "user", "timestamp": True}).encode(), "no valid timestamp"),
    ],
)
def test_a_body_that_is_not_a_rasa_event_is_refused_saying_why(body: bytes, reason: str) -> None:
    with pytest.raises(BadRasaEvent, match=reason):
        parse_rasa_event(body)


def test_user_and_bot_messages_become_live_messages_of_the_conversation() -> None:
    shown = console_event(parse_rasa_event(user("/request_human", shown_text="Hablar con un agente")), PAGE)
    assert shown is not None
    assert (shown.kind, shown.conversation_id, shown.at) == ("user_message", f"{PAGE}:u1", NOW)
    assert shown.data["text"] == "Hablar con un agente"  # what the user saw, as in the transcript
    assert shown.data["source"] == "rasa"
    bot = console_event(parse_rasa_event(raw("bot", text="¡Hola!", data={"buttons": [{"title": "Sí"}]})), PAGE)
    assert bot is not None and (bot.kind, bot.data["text"], bot.data["author"]) == ("bot_message", "¡Hola!", "bot")
    assert bot.data["details"] == {"buttons": [{"title": "Sí"}]}


def test_pauses_and_resumes_are_told_and_everything_else_is_not() -> None:
    paused = console_event(parse_rasa_event(raw("pause")), PAGE)
    resumed = console_event(parse_rasa_event(raw("resume")), PAGE)
    assert paused is not None and resumed is not None
    assert (paused.kind, resumed.kind, paused.data["by"]) == ("paused", "resumed", "rasa")
    for kind in ("action", "slot", "session_started", "user_featurization", "rewind"):
        assert console_event(parse_rasa_event(raw(kind)), PAGE) is None


def test_an_agents_reply_is_left_to_the_handoff_service() -> None:
    agent = raw("bot", text="Le ayudo yo", metadata={"agent": "ana", "outbox_id": 7})
    assert console_event(parse_rasa_event(agent), PAGE) is None


def test_staleness_is_by_the_events_own_time() -> None:
    event = parse_rasa_event(user())
    assert not is_stale(event, NOW + timedelta(minutes=9))
    assert is_stale(event, NOW + timedelta(minutes=11))


def test_the_reconnect_delay_doubles_up_to_its_cap_and_never_overflows() -> None:
    assert [reconnect_delay(n) for n in (1, 2, 3, 4, 5, 6, 7)] == [1, 2, 4, 8, 16, 30, 30]
    assert reconnect_delay(10_000) == 30
    assert reconnect_delay(0) == 1


def test_the_page_directory_learns_from_user_messages_and_stays_bounded() -> None:
    directory = PageDirectory(["111", "222"], capacity=3)
    for number in range(5):
        directory.learn(parse_rasa_event(user(sender=f"u{number}", page="222")))
    assert len(directory) == 3
    assert directory.page_of("u4") == "222"
    assert directory.page_of("u0") is None  # forgotten, and two pages: no guess
    assert PageDirectory(["111"]).page_of("anyone") == "111"  # one page: it is that one


class Feed:
    def __init__(self, paused: set[str] | None = None) -> None:
        self.published: list[ConsoleEvent] = []
        self.paused = paused or set()
        self.feed = RasaEventFeed("amqp://unused", "x", "q", self.published.append, self.is_paused, [PAGE, "222"],
                                  clock=lambda: NOW)

    async def is_paused(self, page_id: str, user_id: str) -> bool:
        if user_id == "broken":
            raise RuntimeError("the store is down")
        return f"{page_id}:{user_id}" in self.paused


async def test_the_feed_publishes_a_conversation_in_order_with_the_bots_page_from_the_users_message() -> None:
    feed = Feed()
    for body in (user("hola"), raw("action", name="utter_greet"), raw("bot", text="¡Hola!"), user("precio")):
        await feed.feed.handle(body)
    assert [(e.kind, e.data["text"]) for e in feed.published] == [
        ("user_message", "hola"), ("bot_message", "¡Hola!"), ("user_message", "precio")]
    assert {e.conversation_id for e in feed.published} == {f"{PAGE}:u1"}
    assert (feed.feed.counts.received, feed.feed.counts.published, feed.feed.counts.skipped) == (4, 3, 1)


async def test_a_bot_message_of_an_unknown_sender_on_several_pages_is_skipped() -> None:
    feed = Feed()
    assert await feed.feed.handle(raw("bot", sender="stranger", text="hola")) is None
    assert feed.published == [] and feed.feed.counts.skipped == 1


async def test_a_message_written_while_paused_is_left_to_the_handoff_service() -> None:
    feed = Feed(paused={f"{PAGE}:u1"})
    await feed.feed.handle(user("¿sigue ahí?"))
    await feed.feed.handle(raw("pause", sender="u1"))
    assert [e.kind for e in feed.published] == ["paused"]


async def test_a_backlog_older_than_the_live_view_is_acknowledged_unseen() -> None:
    feed = Feed()
    await feed.feed.handle(raw("bot", at=NOW - timedelta(hours=1), text="viejo", sender="u1",
                               metadata={"page_id": PAGE}))
    assert feed.published == [] and feed.feed.counts.skipped == 1


async def test_bad_messages_and_store_errors_never_stop_the_feed() -> None:
    feed = Feed()
    assert await feed.feed.handle(b"garbage") is None
    assert await feed.feed.handle(user("hola", sender="broken")) is None  # the paused check failed
    shown = await feed.feed.handle(user("sigo aquí"))
    assert shown is not None and shown.data["text"] == "sigo aquí"
    assert feed.feed.counts.bad == 2


async def test_an_unreachable_broker_is_retried_with_a_growing_delay_that_restarts_after_a_connection() -> None:
    delays: list[float] = []
    attempts = 0

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        if len(delays) == 6:
            raise asyncio.CancelledError

    feed = RasaEventFeed("amqp://unused", "x", "q", lambda _e: None, Feed().is_paused, [PAGE], sleep=sleep)

    async def consume() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 4:
            feed._was_connected = True  # connected, then lost: the backoff starts again
        raise ConnectionError("refused")

    feed._consume = consume  # type: ignore[method-assign]
    with pytest.raises(asyncio.CancelledError):
        await feed.run()
    assert delays == [1, 2, 4, 1, 2, 4]
