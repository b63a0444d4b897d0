"""Webhook latency under a burst, and end-to-end throughput against Rasa's own REST channel.

Starts the real stack on free ports (same model), then:
1. the webhook process (connectors/webhook_server.py, what Meta posts to): N signed events from U users posted
   with C in flight (closed loop: by Little's law its mean latency is C / the server's throughput), then 1000 more
   at 200/s (open loop, `--rate`, `--saturated-events`: a campaign's deliveries, each on time whatever the answers)
   while Rasa works through the burst's backlog (saturated); p50/p90/p99/max of each; then the time until the
   journal has processed every event;
2. end to end, side by side on the same stack, alternating (`--rounds`): Rasa's REST channel against ours
   (bench/endtoend.py: closed loop per user; ours until the sandbox got the replies, outbox on).

Usage: .venv/bin/python bench/webhook.py [--events 500] [--users 50] [--concurrency 50] [--e2e-events 300]
       [--rate 200] [--saturated-events 1000] [--webhook-only [--no-drain]] [--env NAME=VALUE …]
(`--env RASA_NICENESS=10`: every process but the webhook nicer, as `bot run` does with that setting)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.workload import plan  # noqa: E402
from core.settings import DEMO_APP_SECRET, SANDBOX_PAGE_ID  # noqa: E402
from sandbox import simulate  # noqa: E402
from tests.support.stack import start_stack  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def signed_bodies(messages: list[tuple[str, str]]) -> list[tuple[bytes, dict[str, str]]]:
    """Signed before the clock starts: the client's own work is not the webhook's latency."""
    signed = []
    for user, text in messages:
        body = simulate.webhook_body(SANDBOX_PAGE_ID, [simulate.text_message(SANDBOX_PAGE_ID, user, text)])
        signed.append(simulate.signed_request(body, DEMO_APP_SECRET))
    return signed


async def post_all(url: str, signed: list[tuple[bytes, dict[str, str]]], concurrency: int,
                   rate: float | None = None) -> list[float]:
    """Each POST's answer latency (ms). Closed loop (`concurrency` in flight) or, with `rate`, open loop: POST i
    leaves at i/rate s whatever the answers (Meta does not wait for one delivery to send the next).
    The client is aiohttp: httpx's own CPU per request (about 9 ms here, on the same two cores) was most of what
    the issue's p50 of 293 ms measured."""
    latencies: list[float] = []
    semaphore = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as client:

        async def post(number: int, raw: bytes, headers: dict[str, str]) -> None:
            if rate:
                await asyncio.sleep(max(0.0, begun + number / rate - time.perf_counter()))
            async with semaphore:
                started = time.perf_counter()
                async with client.post(url, data=raw, headers=headers) as answer:
                    text = await answer.text()
                latencies.append((time.perf_counter() - started) * 1000)
            assert answer.status == 200, text

        begun = time.perf_counter()
        await asyncio.gather(*(post(number, raw, headers) for number, (raw, headers) in enumerate(signed)))
    return latencies


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}
    return {"p50": percentile(values, 0.50), "p90": percentile(values, 0.90), "p99": percentile(values, 0.99),
            "max": max(values), "mean": statistics.fmean(values)}


def describe(values: list[float]) -> str:
    s = summary(values)
    return (f"p50 {s['p50']:.1f} ms, p90 {s['p90']:.1f} ms, p99 {s['p99']:.1f} ms, max {s['max']:.1f} ms, "
            f"mean {s['mean']:.1f} ms")


async def run_ours(stack, messages: list[tuple[str, str]], concurrency: int,
                   backlog_rate: float = 200.0, backlog_events: int = 1000, drain: bool = True) -> dict[str, Any]:
    """The burst (closed loop, `concurrency` in flight) to the webhook process, then, while Rasa works through the
    burst's backlog (saturated), `backlog_events` more at `backlog_rate`/s (open loop, as Meta sends: each delivery
    leaves on time whatever the answers); then waits until the journal has processed every event (`drain`; without
    it the backlog is left to the stack's stop, and the end-to-end figures are left out)."""
    db = stack.data_dir / "messenger.sqlite3"

    def done_count() -> int:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT COUNT(*) FROM inbound_events WHERE status IN ('done','failed')").fetchone()[0]

    before = done_count() if db.exists() else 0
    burst = signed_bodies(messages)
    extra = signed_bodies(plan(backlog_events, max(1, backlog_events // 2), f"backlog-{time.time_ns()}"))
    started = time.perf_counter()
    latencies = await post_all(stack.webhook_url, burst, concurrency)
    accepted = time.perf_counter() - started
    pending_then = len(messages) - (done_count() - before)
    # Open loop: enough connections that a slow answer never holds back the next delivery's departure.
    saturated_started = time.perf_counter()
    saturated = await post_all(stack.webhook_url, extra, max(concurrency, 200), rate=backlog_rate) if extra else []
    saturated_s = time.perf_counter() - saturated_started
    pending_after = len(messages) + len(extra) - (done_count() - before)
    while drain and done_count() - before < len(messages) + len(extra):
        await asyncio.sleep(0.05)
    total = time.perf_counter() - started
    return {
        "webhook_p50_ms": percentile(latencies, 0.50),
        "webhook_p99_ms": percentile(latencies, 0.99),
        "webhook_mean_ms": statistics.fmean(latencies),
        "webhook_latencies_ms": latencies,  # every answer's latency (bench/report.py charts them)
        "saturated_p50_ms": percentile(saturated, 0.50) if saturated else 0.0,
        "saturated_p99_ms": percentile(saturated, 0.99) if saturated else 0.0,
        "saturated_latencies_ms": saturated,
        "saturated_rate": backlog_rate,
        "saturated_s": saturated_s,
        "backlog_when_burst_accepted": pending_then,
        "backlog_after_saturated_phase": pending_after,
        "accept_all_s": accepted,
        "end_to_end_s": total,
        "messages_per_s": (len(messages) + len(extra)) / total,
    }


def print_webhook(ours: dict[str, Any], events: int, concurrency: int) -> None:
    latencies = ours["webhook_latencies_ms"]
    throughput = events / ours["accept_all_s"]
    print(f"webhook process, closed loop ({concurrency} in flight, {events} events): {describe(latencies)}; "
          f"all accepted in {ours['accept_all_s']:.2f} s = {throughput:.0f} req/s "
          f"({ours['backlog_when_burst_accepted']} still waiting for Rasa)")
    print(f"  Little's law: mean latency = in flight / throughput = {concurrency} / {throughput:.0f} per s = "
          f"{concurrency / throughput * 1000:.1f} ms; a closed loop of {concurrency} measures the server's "
          f"throughput, not the latency a delivery meets (a p50 of 5 ms would need {concurrency / 0.005:.0f} req/s)")
    saturated = ours["saturated_latencies_ms"]
    print(f"webhook process while Rasa is saturated (open loop {ours['saturated_rate']:g}/s, {len(saturated)} events "
          f"in {ours['saturated_s']:.2f} s, backlog {ours['backlog_after_saturated_phase']} after it): "
          f"{describe(saturated)}")


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
    from bench import endtoend

    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--e2e-events", type=int, default=300, help="messages per channel in the side-by-side run")
    parser.add_argument("--rounds", type=int, default=2, help="REST/ours alternations of the side-by-side run")
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop deliveries/s while Rasa is saturated")
    parser.add_argument("--saturated-events", type=int, default=1000, help="deliveries of the open-loop phase")
    parser.add_argument("--webhook-only", action="store_true", help="skip the end-to-end side-by-side rounds")
    parser.add_argument("--no-drain", action="store_true",
                        help="with --webhook-only: stop once the open-loop phase is answered, not when Rasa is done")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment of the stack's processes (e.g. RASA_NICENESS=10); repeatable")
    args = parser.parse_args()
    extra_env = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory() as tmp:
        # Rasa's REST channel is not in the served credentials.yml (it has no authentication): this file adds it.
        stack = start_stack(Path(tmp), extra_env or None, credentials="bench/credentials-rest.yml")
        try:
            await endtoend.side_by_side(stack, 20, 5)  # warm up both paths
            ours = await run_ours(stack, plan(args.events, args.users, f"burst-{time.time_ns()}"), args.concurrency,
                                  args.rate, args.saturated_events, drain=not (args.no_drain and args.webhook_only))
            rounds = 0 if args.webhook_only else args.rounds
            runs = [await endtoend.side_by_side(stack, args.e2e_events, args.users) for _ in range(rounds)]
        finally:
            stack.stop()
    print(f"events={args.events} users={args.users} concurrency={args.concurrency} "
          f"RASA_NICENESS={stack.niceness} "
          f"load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print_webhook(ours, args.events, args.concurrency)
    if not runs:
        return
    rest_time = sum(rest.elapsed_s / rest.messages for rest, _ours in runs)
    ours_time = sum(mine.elapsed_s / mine.messages for _rest, mine in runs)
    for number, (rest, mine) in enumerate(runs, start=1):
        print(f"side by side {number}: REST {rest.messages_per_s:.2f} msg/s, ours {mine.messages_per_s:.2f} msg/s "
              f"(ours/REST time per message {rest.messages_per_s / mine.messages_per_s:.3f})")
    print(f"end to end, time per message ours/REST over {args.rounds} rounds: {ours_time / rest_time:.3f} "
          f"({(ours_time / rest_time - 1) * 100:+.1f}%)")


if __name__ == "__main__":
    asyncio.run(main())
