"""The console's contacts API and inbox at 100,000 contacts: p50/p99 of the list, search, filters and tag list, and of
`GET /api/console/inbox` (its unread counts over every page) with agents' read marks on half the conversations,
through the real app in-process (FastAPI's test client, the SQLite stores the app opens, the service token).

    .venv/bin/python bench/contacts_api.py                    # 100,000 contacts, 50 requests per query
    .venv/bin/python bench/contacts_api.py --contacts 10000 --requests 20

The store is seeded in one batch (`import_contacts`) plus a "last message" for every contact (`upsert_seen`); the app
then starts on that data folder. Every other conversation gets a read mark (an agent opened it after the
person's last message, or, for one in ten, before it) in the console store, where looks lived before issue 13's
review: the inbox copies them to the contacts once, on the untimed first request. Prints one JSON line per query
(milliseconds); progress goes to stderr. Nothing is asserted: the figures are for the closing notes and the report.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402

from bench.contacts_import import NOW, PAGE, progress, rows_for  # noqa: E402
from bot.app import create_app  # noqa: E402
from console.store import open_console_store  # noqa: E402
from contacts.store import open_contacts_store  # noqa: E402
from core.database import stored_time  # noqa: E402
from core.settings import DEMO_SERVICE_TOKEN, load_settings  # noqa: E402

QUERIES = {
    "list, first page": {},
    "list, second page": "cursor",
    "search, rare name": {"q": "pérez 4242"},
    "search, common name": {"q": "maria"},
    "search, field value": {"q": "guayaquil"},
    "tag filter": {"tag": "Cliente VIP"},
    "open window": {"window_open": "true"},
}
INBOX_QUERIES = {
    "inbox, all": {"state": "all"},
    "inbox, one page_id": {"state": "all", "page_id": PAGE},
    "inbox, tag filter": {"state": "all", "tag": "Cliente VIP"},
    "inbox, search": {"state": "all", "q": "maria"},
}


def seed(folder: Path, count: int) -> None:
    store = open_contacts_store(folder / "contacts.sqlite3")
    try:
        rows = rows_for(count)
        for start in range(0, count, 10_000):
            store.import_contacts(rows[start:start + 10_000], NOW)
            progress("importing", min(start + 10_000, count), count)
        for n, row in enumerate(rows):
            store.upsert_seen(row.page_id, row.psid, NOW - timedelta(minutes=n % 5000))
            if n % 5000 == 0 or n == count - 1:
                progress("last messages", n + 1, count)
    finally:
        store.close()


def seed_read_marks(folder: Path, count: int) -> int:
    """Read marks on every other conversation, in one transaction (as `ConsoleStore.mark_read` writes each)."""
    store = open_console_store(folder / "console.sqlite3")
    try:
        marks = []
        for n, row in enumerate(rows_for(count)):
            if n % 2:
                continue
            last = NOW - timedelta(minutes=n % 5000)
            at = last - timedelta(minutes=1) if n % 20 == 0 else last + timedelta(minutes=1)
            marks.append({"id": f"{row.page_id}:{row.psid}", "at": stored_time(at), "by": "agente",
                          "message_count": 1})
        with store._db.write() as session:
            session.executemany(store._db.queries["mark_read"], marks)
        return len(marks)
    finally:
        store.close()


def timed(client: TestClient, url: str, params: dict[str, str], headers: dict[str, str], requests: int,
          name: str) -> tuple[list[float], dict[str, object]]:
    times: list[float] = []
    body: dict[str, object] = {}
    for n in range(requests):
        started = time.perf_counter()
        answer = client.get(url, params=params, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
        body = answer.json()
        progress(name, n + 1, requests)
    return times, body


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        seed(folder, args.contacts)
        marks = seed_read_marks(folder, args.contacts)
        settings = load_settings({"BOT_DATA_DIR": str(folder), "CONTACTS_SYNC_SECONDS": "3600",
                                  "COMMENTS_POLL_SECONDS": "3600"})
        headers = {"Authorization": f"Bearer {DEMO_SERVICE_TOKEN}"}
        with TestClient(create_app(settings)) as client:
            first = client.get("/api/console/contacts", params={"page_id": PAGE}, headers=headers)
            first.raise_for_status()
            cursor = first.json()["next_cursor"]
            for name, params in {**QUERIES, "tag list": "tags"}.items():
                times: list[float] = []
                for n in range(args.requests):
                    if params == "tags":
                        url, query = "/api/console/tags", {}
                    else:
                        url = "/api/console/contacts"
                        query = {"cursor": cursor} if params == "cursor" else dict(params)
                    started = time.perf_counter()
                    answer = client.get(url, params=query, headers=headers)
                    times.append((time.perf_counter() - started) * 1000)
                    answer.raise_for_status()
                    progress(name, n + 1, args.requests)
                total = answer.json().get("total") if params != "tags" else None
                print(json.dumps({"query": name, "contacts": args.contacts, "requests": args.requests,
                                  "p50_ms": round(statistics.median(times), 1),
                                  "p99_ms": round(percentile(times, 0.99), 1), "total": total}), flush=True)
            client.get("/api/console/inbox", params={"limit": "1"}, headers=headers).raise_for_status()  # warm
            for name, params in INBOX_QUERIES.items():
                times, body = timed(client, "/api/console/inbox", params, headers, args.requests, name)
                print(json.dumps({"query": name, "contacts": args.contacts, "read_marks": marks,
                                  "requests": args.requests, "p50_ms": round(statistics.median(times), 1),
                                  "p99_ms": round(percentile(times, 0.99), 1), "total": body.get("total"),
                                  "unread_conversations": body.get("unread_conversations")}), flush=True)


if __name__ == "__main__":
    main()
