"""«Reportes» over a year of a busy page: how long `Reports.build` (and `/api/console/reports`) takes when the counters
hold a year of history, and how many rows it reads.

    .venv/bin/python bench/reports.py                              # 365 days, 300 messages and 20 handoffs a day
    .venv/bin/python bench/reports.py --days 60 --per-day 100 --handoffs-per-day 5 --repeats 10

A temporary SQLite deployment (the files the app opens in its data folder) is filled through the stores' own APIs,
day by day with synthetic times: each customer message through `outbox.record_user_message` (a third of the writers
new that day, the others coming back), most of them journaled as a handled question (`AnswersStore.record`: matrix,
"¿Quisiste decir…?", GPT, no answer, handoff), one bot reply each through the outbox (enqueued, claimed and completed
at that time: mostly sent, some blocked or failed), and the handoffs (pause, assignment, the agent's first message,
the close, as `HandoffStore` keeps them with `now`), their satisfaction asks and ratings (`CsatStore`) and the new
contacts (`ContactsStore.upsert_seen`, some with a campaign). Then `Reports.build` is timed over the whole period and
over its last 30 days (p50/p99 over `--repeats`), and, with `--http`, the app is started on the same folder and
`/api/console/reports` timed for the year (each request another period, so the app's few-second cache never answers).
Prints one JSON line per figure; progress goes to stderr. Nothing is asserted: the figures are for the closing notes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from answers.model import AnswerRecord, Handling  # noqa: E402
from answers.store import open_answers_store  # noqa: E402
from bench.contacts_import import progress  # noqa: E402
from contacts.store import open_contacts_store  # noqa: E402
from core.settings import DEFAULT_BUSINESS_TIMEZONE, SANDBOX_PAGE_ID, Settings  # noqa: E402
from csat.model import How  # noqa: E402
from csat.store import open_csat_store  # noqa: E402
from handoff.model import PauseReason, conversation_id_of  # noqa: E402
from handoff.service import open_handoff_store  # noqa: E402
from meta.graph import GraphClient  # noqa: E402
from outbox.model import NewMessage, Outcome, Purpose, SenderKind, Status  # noqa: E402
from outbox.outbox import open_outbox  # noqa: E402
from outbox.store import open_store  # noqa: E402
from reports.model import Period  # noqa: E402
from reports.service import Reports  # noqa: E402

PAGE = SANDBOX_PAGE_ID
HANDLING_MIX = ((Handling.MATRIX, 0.60), (Handling.DID_YOU_MEAN, 0.08), (Handling.SELECTED, 0.05),
                (Handling.GPT, 0.07), (Handling.NO_ANSWER, 0.17), (Handling.HANDOFF, 0.03))
REASONS = (PauseReason.USER_ASKED, PauseReason.USER_ASKED, PauseReason.BOT_FAILED, PauseReason.LLM_DECLINED,
           PauseReason.AGENT_TOOK_OVER)
AGENTS = ("agente", "admin", "maria", "jose")
CAMPAIGNS = (None, None, None, "verano", "feria-quito")
ENTRIES = tuple(f"entrada_{n:02d}" for n in range(40))
COUNTER_TABLES = {"outbox.sqlite3": ("message_hours", "send_hours", "messages", "conversations"),
                  "answers.sqlite3": ("answer_hours", "answers"),
                  "handoff.sqlite3": ("handoff_episodes",), "csat.sqlite3": ("csat_asks",),
                  "contacts.sqlite3": ("contacts",)}


def emit(figure: str, **values: object) -> dict[str, Any]:
    found = {"figure": figure, **values}
    print(json.dumps(found, ensure_ascii=False, default=str), flush=True)
    return found


def no_fsync(store: Any) -> None:
    """The filler's own connection commits without waiting for the disk (`PRAGMA synchronous=OFF`): a year is
    ~400,000 transactions, an fsync each took the fill from minutes to an hour on a busy disk. The folder is
    thrown away (or kept for the next timing run); what is timed (reads, the app on the folder) is unaffected."""
    database = store._db  # noqa: SLF001 - the bench's own connection, not the app's
    with database._lock:  # noqa: SLF001
        database._conn.execute("PRAGMA synchronous=OFF")  # noqa: SLF001


def pick(rng: random.Random, mix: Sequence[tuple[Handling, float]]) -> Handling:
    roll, total = rng.random(), 0.0
    for handling, weight in mix:
        total += weight
        if roll < total:
            return handling
    return mix[-1][0]


class Filler:
    """Writes a page's history into the stores of `folder`, one day at a time, through their own methods."""

    def __init__(self, folder: Path, seed: int = 14) -> None:
        self.rng = random.Random(seed)
        self.outbox = open_store(f"sqlite:///{folder / 'outbox.sqlite3'}")
        self.answers = open_answers_store(folder / "answers.sqlite3")
        self.handoff = open_handoff_store(folder / "handoff.sqlite3")
        self.csat = open_csat_store(folder / "csat.sqlite3")
        self.contacts = open_contacts_store(folder / "contacts.sqlite3")
        self.people = 0
        self.written: Counter[str] = Counter()
        for store in (self.outbox, self.answers, self.handoff, self.csat, self.contacts):
            no_fsync(store)

    def close(self) -> None:
        for store in (self.outbox, self.answers, self.handoff, self.csat, self.contacts):
            store.close()

    def new_person(self, at: datetime) -> str:
        self.people += 1
        psid = f"bench-{self.people:07d}"
        self.contacts.upsert_seen(PAGE, psid, at, self.rng.choice(CAMPAIGNS))
        self.written["contacts"] += 1
        return psid

    def day(self, start: datetime, per_day: int, handoffs: int, now: datetime) -> None:
        """One local day from `start` (its midnight, UTC), never after `now` (today is written up to now)."""
        rng = self.rng
        writers: list[str] = []
        span = min(86_399.0, max((now - start).total_seconds() - 20_000, 1.0))  # room for today's closes
        times = sorted(start + timedelta(seconds=rng.uniform(0, span)) for _ in range(per_day))
        for at in times:
            if not self.people or rng.random() < 1 / 3:
                psid = self.new_person(at)
            else:
                psid = f"bench-{rng.randint(1, self.people):07d}"
            writers.append(psid)
            self.outbox.record_user_message(PAGE, psid, at, "¿a qué hora abren?")
            self.written["messages"] += 1
            if rng.random() < 0.9:
                handling = pick(rng, HANDLING_MIX)
                entry = rng.choice(ENTRIES) if handling in (Handling.MATRIX, Handling.SELECTED) else None
                self.answers.record(AnswerRecord(PAGE, psid[-16:], "¿a qué hora abren?", handling,
                                                 at + timedelta(seconds=1), entry_id=entry,
                                                 score=0.9 if entry else None))
                self.written["answers"] += 1
        self.replies(writers, times)
        for _ in range(handoffs):
            self.one_handoff(rng.choice(writers), start + timedelta(seconds=rng.uniform(0, span)))

    def replies(self, writers: Sequence[str], times: Sequence[datetime]) -> None:
        """One bot reply per message, enqueued at its time, then claimed and completed (sent, blocked, failed)."""
        rng = self.rng
        news = [NewMessage(PAGE, psid, {"text": "Abrimos a las 9h00."}, sender=SenderKind.BOT, purpose=Purpose.REPLY)
                for psid in writers]
        for begin in range(0, len(news), 500):
            self.outbox.enqueue_many(news[begin:begin + 500], times[begin])
        done_at = times[-1] + timedelta(seconds=5)
        while claimed := self.outbox.claim("bench", done_at, 600, 1000):
            for message in claimed:
                roll = rng.random()
                if roll < 0.95:
                    outcome = Outcome(Status.SENT, messaging_type="RESPONSE", sent_at=done_at, finished_at=done_at)
                elif roll < 0.98:
                    outcome = Outcome(Status.BLOCKED, reason_code="outside_window", finished_at=done_at)
                else:
                    outcome = Outcome(Status.FAILED, reason_code="graph_error", last_error_code=551,
                                      finished_at=done_at)
                self.outbox.complete(message.id, "bench", outcome)
                self.written["sends"] += 1

    def one_handoff(self, psid: str, at: datetime) -> None:
        rng = self.rng
        conversation = conversation_id_of(PAGE, psid)
        _, paused = self.handoff.pause(PAGE, psid, rng.choice(REASONS), "bot", at)
        if not paused:
            return
        self.written["handoffs"] += 1
        agent = rng.choice(AGENTS)
        self.handoff.assign(conversation, agent, agent, at + timedelta(seconds=30))
        replied = rng.random() < 0.9
        if replied:
            self.handoff.record_agent_message(conversation, agent, "Hola, le ayudo.",
                                              at + timedelta(seconds=rng.uniform(20, 3600)))
        if rng.random() < 0.95 or not replied:
            closed_at = at + timedelta(seconds=rng.uniform(3700, 20_000))
            self.handoff.resume(conversation, agent, "Atendido.", closed_at)
            ask, _ = self.csat.create_ask(PAGE, psid, conversation, agent, closed_at, closed_at, closed_by=agent)
            if ask is not None and replied:
                self.csat.mark_sent(ask.id, How.QUICK_REPLIES, None, 0)
                if rng.random() < 0.4:
                    self.csat.record_answer(ask.id, rng.randint(1, 5), None, closed_at + timedelta(minutes=3),
                                            f"bench-{ask.id}")
                    self.written["ratings"] += 1


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(timezone.utc)


def fill(folder: Path, days: int, per_day: int, handoffs: int, now: datetime) -> dict[str, Any]:
    """The `days` local days up to today (business timezone)."""
    filler = Filler(folder)
    zone = ZoneInfo(DEFAULT_BUSINESS_TIMEZONE)
    today = now.astimezone(zone).date()
    started = time.perf_counter()
    try:
        for number in range(days):
            filler.day(local_midnight(today - timedelta(days=days - 1 - number), zone), per_day, handoffs, now)
            progress("days written", number + 1, days)
    finally:
        filler.close()
    return emit("fill", days=days, per_day=per_day, handoffs_per_day=handoffs,
                seconds=round(time.perf_counter() - started, 1), **filler.written)


def table_rows(folder: Path) -> dict[str, int]:
    counts = {}
    for file, tables in COUNTER_TABLES.items():
        with sqlite3.connect(folder / file) as db:
            for name in tables:
                counts[name] = int(db.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0])  # noqa: S608 - our names
    return counts


class EpisodesOf:
    """`Handoff.episodes` without the rest of the handoff service (Rasa's API, the outbox): the store in a thread,
    as the service does."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def episodes(self, page_id: str | None, since: datetime, until: datetime) -> Any:
        return await asyncio.to_thread(self.store.episodes, page_id, since, until)


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(0.99 * len(ordered)) - 1))
    return {"p50_ms": round(statistics.median(ordered) * 1000, 1), "p99_ms": round(ordered[rank] * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1)}


async def time_build(folder: Path, today: date, spans: Sequence[int], repeats: int) -> list[dict[str, Any]]:
    zone = ZoneInfo(DEFAULT_BUSINESS_TIMEZONE)
    outbox = open_outbox(f"sqlite:///{folder / 'outbox.sqlite3'}", GraphClient(Settings().page_tokens))
    answers = open_answers_store(folder / "answers.sqlite3")
    handoff = open_handoff_store(folder / "handoff.sqlite3")
    csat = open_csat_store(folder / "csat.sqlite3")
    contacts = open_contacts_store(folder / "contacts.sqlite3")
    reports = Reports(outbox=outbox, handoff=EpisodesOf(handoff), answers=answers, csat=csat, contacts=contacts,
                      entries=lambda: [(entry, entry) for entry in ENTRIES])
    figures = []
    try:
        for days in spans:
            period = Period(today - timedelta(days=days - 1), today, zone, PAGE)
            since, until = period.utc_bounds()
            message_days = [row for span in period.offset_spans() for row in await outbox.message_days(PAGE, *span)]
            read = {"message_hours": len(await outbox.message_hours(PAGE, since, until)),
                    "message_days": len(message_days),
                    "send_hours": len(await outbox.send_hours(PAGE, since, until)),
                    "answer_hours": len(answers.handling_hours(PAGE, since, until)),
                    "episodes": len(handoff.episodes(PAGE, since, until))}
            for part in ("all", "knowledge"):
                samples = []
                report = await reports.build(period, part)  # warm: the first read pages the files in
                for _ in range(repeats):
                    started = time.perf_counter()
                    report = await reports.build(period, part)
                    samples.append(time.perf_counter() - started)
                figures.append(emit("Reports.build", days=days, part=part, repeats=repeats, **percentiles(samples),
                     rows_read=read if part == "all" else {"answer_hours": read["answer_hours"]},
                     messages=report.summary.get("messages"), handled=report.handled,
                     episodes=report.summary.get("episodes")))
    finally:
        for store in (outbox, answers, handoff, csat, contacts):
            store.close()
    return figures


def settle(pid: int, idle_percent: float = 5.0, timeout: float = 300.0) -> float:
    """Wait until the app is idle (its first contacts sync reads every conversation of the year in the background,
    which would be timed with the reports otherwise); the seconds waited."""
    import psutil

    process = psutil.Process(pid)
    started = time.monotonic()
    quiet = 0
    while quiet < 3 and time.monotonic() - started < timeout:
        quiet = quiet + 1 if process.cpu_percent(interval=1.0) < idle_percent else 0
    return time.monotonic() - started


def time_http(folder: Path, today: date, days: int, repeats: int) -> dict[str, Any]:
    """The app on the same folder: each request another period (starting a day later each time, `days` long at
    first), so each is built and none is the app's cached one."""
    from bench.outbox import start_sandbox

    # No Rasa here: the idle auto-resume would retry (and fail on) thousands of the year's open episodes in the
    # background while the reports are timed (and, with a Rasa, close them: the history would change between runs).
    os.environ.setdefault("HANDOFF_IDLE_RESUME_MINUTES", "0")
    app, url = start_sandbox(folder)
    try:
        settle(app.pid)
        with httpx.Client(base_url=url, timeout=60) as http:
            login = http.post("/api/console/login", json={"username": "admin", "password": "admin-demo"})
            login.raise_for_status()
            samples = []
            for number in range(repeats + 1):
                first = today - timedelta(days=days - 1 - number % days)
                started = time.perf_counter()
                answer = http.get("/api/console/reports", params={"desde": first.isoformat(),
                                                                   "hasta": today.isoformat()})
                elapsed = time.perf_counter() - started
                answer.raise_for_status()
                if number:  # the first one warms the files
                    samples.append(elapsed)
            return emit("GET /api/console/reports", days=days, repeats=repeats, **percentiles(samples),
                        bytes=len(answer.content))
    finally:
        app.terminate()
        app.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--per-day", type=int, default=300, help="customer messages a day")
    parser.add_argument("--handoffs-per-day", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=20, help="timed builds per period and part")
    parser.add_argument("--http", action="store_true", help="also time /api/console/reports (starts the app)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="fill this folder and keep it (else a temporary one); one filled already is reused")
    args = parser.parse_args(argv)
    run(args.days, args.per_day, args.handoffs_per_day, args.repeats, args.http, args.keep)
    return 0


def run(days: int, per_day: int, handoffs: int, repeats: int, http: bool, keep: Path | None = None,
        say: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True)) -> list[dict[str, Any]]:
    """Fill, count the rows, time; every figure (also printed as a JSON line)."""
    now = datetime.now(timezone.utc)
    today = now.astimezone(ZoneInfo(DEFAULT_BUSINESS_TIMEZONE)).date()
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as tmp:
        folder = keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        if keep is not None and (folder / "outbox.sqlite3").exists():  # filled by an earlier run: time it again
            say(f"Reusing the history in {folder} (filled by an earlier run with --keep)…")
            figures = [emit("rows", **table_rows(folder))]
        else:
            say(f"Filling {days} days of {per_day} messages and {handoffs} handoffs a day into {folder}…")
            figures = [fill(folder, days, per_day, handoffs, now), emit("rows", **table_rows(folder))]
        say("Timing Reports.build…")
        figures += asyncio.run(time_build(folder, today, sorted({days, min(30, days)}, reverse=True), repeats))
        if http:
            say("Timing /api/console/reports (the app on the same folder)…")
            figures.append(time_http(folder, today, days, repeats))
    return figures


if __name__ == "__main__":
    sys.exit(main())
