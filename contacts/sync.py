"""The contacts' sync, in the app's lifespan: everyone who writes to a page becomes a contact, and each contact's
profile (name, picture, language) is asked of Meta's User Profile API.

Each round (every CONTACTS_SYNC_SECONDS, at once while there is work):
1. who wrote: the outbox's conversations whose user's last message was recorded after the sync's cursor
   (`Outbox.conversations_since`, in the order the outbox recorded them: its own time, not Meta's, so a message
   handled hours late is still read), each `upsert_seen` with Meta's time of the message, its text and the person's
   message count (for the inbox's search and unread counts) and the campaign the app
   knows for them (`campaign_of`: the links store's first referral). Writes commit a moment after their time is
   taken, so every round looks `lookback` behind its cursor again (what it already did is remembered and skipped);
   the cursor is kept in the contacts store after each batch, so a restart goes on where it was.
2. profiles: the contacts whose profile is due (`profiles_to_fetch`), each fetched with
   `GraphClient.get_user_profile` and recorded as fetched, no_permission (why, in Spanish) or unavailable (asked again
   with backoff: `contacts.model.next_profile_attempt`).
Nothing here decides: the mapping of Meta's answers is `contacts.model.profile_outcome`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from contacts.model import (
    FETCHED,
    NO_PERMISSION,
    NO_PERMISSION_RETRY,
    Contact,
    ContactInvalid,
    ProfileOutcome,
    check_campaign,
    check_page_id,
    check_psid,
    is_page_wide_refusal,
    profile_from_graph,
    profile_outcome,
)
from contacts.store import ContactsStore
from meta.errors import GraphError, RateLimitedError, TransientGraphError, UnknownPageError
from outbox.model import ConversationSeen

logger = logging.getLogger(__name__)

# What the sync asks Meta for. `locale` needs more of Meta's review than the name and picture; a field the app may not
# read fails the whole call, so a refusal is asked again once without it (BASIC_PROFILE_FIELDS).
PROFILE_FIELDS = ("first_name", "last_name", "profile_pic", "locale")
BASIC_PROFILE_FIELDS = ("first_name", "last_name", "profile_pic")
NO_TOKEN_REASON = "La página no está configurada en el bot (no hay token de acceso para ella)."
# A page whose profiles Meta refuses as a whole (is_page_wide_refusal) this many contacts in a row is not asked again
# for a day: its due contacts are recorded with the same refusal, without a call (one probe a day, not one per contact).
PAGE_REFUSALS_TO_PAUSE = 3


class ConversationFeed(Protocol):
    """What the sync needs of the outbox (`outbox.outbox.Outbox`)."""

    async def conversations_since(self, after: datetime | None, limit: int) -> list[ConversationSeen]: ...


class ProfileSource(Protocol):
    """What the sync needs of the Graph client (`meta.graph.GraphClient`)."""

    async def get_user_profile(self, page_id: str, psid: str, fields: Sequence[str] = ...) -> dict[str, Any]: ...


CampaignOf = Callable[[str, str], str | None]  # (page_id, psid) -> campaign, blocking (run in a thread)
SeenListener = Callable[[str, str, datetime], None]  # (page_id, psid, last_user_message_at), on the event loop


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _no_campaign(page_id: str, psid: str) -> str | None:
    return None


class ContactSync:
    def __init__(
        self,
        store: ContactsStore,
        outbox: ConversationFeed,
        graph: ProfileSource,
        clock: Callable[[], datetime] = _utc_now,
        campaign_of: CampaignOf = _no_campaign,
        *,
        batch_size: int = 200,
        profile_batch: int = 20,
        lookback: timedelta = timedelta(minutes=2),
        on_seen: SeenListener | None = None,
        profile_round_seconds: float = 10.0,
        profile_call_seconds: float = 5.0,
        profile_page_interval: float = 0.2,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.graph = graph
        self.clock = clock
        self.campaign_of = campaign_of
        self.batch_size = batch_size
        self.profile_batch = profile_batch
        self.lookback = lookback
        # Told of each upsert (the console's inbox moves the person's row live); set by whoever shows contacts.
        self.on_seen = on_seen
        # Profile fetching is bounded: a round starts no call after `profile_round_seconds` (who wrote is synced
        # between rounds, however Meta is), each call waits `profile_call_seconds` at most, and calls to one page are
        # `profile_page_interval` apart (the page's rate budget is the one the Send API draws on).
        self.profile_round_seconds = profile_round_seconds
        self.profile_call_seconds = profile_call_seconds
        self.profile_page_interval = profile_page_interval
        self._sleep = sleep
        self._last_call: dict[str, float] = {}  # page → loop time of its last profile call
        self._page_refusals: dict[str, int] = {}  # page → page-wide refusals in a row
        self._pages_refused: dict[str, tuple[datetime, str | None]] = {}  # page → (not asked until, why)
        self._cursor: datetime | None = None
        self._cursor_loaded = False
        self._done: dict[tuple[str, str], datetime] = {}  # conversation → the time already synced (the lookback)
        self._wake = asyncio.Event()
        self._stopping = False

    # --- one round -------------------------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Sync who wrote, then fetch due profiles; how many contacts it changed."""
        return await self.sync_seen() + await self.fetch_profiles()

    async def sync_seen(self) -> int:
        """Upsert a contact for each conversation whose user wrote since the cursor; how many it upserted."""
        if not self._cursor_loaded:
            self._cursor = await asyncio.to_thread(self.store.sync_cursor)
            self._cursor_loaded = True
        start = self._cursor
        after = start - self.lookback if start is not None else None
        limit, upserted, saved = self.batch_size, 0, start
        while True:
            rows = await self.outbox.conversations_since(after, limit)
            for row in rows:  # the cursor follows when the outbox recorded the message, not Meta's time of it
                if self._done.get((row.page_id, row.user_id)) == row.recorded_at:
                    continue
                upserted += await self._seen(row.page_id, row.user_id, row.last_user_message_at, row.last_text,
                                             row.message_count)
                self._done[(row.page_id, row.user_id)] = row.recorded_at
                if self._cursor is None or row.recorded_at > self._cursor:
                    self._cursor = row.recorded_at
            if self._cursor is not None and self._cursor != saved:  # each finished batch: a restart goes on from it
                await asyncio.to_thread(self.store.save_sync_cursor, self._cursor)
                saved = self._cursor
            if len(rows) < limit:
                break
            if rows[0].recorded_at == rows[-1].recorded_at:  # a whole batch at one instant: read more at once
                limit *= 2
                continue
            after = rows[-1].recorded_at - timedelta(microseconds=1)  # the last instant again: more may follow
        if self._cursor is not None:
            horizon = self._cursor - self.lookback
            self._done = {key: at for key, at in self._done.items() if at >= horizon}
        return upserted

    async def _seen(self, page_id: str, psid: str, at: datetime, last_text: str | None = None,
                    message_count: int = 0) -> int:
        try:
            check_page_id(page_id)
            check_psid(psid)
        except ContactInvalid:
            logger.warning("conversation not kept as a contact: not a page id and PSID",
                           extra={"page_id": page_id[:64], "psid": psid[:64]})
            return 0
        known = await asyncio.to_thread(self.store.get, page_id, psid)
        campaign = None
        if known is None or known.campaign is None:
            campaign = await asyncio.to_thread(self._campaign, page_id, psid)
        await asyncio.to_thread(self.store.upsert_seen, page_id, psid, at, campaign, last_text, message_count)
        if self.on_seen is not None:
            try:
                self.on_seen(page_id, psid, at)
            except Exception:  # a listener's failure is its own: the contact is saved
                logger.exception("a contact listener failed", extra={"page_id": page_id})
        return 1

    def _campaign(self, page_id: str, psid: str) -> str | None:
        try:
            return check_campaign(self.campaign_of(page_id, psid))
        except ContactInvalid:
            return None
        except Exception:  # the campaign is a detail: a links store that is down must not stop contacts
            logger.warning("campaign unknown: its lookup failed", exc_info=True, extra={"page_id": page_id})
            return None

    async def fetch_profiles(self) -> int:
        """Ask Meta for the profiles that are due; how many it recorded (fetched or not). Bounded in time (see
        __init__); a page Meta refuses as a whole is recorded without calls until its day is over."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.profile_round_seconds
        due = await asyncio.to_thread(self.store.profiles_to_fetch, self.clock(), self.profile_batch)
        limited: set[str] = set()  # pages Meta rate-limited this round: left for the next one
        recorded = 0
        profile: dict[str, str | None]
        error: Exception | None
        for contact in due:
            if contact.page_id in limited:
                continue
            refused = self._page_refused(contact.page_id, self.clock())
            if refused is not None:
                outcome, profile, error = refused, {}, None
            elif loop.time() >= deadline:
                break  # the rest next round: who wrote is synced in between
            else:
                outcome, profile, error = await self._fetch(contact, deadline)
                self._note_page_answer(contact.page_id, error, outcome)
            if isinstance(error, RateLimitedError):
                limited.add(contact.page_id)
            await asyncio.to_thread(
                self.store.record_profile, contact.page_id, contact.psid, profile.get("first_name"),
                profile.get("last_name"), profile.get("profile_pic"), profile.get("locale"), outcome.status,
                outcome.reason, self.clock())
            if outcome.status != FETCHED and error is not None:  # a page refused for the day is logged once
                logger.info("profile not fetched", extra={"page_id": contact.page_id, "status": outcome.status,
                                                          "code": getattr(error, "code", None),
                                                          "subcode": getattr(error, "subcode", None)})
            recorded += 1
        return recorded

    def _page_refused(self, page_id: str, now: datetime) -> ProfileOutcome | None:
        refused = self._pages_refused.get(page_id)
        if refused is None:
            return None
        until, reason = refused
        if now >= until:
            del self._pages_refused[page_id]  # its day is over: the next contact is the probe
            return None
        return ProfileOutcome(NO_PERMISSION, reason)

    def _note_page_answer(self, page_id: str, error: Exception | None, outcome: ProfileOutcome) -> None:
        if error is None:
            self._page_refusals.pop(page_id, None)
            return
        if not isinstance(error, GraphError) or not is_page_wide_refusal(error):
            return
        refusals = self._page_refusals.get(page_id, 0) + 1
        if refusals < PAGE_REFUSALS_TO_PAUSE:
            self._page_refusals[page_id] = refusals
            return
        self._page_refusals.pop(page_id, None)
        self._pages_refused[page_id] = (self.clock() + NO_PERMISSION_RETRY, outcome.reason)
        logger.warning("profiles of this page not asked for a day: Meta refuses them to the app",
                       extra={"page_id": page_id, "code": error.code, "subcode": error.subcode})

    async def _ask(self, page_id: str, psid: str, fields: Sequence[str], deadline: float) -> dict[str, Any]:
        """One User Profile API call, paced per page and cut at its timeout (or the round's end): unavailable."""
        loop = asyncio.get_running_loop()
        wait = self._last_call.get(page_id, float("-inf")) + self.profile_page_interval - loop.time()
        if wait > 0:
            await self._sleep(wait)
        self._last_call[page_id] = loop.time()
        timeout = min(self.profile_call_seconds, deadline - loop.time())
        try:
            if timeout <= 0:
                raise asyncio.TimeoutError
            return await asyncio.wait_for(self.graph.get_user_profile(page_id, psid, fields), timeout)
        except asyncio.TimeoutError as exc:
            raise TransientGraphError("the User Profile API did not answer in time") from exc

    async def _fetch(
            self, contact: Contact, deadline: float) -> tuple[ProfileOutcome, dict[str, str | None], Exception | None]:
        fields: Sequence[str] = PROFILE_FIELDS
        while True:
            try:
                body = await self._ask(contact.page_id, contact.psid, fields, deadline)
            except UnknownPageError as exc:
                return ProfileOutcome(NO_PERMISSION, NO_TOKEN_REASON), {}, exc
            except GraphError as exc:
                outcome = profile_outcome(exc)
                if outcome.status == NO_PERMISSION and fields != BASIC_PROFILE_FIELDS:
                    fields = BASIC_PROFILE_FIELDS  # maybe only the language is not allowed
                    continue
                return outcome, {}, exc
            return ProfileOutcome(FETCHED), profile_from_graph(body), None

    # --- the loop --------------------------------------------------------------------------------------------

    def kick(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self, poll_seconds: float = 2.0) -> None:
        """Rounds until `stop()`: at once while there is work, else every `poll_seconds` (or when kicked)."""
        while not self._stopping:
            self._wake.clear()
            handled = 0
            try:
                handled = await self.run_once()
            except Exception:  # a store or network hiccup must not end the loop
                logger.exception("contacts sync round failed")
            if handled:
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=poll_seconds)


__all__ = ["BASIC_PROFILE_FIELDS", "PROFILE_FIELDS", "ContactSync"]
