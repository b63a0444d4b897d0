"""The reports against a history whose answers are known: `scripts/generate_history.py` sends a seeded month of
conversations (known questions of the demo matrix, misses, two misses in a row, requests for a person) through the
real signed webhook of a stack of its own (real Rasa, the action server, the app, the sandbox), agents reply and close
through the console API, and the figures it built must be what «Reportes» says for that month: per local day
(messages, conversations, new contacts, by Meta's time), how the questions were handled, handoffs by reason, the
agents' leaderboard, episodes still open or closed without a reply, and sends by outcome; in the JSON and in the CSV
files.

Would catch: a counter not kept at write time (or kept twice, or in the wrong hour or local day), a conversation
counted on every message instead of after 24 hours, a handoff or an agent's reply the episodes miss, a send counted
before its final outcome, a CSV that says something else than the JSON."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.stack import Stack
from core.settings import DEFAULT_BUSINESS_TIMEZONE, DEMO_SERVICE_TOKEN, ROOT, SANDBOX_PAGE_ID
from tests.conftest import require_or_skip
from tests.support.console_client import DEMO_PASSWORDS, ConsoleSession
from tests.support.stack import rasa_available, start_stack

PEOPLE = 12  # every kind of person at least once (the generator deals the kinds in turn, ten to a round)
DAYS = 30
SEED = 14
SETTLE_SECONDS = 60  # the answer journal writes in the background: the report catches up within seconds


@pytest.fixture(scope="module")
def history_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own: the report must hold the generated history and nothing else."""
    require_or_skip(rasa_available(), "the Rasa environment (.venv-rasa; run `make install`)")
    running = start_stack(Path(tmp_path_factory.mktemp("history-stack")))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def history(history_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("history") / "figures.json"
    agents = [f"--agent={name}:{DEMO_PASSWORDS[name]}" for name in ("agente", "admin")]
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate_history.py"), "--app-url", history_stack.app_url,
         "--webhook-url", history_stack.webhook_url, "--page-id", SANDBOX_PAGE_ID, "--service-token",
         DEMO_SERVICE_TOKEN, *agents, "--people", str(PEOPLE), "--days", str(DAYS), "--seed", str(SEED),
         "--out", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    document: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return document


def period_of(history: dict[str, Any]) -> tuple[date, date]:
    """The generated month, up to today (a run that crossed local midnight stamped its handoffs on the next day)."""
    first = date.fromisoformat(history["period"]["first_day"])
    last = date.fromisoformat(history["period"]["last_day"])
    today = datetime.now(ZoneInfo(history["timezone"])).date()
    return first, max(last, today)


def fetch_report(session: ConsoleSession, first: date, last: date) -> dict[str, Any]:
    answer = session.get("/api/console/reports", params={"desde": first.isoformat(), "hasta": last.isoformat()})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def settled_report(session: ConsoleSession, history: dict[str, Any]) -> dict[str, Any]:
    """The report once every question the plan handled is counted (the journal's writes are in the background)."""
    first, last = period_of(history)
    expected = sum(history["figures"]["handled"].values())
    deadline = time.monotonic() + SETTLE_SECONDS
    report = fetch_report(session, first, last)
    while report["headline"]["handled"] < expected and time.monotonic() < deadline:
        time.sleep(1)
        report = fetch_report(session, first, last)
    return report


def rows(report: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return list(report["tables"][name]["rows"])


def expected_days(history: dict[str, Any]) -> dict[str, dict[str, int]]:
    first, last = period_of(history)
    planned = history["figures"]["days"]
    zero = {"messages": 0, "conversations": 0, "new_people": 0}
    return {(first + timedelta(days=n)).isoformat(): planned.get((first + timedelta(days=n)).isoformat(), zero)
            for n in range((last - first).days + 1)}


def test_the_generated_month_is_what_the_report_says(history_stack: Stack, history: dict[str, Any]) -> None:
    figures = history["figures"]
    assert history["timezone"] == DEFAULT_BUSINESS_TIMEZONE
    assert set(history["people"]) == {"asks", "misses", "insists", "wants_person"}
    session = ConsoleSession(history_stack.app_url, "admin")
    try:
        report = settled_report(session, history)
    finally:
        session.close()

    days = {row["fecha"]: {"messages": row["mensajes"], "conversations": row["conversaciones"],
                           "new_people": row["contactos_nuevos"]} for row in rows(report, "dias")}
    assert days == expected_days(history)
    assert sum(d["messages"] for d in figures["days"].values()) == figures["totals"]["messages"]
    assert len({day for day, d in figures["days"].items() if d["messages"]}) > 1  # spread over the month
    summary = report["summary"]
    assert (summary["messages"], summary["conversations"], summary["new_contacts"]) == (
        figures["totals"]["messages"], figures["totals"]["conversations"], figures["totals"]["new_people"])

    handled = {row["tipo"]: row["preguntas"] for row in rows(report, "atencion") if row["preguntas"]}
    assert handled == figures["handled"]
    assert report["headline"]["handled"] == summary["handled"] == sum(figures["handled"].values())
    share = figures["answered_without_person"]
    assert report["headline"]["answered_without_person_pct"]["current"] == round(
        100 * share["answered"] / share["handled"], 1)

    assert {row["motivo"]: row["episodios"] for row in rows(report, "pausas")} == figures["handoffs"]
    episodes = figures["episodes"]
    assert summary["episodes"] == episodes["total"]
    assert summary["episodes_open"] == episodes["open"]
    assert summary["episodes_closed_without_reply"] == episodes["closed_without_reply"]
    leaderboard = {row["agente"]: {"episodes": row["episodios"], "replied": row["respondidas"],
                                   "closed": row["cerradas"]} for row in rows(report, "agentes")}
    assert leaderboard == {name: {key: board[key] for key in ("episodes", "replied", "closed")}
                           for name, board in figures["agents"].items()}
    waits = {row["medida"]: row["episodios"] for row in rows(report, "espera")}
    assert list(waits.values()) == [episodes["replied"], episodes["closed"]]

    sends: Counter[str] = Counter()
    for row in rows(report, "envios"):
        sends[f"{row['proposito']}/{row['estado']}/{row['motivo'] or ''}"] += row["mensajes"]
    assert dict(sends) == figures["sends_observed"]
    assert figures["sends_observed"].get("reply/blocked/outside_window"), "the old messages' replies are blocked"


def read_csv(session: ConsoleSession, name: str, first: date, last: date) -> list[dict[str, str]]:
    answer = session.get(f"/api/console/reports/{name}.csv", params={"desde": first.isoformat(),
                                                                     "hasta": last.isoformat()})
    assert answer.status_code == 200, answer.text
    text = answer.content.decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:]), delimiter=";"))


def test_the_csv_files_say_the_same(history_stack: Stack, history: dict[str, Any]) -> None:
    figures = history["figures"]
    first, last = period_of(history)
    session = ConsoleSession(history_stack.app_url, "admin")
    try:
        settled_report(session, history)
        by_day = read_csv(session, "dias", first, last)
        reasons = read_csv(session, "pausas", first, last)
        handling = read_csv(session, "atencion", first, last)
    finally:
        session.close()
    assert {row["Fecha"]: {"messages": int(row["Mensajes de clientes"]),
                           "conversations": int(row["Conversaciones"]),
                           "new_people": int(row["Contactos nuevos"])} for row in by_day} == expected_days(history)
    assert {row["Código"]: int(row["Veces"]) for row in reasons} == figures["handoffs"]
    assert {row["Código"]: int(row["Preguntas"]) for row in handling if int(row["Preguntas"])} == figures["handled"]
