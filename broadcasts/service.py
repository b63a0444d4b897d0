"""Broadcasts as the console and the app see them (`Broadcasts`): drafts, the dry run, sending now or later,
cancelling, the report, the failed list and retrying it, and the runner that does the sending.

The runner (`run_once`, every BROADCASTS_POLL_SECONDS in the app's `run`) moves a due SCHEDULED broadcast to
SENDING, then walks its audience by the contacts' internal id in batches (`PLAN_BATCH`): each contact is decided
as in the dry run (`broadcasts.planner.decide_recipient`), the recipients are written (skipped with a reason, or
queued), the queued ones are enqueued in the outbox in one transaction (`Outbox.enqueue_many`) with a key per
broadcast, person, attempt and part and a send time spread at the page's broadcast rate, and only then the planning
cursor is saved. A crash anywhere runs the batch again: the recipient rows already written keep what was decided,
the keys make the outbox hand back the same messages, so nobody gets it twice. Each round also reads what the
outbox did with the queued recipients (sent, blocked by the policy at send time, failed with Meta's code,
delivered and read from receipts), finishes a broadcast when nobody is still in the outbox, and keeps reading
receipts for `RECEIPTS_DAYS` after that.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import builtins
import contextlib
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple, Protocol

from broadcasts import planner, report
from broadcasts.model import (
    STATUS_ES,
    Broadcast,
    BroadcastDraft,
    BroadcastInvalid,
    BroadcastNotFound,
    BroadcastStateError,
    BroadcastStatus,
    DryRun,
    FailedRecipient,
    Recipient,
    RecipientState,
    Report,
    RetryResult,
)
from broadcasts.store import BroadcastStore, Outcome, PlanState
from contacts.model import Audience, Contact
from contacts.store import ContactsStore
from core.offload import Offload
from handoff.model import Conversation, ConversationState, conversation_id_of
from outbox.model import InvalidTransition, NewMessage, NotFound, OutboxMessage
from outbox.outbox import Outbox

logger = logging.getLogger(__name__)

PLAN_BATCH = 500  # contacts planned (and recipients enqueued) per round and broadcast
AUDIENCE_PAGE = 1000  # contacts per audience read of the dry run
REFRESH_BATCH = 1000  # outbox messages read per `states_of`
REFRESH_ROWS = 2000  # recipients refreshed per round and broadcast
RECEIPTS_DAYS = 7  # delivered/read keep being read this long after a broadcast ends
EXAMPLES = 5
MAX_LIST = 200
MAX_AUTHOR = 200
SEND_AT_SLACK = timedelta(minutes=1)  # a "send at" this far in the past is "now" (a clock a bit behind)
MAX_SCHEDULE_AHEAD = timedelta(days=365)
_CURSOR_PREFIX = "b1:"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class HandoffStates(Protocol):
    """What the broadcasts ask of the handoff (`handoff.service.Handoff` has it): which conversations are paused."""

    async def states_of(self, conversation_ids: Collection[str]) -> dict[str, Conversation]: ...


def encode_cursor(broadcast_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{broadcast_id}".encode()).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        number = text[len(_CURSOR_PREFIX):]
        if text.startswith(_CURSOR_PREFIX) and number.isdigit() and 0 < int(number) < 2**63:
            return int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise BroadcastInvalid("cursor", "El cursor de la página no es válido; vuelva a la primera página.")


def _check_author(author: Any) -> str:
    if not isinstance(author, str) or not author.strip() or len(author) > MAX_AUTHOR:
        raise BroadcastInvalid("author", f"El autor debe tener de 1 a {MAX_AUTHOR} caracteres.")
    return author


class _Person(NamedTuple):
    psid: str
    name: str
    last_user_message_at: datetime | None


def _people(contacts: Sequence[Contact]) -> list[_Person]:
    return [_Person(contact.psid, contact.display_name, contact.last_user_message_at) for contact in contacts]


@dataclass
class _Tally:
    """The dry run's counts as the audience is walked."""

    audience: int = 0
    will_send: int = 0
    outside_window: int = 0

    def __post_init__(self) -> None:
        self.skipped: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}
        self.first_reason: dict[str, str] = {}

    def add(self, verdict: planner.Verdict) -> None:
        self.audience += 1
        self.outside_window += verdict.outside_window
        if verdict.send:
            self.will_send += 1
            return
        code = verdict.reason_code or "unknown"
        self.skipped[code] = self.skipped.get(code, 0) + 1
        names = self.examples.setdefault(code, [])
        if len(names) < EXAMPLES:
            names.append(verdict.name)
        if verdict.decision is not None:
            self.first_reason.setdefault(code, verdict.decision.reason_es)


class Broadcasts:
    """The broadcasts of every page: what the console's pages and API call, and the runner the app starts."""

    def __init__(self, store: BroadcastStore, contacts: ContactsStore, outbox: Outbox, handoff: HandoffStates,
                 page_rate: float = 10.0, clock: Callable[[], datetime] = utc_now) -> None:
        if not page_rate > 0:
            raise ValueError("page_rate must be positive")
        self.store = store
        self.contacts = contacts
        self.outbox = outbox
        self.handoff = handoff
        self.page_rate = page_rate
        self.clock = clock
        self._store_thread = Offload("broadcasts-store")
        self._contacts_thread = Offload("broadcasts-contacts")
        self._wake = asyncio.Event()
        self._planning = False  # the last round enqueued a batch (more may be left)

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self._store_thread.run(fn, *args)

    async def _contacts(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self._contacts_thread.run(fn, *args)

    def close(self) -> None:
        """End the store threads (the stores themselves are the caller's to close)."""
        self._store_thread.close()
        self._contacts_thread.close()

    @property
    def standard_window(self) -> timedelta:
        return self.outbox.reply_windows().standard

    # --- drafts --------------------------------------------------------------------------------------------------

    async def create(self, draft: BroadcastDraft, author: str) -> Broadcast:
        broadcast: Broadcast = await self._db(self.store.create, draft, _check_author(author), self.clock())
        logger.info("broadcast created", extra={"broadcast_id": broadcast.id, "page_id": draft.page_id})
        return broadcast

    async def update(self, broadcast_id: int, draft: BroadcastDraft, author: str) -> Broadcast:
        """Only a draft can be edited."""
        _check_author(author)
        current = await self.get(broadcast_id)
        if not await self._db(self.store.update_draft, broadcast_id, draft, self.clock()):
            raise self._not_editable(await self.get(broadcast_id) if current else current)
        return await self.get(broadcast_id)

    async def delete(self, broadcast_id: int) -> None:
        """Only a draft can be deleted (a sent one stays for its report)."""
        current = await self.get(broadcast_id)
        if not await self._db(self.store.delete_draft, broadcast_id):
            raise self._not_editable(current)

    @staticmethod
    def _not_editable(broadcast: Broadcast) -> BroadcastStateError:
        return BroadcastStateError("broadcast_not_editable",
                                   f"Solo se puede cambiar o borrar un borrador; esta transmisión está "
                                   f"«{STATUS_ES[broadcast.status]}».")

    async def get(self, broadcast_id: int) -> Broadcast:
        found: Broadcast | None = await self._db(self.store.get, broadcast_id)
        if found is None:
            raise BroadcastNotFound(broadcast_id)
        return found

    async def list(self, page_id: str | None = None, limit: int = 50,
                   after: str | None = None) -> tuple[builtins.list[Broadcast], str | None]:
        """Newest first; the cursor of the next page, or None on the last."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
            raise BroadcastInvalid("limit", f"El límite debe estar entre 1 y {MAX_LIST}.")
        before_id = decode_cursor(after) if after is not None else None
        rows: builtins.list[Broadcast] = await self._db(self.store.list, page_id, limit + 1, before_id)
        shown = rows[:limit]
        return shown, encode_cursor(shown[-1].id) if len(rows) > limit else None

    # --- deciding --------------------------------------------------------------------------------------------------

    async def _verdicts(self, draft: BroadcastDraft, people: Sequence[_Person], now: datetime) \
            -> builtins.list[planner.Verdict]:
        """The decision for each person of one batch: two reads (paused, unreachable), then pure."""
        wrote = [person.psid for person in people if person.last_user_message_at is not None]
        ids = [conversation_id_of(draft.page_id, psid) for psid in wrote]
        states = await self.handoff.states_of(ids) if ids else {}
        paused = {conversation.user_id for conversation in states.values()
                  if conversation.state is ConversationState.PAUSED}
        unreachable: dict[str, str] = {}
        for start in range(0, len(wrote), AUDIENCE_PAGE):
            unreachable.update(await self.outbox.unreachable(draft.page_id, wrote[start:start + AUDIENCE_PAGE]))
        standard = self.standard_window
        return [planner.decide_recipient(draft, person.psid, person.name, person.last_user_message_at,
                                         person.psid in paused, unreachable.get(person.psid), self.outbox.decide,
                                         standard, now)
                for person in people]

    async def dry_run(self, draft: BroadcastDraft) -> DryRun:
        """Who would receive it now and why each group would not; nothing is written."""
        now = self.clock()
        tally = _Tally()
        after = 0
        while True:
            page = await self._contacts(self.contacts.audience, draft.audience, after, AUDIENCE_PAGE)
            for verdict in await self._verdicts(draft, _people(page.contacts), now):
                tally.add(verdict)
            if page.next_after is None:
                break
            after = page.next_after
        reasons = report.reasons_for(tally.skipped, self.standard_window)
        for code, sentence in tally.first_reason.items():
            if code not in report.REASONS_ES:
                reasons[code] = sentence  # a policy refusal worded by outbox.wording
        return DryRun(audience=tally.audience, will_send=tally.will_send, outside_window=tally.outside_window,
                      skipped=tally.skipped, reasons_es=reasons,
                      estimated_seconds=tally.will_send / self.page_rate, examples=tally.examples)

    # --- sending ---------------------------------------------------------------------------------------------------

    async def send(self, broadcast_id: int, author: str, send_at: datetime | None = None) -> Broadcast:
        """DRAFT → SCHEDULED, for now (`send_at` None) or later; the runner starts it when due."""
        _check_author(author)
        now = self.clock()
        if send_at is not None:
            if not isinstance(send_at, datetime) or send_at.tzinfo is None:
                raise BroadcastInvalid("send_at", "La fecha de envío debe indicar la zona horaria (por ejemplo "
                                                  "2026-12-01T15:00:00-05:00).")
            send_at = send_at.astimezone(timezone.utc)
            if send_at < now - SEND_AT_SLACK:
                raise BroadcastInvalid("send_at", "La fecha de envío ya pasó; elija una fecha futura o «Enviar "
                                                  "ahora».")
            if send_at > now + MAX_SCHEDULE_AHEAD:
                raise BroadcastInvalid("send_at", "Una transmisión se puede programar como máximo con un año de "
                                                  "anticipación.")
        current = await self.get(broadcast_id)
        if not await self._db(self.store.schedule, broadcast_id, max(send_at or now, now), now):
            raise BroadcastStateError("broadcast_not_editable",
                                      f"Solo se puede enviar un borrador; esta transmisión está "
                                      f"«{STATUS_ES[(await self.get(broadcast_id)).status]}».")
        logger.info("broadcast scheduled", extra={"broadcast_id": broadcast_id, "page_id": current.page_id,
                                                  "by": author})
        self._wake.set()
        return await self.get(broadcast_id)

    async def cancel(self, broadcast_id: int, author: str) -> Broadcast:
        """SCHEDULED or SENDING → CANCELLED; the messages still waiting in the outbox are cancelled (those already
        sent stay sent)."""
        _check_author(author)
        current = await self.get(broadcast_id)
        if not await self._db(self.store.cancel, broadcast_id, author, self.clock()):
            raise BroadcastStateError("broadcast_not_cancellable",
                                      f"Solo se puede cancelar una transmisión programada o en envío; esta está "
                                      f"«{STATUS_ES[(await self.get(broadcast_id)).status]}».")
        logger.info("broadcast cancelled", extra={"broadcast_id": broadcast_id, "page_id": current.page_id,
                                                  "by": author})
        await self._cancel_queued(broadcast_id)
        await self._refresh(await self.get(broadcast_id))
        return await self.get(broadcast_id)

    async def _cancel_queued(self, broadcast_id: int) -> None:
        after = ""
        while True:
            rows: builtins.list[Recipient] = await self._db(self.store.recipients_in, broadcast_id,
                                                   (RecipientState.QUEUED,), after, REFRESH_BATCH)
            for recipient in rows:
                for outbox_id in recipient.outbox_ids:
                    with contextlib.suppress(InvalidTransition, NotFound):  # already claimed, sent or gone
                        await self.outbox.cancel(outbox_id)
            if len(rows) < REFRESH_BATCH:
                return
            after = rows[-1].psid

    # --- the runner ------------------------------------------------------------------------------------------------

    async def run_once(self) -> int:
        """One round: start the due broadcasts, plan and enqueue one batch of each sending broadcast, read back
        what the outbox did. How many recipients were planned or changed (0: nothing to do)."""
        now = self.clock()
        for broadcast_id in await self._db(self.store.start_due, now):
            logger.info("broadcast started", extra={"broadcast_id": broadcast_id})
        work = 0
        self._planning = False
        for broadcast_id in await self._db(self.store.ids_to_refresh, now - timedelta(days=RECEIPTS_DAYS)):
            broadcast = await self.get(broadcast_id)
            if broadcast.status is BroadcastStatus.SENDING:
                planned = await self._plan_batch(broadcast)
                self._planning = self._planning or planned > 0
                work += planned
                broadcast = await self.get(broadcast_id)  # a cancel may have landed meanwhile
            work += await self._refresh(broadcast)
            if broadcast.status is BroadcastStatus.SENDING and \
                    await self._db(self.store.finish_if_complete, broadcast_id, self.clock()):
                logger.info("broadcast done", extra={"broadcast_id": broadcast_id})
        return work

    async def run(self, poll_seconds: float) -> None:
        """The app's task until cancelled: a round, then the next one at once while an audience is still being
        enqueued, else after `poll_seconds` (or at once when a broadcast is sent now or retried). Errors are logged
        and the loop goes on."""
        while True:
            self._planning = False
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("broadcast runner round failed")
            if self._planning:  # more of an audience to enqueue: the next batch now
                await asyncio.sleep(0)
                continue
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=poll_seconds)

    async def _plan_batch(self, broadcast: Broadcast) -> int:
        """The next `PLAN_BATCH` contacts of the audience: decided, written, enqueued, then the cursor saved."""
        plan: PlanState = await self._db(self.store.plan_state, broadcast.id)
        if plan.done:
            return 0
        page = await self._contacts(self.contacts.audience, broadcast.audience, plan.after, PLAN_BATCH)
        now = self.clock()
        verdicts = await self._verdicts(broadcast.draft, _people(page.contacts), now)
        rows = []
        position = plan.queued
        for verdict in verdicts:
            rows.append(Recipient(broadcast_id=broadcast.id, page_id=broadcast.page_id, psid=verdict.psid,
                                  name=verdict.name,
                                  state=RecipientState.QUEUED if verdict.send else RecipientState.SKIPPED,
                                  position=position if verdict.send else 0, reason_code=verdict.reason_code))
            position += verdict.send
        await self._db(self.store.add_recipients, rows, now)
        # What is stored wins: a batch run again after a crash keeps its first decisions and positions.
        stored: dict[str, Recipient] = await self._db(self.store.recipients_of, broadcast.id,
                                                      [row.psid for row in rows])
        queued = [stored[row.psid] for row in rows
                  if row.psid in stored and stored[row.psid].state is RecipientState.QUEUED
                  and stored[row.psid].attempt == 0]
        start = broadcast.started_at or now
        await self._enqueue(broadcast, [(recipient, planner.send_time(start, recipient.position, self.page_rate))
                                        for recipient in queued])
        if (await self.get(broadcast.id)).status is BroadcastStatus.CANCELLED:  # cancelled while enqueuing
            await self._cancel_queued(broadcast.id)
            return len(rows)
        last_position = max((recipient.position for recipient in queued), default=plan.queued - 1)
        await self._db(self.store.save_plan, broadcast.id,
                       PlanState(page.next_after if page.next_after is not None else plan.after,
                                 page.next_after is None, max(plan.queued, last_position + 1)), self.clock())
        return len(rows)

    async def _enqueue(self, broadcast: Broadcast, recipients: Sequence[tuple[Recipient, datetime]]) -> None:
        """The recipients' messages into the outbox (batches of at most 1000 messages, one transaction each), then
        their outbox ids onto their rows."""
        draft = broadcast.draft
        parts = len(draft.content.messages())
        per_batch = max(1, 1000 // parts)
        for start in range(0, len(recipients), per_batch):
            chunk = recipients[start:start + per_batch]
            news: builtins.list[NewMessage] = []
            for recipient, not_before in chunk:
                news.extend(planner.new_messages(draft, broadcast.id, recipient.psid, recipient.attempt, not_before))
            stored = await self.outbox.enqueue_many(news)
            ids = [(recipient.psid, recipient.attempt,
                    [message.id for message, _ in stored[index * parts:(index + 1) * parts]])
                   for index, (recipient, _) in enumerate(chunk)]
            await self._db(self.store.set_outbox_ids, broadcast.id, ids, self.clock())

    async def _refresh(self, broadcast: Broadcast) -> int:
        """Read back what the outbox did with the recipients still on their way (and receipts of the sent)."""
        rows: builtins.list[Recipient] = await self._db(self.store.to_refresh, broadcast.id, REFRESH_ROWS)
        rows = [row for row in rows if row.outbox_ids]
        changed = 0
        cancelled = broadcast.status is BroadcastStatus.CANCELLED
        index = 0
        while index < len(rows):
            chunk: builtins.list[Recipient] = []
            ids: builtins.list[int] = []
            while index < len(rows) and len(ids) + len(rows[index].outbox_ids) <= REFRESH_BATCH:
                chunk.append(rows[index])
                ids.extend(rows[index].outbox_ids)
                index += 1
            messages: dict[int, OutboxMessage] = await self.outbox.states_of(ids)
            outcomes = []
            waiting = []
            for recipient in chunk:
                found = planner.outcome_of([messages.get(outbox_id) for outbox_id in recipient.outbox_ids],
                                           cancelled)
                if found is None:
                    waiting.append(recipient.psid)
                    continue
                outcome = Outcome(recipient.psid, recipient.attempt, found.state, found.reason_code,
                                  found.error_code, found.sent_at, found.delivered_at, found.read_at)
                if (outcome.state, outcome.delivered_at, outcome.read_at, outcome.reason_code) != (
                        recipient.state, recipient.delivered_at, recipient.read_at, recipient.reason_code):
                    changed += 1
                outcomes.append(outcome)
            await self._db(self.store.set_outcomes, broadcast.id, outcomes, self.clock())
            await self._db(self.store.touch_refreshed, broadcast.id, waiting, self.clock())
        return changed

    # --- the report and the failed ones -----------------------------------------------------------------------

    async def report(self, broadcast_id: int) -> Report:
        broadcast = await self.get(broadcast_id)
        counts = await self._db(self.store.counts, broadcast_id)
        retryable = 0
        if any(group.state in (RecipientState.FAILED, RecipientState.BLOCKED) for group in counts):
            retryable = len((await self._retryable(broadcast, self.clock()))[0])
        return report.build_report(broadcast, counts, retryable, self.standard_window)

    async def failed(self, broadcast_id: int) -> builtins.list[FailedRecipient]:
        """Everyone who did not receive it (skipped, blocked, failed, cancelled), by PSID, with why in Spanish."""
        await self.get(broadcast_id)
        standard = self.standard_window
        found: builtins.list[FailedRecipient] = []
        after = ""
        while True:
            rows: builtins.list[Recipient] = await self._db(self.store.recipients_in, broadcast_id,
                                                            report.FAILED_STATES, after, REFRESH_BATCH)
            found.extend(FailedRecipient(row.psid, row.name, row.state, row.reason_code,
                                         report.reason_es(row.reason_code, standard, row.error_code), row.error_code)
                         for row in rows)
            if len(rows) < REFRESH_BATCH:
                return found
            after = rows[-1].psid

    def failed_csv(self, rows: builtins.list[FailedRecipient]) -> bytes:
        return report.failed_csv(rows)

    async def _retryable(self, broadcast: Broadcast, now: datetime) \
            -> tuple[builtins.list[Recipient], dict[str, int]]:
        """The failed and blocked recipients the broadcast may send to now, and the others by reason."""
        allowed: builtins.list[Recipient] = []
        refused: dict[str, int] = {}
        after = ""
        while True:
            rows: builtins.list[Recipient] = await self._db(self.store.recipients_in, broadcast.id,
                                                   (RecipientState.FAILED, RecipientState.BLOCKED), after,
                                                   AUDIENCE_PAGE)
            people = []
            for row in rows:  # the outbox's own record of their last message: what its worker decides by
                window = await self.outbox.conversation_window(broadcast.page_id, row.psid)
                people.append(_Person(row.psid, row.name, window.last_user_message_at))
            by_psid = {row.psid: row for row in rows}
            for verdict in await self._verdicts(broadcast.draft, people, now):
                if verdict.send:
                    allowed.append(by_psid[verdict.psid])
                else:
                    code = verdict.reason_code or "unknown"
                    refused[code] = refused.get(code, 0) + 1
            if len(rows) < AUDIENCE_PAGE:
                return allowed, refused
            after = rows[-1].psid

    async def retry_failed(self, broadcast_id: int, author: str) -> RetryResult:
        """The failed and blocked recipients whose send the policy allows now go out again (their next attempt:
        a new key); the others are counted by reason."""
        _check_author(author)
        broadcast = await self.get(broadcast_id)
        if broadcast.status not in (BroadcastStatus.SENDING, BroadcastStatus.DONE):
            raise BroadcastStateError("broadcast_not_retryable",
                                      f"Solo se reintentan los fallidos de una transmisión enviada o en envío; esta "
                                      f"está «{STATUS_ES[broadcast.status]}».")
        now = self.clock()
        allowed, refused = await self._retryable(broadcast, now)
        plan: PlanState = await self._db(self.store.plan_state, broadcast_id)
        retried = [(row.psid, row.attempt + 1, plan.queued + index) for index, row in enumerate(allowed)]
        await self._db(self.store.requeue, broadcast_id, retried, now)
        stored: dict[str, Recipient] = await self._db(self.store.recipients_of, broadcast_id,
                                                      [row.psid for row in allowed])
        again = [stored[psid] for psid, attempt, _ in retried if psid in stored and stored[psid].attempt == attempt]
        await self._enqueue(broadcast, [(recipient, planner.send_time(now, index, self.page_rate))
                                        for index, recipient in enumerate(again)])
        if again and broadcast.status is BroadcastStatus.DONE:
            await self._db(self.store.reopen, broadcast_id, now)
        logger.info("broadcast failed recipients retried", extra={"broadcast_id": broadcast_id, "by": author,
                                                                   "requeued": len(again)})
        self._wake.set()
        return RetryResult(requeued=len(again), still_refused=refused)


__all__ = ["Audience", "Broadcasts", "HandoffStates"]
