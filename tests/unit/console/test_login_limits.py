"""Login as a CPU/memory weapon (issue 8, item 6): a limit per address across usernames, and a cap on argon2id
verifies running at once.

On the old code 50 usernames from one address cost 50 verifies and none was refused (the limit was per
username), and any number of verifies ran at once.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from console.auth import ADDRESS_LIMIT, Authenticator, InvalidCredentials, LoginBusy, TooManyAttempts
from console.store import ConsoleStore
from core.settings import Settings
from tests.unit.console.conftest import Clock, console_app, fast_hasher

PASSWORD = "clave-muy-segura-1"


class CountingHasher(PasswordHasher):
    """The real (fast) argon2id hasher, counting verifies."""

    def __init__(self) -> None:
        base = fast_hasher()
        super().__init__(time_cost=base.time_cost, memory_cost=base.memory_cost, parallelism=base.parallelism)
        self.verifies = 0

    def verify(self, hash: Any, password: Any) -> bool:  # noqa: A002 - argon2's own parameter name
        self.verifies += 1
        return super().verify(hash, password)


def test_fifty_usernames_from_one_address_stop_at_the_address_limit(store: ConsoleStore, clock: Clock,
                                                                    tmp_path: Path) -> None:
    hasher = CountingHasher()
    auth = Authenticator(store, Settings(data_dir=tmp_path), hasher=hasher, clock=clock)
    auth.add_user("maria", "agent", PASSWORD)
    refused = 0
    for number in range(50):
        try:
            auth.login(f"usuario{number}", "no-es-la-clave", "203.0.113.9")
        except TooManyAttempts as exc:
            refused += 1
            assert "desde esta dirección" in exc.message_es
        except InvalidCredentials:
            pass
        clock.advance(seconds=1)
    assert hasher.verifies == ADDRESS_LIMIT.max_failures, "every guess past the address limit must cost no verify"
    assert refused == 50 - ADDRESS_LIMIT.max_failures
    # Even the right password from that address waits; another address is not affected.
    with pytest.raises(TooManyAttempts):
        auth.login("maria", PASSWORD, "203.0.113.9")
    assert auth.login("maria", PASSWORD, "198.51.100.7").principal.username == "maria"
    # The limit ends with its window.
    clock.advance(minutes=5)
    assert auth.login("maria", PASSWORD, "203.0.113.9").principal.username == "maria"


def test_a_login_that_finds_every_verify_slot_busy_gets_503_with_retry_after(tmp_path: Path, clock: Clock) -> None:
    env = console_app(tmp_path, clock)
    auth: Authenticator = env.app.state.console_auth
    busy = Authenticator(auth.store, auth.settings, hasher=fast_hasher(), clock=clock, verify_slots=2,
                         verify_wait_seconds=0)
    env.app.state.console_auth = busy
    # Two verifies in progress (held here, as two slow logins would hold them).
    assert busy.verify_slots.acquire(blocking=False) and busy.verify_slots.acquire(blocking=False)
    try:
        client = TestClient(env.app)
        answer = client.post("/api/console/login", json={"username": "admin", "password": "admin-clave-1"})
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["reason_code"] == "login_busy"
        assert int(answer.headers["retry-after"]) >= 1
        with pytest.raises(LoginBusy):
            busy.login("admin", "admin-clave-1", "10.0.0.1")
    finally:
        busy.verify_slots.release()
        busy.verify_slots.release()
    # Free again: the same login works, and a busy refusal counted no failure.
    assert busy.login("admin", "admin-clave-1", "10.0.0.1").principal.username == "admin"


def test_never_more_verifies_at_once_than_the_slots(store: ConsoleStore, clock: Clock, tmp_path: Path) -> None:
    running = 0
    most = 0
    lock = threading.Lock()

    class SlowHasher(CountingHasher):
        def verify(self, hash: Any, password: Any) -> bool:  # noqa: A002
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            try:
                gate.wait(5)
                return super().verify(hash, password)
            finally:
                with lock:
                    running -= 1

    gate = threading.Event()
    auth = Authenticator(store, Settings(data_dir=tmp_path), hasher=SlowHasher(), clock=clock, verify_slots=2,
                         verify_wait_seconds=10)
    outcomes: list[str] = []

    def attempt(number: int) -> None:
        try:
            auth.login(f"usuario{number}", "no-es-la-clave", f"10.0.0.{number}")
        except AuthErrors as exc:
            outcomes.append(type(exc).__name__)

    AuthErrors = (InvalidCredentials, TooManyAttempts)
    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    while True:  # wait until two verifies hold both slots (the other four wait for one)
        with lock:
            if running == 2:
                break
        time.sleep(0.01)
    gate.set()
    for thread in threads:
        thread.join(10)
    assert most == 2
    assert outcomes.count("InvalidCredentials") == 6
