"""Start, supervise and stop the three processes: Rasa (3.10 env), the action server and the app (3.11 env).

Used by `bot run` (what `make run` calls), by the integration tests and by the benchmark, so
all three start the stack the same way. `Supervisor` restarts a process that died (exponential backoff,
capped) without stopping the others.

Ports and tokens: the app and Rasa listen on 127.0.0.1; the action server on `ACTION_SERVER_HOST` (default
127.0.0.1) and always with a token (`ACTION_SERVER_TOKEN`, or a random one per start). Rasa's API secret
(`RASA_API_TOKEN`) reaches Rasa through the environment (`bot/rasa_launcher.py`), never its command line.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

from bot.profile import (
    EMBEDDED_ENDPOINTS,
    endpoints_file,
    extra_rasa_ports,
    feeder_names,
    feeder_of,
    outbox_worker_names,
    rasa_endpoints_env,
    rasa_instance_id,
    rasa_names,
)
from core.hosts import client_host
from core.settings import ROOT, format_cpu_list, load_settings, parse_cpu_list

logger = logging.getLogger(__name__)

RASA_BIN = ROOT / ".venv-rasa" / "bin" / "rasa"
RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"
SERVED_CREDENTIALS = "credentials.yml"  # our Messenger channel only; never Rasa's unauthenticated REST channel
# What each start-up step usually takes on a laptop (said before the step, so a wait is never a mystery).
USUAL_START_SECONDS = {"app": 5, "actions": 5, "webhook": 2, "rasa": 40, "feeder": 2, "outbox": 2, "knowledge": 30}
APP_GRACEFUL_SHUTDOWN_SECONDS = 5  # open console pages hold uvicorn's graceful stop; deploy/ says the same
LABELS = {"app": "the app", "actions": "the action server", "webhook": "the webhook", "rasa": "Rasa",
          "knowledge": "the demo matrix"}
TRAINING_INPUTS = ("config.yml", "domain.yml", "data")
DEMO_MATRIX = ROOT / "data" / "knowledge_matrix.csv"


# The processes that keep the default priority when RASA_NICENESS is set: the webhook answers Meta within
# milliseconds while Rasa's CPU-bound turns (and everything that follows them) take the rest of the cores.
UNNICED = ("webhook",)


class StackError(RuntimeError):
    """A process of the stack did not start; the message says which and where its log is."""


@dataclass(frozen=True)
class CpuPlacement:
    """Which CPUs Rasa's processes run on and which the others do (RASA_CPUS), never the same ones."""

    rasa: frozenset[int]
    others: frozenset[int]

    def of(self, name: str, rasa_processes: list[str]) -> frozenset[int]:
        return self.rasa if name in rasa_processes else self.others

    def describe(self) -> str:
        return (f"Rasa on CPU {format_cpu_list(self.rasa)}, the other processes on CPU "
                f"{format_cpu_list(self.others)} (RASA_CPUS)")


def cpu_placement(spec: str, available: frozenset[int], rasa_instances: int) -> CpuPlacement | None:
    """RASA_CPUS against the CPUs this process may use (`os.sched_getaffinity`: a container's or a cgroup's share).

    Rasa's event loop runs every turn's Python work one at a time on one CPU; placed by the kernel beside the other
    processes (the app, the webhook, the feeder, the action server), it is preempted by their work and each turn
    takes longer (issue 11: a load of a third of a CPU elsewhere slowed Rasa's REST channel by 16 %, and not at all
    once Rasa had a CPU of its own). "auto" gives Rasa half of the CPUs rounded down, raised to one per instance as
    long as one CPU stays for the others (several instances may then share one), and the others the rest; with a
    single CPU there is nothing to separate (None). A list: Rasa gets those, the others the rest. Lowest-numbered
    CPUs first: where the numbering puts hyperthread siblings half a machine apart, Rasa's CPUs and the others'
    share physical cores (a list can choose otherwise).
    Only a CPU set (taskset, a container's cpuset) narrows `available`; a CPU quota does not."""
    if spec == "off":
        return None
    if not hasattr(os, "sched_setaffinity"):
        raise StackError(f"RASA_CPUS={spec} places processes on CPUs, which only Linux lets a program do: "
                         "set RASA_CPUS=off on this system")
    cpus = available
    if spec == "auto":
        if len(cpus) < 2:
            return None
        share = min(len(cpus) - 1, max(rasa_instances, len(cpus) // 2))
        ordered = sorted(cpus)
        return CpuPlacement(frozenset(ordered[:share]), frozenset(ordered[share:]))
    wanted = parse_cpu_list(spec)
    if not wanted <= cpus:
        raise StackError(f"RASA_CPUS={spec} names CPU {format_cpu_list(wanted - cpus)}, which this machine does not "
                         f"give the bot (it may use CPU {format_cpu_list(cpus)})")
    if not cpus - wanted:
        raise StackError(f"RASA_CPUS={spec} leaves no CPU for the other processes (this machine gives the bot CPU "
                         f"{format_cpu_list(cpus)}): name fewer, or set RASA_CPUS=off")
    return CpuPlacement(wanted, cpus - wanted)


def available_cpus() -> frozenset[int]:
    """The CPUs this process may run on (all of them where the system cannot say)."""
    try:
        return frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return frozenset(range(os.cpu_count() or 1))


def training_fingerprint(root: Path = ROOT) -> str:
    """Hash of everything `rasa train` reads: retrain only when it changed."""
    digest = hashlib.sha256()
    for name in TRAINING_INPUTS:
        path = root / name
        files = sorted(path.rglob("*.yml")) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(root)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def ensure_model(models_dir: Path = ROOT / "models", log=print) -> Path:
    """Train into models/<fingerprint>.tar.gz unless that model already exists."""
    fingerprint = training_fingerprint()
    model = models_dir / f"{fingerprint}.tar.gz"
    if model.exists():
        log(f"Rasa model up to date ({model.name}).")
        return model
    log("Training data changed: training the Rasa model (about a minute)…")
    models_dir.mkdir(parents=True, exist_ok=True)
    command = [str(RASA_BIN), "train", "--fixed-model-name", fingerprint, "--out", str(models_dir)]
    env = {
        **os.environ,
        "ACTION_SERVER_URL": os.environ.get("ACTION_SERVER_URL", "http://127.0.0.1:5055/webhook"),
        "ACTION_SERVER_TOKEN": os.environ.get("ACTION_SERVER_TOKEN") or "unused-while-training",
    }
    result = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0 or not model.exists():
        raise StackError("rasa train failed:\n" + result.stdout[-4000:])
    return model


def _pinned_to(cpus: frozenset[int]) -> Callable[[], None]:
    """Run in the child between fork and exec (`preexec_fn`, which CPython allows with its caveats in a program
    that starts no threads of its own, as `bot run`). A CPU that went away since the check leaves the child where
    it is: `_spawn` then says so instead of failing the start or the restart."""
    def pin() -> None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, cpus)
    return pin


def renice(pid: int, niceness: int) -> None:
    """Lower a freshly started child's priority by `niceness`, with every thread and process of its group (the
    stack starts each child in a session of its own, so its group is the child and what it starts). Threads the
    child starts later inherit it. Relative to this process's own niceness (capped at 19, the lowest priority);
    raising a niceness needs no privilege.

    With the kernel's autogroup scheduling (`/proc/sys/kernel/sched_autogroup_enabled`, on in most desktop and VM
    kernels) a process's niceness only ranks it within its session's group, and every session (each child here has
    its own) weighs the same against the others: the session's group gets the niceness too (`/proc/<pid>/autogroup`),
    or Rasa would still take its even share from the webhook."""
    target = min(19, os.getpriority(os.PRIO_PROCESS, 0) + niceness)
    try:
        os.setpriority(os.PRIO_PGRP, pid, target)
    except ProcessLookupError:  # it exited at once: the supervisor says so and restarts it
        return
    autogroup = Path(f"/proc/{pid}/autogroup")
    try:
        autogroup.write_text(str(target))
    except FileNotFoundError:  # no autogroup in this kernel (or the child is gone): the niceness above is enough
        pass
    except OSError as exc:  # e.g. a read-only /proc: the process niceness still applies within the group
        logger.warning("could not lower the scheduling group's priority of pid %d: %s", pid, exc)


@dataclass
class Ports:
    rasa: int = 5005
    actions: int = 5055
    app: int = 8000
    webhook: int = 5006  # the webhook process (Meta's deliveries, connectors/webhook_server.py)
    rasa_extra: tuple[int, ...] = ()  # the scale profile's "rasa-2", "rasa-3" … (bot/profile.py)


@dataclass
class Stack:
    ports: Ports
    data_dir: Path
    model: Path
    env: dict[str, str]
    log_dir: Path
    credentials: str = SERVED_CREDENTIALS
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    endpoints: str = EMBEDDED_ENDPOINTS  # endpoints-scale.yml in the scale profile
    outbox_workers: int = 0  # standalone `python -m outbox worker` processes ("outbox-1", …)
    niceness: int = 0  # RASA_NICENESS: every process but the webhook's (`UNNICED`) runs this much nicer
    feeders: bool = False  # MESSENGER_FEEDER=process: a feeder process beside each Rasa instance ("feeder", …)
    cpus: CpuPlacement | None = None  # RASA_CPUS: Rasa's processes on CPUs of their own (`cpu_placement`)

    @property
    def rasa_names(self) -> list[str]:
        return rasa_names(1 + len(self.ports.rasa_extra))

    @property
    def outbox_worker_names(self) -> list[str]:
        return outbox_worker_names(self.outbox_workers)

    @property
    def feeder_names(self) -> list[str]:
        return feeder_names(self.rasa_names) if self.feeders else []

    @property
    def process_names(self) -> list[str]:
        """The long-running processes, in start order."""
        return ["app", "actions", "webhook", *self.rasa_names, *self.feeder_names, *self.outbox_worker_names]

    def rasa_port(self, name: str) -> int:
        return ([self.ports.rasa, *self.ports.rasa_extra])[self.rasa_names.index(name)]

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.rasa}"

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.app}"

    @property
    def actions_url(self) -> str:
        return f"http://{client_host(self.env.get('ACTION_SERVER_HOST') or '127.0.0.1')}:{self.ports.actions}"

    @property
    def webhook_base_url(self) -> str:
        return f"http://{client_host(self.env.get('WEBHOOK_HOST') or '127.0.0.1')}:{self.ports.webhook}"

    @property
    def webhook_url(self) -> str:
        """The URL to give Meta: the webhook process, not Rasa (which is fed from the journal)."""
        return self.webhook_base_url + "/webhooks/messenger/webhook"

    def env_for(self, name: str) -> dict[str, str]:
        """A process's environment. Each Rasa process (or, with MESSENGER_FEEDER=process, each feeder) owns its
        journal claims as "<host>:<name>": the same after a restart, and distinct from the "rasa" of another host's
        `bot run` on the same database (two owners of one name would share claims). A feeder drives its own Rasa."""
        if name in self.rasa_names:
            return {**self.env, "RASA_INSTANCE_ID": rasa_instance_id(name)}
        if name in self.feeder_names:
            return {**self.env, "RASA_INSTANCE_ID": rasa_instance_id(name),
                    "RASA_URL": f"http://127.0.0.1:{self.rasa_port(feeder_of(name))}"}
        return self.env

    def _spawn(self, name: str, command: list[str]) -> None:
        env = self.env_for(name)
        cpus = self.cpus.of(name, self.rasa_names) if self.cpus is not None else None
        with open(self.log_dir / f"{name}.log", "ab") as log:  # the child keeps its own copy
            process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                # Set in the child before it runs anything, so every thread it starts inherits it.
                preexec_fn=_pinned_to(cpus) if cpus is not None else None,
            )
        self.processes[name] = process
        if cpus is not None:
            self._check_placed(name, process.pid, cpus)
        if self.niceness and name not in UNNICED:
            renice(process.pid, self.niceness)

    def _check_placed(self, name: str, pid: int, wanted: frozenset[int]) -> None:
        try:
            placed = frozenset(os.sched_getaffinity(pid))
        except OSError:  # it exited at once: the supervisor says so and restarts it
            return
        if placed != wanted:
            logger.warning("%s runs on CPU %s, not on CPU %s as RASA_CPUS asked (the CPUs this machine gives the bot "
                           "changed since it started?)", label(name), format_cpu_list(placed), format_cpu_list(wanted))

    def _wait_healthy(self, name: str, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                raise StackError(f"{name} exited with {process.returncode}; see {self.log_dir / (name + '.log')}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise StackError(f"{name} not healthy at {url} after {timeout:.0f} s; see {self.log_dir / (name + '.log')}")

    def command(self, name: str) -> list[str]:
        """The command line of each long-running process (no secret on any of them: they read the environment)."""
        python = sys.executable
        if name in self.outbox_worker_names:
            return [python, "-m", "outbox", "worker", "--id", name]
        if name in self.feeder_names:
            return [str(RASA_PYTHON), "-m", "connectors.feeder"]
        if name in self.rasa_names:
            return [str(RASA_PYTHON), "-m", "bot.rasa_launcher", "--model", str(self.model),
                    "--port", str(self.rasa_port(name)), "--credentials", self.credentials, "--endpoints",
                    self.endpoints, "--enable-api", "--interface", "127.0.0.1"]
        commands = {
            "app": [python, "-m", "uvicorn", "bot.app:create_app", "--factory", "--host", "127.0.0.1",
                    "--port", str(self.ports.app), "--log-level", "warning",
                    # A console page's event stream never ends by itself: a stop waits this long for it, not for ever.
                    "--timeout-graceful-shutdown", str(APP_GRACEFUL_SHUTDOWN_SECONDS),
                    # The client's address for the login limits: X-Forwarded-For, only from these proxies.
                    "--proxy-headers", "--forwarded-allow-ips",
                    self.env.get("BOT_FORWARDED_ALLOW_IPS") or "127.0.0.1"],  # so does console/auth.py login_client
            "actions": [python, "-m", "actions.server", "--port", str(self.ports.actions)],
            "webhook": [python, "-m", "connectors.webhook_server", "--port", str(self.ports.webhook)],
        }
        return commands[name]

    def health_url(self, name: str) -> str:
        if name in self.rasa_names:
            return f"http://127.0.0.1:{self.rasa_port(name)}/webhooks/messenger/"
        return {
            "app": self.app_url + "/health",
            "actions": self.actions_url + "/health",
            "webhook": self.webhook_base_url + "/health",
        }[name]

    def spawn(self, name: str) -> None:
        self._spawn(name, self.command(name))

    def is_healthy(self, name: str) -> bool:
        if name in self.outbox_worker_names or name in self.feeder_names:  # no port: alive is healthy
            process = self.processes.get(name)
            return process is not None and process.poll() is None
        try:
            return httpx.get(self.health_url(name), timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_healthy(self, name: str) -> None:
        """The app, the action server or the webhook, until its health check answers (a minute at most)."""
        self._wait_healthy(name, self.health_url(name), 60)

    def start_app(self) -> None:
        self.spawn("app")
        self.wait_healthy("app")

    def start_actions(self) -> None:
        self.spawn("actions")
        self.wait_healthy("actions")

    def start_webhook(self) -> None:
        self.spawn("webhook")
        self.wait_healthy("webhook")

    def start_rasa(self) -> None:
        """Every Rasa instance at once (each loads the model on its own), then each waited for."""
        self.spawn_rasa()
        self.wait_rasa()

    def spawn_rasa(self) -> None:
        for name in self.rasa_names:
            self.spawn(name)

    def wait_rasa(self) -> None:
        for name in self.rasa_names:
            self._wait_healthy(name, self.health_url(name), 240)

    def start_feeders(self, settle_seconds: float = 1.5) -> None:
        """Feeder processes (MESSENGER_FEEDER=process) have no port: started once their Rasa answers, and alive a
        moment later."""
        self._start_portless(self.feeder_names, settle_seconds)

    def start_outbox_workers(self, settle_seconds: float = 1.5) -> None:
        """Standalone workers have no port: started, and alive a moment later (a bad setting exits at once)."""
        self._start_portless(self.outbox_worker_names, settle_seconds)

    def _start_portless(self, names: list[str], settle_seconds: float) -> None:
        for name in names:
            self.spawn(name)
        deadline = time.monotonic() + settle_seconds
        while time.monotonic() < deadline:
            for name in names:
                process = self.processes[name]
                if process.poll() is not None:
                    raise StackError(f"{name} exited with {process.returncode}; see {self.log_dir / (name + '.log')}")
            time.sleep(0.1)

    def start_knowledge(self) -> None:
        """With nothing published yet, publish the demo matrix, so `make run` answers out of the box; never in
        production, where the editors' own matrix is the only one the bot may answer from. It runs while the
        other processes start (the action server picks the version up when it lands); see `wait_knowledge`."""
        if load_settings(self.env).is_production:  # only the editors' matrix: rebuilt if an upgrade outdated its index
            self._spawn("knowledge", [sys.executable, "-m", "knowledge_matrix", "upgrade"])
            return
        self._spawn(
            "knowledge",
            [sys.executable, "-m", "knowledge_matrix", "publish", str(DEMO_MATRIX), "--if-nothing-published",
             "--by", "demo"],
        )

    def wait_knowledge(self, timeout: float = 300) -> None:
        process = self.processes.pop("knowledge", None)
        if process is None:
            return
        production = load_settings(self.env).is_production
        try:
            # In production the editors' own matrix may be rebuilt (`knowledge_matrix upgrade`): as long as it takes.
            returncode = process.wait(timeout=None if production else timeout)
        except subprocess.TimeoutExpired as exc:
            os.killpg(process.pid, signal.SIGKILL)
            raise StackError(f"publishing the demo matrix took over {timeout:.0f} s; see {self.log_dir}") from exc
        if returncode != 0 and production:
            # The other processes keep running on the version that was live; the log says what to fix.
            logger.error("rebuilding the live knowledge matrix after the upgrade failed (%s); see %s", returncode,
                         self.log_dir / "knowledge.log")
        elif returncode != 0:
            raise StackError(f"publishing the demo matrix failed ({returncode}); see {self.log_dir / 'knowledge.log'}")

    def start(self, say: Callable[[str], None] = lambda _line: None) -> None:
        """Each step says what it starts and how long it usually takes, then how long it took."""
        # Every process is spawned at once (Rasa's model load is the long step; nothing of a process's start needs
        # another: Rasa's turns wait for the action server as after any outage), then each is waited for in turn.
        names = ("app", "actions", "webhook", "rasa")
        if self.cpus is not None:
            say(self.cpus.describe() + ".")
        self.start_knowledge()
        if "knowledge" in self.processes:
            say(f"Publishing the demo matrix in the background (about {USUAL_START_SECONDS['knowledge']} s)…")
        started = time.monotonic()
        for name in names:
            say(f"Starting {self.step_label(name)} (about {USUAL_START_SECONDS[name]} s)…")
            self.spawn_rasa() if name == "rasa" else self.spawn(name)
        for name in names:
            self.wait_rasa() if name == "rasa" else self.wait_healthy(name)
            say(f"  {self.step_label(name)} ready in {time.monotonic() - started:.0f} s.")
        if self.feeders:
            say(f"Starting {self.step_label('feeder')} (about {USUAL_START_SECONDS['feeder']} s)…")
            self.start_feeders()
            say(f"  {self.step_label('feeder')} ready in {time.monotonic() - started:.0f} s.")
        if self.outbox_workers:
            say(f"Starting {self.step_label('outbox')} (about {USUAL_START_SECONDS['outbox']} s)…")
            self.start_outbox_workers()
            say(f"  {self.step_label('outbox')} ready in {time.monotonic() - started:.0f} s.")
        if "knowledge" in self.processes:
            say("Waiting for the demo matrix…")
        self.wait_knowledge()

    def stop_process(self, name: str, kill: bool = False) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def step_label(self, name: str) -> str:
        if name == "rasa" and len(self.rasa_names) > 1:
            return f"{len(self.rasa_names)} Rasa instances"
        if name == "outbox":
            return f"{self.outbox_workers} outbox worker{'s' if self.outbox_workers > 1 else ''}"
        if name == "feeder":
            count = len(self.feeder_names)
            return f"{count} feeder process{'es' if count > 1 else ''}"
        return label(name)

    def stop(self) -> None:
        for name in ("knowledge", "webhook", *self.feeder_names, *self.outbox_worker_names, *reversed(self.rasa_names),
                     "actions", "app"):
            self.stop_process(name)


def label(name: str) -> str:
    """How a process is named to the operator: "the app", "Rasa (rasa-2)", "outbox worker outbox-1"."""
    if name in LABELS:
        return LABELS[name]
    if name.startswith("rasa-"):
        return f"Rasa ({name})"
    if name.startswith("outbox-"):
        return f"outbox worker {name}"
    if name.startswith("feeder"):
        return f"the feeder of {label(feeder_of(name))}"
    return name


def build_stack(
    ports: Ports,
    data_dir: Path,
    model: Path,
    extra_env: dict[str, str] | None = None,
    credentials: str = SERVED_CREDENTIALS,
) -> Stack:
    data_dir.mkdir(parents=True, exist_ok=True)
    log_dir = data_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    merged = {**os.environ, **(extra_env or {})}
    actions_host = client_host(merged.get("ACTION_SERVER_HOST") or "127.0.0.1")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BOT_DATA_DIR": str(data_dir),
        "RASA_URL": f"http://127.0.0.1:{ports.rasa}",
        "ACTION_SERVER_URL": f"http://{actions_host}:{ports.actions}/webhook",
        # Rasa sends it (endpoints.yml), the action server requires it: a fresh random one unless one is set.
        "ACTION_SERVER_TOKEN": merged.get("ACTION_SERVER_TOKEN") or secrets.token_urlsafe(32),
        "BOT_APP_URL": f"http://127.0.0.1:{ports.app}",
        "WEBHOOK_PORT": str(ports.webhook),
        "RASA_TRACKER_DB": str(data_dir / "rasa_tracker.sqlite3"),
        "RASA_TELEMETRY_ENABLED": "false",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **(extra_env or {}),
    }
    env["ACTION_SERVER_TOKEN"] = env["ACTION_SERVER_TOKEN"] or secrets.token_urlsafe(32)
    # The profile (bot/profile.py): which endpoints Rasa reads, and the variables endpoints-scale.yml needs.
    settings = load_settings(env)
    env.update(rasa_endpoints_env(settings))
    wanted = settings.rasa_instances - 1
    extra = ports.rasa_extra[:wanted] if len(ports.rasa_extra) >= wanted else extra_rasa_ports(
        ports.rasa, settings.rasa_instances)
    ports = replace(ports, rasa_extra=tuple(extra))
    return Stack(ports=ports, data_dir=data_dir, model=model, env=env, log_dir=log_dir, credentials=credentials,
                 endpoints=endpoints_file(settings), outbox_workers=settings.outbox_workers,
                 niceness=settings.rasa_niceness, feeders=settings.messenger_feeder == "process",
                 cpus=cpu_placement(settings.rasa_cpus, available_cpus(), settings.rasa_instances))


# --- supervision ---------------------------------------------------------------------------------------------

ONE_SHOT = ("knowledge",)  # runs once at start (the demo matrix), never restarted
RESTART_BASE_SECONDS = 1.0
RESTART_CAP_SECONDS = 60.0
STABLE_AFTER_SECONDS = 120.0  # a process up this long has recovered: its next crash starts the backoff again


def restart_delay(crashes_in_a_row: int, base: float = RESTART_BASE_SECONDS, cap: float = RESTART_CAP_SECONDS) -> float:
    """Pure: 1 s, 2 s, 4 s, … up to `cap` for the 1st, 2nd, 3rd … crash in a row."""
    return min(cap, base * 2 ** min(max(crashes_in_a_row - 1, 0), 30))  # the exponent is capped too: no overflow


@dataclass
class _Watch:
    started_at: float
    crashes_in_a_row: int = 0
    restart_at: float | None = None


class Supervisor:
    """Restarts a process of the stack that exited, after a growing delay; the others keep running."""

    def __init__(self, stack: Stack, say: Callable[[str], None] = print, clock: Callable[[], float] = time.monotonic):
        self.stack = stack
        self.say = say
        self.clock = clock
        now = clock()
        # Every long-running process of the profile (the Rasa instances and outbox workers too); not a one-shot job.
        self.watches = {name: _Watch(now) for name in stack.processes if name not in ONE_SHOT}
        self.restarts: dict[str, int] = {name: 0 for name in self.watches}

    def check(self) -> None:
        """One pass: notice exits, restart those whose delay is over."""
        now = self.clock()
        for name, watch in self.watches.items():
            process = self.stack.processes.get(name)
            if watch.restart_at is not None:
                if now >= watch.restart_at:
                    self._restart(name, watch, now)
                continue
            if process is None or process.poll() is None:
                if now - watch.started_at >= STABLE_AFTER_SECONDS:
                    watch.crashes_in_a_row = 0
                continue
            watch.crashes_in_a_row += 1
            delay = restart_delay(watch.crashes_in_a_row)
            watch.restart_at = now + delay
            self.say(
                f"error: {label(name)} exited with {process.returncode}; see {self.stack.log_dir / (name + '.log')}. "
                f"Restarting it in {delay:.0f} s (crash {watch.crashes_in_a_row} in a row)."
            )

    def _restart(self, name: str, watch: _Watch, now: float) -> None:
        """A restart that cannot even start (no memory for a fork, a missing interpreter, a full disk for the log)
        counts as one more crash: said, and tried again later; it never stops the others."""
        try:
            self.stack.spawn(name)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            watch.crashes_in_a_row += 1
            delay = restart_delay(watch.crashes_in_a_row)
            watch.restart_at = now + delay
            self.say(f"error: restarting {label(name)} failed ({type(exc).__name__}: {exc}). "
                     f"Trying again in {delay:.0f} s (crash {watch.crashes_in_a_row} in a row).")
            return
        watch.started_at, watch.restart_at = now, None
        self.restarts[name] += 1
        self.say(f"Restarted {label(name)} (pid {self.stack.processes[name].pid}).")

    def run(self, stopping: Callable[[], bool], every: float = 0.5) -> None:
        while not stopping():
            self.check()
            time.sleep(every)
