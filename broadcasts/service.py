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
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple, Protocol

from broadcasts import planner, report
from broadcasts.model import (
    BROADCAST_TAGS,
    CONVERSATION_PAUSED,
    STATUS_ES,
    Broadcast,
    BroadcastDraft,
    BroadcastInvalid,
    BroadcastNotFound,
    BroadcastStateError,
    BroadcastStatus,
    DryRun,
    FailedRecipient,
    PartsOutcome,
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
from outbox.model import NewMessage, OutboxMessage, Purpose, SenderKind
from outbox.outbox import Outbox
from outbox.policy import ConversationWindow

logger = logging.getLogger(__name__)

PLAN_BATCH = 500  # contacts planned (and recipients enqueued) per round and broadcast
AUDIENCE_PAGE = 1000  # contacts per audience read of the dry run
REFRESH_BATCH = 1000  # outbox messages read per `states_of`
REFRESH_ROWS = 2000  # recipients refreshed per round and broadcast
RECEIPTS_DAYS = 7  # delivered/read keep being read this long after a broadcast ends
EXAMPLES = 5
MAX_LIST = 200
MAX_AUTHOR = 200
LEASE = timedelta(seconds=60)  # a runner (app process) works on a broadcast this long unless it renews
FINISHED_REFRESH = timedelta(minutes=5)  # a done or cancelled broadcast's receipts are read this often
RETRYABLE_TTL = timedelta(seconds=30)  # the report's "retryable" count is read again after this
MIN_YEAR, MAX_YEAR = 2000, 2100  # a "send at" outside these years is a typo
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


def broadcast_rate(broadcast_page_rate: float, outbox_page_rate: float) -> float:
    """Pure: the rate broadcasts are planned at: BROADCAST_PAGE_RATE, never faster than the outbox's own page rate
    (which sends them), and that alone when the outbox's limit is off (0)."""
    return min(broadcast_page_rate, outbox_page_rate) if outbox_page_rate > 0 else broadcast_page_rate


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
        self.runner_id = f"runner-{uuid.uuid4().hex[:12]}"  # this process's name on the broadcasts' leases
        self._leases: dict[int, datetime] = {}  # broadcast → until when this runner holds it
        self._next_visit: dict[int, datetime] = {}  # settled done/cancelled broadcast → when to read receipts next
        self._retryable_cache: dict[int, tuple[Any, datetime, int]] = {}  # broadcast → (counts, read at, count)

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
        paused = await self._paused(draft.page_id, wrote)
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

    def usable_tags(self, now: datetime | None = None) -> builtins.list[str]:
        """The message tags a broadcast can use now: those the outbox's policy lets a non-promotional broadcast
        send with outside the 24-hour window (retired tags, and tags a broadcast's content never fits, are not)."""
        now = now or self.clock()
        window = ConversationWindow(now - self.standard_window - timedelta(hours=1))
        return [tag for tag in sorted(BROADCAST_TAGS)
                if self.outbox.decide(NewMessage(page_id="0", recipient_id="0", message={"text": "x"},
                                                 sender=SenderKind.SYSTEM, purpose=Purpose.FOLLOW_UP, tag=tag,
                                                 promotional=False), window, now).allowed]

    # --- sending ---------------------------------------------------------------------------------------------------

    async def send(self, broadcast_id: int, author: str, send_at: datetime | None = None) -> Broadcast:
        """DRAFT → SCHEDULED, for now (`send_at` None) or later; the runner starts it when due."""
        _check_author(author)
        now = self.clock()
        if send_at is not None:
            send_at = _check_send_at(send_at, now)
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
        """SCHEDULED or SENDING → CANCELLED; the messages still waiting in the outbox are cancelled in one statement
        (those already sent stay sent). The runner cancels again each round while any recipient is still queued, so
        a cancel interrupted here (a timeout, a restart, a database error) still stops the broadcast."""
        _check_author(author)
        current = await self.get(broadcast_id)
        if not await self._db(self.store.cancel, broadcast_id, author, self.clock()):
            raise BroadcastStateError("broadcast_not_cancellable",
                                      f"Solo se puede cancelar una transmisión programada o en envío; esta está "
                                      f"«{STATUS_ES[(await self.get(broadcast_id)).status]}».")
        logger.info("broadcast cancelled", extra={"broadcast_id": broadcast_id, "page_id": current.page_id,
                                                  "by": author})
        self._wake.set()
        await self._cancel_remaining(broadcast_id)
        return await self.get(broadcast_id)

    async def _cancel_remaining(self, broadcast_id: int) -> int:
        """A cancelled broadcast's pending outbox messages → cancelled (one statement), and its queued recipients
        that never reached the outbox → cancelled. Idempotent. How many messages were cancelled."""
        cancelled: int = await self.outbox.cancel_pending_by_key_prefix(planner.recipient_key_prefix(broadcast_id))
        await self._db(self.store.cancel_unenqueued, broadcast_id, self.clock())
        return cancelled

    # --- the runner ------------------------------------------------------------------------------------------------

    async def run_once(self) -> int:
        """One round: start the due broadcasts; for each broadcast this runner holds the lease of, plan one batch,
        enqueue the queued recipients not in the outbox yet, finish a cancel, read back what the outbox did. How
        many recipients were planned, enqueued or changed (0: nothing to do)."""
        now = self.clock()
        for broadcast_id in await self._db(self.store.start_due, now):
            logger.info("broadcast started", extra={"broadcast_id": broadcast_id})
        work = 0
        self._planning = False
        for broadcast_id in await self._db(self.store.ids_to_refresh, now - timedelta(days=RECEIPTS_DAYS)):
            broadcast = await self.get(broadcast_id)
            finished = broadcast.status is not BroadcastStatus.SENDING
            if finished and self._next_visit.get(broadcast_id, now) > now:
                continue  # done or cancelled and settled: read receipts at a slower pace
            if not await self._take_lease(broadcast_id, now):
                continue  # another runner (app process) works on it
            work += await self._round(broadcast)
        return work

    async def _round(self, broadcast: Broadcast) -> int:
        work = 0
        if broadcast.status is BroadcastStatus.SENDING:
            planned = await self._plan_batch(broadcast)
            enqueued = await self._enqueue_waiting(broadcast)
            self._planning = self._planning or planned > 0 or enqueued > 0
            work += planned + enqueued
            broadcast = await self.get(broadcast.id)  # a cancel may have landed meanwhile
        if broadcast.status is BroadcastStatus.CANCELLED and await self._db(self.store.has_queued, broadcast.id):
            await self._cancel_remaining(broadcast.id)
        unsettled = broadcast.status is BroadcastStatus.SENDING or \
            await self._db(self.store.has_queued, broadcast.id)
        now = self.clock()
        work += await self._refresh(broadcast, now if unsettled else now - FINISHED_REFRESH)
        if broadcast.status is BroadcastStatus.SENDING and \
                await self._db(self.store.finish_if_complete, broadcast.id, self.clock()):
            logger.info("broadcast done", extra={"broadcast_id": broadcast.id})
        if unsettled:
            self._next_visit.pop(broadcast.id, None)
        else:
            self._next_visit[broadcast.id] = now + FINISHED_REFRESH
        return work

    async def _take_lease(self, broadcast_id: int, now: datetime) -> bool:
        """This runner's lease on the broadcast: renewed when half of it is gone (one write per half lease)."""
        if self._leases.get(broadcast_id, now) > now + LEASE / 2:
            return True
        until = now + LEASE
        if not await self._db(self.store.take_lease, broadcast_id, self.runner_id, now, until):
            self._leases.pop(broadcast_id, None)
            return False
        self._leases[broadcast_id] = until
        return True

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
        """The next `PLAN_BATCH` contacts of the audience: decided and written (skipped, or queued for
        `_enqueue_waiting`), then the cursor saved. A batch run again keeps its first decisions."""
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
        await self._db(self.store.save_plan, broadcast.id,
                       PlanState(page.next_after if page.next_after is not None else plan.after,
                                 page.next_after is None, position), plan.after, self.clock())
        return len(rows)

    async def _enqueue_waiting(self, broadcast: Broadcast) -> int:
        """Up to `PLAN_BATCH` queued recipients with no outbox messages yet (just planned, retried, or left by a
        runner that died) into the outbox. Before: those whose conversation a person took over meanwhile are
        cancelled instead. After: the same check again (a pause landing while enqueuing), and the broadcast's
        status (a cancel landing while enqueuing)."""
        rows: builtins.list[Recipient] = await self._db(self.store.to_enqueue, broadcast.id, PLAN_BATCH)
        if not rows:
            return 0
        paused = await self._paused(broadcast.page_id, [row.psid for row in rows])
        if paused:
            await self._db(self.store.set_outcomes, broadcast.id, [
                Outcome(row.psid, row.attempt, PartsOutcome(RecipientState.CANCELLED, CONVERSATION_PAUSED,
                                                            sent_parts=row.sent_parts))
                for row in rows if row.psid in paused], self.clock())
        waiting = [row for row in rows if row.psid not in paused]
        await self._enqueue(broadcast, waiting)
        for psid in await self._paused(broadcast.page_id, [row.psid for row in waiting]):
            await self.outbox.cancel_pending_by_key_prefix(planner.recipient_key_prefix(broadcast.id, psid))
        if (await self.get(broadcast.id)).status is BroadcastStatus.CANCELLED:  # cancelled while enqueuing
            await self._cancel_remaining(broadcast.id)
        return len(rows)

    async def _paused(self, page_id: str, psids: Sequence[str]) -> set[str]:
        """Of these people, those whose conversation a person holds now (one read)."""
        if not psids:
            return set()
        states = await self.handoff.states_of([conversation_id_of(page_id, psid) for psid in psids])
        return {conversation.user_id for conversation in states.values()
                if conversation.state is ConversationState.PAUSED}

    async def _enqueue(self, broadcast: Broadcast, recipients: Sequence[Recipient]) -> None:
        """The recipients' messages into the outbox (batches of at most 1000 messages, one transaction each), at
        the page's broadcast rate from slots reserved for the batch (`BroadcastStore.reserve_slots`, shared by every
        broadcast of the page), then their outbox ids onto their rows. Parts a recipient already got are not sent
        again: their SENT message stands for that part."""
        draft = broadcast.draft
        parts = len(draft.content.messages())
        per_batch = max(1, 1000 // parts)
        for start in range(0, len(recipients), per_batch):
            chunk = recipients[start:start + per_batch]
            first = await self._db(self.store.reserve_slots, broadcast.page_id, len(chunk), self.page_rate,
                                   self.clock())
            planned = [planner.new_messages(draft, broadcast.id, recipient.psid, recipient.attempt,
                                            planner.send_time(first, index, self.page_rate), recipient.sent_parts)
                       for index, recipient in enumerate(chunk)]
            stored = await self.outbox.enqueue_many([new for news in planned for _, new in news])
            ids = []
            offset = 0
            for recipient, news in zip(chunk, planned, strict=True):
                fresh = {part: message.id for (part, _), (message, _) in
                         zip(news, stored[offset:offset + len(news)], strict=True)}
                offset += len(news)
                ids.append((recipient.psid, recipient.attempt,
                            [fresh[part] if part in fresh else recipient.sent_parts[part] for part in range(parts)]))
            await self._db(self.store.set_outbox_ids, broadcast.id, ids, self.clock())

    async def _refresh(self, broadcast: Broadcast, before: datetime) -> int:
        """Read back what the outbox did with the recipients still on their way (and receipts of the sent) last
        read at or before `before`; only those whose outcome changed are written, the others only go to the back
        of the queue."""
        rows: builtins.list[Recipient] = await self._db(self.store.to_refresh, broadcast.id, REFRESH_ROWS, before)
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
            unchanged = []
            for recipient in chunk:
                found = planner.outcome_of([messages.get(outbox_id) for outbox_id in recipient.outbox_ids],
                                           cancelled)
                if found is None or _same(found, recipient):
                    unchanged.append(recipient.psid)
                    continue
                outcomes.append(Outcome(recipient.psid, recipient.attempt, found))
            changed += len(outcomes)
            await self._db(self.store.set_outcomes, broadcast.id, outcomes, self.clock())
            await self._db(self.store.touch_refreshed, broadcast.id, unchanged, self.clock())
        return changed

    # --- the report and the failed ones -----------------------------------------------------------------------

    async def report(self, broadcast_id: int) -> Report:
        """The counts per state and reason; `retryable` is read at most every `RETRYABLE_TTL` per broadcast and
        counts (the report page polls)."""
        broadcast = await self.get(broadcast_id)
        counts = await self._db(self.store.counts, broadcast_id)
        retryable = 0
        if any(group.state in (RecipientState.FAILED, RecipientState.BLOCKED) for group in counts):
            now = self.clock()
            key = (broadcast.status, tuple(sorted((group.state.value, group.reason_code or "",
                                                   group.error_code or 0, group.recipients) for group in counts)))
            cached = self._retryable_cache.get(broadcast_id)
            if cached is not None and cached[0] == key and now - cached[1] < RETRYABLE_TTL:
                retryable = cached[2]
            else:
                retryable = len((await self._retryable(broadcast, now))[0])
                self._retryable_cache[broadcast_id] = (key, now, retryable)
        return report.build_report(broadcast, counts, retryable, self.standard_window)

    async def started_in(self, page_id: str | None, since: datetime, until: datetime,
                         limit: int) -> tuple[builtins.list[Report], bool]:
        """The reports of the broadcasts that started in [`since`, `until`) (aware; `page_id` None: every page), in
        start order, at most `limit`, and whether there were more: two reads whatever their number (the start-time
        index, one grouped count). `retryable` is 0: finding who can be retried walks the outbox, the broadcast's own
        page does that."""
        found: builtins.list[Broadcast] = await self._db(self.store.started_between, page_id, since, until, limit + 1)
        shown = found[:limit]
        counts = await self._db(self.store.counts_of, [b.id for b in shown])
        return ([report.build_report(b, counts.get(b.id, []), 0, self.standard_window) for b in shown],
                len(found) > limit)

    async def failed(self, broadcast_id: int) -> builtins.list[FailedRecipient]:
        """Everyone who did not receive it all (skipped, blocked, failed, cancelled), by PSID, with why in Spanish
        (and whether they got part of it)."""
        await self.get(broadcast_id)
        standard = self.standard_window
        found: builtins.list[FailedRecipient] = []
        after = ""
        while True:
            rows: builtins.list[Recipient] = await self._db(self.store.recipients_in, broadcast_id,
                                                            report.FAILED_STATES, after, REFRESH_BATCH)
            found.extend(report.failed_recipient(row, standard) for row in rows)
            if len(rows) < REFRESH_BATCH:
                return found
            after = rows[-1].psid

    def failed_csv(self, rows: builtins.list[FailedRecipient]) -> bytes:
        return report.failed_csv(rows)

    async def _retryable(self, broadcast: Broadcast, now: datetime) \
            -> tuple[builtins.list[Recipient], dict[str, int]]:
        """The failed and blocked recipients the broadcast may send to now, and the others by reason (a few
        queries per 1000 of them: their windows as the outbox's worker reads them, paused, unreachable)."""
        allowed: builtins.list[Recipient] = []
        refused: dict[str, int] = {}
        after = ""
        while True:
            rows: builtins.list[Recipient] = await self._db(self.store.recipients_in, broadcast.id,
                                                   (RecipientState.FAILED, RecipientState.BLOCKED), after,
                                                   AUDIENCE_PAGE)
            windows = await self.outbox.windows_of(broadcast.page_id, [row.psid for row in rows])
            people = [_Person(row.psid, row.name, windows[row.psid].last_user_message_at) for row in rows]
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
        """The failed and blocked recipients whose send the policy allows now are queued again (their next attempt:
        new keys; the parts they already got are not sent again) in one transaction with the broadcast back to
        sending; the runner enqueues them at the page's rate. The others are counted by reason."""
        _check_author(author)
        broadcast = await self.get(broadcast_id)
        if broadcast.status not in (BroadcastStatus.SENDING, BroadcastStatus.DONE):
            raise self._not_retryable(broadcast)
        now = self.clock()
        allowed, refused = await self._retryable(broadcast, now)
        requeued: int = await self._db(self.store.requeue, broadcast_id, [row.psid for row in allowed], now)
        if allowed and not requeued and (await self.get(broadcast_id)).status is BroadcastStatus.CANCELLED:
            raise self._not_retryable(await self.get(broadcast_id))
        self._retryable_cache.pop(broadcast_id, None)
        self._next_visit.pop(broadcast_id, None)
        logger.info("broadcast failed recipients retried", extra={"broadcast_id": broadcast_id, "by": author,
                                                                   "requeued": requeued})
        self._wake.set()
        return RetryResult(requeued=requeued, still_refused=refused)

    @staticmethod
    def _not_retryable(broadcast: Broadcast) -> BroadcastStateError:
        return BroadcastStateError("broadcast_not_retryable",
                                   f"Solo se reintentan los fallidos de una transmisión enviada o en envío; esta "
                                   f"está «{STATUS_ES[broadcast.status]}».")


def _same(found: PartsOutcome, recipient: Recipient) -> bool:
    """The outcome read is what the row already says (nothing to write)."""
    return (found.state, found.reason_code, found.error_code, found.sent_at, found.delivered_at, found.read_at,
            dict(found.sent_parts)) == (recipient.state, recipient.reason_code, recipient.error_code,
                                        recipient.sent_at, recipient.delivered_at, recipient.read_at,
                                        dict(recipient.sent_parts))


def _check_send_at(send_at: Any, now: datetime) -> datetime:
    """A "send at" time: timezone-aware, between now (a minute of slack) and a year ahead, within years
    `MIN_YEAR`–`MAX_YEAR` (also what a far-off offset cannot overflow)."""
    if not isinstance(send_at, datetime) or send_at.tzinfo is None:
        raise BroadcastInvalid("send_at", "La fecha de envío debe indicar la zona horaria (por ejemplo "
                                          "2026-12-01T15:00:00-05:00).")
    if not MIN_YEAR <= send_at.year <= MAX_YEAR:
        raise BroadcastInvalid("send_at", f"La fecha de envío debe estar entre los años {MIN_YEAR} y {MAX_YEAR}.")
    try:
        send_at = send_at.astimezone(timezone.utc)
    except (OverflowError, ValueError) as exc:
        raise BroadcastInvalid("send_at", f"La fecha de envío debe estar entre los años {MIN_YEAR} y "
                                          f"{MAX_YEAR}.") from exc
    if send_at < now - SEND_AT_SLACK:
        raise BroadcastInvalid("send_at", "La fecha de envío ya pasó; elija una fecha futura o «Enviar ahora».")
    if send_at > now + MAX_SCHEDULE_AHEAD:
        raise BroadcastInvalid("send_at", "Una transmisión se puede programar como máximo con un año de "
                                          "anticipación.")
    return send_at


__all__ = ["Audience", "Broadcasts", "HandoffStates"]
