"""Asking for a rating after the bot resolved a conversation on its own (CSAT_AFTER_BOT_MINUTES; 0, the default: never).

A conversation counts as resolved by the bot, `after` (N) minutes after the person's last message, when
- the bot's handling of the person's latest question (the answer journal, by their pseudonym) was an answer: from the
  matrix, a tapped «¿Quisiste decir…?» candidate, or the GPT fallback (`RESOLVED_HANDLINGS`); a miss, a handoff or an
  offer nobody tapped is not resolved, and neither is a conversation with no question journaled;
- nobody of the team was involved: the conversation is not paused now, and no handoff episode was paused since the
  conversation began;
- CSAT_MODE is not off, and the person was not asked in the 24 hours before (`Csat.ask_after_close`'s `RECENT_ASK`).

The conversation began, for these rules, 24 hours before the person's last message (`CONVERSATION_GAP`: a message
after 24 hours of silence starts a new one). Only the conversations whose last message the outbox recorded between
N + 60 and N minutes ago are looked at (`CATCH_UP`, as the close catch-up's hour): a restart asks for the last hour,
never for the whole history. The ask goes the close survey's way (`Csat.ask_after_bot`: the outbox, its policy, the
template or quick replies, `not_sent` with the policy's reason), keyed by the conversation and the time of the
person's last message, so each is asked once however many rounds see it; the agent rated is «bot».

The handoff and the answer journal are on this package's floor: they come in as the small interfaces below
(`handoff.service.Handoff` and `answers.service.Answers` have these methods), wired in bot/app.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Protocol

from csat.model import Ask, AskStatus
from csat.service import Csat
from outbox.model import CONVERSATION_GAP, ConversationSeen

logger = logging.getLogger(__name__)

# The answer journal's handlings (answers.model.Handling values) that answered the person's question.
RESOLVED_HANDLINGS = frozenset({"matrix", "selected", "gpt"})
# Conversations whose last message is older than N + this are not asked (after a restart: the last hour only).
CATCH_UP = timedelta(hours=1)
PAGE_SIZE = 200  # conversations read (and their handoff states) per query


class NotResolved(str, Enum):
    """Why a conversation is not asked about the bot (debug logs, tests)."""

    TOO_RECENT = "too_recent"  # the person's last message is younger than N minutes: they may still be writing
    TOO_OLD = "too_old"  # older than N + 60 minutes: past the catch-up
    PAUSED = "paused"  # handed to a person now
    PERSON_INVOLVED = "person_involved"  # paused (by the bot, an agent or Rasa) since the conversation began
    NO_QUESTION = "no_question"  # no question of theirs journaled since the conversation began
    NOT_ANSWERED = "not_answered"  # their latest question was a miss, a handoff or an offer not followed


class HandoffState(Protocol):
    """A conversation's handoff row (handoff.model.Conversation)."""

    @property
    def state(self) -> str: ...


class HandoffEpisode(Protocol):
    """A pause and its resume (handoff.model.Episode)."""

    @property
    def conversation_id(self) -> str: ...
    @property
    def paused_at(self) -> datetime: ...


class HandoffLog(Protocol):
    """What is read of the handoff (handoff.service.Handoff)."""

    async def states_of(self, conversation_ids: Collection[str]) -> Mapping[str, HandoffState]: ...
    async def episodes(self, page_id: str | None, since: datetime,
                       until: datetime) -> Sequence[HandoffEpisode]: ...


class AnswerJournal(Protocol):
    """What is read of the answer journal (answers.service.Answers): the handling of the person's latest question
    on the page journaled since a time (it keys the person by its own pseudonym)."""

    def latest_handling(self, page_id: str, psid: str, since: datetime) -> str | None: ...


def is_paused(row: HandoffState | None) -> bool:
    """Handed to a person now (no row: the bot always handled the conversation)."""
    return row is not None and row.state == "paused"


def conversation_start(last_user_message_at: datetime) -> datetime:
    """Where a conversation begins, for the survey's rules: 24 hours before the person's last message."""
    return last_user_message_at - CONVERSATION_GAP


def candidate_range(now: datetime, after: timedelta) -> tuple[datetime, datetime]:
    """[since, until) of the recording times looked at: from N + 60 to N minutes ago."""
    until = now - after
    return until - CATCH_UP, until


def why_not_due(last_user_message_at: datetime, now: datetime, after: timedelta, *, paused_now: bool,
                last_pause: datetime | None) -> NotResolved | None:
    """The rule's time and handoff part, pure: None when the person's last message is N to N + 60 minutes old and
    nobody of the team was involved since the conversation began (`last_pause`: the latest pause known, None:
    none), else why not."""
    age = now - last_user_message_at
    if age < after:
        return NotResolved.TOO_RECENT
    if age > after + CATCH_UP:
        return NotResolved.TOO_OLD
    if paused_now:
        return NotResolved.PAUSED
    if last_pause is not None and last_pause >= conversation_start(last_user_message_at):
        return NotResolved.PERSON_INVOLVED
    return None


def why_not_answered(handling: str | None) -> NotResolved | None:
    """The rule's answer part, pure: None when the person's latest question (`handling`, None: none journaled since
    the conversation began) was answered by the bot, else why not."""
    if handling is None:
        return NotResolved.NO_QUESTION
    if handling not in RESOLVED_HANDLINGS:
        return NotResolved.NOT_ANSWERED
    return None


@dataclass(frozen=True)
class Candidate:
    """A conversation looked at in a round, with what the rule reads of it."""

    seen: ConversationSeen
    conversation_id: str
    paused_now: bool
    last_pause: datetime | None


class BotSurveys:
    """Asks after the conversations the bot resolved on its own, `after_minutes` after the person's last message
    (0: never). `catch_up` is one round: the app runs it every minute with the close catch-up."""

    def __init__(self, csat: Csat, handoff: HandoffLog, answers: AnswerJournal, *, after_minutes: int,
                 conversation_id_of: Callable[[str, str], str], page_size: int = PAGE_SIZE) -> None:
        self.csat = csat
        self.handoff = handoff
        self.answers = answers
        self.after = timedelta(minutes=after_minutes) if after_minutes > 0 else None
        self.conversation_id_of = conversation_id_of  # handoff.model.conversation_id_of
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.page_size = page_size

    @property
    def is_on(self) -> bool:
        return self.after is not None and self.csat.how is not None

    async def catch_up(self, now: datetime | None = None) -> list[Ask]:
        """Ask for every conversation of the catch-up range the bot resolved (an ask made before is returned, not
        made again). A conversation whose ask fails is logged; the others are still asked, and the next round tries
        it again."""
        if self.after is None or self.csat.how is None:
            return []
        now = now or self.csat.clock()
        since, until = candidate_range(now, self.after)
        asks: list[Ask] = []
        previous: ConversationSeen | None = None
        while True:
            page = await self.csat.outbox.conversations_recorded_between(since, until, self.page_size, previous)
            for candidate in await self._candidates(page, now):
                try:
                    ask = await self._ask_if_resolved(candidate, now)
                except Exception:  # the journal or the outbox failed for this one: the next round tries again
                    logger.exception("asking for a rating of the bot failed",
                                     extra={"conversation_id": candidate.conversation_id})
                    continue
                if ask is not None:
                    asks.append(ask)
            if len(page) < self.page_size:
                return asks
            previous = page[-1]

    async def _candidates(self, page: Sequence[ConversationSeen], now: datetime) -> list[Candidate]:
        """The page's conversations with their handoff state and latest pause (two reads for the whole page)."""
        if not page:
            return []
        ids = [self.conversation_id_of(seen.page_id, seen.user_id) for seen in page]
        states = await self.handoff.states_of(ids)
        earliest = conversation_start(min(seen.last_user_message_at for seen in page))
        last_pause: dict[str, datetime] = {}
        for episode in await self.handoff.episodes(None, earliest, now):
            known = last_pause.get(episode.conversation_id)
            if known is None or episode.paused_at > known:
                last_pause[episode.conversation_id] = episode.paused_at
        return [Candidate(seen, key, is_paused(states.get(key)), last_pause.get(key))
                for seen, key in zip(page, ids, strict=True)]

    async def _ask_if_resolved(self, candidate: Candidate, now: datetime) -> Ask | None:
        """Ask when the rule holds (the journal is read only for a conversation whose time and handoff part hold)."""
        assert self.after is not None
        seen = candidate.seen
        reason = why_not_due(seen.last_user_message_at, now, self.after, paused_now=candidate.paused_now,
                             last_pause=candidate.last_pause)
        if reason is None:
            asked = await self.csat.asked_after_bot(candidate.conversation_id, seen.last_user_message_at)
            if asked is not None and asked.status is not AskStatus.ASKING:
                return asked  # asked in an earlier round (a crash mid-ask is finished below)
            handling = await asyncio.to_thread(self.answers.latest_handling, seen.page_id, seen.user_id,
                                               conversation_start(seen.last_user_message_at))
            reason = why_not_answered(handling)
        if reason is not None:
            logger.debug("satisfaction not asked about the bot", extra={
                "conversation_id": candidate.conversation_id, "reason": reason.value})
            return None
        return await self.csat.ask_after_bot(candidate.conversation_id, seen.page_id, seen.user_id,
                                             seen.last_user_message_at, now)
