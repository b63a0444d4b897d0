"""Human handoff without services: business hours, the reply window, live updates, and the service itself over
its fakes (Rasa's trackers in memory, the handoff store's SQL on `:memory:`, the outbox's in-memory store)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from core.business_hours import BusinessHoursError, is_within_business_hours, parse_business_hours
from core.settings import PAGE_INBOX_APP_ID, SANDBOX_PAGE_ID, Settings, SettingsError, load_settings
from handoff.model import (
    ConsoleEvent,
    ConversationNotFound,
    ConversationState,
    PauseReason,
    RasaUnavailable,
    ReplyRefused,
    conversation_id_of,
)
from handoff.pubsub import Broadcaster
from handoff.rasa_api import InMemoryRasaTrackers
from handoff.service import (
    AUTO_RESUME_NOTE,
    Handoff,
    HandoffStore,
    agent_message_event,
    transcript_items,
)
from meta.graph import GraphClient, GraphRequest, GraphResponse
from outbox.model import MessageFilter, NewMessage, Outcome, Purpose, SenderKind, Status
from outbox.outbox import Outbox
from outbox.policy_file import load_policy
from outbox.store import InMemoryOutboxStore

UTC = timezone.utc
GUAYAQUIL_OFFSET = timedelta(hours=-5)


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A wall-clock time in Guayaquil (UTC-5 all year), as the UTC instant it is."""
    return (datetime(year, month, day, hour, minute) - GUAYAQUIL_OFFSET).replace(tzinfo=UTC)


# --- business hours -----------------------------------------------------------------------------------------

SCHEDULE = "lun-vie 08:00-18:00; sáb 09:00-13:00"


def test_the_usual_schedule_reads_as_days_and_ranges() -> None:
    hours = parse_business_hours(SCHEDULE)
    assert hours.describe() == "lunes a viernes de 08:00 a 18:00; sábado de 09:00 a 13:00"
    assert hours.timezone == "America/Guayaquil"
    assert not hours.days[6], "Sunday is closed"


@pytest.mark.parametrize(
    ("text", "described"),
    [
        ("LUN-VIE 08:00-13:00, 14:00-18:00", "lunes a viernes de 08:00 a 13:00 y de 14:00 a 18:00"),
        ("Sab 09:00-13:00\nDomingo 10:00-12:00", "sábado de 09:00 a 13:00; domingo de 10:00 a 12:00"),
        ("lun, mié, vie 08:00-12:00", "lunes de 08:00 a 12:00; miércoles de 08:00 a 12:00; viernes de 08:00 a 12:00"),
        ("miercoles 08:00-12:00; mie 11:00-14:00", "miércoles de 08:00 a 14:00"),
        ("vie-lun 20:00-24:00", "lunes de 20:00 a 24:00; viernes a domingo de 20:00 a 24:00"),
        ("lun - vie 8:00 - 17:30", "lunes a viernes de 08:00 a 17:30"),
    ],
)
def test_schedules_are_read_generously(text: str, described: str) -> None:
    assert parse_business_hours(text).describe() == described


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("lun-vie 18:00-08:00", "ends before it starts"),
        ("lunes a viernes 08:00-18:00", "is not 'days ranges'"),
        ("xyz 08:00-10:00", "'xyz'"),
        ("lun 8-9", "is not a time like 08:00"),
        ("lun 08:00-25:00", "is not a time of day"),
        ("lun 08:60-09:00", "is not a time of day"),
        ("lun 24:00-24:00", "cannot start at 24:00"),
        ("lun 08:00", "is not a range"),
        ("lun,,mar 08:00-10:00", "empty day"),
    ],
)
def test_a_schedule_nobody_can_read_is_refused_with_a_clear_message(text: str, says: str) -> None:
    with pytest.raises(BusinessHoursError, match="BUSINESS_HOURS") as error:
        parse_business_hours(text)
    assert says in str(error.value)


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(BusinessHoursError, match="BUSINESS_TIMEZONE 'America/Quito'"):
        parse_business_hours(SCHEDULE, "America/Quito")


def test_opening_is_inclusive_and_closing_exclusive_in_guayaquil() -> None:
    hours = parse_business_hours(SCHEDULE)
    monday = (2026, 11, 23)
    assert not is_within_business_hours(local(*monday, 7, 59), hours)
    assert is_within_business_hours(local(*monday, 8, 0), hours)
    assert is_within_business_hours(local(*monday, 17, 59), hours)
    assert not is_within_business_hours(local(*monday, 18, 0), hours)
    assert is_within_business_hours(local(2026, 11, 28, 12, 59), hours), "Saturday morning"
    assert not is_within_business_hours(local(2026, 11, 28, 13, 0), hours)
    assert not is_within_business_hours(local(2026, 11, 29, 10, 0), hours), "Sunday"


def test_utc_is_read_in_the_business_time_zone() -> None:
    hours = parse_business_hours(SCHEDULE)
    # 02:00 UTC on a Saturday is still Friday 21:00 in Guayaquil: closed, and Friday's rules apply.
    assert not is_within_business_hours(datetime(2026, 11, 28, 2, 0, tzinfo=UTC), hours)
    # 13:30 UTC on a Monday is 08:30 there: open, though 13:30 UTC "looks" like any hour.
    assert is_within_business_hours(datetime(2026, 11, 23, 13, 30, tzinfo=UTC), hours)
    # The same instant given with another offset is the same answer.
    assert is_within_business_hours(datetime(2026, 11, 23, 8, 30, tzinfo=timezone(GUAYAQUIL_OFFSET)), hours)


def test_ecuador_has_no_daylight_saving_so_08_00_local_is_13_00_utc_all_year() -> None:
    hours = parse_business_hours("lun-dom 08:00-09:00")
    for month in range(1, 13):
        first_monday = datetime(2026, month, 1, 13, 0, tzinfo=UTC)
        assert is_within_business_hours(first_monday, hours), month
        assert not is_within_business_hours(first_monday - timedelta(minutes=1), hours), month


def test_a_zone_with_daylight_saving_follows_its_own_clock() -> None:
    hours = parse_business_hours("lun-dom 08:00-09:00", "America/New_York")
    assert is_within_business_hours(datetime(2026, 1, 15, 13, 30, tzinfo=UTC), hours), "EST: UTC-5"
    assert not is_within_business_hours(datetime(2026, 7, 15, 13, 30, tzinfo=UTC), hours), "EDT: UTC-4"
    assert is_within_business_hours(datetime(2026, 7, 15, 12, 30, tzinfo=UTC), hours)


def test_no_schedule_means_always_open_and_naive_times_are_refused() -> None:
    hours = parse_business_hours("  ")
    assert hours.always_open
    assert is_within_business_hours(datetime(2026, 11, 29, 3, 0, tzinfo=UTC), hours)
    with pytest.raises(ValueError, match="naive"):
        is_within_business_hours(datetime(2026, 11, 23, 9, 0), parse_business_hours(SCHEDULE))


def test_24_00_closes_at_midnight() -> None:
    hours = parse_business_hours("vie 20:00-24:00")
    assert is_within_business_hours(local(2026, 11, 27, 23, 59), hours)
    assert not is_within_business_hours(local(2026, 11, 28, 0, 0), hours)


def test_handoff_settings_have_safe_defaults_and_clear_errors() -> None:
    settings = load_settings({})
    assert (settings.handoff_max_failures, settings.handoff_idle_resume_minutes) == (2, 240.0)
    assert (settings.business_hours, settings.business_timezone) == ("", "America/Guayaquil")
    assert settings.away_message.startswith("Fuera de Horario") and "{horario}" in settings.away_message
    assert settings.handover_to_page_inbox is False
    assert load_settings({"HANDOVER_TO_PAGE_INBOX": "1"}).handover_to_page_inbox
    for env, says in [
        ({"BUSINESS_HOURS": "lun-vie 18:00-08:00"}, "BUSINESS_HOURS"),
        ({"BUSINESS_TIMEZONE": "Mars/Olympus"}, "BUSINESS_TIMEZONE"),
        ({"HANDOFF_MAX_FAILURES": "0"}, "HANDOFF_MAX_FAILURES"),
        ({"HANDOFF_IDLE_RESUME_MINUTES": "-1"}, "HANDOFF_IDLE_RESUME_MINUTES"),
        ({"HANDOVER_TO_PAGE_INBOX": "maybe"}, "HANDOVER_TO_PAGE_INBOX"),
    ]:
        with pytest.raises(SettingsError, match=says):
            load_settings(env)


# --- live updates -------------------------------------------------------------------------------------------


def resync() -> str:
    return "resync"


async def until(condition: Any, timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.001)


async def test_every_listener_gets_every_event_in_order() -> None:
    hub: Broadcaster[str] = Broadcaster(resync)
    received: dict[str, list[str]] = {"a": [], "b": []}

    async def listen(name: str) -> None:
        async for item in hub.subscribe():
            received[name].append(item)
            if len(received[name]) == 3:
                return

    tasks = [asyncio.create_task(listen("a")), asyncio.create_task(listen("b"))]
    await until(lambda: hub.listener_count == 2)
    for item in ("one", "two", "three"):
        hub.publish(item)
    await asyncio.wait_for(asyncio.gather(*tasks), 2)
    assert received == {"a": ["one", "two", "three"], "b": ["one", "two", "three"]}
    assert hub.listener_count == 0, "a listener that stops iterating is gone"


async def test_a_disconnected_listener_leaves_nothing_behind() -> None:
    hub: Broadcaster[str] = Broadcaster(resync)

    async def listen_forever() -> None:
        async for _ in hub.subscribe():
            pass

    tasks = [asyncio.create_task(listen_forever()) for _ in range(50)]
    await until(lambda: hub.listener_count == 50)
    for task in tasks:
        task.cancel()  # what a web server does when the browser goes away
    await asyncio.gather(*tasks, return_exceptions=True)
    assert hub.listener_count == 0
    hub.publish("nobody listens")  # never blocks, never grows


async def test_closing_the_iterator_unsubscribes() -> None:
    hub: Broadcaster[str] = Broadcaster(resync)
    stream = hub.subscribe()
    reader = asyncio.ensure_future(stream.__anext__())
    await until(lambda: hub.listener_count == 1)
    hub.publish("first")
    assert await reader == "first"
    await stream.aclose()
    assert hub.listener_count == 0


async def test_a_listener_that_falls_behind_is_bounded_and_told_to_resync() -> None:
    hub: Broadcaster[str] = Broadcaster(resync, max_queued=3)
    stream = hub.subscribe()
    reader = asyncio.ensure_future(stream.__anext__())
    await until(lambda: hub.listener_count == 1)
    hub.publish("0")
    assert await reader == "0"
    for number in range(1, 10):  # nobody reads: the queue never holds more than 3
        hub.publish(str(number))
    received = [await stream.__anext__() for _ in range(3)]
    assert received == ["resync", "8", "9"], "the backlog was replaced by one resync, then the newest"
    await stream.aclose()
    assert hub.listener_count == 0


# --- the service over its fakes -----------------------------------------------------------------------------

PAGE = SANDBOX_PAGE_ID
USER = "psid-1"
CONVERSATION = conversation_id_of(PAGE, USER)
T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class RecordingTransport:
    """The Graph API transport: records requests, answers Meta's success shapes."""

    def __init__(self) -> None:
        self.requests: list[GraphRequest] = []

    async def send(self, request: GraphRequest) -> GraphResponse:
        self.requests.append(request)
        if request.path.endswith("/messages"):
            return GraphResponse(200, {"recipient_id": USER, "message_id": "m_1"})
        return GraphResponse(200, {"success": True})

    async def close(self) -> None:
        return None


class Parts:
    def __init__(self, settings: Settings) -> None:
        self.clock = Clock(T0)
        self.rasa = InMemoryRasaTrackers()
        self.store = HandoffStore(":memory:")
        self.outbox_store = InMemoryOutboxStore()
        self.transport = RecordingTransport()
        graph = GraphClient(settings.page_tokens, transport=self.transport)
        self.outbox = Outbox(self.outbox_store, graph, load_policy(), clock=self.clock)
        self.handoff = Handoff(self.store, self.rasa, self.outbox, page_tokens=settings.page_tokens,
                               idle_resume_minutes=settings.handoff_idle_resume_minutes,
                               handover_to_page_inbox=settings.handover_to_page_inbox, graph=graph, clock=self.clock)

    def user_wrote(self, at: datetime) -> None:
        self.outbox_store.record_user_message(PAGE, USER, at)


@pytest.fixture
def parts() -> Iterator[Parts]:
    made = Parts(load_settings({}))
    yield made
    made.store.close()


class Collected:
    def __init__(self, handoff: Handoff) -> None:
        self.events: list[ConsoleEvent] = []
        self._task = asyncio.ensure_future(self._collect(handoff))

    async def _collect(self, handoff: Handoff) -> None:
        async for event in handoff.subscribe():
            self.events.append(event)

    def kinds(self) -> list[str]:
        return [event.kind for event in self.events]

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def collect(handoff: Handoff) -> Collected:
    collected = Collected(handoff)
    await until(lambda: handoff.events.listener_count >= 1)
    return collected


async def test_a_pause_pauses_rasa_records_who_why_when_and_tells_consoles(parts: Parts) -> None:
    live = await collect(parts.handoff)

    conversation = await parts.handoff.pause(PAGE, USER, PauseReason.USER_ASKED, "bot")

    assert parts.rasa.is_paused(USER)
    assert conversation.state is ConversationState.PAUSED
    assert (conversation.paused_reason, conversation.paused_by, conversation.paused_at) == (
        PauseReason.USER_ASKED, "bot", T0,
    )
    assert [c.id for c in await parts.handoff.paused_conversations()] == [CONVERSATION]
    history = await parts.handoff.history(CONVERSATION)
    assert [(h.action, h.by, h.reason, h.at) for h in history] == [("paused", "bot", "user_asked", T0)]
    await until(lambda: live.kinds() == ["paused"])
    assert live.events[0].data["conversation"]["state"] == "paused"
    await live.stop()
    assert parts.handoff.events.listener_count == 0


async def test_pausing_twice_keeps_the_first_reason_and_tells_consoles_once(parts: Parts) -> None:
    live = await collect(parts.handoff)
    await parts.handoff.pause(PAGE, USER, PauseReason.USER_ASKED, "bot")
    parts.clock.advance(minutes=5)

    again = await parts.handoff.pause(PAGE, USER, PauseReason.AGENT_WROTE_OUTSIDE, "page_inbox", text="Hola, soy Ana")

    assert (again.paused_reason, again.paused_by, again.paused_at) == (PauseReason.USER_ASKED, "bot", T0)
    assert parts.rasa.is_paused(USER)
    messages = await parts.handoff.messages(CONVERSATION)
    assert [(m.author, m.text) for m in messages] == [("agent:page_inbox", "Hola, soy Ana")]
    await until(lambda: live.kinds() == ["paused", "agent_message"])
    await live.stop()


async def test_an_action_that_paused_rasa_itself_is_only_recorded(parts: Parts) -> None:
    await parts.handoff.pause(PAGE, USER, PauseReason.BOT_FAILED, "bot", rasa_already_paused=True)
    assert USER not in parts.rasa.trackers
    assert (await parts.handoff.get(CONVERSATION)).state is ConversationState.PAUSED


async def test_when_rasa_cannot_be_paused_nothing_is_recorded(parts: Parts) -> None:
    parts.rasa.fail_with = RasaUnavailable("connection refused")
    with pytest.raises(RasaUnavailable):
        await parts.handoff.pause(PAGE, USER, PauseReason.AGENT_TOOK_OVER, "ana")
    assert await parts.handoff.paused_conversations() == []


def queue(
    parts: Parts,
    name: str,
    *,
    page: str = PAGE,
    user: str = USER,
    sender: SenderKind = SenderKind.BOT,
    purpose: Purpose = Purpose.REPLY,
    not_before: datetime | None = None,
) -> int:
    """Queue a message (its idempotency key is `name`) as the outbox holds it at T0."""
    new = NewMessage(
        page, user, {"text": name}, sender=sender, purpose=purpose, not_before=not_before, idempotency_key=name
    )
    message, _created = parts.outbox_store.enqueue(new, T0)
    return message.id


async def test_a_pause_cancels_the_bot_messages_still_queued_from_before_it(parts: Parts) -> None:
    # A reply that failed once and waits in backoff (attempts 1): queued first, so it heads the user's queue.
    backoff = queue(parts, "backoff")
    [claimed] = parts.outbox_store.claim("w", T0, 30, 1)
    parts.outbox_store.complete(claimed.id, "w", Outcome(Status.PENDING, next_attempt_at=T0 + timedelta(minutes=1)))
    queue(parts, "scheduled", not_before=T0 + timedelta(hours=1))  # a bot REPLY, but due later
    queue(parts, "follow-up", purpose=Purpose.FOLLOW_UP)  # due now, but not an answer to this turn
    queue(parts, "fresh-reply")  # attempts 0, due now: the current turn (the handoff notice itself)
    queue(parts, "human", sender=SenderKind.HUMAN, purpose=Purpose.FOLLOW_UP, not_before=T0 + timedelta(hours=1))
    queue(parts, "system", sender=SenderKind.SYSTEM, purpose=Purpose.FOLLOW_UP, not_before=T0 + timedelta(hours=1))
    queue(parts, "other-user", user="psid-2", purpose=Purpose.FOLLOW_UP)
    queue(parts, "other-page", page="104523456789012", purpose=Purpose.FOLLOW_UP)
    assert parts.outbox_store.get(backoff).attempts == 1
    assert parts.outbox_store.get(backoff).due_at == T0, "only its attempts make it stale"

    await parts.handoff.pause(PAGE, USER, PauseReason.USER_ASKED, "bot")

    statuses = {m.idempotency_key: m.status for m in parts.outbox_store.find(MessageFilter())}
    assert statuses == {
        "backoff": Status.CANCELLED,
        "scheduled": Status.CANCELLED,
        "follow-up": Status.CANCELLED,
        "fresh-reply": Status.PENDING,
        "human": Status.PENDING,
        "system": Status.PENDING,
        "other-user": Status.PENDING,
        "other-page": Status.PENDING,
    }


async def test_resume_hands_back_to_the_bot_with_a_closing_note(parts: Parts) -> None:
    await parts.handoff.pause(PAGE, USER, PauseReason.USER_ASKED, "bot")
    await parts.handoff.assign(CONVERSATION, "ana")
    live = await collect(parts.handoff)
    parts.clock.advance(minutes=10)

    conversation = await parts.handoff.resume(CONVERSATION, "ana", "  Cliente atendido, pedido 123  ")

    assert not parts.rasa.is_paused(USER)
    assert conversation.state is ConversationState.BOT
    assert (conversation.paused_reason, conversation.assigned_to) == (None, None)
    history = await parts.handoff.history(CONVERSATION)
    assert [(h.action, h.by) for h in history] == [("paused", "bot"), ("assigned", "ana"), ("resumed", "ana")]
    assert history[-1].closing_note == "Cliente atendido, pedido 123"
    await until(lambda: live.kinds() == ["resumed"])
    assert live.events[0].data["closing_note"] == "Cliente atendido, pedido 123"
    assert await parts.handoff.paused_conversations() == []
    await live.stop()


async def test_resuming_an_unknown_conversation_says_so(parts: Parts) -> None:
    with pytest.raises(ConversationNotFound):
        await parts.handoff.resume(conversation_id_of(PAGE, "nobody"), "ana", "nota")
    with pytest.raises(ConversationNotFound):
        await parts.handoff.get("not-an-id")


async def test_messages_while_paused_are_kept_and_shown_live(parts: Parts) -> None:
    await parts.handoff.pause(PAGE, USER, PauseReason.USER_ASKED, "bot")
    live = await collect(parts.handoff)
    at = T0 + timedelta(minutes=1)

    await parts.handoff.record_user_message(PAGE, USER, "¿Siguen ahí?", at)

    conversation = await parts.handoff.get(CONVERSATION)
    assert (conversation.last_user_message_at, conversation.last_message_text) == (at, "¿Siguen ahí?")
    assert [(m.author, m.text, m.at) for m in await parts.handoff.messages(CONVERSATION)] == [
        ("user", "¿Siguen ahí?", at)
    ]
    await until(lambda: live.kinds() == ["user_message"])
    assert live.events[0].data["text"] == "¿Siguen ahí?"
    await live.stop()


async def test_a_message_from_a_conversation_rasa_holds_but_the_app_never_heard_of_is_listed(parts: Parts) -> None:
    await parts.handoff.record_user_message(PAGE, USER, "hola?", T0)
    [conversation] = await parts.handoff.paused_conversations()
    assert (conversation.state, conversation.paused_by, conversation.paused_reason) == (
        ConversationState.PAUSED, "rasa", None,
    )


async def test_an_agent_reply_in_the_24_hours_goes_through_the_outbox_as_a_person(parts: Parts) -> None:
    parts.user_wrote(T0 - timedelta(hours=2))
    await parts.handoff.pause(PAGE, USER, PauseReason.USER_ASKED, "bot")
    live = await collect(parts.handoff)

    result = await parts.handoff.reply_as_agent(CONVERSATION, "ana", "  Hola, soy Ana. ¿En qué te ayudo?  ")

    assert result["decision"]["messaging_type"] == "RESPONSE" and result["decision"]["tag"] is None
    [stored] = parts.outbox_store.find(_all_messages())
    assert (stored.sender, stored.sender_name, stored.purpose) == (SenderKind.HUMAN, "ana", Purpose.REPLY)
    assert stored.message == {"text": "Hola, soy Ana. ¿En qué te ayudo?"}
    assert result["message"]["id"] == stored.id
    [event] = parts.rasa.trackers[USER][-1:]
    assert event == agent_message_event("Hola, soy Ana. ¿En qué te ayudo?", "ana", T0, stored.id)
    transcript = await parts.handoff.transcript(CONVERSATION)
    assert [(item.author, item.text) for item in transcript] == [("agent:ana", "Hola, soy Ana. ¿En qué te ayudo?")]
    await until(lambda: live.kinds() == ["agent_message"])
    await live.stop()
    await parts.outbox.run_once()
    [sent] = [r for r in parts.transport.requests if r.path.endswith("/messages")]
    assert sent.json_body is not None and sent.json_body["messaging_type"] == "RESPONSE"


def _all_messages() -> Any:
    from outbox.model import MessageFilter

    return MessageFilter(page_id=PAGE)


async def test_after_24_hours_an_agent_reply_carries_the_human_agent_tag(parts: Parts) -> None:
    parts.user_wrote(T0 - timedelta(days=3))
    result = await parts.handoff.reply_as_agent(CONVERSATION, "ana", "Te escribo por tu pedido")
    assert (result["decision"]["messaging_type"], result["decision"]["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")


@pytest.mark.parametrize(
    ("last_user_message", "reason_code"),
    [(T0 - timedelta(days=7, seconds=1), "human_agent_window_expired"), (None, "never_wrote")],
)
async def test_an_agent_reply_the_policy_refuses_is_not_queued_and_says_why(
    parts: Parts, last_user_message: datetime | None, reason_code: str
) -> None:
    if last_user_message is not None:
        parts.user_wrote(last_user_message)
    await parts.handoff.pause(PAGE, USER, PauseReason.USER_ASKED, "bot")
    events_before = len(parts.rasa.trackers[USER])

    with pytest.raises(ReplyRefused) as refused:
        await parts.handoff.reply_as_agent(CONVERSATION, "ana", "¿Sigues ahí?")

    assert refused.value.reason_code == reason_code
    assert refused.value.reason_es and refused.value.reason_en
    assert parts.outbox_store.find(_all_messages()) == []
    assert len(parts.rasa.trackers[USER]) == events_before
    assert await parts.handoff.messages(CONVERSATION) == []


async def test_empty_or_unknown_page_replies_are_refused(parts: Parts) -> None:
    parts.user_wrote(T0)
    with pytest.raises(ReplyRefused, match="empty"):
        await parts.handoff.reply_as_agent(CONVERSATION, "ana", "   ")
    with pytest.raises(ReplyRefused) as refused:
        await parts.handoff.reply_as_agent(conversation_id_of("999", USER), "ana", "hola")
    assert refused.value.reason_code == "unknown_page"


async def test_an_agent_replying_to_a_conversation_the_bot_holds_pauses_the_bot_first(parts: Parts) -> None:
    parts.user_wrote(T0)
    await parts.handoff.reply_as_agent(CONVERSATION, "ana", "Hola, te ayudo yo")
    conversation = await parts.handoff.get(CONVERSATION)
    assert (conversation.state, conversation.paused_reason, conversation.paused_by) == (
        ConversationState.PAUSED, PauseReason.AGENT_TOOK_OVER, "ana",
    )
    assert parts.rasa.is_paused(USER)


async def test_a_long_agent_reply_is_split_without_losing_a_character(parts: Parts) -> None:
    parts.user_wrote(T0)
    text = ("Esta es una oración larga para probar. " * 80).strip()
    result = await parts.handoff.reply_as_agent(CONVERSATION, "ana", text, idempotency_key="reply-1")
    assert len(result["messages"]) >= 2
    assert all(len(m["message"]["text"]) <= 2000 for m in result["messages"])
    assert "".join(m["message"]["text"] for m in result["messages"]).replace(" ", "") == text.replace(" ", "")
    again = await parts.handoff.reply_as_agent(CONVERSATION, "ana", text, idempotency_key="reply-1")
    assert [m["id"] for m in again["messages"]] == [m["id"] for m in result["messages"]], "same key, same messages"


@pytest.mark.parametrize(
    ("elapsed", "can_reply", "messaging_type", "tag"),
    [
        (timedelta(0), True, "RESPONSE", None),
        (timedelta(hours=24), True, "RESPONSE", None),
        (timedelta(hours=24, seconds=1), True, "MESSAGE_TAG", "HUMAN_AGENT"),
        (timedelta(days=7), True, "MESSAGE_TAG", "HUMAN_AGENT"),
        (timedelta(days=7, seconds=1), False, None, None),
    ],
)
async def test_the_reply_window_at_its_boundaries(
    parts: Parts, elapsed: timedelta, can_reply: bool, messaging_type: str | None, tag: str | None
) -> None:
    parts.user_wrote(T0)
    window = await parts.handoff.window_status(CONVERSATION, now=T0 + elapsed)
    assert (window.can_reply, window.messaging_type, window.tag) == (can_reply, messaging_type, tag)
    if can_reply:
        assert window.last_chance_at == T0 + timedelta(days=7)
        assert window.time_left == timedelta(days=7) - elapsed
    else:
        assert window.reason_code == "human_agent_window_expired"


async def test_the_reply_window_of_someone_who_never_wrote_is_closed(parts: Parts) -> None:
    window = await parts.handoff.window_status(CONVERSATION, now=T0)
    assert (window.can_reply, window.reason_code) == (False, "never_wrote")


async def test_idle_paused_conversations_go_back_to_the_bot(parts: Parts) -> None:
    await parts.handoff.pause(PAGE, USER, PauseReason.USER_ASKED, "bot")
    await parts.handoff.pause(PAGE, "psid-2", PauseReason.USER_ASKED, "bot")
    parts.clock.advance(minutes=200)
    await parts.handoff.record_user_message(PAGE, "psid-2", "sigo aquí", parts.clock.now)

    assert await parts.handoff.resume_idle(T0 + timedelta(minutes=239)) == []
    resumed = await parts.handoff.resume_idle(T0 + timedelta(minutes=241))

    assert [c.user_id for c in resumed] == [USER], "activity restarts the idle time"
    assert not parts.rasa.is_paused(USER) and parts.rasa.is_paused("psid-2")
    last = (await parts.handoff.history(CONVERSATION))[-1]
    assert (last.action, last.by, last.closing_note) == ("resumed", "system", AUTO_RESUME_NOTE)


async def test_auto_resume_can_be_turned_off() -> None:
    off = Parts(load_settings({"HANDOFF_IDLE_RESUME_MINUTES": "0"}))
    await off.handoff.pause(PAGE, USER, PauseReason.USER_ASKED, "bot")
    assert await off.handoff.resume_idle(T0 + timedelta(days=30)) == []
    off.store.close()


async def test_with_the_handover_protocol_the_page_inbox_gets_the_thread_and_gives_it_back() -> None:
    handover = Parts(load_settings({"HANDOVER_TO_PAGE_INBOX": "1"}))
    await handover.handoff.pause(PAGE, USER, PauseReason.USER_ASKED, "bot")
    await handover.handoff.resume(CONVERSATION, "ana", "listo")
    passed, taken = handover.transport.requests
    assert passed.path == f"/v21.0/{PAGE}/pass_thread_control"
    assert passed.json_body == {"recipient": {"id": USER}, "target_app_id": int(PAGE_INBOX_APP_ID),
                                "metadata": "handoff:user_asked"}
    assert taken.path == f"/v21.0/{PAGE}/take_thread_control"
    assert taken.json_body is not None and taken.json_body["recipient"] == {"id": USER}
    handover.store.close()


async def test_without_the_handover_protocol_no_thread_control_is_sent(parts: Parts) -> None:
    await parts.handoff.pause(PAGE, USER, PauseReason.USER_ASKED, "bot")
    await parts.handoff.resume(CONVERSATION, "ana", "listo")
    assert parts.transport.requests == []


def test_the_transcript_shows_what_the_user_saw_and_who_wrote_each_message() -> None:
    events = [
        {"event": "action", "name": "action_session_start", "timestamp": 1},
        {"event": "user", "text": "/request_human", "timestamp": 2,
         "metadata": {"shown_text": "Hablar con un agente", "payload": "/request_human", "page_id": PAGE}},
        {"event": "bot", "text": "Te comunico con una persona del equipo", "timestamp": 3,
         "data": {"quick_replies": None, "buttons": None}},
        {"event": "pause", "timestamp": 4},
        {"event": "user", "text": "[imagen]", "timestamp": 5,
         "metadata": {"attachments": [{"type": "image", "payload": {"url": "https://x/y.jpg"}}]}},
        agent_message_event("Hola, soy Ana", "ana", datetime.fromtimestamp(6, UTC), 41),
        {"event": "resume", "timestamp": 7},
    ]
    items = transcript_items(events)
    assert [(i.author, i.text) for i in items] == [
        ("user", "Hablar con un agente"),
        ("bot", "Te comunico con una persona del equipo"),
        ("user", "[imagen]"),
        ("agent:ana", "Hola, soy Ana"),
    ]
    assert items[0].data == {"payload": "/request_human"} and items[1].data is None
    assert items[2].data == {"attachments": [{"type": "image", "payload": {"url": "https://x/y.jpg"}}]}
    assert items[3].data == {"outbox_id": 41} and items[3].at == datetime.fromtimestamp(6, UTC)


def test_a_turn_reverted_after_an_action_server_failure_shows_the_message_once() -> None:
    """The connector reverts a turn whose action server died (`rewind`) and processes the message again: the
    agent reads the customer's message once, with the reply of the attempt that worked."""
    events = [
        {"event": "bot", "text": "Hola", "timestamp": 1},
        {"event": "user", "text": "precio del plan", "timestamp": 2},
        {"event": "bot", "text": "(respuesta parcial)", "timestamp": 3},
        {"event": "rewind", "timestamp": 4},
        {"event": "user", "text": "precio del plan", "timestamp": 5},
        {"event": "bot", "text": "El plan cuesta $30", "timestamp": 6},
    ]
    assert [(i.author, i.text) for i in transcript_items(events)] == [
        ("bot", "Hola"),
        ("user", "precio del plan"),
        ("bot", "El plan cuesta $30"),
    ]


def test_the_store_keeps_its_schema_version() -> None:
    store = HandoffStore(":memory:")
    assert store.schema_version == 3  # 001_initial, 002_resumes_by_time, 003_episodes
    store.close()


def test_the_catch_up_of_closes_reads_the_resumes_by_time_not_the_whole_log() -> None:
    """Customer satisfaction reads the last hour's resumes every minute: the index on their time must serve it."""
    store = HandoffStore(":memory:")
    with store._db.write() as conn:
        plan = conn.execute("EXPLAIN QUERY PLAN " + store._db.queries["closes_since"], {"since": "2026"}).fetchall()
    assert any("handoff_log_resumed_at" in str(tuple(row)) for row in plan), [tuple(row) for row in plan]
    store.close()


# --- the fakes and the connector's pure parts ---------------------------------------------------------------


async def test_the_rasa_fake_pauses_and_resumes_like_rasa() -> None:
    rasa = InMemoryRasaTrackers()
    assert (await rasa.tracker("u"))["paused"] is False
    await rasa.append_events("u", [{"event": "pause"}])
    assert rasa.is_paused("u")
    await rasa.append_events("u", [{"event": "session_started"}])
    assert not rasa.is_paused("u"), "a new session unpauses in Rasa (actions/session.py pauses again)"
    await rasa.append_events("u", [{"event": "pause"}, {"event": "resume"}])
    assert not rasa.is_paused("u")
    tracker = await rasa.tracker("u")
    tracker["events"].append({"event": "restart"})
    assert len((await rasa.tracker("u"))["events"]) == 4, "callers get copies"
    rasa.fail_with = RasaUnavailable("down")
    with pytest.raises(RasaUnavailable):
        await rasa.append_events("u", [{"event": "pause"}])


def echo(app_id: int | None, text: str = "Hola, soy Ana") -> Any:
    from meta.events import parse_messaging_item

    message: dict[str, Any] = {"mid": "m_1", "text": text, "is_echo": True}
    if app_id is not None:
        message["app_id"] = app_id
    item = {"sender": {"id": PAGE}, "recipient": {"id": USER}, "timestamp": 1, "message": message}
    return parse_messaging_item(item, PAGE)


def test_which_echoes_are_a_person_writing_from_outside() -> None:
    own = "1517776481860111"
    assert echo(int(PAGE_INBOX_APP_ID)).is_person_echo(own)
    assert echo(None).is_person_echo(own), "typed in the Page's own Messenger"
    assert echo(42).is_person_echo(own), "another app"
    assert not echo(int(own)).is_person_echo(own), "our own bot or console"
    # Without our own app id, only the Page inbox is certain: another app id might be ours.
    assert echo(int(PAGE_INBOX_APP_ID)).is_person_echo("")
    assert not echo(42).is_person_echo("")


def test_what_the_user_saw_is_what_agents_read() -> None:
    from meta.events import parse_messaging_item

    quick = {"sender": {"id": USER}, "recipient": {"id": PAGE}, "timestamp": 1,
             "message": {"mid": "m_2", "text": "Hablar con un agente", "quick_reply": {"payload": "/request_human"}}}
    event = parse_messaging_item(quick, PAGE)
    assert (event.user_text(), event.shown_text()) == ("/request_human", "Hablar con un agente")
    photo = {"sender": {"id": USER}, "recipient": {"id": PAGE}, "timestamp": 1,
             "message": {"mid": "m_3", "attachments": [{"type": "image", "payload": {"url": "https://x/y.jpg"}}]}}
    assert parse_messaging_item(photo, PAGE).shown_text() == "[imagen]"


def test_an_echo_author_names_the_page_inbox_or_the_app() -> None:
    from connectors.handoff import outside_author

    assert outside_author(PAGE_INBOX_APP_ID) == outside_author(None) == "page_inbox"
    assert outside_author("42") == "app:42"


class SlowToLandRasa(InMemoryRasaTrackers):
    """Rasa whose first agent reply (a `bot` event) lands only after someone else has read the tracker (or after a
    second, when nobody does): the window in which a double-clicked reply's second request looks for the first
    one's event."""

    def __init__(self) -> None:
        super().__init__()
        self.tracker_read = asyncio.Event()
        self.appends = 0

    async def tracker(self, sender_id: str) -> dict[str, Any]:
        self.tracker_read.set()
        return await super().tracker(sender_id)

    async def append_events(self, sender_id: str, events: Any) -> dict[str, Any]:
        self.appends += any(event.get("event") == "bot" for event in events)
        if self.appends == 1 and not self.tracker_read.is_set():
            with contextlib.suppress(TimeoutError):  # nobody looked while this one was appending: the fix at work
                await asyncio.wait_for(self.tracker_read.wait(), 1.0)
        return await super().append_events(sender_id, events)


async def test_a_double_clicked_reply_is_added_to_rasas_tracker_once() -> None:
    """Two requests with one idempotency key at once (a double click). Old code: the one that did not write the
    local row read Rasa's tracker before the other's `append_events` had landed, found nothing and appended a
    second copy: the reply twice in the transcript. Now only one request at a time records a message, so the
    second finds the first one's event and adds nothing; the customer gets one message either way."""
    parts = Parts(load_settings({}))
    parts.rasa = SlowToLandRasa()
    parts.handoff.rasa = parts.rasa
    parts.user_wrote(T0 - timedelta(hours=1))
    await parts.handoff.pause(PAGE, USER, PauseReason.USER_ASKED, "bot")

    first, second = await asyncio.gather(
        parts.handoff.reply_as_agent(CONVERSATION, "ana", "Ya lo reviso.", idempotency_key="doble-clic"),
        parts.handoff.reply_as_agent(CONVERSATION, "ana", "Ya lo reviso.", idempotency_key="doble-clic"),
    )

    [stored] = parts.outbox_store.find(_all_messages())
    assert first["message"]["id"] == second["message"]["id"] == stored.id
    assert sorted([bool(first.get("repeated")), bool(second.get("repeated"))]) == [False, True]
    in_rasa = [e for e in parts.rasa.trackers[USER] if (e.get("metadata") or {}).get("outbox_id") == stored.id]
    assert len(in_rasa) == 1, f"the reply is in Rasa's tracker {len(in_rasa)} times"
    transcript = await parts.handoff.transcript(CONVERSATION)
    assert [(item.author, item.text) for item in transcript] == [("agent:ana", "Ya lo reviso.")]
    assert [m.text for m in await parts.handoff.messages(CONVERSATION)] == ["Ya lo reviso."]
    assert not parts.handoff._reply_locks, "a lock nobody holds is kept"
    parts.store.close()



async def test_pause_and_resume_reach_rasa_without_our_timestamp(parts: Parts) -> None:
    """Rasa stamps them when it holds the conversation's lock: a time of ours, from before waiting for a turn in
    progress, could be older than the session that turn started, and Rasa's SQL tracker store would not read the
    pause back (tests/integration/scale)."""
    conversation = await parts.handoff.pause(PAGE, USER, PauseReason.AGENT_TOOK_OVER, "ana")
    await parts.handoff.resume(conversation.id, "ana", "")
    assert parts.rasa.trackers[USER] == [{"event": "pause"}, {"event": "resume"}]
