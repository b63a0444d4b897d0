"""The comment journal: every `feed` change the webhook process received, durable before it answers Meta 200, and
the verdict on each new comment (replied, or skipped with its reason). A SQLite file or a PostgreSQL schema
(`open_comment_journal(settings.store_url("comment_journal"))`, `core.database`); SQL in `comments/sql/journal/`.

- **Recording** (`record`, the webhook process): one transaction per delivery; a redelivery (the same
  `FeedChange.dedup_key`) inserts nothing. A comment someone added is `pending` (the processor decides it); one by
  the page itself is `ignored` (never answered); everything else (edits, removals, hide/unhide, posts, reactions) is
  `recorded`: kept, never answered. Each of those says why in `reason_code` (`RECORD_REASONS`).
- **Deciding** (`claim_pending`, `finish`, the app's processor): pending comments are claimed under a lease, so two
  processors never decide one comment; only the holder writes the verdict (`replied` / `skipped` + reason), once.
- **After the reply** (`set_psid`, `awaiting_psid`, `origin_of`): the private reply's Send API answer names the
  person's PSID; the conversation that follows knows the comment it started from. When the person then writes to the
  page (`awaiting_answer`, `set_answered`), the conversation counts as started from the comment (and its rule).

Synchronous and thread-safe; async code calls it off the event loop (`run`, `record_async`: one thread per
journal). A SQLite file commits with `synchronous=FULL`: a change recorded is on disk when the webhook answers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

from comments.model import RuleCount
from core.database import Database, moment, open_database, sqlite_path, stored_time
from core.offload import Offload
from core.postgres import is_postgres_url
from core.sqlite import SQLiteFile
from meta.feed import FeedChange

logger = logging.getLogger(__name__)

SQL_DIR = Path(__file__).parent / "sql" / "journal"  # sqlite/ and postgres/: numbered migrations and queries.sql
STORE_NAME = "comment_journal"

PENDING = "pending"  # a comment someone added: the processor decides it
RECORDED = "recorded"  # edits, removals, hide/unhide, posts, reactions: kept, never answered
IGNORED = "ignored"  # a comment by the page itself: never answered
REPLIED = "replied"  # the processor's verdicts
SKIPPED = "skipped"
STATUSES = (PENDING, RECORDED, IGNORED, REPLIED, SKIPPED)
VERDICTS = (REPLIED, SKIPPED, IGNORED)  # what `finish` may write

BY_PAGE = "by_page"
# Why a change gets no reply at ingest: code → what the console says (Spanish: editors read it).
RECORD_REASONS: dict[str, str] = {
    BY_PAGE: "Comentario de la propia página: nunca se responde",
    "comment_edited": "Comentario editado: se guarda, no se responde",
    "comment_removed": "Comentario eliminado",
    "comment_hidden": "Comentario ocultado",
    "comment_unhidden": "Comentario visible de nuevo",
    "comment_other": "Cambio de un comentario que no se responde",
    "not_a_comment": "Publicación, reacción u otro cambio de la página: no es un comentario",
}
_COMMENT_VERB_REASONS = {
    "edited": "comment_edited",
    "edit": "comment_edited",
    "remove": "comment_removed",
    "delete": "comment_removed",
    "hide": "comment_hidden",
    "unhide": "comment_unhidden",
}

T = TypeVar("T")


class CommentJournalError(Exception):
    """Root of what the journal raises on purpose."""


def initial_status(change: FeedChange) -> tuple[str, str | None]:
    """Pure: a new change's status and reason at ingest."""
    if change.is_comment and change.verb == "add":
        return (IGNORED, BY_PAGE) if change.is_by_page else (PENDING, None)
    if change.is_comment:
        return RECORDED, _COMMENT_VERB_REASONS.get(change.verb, "comment_other")
    return RECORDED, "not_a_comment"


@dataclass(frozen=True)
class StoredComment:
    """One row of the journal (a `feed` change and what became of it)."""

    id: int
    dedup_key: str
    page_id: str
    item: str
    verb: str
    comment_id: str | None
    post_id: str | None
    parent_id: str | None
    from_id: str
    from_name: str
    message: str
    created_at: datetime
    received_at: datetime
    raw_json: str
    status: str
    reason_code: str | None = None
    rule_id: str | None = None
    private_outbox_id: int | None = None
    public_outbox_id: int | None = None
    psid: str | None = None
    claimed_by: str | None = None
    lease_until: datetime | None = None
    handled_at: datetime | None = None
    reply_sent_at: datetime | None = None  # when the private reply was sent (with the PSID)
    answered_at: datetime | None = None  # the person wrote to the page after it: a conversation started
    attempts: int = 0  # how many times a processor claimed it (each claim is one attempt to decide it)
    psid_unknown_at: datetime | None = None  # the private reply was sent but Meta named no recipient

    @property
    def replied_at(self) -> datetime | None:
        """When the private reply went out: the outbox's sent time, else the verdict's (rows from before it was
        kept)."""
        return self.reply_sent_at or self.handled_at

    @property
    def change(self) -> FeedChange:
        """The change as parsed at ingest (rebuilt from Meta's value)."""
        return FeedChange.from_dict(json.loads(self.raw_json))

    @property
    def is_reply(self) -> bool:
        return bool(self.parent_id) and self.parent_id != self.post_id

    @property
    def is_by_page(self) -> bool:
        return bool(self.from_id) and self.from_id == self.page_id

    @property
    def post(self) -> Mapping[str, Any] | None:
        """Meta's `post` object sent with the comment (status_type, permalink_url, …), when it sent one."""
        return self.change.post

    def to_dict(self) -> dict[str, Any]:
        """For the console's API: the row without Meta's raw value and the claim's bookkeeping."""
        return {
            "id": self.id, "page_id": self.page_id, "item": self.item, "verb": self.verb,
            "comment_id": self.comment_id, "post_id": self.post_id, "parent_id": self.parent_id,
            "is_reply": self.is_reply, "from_id": self.from_id, "from_name": self.from_name, "message": self.message,
            "created_at": self.created_at.isoformat(), "received_at": self.received_at.isoformat(),
            "status": self.status, "reason_code": self.reason_code, "rule_id": self.rule_id,
            "private_outbox_id": self.private_outbox_id, "public_outbox_id": self.public_outbox_id,
            "psid": self.psid, "handled_at": self.handled_at.isoformat() if self.handled_at else None,
            "answered_at": self.answered_at.isoformat() if self.answered_at else None,
        }


def _optional_time(value: Any) -> datetime | None:
    return None if value is None else moment(value)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _stored(row: Any) -> StoredComment:
    return StoredComment(
        id=int(row["id"]),
        dedup_key=row["dedup_key"],
        page_id=row["page_id"],
        item=row["item"],
        verb=row["verb"],
        comment_id=row["comment_id"],
        post_id=row["post_id"],
        parent_id=row["parent_id"],
        from_id=row["from_id"],
        from_name=row["from_name"],
        message=row["message"],
        created_at=moment(row["created_at"]),
        received_at=moment(row["received_at"]),
        raw_json=row["raw_json"],
        status=row["status"],
        reason_code=row["reason_code"],
        rule_id=row["rule_id"],
        private_outbox_id=_optional_int(row["private_outbox_id"]),
        public_outbox_id=_optional_int(row["public_outbox_id"]),
        psid=row["psid"],
        claimed_by=row["claimed_by"],
        lease_until=_optional_time(row["lease_until"]),
        handled_at=_optional_time(row["handled_at"]),
        reply_sent_at=_optional_time(row["reply_sent_at"]),
        answered_at=_optional_time(row["answered_at"]),
        attempts=int(row["attempts"]),
        psid_unknown_at=_optional_time(row["psid_unknown_at"]),
    )


def _rule_key(rule_id: int | str | None) -> str | None:
    return None if rule_id is None else str(rule_id)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class CommentJournal:
    """The journal over a `core.database.Database` (a SQLite file or a PostgreSQL schema)."""

    def __init__(self, target: Path | str) -> None:
        """A file path, `sqlite:///path` or `postgresql://…` (schema: the URL's search_path, else
        "comment_journal")."""
        self.target = target
        if isinstance(target, str) and is_postgres_url(target):
            self._db: Database = open_database(target, STORE_NAME, SQL_DIR)
        else:  # two processes write the file (the webhook's records, the app's verdicts): durable, short waits
            self._db = SQLiteFile(sqlite_path(target), STORE_NAME, SQL_DIR / "sqlite", synchronous="FULL",
                                  short_waits=True)
        self._offload = Offload("comment-journal")

    @property
    def schema_version(self) -> int:
        return self._db.schema_version

    def close(self) -> None:
        self._offload.close()
        self._db.close()

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a method of this journal off the event loop (its own thread: commits wait for the disk)."""
        return await self._offload.run(fn, *args, **kwargs)

    # --- recording (the webhook process) ---------------------------------------------------------------------

    def record(self, changes: Iterable[FeedChange], now: datetime) -> list[int]:
        """All changes in one transaction; the ids of the new ones (redeliveries are skipped)."""
        received_at = stored_time(now)
        fresh: list[int] = []
        with self._db.write() as conn:
            for change in changes:
                status, reason = initial_status(change)
                row = conn.execute(self._db.queries["insert_change"], {
                    "dedup_key": change.dedup_key, "page_id": change.page_id, "item": change.item,
                    "verb": change.verb, "comment_id": change.comment_id, "post_id": change.post_id,
                    "parent_id": change.parent_id, "from_id": change.from_id, "from_name": change.from_name,
                    "message": change.message, "created_at": stored_time(change.created_time or now),
                    "received_at": received_at, "raw_json": json.dumps(change.to_dict(), ensure_ascii=False),
                    "status": status, "reason_code": reason,
                }).fetchone()
                if row is not None:
                    fresh.append(int(row["id"]))
        return fresh

    async def record_async(self, changes: list[FeedChange], now: datetime) -> list[int]:
        """`record` off the event loop: one commit for the delivery, in this journal's thread."""
        return await self.run(self.record, changes, now)

    async def record_delivery(self, changes: list[FeedChange], now: datetime) -> bool:
        """A webhook delivery's feed changes, durable before its 200: False when the journal cannot be written (disk
        full, database down), logged; the webhook then answers 503 and Meta delivers again (the changes recorded
        already are a no-op then). The webhook process and the Rasa channel's own route both call this."""
        try:
            await self.record_async(changes, now)
        except Exception:  # any failure to write: not recorded, so not acknowledged
            logger.exception("recording a delivery's feed changes failed", extra={"changes": len(changes)})
            return False
        return True

    # --- deciding (the processor) ----------------------------------------------------------------------------

    def claim_pending(self, owner: str, now: datetime, lease: timedelta, limit: int = 20) -> list[StoredComment]:
        """Pending comments, oldest first, that nobody holds or whose lease ran out (the holder's own too: a comment
        that failed waits for its lease); claimed for `owner` until `now + lease`, one more `attempts` each."""
        with self._db.write() as conn:
            rows = conn.execute(self._db.queries["claim_pending"], {
                "owner": owner, "now": stored_time(now), "lease_until": stored_time(now + lease),
                "limit": int(limit),
            }).fetchall()
        return sorted((_stored(row) for row in rows), key=lambda stored: stored.id)

    def finish(self, id: int, owner: str, status: str, reason_code: str | None = None,
               rule_id: int | str | None = None, private_outbox_id: int | None = None,
               public_outbox_id: int | None = None, *, now: datetime | None = None) -> bool:
        """The verdict on a claimed comment (`replied`, `skipped` or `ignored`, with why). False when `owner` no
        longer holds it (its lease ran out and another took it, or it was decided already): nothing changes."""
        if status not in VERDICTS:
            raise CommentJournalError(f"a verdict is one of {', '.join(VERDICTS)}, not {status!r}")
        changed = self._db.run("finish", {
            "id": int(id), "owner": owner, "status": status, "reason_code": reason_code,
            "rule_id": _rule_key(rule_id), "private_outbox_id": private_outbox_id,
            "public_outbox_id": public_outbox_id, "now": stored_time(now or _now()),
        })
        return changed > 0

    def hold_back(self, id: int, owner: str, until: datetime) -> bool:
        """A claimed comment that could not be decided stays claimed until `until` (a backoff): nobody retries it
        before. False when `owner` no longer holds it."""
        return self._db.run("hold_back", {"id": int(id), "owner": owner, "until": stored_time(until)}) > 0

    # --- after the reply -------------------------------------------------------------------------------------

    def set_psid(self, id: int, psid: str, sent_at: datetime | None = None) -> None:
        """The person's page-scoped id, from the private reply's Send API answer (`recipient_id`), and when the
        reply was sent (the outbox's `sent_at`; None: the verdict's time stands for it)."""
        self._db.run("set_psid", {"id": int(id), "psid": psid,
                                  "sent_at": None if sent_at is None else stored_time(sent_at)})

    def awaiting_answer(self, since: datetime, after_id: int = 0, limit: int = 100) -> list[StoredComment]:
        """Private replies that reached the person since `since` whose person has not been seen writing back yet,
        by id after `after_id` (the processor goes round them a batch at a time)."""
        return [_stored(row) for row in self._db.read("awaiting_answer", {
            "since": stored_time(since), "after_id": int(after_id), "limit": int(limit),
        })]

    def set_answered(self, id: int, at: datetime) -> bool:
        """The person wrote to the page at `at`, after the private reply: a conversation started from this comment.
        Once: False when it was already noted."""
        return self._db.run("set_answered", {"id": int(id), "at": stored_time(at)}) > 0

    def psid_of(self, page_id: str, from_id: str) -> str | None:
        """The PSID an earlier private reply to this person (by their feed `from` id) reached, if any: how the
        processor finds the person's conversation (to leave a paused one alone)."""
        if not from_id:
            return None
        rows = self._db.read("psid_of", {"page_id": page_id, "from_id": from_id})
        return rows[0]["psid"] if rows else None

    def reply_failed(self, id: int, reason_code: str) -> bool:
        """A replied comment whose private reply never reached the person (the outbox gave up on it: blocked,
        failed, dead or cancelled) becomes `skipped` with why, so the console says it and `awaiting_psid` stops
        returning it. False when it is not waiting for its PSID any more."""
        changed = self._db.run("reply_failed", {"id": int(id), "reason_code": reason_code})
        return changed > 0

    def awaiting_psid(self, limit: int = 50, after_id: int = 0) -> list[StoredComment]:
        """Replied comments with a private reply whose PSID is not known yet, by id after `after_id` (the processor
        pages through them, so replies still in flight never starve the ones behind them)."""
        return [_stored(row) for row in self._db.read("awaiting_psid", {"limit": int(limit),
                                                                        "after_id": int(after_id)})]

    def set_psid_unknown(self, id: int, at: datetime, sent_at: datetime | None = None) -> bool:
        """The private reply was sent but Meta's answer named no recipient: the PSID can never be learnt. Final: the
        comment leaves `awaiting_psid` (it counts as delivered). False when it was not waiting for its PSID."""
        return self._db.run("set_psid_unknown", {
            "id": int(id), "at": stored_time(at), "sent_at": None if sent_at is None else stored_time(sent_at),
        }) > 0

    def replied_to_person_since(self, page_id: str, from_id: str, post_id: str | None, since: datetime) -> bool:
        """Whether this person got a reply to a comment on this post since `since` ("one per person per post per
        day"). An unknown person (Meta sent no `from`) or post is never the same as another one: False."""
        if not from_id or not post_id:
            return False
        rows = self._db.read("replied_to_person_since", {
            "page_id": page_id, "from_id": from_id, "post_id": post_id, "since": stored_time(since),
        })
        return bool(rows)

    def origin_of(self, page_id: str, psid: str) -> StoredComment | None:
        """The comment a conversation started from: the first one whose private reply reached this PSID."""
        rows = self._db.read("origin_of", {"page_id": page_id, "psid": psid})
        return _stored(rows[0]) if rows else None

    # --- reading (the console) -------------------------------------------------------------------------------

    def get(self, id: int) -> StoredComment | None:
        rows = self._db.read("get", {"id": int(id)})
        return _stored(rows[0]) if rows else None

    def recent(self, page_id: str | None = None, limit: int = 50, before_id: int | None = None) -> list[StoredComment]:
        """Newest first; `before_id` pages back (the smallest id of the previous page)."""
        return [_stored(row) for row in self._db.read("recent", {
            "page_id": page_id, "limit": int(limit), "before_id": None if before_id is None else int(before_id),
        })]

    def post_message(self, page_id: str, post_id: str) -> str | None:
        """The post's text for rules that match it: as its own feed changes told it (the page's posts arrive as
        `status`/`photo` adds), else as the Graph API gave it (`save_post_text`; '' for a post without text); None
        when neither is known."""
        params = {"page_id": page_id, "post_id": post_id}
        rows = self._db.read("post_message", params) or self._db.read("fetched_post_text", params)
        return str(rows[0]["message"]) if rows else None

    def save_post_text(self, page_id: str, post_id: str, message: str, now: datetime) -> None:
        """The post's text read from the Graph API (`GET /{post_id}?fields=message`), kept so it is read once."""
        self._db.run("save_post_text", {"page_id": page_id, "post_id": post_id, "message": message,
                                        "at": stored_time(now)})

    def counts(self, page_id: str | None = None, since: datetime | None = None) -> dict[str, Any]:
        """The counters the console shows, over changes received since `since` (all when None):
        `received` (comments and replies people added; not the page's own), `by_status`, `by_reason` (why comments
        got no reply: skipped or ignored), `private`/`public` (replies enqueued), `delivered` (private replies
        sent: the person's PSID known), `started` (conversations started: distinct people who wrote to the page
        after their private reply), and `by_rule`: rule id → `matched`, `private`, `public`, `delivered`,
        `started`."""
        params = {"page_id": page_id, "since": None if since is None else stored_time(since)}
        by_rule: dict[str, dict[str, int]] = {}
        for row in self._db.read("count_by_rule", params):
            by_rule[str(row["rule_id"])] = {
                "matched": int(row["matched"]), "private": int(row["private_replies"]),
                "public": int(row["public_replies"]), "delivered": int(row["delivered"]),
                "started": int(row["started"]),
            }
        return {
            "received": int(self._db.read("count_received", params)[0]["n"]),
            "by_status": {row["status"]: int(row["n"]) for row in self._db.read("count_by_status", params)},
            "by_reason": {str(row["reason_code"]): int(row["n"]) for row in self._db.read("count_by_reason", params)},
            "private": sum(rule["private"] for rule in by_rule.values()),
            "public": sum(rule["public"] for rule in by_rule.values()),
            "delivered": sum(rule["delivered"] for rule in by_rule.values()),
            "started": int(self._db.read("count_started", params)[0]["n"]),
            "by_rule": by_rule,
        }

    def rule_counts(self, page_id: str | None, since: datetime, until: datetime) -> list[RuleCount]:
        """Per reply rule, by rule id: the comments received in [since, until) (aware times; `page_id` None: every
        page) it matched, the replies queued, the private replies that reached the person and the conversations
        started after them (the reports' comment rules)."""
        return [RuleCount(rule_id=str(row["rule_id"]), matched=int(row["matched"]), replied=int(row["delivered"]),
                          private=int(row["private_replies"]), public=int(row["public_replies"]),
                          started=int(row["started"]))
                for row in self._db.read("rule_counts", {"page_id": page_id, "since": stored_time(since),
                                                         "until": stored_time(until)})]


def open_comment_journal(url: Path | str) -> CommentJournal:
    """The journal at `settings.store_url("comment_journal")`: `sqlite:///path` (or a path) or `postgresql://…`."""
    return CommentJournal(url)
