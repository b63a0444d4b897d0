"""Start and stop the three processes: Rasa (3.10 env), the action server and the app (3.11 env).

Used by `bot run` (what `make run` calls), by the integration tests and by the benchmark, so
all three start the stack the same way.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bot.settings import DEMO_RASA_TOKEN, ROOT, load_settings

RASA_BIN = ROOT / ".venv-rasa" / "bin" / "rasa"
TRAINING_INPUTS = ("config.yml", "domain.yml", "data")
DEMO_MATRIX = ROOT / "data" / "knowledge_matrix.csv"


class StackError(RuntimeError):
    """A process of the stack did not start; the message says which and where its log is."""


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
    env = {**os.environ, "ACTION_SERVER_URL": os.environ.get("ACTION_SERVER_URL", "http://127.0.0.1:5055/webhook")}
    result = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0 or not model.exists():
        raise StackError("rasa train failed:\n" + result.stdout[-4000:])
    return model


@dataclass
class Ports:
    rasa: int = 5005
    actions: int = 5055
    app: int = 8000


@dataclass
class Stack:
    ports: Ports
    data_dir: Path
    model: Path
    env: dict[str, str]
    log_dir: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.rasa}"

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.app}"

    @property
    def webhook_url(self) -> str:
        return self.rasa_url + "/webhooks/messenger/webhook"

    def _spawn(self, name: str, command: list[str]) -> None:
        with open(self.log_dir / f"{name}.log", "ab") as log:  # the child keeps its own copy
            self.processes[name] = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

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

    def start_app(self) -> None:
        python = sys.executable
        self._spawn(
            "app",
            [
                python,
                "-m",
                "uvicorn",
                "bot.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.ports.app),
                "--log-level",
                "warning",
            ],
        )
        self._wait_healthy("app", self.app_url + "/health", 60)

    def start_actions(self) -> None:
        self._spawn(
            "actions", [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(self.ports.actions)]
        )
        self._wait_healthy("actions", f"http://127.0.0.1:{self.ports.actions}/health", 60)

    def start_rasa(self) -> None:
        self._spawn(
            "rasa",
            [
                str(RASA_BIN),
                "run",
                "--model",
                str(self.model),
                "--port",
                str(self.ports.rasa),
                "--credentials",
                "credentials.yml",
                "--endpoints",
                "endpoints.yml",
                "--enable-api",
                "--auth-token",  # the app's handoff service calls Rasa's HTTP API with RASA_API_TOKEN
                self.env.get("RASA_API_TOKEN") or DEMO_RASA_TOKEN,
                "--interface",
                "127.0.0.1",
            ],
        )
        self._wait_healthy("rasa", self.rasa_url + "/webhooks/messenger/", 240)

    def start_knowledge(self) -> None:
        """With nothing published yet, publish the demo matrix, so `make run` answers out of the box; never in
        production, where the editors' own matrix is the only one the bot may answer from. It runs while the
        other processes start (the action server picks the version up when it lands); see `wait_knowledge`."""
        if load_settings(self.env).is_production:
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
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            os.killpg(process.pid, signal.SIGKILL)
            raise StackError(f"publishing the demo matrix took over {timeout:.0f} s; see {self.log_dir}") from exc
        if returncode != 0:
            raise StackError(f"publishing the demo matrix failed ({returncode}); see {self.log_dir / 'knowledge.log'}")

    def start(self) -> None:
        self.start_knowledge()
        self.start_app()
        self.start_actions()
        self.start_rasa()
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

    def stop(self) -> None:
        for name in ("knowledge", "rasa", "actions", "app"):
            self.stop_process(name)


def build_stack(ports: Ports, data_dir: Path, model: Path, extra_env: dict[str, str] | None = None) -> Stack:
    data_dir.mkdir(parents=True, exist_ok=True)
    log_dir = data_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BOT_DATA_DIR": str(data_dir),
        "RASA_URL": f"http://127.0.0.1:{ports.rasa}",
        "ACTION_SERVER_URL": f"http://127.0.0.1:{ports.actions}/webhook",
        "BOT_APP_URL": f"http://127.0.0.1:{ports.app}",
        "RASA_TRACKER_DB": str(data_dir / "rasa_tracker.sqlite3"),
        "RASA_TELEMETRY_ENABLED": "false",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **(extra_env or {}),
    }
    return Stack(ports=ports, data_dir=data_dir, model=model, env=env, log_dir=log_dir)
