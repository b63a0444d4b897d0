"""The answer journal's store: every handled customer question and the groups of unanswered ones, in a SQLite file
or a PostgreSQL schema (`open_answers_store(settings.store_url("answers"))`, `core.database`).

Numbered migrations and named queries live in `answers/sql/sqlite/` and `answers/sql/postgres/`. Synchronous and
thread-safe; async code calls it through a thread. A tap on a "¿Quisiste decir…?" candidate marks the offers the
same person got in the 10 minutes before as followed, in the same transaction, so "unanswered" is one query, and
takes those offers back from their hours' counts (a followed offer counts once, as the tap); every question counts
in its UTC hour (`answer_hours`, and its sum over the entries `answer_hours_by_handling`, same transaction), which is
all the counts by handling and by entry read. The followed
offers' wording is proposed as a question of the entry tapped, in that transaction too (`answers.proposals`); an
agent's reply with an entry proposes the person's last unanswered question (`agent_answered`).

On PostgreSQL every statement has a short `statement_timeout` (STATEMENT_TIMEOUT_MS, unless the URL's `options` set
one): the journal is written in the background of a customer's answer and must fail fast, not queue up behind a
stuck server. `prune` keeps the journal to its retention a UTC day at a time, so each statement stays short; the
hourly counts are never pruned.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt

from answers.grouping import wording_key
from answers.model import (
    GROUP_FILTERS,
    MAX_EXAMPLES,
    RESOLVE_ACTIONS,
    SELECTION_WINDOW,
    AnswerInvalid,
    AnswerRecord,
    Example,
    Group,
    GroupAsked,
    GroupNotFound,
    Handling,
    HandlingDay,
    HandlingHour,
    Question,
)
from answers.proposals import (
    PROPOSAL_STATUSES,
    Proposal,
    ProposalNotFound,
    ProposalSource,
    tapped_in_offer,
)
from core.database import DatabaseStore, moment, stored_time
from core.postgres import is_postgres_url

SQL_DIR = Path(__file__).parent / "sql"  # sqlite/ and postgres/: numbered migrations and queries.sql
EXAMPLE_ROWS = 200  # a group's latest questions read to pick its examples
MAX_UNANSWERED = 100_000
MAX_GROUPS_PAGE = 500
STATEMENT_TIMEOUT_MS = 5000  # PostgreSQL: a statement of the answers store that takes longer is cancelled
PRUNE_DAYS_PER_CALL = 31  # days deleted by one `prune` (a long backlog takes several rounds)
MAX_PROPOSALS = 500  # proposals read per list (the console shows the most asked)
DAY = timedelta(days=1)

FloatVector = npt.NDArray[np.float32]


def encode_vector(vector: FloatVector) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_vector(text: str) -> FloatVector | None:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        return None
    if not raw or len(raw) % 4:
        return None
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


@dataclass(frozen=True)
class NewGroup:
    """A group `regroup` found: its label, the journal rows in it and its centre."""

    label: str
    members: tuple[int, ...]
    centroid: FloatVector


@dataclass(frozen=True)
class StoredCentroid:
    group_id: int
    embedder: str
    vector: FloatVector | None
    size: int


def with_statement_timeout(url: Path | str, milliseconds: int = STATEMENT_TIMEOUT_MS) -> Path | str:
    """A PostgreSQL URL with `-cstatement_timeout=…` in its libpq `options` (kept as is when it sets one already);
    anything else unchanged."""
    if not isinstance(url, str) or not is_postgres_url(url):
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = next((value for key, value in query if key == "options"), "")
    if "statement_timeout" in options:
        return url
    options = f"{options} -cstatement_timeout={int(milliseconds)}".strip()
    query = [(key, value) for key, value in query if key != "options"] + [("options", options)]
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def hour_start(moment_: datetime) -> datetime:
    """The UTC hour that holds this moment (its start): the bucket of the hourly counts."""
    return moment_.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def day_start(moment_: datetime) -> datetime:
    """The UTC midnight that starts this moment's day."""
    return moment_.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def version_number(version_id: str | None) -> int | None:
    """A knowledge version's number ("0012" → 12; versions are numbered in order); None for anything else."""
    if not version_id or not (version_id.isascii() and version_id.isdigit()):
        return None
    return int(version_id)


def _settled(until: datetime) -> str:
    """A "¿Quisiste decir…?" is a miss only once its 10 minutes are over."""
    return stored_time(until - SELECTION_WINDOW)


def _candidates(text: str | None) -> tuple[str, ...]:
    try:
        found = json.loads(text or "[]")
    except ValueError:
        return ()
    return tuple(str(item) for item in found) if isinstance(found, list) else ()


def _proposal(row: Any) -> Proposal:
    def when(value: Any) -> datetime | None:
        return moment(value) if value is not None else None

    return Proposal(id=int(row["id"]), wording=row["wording"], entry_id=row["entry_id"], status=row["status"],
                    people=int(row["people"] or 0), tapped=int(row["tapped"] or 0), agent=int(row["agent"] or 0),
                    first_at=when(row["first_at"]), last_at=when(row["last_at"]), decided_at=when(row["decided_at"]),
                    decided_by=row["decided_by"], draft_id=row["draft_id"])


def _question(row: Any) -> Question:
    return Question(id=int(row["id"]), question=row["question"], at=moment(row["at"]), person_key=row["person_key"],
                    handling=Handling(row["handling"]), page_id=row["page_id"])


class AnswersStore(DatabaseStore):
    """A file path, `sqlite:///path`, `:memory:` or `postgresql://…` (schema: the URL's search_path, else
    "answers")."""

    BACKEND = "answers"
    SQL_DIR = SQL_DIR

    def __init__(self, target: Path | str) -> None:
        super().__init__(with_statement_timeout(target))
        self.path = target  # as given (the timeout is ours, not the operator's)

    def _read(self, name: str, params: Mapping[str, Any]) -> list[Any]:
        return self._db.read(name, params)

    # --- the journal ------------------------------------------------------------------------------------------

    def record(self, rec: AnswerRecord) -> int:
        """Journal one handled question and count it in its UTC hour (one transaction); a SELECTED marks the
        person's offers of the last 10 minutes followed and takes each back from its hour's `did_you_mean` count, so
        the question counts once, as `selected` (else the reports' share would count it as unanswered and twice)."""
        at = stored_time(rec.at)
        with self._db.write() as conn:
            row = conn.execute(self._db.queries["insert_answer"], {
                "page_id": rec.page_id, "person_key": rec.person_key, "question": rec.question,
                "handling": rec.handling.value, "at": at, "entry_id": rec.entry_id,
                "score": float(rec.score) if rec.score is not None else None,
                "candidates_json": json.dumps(list(rec.candidates), ensure_ascii=False),
                "reason": rec.reason, "matrix_version": rec.matrix_version}).fetchone()
            hour = {"hour": stored_time(hour_start(rec.at)), "page_id": rec.page_id, "handling": rec.handling.value}
            conn.execute(self._db.queries["add_hour"], {**hour, "entry_id": rec.entry_id or ""})
            conn.execute(self._db.queries["add_handling_hour"], hour)
            if rec.handling is Handling.SELECTED:
                followed = conn.execute(self._db.queries["mark_followed"], {
                    "page_id": rec.page_id, "person_key": rec.person_key, "at": at,
                    "window_start": stored_time(rec.at - SELECTION_WINDOW)}).fetchall()
                for offer in followed:  # one question answered by a tap counts once, as `selected`
                    offer_hour = {"hour": stored_time(hour_start(moment(offer["at"]))), "page_id": rec.page_id}
                    taken = conn.execute(self._db.queries["take_back_hour"],
                                         {**offer_hour, "entry_id": offer["entry_id"] or ""}).rowcount
                    if taken:  # the hour's sum over the entries follows its rows (answer_hours_by_handling)
                        conn.execute(self._db.queries["take_back_handling_hour"], offer_hour)
                    if rec.entry_id and offer["question"] and tapped_in_offer(
                            rec.entry_id, _candidates(offer["candidates_json"])):
                        self._propose(conn, offer["question"], rec.entry_id, "tapped", answer_id=int(offer["id"]),
                                      page_id=rec.page_id, person_key=rec.person_key, at=at)
        return int(row["id"])

    def _propose(self, conn: Any, wording: str, entry_id: str, source: ProposalSource, *, answer_id: int,
                 page_id: str, person_key: str, at: str, agent: str | None = None) -> int | None:
        """One use of the pair (wording, entry) in the caller's transaction: the proposal made on its first use, the
        use counted while it is open. The proposal's id; None when the pair was accepted or rejected already (never
        proposed again) or the wording folds to nothing."""
        key = wording_key(wording)
        if not key:
            return None
        row = conn.execute(self._db.queries["upsert_proposal"], {
            "wording": wording, "wording_key": key, "entry_id": entry_id, "at": at}).fetchone()
        if row["status"] != "open":
            return None
        proposal_id = int(row["id"])
        conn.execute(self._db.queries["add_proposal_use"], {
            "proposal_id": proposal_id, "source": source, "answer_id": answer_id, "page_id": page_id,
            "person_key": person_key, "agent": agent, "at": at})
        return proposal_id

    # --- learning from use ------------------------------------------------------------------------------------

    def agent_answered(self, page_id: str, person_key: str, entry_id: str, agent: str, *, since: datetime,
                       at: datetime) -> Proposal | None:
        """An agent replied with `entry_id` to the person: their latest unanswered question on the page in
        [since, at] is proposed as a question of that entry (one use per question, however many replies). The
        proposal, or None (no such question, or the pair was accepted or rejected already)."""
        if not entry_id.strip():
            raise AnswerInvalid("entry_id", "Falta la entrada de la matriz con la que se respondió.")
        with self._db.write() as conn:
            miss = conn.execute(self._db.queries["latest_miss"], {
                "page_id": page_id, "person_key": person_key, "since": stored_time(since),
                "until": stored_time(at)}).fetchone()
            if miss is None:
                return None
            proposal_id = self._propose(conn, miss["question"], entry_id.strip(), "agent", answer_id=int(miss["id"]),
                                        page_id=page_id, person_key=person_key, at=stored_time(at), agent=agent)
        return self.proposal(proposal_id) if proposal_id is not None else None

    def proposals(self, status: str = "open", *, limit: int = MAX_PROPOSALS) -> list[Proposal]:
        """Proposals with `status` (open, accepted, rejected), most people first then the most recent; an open one
        whose uses are all past the journal's retention is not listed."""
        if status not in PROPOSAL_STATUSES:
            raise AnswerInvalid("status", "El estado debe ser «open», «accepted» o «rejected».")
        if not 1 <= limit <= MAX_PROPOSALS:
            raise AnswerInvalid("limit", f"El límite debe estar entre 1 y {MAX_PROPOSALS}.")
        return [_proposal(row) for row in self._read("list_proposals", {
            "status": status, "proposal_id": None, "limit": limit})]

    def proposal(self, proposal_id: int) -> Proposal:
        rows = self._read("list_proposals", {"status": "all", "proposal_id": proposal_id, "limit": 1})
        if not rows:
            raise ProposalNotFound(proposal_id)
        return _proposal(rows[0])

    def accept_proposal(self, proposal_id: int, by: str, at: datetime, draft_id: str) -> bool:
        """Accepted with the draft made from it (an accepted one again: its draft was not published). False when it
        was rejected (ProposalNotFound when there is none)."""
        return self._decide("accept_proposal", proposal_id, {"by": by, "at": stored_time(at), "draft_id": draft_id})

    def reject_proposal(self, proposal_id: int, by: str, at: datetime) -> bool:
        """Rejected: hidden, and the pair never proposed again. False when it was decided already."""
        return self._decide("reject_proposal", proposal_id, {"by": by, "at": stored_time(at)})

    def _decide(self, query: str, proposal_id: int, params: Mapping[str, Any]) -> bool:
        if self._db.run(query, {"proposal_id": proposal_id, **params}):
            return True
        if not self._read("proposal_exists", {"proposal_id": proposal_id}):
            raise ProposalNotFound(proposal_id)
        return False

    def unanswered(self, page_id: str | None, since: datetime, until: datetime) -> list[Question]:
        """The misses asked in [since, until), oldest first (a "¿Quisiste decir…?" once its 10 minutes are over)."""
        return [_question(row) for row in self._read("unanswered", {
            "page_id": page_id, "since": stored_time(since), "until": stored_time(until), "settled": _settled(until),
            "limit": MAX_UNANSWERED})]

    def counts_by_handling(self, page_id: str | None, since: datetime, until: datetime) -> dict[str, int]:
        """Questions in [since, until) by how they were handled; every handling present (0 when none). Read from the
        hourly counts: an hour counts when its start is in the window (bounds on whole hours are exact)."""
        counts = dict.fromkeys((handling.value for handling in Handling), 0)
        for row in self._read("counts_by_handling", {"page_id": page_id, "since": stored_time(since),
                                                     "until": stored_time(until)}):
            counts[row["handling"]] = int(row["n"])
        return counts

    def entry_use(self, page_id: str | None, since: datetime, until: datetime) -> dict[str, int]:
        """How often each entry answered (from the matrix or a tapped candidate) in [since, until), from the hourly
        counts (as `counts_by_handling`)."""
        return {row["entry_id"]: int(row["n"]) for row in self._read("entry_use", {
            "page_id": page_id, "since": stored_time(since), "until": stored_time(until)})}

    def handling_hours(self, page_id: str | None, since: datetime, until: datetime) -> list[HandlingHour]:
        """The questions per UTC hour, page and handling, for the hours starting in [since, until) (`page_id`
        None: every page), by hour then page: the reports' series (at most 8,760 hours a year per series)."""
        return [HandlingHour(moment(row["hour"]), row["page_id"], Handling(row["handling"]), int(row["n"]))
                for row in self._read("handling_hours", {
                    "page_id": page_id, "since": stored_time(since), "until": stored_time(until)})]

    def handling_days(self, page_id: str | None, since: datetime, until: datetime,
                      offset_seconds: int) -> list[HandlingDay]:
        """`handling_hours` summed per local day in the database, for the hours starting in [since, until) that all
        have one UTC offset (`offset_seconds`, east positive, under a day; a daylight-saving zone's period is cut
        where its offset changes: `reports.model.Period.offset_spans`): an hour's day is its start plus the offset.
        By day then handling; a year is ~2,000 rows, read without building one object per hour, from the hours' sums
        over the entries (`answer_hours_by_handling`, ~2.5 times fewer rows than `answer_hours`)."""
        if not -86_400 < offset_seconds < 86_400:
            raise ValueError(f"a UTC offset is under a day, not {offset_seconds} s")
        cut = -(offset_seconds // 3600) if offset_seconds < 0 else -((offset_seconds - 86_400) // 3600)
        counts: dict[tuple[date, str], int] = {}
        for row in self._read("handling_days", {"page_id": page_id, "since": stored_time(since),
                                                "until": stored_time(until), "cut": cut}):
            utc_day = row["utc_day"]
            day = date.fromisoformat(utc_day) if isinstance(utc_day, str) else utc_day
            shift = (0 if row["late"] else -1) if offset_seconds < 0 else (1 if row["late"] else 0)
            key = (day + timedelta(days=shift), row["handling"])
            counts[key] = counts.get(key, 0) + int(row["n"])
        return [HandlingDay(day, Handling(handling), n) for (day, handling), n in sorted(counts.items())]

    def open_groups_asked(self, page_id: str | None, since: datetime, until: datetime,
                          limit: int) -> list[GroupAsked]:
        """The open groups asked in [since, until) (`page_id` None: every page), counted over the period only, most
        people first, at most `limit`: one query on the journal's time index (the reports). The journal keeps
        questions ANSWERS_RETENTION_DAYS, so an older period finds fewer."""
        return [GroupAsked(int(row["id"]), row["label"], int(row["questions"]), int(row["people"]),
                           moment(row["last_at"]))
                for row in self._read("open_groups_asked_between", {
                    "page_id": page_id, "since": stored_time(since), "until": stored_time(until), "limit": limit})]

    def latest_handling(self, page_id: str, person_key: str, since: datetime) -> Handling | None:
        """How the person's latest question on the page journaled at or after `since` was handled (None: none)."""
        rows = self._read("latest_handling", {"page_id": page_id, "person_key": person_key,
                                              "since": stored_time(since)})
        return Handling(rows[0]["handling"]) if rows else None

    # --- retention --------------------------------------------------------------------------------------------

    def prune(self, before: datetime, max_days: int = PRUNE_DAYS_PER_CALL) -> int:
        """Delete the journal rows of the UTC days that end at or before `before` (rounded down to a midnight),
        oldest first, at most `max_days` days. The counts by handling and by entry stay (`answer_hours` is written
        with each row and never pruned). How many rows were deleted."""
        cutoff = day_start(before)
        deleted = 0
        for _ in range(max(0, max_days)):
            rows = self._read("oldest_answer", {})
            oldest = rows[0]["at"] if rows else None
            if oldest is None:
                break
            day = day_start(moment(oldest))
            if day + DAY > cutoff:
                break
            params = {"day": stored_time(day), "next_day": stored_time(day + DAY)}
            deleted += self._db.run("prune_day", params)
        # The proposals' uses are journal data too (person keys); a decided proposal stays, without its uses.
        self._db.run("prune_proposal_uses", {"before": stored_time(cutoff)})
        self._db.run("prune_empty_proposals", {})
        return deleted

    # --- grouping ---------------------------------------------------------------------------------------------

    def ungrouped(self, now: datetime, limit: int = 2000) -> list[Question]:
        """Misses not in a group yet, oldest first."""
        return [_question(row) for row in self._read("ungrouped", {"settled": _settled(now), "limit": limit})]

    def centroids(self) -> list[StoredCentroid]:
        return [StoredCentroid(int(row["id"]), row["embedder"], decode_vector(row["centroid"]), int(row["size"]))
                for row in self._read("centroids", {})]

    def group_wording(self, group_id: int, limit: int = 50) -> list[str]:
        """The group's distinct wordings, most asked first."""
        return [row["question"] for row in self._read("group_wording", {"group_id": group_id, "limit": limit})]

    def save_groups(self, new_groups: Sequence[NewGroup], joined: Mapping[int, Sequence[int]],
                    centroids: Mapping[int, FloatVector], embedder: str, now: datetime) -> list[int]:
        """One regroup in one transaction: new groups made, journal rows joined to existing groups, the touched
        groups' centres updated. The new groups' ids."""
        stamp = stored_time(now)
        created: list[int] = []
        with self._db.write() as conn:
            for group in new_groups:
                row = conn.execute(self._db.queries["insert_group"], {
                    "label": group.label, "embedder": embedder, "centroid": encode_vector(group.centroid),
                    "now": stamp}).fetchone()
                group_id = int(row["id"])
                created.append(group_id)
                for answer_id in group.members:
                    conn.execute(self._db.queries["assign_answer"], {"group_id": group_id, "id": answer_id})
            for group_id, members in joined.items():
                for answer_id in members:
                    conn.execute(self._db.queries["assign_answer"], {"group_id": group_id, "id": answer_id})
            for group_id, vector in centroids.items():
                conn.execute(self._db.queries["update_centroid"], {
                    "id": group_id, "centroid": encode_vector(vector), "embedder": embedder, "now": stamp})
        return created

    # --- groups -----------------------------------------------------------------------------------------------

    def groups(self, status: str = "open", *, page_id: str | None = None, limit: int = 50,
               offset: int = 0) -> list[Group]:
        """Groups ranked by distinct people, then the most recent; `status` open, resolved, dismissed or all."""
        if status not in GROUP_FILTERS:
            raise AnswerInvalid("status", "El estado debe ser «open», «resolved», «dismissed» o «all».")
        if not 1 <= limit <= MAX_GROUPS_PAGE:
            raise AnswerInvalid("limit", f"El límite debe estar entre 1 y {MAX_GROUPS_PAGE}.")
        if offset < 0:
            raise AnswerInvalid("offset", "El desplazamiento no puede ser negativo.")
        rows = self._read("list_groups", {"status": status, "page_id": page_id, "group_id": None, "limit": limit,
                                          "offset": offset})
        return [self._group(row, page_id) for row in rows]

    def group(self, group_id: int, *, page_id: str | None = None) -> Group:
        rows = self._read("list_groups", {"status": "all", "page_id": page_id, "group_id": group_id, "limit": 1,
                                          "offset": 0})
        if not rows:
            raise GroupNotFound(group_id)
        return self._group(rows[0], page_id)

    def _group(self, row: Any, page_id: str | None) -> Group:
        group_id = int(row["id"])
        latest = self._read("group_examples", {"group_id": group_id, "page_id": page_id, "limit": EXAMPLE_ROWS})
        seen: dict[str, tuple[str, datetime, int]] = {}
        for example in latest:  # newest first: the first of a wording is its latest
            key = wording_key(example["question"])
            question, at, count = seen.get(key, (example["question"], moment(example["at"]), 0))
            seen[key] = (question, at, count + 1)
        ranked = sorted(seen.values(), key=lambda item: (-item[2], -item[1].timestamp()))
        pages = tuple(page["page_id"] for page in self._read("group_pages", {"group_id": group_id}))
        return Group(
            id=group_id, label=row["label"], status=row["status"], people=int(row["people"]),
            questions=int(row["questions"]), first_at=moment(row["first_at"]), last_at=moment(row["last_at"]),
            examples=tuple(Example(question, at) for question, at, _ in ranked[:MAX_EXAMPLES]),
            page_ids=pages,
            resolved_at=moment(row["resolved_at"]) if row["resolved_at"] is not None else None,
            resolved_by=row["resolved_by"], resolved_entry_id=row["resolved_entry_id"],
            resolved_action=row["resolved_action"], returned=int(row["returned"] or 0),
            wording=tuple(question for question, _, _ in ranked),
        )

    def resolve_group(self, group_id: int, entry_id: str | None, action: str, by: str, at: datetime, *,
                      version_id: str | None = None) -> Group:
        """Resolved by a published draft (`added_question`, `new_entry`, with the knowledge version it made) or set
        aside (`dismissed`). Only an open group changes: a resolved or dismissed one is returned as it is."""
        self.resolve_open_group(group_id, entry_id, action, by, at, version_id=version_id)
        return self.group(group_id)

    def resolve_open_group(self, group_id: int, entry_id: str | None, action: str, by: str, at: datetime, *,
                           version_id: str | None = None) -> bool:
        """`resolve_group`, saying whether it changed the group: False when it was resolved or dismissed already
        (GroupNotFound when there is no such group)."""
        if action not in RESOLVE_ACTIONS:
            raise AnswerInvalid("action", "La acción debe ser «added_question», «new_entry» o «dismissed».")
        if action != "dismissed" and not (entry_id or "").strip():
            raise AnswerInvalid("entry_id", "Falta la entrada de la matriz que responde este grupo.")
        status = "dismissed" if action == "dismissed" else "resolved"
        if self._db.run("resolve_group", {"group_id": group_id, "status": status, "at": stored_time(at), "by": by,
                                          "entry_id": entry_id, "action": action, "version": version_id}):
            return True
        if not self._read("group_exists", {"group_id": group_id}):
            raise GroupNotFound(group_id)
        return False

    def reopen_after(self, live_version: str, at: datetime) -> list[int]:
        """Reopen the groups resolved by a knowledge version newer than `live_version`: a rollback went past it, or
        a publication was built on an older one, so their change is not what the bot answers from. Their ids."""
        live = version_number(live_version)
        if live is None:
            return []
        reopened = []
        for row in self._read("resolved_versions", {}):
            resolved_by = version_number(row["resolved_version"])
            if resolved_by is not None and resolved_by > live and self._db.run("reopen_group", {
                    "group_id": row["id"], "version": row["resolved_version"], "at": stored_time(at)}):
                reopened.append(int(row["id"]))
        return reopened

    def dismiss_group(self, group_id: int, by: str, at: datetime) -> Group:
        return self.resolve_group(group_id, None, "dismissed", by, at)

    def returned_after(self, group_id: int) -> int:
        """Misses that joined a resolved group after it was resolved (0 while open)."""
        if not self._read("group_exists", {"group_id": group_id}):
            raise GroupNotFound(group_id)
        rows = self._read("returned_after", {"group_id": group_id})
        return int(rows[0]["n"]) if rows else 0


def open_answers_store(url: Path | str) -> AnswersStore:
    """The answer journal at `settings.store_url("answers")`: `sqlite:///path` (or a path) or `postgresql://…`."""
    return AnswersStore(url)
