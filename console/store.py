"""The console's store: users, sessions, failed logins, snippets ("Atajos") and the looks at conversations saved
before they lived on the contacts (`ContactsStore.mark_read`; the inbox copies these once), in a SQLite file or a
PostgreSQL
schema (`open_console_store(url)`, `core.database`).

Numbered migrations and named queries live in `console/sql/sqlite/` and `console/sql/postgres/`. The store is
synchronous and thread-safe; async code calls it through a thread (`run_in_threadpool`).
It stores what it is given: hashing, tokens and decisions are `console.auth`'s and `console.snippets`'.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core.database import DatabaseStore, moment, stored_time

SQL_DIR = Path(__file__).parent / "sql"  # sqlite/ and postgres/: numbered migrations and queries.sql

ROLES = ("admin", "agent", "editor")
READ_MARKS_CHUNK = 1000


class ConsoleStoreError(Exception):
    """Root of what the store raises on purpose."""


class UserExists(ConsoleStoreError):
    pass


class UnknownUser(ConsoleStoreError, LookupError):
    pass


@dataclass(frozen=True)
class User:
    username: str
    display_name: str
    role: str
    password_hash: str
    active: bool
    created_at: datetime


@dataclass(frozen=True)
class StoredSession:
    id_sha256: str
    username: str
    display_name: str
    role: str
    active: bool
    csrf_token: str
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True)
class Snippet:
    name: str
    text: str
    created_by: str
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "text": self.text, "created_by": self.created_by,
                "updated_at": self.updated_at.isoformat()}


_time = stored_time
_parse = moment


def _user(row: Any) -> User:
    return User(
        username=row["username"],
        display_name=row["display_name"],
        role=row["role"],
        password_hash=row["password_hash"],
        active=bool(row["active"]),
        created_at=_parse(row["created_at"]),
    )


class ConsoleStore(DatabaseStore):
    """A file path, `sqlite:///path` or `postgresql://…` (schema: the URL's search_path, else "console")."""

    BACKEND = "console"
    SQL_DIR = SQL_DIR

    def _read(self, name: str, params: Mapping[str, Any]) -> list[Any]:
        return self._db.read(name, params)

    def _run(self, name: str, params: Mapping[str, Any]) -> int:
        return self._db.run(name, params)

    # --- users -----------------------------------------------------------------------------------

    def add_user(self, username: str, display_name: str, role: str, password_hash: str, now: datetime) -> User:
        if role not in ROLES:
            raise ConsoleStoreError(f"unknown role {role!r}")
        if not self._run("insert_user", {"username": username, "display_name": display_name, "role": role,
                                         "password_hash": password_hash, "now": _time(now)}):
            raise UserExists(f"the user {username!r} already exists")
        return self.get_user(username)

    def get_user(self, username: str) -> User:
        rows = self._read("get_user", {"username": username})
        if not rows:
            raise UnknownUser(f"no user {username!r}")
        return _user(rows[0])

    def find_user(self, username: str) -> User | None:
        rows = self._read("get_user", {"username": username})
        return _user(rows[0]) if rows else None

    def users(self) -> list[User]:
        return [_user(row) for row in self._read("list_users", {})]

    def set_password_hash(self, username: str, password_hash: str, now: datetime) -> None:
        """A new password logs the user out everywhere."""
        with self._db.write() as conn:
            changed = conn.execute(
                self._db.queries["set_password"], {"username": username, "password_hash": password_hash,
                                                "now": _time(now)}
            ).rowcount
            if not changed:
                raise UnknownUser(f"no user {username!r}")
            conn.execute(self._db.queries["delete_user_sessions"], {"username": username})

    def set_role(self, username: str, role: str, now: datetime) -> None:
        if role not in ROLES:
            raise ConsoleStoreError(f"unknown role {role!r}")
        if not self._run("set_role", {"username": username, "role": role, "now": _time(now)}):
            raise UnknownUser(f"no user {username!r}")

    def set_active(self, username: str, active: bool, now: datetime) -> None:
        """Deactivating a user ends their sessions."""
        with self._db.write() as conn:
            changed = conn.execute(
                self._db.queries["set_active"], {"username": username, "active": bool(active), "now": _time(now)}
            ).rowcount
            if not changed:
                raise UnknownUser(f"no user {username!r}")
            if not active:
                conn.execute(self._db.queries["delete_user_sessions"], {"username": username})

    # --- sessions --------------------------------------------------------------------------------

    def add_session(self, id_sha256: str, username: str, csrf_token: str, now: datetime, expires_at: datetime) -> None:
        self._run("insert_session", {"id_sha256": id_sha256, "username": username, "csrf_token": csrf_token,
                                     "now": _time(now), "expires_at": _time(expires_at)})

    def session(self, id_sha256: str, now: datetime) -> StoredSession | None:
        rows = self._read("get_session", {"id_sha256": id_sha256, "now": _time(now)})
        if not rows:
            return None
        row = rows[0]
        return StoredSession(
            id_sha256=row["id_sha256"],
            username=row["username"],
            display_name=row["display_name"],
            role=row["role"],
            active=bool(row["active"]),
            csrf_token=row["csrf_token"],
            created_at=_parse(row["created_at"]),
            expires_at=_parse(row["expires_at"]),
            last_seen_at=_parse(row["last_seen_at"]),
        )

    def touch_session(self, id_sha256: str, now: datetime) -> None:
        self._run("touch_session", {"id_sha256": id_sha256, "now": _time(now)})

    def delete_session(self, id_sha256: str) -> None:
        self._run("delete_session", {"id_sha256": id_sha256})

    def delete_expired_sessions(self, now: datetime) -> int:
        return self._run("delete_expired_sessions", {"now": _time(now)})

    # --- failed logins ---------------------------------------------------------------------------

    def add_login_failure(self, throttle_key: str, at: datetime) -> None:
        self._run("insert_login_failure", {"throttle_key": throttle_key, "at": _time(at)})

    def login_failures_since(self, throttle_key: str, since: datetime) -> list[datetime]:
        rows = self._read("login_failures_since", {"throttle_key": throttle_key, "since": _time(since)})
        return [_parse(row["at"]) for row in rows]

    def clear_login_failures(self, throttle_key: str) -> None:
        self._run("clear_login_failures", {"throttle_key": throttle_key})

    def forget_login_failures_before(self, before: datetime) -> int:
        return self._run("forget_old_login_failures", {"before": _time(before)})

    # --- snippets --------------------------------------------------------------------------------

    def snippets(self) -> list[Snippet]:
        return [
            Snippet(row["name"], row["text"], row["created_by"], _parse(row["updated_at"]))
            for row in self._read("list_snippets", {})
        ]

    def save_snippet(self, name: str, text: str, created_by: str, now: datetime) -> Snippet:
        self._run("upsert_snippet", {"name": name, "text": text, "created_by": created_by, "now": _time(now)})
        return Snippet(name, text, created_by, now.astimezone(timezone.utc))

    def delete_snippet(self, name: str) -> bool:
        return self._run("delete_snippet", {"name": name}) > 0

    # --- conversation reads (before issue 13's review: the inbox now keeps the looks on the contacts, and copies
    # these once, `console.inbox.copy_console_reads`) -----------------------------------------------------------

    def mark_read(self, conversation_id: str, username: str, at: datetime, message_count: int | None = None) -> None:
        """An agent opened the conversation at `at`: what the person wrote until then counts as read (and how many
        messages they had written then, `message_count`, when known: the inbox counts the ones since)."""
        count = message_count if isinstance(message_count, int) and message_count >= 0 else None
        self._run("mark_read", {"id": conversation_id, "at": _time(at), "by": username, "message_count": count})

    def reads_of(self, conversation_ids: Collection[str]) -> dict[str, datetime]:
        """When each of these conversations was last opened (absent: never)."""
        return {key: mark.read_at for key, mark in self.read_marks_of(conversation_ids).items()}

    def read_marks_of(self, conversation_ids: Collection[str]) -> dict[str, ReadMark]:
        """The last look at each of these conversations (absent: never opened)."""
        if not conversation_ids:
            return {}
        rows = self._read("read_marks_of", {"ids": json.dumps(sorted(set(conversation_ids)))})
        return {row["conversation_id"]: _read_mark(row) for row in rows}

    def read_marks(self, page_id: str | None = None, chunk: int = READ_MARKS_CHUNK) -> Iterator[dict[str, ReadMark]]:
        """Every look (of one page's conversations when `page_id`), a chunk at a time, by conversation id: the
        inbox copies them to the contacts store once."""
        after, prefix = "", f"{page_id}:" if page_id is not None else ""
        while True:
            rows = self._read("read_marks_after", {"after": after, "prefix": prefix, "limit": chunk})
            if rows:
                yield {row["conversation_id"]: _read_mark(row) for row in rows}
            if len(rows) < chunk:
                return
            after = rows[-1]["conversation_id"]


@dataclass(frozen=True)
class ReadMark:
    """An agent's last look at a conversation: when, and how many messages the person had written by then (None:
    unknown, a look saved before the counter existed or while the contacts store was away)."""

    read_at: datetime
    message_count: int | None = None


def _read_mark(row: Any) -> ReadMark:
    count = row["message_count"]
    return ReadMark(_parse(row["read_at"]), int(count) if count is not None else None)


def open_console_store(url: Path | str) -> ConsoleStore:
    """The console store at `Settings.console_store_url`: `sqlite:///path` (or a path) or `postgresql://…`."""
    return ConsoleStore(url)
