"""The pure parts of process supervision and of the doors between processes (no services)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actions.server import is_authorized
from bot.rasa_launcher import rasa_argv
from bot.stack import RESTART_CAP_SECONDS, Supervisor, restart_delay
from connectors.outage import MAX_POLL_SECONDS, decide_during_outage
from core.exposure import ExposureError, check_action_server_exposure
from core.hosts import is_loopback_host
from core.settings import SettingsError
from handoff.rasa_api import rasa_jwt


def test_restart_delay_doubles_up_to_the_cap() -> None:
    assert [restart_delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


@given(st.integers(min_value=1, max_value=10_000))
def test_restart_delay_never_shrinks_and_is_capped(crashes: int) -> None:
    assert restart_delay(crashes) <= restart_delay(crashes + 1) <= RESTART_CAP_SECONDS


@given(st.floats(min_value=0, max_value=1000), st.floats(min_value=0.1, max_value=600), st.integers(0, 50))
def test_an_outage_wait_never_passes_the_bound(down_for: float, bound: float, polls: int) -> None:
    decision = decide_during_outage(down_for, bound, polls)
    if down_for >= bound:
        assert decision.gives_up
    else:
        assert decision.wait_seconds is not None
        assert 0 < decision.wait_seconds <= min(MAX_POLL_SECONDS, bound - down_for)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_needs_no_token(host: str) -> None:
    assert is_loopback_host(host)
    check_action_server_exposure(host, "")


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.5", "::", "actions.internal"])
def test_an_open_action_server_refuses_to_start_without_a_token(host: str) -> None:
    with pytest.raises(ExposureError, match="ACTION_SERVER_TOKEN"):
        check_action_server_exposure(host, "  ")
    check_action_server_exposure(host, "a-long-random-token")


def test_the_action_server_takes_the_token_only_as_a_bearer_header() -> None:
    token = "s3cret-token"
    assert is_authorized("/webhook", {"authorization": f"Bearer {token}"}, token)
    assert not is_authorized("/webhook", {}, token)
    assert not is_authorized("/webhook", {"authorization": "Bearer wrong"}, token)
    assert not is_authorized("/webhook", {"authorization": token}, token)
    assert not is_authorized("/actions", {"authorization": f"Basic {token}"}, token)
    assert is_authorized("/health", {}, token), "health says ok and nothing else"


def test_the_jwt_is_hs256_signed_with_the_secret_and_expires() -> None:
    token = rasa_jwt("the-secret", now=1_000_000.0, lifetime_seconds=300)
    header, payload, signature = token.split(".")
    expected = hmac.new(b"the-secret", f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "==") == expected
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    assert claims["exp"] == 1_000_300 and claims["user"]["role"] == "admin"
    assert json.loads(base64.urlsafe_b64decode(header + "=="))["alg"] == "HS256"


def test_the_rasa_launcher_puts_the_secret_in_process_only() -> None:
    argv = rasa_argv(["--model", "m.tar.gz", "--enable-api"], "the-secret")
    assert argv[:2] == ["rasa", "run"] and argv[argv.index("--jwt-secret") + 1] == "the-secret"
    for refused in (["--auth-token", "x"], ["--jwt-secret=x"]):
        with pytest.raises(SettingsError):
            rasa_argv(refused, "the-secret")
    with pytest.raises(SettingsError, match="empty"):
        rasa_argv([], " ")


class FakeProcess:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode


class FakeStack:
    """What the supervisor uses of a `Stack`: its processes, `spawn` and the log directory. After start-up, spawn
    raises (no memory to fork, a missing interpreter) the next `failures` times."""

    def __init__(self, failures: int = 0) -> None:
        from pathlib import Path

        self.log_dir = Path("/var/log/bot")
        self.spawned = 0
        self.failures = 0
        self.processes: dict[str, FakeProcess] = {}
        for name in ("app", "actions", "rasa"):
            self.spawn(name)
        self.failures = failures

    def spawn(self, name: str) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError(12, "Cannot allocate memory")
        self.spawned += 1
        self.processes[name] = FakeProcess(1000 + self.spawned)


def test_the_supervisor_restarts_only_the_dead_process_with_a_growing_delay() -> None:
    now = [0.0]
    lines: list[str] = []
    stack = FakeStack()
    supervisor = Supervisor(stack, say=lines.append, clock=lambda: now[0])  # type: ignore[arg-type]
    app, rasa = stack.processes["app"], stack.processes["rasa"]

    stack.processes["actions"].returncode = -9
    supervisor.check()
    assert lines == ["error: the action server exited with -9; see /var/log/bot/actions.log. "
                     "Restarting it in 1 s (crash 1 in a row)."]
    now[0] = 0.5
    supervisor.check()
    assert stack.processes["actions"].returncode == -9, "not before its delay"
    now[0] = 1.0
    supervisor.check()
    assert stack.processes["actions"].returncode is None and lines[-1].startswith("Restarted the action server")
    assert (stack.processes["app"], stack.processes["rasa"]) == (app, rasa), "the others were left alone"

    stack.processes["actions"].returncode = 1  # dies again at once: twice the delay
    now[0] = 2.0
    supervisor.check()
    assert "Restarting it in 2 s (crash 2 in a row)" in lines[-1]
    now[0] = 4.0
    supervisor.check()
    now[0] = 4.0 + 200  # up long enough to count as recovered
    supervisor.check()
    stack.processes["actions"].returncode = 1
    supervisor.check()
    assert "Restarting it in 1 s (crash 1 in a row)" in lines[-1]


def test_a_restart_that_cannot_spawn_is_said_and_tried_again_with_backoff() -> None:
    """Review: an OSError from spawning escaped `Supervisor.check` and `bot run` stopped everything."""
    now = [0.0]
    lines: list[str] = []
    stack = FakeStack(failures=2)
    supervisor = Supervisor(stack, say=lines.append, clock=lambda: now[0])  # type: ignore[arg-type]
    app, rasa = stack.processes["app"], stack.processes["rasa"]
    stack.processes["actions"].returncode = -9
    supervisor.check()  # the crash: restart in 1 s
    now[0] = 1.0
    supervisor.check()  # the spawn fails: said, rescheduled
    assert lines[-1].startswith("error: restarting the action server failed (OSError")
    assert "Trying again in 2 s (crash 2 in a row)" in lines[-1], lines[-1]
    now[0] = 2.5
    supervisor.check()
    assert len(lines) == 2, "not before its delay"
    now[0] = 3.0
    supervisor.check()  # fails again: a longer delay
    assert f"Trying again in {restart_delay(3):.0f} s (crash 3 in a row)" in lines[-1]
    now[0] = 3.0 + restart_delay(3)
    supervisor.check()
    assert lines[-1] == "Restarted the action server (pid 1004)." and supervisor.restarts["actions"] == 1
    assert (stack.processes["app"], stack.processes["rasa"]) == (app, rasa), "the others were left alone"
