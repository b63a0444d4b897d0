"""End to end, per message, side by side: our channel against Rasa's REST channel on the same stack and model.

Both run the same plan the same way (closed loop): U conversations at once, each user sending the next message
once the bot answered the previous one, as people chat. So both keep U messages in flight and the per-message
latencies compare:

- REST: the POST to `/webhooks/rest/webhook` until its answer (the replies are in it);
- ours: the signed webhook POST until the sandbox recorded the last reply to that message. Which reply belongs
  to which message is exact, afterwards: the outbox keys every reply `reply:<page>:message:<mid>[…]:<n>`
  (connectors/messenger.py) and holds the Graph message id the sandbox answered with; the sandbox's record of that
  id has its arrival time. While running, the next message waits for as many replies as the REST run got at the
  same position of the same plan (same model, same history), so the pacing needs no store.

Usage (a stack of its own): .venv/bin/python bench/endtoend.py [--events 500] [--users 50] [--rounds N]
       [--profile DIR [--gil]] [--fsyncs DIR] [--env NAME=VALUE …] [--rest-unplaced]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.reporting import latency_summary  # noqa: E402
from bench.workload import plan  # noqa: E402
from bot.stack import available_cpus, cpu_placement  # noqa: E402
from core.settings import DEMO_APP_SECRET, SANDBOX_PAGE_ID, load_settings  # noqa: E402
from outbox.model import MessageFilter, OutboxMessage  # noqa: E402
from outbox.store import open_store  # noqa: E402
from sandbox import simulate  # noqa: E402
from tests.support.stack import start_stack  # noqa: E402

REPLY_TIMEOUT_SECONDS = 60.0


@dataclass
class ChannelRun:
    latencies_ms: list[float]
    elapsed_s: float
    messages: int
    replies_by_position: dict[int, int] = field(default_factory=dict)  # REST: most common reply count per position
    unmatched: int = 0  # ours: messages whose replies could not be tied to them afterwards
    cpu: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds in the run (CpuMeter)

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.elapsed_s if self.elapsed_s else 0.0

    def summary(self) -> dict[str, float]:
        return {**latency_summary(self.latencies_ms), "msg_per_s": self.messages_per_s}


def conversations(messages: list[tuple[str, str]]) -> dict[str, list[str]]:
    """The plan as each user's messages, in order."""
    by_user: dict[str, list[str]] = {}
    for user, text in messages:
        by_user.setdefault(user, []).append(text)
    return by_user


def client_session(connections: int, timeout: float) -> aiohttp.ClientSession:
    """The bench's HTTP client, the same for both channels: aiohttp, one kept connection per user. (httpx, used
    before, walks its whole pool on every request: with 50 users that was most of the client's CPU, which on two
    cores is taken from the channel being measured, more from ours, whose client also follows the sandbox.)"""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout),
        connector=aiohttp.TCPConnector(limit=connections),
    )


async def rest_closed_loop(stack: Any, messages: list[tuple[str, str]], on_message: Any = None) -> ChannelRun:
    by_user = conversations(messages)
    latencies: list[float] = []
    counts: dict[int, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    async with client_session(len(by_user) + 1, REPLY_TIMEOUT_SECONDS) as client:

        async def conversation(user: str, texts: list[str]) -> None:
            for position, text in enumerate(texts):
                started = time.perf_counter()
                async with client.post(
                    stack.rasa_url + "/webhooks/rest/webhook", json={"sender": user, "message": text}
                ) as answer:
                    answer.raise_for_status()
                    replies = await answer.json()
                latencies.append((time.perf_counter() - started) * 1000)
                counts[position][len(replies)] += 1
                if on_message:
                    on_message()

        started = time.perf_counter()
        await asyncio.gather(*(conversation(user, texts) for user, texts in by_user.items()))
        elapsed = time.perf_counter() - started
    replies = {position: counter.most_common(1)[0][0] for position, counter in counts.items()}
    return ChannelRun(latencies, elapsed, len(messages), replies_by_position=replies)


class SentWatcher:
    """Follows the sandbox's record of sends and counts the message replies (not sender actions) each recipient got.

    A long poll on its own connection (`GET /sandbox/sent?after=<seq>&wait=<s>`): the sandbox answers as soon as
    something new is recorded, and the watcher asks again `linger` seconds later, so a busy run costs at most one
    request per `linger` whatever its message rate, and a quiet one almost nothing. (It used to ask every 20 ms
    through the conversations' pool of 50 connections: its requests then cost the machine more CPU than a third
    of what Rasa's REST channel spends per message, CPU that ours was charged for and REST was not.) The latencies
    come from the sandbox's own `received_at`, never from when the watcher saw a send."""

    def __init__(self, app_url: str, linger: float = 0.05, wait: float = 5.0) -> None:
        self.client: aiohttp.ClientSession | None = None
        self.app_url = app_url
        self.linger = linger
        self.wait = wait
        self.after = 0
        self.replies: collections.Counter[str] = collections.Counter()
        self.arrivals: dict[str, datetime] = {}  # Graph message id -> when the sandbox received it
        self.changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.client = client_session(1, self.wait + 30.0)
        records = await self._sent({})
        self.after = max((record["seq"] for record in records), default=0)
        self._task = asyncio.create_task(self._follow())

    async def stop_following(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def stop(self) -> None:
        await self.stop_following()
        if self.client is not None:
            await self.client.close()
            self.client = None

    async def _sent(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        assert self.client is not None, "start() first"
        async with self.client.get(self.app_url + "/sandbox/sent", params=params) as answer:
            answer.raise_for_status()
            records: list[dict[str, Any]] = await answer.json()
        return records

    async def poll_once(self, wait: float = 0.0) -> None:
        params: dict[str, Any] = {"after": self.after}
        if wait:
            params["wait"] = wait
        records = await self._sent(params)
        if not records:
            return
        for record in records:
            self.after = max(self.after, record["seq"])
            if "message" in record["body"]:
                self.replies[record["recipient_id"]] += 1
                if message_id := record["response"].get("message_id"):
                    self.arrivals[message_id] = datetime.fromisoformat(record["received_at"])
        async with self.changed:
            self.changed.notify_all()

    async def _follow(self) -> None:
        while True:
            await self.poll_once(self.wait)
            await asyncio.sleep(self.linger)

    async def wait_for(self, user: str, count: int, timeout: float) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: self.replies[user] >= count), timeout)


def outbox_messages(stack: Any, users: list[str]) -> list[OutboxMessage]:
    """Every outbox message to these users (read from the stack's outbox store, whichever it is)."""
    url = load_settings(stack.env).outbox_store_url
    store = open_store(url() if callable(url) else url)
    try:
        return [message for user in users for message in store.find(MessageFilter(recipient_id=user, limit=10_000))]
    finally:
        store.close()


def reply_arrivals(stack: Any, users: list[str], arrivals: dict[str, datetime]) -> dict[str, datetime]:
    """mid -> when the sandbox received the last reply to it (from the outbox's keys and Graph message ids)."""
    last: dict[str, datetime] = {}
    prefix = f"reply:{SANDBOX_PAGE_ID}:message:"
    for message in outbox_messages(stack, users):
        if not message.idempotency_key.startswith(prefix):
            continue
        mid = message.idempotency_key[len(prefix) :].split(":", 1)[0]
        at = arrivals.get(message.graph_message_id or "") or message.sent_at
        if at is not None and (mid not in last or at > last[mid]):
            last[mid] = at
    return last


async def ours_closed_loop(
    stack: Any, messages: list[tuple[str, str]], replies_by_position: dict[int, int], on_message: Any = None
) -> ChannelRun:
    by_user = conversations(messages)
    posted: dict[str, float] = {}  # mid -> wall clock of the POST's start
    async with client_session(len(by_user) + 1, REPLY_TIMEOUT_SECONDS) as client:
        watcher = SentWatcher(stack.app_url)
        await watcher.start()

        async def conversation(user: str, texts: list[str]) -> None:
            expected = watcher.replies[user]
            for position, text in enumerate(texts):
                mid = simulate.new_mid()
                body = simulate.webhook_body(SANDBOX_PAGE_ID, [simulate.text_message(SANDBOX_PAGE_ID, user, text, mid)])
                raw, headers = simulate.signed_request(body, DEMO_APP_SECRET)
                posted[mid] = time.time()
                async with client.post(stack.webhook_url, data=raw, headers=headers) as answer:
                    answer.raise_for_status()
                expected += replies_by_position.get(position, 1)
                try:
                    await watcher.wait_for(user, expected, REPLY_TIMEOUT_SECONDS)
                except TimeoutError as exc:
                    raise RuntimeError(
                        f"no reply to {user}'s message {position + 1} ({text!r}) within {REPLY_TIMEOUT_SECONDS:.0f} s "
                        f"through our channel; see {stack.log_dir}"
                    ) from exc
                if on_message:
                    on_message()

        started = time.perf_counter()
        try:
            await asyncio.gather(*(conversation(user, texts) for user, texts in by_user.items()))
            elapsed = time.perf_counter() - started
            await asyncio.sleep(0.3)  # the last replies' records
            await watcher.stop_following()  # its long poll holds the one connection: ended before the last look
            await watcher.poll_once()
        finally:
            await watcher.stop()
    last = reply_arrivals(stack, list(by_user), watcher.arrivals)
    latencies = [(last[mid].timestamp() - at) * 1000 for mid, at in posted.items() if mid in last]
    return ChannelRun(latencies, elapsed, len(messages), unmatched=len(posted) - len(latencies))


def cpu_seconds(pid: int, children: bool = True) -> float:
    """User + system CPU time of a process and (`children`) its waited-for children so far (psutil), 0 when it is
    gone."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system + ((times.children_user + times.children_system) if children else 0.0)


def process_tree(pid: int) -> list[psutil.Process]:
    """A process and everything it started, as long as they run (empty when it is gone)."""
    try:
        process = psutil.Process(pid)
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return []


def thread_cpu_seconds(pid: int, tid: int) -> float:
    """User + system CPU time of one thread of a process so far (psutil), 0 when it is gone."""
    try:
        threads = psutil.Process(pid).threads()
    except psutil.Error:
        return 0.0
    return next((thread.user_time + thread.system_time for thread in threads if thread.id == tid), 0.0)


class CpuMeter:
    """CPU seconds each process of the stack (and this bench, the client and Meta's stand-in) spent in one phase."""

    def __init__(self, stack: Any) -> None:
        self.pids = {name: process.pid for name, process in stack.processes.items()} | {"bench client": os.getpid()}
        self.rasa = stack.processes["rasa"].pid
        self.started = {name: self._cpu(name, pid) for name, pid in self.pids.items()}
        self.rasa_loop_started = thread_cpu_seconds(self.rasa, self.rasa)

    @staticmethod
    def _cpu(name: str, pid: int) -> float:
        # The bench's own children are the profilers (`--profile`), not the client's work.
        return cpu_seconds(pid, children=name != "bench client")

    def spent(self) -> dict[str, float]:
        spent = {name: self._cpu(name, pid) - self.started[name] for name, pid in self.pids.items()}
        # Rasa's event loop (its main thread) apart: every turn's Python work is there, one at a time.
        spent["rasa's loop"] = thread_cpu_seconds(self.rasa, self.rasa) - self.rasa_loop_started
        return spent


def print_cpu(phase: str, spent: dict[str, float], messages: int) -> None:
    parts = ", ".join(f"{name} {seconds * 1000 / messages:.1f}" for name, seconds in spent.items())
    total = sum(seconds for name, seconds in spent.items() if name != "rasa's loop")
    print(f"CPU ms per message, {phase}: {parts}; total {total * 1000 / messages:.1f}")


class RasaProfile:
    """py-spy on the Rasa process for one phase (`--profile DIR`): DIR/<phase>.txt, collapsed stacks ("a;b;c N"),
    which `bench/profile_diff.py` compares phase against phase; the app and this bench (every thread, half the
    rate) in DIR/<phase>-app.txt and DIR/<phase>-client.txt. Nothing when py-spy is not installed. The profilers
    take CPU too: the msg/s of a profiled run are lower than a plain run's."""

    def __init__(self, stack: Any, directory: Path | None, phase: str, gil: bool = False) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.others: list[subprocess.Popen[bytes]] = []
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if directory is None or not Path(spy).exists():
            if directory is not None:
                print("py-spy not found (pip install py-spy): no profile", file=sys.stderr)
            return
        directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [spy, "record", "--pid", str(stack.processes["rasa"].pid), "--format", "raw", "--rate", "200",
             "--nonblocking", *(["--gil"] if gil else []), "--output", str(directory / f"{phase}.txt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.others = [subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "100", "--threads",
             "--nonblocking", *(["--gil"] if gil else []), "--output", str(directory / f"{phase}-{name}.txt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ) for name, pid in (("app", stack.processes["app"].pid), ("client", os.getpid()),
                            *((("feeder", stack.processes["feeder"].pid),) if "feeder" in stack.processes else ()))]
        time.sleep(1.0)  # attached before the first message

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=60)
            for other in self.others:
                other.send_signal(signal.SIGINT)
                other.wait(timeout=60)


FSYNC_LINE = re.compile(r"\b(fsync|fdatasync)\(\d+<([^>]*)>")


def fsync_counts(trace: Path) -> collections.Counter[str]:
    """`strace -f -y` output -> calls per "<call> <file name>" (`fdatasync outbox.sqlite3-wal`); other lines
    (unfinished calls resumed, signals, exits) are not counted twice or at all."""
    counts: collections.Counter[str] = collections.Counter()
    for line in trace.read_text(encoding="utf-8", errors="replace").splitlines():
        if "resumed>" in line:
            continue
        if match := FSYNC_LINE.search(line):
            counts[f"{match.group(1)} {Path(match.group(2)).name}"] += 1
    return counts


class SyncTrace:
    """strace on every process of the stack for one phase (`--fsyncs DIR`): DIR/<phase>-<process>.strace, each
    fsync and fdatasync with the file it flushed, so a phase's durable writes per message show per process and file
    (`print_fsyncs`). Nothing when strace is not installed. strace slows what it traces: a traced run's msg/s are not
    a plain run's."""

    def __init__(self, stack: Any, directory: Path | None, phase: str) -> None:
        self.tracers: dict[str, subprocess.Popen[bytes]] = {}
        self.files: dict[str, Path] = {}
        strace = shutil.which("strace")
        if directory is None or strace is None:
            if directory is not None:
                print("strace not found (apt-get install strace): no fsync counts", file=sys.stderr)
            return
        directory.mkdir(parents=True, exist_ok=True)
        for name, process in stack.processes.items():
            pids = [member.pid for member in process_tree(process.pid)]
            if not pids:
                print(f"fsyncs: {name} is not running, not traced", file=sys.stderr)
                continue
            self.files[name] = directory / f"{phase}-{name}.strace"
            with open(directory / f"{phase}-{name}.err", "wb") as errors:
                self.tracers[name] = subprocess.Popen(
                    [strace, "-f", "-y", "-e", "trace=fsync,fdatasync", "-o", str(self.files[name]),
                     *(argument for pid in pids for argument in ("-p", str(pid)))],
                    stdout=subprocess.DEVNULL, stderr=errors,
                )
        time.sleep(1.0)  # attached before the first message
        for name, tracer in list(self.tracers.items()):
            if tracer.poll() is not None:  # e.g. not allowed to attach (ptrace_scope, a container without the right)
                print(f"fsyncs: strace could not follow {name} (see {directory / f'{phase}-{name}.err'}): "
                      "its counts are missing, not zero", file=sys.stderr)
                del self.tracers[name]

    def stop(self) -> dict[str, collections.Counter[str]]:
        """Detach; the calls per process and file, for the processes strace followed."""
        for tracer in self.tracers.values():
            tracer.send_signal(signal.SIGINT)
        for tracer in self.tracers.values():
            tracer.wait(timeout=60)
        return {name: fsync_counts(self.files[name]) for name in self.tracers if self.files[name].exists()}


def print_fsyncs(phase: str, counts: dict[str, collections.Counter[str]], messages: int) -> None:
    total = sum(sum(per_file.values()) for per_file in counts.values())
    print(f"fsyncs per message, {phase}: {total / messages:.2f}")
    for name, per_file in counts.items():
        if per_file:
            parts = ", ".join(f"{key} {calls / messages:.2f}" for key, calls in per_file.most_common())
            print(f"  {name}: {parts}")


class PhasePlacement:
    """`--rest-unplaced`: Rasa's REST channel measured as its users run it, every process free to run on every CPU,
    and ours as RASA_CPUS places it (bot/stack.py `cpu_placement`), switched before each phase on the same stack.
    The stack itself starts unplaced (RASA_CPUS=off), so Rasa sizes its thread pools (TensorFlow's, from the CPUs it
    may use at start) as REST's users get them; ours then runs those pools on Rasa's placed CPUs, which can only
    cost ours. Every thread of every process (and of what it started) is moved: threads inherit their creator's."""

    def __init__(self, spec: str) -> None:
        placement = cpu_placement(spec, available_cpus(), 1)
        if placement is None:
            raise SystemExit(f"--rest-unplaced compares with ours placed by RASA_CPUS, and RASA_CPUS={spec} places "
                             "nothing here (add --env RASA_CPUS=auto; a single CPU has nothing to place)")
        self.placement = placement
        self.stack: Any = None

    def _move(self, cpus_of: Callable[[str], frozenset[int]]) -> None:
        for name, process in self.stack.processes.items():
            for member in process_tree(process.pid):
                try:
                    threads = member.threads()
                except psutil.Error:  # ended meanwhile (a zombie child, say): the others are still moved
                    continue
                for thread in threads:
                    with contextlib.suppress(OSError):  # a thread that ended meanwhile
                        os.sched_setaffinity(thread.id, cpus_of(name))

    def rest(self) -> None:
        self._move(lambda _name: self.placement.rasa | self.placement.others)

    def ours(self) -> None:
        self._move(lambda name: self.placement.of(name, self.stack.rasa_names))


async def side_by_side(
    stack: Any, events: int, users: int, on_message: Any = None, profile: Path | None = None, gil: bool = False,
    fsyncs: Path | None = None, placement: PhasePlacement | None = None,
) -> tuple[ChannelRun, ChannelRun]:
    """REST first (it also tells how many replies each position gets), then ours, on the same plan's shape."""
    spy, trace = RasaProfile(stack, profile, "rest", gil), SyncTrace(stack, fsyncs, "rest")
    try:
        rest = await measured_rest(stack, events, users, on_message, placement)
    finally:
        spy.stop()
        rest_fsyncs = trace.stop()
    spy, trace = RasaProfile(stack, profile, "ours", gil), SyncTrace(stack, fsyncs, "ours")
    try:
        ours = await measured_ours(stack, events, users, rest.replies_by_position, on_message, placement)
    finally:
        spy.stop()
        ours_fsyncs = trace.stop()
    if fsyncs is not None:
        print_fsyncs("rasa REST", rest_fsyncs, rest.messages)
        print_fsyncs("ours", ours_fsyncs, ours.messages)
    return rest, ours


async def alternating_rounds(
    stack: Any, events: int, users: int, rounds: int, on_message: Any = None, on_round: Any = None,
    placement: PhasePlacement | None = None,
) -> list[tuple[ChannelRun, ChannelRun]]:
    """`rounds` pairs on one stack, the order alternating (REST then ours, then ours then REST, …) so a drift of the
    machine over the run (another process, a warming cache, a growing store) weighs on both channels alike. Ours
    paces itself on the last REST round's reply counts (the same model answers the same plan the same way).
    `on_round(number, rest, ours)` after each pair."""
    runs: list[tuple[ChannelRun, ChannelRun]] = []
    replies: dict[int, int] = {}
    for number in range(rounds):
        if number % 2 == 0 or not replies:
            rest, ours = await side_by_side(stack, events, users, on_message, placement=placement)
        else:
            ours = await measured_ours(stack, events, users, replies, on_message, placement)
            rest = await measured_rest(stack, events, users, on_message, placement)
        replies = rest.replies_by_position
        runs.append((rest, ours))
        if on_round:
            on_round(number + 1, rest, ours)
    return runs


def print_round(number: int, rest: ChannelRun, ours: ChannelRun) -> None:
    print(f"round {number} ({'REST first' if number % 2 else 'ours first'}): REST {rest.messages_per_s:.2f} msg/s, "
          f"ours {ours.messages_per_s:.2f} msg/s, ours / REST {time_ratio(rest, ours):.3f}", flush=True)


def pooled(runs: Sequence[ChannelRun]) -> ChannelRun:
    """Several runs of one channel as one: every latency, the time and messages summed (msg/s over all of them)."""
    cpu: collections.Counter[str] = collections.Counter()
    for run in runs:
        cpu.update(run.cpu)
    return ChannelRun(
        [latency for run in runs for latency in run.latencies_ms],
        sum(run.elapsed_s for run in runs),
        sum(run.messages for run in runs),
        unmatched=sum(run.unmatched for run in runs),
        cpu=dict(cpu),
    )


def round_ratios(runs: Sequence[tuple[ChannelRun, ChannelRun]]) -> tuple[list[float], float]:
    """Each round's time per message ours / REST, in order, and the pooled ratio (all rounds' time per message)."""
    rest, ours = pooled([pair[0] for pair in runs]), pooled([pair[1] for pair in runs])
    return [time_ratio(*pair) for pair in runs], time_ratio(rest, ours)


async def measured_rest(
    stack: Any, events: int, users: int, on_message: Any = None, placement: PhasePlacement | None = None
) -> ChannelRun:
    """One closed-loop run through Rasa's REST channel, with the CPU each process spent in it."""
    if placement is not None:
        placement.rest()
    meter = CpuMeter(stack)
    rest = await rest_closed_loop(stack, plan(events, users, f"e2e-rest-{time.time_ns()}"), on_message)
    rest.cpu = meter.spent()
    return rest


async def measured_ours(
    stack: Any, events: int, users: int, replies_by_position: dict[int, int], on_message: Any = None,
    placement: PhasePlacement | None = None,
) -> ChannelRun:
    """One closed-loop run through our channel, paced on REST's reply counts, with the CPU each process spent."""
    if placement is not None:
        placement.ours()
    meter = CpuMeter(stack)
    ours = await ours_closed_loop(
        stack, plan(events, users, f"e2e-ours-{time.time_ns()}"), replies_by_position, on_message
    )
    ours.cpu = meter.spent()
    return ours


def time_ratio(rest: ChannelRun, ours: ChannelRun) -> float:
    """Time per message, ours over REST (above 1: ours is slower); NaN when ours answered nothing."""
    return rest.messages_per_s / ours.messages_per_s if ours.messages_per_s else float("nan")


def print_rounds(runs: list[tuple[ChannelRun, ChannelRun]]) -> None:
    ratios, pooled_ratio = round_ratios(runs)
    print(f"time per message, ours / REST over {len(runs)} rounds: median {statistics.median(ratios):.3f}, pooled "
          f"{pooled_ratio:.3f} ({(pooled_ratio - 1) * 100:+.1f}%), range {min(ratios):.3f}–{max(ratios):.3f}")
    for name, channel in (("rasa REST", pooled([rest for rest, _ in runs])), ("ours", pooled([o for _, o in runs]))):
        print_cpu(f"{name}, all rounds", channel.cpu, channel.messages)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--profile", type=Path, default=None,
                        help="py-spy the Rasa process in each phase: DIR/rest.txt and DIR/ours.txt (collapsed stacks)")
    parser.add_argument("--gil", action="store_true",
                        help="with --profile: sample each process only while it holds the GIL (its CPU)")
    parser.add_argument("--fsyncs", type=Path, default=None, metavar="DIR",
                        help="strace every process in each phase (DIR/<phase>-<process>.strace) and print the fsyncs "
                             "per message of each process and file")
    parser.add_argument("--rest-unplaced", action="store_true",
                        help="with --env RASA_CPUS=…: REST's phases with every process on every CPU (as REST runs "
                             "without the setting), ours' as RASA_CPUS places them")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment of the stack's processes (both channels run on it); repeatable")
    parser.add_argument("--rounds", type=int, default=1,
                        help="pairs of runs, in alternating order, with per-round ratios, their median and the "
                             "pooled ratio (the machine's noise shows in their range); not with --profile")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds wants a whole number of at least 1, not {args.rounds}")
    if args.rounds > 1 and (args.profile is not None or args.fsyncs is not None):
        parser.error("--profile and --fsyncs trace one round: use them without --rounds")
    if bad := [item for item in args.env if "=" not in item]:
        parser.error(f"--env wants NAME=VALUE, not {bad[0]!r}")
    extra_env = dict(item.split("=", 1) for item in args.env)
    placement = PhasePlacement(extra_env.get("RASA_CPUS", "off")) if args.rest_unplaced else None
    if placement is not None:
        extra_env["RASA_CPUS"] = "off"  # the stack starts unplaced; ours' phases are placed by PhasePlacement
    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(Path(tmp), extra_env or None, credentials="bench/credentials-rest.yml")
        try:
            if placement is not None:
                placement.stack = stack
            await side_by_side(stack, 20, 5, placement=placement)  # warm up both paths
            if args.rounds > 1:
                runs = await alternating_rounds(stack, args.events, args.users, args.rounds, on_round=print_round,
                                                placement=placement)
            else:
                runs = [await side_by_side(stack, args.events, args.users, profile=args.profile, gil=args.gil,
                                            fsyncs=args.fsyncs, placement=placement)]
        finally:
            stack.stop()
    if len(runs) > 1:
        print_rounds(runs)
        return
    rest, ours = runs[0]
    for name, run in (("rasa REST", rest), ("ours", ours)):
        s = run.summary()
        print(
            f"{name:9s}: {s['msg_per_s']:.1f} msg/s, p50 {s['p50']:.0f} ms, p90 {s['p90']:.0f} ms, "
            f"p99 {s['p99']:.0f} ms, max {s['max']:.0f} ms"
        )
    print(f"time per message, ours / REST: {time_ratio(rest, ours):.3f}")
    for name, run in (("rasa REST", rest), ("ours", ours)):
        print_cpu(name, run.cpu, run.messages)


if __name__ == "__main__":
    asyncio.run(main())
