"""Webhook latency under a burst, and end-to-end throughput against Rasa's own REST channel.

Starts the real stack on free ports (same model), then:
1. our channel: N signed events from U users posted concurrently; the webhook answer latency
   (p50/p99) and the messages per second until every event is processed and its replies reached
   the sandbox;
2. Rasa's REST channel (`/webhooks/rest/webhook`, replies in the HTTP answer) with the same
   messages at the same concurrency: Rasa's processing cost, our floor.

Usage: .venv/bin/python bench/webhook.py [--events 500] [--users 50] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.settings import DEMO_APP_SECRET, SANDBOX_PAGE_ID  # noqa: E402
from sandbox import simulate  # noqa: E402
from tests.support.stack import start_stack  # noqa: E402

TEXTS = ["hola", "gracias", "buenas tardes", "chao", "ok de una", "eres un bot?", "muchas gracias", "no"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def plan(events: int, users: int, prefix: str) -> list[tuple[str, str]]:
    return [(f"{prefix}-{i % users}", TEXTS[(i // users) % len(TEXTS)]) for i in range(events)]


async def run_ours(stack, messages: list[tuple[str, str]], concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    semaphore = asyncio.Semaphore(concurrency)
    db = stack.data_dir / "messenger.sqlite3"

    def done_count() -> int:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT COUNT(*) FROM inbound_events WHERE status IN ('done','failed')").fetchone()[0]

    before = done_count() if db.exists() else 0
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def post(user: str, text: str) -> None:
            body = simulate.webhook_body(SANDBOX_PAGE_ID, [simulate.text_message(SANDBOX_PAGE_ID, user, text)])
            raw, headers = simulate.signed_request(body, DEMO_APP_SECRET)
            async with semaphore:
                started = time.perf_counter()
                answer = await client.post(stack.webhook_url, content=raw, headers=headers)
                latencies.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200, answer.text

        started = time.perf_counter()
        await asyncio.gather(*(post(user, text) for user, text in messages))
        accepted = time.perf_counter() - started
        while done_count() - before < len(messages):
            await asyncio.sleep(0.05)
        total = time.perf_counter() - started
    return {
        "webhook_p50_ms": percentile(latencies, 0.50),
        "webhook_p99_ms": percentile(latencies, 0.99),
        "webhook_mean_ms": statistics.fmean(latencies),
        "webhook_latencies_ms": latencies,  # every answer's latency (bench/report.py charts them)
        "accept_all_s": accepted,
        "end_to_end_s": total,
        "messages_per_s": len(messages) / total,
    }


async def run_rest(stack, messages: list[tuple[str, str]], concurrency: int) -> dict[str, float]:
    semaphore = asyncio.Semaphore(concurrency)
    by_user: dict[str, list[str]] = {}
    for user, text in messages:
        by_user.setdefault(user, []).append(text)
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def conversation(user: str, texts: list[str]) -> None:
            # The REST channel answers after processing, so one user's messages go one after another.
            for text in texts:
                async with semaphore:
                    answer = await client.post(
                        stack.rasa_url + "/webhooks/rest/webhook", json={"sender": user, "message": text}
                    )
                assert answer.status_code == 200, answer.text

        started = time.perf_counter()
        await asyncio.gather(*(conversation(user, texts) for user, texts in by_user.items()))
        total = time.perf_counter() - started
    return {"end_to_end_s": total, "messages_per_s": len(messages) / total}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # Rasa's REST channel is not in the served credentials.yml (it has no authentication): this file adds it.
        stack = start_stack(Path(tmp), credentials="bench/credentials-rest.yml")
        try:
            # Warm up both paths (first-call costs: model graph, action server, connections).
            await run_rest(stack, plan(20, 5, "warm-rest"), 5)
            await run_ours(stack, plan(20, 5, "warm-ours"), 5)
            rest = await run_rest(stack, plan(args.events, args.users, "rest"), args.concurrency)
            ours = await run_ours(stack, plan(args.events, args.users, "ours"), args.concurrency)
        finally:
            stack.stop()
    print(f"events={args.events} users={args.users} concurrency={args.concurrency}")
    print(
        f"messenger webhook answer: p50 {ours['webhook_p50_ms']:.1f} ms, p99 {ours['webhook_p99_ms']:.1f} ms, "
        f"mean {ours['webhook_mean_ms']:.1f} ms; all accepted in {ours['accept_all_s']:.2f} s"
    )
    print(
        f"messenger end to end (replies in the sandbox): {ours['end_to_end_s']:.2f} s, "
        f"{ours['messages_per_s']:.1f} msg/s"
    )
    print(f"rasa REST channel (floor): {rest['end_to_end_s']:.2f} s, {rest['messages_per_s']:.1f} msg/s")
    overhead = (rest["messages_per_s"] / ours["messages_per_s"] - 1) * 100
    print(f"overhead vs REST: {overhead:+.1f}% time per message")


if __name__ == "__main__":
    asyncio.run(main())
