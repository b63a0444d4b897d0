"""Run an ASGI app on a free local port in a background thread: real HTTP for integration tests.

    with serve_asgi(app) as server:
        httpx.get(server.url("/health"))

The socket is bound before the thread starts (port 0, so the OS picks a free port and no other
test can take it in between), and `serve_asgi` returns only once uvicorn accepts connections.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn


class ServerStartError(RuntimeError):
    """The app did not start serving in time (or its thread died first)."""


@dataclass(frozen=True)
class RunningServer:
    host: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)


def free_socket(host: str = "127.0.0.1") -> socket.socket:
    """A listening-ready TCP socket on a port the OS chose."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


def start_asgi(app: Any, *, host: str = "127.0.0.1", startup_timeout: float = 15.0, **config: Any) -> RunningServer:
    """Start `app` in a daemon thread; stop it with `stop_asgi`. Extra keywords go to `uvicorn.Config`."""
    sock = free_socket(host)
    port = sock.getsockname()[1]
    # An open stream (a console page's events) holds a graceful shutdown for ever: cut after 2 s, as `bot run` does.
    options: dict[str, Any] = {"log_level": "warning", "lifespan": "auto", "ws": "none", "access_log": False,
                               "timeout_graceful_shutdown": 2}
    options.update(config)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"asgi-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            sock.close()
            raise ServerStartError(f"the server thread on port {port} exited before it started serving")
        if time.monotonic() > deadline:
            server.should_exit = True
            thread.join(5)
            sock.close()
            raise ServerStartError(f"the server on port {port} did not start within {startup_timeout} s")
        time.sleep(0.01)
    return RunningServer(host, port, server, thread)


def stop_asgi(running: RunningServer, timeout: float = 10.0) -> None:
    running.server.should_exit = True
    running.thread.join(timeout)
    if running.thread.is_alive():
        running.server.force_exit = True
        running.thread.join(timeout)


@contextmanager
def serve_asgi(
    app: Any, *, host: str = "127.0.0.1", startup_timeout: float = 15.0, **config: Any
) -> Iterator[RunningServer]:
    """`start_asgi` for the length of a `with` block."""
    running = start_asgi(app, host=host, startup_timeout=startup_timeout, **config)
    try:
        yield running
    finally:
        stop_asgi(running)
