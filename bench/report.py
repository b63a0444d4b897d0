"""Every benchmark in one run: `bench/REPORT.md` with a table and a PNG chart per section (what `make bench` runs).

    .venv/bin/python bench/report.py                      # the full run (about 30 minutes with a 10-minute soak)
    .venv/bin/python bench/report.py --quick              # small sizes, a 1-minute soak, written to var/bench-quick/
    .venv/bin/python bench/report.py --only webhook,memory --quick

Sections (bench/reporting.py SECTIONS): the webhook's answer latency under a burst while Rasa is saturated; end to
end, our channel against Rasa's REST channel on the same stack, closed loop (bench/endtoend.py); outbox throughput
(bench/outbox.py); retrieval latency by matrix size (bench/knowledge.py); embedded vs scale profile; 1 vs 2 Rasa
instances; resident memory of each process at rest and after the burst; a soak at a steady rate sampling every
process's resident memory; reports over a year of a busy page (bench/reports.py). A section that cannot run here
(no PostgreSQL, no scale profile yet, a failure) says "not run: <why>" in the report and the others go on. Steps
and progress go to stderr; the report goes to its file and to stdout. Nothing is asserted: these are figures of
this machine at this moment (cores and load are noted).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import endtoend, workload  # noqa: E402
from bench import outbox as outbox_bench  # noqa: E402
from bench import webhook as webhook_bench  # noqa: E402
from bench.endtoend import ChannelRun  # noqa: E402
from bench.reporting import (  # noqa: E402
    Chart,
    Machine,
    Section,
    Table,
    latency_summary,
    mb,
    ms,
    slope_per_minute,
    write_report,
)
from bot.stack import RASA_PYTHON, Stack  # noqa: E402
from core.settings import DEMO_APP_SECRET, SANDBOX_PAGE_ID  # noqa: E402
from outbox.model import Status  # noqa: E402
from sandbox import simulate  # noqa: E402
from tests.support.stack import start_stack  # noqa: E402

REST_CREDENTIALS = "bench/credentials-rest.yml"  # our channel plus Rasa's REST channel, for the side by side
MIB = 2**20


@dataclass(frozen=True)
class Sizes:
    events: int = 500
    users: int = 50
    concurrency: int = 50
    e2e_events: int = 500
    e2e_users: int = 50
    e2e_rounds: int = 3  # pairs in alternating order (bench/endtoend.py alternating_rounds): the noise shows
    outbox_messages: int = 2000
    outbox_recipients: int = 200
    retrieval_sizes: tuple[int, ...] = (100, 1_000, 10_000)
    retrieval_queries: int = 200
    scale_events: int = 300
    scale_users: int = 30
    soak_minutes: float = 10.0
    soak_rate: float = 5.0
    soak_users: int = 50
    soak_sample_seconds: float = 10.0
    reports_days: int = 365
    reports_per_day: int = 300
    reports_handoffs: int = 20
    reports_repeats: int = 20


QUICK = Sizes(
    events=100,
    users=10,
    concurrency=10,
    e2e_events=60,
    e2e_users=10,
    e2e_rounds=1,
    outbox_messages=200,
    outbox_recipients=20,
    retrieval_sizes=(100, 1_000),
    retrieval_queries=50,
    scale_events=40,
    scale_users=8,
    soak_minutes=1.0,
    reports_days=30,
    reports_per_day=100,
    reports_handoffs=5,
    reports_repeats=5,
)


# --- progress on stderr ----------------------------------------------------------------------------------------


class Progress:
    """Step lines with the time since the start, and a bar for long loops (redrawn on a terminal, else a line
    every 10%)."""

    def __init__(self, stream: Any = sys.stderr) -> None:
        self.stream = stream
        self.started = time.monotonic()
        self.tty = bool(getattr(stream, "isatty", lambda: False)())

    def stamp(self) -> str:
        elapsed = int(time.monotonic() - self.started)
        return f"[{elapsed // 60:02d}:{elapsed % 60:02d}]"

    def step(self, text: str) -> None:
        print(f"{self.stamp()} {text}", file=self.stream, flush=True)

    def bar(self, label: str, total: int) -> Callable[[], None]:
        done = 0
        last_tenth = -1

        def tick() -> None:
            nonlocal done, last_tenth
            done += 1
            width = 30
            filled = int(width * done / max(total, 1))
            line = f"{self.stamp()}   {label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
            if self.tty:
                print("\r" + line, end="\n" if done >= total else "", file=self.stream, flush=True)
            elif (tenth := 10 * done // max(total, 1)) != last_tenth:
                last_tenth = tenth
                print(line, file=self.stream, flush=True)

        return tick


# --- the machine -----------------------------------------------------------------------------------------------


def command_output(command: Sequence[str]) -> str:
    try:
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_facts(sizes: Sizes, command: str) -> Machine:
    memory = psutil.virtual_memory()
    commit = command_output(["git", "rev-parse", "--short", "HEAD"]) or "unknown"
    if command_output(["git", "status", "--porcelain", "--untracked-files=no"]):
        commit += " (with uncommitted changes)"
    rasa = command_output(
        [
            str(RASA_PYTHON),
            "-c",
            "import importlib.metadata as m, sys; print(sys.version.split()[0], m.version('rasa'))",
        ]
    ).split()
    facts = {
        "date (UTC)": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "git commit": commit,
        "command": command,
        "CPU": f"{cpu_model()}: {psutil.cpu_count(logical=True)} logical cores "
        f"({psutil.cpu_count(logical=False) or '?'} physical)",
        "RAM": f"{memory.total / 2**30:.1f} GiB ({memory.available / 2**30:.1f} GiB available at the start)",
        "OS": platform.platform(),
        "Python (app, actions, matrix)": sys.version.split()[0],
        "Python (Rasa)": f"{rasa[0]} (Rasa {rasa[1]})" if len(rasa) == 2 else "not found",
        "sizes": (
            f"burst {sizes.events} events / {sizes.users} users / concurrency {sizes.concurrency}; "
            f"end to end {sizes.e2e_events} messages / {sizes.e2e_users} conversations; "
            f"soak {sizes.soak_minutes:g} min at {sizes.soak_rate:g} msg/s"
        ),
    }
    return Machine(facts, load_before=os.getloadavg())


# --- memory ----------------------------------------------------------------------------------------------------


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its children (0 when it is gone)."""
    total = 0
    for member in endtoend.process_tree(pid):
        with contextlib.suppress(psutil.Error):
            total += member.memory_info().rss
    return total / MIB


def stack_rss(stack: Stack) -> dict[str, float]:
    return {name: tree_rss_mib(process.pid) for name, process in list(stack.processes.items()) if name != "knowledge"}


# --- section builders: figures in, a Section out (pure; the smoke test calls them on synthetic figures) ---------


def webhook_section(result: dict[str, Any], events: int, users: int, concurrency: int) -> Section:
    latencies = list(result["webhook_latencies_ms"])
    s = latency_summary(latencies)
    saturated = list(result["saturated_latencies_ms"])
    o = latency_summary(saturated)
    rate = result["saturated_rate"]
    return Section(
        "webhook",
        what=(
            f"{events} signed events from {users} users posted at once ({concurrency} connections) to the webhook "
            "process; each POST's answer time (the event is durable in the journal before the 200). The burst "
            f"itself saturates Rasa. Then, while Rasa works through that backlog, {len(saturated)} more at "
            f"{rate:g}/s (open loop: each leaves on time whatever the answers, as Meta delivers); a closed loop "
            "of 50 measures the server's throughput (Little's law), the open loop the latency a delivery meets. "
            "Issue 11's targets, for the open loop: p50 ≤ 5 ms, p99 ≤ 20 ms."
        ),
        table=Table(
            ["", "p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms", "all accepted in", "all processed in", "msg/s"],
            [
                [
                    f"burst, {concurrency} in flight",
                    ms(s["p50"]),
                    ms(s["p90"]),
                    ms(s["p99"]),
                    ms(s["max"]),
                    ms(s["mean"]),
                    f"{result['accept_all_s']:.2f} s",
                    f"{result['end_to_end_s']:.2f} s",
                    f"{result['messages_per_s']:.1f}",
                ],
                [
                    f"open loop {rate:g}/s, Rasa saturated ({result['backlog_after_saturated_phase']} waiting after)",
                    ms(o["p50"]),
                    ms(o["p90"]),
                    ms(o["p99"]),
                    ms(o["max"]),
                    ms(o["mean"]),
                    f"{result['saturated_s']:.2f} s",
                    "–",
                    "–",
                ],
            ],
        ),
        chart=Chart(
            "cdf",
            "webhook.png",
            "Webhook answer latency under a burst, then open loop while Rasa is saturated",
            "ms",
            "fraction of POSTs",
            {"burst (closed loop)": latencies, f"open loop {rate:g}/s, Rasa saturated": saturated},
        ),
    )


def channel_row(name: str, run: ChannelRun) -> list[str]:
    s = run.summary()
    rate = s["msg_per_s"]
    return [
        name,
        f"{rate:.2f}" if rate < 10 else f"{rate:.1f}",
        ms(s["p50"]),
        ms(s["p90"]),
        ms(s["p99"]),
        ms(s["max"]),
        str(run.messages),
    ]


CHANNEL_HEADERS = ["", "msg/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "messages"]


def end_to_end_section(runs: Sequence[tuple[ChannelRun, ChannelRun]], users: int) -> Section:
    """Both channels over every round: the table and chart pool the rounds, the notes give each round's ratio."""
    ratios, ratio = endtoend.round_ratios(runs)
    rest, ours = endtoend.pooled([pair[0] for pair in runs]), endtoend.pooled([pair[1] for pair in runs])
    notes = [f"time per message, ours / REST: **{ratio:.3f}** ({(ratio - 1) * 100:+.1f}%; issue 11's target ≤ +10%)"]
    if len(runs) > 1:
        notes.append(
            f"{len(runs)} rounds in alternating order (REST first, then ours first, …), pooled above; each round's "
            f"ratio: {', '.join(f'{value:.3f}' for value in ratios)}"
        )
    if ours.unmatched:
        notes.append(
            f"{ours.unmatched} of our messages had no reply tied to them afterwards (left out of the percentiles)"
        )
    return Section(
        "end_to_end",
        what=(
            f"The same plan through both channels of one stack and model, one after the other: {users} "
            "conversations at once, each user sending the next message when the previous one was answered. "
            "REST: the POST until its answer. Ours: the webhook POST until the sandbox recorded the last reply to "
            "that message (outbox on; replies tied to messages by the outbox's keys). See bench/endtoend.py."
        ),
        table=Table(CHANNEL_HEADERS, [channel_row("Rasa REST channel", rest), channel_row("our channel", ours)]),
        chart=Chart(
            "cdf",
            "end_to_end.png",
            "Per-message latency, closed loop",
            "ms",
            "fraction of messages",
            {"Rasa REST": rest.latencies_ms, "ours (webhook → sandbox)": ours.latencies_ms},
        ),
        notes=notes,
    )


def outbox_section(
    rates: Sequence[tuple[str, int, float]],
    enqueue: dict[str, tuple[float, float]],
    messages: int,
    recipients: int,
    notes: Sequence[str] = (),
) -> Section:
    backends = sorted({backend for backend, _, _ in rates})
    workers = sorted({count for _, count, _ in rates})
    by = {(backend, count): rate for backend, count, rate in rates}
    return Section(
        "outbox",
        what=(
            f"{messages} queued replies to {recipients} recipients drained into the sandbox by `python -m outbox "
            "worker` processes (no page rate limit); enqueue latency of one message. See bench/outbox.py."
        ),
        table=Table(
            ["store", "workers", "msg/s", "enqueue p50 ms", "enqueue p99 ms"],
            [
                [
                    backend,
                    str(count),
                    f"{rate:.1f}",
                    f"{enqueue[backend][0]:.2f}" if backend in enqueue else "–",
                    f"{enqueue[backend][1]:.2f}" if backend in enqueue else "–",
                ]
                for backend, count, rate in rates
            ],
        ),
        chart=Chart(
            "bars",
            "outbox.png",
            "Outbox throughput into the sandbox",
            "store",
            "msg/s",
            {
                f"{count} worker{'s' if count > 1 else ''}": [by.get((b, count), 0.0) for b in backends]
                for count in workers
            },
            labels=backends,
        ),
        notes=notes,
    )


def retrieval_section(rows: Sequence[dict[str, Any]], queries: int) -> Section:
    return Section(
        "retrieval",
        what=(
            f"Synthetic matrices (stored vectors for the rows, the real default embedder for each query): {queries} "
            "queries per size, each embed + search. See bench/knowledge.py."
        ),
        table=Table(
            ["entries", "index", "p50 ms", "p99 ms", "build s", "save s", "load s"],
            [
                [
                    f"{row['size']:,}",
                    row["index"],
                    ms(row["p50_ms"]),
                    ms(row["p99_ms"]),
                    f"{row['build_s']:.2f}",
                    f"{row['save_s']:.2f}",
                    f"{row['load_s']:.2f}",
                ]
                for row in rows
            ],
        ),
        chart=Chart(
            "lines",
            "retrieval.png",
            "Retrieval latency by matrix size",
            "entries (log)",
            "ms per query",
            {"p50": [row["p50_ms"] for row in rows], "p99": [row["p99_ms"] for row in rows]},
            x={"p50": [row["size"] for row in rows], "p99": [row["size"] for row in rows]},
            log_x=True,
        ),
    )


def compare_section(
    key: str,
    runs: dict[str, ChannelRun],
    what: str,
    file: str,
    title: str,
    memory: dict[str, dict[str, float]] | None = None,
) -> Section:
    """`memory`: per run, each process's RSS (MiB) right after it."""
    base = next(iter(runs.values()))
    notes = [
        f"{name}: {run.messages_per_s / base.messages_per_s:.2f}× the msg/s of {next(iter(runs))}"
        for name, run in list(runs.items())[1:]
        if base.messages_per_s
    ]
    for name, processes in (memory or {}).items():
        each = ", ".join(f"{process} {mb(value)}" for process, value in processes.items())
        notes.append(f"{name}, resident memory after the run: {mb(sum(processes.values()))} MiB in all ({each})")
    return Section(
        key,
        what=what,
        table=Table(CHANNEL_HEADERS, [channel_row(name, run) for name, run in runs.items()]),
        chart=Chart(
            "cdf", file, title, "ms per message", "fraction of messages", {n: r.latencies_ms for n, r in runs.items()}
        ),
        notes=notes,
    )


def memory_section(at_rest: dict[str, float], after_burst: dict[str, float]) -> Section:
    names = list(dict.fromkeys([*at_rest, *after_burst]))
    rows = [
        [
            name,
            mb(at_rest.get(name, 0.0)),
            mb(after_burst.get(name, 0.0)),
            f"{after_burst.get(name, 0.0) - at_rest.get(name, 0.0):+.0f}",
        ]
        for name in names
    ]
    rows.append(
        [
            "all",
            mb(sum(at_rest.values())),
            mb(sum(after_burst.values())),
            f"{sum(after_burst.values()) - sum(at_rest.values()):+.0f}",
        ]
    )
    return Section(
        "memory",
        what=(
            "Resident memory (RSS, MiB) of each process of the embedded stack, with its children (psutil): once "
            "started and idle, and right after the webhook burst."
        ),
        table=Table(["process", "at rest MiB", "after the burst MiB", "change MiB"], rows),
        chart=Chart(
            "bars",
            "memory.png",
            "Resident memory per process",
            "process",
            "MiB",
            {
                "at rest": [at_rest.get(n, 0.0) for n in names],
                "after the burst": [after_burst.get(n, 0.0) for n in names],
            },
            labels=names,
        ),
    )


@dataclass
class SoakResult:
    minutes: float
    rate: float
    posted: int
    replies: int
    samples: dict[str, list[tuple[float, float]]]  # process -> (seconds since the start, MiB)
    webhook_latencies_ms: list[float]
    behind_s: float = 0.0  # how far the posting fell behind its schedule at the end


def soak_section(result: SoakResult, sample_seconds: float) -> Section:
    rows = []
    for name, points in result.samples.items():
        seconds, values = [p[0] for p in points], [p[1] for p in points]
        rows.append([name, mb(values[0]), mb(values[-1]), mb(max(values)), f"{slope_per_minute(seconds, values):+.2f}"])
    latency = latency_summary(result.webhook_latencies_ms)
    return Section(
        "soak",
        what=(
            f"{result.rate:g} msg/s for {result.minutes:g} min into the webhook ({result.posted} messages), "
            f"every process's RSS sampled each {sample_seconds:g} s; slope = least-squares MiB per minute. The "
            "sandbox's record of sends is emptied at each sample so it does not count as growth."
        ),
        table=Table(["process", "start MiB", "end MiB", "max MiB", "slope MiB/min"], rows),
        chart=Chart(
            "lines",
            "soak.png",
            "Resident memory growth during the soak",
            "minutes",
            "MiB above the first sample",
            {name: [p[1] - points[0][1] for p in points] for name, points in result.samples.items()},
            x={name: [p[0] / 60 for p in points] for name, points in result.samples.items()},
        ),
        notes=[
            f"replies sent (outbox) for the soak's {result.posted} messages: {result.replies}",
            f"webhook answer during the soak: p50 {ms(latency['p50'])} ms, p99 {ms(latency['p99'])} ms, "
            f"max {ms(latency['max'])} ms",
            f"posting behind its schedule at the end: {result.behind_s:.1f} s",
        ],
    )


def not_run(key: str, why: str) -> Section:
    return Section(key, not_run=f"not run: {why}")


# --- measurements ----------------------------------------------------------------------------------------------


def guarded(key: str, progress: Progress, measure: Callable[[], Section]) -> Section:
    """A failing section is reported as not run, with its error; the run goes on."""
    try:
        return measure()
    except Exception as exc:  # noqa: BLE001 - any failure of one benchmark must not lose the others' figures
        progress.step(f"{key} failed: {type(exc).__name__}: {exc}")
        traceback.print_exc(file=sys.stderr)
        return not_run(key, f"failed ({type(exc).__name__}: {str(exc)[:300]})")


async def soak(stack: Stack, sizes: Sizes, progress: Progress) -> SoakResult:
    duration = sizes.soak_minutes * 60
    period = 1.0 / sizes.soak_rate
    samples: dict[str, list[tuple[float, float]]] = {}
    latencies: list[float] = []
    users = [f"soak-{uuid.uuid4().hex[:6]}-{n}" for n in range(sizes.soak_users)]
    tick = progress.bar("soak samples", int(duration // sizes.soak_sample_seconds) + 1)
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=100)) as client:
        in_flight = asyncio.Semaphore(100)

        async def post(number: int) -> None:
            user = users[number % len(users)]
            text = workload.TEXTS[(number // len(users)) % len(workload.TEXTS)]
            body = simulate.webhook_body(SANDBOX_PAGE_ID, [simulate.text_message(SANDBOX_PAGE_ID, user, text)])
            raw, headers = simulate.signed_request(body, DEMO_APP_SECRET)
            async with in_flight:
                started = time.perf_counter()
                answer = await client.post(stack.webhook_url, content=raw, headers=headers)
                latencies.append((time.perf_counter() - started) * 1000)
            answer.raise_for_status()

        async def sample(at: float) -> None:
            for name, value in stack_rss(stack).items():
                samples.setdefault(name, []).append((at, value))
            await client.delete(stack.app_url + "/sandbox/sent")  # the sandbox's own record is not the bot's growth
            tick()

        tasks: set[asyncio.Task[None]] = set()
        started = time.monotonic()
        number = 0
        next_sample = 0.0
        while (elapsed := time.monotonic() - started) < duration:
            if elapsed >= next_sample:
                await sample(next_sample)
                next_sample += sizes.soak_sample_seconds
            task = asyncio.create_task(post(number))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            number += 1
            await asyncio.sleep(max(0.0, started + number * period - time.monotonic()))
        behind = time.monotonic() - (started + number * period)
        await asyncio.gather(*tasks)
        await sample(duration)
    progress.step("soak: waiting for the last replies (at most 60 s)…")
    sent, quiet_since = -1, time.monotonic()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and time.monotonic() - quiet_since < 3:
        now_sent = sum(1 for m in endtoend.outbox_messages(stack, users) if m.status is Status.SENT)
        if now_sent != sent:
            sent, quiet_since = now_sent, time.monotonic()
        await asyncio.sleep(1)
    return SoakResult(sizes.soak_minutes, sizes.soak_rate, number, sent, samples, latencies, max(0.0, behind))


def run_embedded(sizes: Sizes, only: set[str], progress: Progress) -> list[Section]:
    """One embedded stack (with Rasa's REST channel beside ours) for the webhook, end-to-end, memory and soak."""
    wanted = [key for key in ("webhook", "end_to_end", "memory", "soak") if key in only]
    if not wanted:
        return []
    sections: dict[str, Section] = {}
    with tempfile.TemporaryDirectory(prefix="bench-embedded-") as tmp:
        progress.step("starting the embedded stack (about a minute; Rasa loads its model)…")
        stack = start_stack(Path(tmp), credentials=REST_CREDENTIALS)
        try:
            time.sleep(5)
            at_rest = stack_rss(stack)
            progress.step("memory at rest: " + ", ".join(f"{n} {v:.0f} MiB" for n, v in at_rest.items()))
            progress.step("warming up both channels (20 messages each)…")
            asyncio.run(endtoend.side_by_side(stack, 20, 5))
            if "webhook" in only or "memory" in only:
                progress.step(f"webhook burst: {sizes.events} events from {sizes.users} users…")
                burst: dict[str, Any] = {}

                def measure_burst() -> Section:
                    messages = webhook_bench.plan(sizes.events, sizes.users, f"burst-{uuid.uuid4().hex[:6]}")
                    run = webhook_bench.run_ours(stack, messages, sizes.concurrency)
                    # run_ours waits until the journal has processed every event: bounded, in case nothing is
                    burst.update(asyncio.run(asyncio.wait_for(run, timeout=120 + sizes.events)))
                    return webhook_section(burst, sizes.events, sizes.users, sizes.concurrency)

                sections["webhook"] = guarded("webhook", progress, measure_burst)
                after_burst = stack_rss(stack)
                sections["memory"] = memory_section(at_rest, after_burst)
            if "end_to_end" in only:
                total = 2 * sizes.e2e_events * sizes.e2e_rounds
                progress.step(f"end to end: {sizes.e2e_events} messages through Rasa's REST channel and ours, "
                              f"{sizes.e2e_rounds} rounds…")
                tick = progress.bar("messages", total)

                def measure_e2e() -> Section:
                    runs = asyncio.run(endtoend.alternating_rounds(
                        stack, sizes.e2e_events, sizes.e2e_users, sizes.e2e_rounds, tick))
                    return end_to_end_section(runs, sizes.e2e_users)

                sections["end_to_end"] = guarded("end_to_end", progress, measure_e2e)
            if "soak" in only:
                progress.step(f"soak: {sizes.soak_rate:g} msg/s for {sizes.soak_minutes:g} min…")
                sections["soak"] = guarded(
                    "soak",
                    progress,
                    lambda: soak_section(asyncio.run(soak(stack, sizes, progress)), sizes.soak_sample_seconds),
                )
        finally:
            progress.step("stopping the embedded stack…")
            stack.stop()
    return [sections[key] for key in wanted if key in sections]


def run_outbox(sizes: Sizes, progress: Progress) -> Section:
    rates: list[tuple[str, int, float]] = []
    enqueue: dict[str, tuple[float, float]] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        progress.step("outbox: starting a sandbox…")
        sandbox, sandbox_url = outbox_bench.start_sandbox(Path(tmp) / "sandbox")
        try:
            backends: dict[str, Callable[[], str]] = {
                "sqlite": lambda: f"sqlite:///{Path(tmp) / uuid.uuid4().hex}.sqlite3"
            }
            from tests.support.postgres import POSTGRES_URL, postgres_available

            if postgres_available():  # each run then gets a schema of its own
                backends["postgresql"] = lambda: outbox_bench.postgres_url(POSTGRES_URL) or ""
            else:
                notes.append("PostgreSQL not reachable: SQLite only")
            tick = progress.bar("outbox runs", 2 * len(backends))
            for name, make_url in backends.items():
                for workers in (1, 2):
                    rate = outbox_bench.throughput(
                        make_url(), sandbox_url, sizes.outbox_messages, sizes.outbox_recipients, workers
                    )
                    rates.append((name, workers, rate))
                    tick()
                enqueue[name] = outbox_bench.enqueue_latency(make_url(), 300)
        finally:
            sandbox.terminate()
            sandbox.wait()
    return outbox_section(rates, enqueue, sizes.outbox_messages, sizes.outbox_recipients, notes)


def run_retrieval(sizes: Sizes, progress: Progress) -> Section:
    from bench import knowledge as knowledge_bench

    progress.step("retrieval: loading the default embedder (torch; about 30 s)…")
    real = knowledge_bench.create_embedder(knowledge_bench.DEFAULT_SETTINGS.embedder)
    real.embed(["calentar el modelo"], role="query")
    rows = []
    tick = progress.bar("matrix sizes", len(sizes.retrieval_sizes))
    for size in sizes.retrieval_sizes:
        rows.append(knowledge_bench.retrieval_latency(real, size, sizes.retrieval_queries))
        tick()
    return retrieval_section(rows, sizes.retrieval_queries)


def run_reports(sizes: Sizes, progress: Progress) -> Section:
    from bench import reports as reports_bench

    progress.step(f"reports: writing {sizes.reports_days} days of {sizes.reports_per_day} messages a day…")
    figures = reports_bench.run(sizes.reports_days, sizes.reports_per_day, sizes.reports_handoffs,
                                sizes.reports_repeats, http=True, say=progress.step)
    filled, rows = figures[0], figures[1]
    timed_rows = []
    for figure in figures[2:]:
        what = f"GET /api/console/reports, {figure['days']} days" if figure["figure"].startswith("GET") else \
            f"Reports.build ({figure['part']}), {figure['days']} days"
        read = figure.get("rows_read") or {}
        timed_rows.append([what, ms(figure["p50_ms"]), ms(figure["p99_ms"]),
                           ", ".join(f"{name} {count:,}" for name, count in read.items()) or "-"])
    return Section(
        "reports",
        what=(f"{filled['days']} days of {filled['per_day']} customer messages and {filled['handoffs_per_day']} "
              f"handoffs a day written through the stores' own APIs ({filled['messages']:,} messages, "
              f"{filled['answers']:,} handled questions, {filled['sends']:,} sends, {filled['handoffs']:,} handoffs) "
              f"into a SQLite deployment; each report built {sizes.reports_repeats} times. Counter rows: "
              f"message_hours {rows['message_hours']:,}, send_hours {rows['send_hours']:,}, answer_hours "
              f"{rows['answer_hours']:,}, handoff_episodes {rows['handoff_episodes']:,}. See bench/reports.py."),
        table=Table(["report", "p50 ms", "p99 ms", "rows read"], timed_rows),
    )


def scale_unavailable() -> str | None:
    from tests.support.postgres import postgres_available
    from tests.support.scale import rabbitmq_available, redis_available

    checks = (("PostgreSQL", postgres_available), ("Redis", redis_available), ("RabbitMQ", rabbitmq_available))
    if missing := [name for name, available in checks if not available()]:
        return "the scale profile needs " + ", ".join(missing) + " (not reachable here)"
    return None


def run_profile(
    sizes: Sizes, progress: Progress, label: str, profile: str, rasa_instances: int
) -> tuple[ChannelRun, dict[str, float]]:
    """One stack of the profile: a warm-up, then our channel end to end (the REST run before it gives the pacing).
    The scale profile's stack uses its own schemas, Redis key prefix and RabbitMQ names, removed afterwards."""
    from tests.support.scale import scale_names

    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp, scale_names() as names:
        env = names.env(rasa_instances=rasa_instances, outbox_workers=2) if profile == "scale" else {}
        progress.step(f"{label}: starting the stack…")
        stack = start_stack(Path(tmp), env, REST_CREDENTIALS, profile=profile, rasa_instances=rasa_instances)
        try:
            asyncio.run(endtoend.side_by_side(stack, 20, 5))  # warm up
            tick = progress.bar(label, 2 * sizes.scale_events)
            _, ours = asyncio.run(endtoend.side_by_side(stack, sizes.scale_events, sizes.scale_users, tick))
            return ours, stack_rss(stack)
        finally:
            stack.stop()


def run_scale(sizes: Sizes, only: set[str], progress: Progress) -> list[Section]:
    wanted = [key for key in ("profiles", "rasa_instances") if key in only]
    if not wanted:
        return []
    if why := scale_unavailable():
        return [not_run(key, why) for key in wanted]
    runs: dict[str, ChannelRun] = {}
    memory: dict[str, dict[str, float]] = {}
    what = (
        f"Our channel end to end (closed loop, {sizes.scale_events} messages, {sizes.scale_users} conversations; "
        "as in the end-to-end section) on a stack of each kind, one after the other."
    )

    def measure(label: str, **options: Any) -> None:
        runs[label], memory[label] = run_profile(sizes, progress, label, **options)

    sections = []
    if "profiles" in only:

        def profiles() -> Section:
            measure("embedded", profile="embedded", rasa_instances=1)
            measure("scale, 1 Rasa", profile="scale", rasa_instances=1)
            return compare_section(
                "profiles",
                {k: runs[k] for k in ("embedded", "scale, 1 Rasa")},
                what + " Scale: PostgreSQL (journal, outbox, Rasa's tracker), Redis lock store, RabbitMQ event broker.",
                "profiles.png",
                "Embedded vs scale profile",
                {k: memory[k] for k in ("embedded", "scale, 1 Rasa")},
            )

        sections.append(guarded("profiles", progress, profiles))
    if "rasa_instances" in only:

        def instances() -> Section:
            if "scale, 1 Rasa" not in runs:
                measure("scale, 1 Rasa", profile="scale", rasa_instances=1)
            measure("scale, 2 Rasa", profile="scale", rasa_instances=2)
            return compare_section(
                "rasa_instances",
                {k: runs[k] for k in ("scale, 1 Rasa", "scale, 2 Rasa")},
                what + f" The machine has {os.cpu_count()} cores for every process of the stack.",
                "rasa_instances.png",
                "1 vs 2 Rasa instances (scale profile)",
                {k: memory[k] for k in ("scale, 1 Rasa", "scale, 2 Rasa")},
            )

        sections.append(guarded("rasa_instances", progress, instances))
    return sections


@contextlib.contextmanager
def timed(progress: Progress, what: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    progress.step(f"{what} done in {time.monotonic() - started:.0f} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes and a 1-minute soak (development, smoke)")
    parser.add_argument("--soak-minutes", type=float, help="soak length (default 10; 1 with --quick)")
    parser.add_argument("--soak-rate", type=float, help="messages per second during the soak (default 5)")
    parser.add_argument("--only", help="comma-separated sections to run (default: all); the others say not run")
    parser.add_argument(
        "--out", type=Path, help="folder of REPORT.md and the charts (default bench/, var/bench-quick/ with --quick)"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    if args.soak_minutes is not None:
        sizes = Sizes(**{**sizes.__dict__, "soak_minutes": args.soak_minutes})
    if args.soak_rate is not None:
        sizes = Sizes(**{**sizes.__dict__, "soak_rate": args.soak_rate})
    from bench.reporting import SECTIONS

    keys = [key for key, _ in SECTIONS]
    only = set(keys) if not args.only else {key.strip() for key in args.only.split(",")}
    if unknown := only - set(keys):
        parser.error(f"unknown sections: {', '.join(sorted(unknown))} (known: {', '.join(keys)})")
    out_dir = args.out or (ROOT / "var" / "bench-quick" if args.quick else ROOT / "bench")
    command = "bench/report.py " + shlex.join(list(argv if argv is not None else sys.argv[1:]))
    progress = Progress()
    machine = machine_facts(sizes, command.strip())
    progress.step(f"benchmark report: {', '.join(k for k in keys if k in only)} → {out_dir / 'REPORT.md'}")
    sections: list[Section] = []
    with timed(progress, "embedded stack sections"):
        sections += guarded_many(
            ["webhook", "end_to_end", "memory", "soak"], only, progress, lambda: run_embedded(sizes, only, progress)
        )
    if "outbox" in only:
        with timed(progress, "outbox"):
            sections.append(guarded("outbox", progress, lambda: run_outbox(sizes, progress)))
    if "retrieval" in only:
        with timed(progress, "retrieval"):
            sections.append(guarded("retrieval", progress, lambda: run_retrieval(sizes, progress)))
    if "reports" in only:
        with timed(progress, "reports"):
            sections.append(guarded("reports", progress, lambda: run_reports(sizes, progress)))
    with timed(progress, "scale profile sections"):
        sections += guarded_many(
            ["profiles", "rasa_instances"], only, progress, lambda: run_scale(sizes, only, progress)
        )
    machine = Machine(machine.facts, machine.load_before, os.getloadavg())
    report = write_report(out_dir, machine, sections, command.strip())
    progress.step(f"wrote {report} and its charts")
    print(report.read_text(encoding="utf-8"))
    return 0


def guarded_many(
    keys: list[str], only: set[str], progress: Progress, measure: Callable[[], list[Section]]
) -> list[Section]:
    """A stack that does not even start: each of its sections says so."""
    if not only.intersection(keys):
        return []
    try:
        return measure()
    except Exception as exc:  # noqa: BLE001 - the other sections still run
        progress.step(f"failed: {type(exc).__name__}: {exc}")
        traceback.print_exc(file=sys.stderr)
        return [not_run(key, f"failed ({type(exc).__name__}: {str(exc)[:300]})") for key in keys if key in only]


if __name__ == "__main__":
    sys.exit(main())
