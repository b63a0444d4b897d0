"""Outbox figures: throughput into the sandbox (SQLite and PostgreSQL, 1 and 2 worker processes),
enqueue latency, and the delay a bot reply gains by going through the outbox.

Usage: .venv/bin/python bench/outbox.py [--messages 2000] [--recipients 200] [--postgres DSN]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.settings import Settings  # noqa: E402
from meta.graph import GraphClient  # noqa: E402
from outbox.model import NewMessage, Purpose, Status  # noqa: E402
from outbox.outbox import open_outbox  # noqa: E402
from outbox.store import open_store  # noqa: E402
from tests.support.stack import free_port  # noqa: E402

PAGE = "100000000000001"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def start_sandbox(data_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BOT_DATA_DIR": str(data_dir),
        "BOT_APP_URL": f"http://127.0.0.1:{port}",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bot.app:create_app",
            "--factory",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"the sandbox (the app) exited with {process.returncode} while starting")
        try:
            if httpx.get(url + "/health").status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.terminate()
    process.wait()
    raise RuntimeError("the sandbox (the app) did not answer /health within 30 s")


def postgres_url(dsn: str) -> str | None:
    try:
        import psycopg2

        schema = f"bench_outbox_{uuid.uuid4().hex[:8]}"
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE SCHEMA {schema}")
        separator = "&" if "?" in dsn else "?"
        return f"{dsn}{separator}options=-csearch_path%3D{schema}"
    except Exception as exc:  # no PostgreSQL here: report and go on with SQLite
        print(f"(PostgreSQL skipped: {exc})")
        return None


def throughput(store_url: str, sandbox_url: str, messages: int, recipients: int, workers: int) -> float:
    store = open_store(store_url)
    now = datetime.now(timezone.utc)
    run = uuid.uuid4().hex[:6]
    for r in range(recipients):
        store.record_user_message(PAGE, f"{run}-{r}", now)
    for n in range(messages):
        store.enqueue(NewMessage(PAGE, f"{run}-{n % recipients}", {"text": f"m{n}"}, purpose=Purpose.REPLY), now)
    before = store.counts().get(Status.SENT.value, 0)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OUTBOX_URL": store_url,
        "GRAPH_API_BASE": sandbox_url,
        "OUTBOX_PAGE_RATE": "0",
        "OUTBOX_BATCH_SIZE": "64",
    }
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "outbox", "worker"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    try:
        while store.counts().get(Status.SENT.value, 0) - before < messages:
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        for process in processes:
            process.terminate()
            process.wait()
        store.close()
    return messages / elapsed


def enqueue_latency(store_url: str, count: int = 1000) -> tuple[float, float]:
    store = open_store(store_url)
    now = datetime.now(timezone.utc)
    timings = []
    for n in range(count):
        started = time.perf_counter()
        store.enqueue(NewMessage(PAGE, f"lat-{n % 50}", {"text": "x"}, not_before=None), now)
        timings.append((time.perf_counter() - started) * 1000)
    store.close()
    return percentile(timings, 0.5), percentile(timings, 0.99)


async def reply_delay(store_url: str, sandbox_url: str, count: int = 300) -> dict[str, float]:
    """Direct Send API call vs enqueue → in-process worker (kicked) → sent, for one reply at a time."""
    client = GraphClient(Settings().page_tokens, base_url=sandbox_url)
    outbox = open_outbox(store_url, client, page_rate=0)
    outbox.start()
    now = datetime.now(timezone.utc)
    direct, through = [], []
    try:
        for n in range(count):
            user = f"delay-{n}"
            await outbox.record_user_message(PAGE, user, now)
            started = time.perf_counter()
            await client.send_message(
                PAGE, {"recipient": {"id": user}, "messaging_type": "RESPONSE", "message": {"text": "directo"}}
            )
            direct.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            message, _ = await outbox.enqueue(NewMessage(PAGE, user, {"text": "outbox"}, purpose=Purpose.REPLY))
            while (await outbox.get(message.id)).status is not Status.SENT:
                await asyncio.sleep(0.0005)
            through.append((time.perf_counter() - started) * 1000)
    finally:
        await outbox.stop()
        await client.close()
        outbox.close()
    added = [t - d for t, d in zip(through, direct, strict=True)]
    return {
        "direct_p50": percentile(direct, 0.5),
        "direct_p99": percentile(direct, 0.99),
        "outbox_p50": percentile(through, 0.5),
        "outbox_p99": percentile(through, 0.99),
        "added_p50": percentile(added, 0.5),
        "added_p99": percentile(added, 0.99),
        "added_mean": statistics.fmean(added),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--recipients", type=int, default=200)
    parser.add_argument(
        "--postgres", default=os.environ.get("OUTBOX_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sandbox, sandbox_url = start_sandbox(Path(tmp) / "sandbox")
        try:
            backends = {"sqlite": lambda: f"sqlite:///{Path(tmp) / uuid.uuid4().hex}.sqlite3"}
            if postgres_url(args.postgres):
                backends["postgres"] = lambda: postgres_url(args.postgres) or ""
            for name, make_url in backends.items():
                for workers in (1, 2):
                    rate = throughput(make_url(), sandbox_url, args.messages, args.recipients, workers)
                    print(
                        f"{name:8s} workers={workers}: {rate:7.1f} msg/s into the sandbox "
                        f"({args.messages} messages, {args.recipients} recipients)"
                    )
                p50, p99 = enqueue_latency(make_url())
                print(f"{name:8s} enqueue latency: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
            delay = asyncio.run(reply_delay(backends["sqlite"](), sandbox_url))
            print(
                f"bot reply, direct Send API call: p50 {delay['direct_p50']:.2f} ms, p99 {delay['direct_p99']:.2f} ms"
            )
            print(
                f"bot reply through the outbox (SQLite, kicked worker): p50 {delay['outbox_p50']:.2f} ms, "
                f"p99 {delay['outbox_p99']:.2f} ms"
            )
            print(
                f"delay added by the outbox: p50 {delay['added_p50']:.2f} ms, p99 {delay['added_p99']:.2f} ms, "
                f"mean {delay['added_mean']:.2f} ms"
            )
        finally:
            sandbox.terminate()
            sandbox.wait()


if __name__ == "__main__":
    main()
