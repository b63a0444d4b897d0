"""Fuzzing the running webhook: ≥ 10,000 generated bodies over real HTTP to a real Rasa with our channel (issue 8).

Signed and unsigned; Meta's shapes with random and poisoned values, random JSON, random bytes. Proves: zero 5xx and
zero connection failures (no crash), Rasa still healthy, and every row the fuzz stored parses back and is processed
(none left pending, none failed): nothing half-stored. On the old code the first signed `messaging: 5` answered 500.

Only a handful of the fuzz's events reach Rasa: user input must use one of a few fuzz users and mids (the rest are
duplicates, receipts, reactions, standby...), so the run stays cheap. Random values processed by Rasa to the end are
fuzzed by test_webhook_processing_fuzz.py.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections import Counter
from contextlib import closing

import httpx
from hypothesis import HealthCheck, given, settings

from bot.stack import Stack
from connectors.ingest import PENDING, initial_status
from core.settings import DEMO_APP_SECRET
from meta.delivery import judge_delivery
from meta.events import InboundEvent
from meta.signature import SIGNATURE_HEADER
from tests.support.stack import PAGE_ID, Messenger
from tests.support.webhook_fuzz import (
    FUZZ_MIDS,
    FUZZ_USERS,
    FuzzBody,
    random_byte_bodies,
    random_json_bodies,
    shaped_bodies,
    signed_or_not,
)

BODIES = {"shaped": 5000, "json": 2600, "bytes": 3000}  # ~10,450 after the Rasa filter
CONCURRENCY = 8


def reaches_rasa_cheaply(body: FuzzBody, own_app_id: str) -> bool:
    """Bodies whose user input would be new work for Rasa are left out unless they reuse the fuzz's few keys."""
    if not body.signed:
        return True
    verdict = judge_delivery(body.raw, body.signature, DEMO_APP_SECRET)
    return all(
        event.page_id == PAGE_ID and event.user_id in FUZZ_USERS and event.mid in FUZZ_MIDS
        for event in verdict.events
        if initial_status(event, own_app_id) == PENDING
    )


def generate(own_app_id: str) -> list[FuzzBody]:
    bodies: list[FuzzBody] = []
    families = {
        "shaped": signed_or_not(shaped_bodies(page_id=PAGE_ID), "shaped", DEMO_APP_SECRET),
        "json": signed_or_not(random_json_bodies, "json", DEMO_APP_SECRET),
        "bytes": signed_or_not(random_byte_bodies, "bytes", DEMO_APP_SECRET),
    }
    for name, strategy in families.items():

        @settings(max_examples=BODIES[name], deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(strategy)
        def collect(body: FuzzBody) -> None:
            if reaches_rasa_cheaply(body, own_app_id):
                bodies.append(body)

        collect()
    return bodies


async def send_all(url: str, bodies: list[FuzzBody]) -> tuple[Counter[str], list[str]]:
    statuses: Counter[str] = Counter()
    problems: list[str] = []
    queue: asyncio.Queue[FuzzBody] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            headers = {"Content-Type": "application/json"}
            if body.signature is not None:
                headers[SIGNATURE_HEADER] = body.signature
            try:
                answer = await client.post(url, content=body.raw, headers=headers)
            except httpx.HTTPError as exc:
                problems.append(f"{type(exc).__name__} for {body.raw[:200]!r}")
                continue
            statuses[f"{body.family}/{'signed' if body.signed else 'unsigned'}/{answer.status_code}"] += 1
            if answer.status_code >= 500 or (not body.signed and answer.status_code != 403):
                problems.append(f"{answer.status_code} for {body.raw[:200]!r}: {answer.text[:200]}")

    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
    return statuses, problems


def fuzz_rows(stack: Stack, after_id: int) -> list[tuple[int, str, str, str | None]]:
    with closing(sqlite3.connect(stack.data_dir / "messenger.sqlite3")) as conn:
        return conn.execute(
            "SELECT id, status, event_json, last_error FROM inbound_events WHERE id > ? ORDER BY id", (after_id,)
        ).fetchall()


def last_row_id(stack: Stack) -> int:
    with closing(sqlite3.connect(stack.data_dir / "messenger.sqlite3")) as conn:
        return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM inbound_events").fetchone()[0])


def test_ten_thousand_generated_bodies_against_the_running_webhook(stack: Stack, messenger: Messenger) -> None:
    own_app_id = stack.env.get("MESSENGER_APP_ID", "")
    # Each fuzz user first talks to the bot, so Rasa has its tracker: pausing a conversation Rasa has never seen
    # fails in Rasa's API (its session start has no output channel), a handoff bug outside the webhook.
    for user in FUZZ_USERS:
        assert messenger.say(user, "hola").status_code == 200
        messenger.wait_for(lambda user=user: bool(messenger.replies(user)), 90, f"a first reply to {user}")
    before = last_row_id(stack)
    started = time.monotonic()
    bodies = generate(own_app_id)
    generated_at = time.monotonic()

    statuses, problems = asyncio.run(send_all(stack.webhook_url, bodies))
    sent_at = time.monotonic()

    print(
        f"\nwebhook fuzz (running Rasa): {len(bodies)} bodies sent; by family/signature/status: {dict(statuses)};"
        f" generated in {generated_at - started:.0f} s, sent in {sent_at - generated_at:.0f} s"
    )
    assert len(bodies) >= 10_000, f"the fuzz must send at least 10,000 bodies, sent {len(bodies)}"
    assert not problems, f"{len(problems)} answers were 5xx, failed or accepted unsigned, e.g. {problems[:5]}"
    assert stack.processes["rasa"].poll() is None, "Rasa survived the fuzz"
    assert httpx.get(stack.rasa_url + "/webhooks/messenger/", timeout=10).status_code == 200

    rows = fuzz_rows(stack, before)
    for _, _, event_json, _ in rows:  # every stored row parses back: nothing half-stored
        event = InboundEvent.from_dict(json.loads(event_json))
        assert isinstance(event.user_text(), str) and isinstance(event.shown_text(), str)
        json.dumps(event.metadata())
    deadline = time.monotonic() + 120
    while any(status == PENDING for _, status, _, _ in rows) and time.monotonic() < deadline:
        time.sleep(1)
        rows = fuzz_rows(stack, before)
    counts = Counter(status for _, status, _, _ in rows)
    print(f"stored by the fuzz: {len(rows)} rows, by status {dict(counts)}")
    assert counts[PENDING] == 0, "every event the fuzz stored was processed"
    failed = [(row_id, error) for row_id, status, _, error in rows if status == "failed"]
    assert not failed, f"stored events failed in processing (a shape the webhook should have refused?): {failed[:5]}"
    assert statuses.total() == len(bodies)
    assert sum(count for key, count in statuses.items() if key.endswith("/200")) > 0, "some bodies were accepted"
