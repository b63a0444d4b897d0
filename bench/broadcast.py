"""A broadcast to 10,000 contacts in the sandbox: the time to plan it (dry run), the time to enqueue it (the runner
walking the audience and writing every recipient into the outbox), the sends per second per page the outbox's
worker achieves against the configured broadcast rate (sending to the Graph sandbox, the app in a subprocess, over
HTTP), and the peak memory of the process doing it.

    .venv/bin/python bench/broadcast.py                          # 10,000 contacts, 60 s of sending
    .venv/bin/python bench/broadcast.py --contacts 2000 --send-seconds 20 --rate 10

The contacts: 80 % wrote in the last 24 hours, 10 % wrote 2 days ago (outside the window for promotional content),
10 % were imported from a CSV file (never wrote); 1 % of those who wrote are in a conversation a person holds. The
broadcast is promotional, to everyone of the page. Sending stops after `--send-seconds` (the broadcast is then
cancelled; at 10 per second, 8,000 recipients take over 13 minutes). Prints one JSON line per figure; progress
goes to stderr. Nothing is asserted: the figures are for the closing notes and the report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.contacts_import import PAGE, progress, rows_for  # noqa: E402
from bench.outbox import start_sandbox  # noqa: E402
from broadcasts.model import BroadcastDraft, BroadcastStatus  # noqa: E402
from broadcasts.service import Broadcasts  # noqa: E402
from broadcasts.store import open_broadcasts_store  # noqa: E402
from contacts.store import open_contacts_store  # noqa: E402
from core.settings import Settings, load_settings  # noqa: E402
from handoff.model import PauseReason  # noqa: E402
from handoff.service import open_handoff_store  # noqa: E402
from meta.graph import GraphClient  # noqa: E402
from outbox.model import MessageFilter, Status  # noqa: E402
from outbox.outbox import open_outbox  # noqa: E402
from outbox.store import open_store  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def emit(figure: str, **values: object) -> None:
    print(json.dumps({"figure": figure, **values}, ensure_ascii=False), flush=True)


def seed(folder: Path, count: int, now: datetime) -> dict[str, int]:
    """Contacts, the outbox's record of who wrote when, and a few paused conversations."""
    rows = rows_for(count)
    contacts = open_contacts_store(folder / "contacts.sqlite3")
    outbox = open_store(f"sqlite:///{folder / 'outbox.sqlite3'}")
    handoff = open_handoff_store(folder / "handoff.sqlite3")
    kinds = {"recent": 0, "old": 0, "imported": 0, "paused": 0}
    try:
        for start in range(0, count, 5000):
            contacts.import_contacts(rows[start:start + 5000], now)
            progress("contacts", min(start + 5000, count), count)
        for n, row in enumerate(rows):
            if n % 10 == 9:
                kinds["imported"] += 1
                continue
            at = now - (timedelta(days=2) if n % 10 == 8 else timedelta(minutes=n % 600))
            kinds["old" if n % 10 == 8 else "recent"] += 1
            contacts.upsert_seen(PAGE, row.psid, at)
            outbox.record_user_message(PAGE, row.psid, at)
            if n % 100 == 7:
                handoff.pause(PAGE, row.psid, PauseReason.AGENT_TOOK_OVER, "agente", now)
                kinds["paused"] += 1
            if n % 1000 == 0 or n == count - 1:
                progress("last messages", n + 1, count)
    finally:
        contacts.close()
        outbox.close()
        handoff.close()
    return kinds


class StoreHandoff:
    def __init__(self, store: object) -> None:
        self.store = store

    async def states_of(self, conversation_ids: object) -> dict:  # type: ignore[type-arg]
        return await asyncio.to_thread(self.store.states_of, list(conversation_ids))  # type: ignore[attr-defined]


async def measure(folder: Path, sandbox_url: str, settings: Settings, rate: float, send_seconds: float) -> None:
    client = GraphClient(Settings().page_tokens, base_url=sandbox_url)
    outbox = open_outbox(f"sqlite:///{folder / 'outbox.sqlite3'}", client, page_rate=settings.outbox_page_rate,
                         batch_size=settings.outbox_batch_size)
    contacts = open_contacts_store(folder / "contacts.sqlite3")
    handoff = open_handoff_store(folder / "handoff.sqlite3")
    store = open_broadcasts_store(folder / "broadcasts.sqlite3")
    service = Broadcasts(store, contacts, outbox, StoreHandoff(handoff), page_rate=rate)
    try:
        draft = BroadcastDraft.from_dict({"page_id": PAGE, "name": "Bench", "promotional": True,
                                          "content": {"text": "¡2x1 en helados este fin de semana!"},
                                          "audience": {"page_id": PAGE}})
        started = time.perf_counter()
        dry = await service.dry_run(draft)
        emit("dry run", seconds=round(time.perf_counter() - started, 2), audience=dry.audience,
             will_send=dry.will_send, outside_window=dry.outside_window, skipped=dry.skipped,
             estimated_seconds=dry.estimated_seconds)

        outbox.start()  # the app's worker, sending to the sandbox
        broadcast = await service.create(draft, "bench")
        await service.send(broadcast.id, "bench")
        started = time.perf_counter()
        rounds = 0
        while True:
            await service.run_once()
            rounds += 1
            queued = sum(c.recipients for c in store.counts(broadcast.id))
            progress("planned", queued, dry.audience)
            if store.plan_state(broadcast.id).done and not store.to_enqueue(broadcast.id, 1):
                break  # everyone planned, and every queued recipient in the outbox
        enqueue_seconds = time.perf_counter() - started
        emit("enqueue", seconds=round(enqueue_seconds, 2), recipients=dry.audience,
             queued=store.plan_state(broadcast.id).queued, runner_rounds=rounds,
             recipients_per_second=round(dry.audience / enqueue_seconds, 1))

        sent_before = (await outbox.counts()).get(Status.SENT.value, 0)
        first_sent_at = None
        deadline = time.perf_counter() + send_seconds
        sent = 0
        while time.perf_counter() < deadline:
            await asyncio.sleep(1)
            sent = (await outbox.counts()).get(Status.SENT.value, 0) - sent_before
            if sent and first_sent_at is None:
                first_sent_at = time.perf_counter()
            progress("sent", sent, dry.will_send)
            await service.run_once()
            if sent >= dry.will_send:
                break
        elapsed = time.perf_counter() - (first_sent_at or deadline - send_seconds)
        report = await service.report(broadcast.id)
        # The rate per page from the outbox's own send times (first to last sent), not the polling above.
        times = sorted(m.sent_at for m in await outbox.find(MessageFilter(page_id=PAGE, statuses=(Status.SENT,),
                                                                           limit=max(1, sent)))
                       if m.sent_at is not None)
        span = (times[-1] - times[0]).total_seconds() if len(times) > 1 else 0.0
        emit("sending", seconds=round(elapsed, 1), sent=sent, configured_rate=rate,
             sends_per_second=round((len(times) - 1) / span, 2) if span else None,
             report_sent=report.sent, report_queued=report.queued, report_skipped=report.skipped)
        if report.broadcast.status is BroadcastStatus.SENDING:
            started = time.perf_counter()
            await service.cancel(broadcast.id, "bench")
            emit("cancel", seconds=round(time.perf_counter() - started, 2), cancelled=report.queued)
        emit("memory", peak_rss_mb=round(peak_rss_mb(), 1))
    finally:
        service.close()
        await outbox.stop()
        outbox.close()
        await client.close()
        for opened in (contacts, handoff, store):
            opened.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--send-seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=None, help="sends per second per page (BROADCAST_PAGE_RATE)")
    args = parser.parse_args()
    settings = load_settings({})
    rate = args.rate or settings.broadcast_page_rate
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        kinds = seed(folder, args.contacts, datetime.now(timezone.utc))
        emit("contacts", contacts=args.contacts, **kinds)
        sandbox, sandbox_url = start_sandbox(folder / "sandbox")
        try:
            asyncio.run(measure(folder, sandbox_url, settings, rate, args.send_seconds))
        finally:
            sandbox.terminate()
            sandbox.wait()


if __name__ == "__main__":
    main()
