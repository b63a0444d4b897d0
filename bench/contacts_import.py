"""Importing contacts into a SQLite contacts store: row by row (`import_contact`, one transaction per row, what the
CSV import did before) against one batch (`import_contacts`, one transaction).

    .venv/bin/python bench/contacts_import.py                   # 5,000 and 50,000 rows
    .venv/bin/python bench/contacts_import.py --rows 5000 --batch-only

Each case starts from a fresh store file holding a fifth of the contacts already (they are updated, the others
created); every row sets a name, adds two tags and sets two fields, as a typical export → edit → import does.
Prints one JSON line per case (seconds, rows per second); progress goes to stderr. Nothing is asserted: the figures
are for the report (the store contract suite checks that both ways give the same contacts).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from contacts.store import ContactsStore, open_contacts_store  # noqa: E402

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
PAGE = "100000000000001"
NAMES = ("José", "María", "Ana", "Luis", "Andrés", "Lucía", "Carmen", "Jorge")


@dataclass(frozen=True)
class Row:
    page_id: str
    psid: str
    first_name: str | None
    last_name: str | None
    tags: tuple[str, ...]
    fields: dict[str, str | None] = field(default_factory=dict)


def rows_for(count: int) -> list[Row]:
    return [Row(PAGE, f"{7000000000000000 + n}", NAMES[n % len(NAMES)], f"Pérez {n}",
                ("Cliente VIP" if n % 3 == 0 else "Quito", f"lote {n % 20}"),
                {"ciudad": ("Quito", "Guayaquil", "Cuenca")[n % 3], "pedido": f"A-{n}"}) for n in range(count)]


def progress(label: str, done: int, total: int) -> None:
    print(f"\r  {label}: {done:,}/{total:,}", end="" if done < total else "\n", file=sys.stderr, flush=True)


def seeded_store(folder: Path, rows: list[Row]) -> ContactsStore:
    store = open_contacts_store(folder / "contacts.sqlite3")
    for row in rows[::5]:
        store.upsert_seen(row.page_id, row.psid, NOW)
    return store


def row_by_row(store: ContactsStore, rows: list[Row]) -> None:
    step = max(1, len(rows) // 20)
    for done, row in enumerate(rows, start=1):
        store.import_contact(row.page_id, row.psid, row.first_name, row.last_name, row.tags, row.fields, NOW)
        if done % step == 0 or done == len(rows):
            progress(f"row by row, {len(rows):,} rows", done, len(rows))


def batch(store: ContactsStore, rows: list[Row]) -> None:
    progress(f"one batch, {len(rows):,} rows", 0, len(rows))
    store.import_contacts(rows, NOW)
    progress(f"one batch, {len(rows):,} rows", len(rows), len(rows))


def measure(way: str, count: int) -> dict[str, object]:
    rows = rows_for(count)
    with tempfile.TemporaryDirectory() as folder:
        store = seeded_store(Path(folder), rows)
        try:
            started = time.perf_counter()
            (row_by_row if way == "row_by_row" else batch)(store, rows)
            seconds = time.perf_counter() - started
            stored = sum(1 for _ in store.export_rows())
        finally:
            store.close()
    return {"case": way, "rows": count, "contacts_after": stored, "seconds": round(seconds, 2),
            "rows_per_second": round(count / seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, action="append", help="rows per case (repeatable; 5000 and 50000)")
    parser.add_argument("--batch-only", action="store_true", help="skip the slow row-by-row cases")
    args = parser.parse_args()
    ways = ("batch",) if args.batch_only else ("row_by_row", "batch")
    for count in args.rows or [5000, 50000]:
        for way in ways:
            print(json.dumps(measure(way, count)), flush=True)


if __name__ == "__main__":
    main()
