"""Faults on the whole stack (Rasa, the action server and the app, each its own process) under a burst of
signed webhook messages from several users: kill -9 of Rasa, kill -9 of the app, the LLM server hanging.

One stack for the module (its own, never the session's), started with:
- the app behind a recording tap (`GraphTap`, in this process): the Send API requests the app's sandbox
  accepted are still known after the app is killed, and sends fail (503) while the app is down;
- the GPT fallback pointed at a local OpenAI-compatible fake (`tests/support/fake_openai.py`) with a short
  `LLM_TIMEOUT_SECONDS`.

What "every inbound message answered or visibly failed" means here: each message the webhook accepted is in
the ingest journal (`messenger.sqlite3`, `inbound_events`) as `done`, with at least one reply in the outbox
under the keys derived from that event (`reply:<page>:<dedup key>:<n>`), every one `sent` and accepted by
the Send API; or `failed` with the reason recorded. "No outbound message lost": every outbox message of the
burst ends `sent` and reached the Send API. Duplicates, counted by (recipient, text) against the outbox, are
allowed only for messages in flight (`sending`) at the kill: the documented at-least-once window.
"""

from __future__ import annotations

import collections
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from actions.knowledge import NO_ANSWER_TEXTS
from bot.stack import Stack
from core.settings import DEMO_APP_SECRET
from outbox.store import open_store
from sandbox import simulate
from tests.conftest import require_or_skip
from tests.integration.faults.support import (
    SERVICE_TOKEN,
    GraphTap,
    StackFiles,
    delivered,
    repeated_replies,
    sandbox_sent,
    sent_twice,
    sqlite_rows,
    wait_until,
)
from tests.support.fake_openai import FAKE_API_KEY, RunningFakeOpenAI, serve_fake_openai
from tests.support.servers import serve_asgi
from tests.support.stack import PAGE_ID, Messenger, rasa_available, start_stack

CONNECT_QUESTION = "oe como conecto mi fan page de facebook?"
UNANSWERABLE = "¿tienen sucursal en Loja con parqueadero para camiones?"
# Each answered without a handoff (a paused conversation gets no bot reply by design).
BURST_TEXTS = ("hola", CONNECT_QUESTION, "muchas gracias")
BURST_USERS = 5


def new_user(tag: str) -> str:
    return f"psid-{tag}-{uuid.uuid4().hex[:10]}"


# --- the module's stack ------------------------------------------------------------------------------------


@dataclass
class FaultStack(StackFiles):
    tap: GraphTap
    openai: RunningFakeOpenAI


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    require_or_skip(rasa_available(), "the Rasa environment (.venv-rasa; run `make install`)")
    tap = GraphTap()
    with serve_fake_openai() as openai, serve_asgi(tap.app) as tap_server:
        env = {
            "BOT_APP_URL": tap_server.base_url,  # Graph sends and handoff calls reach the app through the tap
            "LLM_API_KEY": FAKE_API_KEY,
            "LLM_BASE_URL": openai.base_url,
            "LLM_TIMEOUT_SECONDS": "1",
        }
        stack = start_stack(Path(tmp_path_factory.mktemp("faults-stack")), extra_env=env)
        tap.upstream = stack.app_url  # nothing is sent before a message arrives
        try:
            yield FaultStack(stack, tap, openai)
        finally:
            stack.stop()


# --- the burst and its verdict -----------------------------------------------------------------------------


def deliver_until_accepted(http: httpx.Client, url: str, user: str, text: str, give_up_at: float) -> None:
    """As Meta does: the same signed delivery (same mid) again until the webhook answers 200."""
    body = simulate.webhook_body(PAGE_ID, [simulate.text_message(PAGE_ID, user, text)])
    raw, headers = simulate.signed_request(body, DEMO_APP_SECRET)
    while True:
        try:
            if http.post(url, content=raw, headers=headers).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < give_up_at, f"the webhook never accepted {text!r} from {user}"
        time.sleep(0.3)


def webhook_burst(stack: Stack, users: list[str], pause: float = 0.15) -> int:
    """Every user sends BURST_TEXTS in turn, round-robin; returns how many deliveries were accepted."""
    give_up_at = time.monotonic() + 300
    accepted = 0
    with httpx.Client(timeout=30) as http:
        for text in BURST_TEXTS:
            for user in users:
                deliver_until_accepted(http, stack.webhook_url, user, text, give_up_at)
                accepted += 1
                time.sleep(pause)
    return accepted


def placeholders(values: list[str]) -> str:
    return ",".join("?" * len(values))


def outbox_rows(faults: FaultStack, users: list[str]) -> list[Any]:
    return sqlite_rows(
        faults.outbox,
        f"SELECT id, recipient_id, message, status, idempotency_key, attempts FROM messages "
        f"WHERE recipient_id IN ({placeholders(users)}) ORDER BY id",
        users,
    )


def journal_rows(faults: FaultStack, users: list[str]) -> list[Any]:
    return sqlite_rows(
        faults.journal,
        f"SELECT user_id, page_id, dedup_key, status, last_error, reverted_turns FROM inbound_events "
        f"WHERE user_id IN ({placeholders(users)}) AND kind = 'message' ORDER BY id",
        users,
    )


def text_of(row: Any) -> tuple[str, str]:
    return row["recipient_id"], json.loads(row["message"]).get("text", "")


def in_flight(faults: FaultStack, users: list[str]) -> set[tuple[str, str]]:
    return {text_of(row) for row in outbox_rows(faults, users) if row["status"] == "sending"}


def settled(faults: FaultStack, users: list[str], expected_events: int) -> bool:
    events = journal_rows(faults, users)
    outgoing = outbox_rows(faults, users)
    return (
        len(events) == expected_events
        and all(row["status"] in ("done", "failed") for row in events)
        and all(row["status"] not in ("pending", "sending") for row in outgoing)
    )


def check_verdict(
    faults: FaultStack,
    users: list[str],
    expected_events: int,
    records: list[dict[str, Any]],
    in_flight_at_kill: set[tuple[str, str]],
    fault: str,
) -> dict[str, int]:
    """The assertions shared by the kill tests; returns figures for the report."""
    events = journal_rows(faults, users)
    outgoing = outbox_rows(faults, users)
    assert len(events) == expected_events, (
        f"{fault}: every message the webhook accepted is in the journal exactly once ({len(events)} of "
        f"{expected_events})"
    )
    counts = delivered(records)
    answered = failed = 0
    for event in events:
        prefix = f"reply:{event['page_id']}:{event['dedup_key']}:"
        replies = [row for row in outgoing if (row["idempotency_key"] or "").startswith(prefix)]
        if event["status"] == "failed":
            assert event["last_error"], f"{fault}: a message that could not be answered is visibly failed, with why"
            failed += 1
            continue
        assert event["status"] == "done", f"{fault}: no message is left unprocessed ({event['status']})"
        assert replies, f"{fault}: the message {event['dedup_key']} of {event['user_id']} was answered (a reply)"
        for reply in replies:
            assert reply["status"] == "sent" and counts[text_of(reply)] >= 1, (
                f"{fault}: the reply to {event['dedup_key']} reached the Send API ({reply['status']})"
            )
        answered += 1
    statuses = collections.Counter(row["status"] for row in outgoing)
    assert set(statuses) <= {"sent"}, f"{fault}: no outbound message lost or stuck: every one is sent ({statuses})"
    expected = collections.Counter(text_of(row) for row in outgoing)
    missing = {key: n - counts[key] for key, n in expected.items() if counts[key] < n}
    assert not missing, f"{fault}: no outbound message lost: each outbox message reached the Send API ({missing})"
    duplicates = sent_twice(counts, expected)
    assert set(duplicates) <= in_flight_at_kill, (
        f"{fault}: only messages in flight at the kill ({len(in_flight_at_kill)}) were sent twice (the "
        f"at-least-once window); sent twice: {duplicates}"
    )
    queued_twice = repeated_replies(events, outgoing)
    assert not queued_twice, (
        f"{fault}: no reply to a message was queued again under other keys (a replayed turn reuses its keys; only a "
        f"turn undone after a failed action call may repeat what it said): queued again {queued_twice}"
    )
    return {"answered": answered, "failed": failed, "outbox": len(outgoing), "duplicates": sum(duplicates.values())}


# --- the tests -----------------------------------------------------------------------------------------------


def test_llm_server_hanging_the_customer_still_gets_the_honest_reply(faults: FaultStack) -> None:
    """The LLM server accepts the request and never answers: the fallback's own timeout ends the call and the
    customer gets the honest "not in my information" reply with the offer of a person. Fails if the action
    waited on the hanging server (no reply) or if the reply came from another path (no timeout logged)."""
    fake = faults.openai.fake
    fake.set_behaviour("hang")
    user = new_user("llm")
    messenger = Messenger(faults.stack)
    try:
        asked_before = len(fake.chat_requests)
        assert messenger.say(user, UNANSWERABLE).status_code == 200
        messenger.wait_for(
            lambda: any(text in NO_ANSWER_TEXTS for text in messenger.texts(user)), 120, "a reply despite the hang"
        )
    finally:
        fake.set_behaviour("grounded")
        messenger.http.close()
    assert len(fake.chat_requests) > asked_before, "the question reached the LLM server, which never answered"
    log = (faults.stack.log_dir / "actions.log").read_text(encoding="utf-8", errors="replace")
    assert "LLM call failed: llm_timeout" in log and "LLM fallback no_answer (llm_timeout)" in log, (
        "the reply was produced by the timeout path (the action server logged llm_timeout)"
    )
    assert any(text in NO_ANSWER_TEXTS for text in messenger_texts(faults, user)), (
        "the customer got the honest 'not in my information' reply although the LLM server hung"
    )


def messenger_texts(faults: FaultStack, user: str) -> list[str]:
    with httpx.Client(timeout=30) as http:
        return [item["body"]["message"].get("text", "") for item in sandbox_sent(http, faults.stack.app_url, user)]


def test_kill_9_of_rasa_mid_burst_every_message_answered_or_visibly_failed(faults: FaultStack) -> None:
    """kill -9 of the Rasa process (webhook, dialogue, the connector's outbox worker) in the middle of a burst,
    then a restart. Deliveries refused while it is down are redelivered, as Meta does."""
    stack = faults.stack
    users = [new_user("rasa") for _ in range(BURST_USERS)]
    with ThreadPoolExecutor(1) as pool, httpx.Client(timeout=30) as http:
        burst = pool.submit(webhook_burst, stack, users, 0.05)

        def busy() -> bool:  # replies already out, and messages recorded but not yet finished
            unfinished = sum(row["status"] == "pending" for row in journal_rows(faults, users))
            return sum(len(sandbox_sent(http, stack.app_url, user)) for user in users) >= 2 and unfinished >= 1

        wait_until(busy, 120, "Rasa busy with the burst", 0.05)
        stack.stop_process("rasa", kill=True)
        in_flight_at_kill = in_flight(faults, users)
        pending_at_kill = sum(row["status"] == "pending" for row in journal_rows(faults, users))
        assert pending_at_kill >= 1, "Rasa was killed mid-burst, with messages recorded but not yet answered"
        stack.start_rasa()
        accepted = burst.result(timeout=300)
        wait_until(lambda: settled(faults, users, accepted), 180, "every message answered or failed", 0.5)
        records = [item for user in users for item in sandbox_sent(http, stack.app_url, user)]
    figures = check_verdict(faults, users, accepted, records, in_flight_at_kill, "kill -9 of Rasa")
    print(f"\nkill -9 of Rasa: {accepted} messages, {pending_at_kill} unfinished at the kill, "
          f"{len(in_flight_at_kill)} replies in flight; {figures}")


def api_burst(app_url: str, users: list[str], per_user: int) -> list[tuple[str, str]]:
    """Messages through `POST /api/outbox`, each with an idempotency key, posted again until the app answers
    (it is killed meanwhile: a retried POST whose first attempt was stored is the same message)."""
    enqueued = []
    give_up_at = time.monotonic() + 300
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {SERVICE_TOKEN}"}) as http:
        for number in range(per_user * len(users)):
            user, text = users[number % len(users)], f"aviso {number:03d} de la tienda"
            payload = {"page_id": PAGE_ID, "recipient_id": user, "text": text, "sender": "bot",
                       "purpose": "reply", "idempotency_key": f"faults-app-{user}-{number}"}
            while True:
                try:
                    answer = http.post(app_url + "/api/outbox", json=payload)
                    if answer.status_code in (200, 201):
                        break
                    assert answer.status_code >= 500, answer.text
                except httpx.TransportError:
                    pass
                assert time.monotonic() < give_up_at, "the outbox API never came back"
                time.sleep(0.3)
            enqueued.append((user, text))
            time.sleep(0.05)
    return enqueued


def test_kill_9_of_the_app_mid_burst_sends_are_retried_and_nothing_is_lost(faults: FaultStack) -> None:
    """kill -9 of the app (outbox API and worker, handoff API, console, and the Graph sandbox itself) in the
    middle of a webhook burst and an outbox API burst, then a restart: sends fail while it is down, the
    outbox retries them and delivers after the restart; nothing is lost or left half-done."""
    stack = faults.stack
    users = [new_user("app") for _ in range(BURST_USERS)]
    api_users = [new_user("app-api") for _ in range(4)]
    store = open_store(f"sqlite:///{faults.outbox}")
    try:
        for user in api_users:  # these customers wrote earlier: the API may answer them
            store.record_user_message(PAGE_ID, user, datetime.now(timezone.utc))
    finally:
        store.close()
    refused_before = faults.tap.refused_while_down
    everyone = users + api_users
    with ThreadPoolExecutor(2) as pool:
        burst = pool.submit(webhook_burst, stack, users)
        api = pool.submit(api_burst, stack.app_url, api_users, 6)
        wait_until(
            lambda: len([item for user in everyone for item in faults.tap.accepted(user)]) >= 6 or burst.done(),
            120,
            "the first sends of the burst",
        )
        stack.stop_process("app", kill=True)
        in_flight_at_kill = in_flight(faults, everyone)
        unfinished = sum(row["status"] == "pending" for row in journal_rows(faults, users))
        unsent = sum(row["status"] in ("pending", "sending") for row in outbox_rows(faults, everyone))
        assert unfinished or unsent or not api.done(), "the app was killed mid-burst, with work still to do"
        time.sleep(2)  # sends meet a dead Graph API for a while
        stack.start_app()
        accepted = burst.result(timeout=300)
        enqueued = api.result(timeout=300)
        wait_until(lambda: settled(faults, users, accepted), 180, "every message answered or failed", 0.5)
        wait_until(
            lambda: all(row["status"] not in ("pending", "sending") for row in outbox_rows(faults, api_users)),
            120,
            "every API message settled",
            0.5,
        )
    assert faults.tap.refused_while_down > refused_before, (
        "sends were attempted while the app (the Graph sandbox) was down, and failed"
    )
    records = [item for user in users for item in faults.tap.accepted(user)]
    figures = check_verdict(faults, users, accepted, records, in_flight_at_kill, "kill -9 of the app")
    api_rows = outbox_rows(faults, api_users)
    assert collections.Counter(text_of(row) for row in api_rows) == collections.Counter(enqueued), (
        "each API message is stored once although POSTs were retried across the kill (idempotency keys)"
    )
    assert {row["status"] for row in api_rows} == {"sent"}, "every API message was sent after the restart"
    api_counts = delivered([item for user in api_users for item in faults.tap.accepted(user)])
    assert set(api_counts) == set(enqueued), "no API message lost: each reached the Send API"
    api_duplicates = sent_twice(api_counts, collections.Counter(enqueued))
    assert set(api_duplicates) <= in_flight_at_kill, (
        f"only API messages in flight at the kill were sent twice; sent twice: {api_duplicates}"
    )
    retried = sum(row["attempts"] > 1 for row in outbox_rows(faults, everyone))
    print(f"\nkill -9 of the app: {accepted} webhook messages, {len(enqueued)} API messages, "
          f"{len(in_flight_at_kill)} in flight at the kill, {faults.tap.refused_while_down - refused_before} sends "
          f"refused while down, {retried} messages sent after a retry; {figures}; API duplicates "
          f"{sum(api_duplicates.values())}")
