"""The csat store: the ratings asked and answered, in a SQLite file or a PostgreSQL schema
(`open_csat_store(settings.store_url("csat"))`, `core.database`). Numbered migrations and named queries live in
`csat/sql/sqlite/` and `csat/sql/postgres/`. Synchronous and thread-safe; the service calls it through a thread.

One ask per close (`(conversation_id, closed_at)` is unique: a close seen twice asks once), and none for a person
asked recently (`create_ask(..., unless_asked_since=…)`, decided under the person's lock); one answer per ask (the
first stays) and per webhook event (`answer_event_key`: Meta's redeliveries and the channel's replays count once)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from core.database import DatabaseStore, moment, stored_time
from csat.model import AgentSatisfaction, Ask, AskStatus, CsatSummary, How
from meta.events import CSAT_SCORES

SQL_DIR = Path(__file__).parent / "sql"


def _ask(row: Any) -> Ask:
    return Ask(
        id=int(row["id"]), page_id=row["page_id"], user_id=row["user_id"], conversation_id=row["conversation_id"],
        agent=row["agent"], closed_by=row["closed_by"], closed_at=moment(row["closed_at"]),
        asked_at=moment(row["asked_at"]),
        status=AskStatus(row["status"]), how=How(row["how"]) if row["how"] else None, tag=row["tag"],
        outbox_id=int(row["outbox_id"]) if row["outbox_id"] is not None else None, reason_code=row["reason_code"],
        reason_es=row["reason_es"], rating=int(row["rating"]) if row["rating"] is not None else None,
        comment=row["comment"], answered_at=moment(row["answered_at"]) if row["answered_at"] else None)


class CsatStore(DatabaseStore):
    BACKEND = "csat"
    SQL_DIR = SQL_DIR

    def create_ask(self, page_id: str, user_id: str, conversation_id: str, agent: str, closed_at: datetime,
                   now: datetime, *, closed_by: str | None = None,
                   unless_asked_since: datetime | None = None) -> tuple[Ask | None, bool]:
        """The ask of this close (True: created now; False: the close was seen before, its ask returned). With
        `unless_asked_since`, a close not seen before whose person has an ask (not refused) made since then gets
        none: (None, False)."""
        params = {"page_id": page_id, "user_id": user_id, "conversation_id": conversation_id, "agent": agent,
                  "closed_by": closed_by, "closed_at": stored_time(closed_at), "now": stored_time(now),
                  "since": stored_time(unless_asked_since) if unless_asked_since else None}
        with self._db.write() as conn:
            conn.execute(self._db.queries["lock_person"], params).fetchall()
            found = conn.execute(self._db.queries["ask_of_close"], params).fetchone()
            if found is not None:
                return _ask(found), False
            if unless_asked_since is not None and conn.execute(self._db.queries["recent_ask"], params).fetchone():
                return None, False
            row = conn.execute(self._db.queries["insert_ask"], params).fetchone()
            created = row is not None
            found = conn.execute(self._db.queries["ask_of_close"], params).fetchone()
        return _ask(found), created

    def ask_of_close(self, conversation_id: str, closed_at: datetime) -> Ask | None:
        """The ask made for this close (None: none yet): a read, where `create_ask` would take the write lock."""
        rows = self._db.read("ask_of_close", {"conversation_id": conversation_id, "closed_at": stored_time(closed_at)})
        return _ask(rows[0]) if rows else None

    def get(self, ask_id: int) -> Ask | None:
        rows = self._db.read("get_ask", {"id": ask_id})
        return _ask(rows[0]) if rows else None

    def mark_sent(self, ask_id: int, how: How, tag: str | None, outbox_id: int) -> None:
        self._db.run("mark_sent", {"id": ask_id, "how": how.value, "tag": tag, "outbox_id": outbox_id})

    def mark_not_sent(self, ask_id: int, how: How, reason_code: str, reason_es: str) -> None:
        self._db.run("mark_not_sent", {"id": ask_id, "how": how.value, "reason_code": reason_code,
                                       "reason_es": reason_es})

    def latest_open(self, page_id: str, user_id: str) -> Ask | None:
        rows = self._db.read("latest_open_ask", {"page_id": page_id, "user_id": user_id})
        return _ask(rows[0]) if rows else None

    def record_answer(self, ask_id: int, rating: int, comment: str | None, at: datetime, event_key: str) -> bool:
        """True: this answer is the ask's; False: the ask was answered before, or this event was recorded."""
        changed = self._db.run("record_answer", {"id": ask_id, "rating": rating, "comment": comment,
                                                 "at": stored_time(at), "event_key": event_key})
        return changed > 0

    def of_conversation(self, conversation_id: str, limit: int = 20) -> list[Ask]:
        """The conversation's asks, newest first."""
        return [_ask(row) for row in self._db.read("asks_of_conversation",
                                                   {"conversation_id": conversation_id, "limit": limit})]

    def agent_satisfaction(self, since: datetime | None = None, until: datetime | None = None,
                           page_id: str | None = None) -> list[AgentSatisfaction]:
        """Per agent, the asks of the conversations closed in [since, until) (None: no bound) of one page (None:
        every page): by the close time, as `summary`, so the leaderboard and the summary count the same asks."""
        rows = self._db.read("agent_satisfaction", {"since": stored_time(since) if since else None,
                                                    "until": stored_time(until) if until else None,
                                                    "page_id": page_id})
        return [AgentSatisfaction(row["agent"], int(row["asked"] or 0), int(row["answered"] or 0),
                                  float(row["average"]) if row["average"] is not None else None) for row in rows]

    def summary(self, page_id: str | None, since: datetime, until: datetime) -> CsatSummary:
        """The satisfaction of the conversations closed in [since, until) (`page_id` None: every page): asks that
        reached the person, answers, the average rating and how many of each rating (1 to 5, all present)."""
        params = {"page_id": page_id, "since": stored_time(since), "until": stored_time(until)}
        [row] = self._db.read("summary", params)
        by_rating = dict.fromkeys(CSAT_SCORES, 0)
        for counted in self._db.read("summary_by_rating", params):
            by_rating[int(counted["rating"])] = int(counted["n"])
        return CsatSummary(int(row["asked"] or 0), int(row["answered"] or 0),
                           float(row["average"]) if row["average"] is not None else None, by_rating)


def open_csat_store(url: Path | str) -> CsatStore:
    """The csat store at `settings.store_url("csat")`: `sqlite:///path` (or a path) or `postgresql://…`."""
    return CsatStore(url)
