"""Several Rasa instances racing for one journal: owners in threads, each with its own store (its own connection,
as separate processes would have), claim, process and release while a webhook keeps recording. No conversation is
ever in two owners' hands, no event is lost or processed twice, and each conversation is processed in id order.
Against SQLite and PostgreSQL (tests/integration/ingest/conftest.py)."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from connectors.ingest import DONE, IngestJournal
from meta.events import parse_webhook
from tests.support import meta_payloads as meta

USERS = [f"70000000000{n:05d}" for n in range(12)]
MESSAGES_PER_USER = 15
OWNERS = ("rasa", "rasa-2", "rasa-3")
LEASE = timedelta(seconds=60)


class Ledger:
    """What the owners did, checked as it happens: who has each conversation in hand, what each processed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_hand: dict[str, str] = {}
        self.processed: dict[str, list[int]] = defaultdict(list)  # conversation → event ids, in processing order
        self.by_owner: dict[str, int] = defaultdict(int)
        self.violations: list[str] = []

    def take(self, owner: str, conversation: str) -> None:
        with self.lock:
            holder = self.in_hand.setdefault(conversation, owner)
            if holder != owner:
                self.violations.append(f"{conversation} given to {owner} while {holder} has it")

    def done(self, owner: str, conversation: str, event_id: int) -> None:
        with self.lock:
            self.processed[conversation].append(event_id)
            self.by_owner[owner] += 1

    def let_go(self, owner: str, conversation: str) -> None:
        """Before the claim is released in the journal: the next owner can only get it afterwards."""
        with self.lock:
            if self.in_hand.get(conversation) == owner:
                del self.in_hand[conversation]


def record_burst(store: IngestJournal, recorded: list[int]) -> None:
    for n in range(MESSAGES_PER_USER):
        items = [meta.text_message(mid=f"m_{user}_{n}", text=str(n), sender=user) for user in USERS]
        recorded.extend(stored.id for stored in store.record(parse_webhook(meta.webhook(meta.entry(items)))))


def run_owner(store: IngestJournal, owner: str, ledger: Ledger, recording: threading.Event) -> None:
    idle_rounds = 0
    while idle_rounds < 3:
        claimed = store.claim_pending(owner, datetime.now(timezone.utc), LEASE, limit=20)
        if not claimed:
            idle_rounds = 0 if recording.is_set() else idle_rounds + 1
            continue
        idle_rounds = 0
        conversations = list(dict.fromkeys(stored.event.conversation_key for stored in claimed))
        for conversation in conversations:
            ledger.take(owner, conversation)
        for stored in claimed:
            ledger.done(owner, stored.event.conversation_key, stored.id)
            store.finish(stored.id, DONE)
        for conversation in conversations:  # this owner's queue of each conversation is drained
            ledger.let_go(owner, conversation)
            store.release_claim(owner, conversation)


def test_owners_racing_never_share_a_conversation_and_lose_nothing(open_store: Callable[[], IngestJournal]) -> None:
    webhook = open_store()
    owners = {owner: open_store() for owner in OWNERS}
    ledger, recording = Ledger(), threading.Event()
    recorded: list[int] = []
    recording.set()
    threads = [
        threading.Thread(target=run_owner, args=(store, owner, ledger, recording), name=owner)
        for owner, store in owners.items()
    ]
    for thread in threads:
        thread.start()
    try:
        record_burst(webhook, recorded)
    finally:
        recording.clear()
        for thread in threads:
            thread.join(timeout=120)

    assert not any(thread.is_alive() for thread in threads)
    assert ledger.violations == []
    processed = [event_id for ids in ledger.processed.values() for event_id in ids]
    assert len(recorded) == len(USERS) * MESSAGES_PER_USER
    assert sorted(processed) == sorted(recorded), "every event processed exactly once"
    assert all(ids == sorted(ids) for ids in ledger.processed.values()), "each conversation in id order"
    assert webhook.pending() == [] and webhook.claims() == {}
    print(f"\nprocessed per owner: {dict(ledger.by_owner)}")
