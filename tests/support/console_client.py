"""The console's JSON API and live events over real HTTP, for integration tests and the benchmark."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

DEMO_PASSWORDS = {"admin": "admin-demo", "agente": "agente-demo", "editor": "editor-demo"}


class ConsoleSession:
    """One logged-in person: the session cookie in the client, the CSRF token on every state change."""

    def __init__(self, app_url: str, username: str, password: str | None = None) -> None:
        self.app_url = app_url
        self.username = username
        self.http = httpx.Client(base_url=app_url, timeout=30)
        answer = self.http.post("/api/console/login",
                                json={"username": username, "password": password or DEMO_PASSWORDS[username]})
        assert answer.status_code == 200, answer.text
        self.csrf = answer.json()["csrf_token"]
        self.user = answer.json()["user"]

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf, **kwargs.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.send("POST", path, **kwargs)

    def conversations(self) -> list[dict[str, Any]]:
        answer = self.get("/api/console/conversations")
        assert answer.status_code == 200, answer.text
        return list(answer.json()["conversations"])

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        answer = self.get(f"/api/console/conversations/{conversation_id}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json()["conversation"])

    def close(self) -> None:
        self.http.close()


@dataclass(frozen=True)
class ReceivedEvent:
    received_at: float  # time.perf_counter() when the frame arrived
    kind: str
    conversation_id: str
    data: dict[str, Any]
    id: str


class EventListener:
    """Reads `/console/events` in a thread as a browser's EventSource does: reconnects with Last-Event-ID
    when a stream ends. `events` grows as frames arrive."""

    def __init__(self, session: ConsoleSession) -> None:
        self.session = session
        self.events: list[ReceivedEvent] = []
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._last_id: str | None = None
        self._response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._run, name="console-events", daemon=True)

    def start(self) -> EventListener:
        self._thread.start()
        assert self.connected.wait(15), "the console's event stream did not open"
        return self

    def _run(self) -> None:
        client = httpx.Client(base_url=self.session.app_url, cookies=self.session.http.cookies,
                              timeout=httpx.Timeout(30, read=60))
        while not self._stop.is_set():
            headers = {"Accept": "text/event-stream"}
            if self._last_id is not None:
                headers["Last-Event-ID"] = self._last_id
            try:
                with client.stream("GET", "/console/events", headers=headers) as response:
                    self._response = response
                    assert response.status_code == 200, response.status_code
                    self._read(response)
            except (httpx.HTTPError, RuntimeError):
                if self._stop.is_set():
                    break
                time.sleep(0.2)
        client.close()

    def _read(self, response: httpx.Response) -> None:
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if self._stop.is_set():
                return
            if line == "":
                if "event" in fields:
                    self._frame(fields)
                fields = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value

    def _frame(self, fields: dict[str, str]) -> None:
        if "id" in fields:
            self._last_id = fields["id"]
        if fields["event"] == "hello":
            self.connected.set()
            return
        payload = json.loads(fields.get("data", "{}"))
        self.events.append(ReceivedEvent(time.perf_counter(), payload.get("kind", fields["event"]),
                                         payload.get("conversation_id", ""), payload.get("data") or {},
                                         fields.get("id", "")))

    def wait_for(self, condition: Callable[[ReceivedEvent], bool], timeout: float = 30,
                 what: str = "an event") -> ReceivedEvent:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for event in self.events[seen:]:
                if condition(event):
                    return event
            seen = len(self.events)
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; got {[e.kind for e in self.events]}")

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            # The reader thread holds the connection while it waits for the next frame (a keepalive may be seconds
            # away): closing the response from here would wait for it. Shutting the socket ends that read at once.
            stream = response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            else:
                response.close()
        self._thread.join(5)
