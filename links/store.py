"""The links store: m.me links, the referrals conversations arrived by, and each page's username, in a SQLite file or
a PostgreSQL schema (`open_links_store(settings.store_url("links"))`, `core.database`).

Numbered migrations and named queries live in `links/sql/sqlite/` and `links/sql/postgres/`. Synchronous and
thread-safe; async code calls it through a thread. It stores what it is given: checks are `links.model`'s.
A referral is recorded once per webhook event (`event_key`, the ingest journal's dedup key), so Meta's redeliveries
and the channel's replays after a crash count once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from core.database import DatabaseStore, moment, stored_time
from links.model import Link, LinksError, NewLink, Referral, Start, parse_start

SQL_DIR = Path(__file__).parent / "sql"  # sqlite/ and postgres/: numbered migrations and queries.sql


class RefInUse(LinksError):
    """The page already has a link with this ref."""

    def __init__(self, page_id: str, ref: str) -> None:
        super().__init__(f"page {page_id} already has a link with ref {ref!r}")
        self.page_id = page_id
        self.ref = ref


class UnknownLink(LinksError, LookupError):
    pass


@dataclass(frozen=True)
class LinkCounts:
    referrals: int = 0  # every scan or click (every referral Meta delivered)
    people: int = 0  # distinct people (PSIDs): conversations the link brought
    new_contacts: int = 0  # people who opened the conversation for the first time by it (Get Started)

    def to_dict(self) -> dict[str, int]:
        return {"referrals": self.referrals, "people": self.people, "new_contacts": self.new_contacts}


@dataclass(frozen=True)
class StoredReferral:
    id: int
    page_id: str
    psid: str
    ref: str
    link_id: int | None
    link_name: str | None
    source: str
    via: str
    ad_id: str | None
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "page_id": self.page_id, "psid": self.psid, "ref": self.ref, "link_id": self.link_id,
                "link_name": self.link_name, "source": self.source, "via": self.via, "ad_id": self.ad_id,
                "at": self.at.isoformat()}


@dataclass(frozen=True)
class RecordedReferral:
    """What recording a referral found: the link (None: a ref no link has) and whether this call recorded it
    (False: the event was recorded before, a redelivery or a replay)."""

    link: Link | None
    recorded: bool

    @property
    def start(self) -> Start | None:
        """What the referral starts: the link's start while the link is switched on."""
        return self.link.start if self.link is not None and self.link.enabled else None


@dataclass(frozen=True)
class UnmatchedRef:
    page_id: str
    ref: str
    source: str
    referrals: int
    people: int
    last_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"page_id": self.page_id, "ref": self.ref, "source": self.source, "referrals": self.referrals,
                "people": self.people, "last_at": self.last_at.isoformat()}


def _start_json(start: Start | None) -> str | None:
    return json.dumps(start.to_dict(), ensure_ascii=False, sort_keys=True) if start is not None else None


def _link(row: Any) -> Link:
    start = parse_start(json.loads(row["start_json"])) if row["start_json"] else None
    return Link(id=int(row["id"]), page_id=row["page_id"], name=row["name"], ref=row["ref"], start=start,
                created_at=moment(row["created_at"]), created_by=row["created_by"], enabled=bool(row["enabled"]))


def _referral(row: Any) -> StoredReferral:
    return StoredReferral(id=int(row["id"]), page_id=row["page_id"], psid=row["psid"], ref=row["ref"],
                          link_id=int(row["link_id"]) if row["link_id"] is not None else None,
                          link_name=row["link_name"], source=row["source"], via=row["via"], ad_id=row["ad_id"],
                          at=moment(row["at"]))


class LinksStore(DatabaseStore):
    """A file path, `sqlite:///path`, `:memory:` or `postgresql://…` (schema: the URL's search_path, else "links")."""

    BACKEND = "links"
    SQL_DIR = SQL_DIR

    def _read(self, name: str, params: Mapping[str, Any]) -> list[Any]:
        return self._db.read(name, params)

    # --- links -------------------------------------------------------------------------------------------------

    def create(self, new: NewLink, by: str, now: datetime) -> Link:
        with self._db.write() as conn:
            row = conn.execute(self._db.queries["insert_link"], {
                "page_id": new.page_id, "name": new.name, "ref": new.ref, "start_json": _start_json(new.start),
                "now": stored_time(now), "by": by}).fetchone()
        if row is None:
            raise RefInUse(new.page_id, new.ref)
        return self.get(int(row["id"]))

    def get(self, link_id: int) -> Link:
        rows = self._read("get_link", {"id": link_id})
        if not rows:
            raise UnknownLink(f"no link {link_id}")
        return _link(rows[0])

    def by_ref(self, page_id: str, ref: str) -> Link | None:
        rows = self._read("link_by_ref", {"page_id": page_id, "ref": ref})
        return _link(rows[0]) if rows else None

    def links(self, page_id: str | None = None) -> list[Link]:
        return [_link(row) for row in self._read("list_links", {"page_id": page_id})]

    def set_enabled(self, link_id: int, enabled: bool, by: str, now: datetime) -> Link:
        if not self._db.run("set_enabled", {"id": link_id, "enabled": bool(enabled), "now": stored_time(now),
                                            "by": by}):
            raise UnknownLink(f"no link {link_id}")
        return self.get(link_id)

    def counts(self, page_id: str | None = None) -> dict[int, LinkCounts]:
        """Per link id (links nobody used yet are absent: `LinkCounts()`)."""
        return {int(row["link_id"]): LinkCounts(int(row["referrals"]), int(row["people"]), int(row["new_contacts"]))
                for row in self._read("link_counts", {"page_id": page_id})}

    def unmatched_refs(self, page_id: str | None = None, limit: int = 20) -> list[UnmatchedRef]:
        return [UnmatchedRef(row["page_id"], row["ref"], row["source"], int(row["referrals"]), int(row["people"]),
                             moment(row["last_at"]))
                for row in self._read("unmatched_refs", {"page_id": page_id, "limit": limit})]

    # --- referrals ---------------------------------------------------------------------------------------------

    def record_referral(self, referral: Referral) -> RecordedReferral:
        """Record a referral (once per event key) with the link its ref names on its page, if any."""
        link = self.by_ref(referral.page_id, referral.ref)
        with self._db.write() as conn:
            row = conn.execute(self._db.queries["insert_referral"], {
                "event_key": referral.event_key, "page_id": referral.page_id, "psid": referral.psid,
                "ref": referral.ref, "link_id": link.id if link is not None else None, "source": referral.source,
                "via": referral.via, "ad_id": referral.ad_id, "at": stored_time(referral.at)}).fetchone()
        return RecordedReferral(link, recorded=row is not None)

    def conversation_referrals(self, page_id: str, psid: str, limit: int = 50) -> list[StoredReferral]:
        """The referrals of one conversation, oldest first: the first is the campaign it arrived by."""
        return [_referral(row) for row in self._read("conversation_referrals",
                                                     {"page_id": page_id, "psid": psid, "limit": limit})]

    # --- page usernames ----------------------------------------------------------------------------------------

    def set_page_username(self, page_id: str, username: str, now: datetime) -> None:
        self._db.run("upsert_page_username", {"page_id": page_id, "username": username, "now": stored_time(now)})

    def page_usernames(self) -> dict[str, str]:
        return {row["page_id"]: row["username"] for row in self._read("page_usernames", {})}


def open_links_store(url: Path | str) -> LinksStore:
    """The links store at `settings.store_url("links")`: `sqlite:///path` (or a path) or `postgresql://…`."""
    return LinksStore(url)
