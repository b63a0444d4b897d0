"""The contacts store: one row per person and page, their tags, free fields and notes, in a SQLite file or a PostgreSQL
schema (`open_contacts_store(settings.store_url("contacts"))`, `core.database`).

Numbered migrations and named queries live in `contacts/sql/sqlite/` and `contacts/sql/postgres/`. Synchronous and
thread-safe; async code calls it through a thread (`run_in_threadpool`, `asyncio.to_thread`). Values are checked by
`contacts.model` (ContactInvalid, with a Spanish message naming the field) before anything is written.

Each contact row carries copies of its tags, fields and notes count and a folded search text, rewritten in the
same transaction as the change (`_refresh`), so a list of contacts is one query and a text search one LIKE over one
column, the same on SQLite and PostgreSQL. The list is ordered newest contact first by an id that never changes: its
cursor never skips or repeats a contact, whatever is written meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from contacts.model import (
    FETCHED,
    MAX_FIELDS,
    MAX_TAGS,
    PROFILE_STATUSES,
    Audience,
    AudiencePage,
    Contact,
    ContactInvalid,
    ContactNotFound,
    ContactPage,
    ContactQuery,
    Note,
    check_author,
    check_campaign,
    check_fields,
    check_name,
    check_note,
    check_page_id,
    check_psid,
    check_tag,
    check_tags,
    fold,
    next_profile_attempt,
    search_text,
    tag_key,
    window_durations,
)
from core.database import DatabaseStore, moment, stored_time
from outbox.policy import Policy, ReplyWindows

SQL_DIR = Path(__file__).parent / "sql"  # sqlite/ and postgres/: numbered migrations and queries.sql
EXPORT_CHUNK = 500
IMPORT_READ_CHUNK = 500  # contacts per read of `import_contacts` (one JSON parameter each)
MAX_NOTES = 500
MAX_AUDIENCE_PAGE = 1000
FOLD_CHUNK = 500  # fields folded per statement when the store opens on rows older than value_key
MAX_LAST_TEXT = 500
_CURSOR_PREFIX = "c1:"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _optional_moment(value: Any) -> datetime | None:
    return moment(value) if value is not None else None


def _contact(row: Any) -> Contact:
    return Contact(
        page_id=row["page_id"],
        psid=row["psid"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        profile_pic=row["profile_pic"],
        locale=row["locale"],
        profile_status=row["profile_status"],
        profile_reason=row["profile_reason"],
        profile_fetched_at=_optional_moment(row["profile_fetched_at"]),
        first_seen_at=moment(row["first_seen_at"]),
        last_user_message_at=_optional_moment(row["last_user_message_at"]),
        campaign=row["campaign"],
        tags=tuple(json.loads(row["tags_json"])),
        fields=MappingProxyType(dict(json.loads(row["fields_json"]))),
        notes_count=int(row["notes_count"]),
        profile_attempts=int(row["profile_attempts"]),
        updated_at=moment(row["updated_at"]),
        last_text=row["last_text"],
        message_count=int(row["message_count"]),
        read_at=_optional_moment(row["read_at"]),
        read_message_count=int(row["read_message_count"]) if row["read_message_count"] is not None else None,
    )


def _note(row: Any) -> Note:
    return Note(id=int(row["id"]), page_id=row["page_id"], psid=row["psid"], text=row["text"], author=row["author"],
                created_at=moment(row["created_at"]))


def encode_cursor(contact_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{contact_id}".encode()).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id a cursor stands for; ContactInvalid("cursor") for anything this store did not hand out."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        if text.startswith(_CURSOR_PREFIX) and text[len(_CURSOR_PREFIX):].isdigit():
            value = int(text[len(_CURSOR_PREFIX):])
            if 0 < value < 2**63:
                return value
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ContactInvalid("cursor", "El cursor de la página no es válido; vuelva a la primera página.")


_INBOX_CURSOR_PREFIX = "i1:"


def encode_inbox_cursor(last_user_message_at: datetime, contact_id: int) -> str:
    raw = f"{_INBOX_CURSOR_PREFIX}{stored_time(last_user_message_at)}|{contact_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode("ascii").rstrip("=")


def decode_inbox_cursor(cursor: str) -> tuple[str, int]:
    """(stored last-message time, id) of an inbox cursor; ContactInvalid("cursor") for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        at, sep, number = text[len(_INBOX_CURSOR_PREFIX):].partition("|")
        if text.startswith(_INBOX_CURSOR_PREFIX) and sep and number.isdigit() and 0 < int(number) < 2**63:
            return stored_time(datetime.fromisoformat(at)), int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        pass
    raise ContactInvalid("cursor", "El cursor de la página no es válido; vuelva a la primera página.")


def like_pattern(text: str) -> str | None:
    """`%text%` over the folded search text, with LIKE's own characters escaped; None for a blank search."""
    folded = fold(text)
    if not folded:
        return None
    escaped = folded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class ImportedContact(Protocol):
    """One contact of a batch import (`contacts.csv_io.ImportRow` is one): a None name keeps the stored one."""

    @property
    def page_id(self) -> str: ...
    @property
    def psid(self) -> str: ...
    @property
    def first_name(self) -> str | None: ...
    @property
    def last_name(self) -> str | None: ...
    @property
    def tags(self) -> Iterable[str]: ...
    @property
    def fields(self) -> Mapping[str, str | None]: ...


class ImportRowInvalid(ContactInvalid):
    """`import_contacts` refused a row (a bad value, or over the tag or field limits with what the contact has):
    `index` is its place in the batch. Nothing of the batch was written."""

    def __init__(self, index: int, error: ContactInvalid) -> None:
        super().__init__(error.field, error.message_es)
        self.index = index


@dataclass
class _Draft:
    """A contact as a batch import leaves it (its stored state, then each of its rows in turn)."""

    existed: bool
    first_seen_at: datetime
    first_name: str | None
    last_name: str | None
    tags: dict[str, str]  # tag_key -> tag
    fields: dict[str, str]
    last_text: str | None = None
    names_given: bool = False
    new_tags: dict[str, str] = field(default_factory=dict)
    touched_fields: set[str] = field(default_factory=set)

    def apply(self, first: str | None, last: str | None, tags: tuple[str, ...], changes: Mapping[str, str | None]) \
            -> None:
        """One row, as `import_contact` writes it: names where given, tags added, fields set (None deletes)."""
        new = {key: tag for key, tag in ((tag_key(tag), tag) for tag in tags) if key not in self.tags}
        check_tag_room(len(self.tags), len(new))
        check_field_room(fields_after(self.fields.keys(), changes))
        if first is not None or last is not None:
            self.names_given = True
            self.first_name = first if first is not None else self.first_name
            self.last_name = last if last is not None else self.last_name
        self.tags.update(new)
        self.new_tags.update(new)
        for key, value in changes.items():
            if value is None:
                self.fields.pop(key, None)
            else:
                self.fields[key] = value
        self.touched_fields.update(changes)


def check_tag_room(present: int, new: int) -> None:
    if present + new > MAX_TAGS:
        raise ContactInvalid("tags", f"Un contacto tiene como máximo {MAX_TAGS} etiquetas (ya tiene {present}).")


def fields_after(present: Iterable[str], changes: Mapping[str, str | None]) -> set[str]:
    return (set(present) | {key for key, value in changes.items() if value is not None}) - {
        key for key, value in changes.items() if value is None}


def check_field_room(after: set[str]) -> None:
    if len(after) > MAX_FIELDS:
        raise ContactInvalid("fields", f"Un contacto tiene como máximo {MAX_FIELDS} campos.")


# Queries that read `matches`, and the named filter each finds there: a page and its count filter alike, the
# filters written once in queries.sql.
FILTERED_BY = {
    "inbox_page": "inbox_matches",
    "inbox_totals": "inbox_matches",
    "audience_contacts": "audience_matches",
    "count_audience": "audience_matches",
}


class ContactsStore(DatabaseStore):
    BACKEND = "contacts"
    SQL_DIR = SQL_DIR

    def __init__(self, target: Path | str, policy: Policy | ReplyWindows | None = None) -> None:
        """A file path, `sqlite:///path`, `:memory:` or `postgresql://…` (schema: the URL's search_path, else
        "contacts"). `policy`: the outbox's, for the 24-hour window of `window_open_at` (default: the shipped one)."""
        self._policy = policy
        super().__init__(target)
        self._fold_old_fields()
        queries = self._db.queries
        for name, matches in FILTERED_BY.items():
            queries[name] = f"WITH matches AS (\n{queries[matches]}\n)\n{queries[name]}"

    def _fold_old_fields(self) -> None:
        """Fill `value_key` of the fields written before it existed (migration 002), a chunk at a time; a no-op
        read once they all have it."""
        while True:
            rows = self._db.read("unfolded_fields", {"limit": FOLD_CHUNK})
            if not rows:
                return
            with self._db.write() as session:
                for row in rows:
                    session.execute(self._db.queries["set_value_key"], {
                        "page_id": row["page_id"], "psid": row["psid"], "key": row["key"],
                        "value_key": fold(row["value"])})

    # --- reading ---------------------------------------------------------------------------------------------

    def get(self, page_id: str, psid: str) -> Contact | None:
        rows = self._db.read("get_contact", {"page_id": page_id, "psid": psid})
        return _contact(rows[0]) if rows else None

    def require(self, page_id: str, psid: str) -> Contact:
        contact = self.get(page_id, psid)
        if contact is None:
            raise ContactNotFound(page_id, psid)
        return contact

    def search(self, query: ContactQuery) -> ContactPage:
        """One page of contacts matching every filter, newest first; `next_cursor` None on the last page."""
        window_from = None
        if query.window_open_at is not None:
            window_from = stored_time(query.window_open_at - window_durations(self._policy)[0])
        params: dict[str, Any] = {
            "page_id": query.page_id,
            "pattern": like_pattern(query.text) if query.text is not None else None,
            "tag_key": tag_key(check_tag(query.tag, "tag")) if query.tag is not None else None,
            "campaign": query.campaign,
            "window_from": window_from,
        }
        before_id = decode_cursor(query.after) if query.after is not None else None
        rows = self._db.read("search_contacts", {**params, "before_id": before_id, "limit": query.limit + 1})
        total = int(self._db.read("count_contacts", params)[0]["total"])
        shown = rows[:query.limit]
        next_cursor = encode_cursor(int(shown[-1]["id"])) if len(rows) > query.limit else None
        return ContactPage([_contact(row) for row in shown], next_cursor, total)

    def inbox(self, query: ContactQuery, only: Collection[str] | None = None,
              exclude: Collection[str] | None = None) -> ContactPage:
        """The console's inbox: people who wrote (`last_user_message_at` set) matching `query`, newest last message
        first. `only` / `exclude`: conversation ids (`<page_id>:<psid>`) the list keeps to or leaves out (the handoff
        side's state filters). The cursor is (last message, id): a last message only moves later, so a person who
        writes meanwhile moves above the pages already read and is never shown twice. `total` and `unread` count
        every page (unread: `Contact.is_unread`, from the look `mark_read` keeps on the row): one count, whatever
        the number of conversations ever read."""
        params = self._inbox_params(query, only, exclude)
        before_at, before_id = decode_inbox_cursor(query.after) if query.after is not None else (None, None)
        rows = self._db.read("inbox_page", {**params, "before_at": before_at, "before_id": before_id,
                                            "limit": query.limit + 1})
        totals = self._db.read("inbox_totals", params)[0]
        shown = rows[:query.limit]
        next_cursor = None
        if len(rows) > query.limit:
            last = shown[-1]
            next_cursor = encode_inbox_cursor(moment(last["last_user_message_at"]), int(last["id"]))
        return ContactPage([_contact(row) for row in shown], next_cursor, int(totals["total"]),
                           int(totals["unread"]))

    def _inbox_params(self, query: ContactQuery, only: Collection[str] | None,
                      exclude: Collection[str] | None) -> dict[str, Any]:
        window_from = None
        if query.window_open_at is not None:
            window_from = stored_time(query.window_open_at - window_durations(self._policy)[0])
        return {
            "page_id": query.page_id,
            "pattern": like_pattern(query.text) if query.text is not None else None,
            "tag_key": tag_key(check_tag(query.tag, "tag")) if query.tag is not None else None,
            "campaign": query.campaign,
            "window_from": window_from,
            "only": _json(sorted(only)) if only is not None else None,
            "exclude": _json(sorted(exclude)) if exclude else None,
        }

    def notes(self, page_id: str, psid: str, limit: int = MAX_NOTES) -> list[Note]:
        """The contact's notes, newest first."""
        return [_note(row) for row in self._db.read("notes_of", {"page_id": page_id, "psid": psid,
                                                                 "limit": max(1, min(int(limit), MAX_NOTES))})]

    def all_tags(self, page_id: str | None = None) -> list[tuple[str, int]]:
        """Every tag in use (one spelling per tag) with how many contacts have it, most used first."""
        return [(row["tag"], int(row["contacts"])) for row in self._db.read("all_tags", {"page_id": page_id})]

    def audience(self, audience: Audience, after: int = 0, limit: int = MAX_AUDIENCE_PAGE) -> AudiencePage:
        """One page of a broadcast's audience, oldest contact first (by internal id): pass `next_after` back as
        `after` for the next page (None: the end). A contact added meanwhile gets a higher id: a walk never repeats
        nor skips one that existed when it started."""
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise ContactInvalid("after", "El cursor de la audiencia no es válido; vuelva a empezar.")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_AUDIENCE_PAGE:
            raise ContactInvalid("limit", f"El límite debe estar entre 1 y {MAX_AUDIENCE_PAGE}.")
        rows = self._db.read("audience_contacts", {**_audience_params(audience), "after_id": after,
                                                   "limit": limit + 1})
        shown = rows[:limit]
        next_after = int(shown[-1]["id"]) if len(rows) > limit else None
        return AudiencePage([_contact(row) for row in shown], next_after)

    def count_audience(self, audience: Audience) -> int:
        """How many contacts a broadcast's audience holds now."""
        return int(self._db.read("count_audience", _audience_params(audience))[0]["total"])

    def export_rows(self, page_id: str | None = None) -> Iterator[Contact]:
        """Every contact, oldest first, read in chunks (no transaction held between them: a long download never
        blocks the bot's writes)."""
        after_id = 0
        while True:
            rows = self._db.read("export_chunk", {"page_id": page_id, "after_id": after_id, "limit": EXPORT_CHUNK})
            for row in rows:
                yield _contact(row)
            if len(rows) < EXPORT_CHUNK:
                return
            after_id = int(rows[-1]["id"])

    def new_by_campaign(self, page_id: str | None, since: datetime, until: datetime) -> dict[str | None, int]:
        """How many contacts who wrote to the page were first seen in [since, until) (aware times; `page_id` None:
        every page), by the campaign they first came by (None: none); a contact imported from a file who never
        wrote is not new. Read through a partial index on the first sight (migration 005)."""
        return {row["campaign"]: int(row["n"]) for row in self._db.read("new_by_campaign", {
            "page_id": page_id, "since": stored_time(since), "until": stored_time(until)})}

    def profiles_to_fetch(self, now: datetime, limit: int) -> list[Contact]:
        """Contacts whose profile is due: never asked, or a failure's backoff has passed."""
        return [_contact(row) for row in self._db.read("profiles_due", {"now": stored_time(now),
                                                                        "limit": max(1, int(limit))})]

    def sync_cursor(self, name: str = "outbox") -> datetime | None:
        """Where the sync got to (the last conversation time it read), None before its first round."""
        rows = self._db.read("get_sync_cursor", {"name": name})
        return moment(rows[0]["cursor_at"]) if rows else None

    # --- writing ---------------------------------------------------------------------------------------------

    def upsert_seen(self, page_id: str, psid: str, at: datetime, campaign: str | None = None,
                    last_text: str | None = None, message_count: int = 0) -> bool:
        """The person wrote at `at`: created (True) or updated (first seen kept, last message the latest and
        `last_text` its text (None: not a text), the campaign the first one known, `message_count` the outbox's
        count of their messages (never lowered)). The search text follows the last message's text."""
        check_page_id(page_id)
        check_psid(psid)
        campaign = check_campaign(campaign)
        text = clean_last_text(last_text)
        count = message_count if isinstance(message_count, int) and message_count > 0 else 0
        keys = {"page_id": page_id, "psid": psid}
        with self._db.write() as session:
            existed = session.execute(self._db.queries["get_contact"], keys).fetchone()
            session.execute(self._db.queries["upsert_seen"], {
                **keys, "at": stored_time(at), "campaign": campaign, "search_text": fold(psid),
                "last_text": text, "message_count": count})
            before = existed["last_text"] if existed is not None else None
            after = session.execute(self._db.queries["get_contact"], keys).fetchone()
            if after["last_text"] != before:
                self._refresh(session, page_id, psid, moment(after["updated_at"]))
        return existed is None

    def add_tags(self, page_id: str, psid: str, tags: Iterable[str], now: datetime) -> Contact:
        """Add tags (one per tag, case and accents ignored: an existing tag keeps its spelling)."""
        wanted = check_tags(tags)
        with self._db.write() as session:
            self._require_in(session, page_id, psid)
            self._add_tags_in(session, page_id, psid, wanted, now)
            self._refresh(session, page_id, psid, now)
        return self.require(page_id, psid)

    def remove_tag(self, page_id: str, psid: str, tag: str, now: datetime) -> Contact:
        """Remove a tag (however it is spelled); removing a tag the contact does not have changes nothing."""
        return self.remove_tags(page_id, psid, [check_tag(tag, "tag")], now)

    def remove_tags(self, page_id: str, psid: str, tags: Iterable[str], now: datetime) -> Contact:
        """Remove tags at once (however each is spelled); tags the contact does not have change nothing."""
        keys = sorted({tag_key(tag) for tag in check_tags(tags)})
        with self._db.write() as session:
            self._require_in(session, page_id, psid)
            for key in keys:
                session.execute(self._db.queries["delete_tag"], {"page_id": page_id, "psid": psid, "tag_key": key})
            self._refresh(session, page_id, psid, now)
        return self.require(page_id, psid)

    def set_fields(self, page_id: str, psid: str, fields: Mapping[str, str | None], now: datetime) -> Contact:
        """Set fields; a None (or blank) value deletes the field."""
        changes = check_fields(fields)
        with self._db.write() as session:
            self._require_in(session, page_id, psid)
            self._set_fields_in(session, page_id, psid, changes, now)
            self._refresh(session, page_id, psid, now)
        return self.require(page_id, psid)

    def add_note(self, page_id: str, psid: str, text: str, author: str, now: datetime) -> Note:
        note_text, by = check_note(text), check_author(author)
        with self._db.write() as session:
            self._require_in(session, page_id, psid)
            row = session.execute(self._db.queries["insert_note"], {
                "page_id": page_id, "psid": psid, "text": note_text, "author": by, "now": stored_time(now),
            }).fetchone()
            self._refresh(session, page_id, psid, now)
        return Note(int(row["id"]), page_id, psid, note_text, by, now)

    def record_profile(
        self,
        page_id: str,
        psid: str,
        first_name: str | None,
        last_name: str | None,
        profile_pic: str | None,
        locale: str | None,
        status: str,
        reason: str | None,
        now: datetime,
    ) -> Contact:
        """What a profile fetch gave: the profile (fetched; a field Meta left out keeps what we had), or why not
        (the names we had stay; asked again later, `contacts.model.next_profile_attempt`)."""
        if status not in PROFILE_STATUSES:
            raise ContactInvalid("profile_status", f"Estado de perfil desconocido: {status[:40]!r}.")
        with self._db.write() as session:
            current = _contact(self._require_in(session, page_id, psid))
            if status == FETCHED:
                attempts = 0
                values = {"first_name": check_name(first_name, "first_name") or current.first_name,
                          "last_name": check_name(last_name, "last_name") or current.last_name,
                          "profile_pic": profile_pic or current.profile_pic, "locale": locale or current.locale,
                          "reason": None, "fetched_at": stored_time(now)}
            else:
                attempts = current.profile_attempts + 1
                values = {"first_name": current.first_name, "last_name": current.last_name,
                          "profile_pic": current.profile_pic, "locale": current.locale, "reason": reason,
                          "fetched_at": _stored_or_none(current.profile_fetched_at)}
            next_at = next_profile_attempt(status, attempts, now)
            session.execute(self._db.queries["record_profile"], {
                **values, "page_id": page_id, "psid": psid, "status": status, "attempts": attempts,
                "next_at": _stored_or_none(next_at), "now": stored_time(now)})
            self._refresh(session, page_id, psid, now)
        return self.require(page_id, psid)

    def import_contact(
        self,
        page_id: str,
        psid: str,
        first_name: str | None,
        last_name: str | None,
        tags: Iterable[str],
        fields: Mapping[str, str | None],
        now: datetime,
    ) -> bool:
        """A contact from a CSV file: created (True) if new (never wrote: no last message; its profile is asked
        for), names set where given, tags added, fields set (None deletes)."""
        check_page_id(page_id)
        check_psid(psid)
        first, last = check_name(first_name, "first_name"), check_name(last_name, "last_name")
        wanted, changes = check_tags(tags), check_fields(fields)
        with self._db.write() as session:
            keys = {"page_id": page_id, "psid": psid}
            existed = session.execute(self._db.queries["get_contact"], keys).fetchone()
            if existed is None:
                session.execute(self._db.queries["insert_contact"], {**keys, "now": stored_time(now),
                                                                     "search_text": fold(psid)})
            session.execute(self._db.queries["set_names"], {**keys, "first_name": first, "last_name": last})
            self._add_tags_in(session, page_id, psid, wanted, now)
            self._set_fields_in(session, page_id, psid, changes, now)
            self._refresh(session, page_id, psid, now)
        return existed is None

    def import_contacts(self, rows: Iterable[ImportedContact], now: datetime) -> tuple[int, int]:
        """Many contacts from a CSV file in ONE transaction, each row as `import_contact` would write it (in order:
        a contact twice in the batch is created, then updated): (created, updated). All or nothing: a refused row
        raises `ImportRowInvalid` (its index) and a database error rolls everything back. The stored state is read
        in chunks of keys and the changes written with `executemany` (a few statements per chunk, not per row)."""
        checked: list[tuple[tuple[str, str], str | None, str | None, tuple[str, ...], dict[str, str | None]]] = []
        for index, row in enumerate(rows):
            try:
                key = (check_page_id(row.page_id), check_psid(row.psid))
                checked.append((key, check_name(row.first_name, "first_name"), check_name(row.last_name, "last_name"),
                                check_tags(row.tags), check_fields(row.fields)))
            except ContactInvalid as exc:
                raise ImportRowInvalid(index, exc) from exc
        if not checked:
            return 0, 0
        created = 0
        with self._db.write() as session:
            drafts = self._drafts_in(session, list(dict.fromkeys(item[0] for item in checked)))
            for index, (key, first, last, tags, changes) in enumerate(checked):
                draft = drafts.get(key)
                if draft is None:
                    draft = drafts[key] = _Draft(False, now, None, None, {}, {})
                    created += 1
                try:
                    draft.apply(first, last, tags, changes)
                except ContactInvalid as exc:
                    raise ImportRowInvalid(index, exc) from exc
            self._write_drafts_in(session, drafts, now)
        return created, len(checked) - created

    def mark_read(self, page_id: str, psid: str, at: datetime, message_count: int | None = None) -> bool:
        """An agent opened the conversation at `at`, when the person had written `message_count` messages (None:
        unknown): kept on the contact unless a later look is already there. False: no such contact (yet), or an
        older look (nothing changed)."""
        count = message_count if isinstance(message_count, int) and not isinstance(message_count, bool) \
            and message_count >= 0 else None
        return self._db.run("mark_read", {"page_id": page_id, "psid": psid, "at": stored_time(at),
                                          "message_count": count}) > 0

    def copy_read_marks(self, marks: Iterable[tuple[str, str, datetime, int | None]]) -> None:
        """Looks saved elsewhere (the console store's, before they lived here): (page_id, psid, read_at, count), in
        one transaction; as `mark_read`, a look older than the contact's own changes nothing."""
        params = [{"page_id": page_id, "psid": psid, "at": stored_time(at),
                   "message_count": count if isinstance(count, int) and count >= 0 else None}
                  for page_id, psid, at, count in marks]
        if params:
            with self._db.write() as session:
                session.executemany(self._db.queries["mark_read"], params)

    def save_sync_cursor(self, at: datetime, name: str = "outbox") -> None:
        self._db.run("save_sync_cursor", {"name": name, "cursor_at": stored_time(at)})

    # --- inside a write transaction --------------------------------------------------------------------------

    def _require_in(self, session: Any, page_id: str, psid: str) -> Any:
        row = session.execute(self._db.queries["get_contact"], {"page_id": page_id, "psid": psid}).fetchone()
        if row is None:
            raise ContactNotFound(page_id, psid)
        return row

    def _add_tags_in(self, session: Any, page_id: str, psid: str, tags: tuple[str, ...], now: datetime) -> None:
        keys = {"page_id": page_id, "psid": psid}
        present = {row["tag_key"] for row in session.execute(self._db.queries["tags_of"], keys).fetchall()}
        new = [tag for tag in tags if tag_key(tag) not in present]
        check_tag_room(len(present), len(new))
        for tag in new:
            session.execute(self._db.queries["insert_tag"], {**keys, "tag": tag, "tag_key": tag_key(tag),
                                                             "now": stored_time(now)})

    def _set_fields_in(self, session: Any, page_id: str, psid: str, changes: Mapping[str, str | None],
                       now: datetime) -> None:
        keys = {"page_id": page_id, "psid": psid}
        present = {row["key"] for row in session.execute(self._db.queries["fields_of"], keys).fetchall()}
        check_field_room(fields_after(present, changes))
        for key, value in changes.items():
            if value is None:
                session.execute(self._db.queries["delete_field"], {**keys, "key": key})
            else:
                session.execute(self._db.queries["upsert_field"], {**keys, "key": key, "value": value,
                                                                   "value_key": fold(value), "now": stored_time(now)})

    def _drafts_in(self, session: Any, keys: list[tuple[str, str]]) -> dict[tuple[str, str], _Draft]:
        """The stored state of the contacts among `keys` (absent ones left out), read a chunk of keys at a time."""
        drafts: dict[tuple[str, str], _Draft] = {}
        for start in range(0, len(keys), IMPORT_READ_CHUNK):
            chunk = {"keys": json.dumps(keys[start:start + IMPORT_READ_CHUNK], ensure_ascii=False)}
            for row in session.execute(self._db.queries["contacts_of_keys"], chunk).fetchall():
                drafts[(row["page_id"], row["psid"])] = _Draft(True, moment(row["first_seen_at"]), row["first_name"],
                                                               row["last_name"], {}, {}, row["last_text"])
            for row in session.execute(self._db.queries["tags_of_keys"], chunk).fetchall():
                drafts[(row["page_id"], row["psid"])].tags[row["tag_key"]] = row["tag"]
            for row in session.execute(self._db.queries["fields_of_keys"], chunk).fetchall():
                drafts[(row["page_id"], row["psid"])].fields[row["key"]] = row["value"]
        return drafts

    def _write_drafts_in(self, session: Any, drafts: Mapping[tuple[str, str], _Draft], now: datetime) -> None:
        """The batch's changes, one `executemany` per statement (contacts in the order first met: their ids, and
        so the list's order, are those a row-by-row import gives)."""
        at = stored_time(now)
        queries = self._db.queries
        contacts = [{"page_id": page_id, "psid": psid, "now": at, "search_text": fold(psid)}
                    for (page_id, psid), draft in drafts.items() if not draft.existed]
        names = [{"page_id": page_id, "psid": psid, "first_name": draft.first_name, "last_name": draft.last_name}
                 for (page_id, psid), draft in drafts.items() if draft.names_given]
        tags = [{"page_id": page_id, "psid": psid, "tag": tag, "tag_key": key, "now": at}
                for (page_id, psid), draft in drafts.items() for key, tag in draft.new_tags.items()]
        upserts = [{"page_id": page_id, "psid": psid, "key": key, "value": draft.fields[key],
                    "value_key": fold(draft.fields[key]), "now": at}
                   for (page_id, psid), draft in drafts.items() for key in sorted(draft.touched_fields)
                   if key in draft.fields]
        deletes = [{"page_id": page_id, "psid": psid, "key": key}
                   for (page_id, psid), draft in drafts.items() for key in sorted(draft.touched_fields)
                   if key not in draft.fields]
        refreshes = []
        for (page_id, psid), draft in drafts.items():
            ordered_tags = tuple(draft.tags[key] for key in sorted(draft.tags))  # as `tags_of` orders them
            fields = {key: draft.fields[key] for key in sorted(draft.fields)}
            contact = Contact(page_id=page_id, psid=psid, first_seen_at=draft.first_seen_at,
                              first_name=draft.first_name, last_name=draft.last_name, tags=ordered_tags,
                              fields=MappingProxyType(fields), last_text=draft.last_text)
            refreshes.append({"page_id": page_id, "psid": psid,
                              "tags_json": json.dumps(list(ordered_tags), ensure_ascii=False),
                              "fields_json": _json(fields), "search_text": search_text(contact), "now": at})
        for name, params in (("insert_contact", contacts), ("set_names", names), ("insert_tag", tags),
                             ("upsert_field", upserts), ("delete_field", deletes), ("refresh_contact", refreshes)):
            if params:
                session.executemany(queries[name], params)

    def _refresh(self, session: Any, page_id: str, psid: str, now: datetime) -> None:
        """Rewrite the contact row's copies (tags, fields, notes count) and search text from the tables."""
        keys = {"page_id": page_id, "psid": psid}
        row = session.execute(self._db.queries["get_contact"], keys).fetchone()
        tags = tuple(tag["tag"] for tag in session.execute(self._db.queries["tags_of"], keys).fetchall())
        fields = {field["key"]: field["value"] for field in
                  session.execute(self._db.queries["fields_of"], keys).fetchall()}
        contact = Contact(page_id=page_id, psid=psid, first_seen_at=moment(row["first_seen_at"]),
                          first_name=row["first_name"], last_name=row["last_name"], tags=tags,
                          fields=MappingProxyType(fields), last_text=row["last_text"])
        session.execute(self._db.queries["refresh_contact"], {
            **keys, "tags_json": json.dumps(list(tags), ensure_ascii=False), "fields_json": _json(fields),
            "search_text": search_text(contact), "now": stored_time(now)})


def clean_last_text(text: str | None) -> str | None:
    """A last message's text as the contact keeps it: the first 500 characters, NUL and other control
    characters (but line breaks and tabs) removed; None when nothing is left."""
    if not isinstance(text, str):
        return None
    kept = "".join(char for char in text if char in "\n\t" or not (ord(char) < 32 or 127 <= ord(char) < 160))
    kept = kept.encode("utf-8", "replace").decode("utf-8")[:MAX_LAST_TEXT]
    return kept if kept.strip() else None


def _audience_params(audience: Audience) -> dict[str, Any]:
    """The named parameters of `audience_contacts` / `count_audience` (NULL: no condition)."""
    any_keys = sorted({tag_key(tag) for tag in audience.tags_any})
    none_keys = sorted({tag_key(tag) for tag in audience.tags_none})
    wanted = sorted((key, fold(value)) for key, value in audience.fields.items())
    return {
        "page_id": check_page_id(audience.page_id),
        "tags_any": _json(any_keys) if any_keys else None,
        "tags_none": _json(none_keys) if none_keys else None,
        "fields": _json([list(pair) for pair in wanted]) if wanted else None,
        "campaign": audience.campaign,
        "after_at": _stored_or_none(audience.last_interaction_after),
        "before_at": _stored_or_none(audience.last_interaction_before),
    }


def _stored_or_none(value: datetime | None) -> str | None:
    return stored_time(value) if value is not None else None


def open_contacts_store(url: Path | str, policy: Policy | ReplyWindows | None = None) -> ContactsStore:
    """The contacts store at `settings.store_url("contacts")`: `sqlite:///path` (or a path) or `postgresql://…`."""
    return ContactsStore(url, policy)
