"""The paraphrase store: ways of asking a chat model proposed for the matrix's entries, and the jobs that asked for
them, in a SQLite file or a PostgreSQL schema (`open_paraphrase_store(settings.store_url("paraphrases"))`,
`core.database`). Numbered migrations and named queries live in `knowledge_matrix/sql/paraphrases/{sqlite,postgres}`.

A proposal is `proposed` (waiting for an editor), `accepted` (until it goes into a draft, then it keeps the draft's
id), `rejected`, or `filtered` (dropped before review, with the reason the editor reads). One wording per entry, ever:
a wording proposed, rejected or filtered once is never proposed again. Synchronous and thread-safe; async code calls
it through a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from core.database import DatabaseStore, moment, stored_time

SQL_DIR = Path(__file__).parent / "sql" / "paraphrases"  # sqlite/ and postgres/: numbered migrations and queries.sql
MAX_LIST = 5000

JobStatus = Literal["running", "done", "failed"]
ParaphraseStatus = Literal["proposed", "accepted", "rejected", "filtered"]
DECISIONS = ("accepted", "rejected", "proposed")  # what an editor may set (proposed: undo a decision)


@dataclass(frozen=True)
class ParaphraseJob:
    id: int
    matrix_version: str
    requested_by: str
    status: JobStatus
    total_entries: int
    done_entries: int
    proposed: int
    filtered: int
    tokens: int
    error_code: str | None
    error_es: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def percent(self) -> int:
        """Progress, whole percent (a finished job is 100 whatever it covered)."""
        if self.status != "running":
            return 100
        return 0 if self.total_entries <= 0 else min(100, self.done_entries * 100 // self.total_entries)


@dataclass(frozen=True)
class Paraphrase:
    id: int
    job_id: int
    matrix_version: str
    entry_id: str
    text: str
    status: ParaphraseStatus
    reason_code: str | None
    reason_es: str | None
    other_entry_id: str | None
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    draft_id: str | None


@dataclass(frozen=True)
class NewParaphrase:
    """One screened proposal to keep: `status` proposed or filtered (then with its reason)."""

    entry_id: str
    text: str
    text_key: str
    status: Literal["proposed", "filtered"]
    reason_code: str | None = None
    reason_es: str | None = None
    other_entry_id: str | None = None


def _when(value: Any) -> datetime | None:
    return moment(value) if value is not None else None


def _job(row: Any) -> ParaphraseJob:
    return ParaphraseJob(
        id=int(row["id"]), matrix_version=row["matrix_version"], requested_by=row["requested_by"],
        status=row["status"], total_entries=int(row["total_entries"]), done_entries=int(row["done_entries"]),
        proposed=int(row["proposed"]), filtered=int(row["filtered"]), tokens=int(row["tokens"]),
        error_code=row["error_code"], error_es=row["error_es"], created_at=moment(row["created_at"]),
        updated_at=moment(row["updated_at"]), finished_at=_when(row["finished_at"]))


def _paraphrase(row: Any) -> Paraphrase:
    return Paraphrase(
        id=int(row["id"]), job_id=int(row["job_id"]), matrix_version=row["matrix_version"], entry_id=row["entry_id"],
        text=row["text"], status=row["status"], reason_code=row["reason_code"], reason_es=row["reason_es"],
        other_entry_id=row["other_entry_id"], created_at=moment(row["created_at"]), decided_at=_when(row["decided_at"]),
        decided_by=row["decided_by"], draft_id=row["draft_id"])


class ParaphraseStore(DatabaseStore):
    """A file path, `sqlite:///path`, `:memory:` or `postgresql://…` (schema: the URL's search_path, else
    "paraphrases")."""

    BACKEND = "paraphrases"
    SQL_DIR = SQL_DIR

    # --- jobs ------------------------------------------------------------------------------------------------------

    def start_job(self, matrix_version: str, requested_by: str, total_entries: int, now: datetime) -> ParaphraseJob:
        with self._db.write() as conn:
            row = conn.execute(self._db.queries["insert_job"], {
                "matrix_version": matrix_version, "requested_by": requested_by, "total_entries": total_entries,
                "now": stored_time(now)}).fetchone()
            job = conn.execute(self._db.queries["job"], {"id": int(row["id"])}).fetchone()
        return _job(job)

    def job(self, job_id: int) -> ParaphraseJob | None:
        rows = self._db.read("job", {"id": job_id})
        return _job(rows[0]) if rows else None

    def running_job(self) -> ParaphraseJob | None:
        rows = self._db.read("running_job", {})
        return _job(rows[0]) if rows else None

    def latest_jobs(self, limit: int = 5) -> list[ParaphraseJob]:
        return [_job(row) for row in self._db.read("latest_jobs", {"limit": limit})]

    def record_progress(self, job_id: int, *, done_entries: int, proposed: int, filtered: int, tokens: int,
                        now: datetime) -> None:
        self._db.run("progress", {"id": job_id, "done_entries": done_entries, "proposed": proposed,
                                  "filtered": filtered, "tokens": tokens, "now": stored_time(now)})

    def finish_job(self, job_id: int, now: datetime, *, failed: bool = False, error_code: str | None = None,
                   error_es: str | None = None) -> bool:
        """Done (perhaps with a note: the token budget ran out) or failed, with the reason the editor reads; False
        when it was not running any more."""
        status = "failed" if failed else "done"
        return self._db.run("finish_job", {"id": job_id, "status": status, "error_code": error_code,
                                           "error_es": error_es, "now": stored_time(now)}) > 0

    def end_stale_jobs(self, before: datetime, now: datetime, error_es: str) -> int:
        """Running jobs not moved since `before` (their process stopped) end as failed, `interrupted`."""
        return self._db.run("end_stale_jobs", {"before": stored_time(before), "now": stored_time(now),
                                               "error_es": error_es})

    # --- proposals -------------------------------------------------------------------------------------------------

    def add(self, job_id: int, matrix_version: str, found: list[NewParaphrase], now: datetime) -> list[NewParaphrase]:
        """Keep `found` (one transaction); what comes back is what was new (a wording the entry had before, in any
        state, is skipped)."""
        kept = []
        with self._db.write() as conn:
            for item in found:
                row = conn.execute(self._db.queries["insert_paraphrase"], {
                    "job_id": job_id, "matrix_version": matrix_version, "entry_id": item.entry_id,
                    "text": item.text, "text_key": item.text_key, "status": item.status,
                    "reason_code": item.reason_code, "reason_es": item.reason_es,
                    "other_entry_id": item.other_entry_id, "now": stored_time(now)}).fetchone()
                if row is not None:
                    kept.append(item)
        return kept

    def paraphrases(self, status: str | None = None, entry_id: str | None = None,
                    limit: int = MAX_LIST) -> list[Paraphrase]:
        """By entry, then in the order they were proposed."""
        return [_paraphrase(row) for row in self._db.read("paraphrases", {
            "status": status, "entry_id": entry_id, "limit": min(limit, MAX_LIST)})]

    def paraphrase(self, paraphrase_id: int) -> Paraphrase | None:
        rows = self._db.read("paraphrase", {"id": paraphrase_id})
        return _paraphrase(rows[0]) if rows else None

    def counts(self) -> dict[str, int]:
        found = dict.fromkeys(("proposed", "accepted", "rejected", "filtered"), 0)
        for row in self._db.read("counts", {}):
            found[row["status"]] = int(row["n"])
        return found

    def decide(self, paraphrase_id: int, status: str, by: str, now: datetime) -> bool:
        """Accept, reject or put back one proposal; False for a filtered one or one already in a draft."""
        if status not in DECISIONS:
            raise ValueError(f"unknown decision {status!r}")
        return self._db.run("decide", {"id": paraphrase_id, "status": status, "by": by,
                                       "now": stored_time(now)}) > 0

    def decide_entry(self, entry_id: str, status: str, by: str, now: datetime) -> int:
        """Accept or reject every proposal of an entry still waiting; how many."""
        if status not in ("accepted", "rejected"):
            raise ValueError(f"unknown decision {status!r}")
        return self._db.run("decide_entry", {"entry_id": entry_id, "status": status, "by": by,
                                             "now": stored_time(now)})

    def accepted_undrafted(self, limit: int = MAX_LIST) -> list[Paraphrase]:
        return [_paraphrase(row) for row in self._db.read("accepted_undrafted", {"limit": min(limit, MAX_LIST)})]

    def mark_drafted(self, paraphrase_ids: list[int], draft_id: str) -> int:
        with self._db.write() as conn:
            return sum(conn.execute(self._db.queries["mark_drafted"], {"id": pid, "draft_id": draft_id}).rowcount
                       for pid in paraphrase_ids)


def open_paraphrase_store(target: Path | str) -> ParaphraseStore:
    """The paraphrase store at `settings.store_url("paraphrases")`: `sqlite:///path` (or a path) or
    `postgresql://…`."""
    return ParaphraseStore(target)
