"""The page profiles' store: per page, the Messenger profile as edited, what was last applied to Facebook (when, by
whom) and Facebook's last answer or error; a SQLite file or a PostgreSQL schema (`open_page_profile_store(url)`,
`core.database`, `Settings.store_url("page_profile")`).

Numbered migrations and named queries live in `page_profile/sql/sqlite/` and `page_profile/sql/postgres/`. The store
is synchronous and thread-safe; async code calls it through a thread. It keeps what it is given (profiles in Meta's
shape, already checked by `page_profile.model`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from core.database import DatabaseStore, moment, stored_time

SQL_DIR = Path(__file__).parent / "sql"


@dataclass(frozen=True)
class StoredProfile:
    page_id: str
    profile: dict[str, Any]  # Meta's shape, as edited
    updated_at: datetime
    updated_by: str
    applied: dict[str, Any] | None = None  # as last applied successfully
    applied_at: datetime | None = None
    applied_by: str | None = None
    last_attempt_at: datetime | None = None
    last_attempt_by: str | None = None
    last_ok: bool | None = None
    last_answer: dict[str, Any] | None = None

    @property
    def has_unapplied_changes(self) -> bool:
        return self.applied != self.profile

    def to_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "page_id": self.page_id, "profile": self.profile, "updated_at": iso(self.updated_at),
            "updated_by": self.updated_by, "applied": self.applied, "applied_at": iso(self.applied_at),
            "applied_by": self.applied_by, "last_attempt_at": iso(self.last_attempt_at),
            "last_attempt_by": self.last_attempt_by, "last_ok": self.last_ok, "last_answer": self.last_answer,
            "has_unapplied_changes": self.has_unapplied_changes,
        }


class UnknownProfile(LookupError):
    """No profile saved for the page (nothing to record an attempt on)."""


def _json_out(value: Mapping[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _json_in(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    loaded = json.loads(value) if isinstance(value, (str, bytes)) else value
    return dict(loaded)


def _optional_time(value: Any) -> datetime | None:
    return moment(value) if value is not None else None


def _profile(row: Any) -> StoredProfile:
    return StoredProfile(
        page_id=row["page_id"],
        profile=_json_in(row["profile_json"]) or {},
        updated_at=moment(row["updated_at"]),
        updated_by=row["updated_by"],
        applied=_json_in(row["applied_json"]),
        applied_at=_optional_time(row["applied_at"]),
        applied_by=row["applied_by"],
        last_attempt_at=_optional_time(row["last_attempt_at"]),
        last_attempt_by=row["last_attempt_by"],
        last_ok=None if row["last_ok"] is None else bool(row["last_ok"]),
        last_answer=_json_in(row["last_answer_json"]),
    )


class PageProfileStore(DatabaseStore):
    """A file path, `sqlite:///path` or `postgresql://…` (schema: the URL's search_path, else "page_profile")."""

    BACKEND = "page_profile"
    SQL_DIR = SQL_DIR

    def get(self, page_id: str) -> StoredProfile | None:
        rows = self._db.read("get_profile", {"page_id": page_id})
        return _profile(rows[0]) if rows else None

    def profiles(self) -> list[StoredProfile]:
        return [_profile(row) for row in self._db.read("list_profiles", {})]

    def save(self, page_id: str, profile: Mapping[str, Any], by: str, now: datetime) -> StoredProfile:
        """Keep the edited profile; what was applied and Facebook's last answer stay as they were."""
        self._db.run("save_profile", {"page_id": page_id, "profile_json": _json_out(profile), "by": by,
                                      "now": stored_time(now)})
        return self._must_get(page_id)

    def record_success(self, page_id: str, applied: Mapping[str, Any], answer: Mapping[str, Any], by: str,
                       now: datetime) -> StoredProfile:
        """Facebook accepted `applied`: it is now the page's applied profile."""
        changed = self._db.run("record_success", {
            "page_id": page_id, "applied_json": _json_out(applied), "answer_json": _json_out(answer), "by": by,
            "now": stored_time(now)})
        if not changed:
            raise UnknownProfile(page_id)
        return self._must_get(page_id)

    def record_failure(self, page_id: str, answer: Mapping[str, Any], by: str, now: datetime) -> StoredProfile:
        """Facebook refused or did not answer: the applied profile stays, the error is kept."""
        changed = self._db.run("record_failure", {"page_id": page_id, "answer_json": _json_out(answer), "by": by,
                                                  "now": stored_time(now)})
        if not changed:
            raise UnknownProfile(page_id)
        return self._must_get(page_id)

    def _must_get(self, page_id: str) -> StoredProfile:
        stored = self.get(page_id)
        if stored is None:
            raise UnknownProfile(page_id)
        return stored


def open_page_profile_store(url: Path | str) -> PageProfileStore:
    """The store at `Settings.store_url("page_profile")`: `sqlite:///path` (or a path) or `postgresql://…`."""
    return PageProfileStore(url)
