"""The stack as `bot run` starts it: supervised, closed to other hosts, no secret on a command line.

On the old code `bot run` stopped everything when one process died, the action server listened on 0.0.0.0
without a token, and Rasa got `--auth-token <secret>` on its command line: each test below fails there.
One `python -m bot run` for the module (the real launcher, in its own process group).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from actions.session import AUTOMATION_DISCLOSURE
from core.settings import ROOT, SANDBOX_PAGE_ID
from handoff.rasa_api import rasa_auth_headers
from sandbox import simulate
from tests.conftest import require_or_skip
from tests.support.stack import free_port, rasa_available

ACTION_TOKEN = "test-action-token-" + uuid.uuid4().hex
RASA_SECRET = "test-rasa-secret-" + uuid.uuid4().hex


class BotRun:
    def __init__(self, data_dir: Path) -> None:
        self.ports = {"RASA_PORT": free_port(), "ACTION_PORT": free_port(), "APP_PORT": free_port(),
                      "WEBHOOK_PORT": free_port()}
        env = {**os.environ, "PYTHONPATH": str(ROOT), "BOT_DATA_DIR": str(data_dir),
               "ACTION_SERVER_TOKEN": ACTION_TOKEN, "RASA_API_TOKEN": RASA_SECRET,
               "RASA_URL": f"http://127.0.0.1:{self.ports['RASA_PORT']}",
               "BOT_APP_URL": f"http://127.0.0.1:{self.ports['APP_PORT']}",
               **{name: str(port) for name, port in self.ports.items()}}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, part: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(part in line for line in self.lines):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"no line with {part!r} from `bot run`:\n" + "\n".join(self.lines[-30:]))
            time.sleep(0.2)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"


def pids_listening_on(port: int) -> list[int]:
    """Processes whose command line names this port (`--port N`)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"--port" in argv and str(port).encode() in argv:
                found.append(int(entry.name))
    return found


def stack_command_lines(run: BotRun) -> list[bytes]:
    lines = []
    for port in run.ports.values():
        for pid in pids_listening_on(port):
            with contextlib.suppress(OSError):
                lines.append(Path(f"/proc/{pid}/cmdline").read_bytes())
    return lines


def non_loopback_address() -> str | None:
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return next((address for address in out if not address.startswith("127.") and ":" not in address), None)


@pytest.fixture(scope="module")
def bot_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotRun]:
    require_or_skip(rasa_available(), "the Rasa environment (.venv-rasa; run `make install`)")
    run = BotRun(Path(tmp_path_factory.mktemp("bot-run")))
    try:
        run.wait_for_line("Ready.", 300)
        yield run
    finally:
        if run.process.poll() is None:
            run.process.send_signal(signal.SIGINT)  # Ctrl-C
            try:
                run.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(run.process.pid, signal.SIGKILL)
                run.process.wait()
        assert run.process.stdout is not None
        run.process.stdout.close()


def is_up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def say(run: BotRun, user: str, text: str) -> None:
    raw, headers = simulate.signed_request(
        simulate.webhook_body(SANDBOX_PAGE_ID, [simulate.text_message(SANDBOX_PAGE_ID, user, text)]), "demo-app-secret"
    )
    answer = httpx.post(run.url("RASA_PORT") + "/webhooks/messenger/webhook", content=raw, headers=headers)
    assert answer.status_code == 200, answer.text


def texts_to(run: BotRun, user: str) -> list[str]:
    sent = httpx.get(run.url("APP_PORT") + "/sandbox/sent", params={"recipient_id": user}).json()
    return [item["body"]["message"].get("text", "") for item in sent if "message" in item["body"]]


def test_each_start_up_step_is_said_with_its_usual_duration(bot_run: BotRun) -> None:
    steps = ("Starting the app (about", "Starting the action server (about", "Starting Rasa (about")
    for step in steps:
        assert any(step in line for line in bot_run.lines), f"`bot run` says {step!r}…: {bot_run.lines[:12]}"


def test_a_killed_action_server_is_restarted_and_answers(bot_run: BotRun) -> None:
    port = bot_run.ports["ACTION_PORT"]
    [pid] = pids_listening_on(port)
    os.kill(pid, signal.SIGKILL)
    bot_run.wait_for_line("the action server exited with -9", 30)
    bot_run.wait_for_line("Restarted the action server", 30)
    assert any("actions.log" in line for line in bot_run.lines if "exited with -9" in line), "the log path is named"
    deadline = time.monotonic() + 60
    while not is_up(f"http://127.0.0.1:{port}/health"):
        assert time.monotonic() < deadline, "the action server came back"
        time.sleep(0.3)
    assert pids_listening_on(port) != [pid], "a new process"
    assert bot_run.process.poll() is None, "`bot run` kept running; the others were not stopped"
    user = f"psid-{uuid.uuid4().hex[:12]}"
    say(bot_run, user, "hola")  # a new user: action_session_start runs on the restarted server
    deadline = time.monotonic() + 60
    while AUTOMATION_DISCLOSURE not in texts_to(bot_run, user):
        assert time.monotonic() < deadline, f"answered after the restart: {texts_to(bot_run, user)}"
        time.sleep(0.3)


def test_the_action_server_is_closed_to_other_hosts_and_to_calls_without_the_token(bot_run: BotRun) -> None:
    port = bot_run.ports["ACTION_PORT"]
    address = non_loopback_address()
    if address is not None:
        for name, other in bot_run.ports.items():
            with socket.socket() as sock:
                sock.settimeout(3)
                assert sock.connect_ex((address, other)) != 0, f"{name} {other} is not reachable on {address}"
    call = {"next_action": "action_handoff", "sender_id": "someone", "tracker": {"sender_id": "someone"}}
    url = f"http://127.0.0.1:{port}/webhook"
    assert httpx.post(url, json=call).status_code == 401, "no token: refused before any action runs"
    assert httpx.post(url, json=call, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.post(url, json=call, params={"token": ACTION_TOKEN}).status_code == 401, "header only"
    assert httpx.get(f"http://127.0.0.1:{port}/actions").status_code == 401
    listed = httpx.get(f"http://127.0.0.1:{port}/actions", headers={"Authorization": f"Bearer {ACTION_TOKEN}"})
    assert listed.status_code == 200 and "action_handoff" in listed.text, "Rasa's token opens it"


def test_the_action_server_caps_bodies_and_refuses_a_missing_token_before_the_body(bot_run: BotRun) -> None:
    """Sanic's cap (8 MiB, actions/server.py) instead of its 100 MB default: 413 even with the token; without
    the token 401, decided before the body is read. On the old code both were 500 (rasa-sdk maps every
    exception to 500, and the token was checked after buffering the whole body)."""
    url = f"http://127.0.0.1:{bot_run.ports['ACTION_PORT']}/webhook"
    oversized = b"{" + b" " * (9 * 1024 * 1024) + b"}"
    with httpx.Client(timeout=60) as http:
        too_big = http.post(url, content=oversized, headers={"Authorization": f"Bearer {ACTION_TOKEN}",
                                                             "Content-Type": "application/json"})
        assert too_big.status_code == 413, too_big.text
        refused = http.post(url, content=oversized, headers={"Content-Type": "application/json"})
        assert refused.status_code == 401 and "token" in refused.json()["error"], refused.text
        bad_json = http.post(url, content=b"{", headers={"Authorization": f"Bearer {ACTION_TOKEN}"})
        assert bad_json.status_code == 400, f"a clear 4xx, never a 500: {bad_json.status_code} {bad_json.text}"


def test_no_secret_on_any_command_line_and_rasa_takes_only_a_jwt(bot_run: BotRun) -> None:
    lines = stack_command_lines(bot_run)
    assert len(lines) >= 3, "found the stack's processes"
    for line in lines:
        assert RASA_SECRET.encode() not in line and ACTION_TOKEN.encode() not in line, line
        assert b"--auth-token" not in line
    url = bot_run.url("RASA_PORT") + "/conversations/someone/tracker"
    assert httpx.get(url, params={"token": RASA_SECRET}).status_code == 401
    assert httpx.get(url, headers=rasa_auth_headers(RASA_SECRET)).status_code == 200
    logs = "".join(path.read_text(errors="replace") for path in Path(
        next(line for line in bot_run.lines if "Logs:" in line).split("Logs:")[1].strip()).glob("*.log"))
    assert RASA_SECRET not in logs and ACTION_TOKEN not in logs, "no token in any log"


def test_ctrl_c_stops_every_process(bot_run: BotRun) -> None:
    """Last in the module: Ctrl-C (SIGINT to `bot run`) stops the three processes, none is restarted."""
    assert all(pids_listening_on(port) for port in bot_run.ports.values()), "all three run before"
    restarts_before = sum(line.startswith("Restarted") for line in bot_run.lines)
    bot_run.process.send_signal(signal.SIGINT)
    assert bot_run.process.wait(timeout=60) == 0
    time.sleep(0.5)  # the reader thread takes the last lines
    assert sum(line.startswith("Restarted") for line in bot_run.lines) == restarts_before, "none restarted"
    assert "Stopping…" in bot_run.lines
    assert [port for port in bot_run.ports.values() if pids_listening_on(port)] == [], "nothing left running"
