"""`Csat`: ask for a rating after an agent closes a conversation, through the outbox; record the answer.

Asking (`ask_after_close`): one ask per close, about the team member who last wrote to the person (the caller finds
them: no one wrote, nothing is asked), and none when the person was asked in the 24 hours before the close
(`RECENT_ASK`). Each survey's outbox key names its close (`survey_key`), and a message the outbox returns for
another person counts as not sent. CSAT_MODE=template sends Meta's customer feedback template (purpose
follow_up, sender system): the outbox's policy decides how, inside 24 hours a standard message, up to 7 days with the
CUSTOMER_FEEDBACK tag, after that refused. CSAT_MODE=quick_replies (or template without CSAT_PRIVACY_URL, which the
template must link) asks with five quick replies, inside the 24-hour window only. `Outbox.preview` decides first; a
refusal is recorded as `not_sent` with the policy's reason, never silent. CSAT_MODE=off asks nothing.
After the bot resolved a conversation on its own (csat/resolved.py decides that), `ask_after_bot` asks the same way,
about «bot» (`BOT_AGENT`), once per last message of the person.

Answering (`record_answer`): the webhook's `messaging_feedback` (the template: its question id names the ask) or the
tap of a quick reply (the person's newest open ask) reaches the app from the ingest journal (connectors/); the first
answer of an ask stays, an event is recorded once.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, TypeVar

from core.offload import Offload
from csat.model import (
    BOT_AGENT,
    THANKS_TEXT,
    AgentSatisfaction,
    Ask,
    AskStatus,
    How,
    Mode,
    feedback_template,
    quick_replies_question,
    read_answer,
)
from csat.store import CsatStore
from outbox.model import NewMessage, OutboxMessage, Purpose, SenderKind
from outbox.outbox import Outbox

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ClosedConversation(Protocol):
    """A person gave a conversation back to the bot (handoff.model.Close has these fields)."""

    @property
    def conversation_id(self) -> str: ...
    @property
    def page_id(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def by(self) -> str: ...
    @property
    def at(self) -> datetime: ...


# Who of the team last wrote to the person before a close (`Handoff.agent_of_close`; None: nobody).
AgentOfClose = Callable[[str, datetime], Awaitable[str | None]]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


# A person asked (the survey sent or on its way) this long before a close is not asked again for it.
RECENT_ASK = timedelta(hours=24)
# The outbox held another person's message under a survey's key: the survey is recorded as not sent.
KEY_TAKEN = "idempotency_key_taken"
KEY_TAKEN_ES = ("La clave de esta encuesta en la bandeja de salida ya era de un mensaje para otra persona; la encuesta "
                "no se envió.")


def survey_key(ask: Ask) -> str:
    """The outbox key of an ask's survey: its close (conversation and time), not the csat store's row id, so a
    recreated csat store (ids from 1 again) never finds another person's old survey under its key. After the bot
    resolved a conversation: the conversation and the time of the person's last message, marked as the bot's."""
    if ask.closed_by == BOT_AGENT:
        return f"csat:{ask.conversation_id}:bot:{ask.closed_at.isoformat()}"
    return f"csat:{ask.conversation_id}:{ask.closed_at.isoformat()}"


def is_for(message: OutboxMessage, page_id: str, user_id: str) -> bool:
    return (message.page_id, message.recipient_id) == (page_id, user_id)


class Csat:
    def __init__(self, store: CsatStore, outbox: Outbox, *, mode: str = "template", privacy_url: str = "",
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.store = store
        self.outbox = outbox
        self.mode = Mode(mode)
        self.privacy_url = privacy_url
        self.clock = clock
        self._offload = Offload("csat-store")

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._offload.run(fn, *args)

    def close(self) -> None:
        self._offload.close()

    @property
    def how(self) -> How | None:
        """What this app asks with (None: it does not ask). The template needs the page's privacy policy."""
        if self.mode is Mode.OFF:
            return None
        if self.mode is Mode.TEMPLATE and self.privacy_url:
            return How.TEMPLATE
        return How.QUICK_REPLIES

    async def ask_after_close(self, conversation_id: str, page_id: str, user_id: str, agent: str,
                              closed_at: datetime, now: datetime | None = None, *,
                              closed_by: str | None = None) -> Ask | None:
        """Ask the person to rate `agent` (the team member who last wrote to them) for the conversation `closed_by`
        closed at `closed_at`. None: CSAT_MODE=off, or the person was asked in the `RECENT_ASK` before this close. A
        close seen before returns its ask and sends nothing again."""
        how = self.how
        if how is None:
            return None
        now = now or self.clock()
        create = functools.partial(self.store.create_ask, closed_by=closed_by,
                                   unless_asked_since=closed_at - RECENT_ASK)
        ask, created = await self._db(create, page_id, user_id, conversation_id, agent, closed_at, now)
        if ask is None:  # debug: the catch-up sees this close again every round for an hour
            logger.debug("satisfaction not asked: this person was asked in the last 24 hours",
                         extra={"conversation_id": conversation_id})
            return None
        if not created and ask.status is not AskStatus.ASKING:
            return ask
        # New, or left `asking` by a crash before the outbox heard of it: the outbox's key (its close) makes a
        # second enqueue of the same ask return the first message, so finishing it never asks twice.
        message = feedback_template(ask.id, self.privacy_url) if how is How.TEMPLATE else quick_replies_question()
        new = NewMessage(page_id=page_id, recipient_id=user_id, message=message, sender=SenderKind.SYSTEM,
                         purpose=Purpose.FOLLOW_UP, idempotency_key=survey_key(ask))
        decision = await self.outbox.preview(new, now)
        if not decision.allowed:
            await self._db(self.store.mark_not_sent, ask.id, how, decision.reason_code, decision.reason_es)
            logger.info("satisfaction not asked: the policy refused it",
                        extra={"conversation_id": conversation_id, "reason": decision.reason_code})
            return await self._db(self.store.get, ask.id)
        queued, _new = await self.outbox.enqueue(new)
        if is_for(queued, page_id, user_id):
            await self._db(self.store.mark_sent, ask.id, how, decision.tag, queued.id)
        else:  # never "enviada" for a message someone else got
            await self._db(self.store.mark_not_sent, ask.id, how, KEY_TAKEN, KEY_TAKEN_ES)
            logger.error("the outbox holds another person's message under a survey's key; not sent",
                         extra={"conversation_id": conversation_id, "outbox_id": queued.id})
        return await self._db(self.store.get, ask.id)

    async def catch_up(self, closes: Iterable[ClosedConversation], agent_of: AgentOfClose,
                       now: datetime | None = None) -> None:
        """Ask for the closes the live listener missed (the app restarted between a close and its ask, or the ask
        failed): `closes` from the handoff's durable log (`Handoff.closes_since`), by the same rule as the live
        listener (`ask_for_close`). A close already asked is left alone."""
        for close in closes:
            await self.ask_for_close(close, agent_of, now)

    async def ask_for_close(self, close: ClosedConversation, agent_of: AgentOfClose,
                            now: datetime | None = None) -> Ask | None:
        """The one rule for a close, live or caught up: ask only when someone of the team wrote to the person since
        the conversation was paused (`agent_of`: `Handoff.agent_of_close`, the last of them, the agent rated), and
        not when the person was asked in the 24 hours before (`ask_after_close`). None: nothing asked."""
        agent = await agent_of(close.conversation_id, close.at)
        if agent is None:
            logger.debug("satisfaction not asked: nobody of the team wrote to the person",
                         extra={"conversation_id": close.conversation_id})
            return None
        return await self.ask_after_close(close.conversation_id, close.page_id, close.user_id, agent, close.at, now,
                                          closed_by=close.by)

    async def ask_after_bot(self, conversation_id: str, page_id: str, user_id: str, last_user_message_at: datetime,
                            now: datetime | None = None) -> Ask | None:
        """Ask the person to rate the bot, which resolved the conversation on its own (csat/resolved.py decides
        that): one ask per last message of the person (`closed_at`; the outbox key `csat:{conversation}:bot:{time}`),
        agent and closer `BOT_AGENT`, by the same path and rules as after a close (none within `RECENT_ASK`)."""
        return await self.ask_after_close(conversation_id, page_id, user_id, BOT_AGENT, last_user_message_at, now,
                                          closed_by=BOT_AGENT)

    async def asked_after_bot(self, conversation_id: str, last_user_message_at: datetime) -> Ask | None:
        """The ask `ask_after_bot` made for this last message of the person (None: none yet), read only: the
        minute's rounds see a conversation for an hour and need not lock the store each time."""
        return await self._db(self.store.ask_of_close, conversation_id, last_user_message_at)

    async def record_answer(self, page_id: str, user_id: str, via: str, answers: Sequence[Mapping[str, Any]],
                            event_key: str, at: datetime | None = None) -> Ask | None:
        """The person's answer → the ask it answers (None: no rating in it, no open ask of this person, answered
        before, or this event recorded already). A quick reply's answer is thanked (the template shows Meta's own
        confirmation)."""
        answer = read_answer(answers)
        if answer.rating is None:
            return None
        ask = None
        if answer.ask_id is not None:
            ask = await self._db(self.store.get, answer.ask_id)
            if ask is not None and (ask.page_id, ask.user_id) != (page_id, user_id):
                ask = None  # another person's question id: not theirs to answer
        if ask is None:
            ask = await self._db(self.store.latest_open, page_id, user_id)
        if ask is None:
            logger.info("a rating with no open question", extra={"page_id": page_id, "via": via})
            return None
        at = at or self.clock()
        if not await self._db(self.store.record_answer, ask.id, answer.rating, answer.comment, at, event_key):
            return None
        if via == How.QUICK_REPLIES.value:
            await self._thank(ask, at)
        return await self._db(self.store.get, ask.id)

    async def _thank(self, ask: Ask, at: datetime) -> None:
        new = NewMessage(page_id=ask.page_id, recipient_id=ask.user_id, message={"text": THANKS_TEXT},
                         sender=SenderKind.BOT, purpose=Purpose.REPLY, idempotency_key=f"{survey_key(ask)}:thanks")
        try:
            if (await self.outbox.preview(new, at)).allowed:
                queued, _new = await self.outbox.enqueue(new)
                if not is_for(queued, ask.page_id, ask.user_id):
                    logger.error("the outbox holds another person's message under a thanks' key; not thanked",
                                 extra={"ask_id": ask.id, "outbox_id": queued.id})
        except Exception:  # the rating is stored; only the thanks is missing
            logger.exception("could not thank for a rating", extra={"ask_id": ask.id})

    async def latest_open(self, page_id: str, user_id: str) -> Ask | None:
        """The person's newest question still waiting for an answer."""
        return await self._db(self.store.latest_open, page_id, user_id)

    async def of_conversation(self, conversation_id: str) -> list[Ask]:
        return await self._db(self.store.of_conversation, conversation_id)

    async def agent_satisfaction(self, since: datetime | None = None) -> list[AgentSatisfaction]:
        return await self._db(self.store.agent_satisfaction, since)
