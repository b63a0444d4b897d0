"""The console's contacts API at 100,000 contacts: p50/p99 of the list, search, filters and tag list, through the
real app in-process (FastAPI's test client, the SQLite store the app opens, the service token).

    .venv/bin/python bench/contacts_api.py                    # 100,000 contacts, 50 requests per query
    .venv/bin/python bench/contacts_api.py --contacts 10000 --requests 20

The store is seeded in one batch (`import_contacts`) plus a "last message" for every contact (`upsert_seen`); the app
then starts on that data folder. Prints one JSON line per query (milliseconds); progress goes to stderr. Nothing is
asserted: the figures are for the closing notes and the report.
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
from contacts.store import open_contacts_store  # noqa: E402
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


if __name__ == "__main__":
    main()
