"""Request sizes before any work, and the login limit per client address behind a proxy (issue 8, items 4 and 6),
over real HTTP: the app under uvicorn on a free port, driven with raw sockets where the order of bytes matters.

On the old code the console spooled a whole upload before checking who sent it (a 30 MB unauthenticated upload
was read, then 401), bodies had no limit at all, and every client behind a proxy shared the proxy's address.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from bot.app import create_app
from bot.request_guard import DEFAULT_BODY_LIMIT, MAX_UPLOAD_BYTES, MULTIPART_ENVELOPE_BYTES
from console.auth import ADDRESS_LIMIT, Authenticator
from console.store import ConsoleStore
from core.settings import Settings
from tests.support.servers import RunningServer, serve_asgi
from tests.unit.console.conftest import fast_hasher

UPLOAD = "/api/console/knowledge/drafts"
CHUNK = 16 * 1024


def make_app(data_dir: Path, environment: str = "development", forwarded_allow_ips: str = "127.0.0.1") -> object:
    app = create_app(Settings(data_dir=data_dir, environment=environment, forwarded_allow_ips=forwarded_allow_ips))
    store = app.state.console_auth.store
    app.state.console_auth = Authenticator(store, app.state.settings, hasher=fast_hasher())
    app.state.console_auth.add_user("ines", "editor", "ines-clave-segura-1")
    return app


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve_asgi(make_app(tmp_path_factory.mktemp("limits"))) as running:
        yield running


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_status(sock: socket.socket) -> tuple[int, bytes]:
    """The answer's status and bytes: the head, then the body its Content-Length announces (a loaded machine may
    deliver the body in a later packet than the head)."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    status = int(data.split(b" ", 2)[1])
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        piece = sock.recv(65536)
        if not piece:
            break
        body += piece
        data += piece
    return status, data


def send_until_answered(sock: socket.socket, chunks: Iterator[bytes], limit_bytes: int) -> tuple[int, int, bytes]:
    """Send body pieces until the server answers (or `limit_bytes` are sent): (status, bytes sent, answer)."""
    sent = 0
    for chunk in chunks:
        readable, _, _ = select.select([sock], [], [], 0.02)
        if readable:
            break
        try:
            sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            break  # the server answered and closed: read the answer
        sent += len(chunk)
        if sent >= limit_bytes:
            break
    status, answer = read_status(sock)
    return status, sent, answer


def multipart_head(total: int) -> dict[str, str]:
    return {"Content-Type": "multipart/form-data; boundary=xyz", "Content-Length": str(total)}


def test_an_unauthenticated_upload_is_refused_before_its_body_is_read(server: RunningServer) -> None:
    # 4 MB: under the upload limit, so only the missing credentials can refuse it, and before the body.
    total = 4 * 1024 * 1024
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(head("POST", UPLOAD, multipart_head(total)))
        status, sent, answer = send_until_answered(sock, iter(lambda: b"x" * CHUNK, None), total)
    assert status == 401, answer
    assert sent < total, f"the server answered only after all {total} bytes: it read the body first"
    assert b"not_authenticated" in answer


def test_a_30_mb_upload_is_refused_from_its_content_length(server: RunningServer) -> None:
    total = 30 * 1024 * 1024
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(head("POST", UPLOAD, multipart_head(total)))
        status, answer = read_status(sock)  # not one byte of the body sent
    assert status == 413, answer
    assert b"body_too_large" in answer


def test_a_fake_session_cookie_is_no_credential(server: RunningServer) -> None:
    total = 4 * 1024 * 1024
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(head("POST", UPLOAD, {**multipart_head(total), "Cookie": "console_session=made-up"}))
        status, sent, answer = send_until_answered(sock, iter(lambda: b"x" * CHUNK, None), total)
    assert status == 401 and sent < total, answer


def chunked(size: int, first: bytes = b"", chunk: int = CHUNK) -> Iterator[bytes]:
    if first:
        yield f"{len(first):x}\r\n".encode() + first + b"\r\n"
    piece = b"a" * chunk
    for _ in range(size // chunk):
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"


@pytest.mark.parametrize("path", ["/api/console/login", "/sandbox/chat/send", "/api/outbox"])
def test_a_chunked_json_body_is_cut_at_the_limit(server: RunningServer, path: str) -> None:
    total = 64 * 1024 * 1024  # far more than any socket buffer holds: an answer before the end is an early one
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    if path == "/api/outbox":
        headers["Authorization"] = "Bearer demo-service-token"
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(head("POST", path, headers))
        status, sent, answer = send_until_answered(sock, chunked(total), total)
    assert status == 413, answer
    assert sent < total
    assert f'"limit_bytes":{DEFAULT_BODY_LIMIT}'.encode() in answer


def test_a_json_body_over_the_limit_is_refused_from_its_content_length(server: RunningServer) -> None:
    answer = httpx.post(server.url("/api/console/login"), content=b"{" + b" " * DEFAULT_BODY_LIMIT + b"}",
                        headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    assert answer.json()["error"]["reason_code"] == "body_too_large"


def test_a_logged_in_editor_streaming_past_5_mb_is_cut_at_the_limit(server: RunningServer) -> None:
    with httpx.Client(base_url=server.base_url) as client:
        login = client.post("/api/console/login", json={"username": "ines", "password": "ines-clave-segura-1"})
        assert login.status_code == 200, login.text
        cookie = f"console_session={client.cookies['console_session']}"
        csrf = login.json()["csrf_token"]
    total = 64 * 1024 * 1024
    headers = {"Content-Type": "multipart/form-data; boundary=xyz", "Transfer-Encoding": "chunked",
               "Cookie": cookie, "X-CSRF-Token": csrf}
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(head("POST", UPLOAD, headers))
        part = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="m.csv"\r\n\r\npregunta,respuesta\n'
        status, sent, answer = send_until_answered(sock, chunked(total, part, 128 * 1024), total)
    assert status == 413, answer
    assert f'"limit_bytes":{MAX_UPLOAD_BYTES + MULTIPART_ENVELOPE_BYTES}'.encode() in answer
    assert sent < total


def test_a_small_legitimate_body_still_works(server: RunningServer) -> None:
    answer = httpx.post(server.url("/api/console/login"), json={"username": "ines", "password": "ines-clave-segura-1"})
    assert answer.status_code == 200


# --- the per-address login limit behind a proxy ----------------------------------------------------------------


def fail_logins(base_url: str, forwarded_for: str | None, count: int, first: int = 0) -> list[int]:
    statuses = []
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    with httpx.Client(base_url=base_url) as client:
        for number in range(first, first + count):
            answer = client.post("/api/console/login", json={"username": f"nadie{number}", "password": "no-es"},
                                 headers=headers)
            statuses.append(answer.status_code)
    return statuses


def test_behind_a_trusted_proxy_two_clients_are_limited_independently(tmp_path: Path) -> None:
    # uvicorn --proxy-headers --forwarded-allow-ips=127.0.0.1: the proxy (this test, on 127.0.0.1) names the client.
    with serve_asgi(make_app(tmp_path, "test"), proxy_headers=True, forwarded_allow_ips="127.0.0.1") as running:
        first = fail_logins(running.base_url, "203.0.113.1", ADDRESS_LIMIT.max_failures + 1)
        second = fail_logins(running.base_url, "203.0.113.2", 1)
        # A client on the proxy's LAN is its own address too (uvicorn replaced the peer with it).
        lan = fail_logins(running.base_url, "192.168.7.1", ADDRESS_LIMIT.max_failures + 1, first=100)
    assert first == [401] * ADDRESS_LIMIT.max_failures + [429], first
    assert second == [401], "the second client was locked out by the first one's failures"
    assert lan == [401] * ADDRESS_LIMIT.max_failures + [429], lan


@pytest.mark.parametrize(
    ("uvicorn_options", "allow_ips", "forwarded_for", "warning"),
    [
        # The review's case: a proxy sends X-Forwarded-For but is not in BOT_FORWARDED_ALLOW_IPS (the same list
        # uvicorn gets), so uvicorn keeps the proxy's address as the peer. Old code: 429 for everyone.
        pytest.param({"forwarded_allow_ips": "10.9.9.9"}, "10.9.9.9", "203.0.113.1",
                     "is not in BOT_FORWARDED_ALLOW_IPS",
                     id="proxy-not-listed"),
        # Listed, but uvicorn started without --proxy-headers. Old code: 429 for everyone.
        pytest.param({"proxy_headers": False}, "127.0.0.1", "203.0.113.1", "listed in BOT_FORWARDED_ALLOW_IPS",
                     id="uvicorn-without-proxy-headers"),
        # No header at all (a guard: the old code already got this one right).
        pytest.param({}, "127.0.0.1", None, "without X-Forwarded-For", id="no-header"),
    ],
)
def test_a_proxy_whose_header_is_not_trusted_locks_nobody_out_across_usernames(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, uvicorn_options: dict[str, Any], allow_ips: str,
    forwarded_for: str | None, warning: str,
) -> None:
    """Every client behind such a proxy arrives as the proxy's address: one stranger's 25 failures across
    usernames must not lock out the next client (the per-username limit still holds), and the operator is told
    once, by name, which setting to fix."""
    caplog.set_level(logging.WARNING, logger="console.auth")
    app = make_app(tmp_path, "test", forwarded_allow_ips=allow_ips)
    with serve_asgi(app, **uvicorn_options) as running:
        stranger = fail_logins(running.base_url, forwarded_for, ADDRESS_LIMIT.max_failures + 5)
        other = fail_logins(running.base_url, forwarded_for and "203.0.113.2", 1, first=100)
        with httpx.Client(base_url=running.base_url) as client:
            ines = client.post("/api/console/login", json={"username": "ines", "password": "ines-clave-segura-1"},
                               headers={"X-Forwarded-For": forwarded_for} if forwarded_for else {})
    assert stranger == [401] * (ADDRESS_LIMIT.max_failures + 5), stranger
    assert other == [401], "another client behind the proxy was locked out by a stranger's failures"
    assert ines.status_code == 200, ines.text
    warnings = [r.getMessage() for r in caplog.records if "BOT_FORWARDED_ALLOW_IPS" in r.getMessage()]
    assert len(warnings) == 1 and warning in warnings[0] and "127.0.0.1" in warnings[0], warnings


# --- the verify-slot wait never holds the thread pool (issue 8 review, item 3) ----------------------------------


class GatedHasher(PasswordHasher):
    """Real (fast) argon2id whose verifies wait on a gate the test opens: two slow logins, held as long as needed."""

    def __init__(self) -> None:
        base = fast_hasher()
        super().__init__(time_cost=base.time_cost, memory_cost=base.memory_cost, parallelism=base.parallelism)
        self.gate = threading.Event()
        self.verifying = 0
        self.lock = threading.Lock()

    def verify(self, hash: Any, password: Any) -> bool:  # noqa: A002 - argon2's own parameter name
        with self.lock:
            self.verifying += 1
        self.gate.wait(60)
        return super().verify(hash, password)


class CountingStore(ConsoleStore):
    """Notes every username whose login reached the limits check: a login the server is working on."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._names_lock = threading.Lock()  # the server's threads add while the test reads
        self._names_checked: set[str] = set()

    def login_failures_since(self, key: str, since: Any) -> Any:
        with self._names_lock:
            self._names_checked.add(key.partition("|")[0])
        return super().login_failures_since(key, since)

    def names_checked(self) -> set[str]:
        with self._names_lock:
            return set(self._names_checked)


def test_forty_logins_waiting_for_a_verify_slot_leave_the_console_answering(tmp_path: Path) -> None:
    """Old code: each login waited for a verify slot inside a worker thread (`BoundedSemaphore.acquire`), so 40
    logins at once held all 40 threads and the session check of any other request (and every store call) waited
    behind them. Now a login waits on the event loop: while 40 are in flight (2 verifying, 38 waiting), a logged-in
    person's GET answers."""
    app = create_app(Settings(data_dir=tmp_path))
    store = CountingStore(tmp_path / "console-counting.sqlite3")
    hasher = GatedHasher()
    auth = Authenticator(store, app.state.settings, hasher=hasher, verify_wait_seconds=60)
    app.state.console_auth = auth
    auth.add_user("ines", "editor", "ines-clave-segura-1")
    burst = 40
    statuses: list[int] = []
    with serve_asgi(app) as running, httpx.Client(base_url=running.base_url, timeout=60) as person:
        hasher.gate.set()  # ines logs in first, with nothing in the way
        assert person.post("/api/console/login",
                           json={"username": "ines", "password": "ines-clave-segura-1"}).status_code == 200
        hasher.gate.clear()
        with hasher.lock:
            hasher.verifying = 0

        def attempt(number: int) -> None:
            answer = httpx.post(running.url("/api/console/login"), timeout=90,
                                json={"username": f"nadie{number}", "password": "no-es-la-clave"})
            statuses.append(answer.status_code)

        threads = [threading.Thread(target=attempt, args=(n,), daemon=True) for n in range(burst)]
        for thread in threads:
            thread.start()
        try:
            for _ in range(1000):  # until the server is working on every login (bounded: old code gets there too)
                if len({n for n in store.names_checked() if n.startswith("nadie")}) == burst and hasher.verifying == 2:
                    break
                time.sleep(0.01)
            assert hasher.verifying == 2 and not statuses, "expected 2 logins verifying and 38 waiting"
            try:
                me = person.get("/api/console/me", timeout=10)
            except httpx.TimeoutException:
                pytest.fail("an authenticated GET did not answer while 40 logins were waiting: the thread pool is "
                            "held by logins waiting for a verify slot")
            assert me.status_code == 200 and me.json()["user"]["username"] == "ines", me.text
            assert not statuses, "the GET answered while every login was still in flight"
        finally:
            hasher.gate.set()
            for thread in threads:
                thread.join(60)
    assert statuses == [401] * burst, statuses
    store.close()
