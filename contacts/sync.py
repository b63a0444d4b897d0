"""The contacts' sync, in the app's lifespan: everyone who writes to a page becomes a contact, and each contact's
profile (name, picture, language) is asked of Meta's User Profile API.

Each round (every CONTACTS_SYNC_SECONDS, at once while there is work):
1. who wrote: the outbox's conversations whose user's own last message is newer than the sync's cursor
   (`Outbox.conversations_since`, oldest first), each `upsert_seen` with the campaign the app knows for them
   (`campaign_of`: the links store's first referral). Webhooks arrive late and out of order, so every round looks
   `lookback` behind its cursor again (what it already did is remembered and skipped); the cursor is kept in the
   contacts store, so a restart goes on where it was.
2. profiles: the contacts whose profile is due (`profiles_to_fetch`), each fetched with
   `GraphClient.get_user_profile` and recorded as fetched, no_permission (why, in Spanish) or unavailable (asked again
   with backoff: `contacts.model.next_profile_attempt`).
Nothing here decides: the mapping of Meta's answers is `contacts.model.profile_outcome`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from contacts.model import (
    FETCHED,
    NO_PERMISSION,
    Contact,
    ContactInvalid,
    ProfileOutcome,
    check_campaign,
    check_page_id,
    check_psid,
    profile_from_graph,
    profile_outcome,
)
from contacts.store import ContactsStore
from meta.errors import GraphError, RateLimitedError, UnknownPageError

logger = logging.getLogger(__name__)

# What the sync asks Meta for. `locale` needs more of Meta's review than the name and picture; a field the app may not
# read fails the whole call, so a refusal is asked again once without it (BASIC_PROFILE_FIELDS).
PROFILE_FIELDS = ("first_name", "last_name", "profile_pic", "locale")
BASIC_PROFILE_FIELDS = ("first_name", "last_name", "profile_pic")
NO_TOKEN_REASON = "La página no está configurada en el bot (no hay token de acceso para ella)."


class ConversationFeed(Protocol):
    """What the sync needs of the outbox (`outbox.outbox.Outbox`)."""

    async def conversations_since(self, after: datetime | None, limit: int) -> list[tuple[str, str, datetime]]: ...


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
        limit, upserted = self.batch_size, 0
        while True:
            rows = await self.outbox.conversations_since(after, limit)
            for page_id, psid, at in rows:
                if self._done.get((page_id, psid)) == at:
                    continue
                upserted += await self._seen(page_id, psid, at)
                self._done[(page_id, psid)] = at
                self._cursor = at if self._cursor is None or at > self._cursor else self._cursor
            if len(rows) < limit:
                break
            if rows[0][2] == rows[-1][2]:  # a whole batch at one instant: read more at once, or it never moves on
                limit *= 2
                continue
            after = rows[-1][2] - timedelta(microseconds=1)  # the last instant again: its other rows may follow
        if self._cursor is not None and self._cursor != start:
            await asyncio.to_thread(self.store.save_sync_cursor, self._cursor)
        if self._cursor is not None:
            horizon = self._cursor - self.lookback
            self._done = {key: at for key, at in self._done.items() if at >= horizon}
        return upserted

    async def _seen(self, page_id: str, psid: str, at: datetime) -> int:
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
        await asyncio.to_thread(self.store.upsert_seen, page_id, psid, at, campaign)
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
        """Ask Meta for the profiles that are due; how many it recorded (fetched or not)."""
        due = await asyncio.to_thread(self.store.profiles_to_fetch, self.clock(), self.profile_batch)
        limited: set[str] = set()  # pages Meta rate-limited this round: left for the next one
        recorded = 0
        for contact in due:
            if contact.page_id in limited:
                continue
            outcome, profile, error = await self._fetch(contact)
            if isinstance(error, RateLimitedError):
                limited.add(contact.page_id)
            await asyncio.to_thread(
                self.store.record_profile, contact.page_id, contact.psid, profile.get("first_name"),
                profile.get("last_name"), profile.get("profile_pic"), profile.get("locale"), outcome.status,
                outcome.reason, self.clock())
            if outcome.status != FETCHED:
                logger.info("profile not fetched", extra={"page_id": contact.page_id, "status": outcome.status,
                                                          "code": getattr(error, "code", None),
                                                          "subcode": getattr(error, "subcode", None)})
            recorded += 1
        return recorded

    async def _fetch(self, contact: Contact) -> tuple[ProfileOutcome, dict[str, str | None], Exception | None]:
        fields: Sequence[str] = PROFILE_FIELDS
        while True:
            try:
                body = await self.graph.get_user_profile(contact.page_id, contact.psid, fields)
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
