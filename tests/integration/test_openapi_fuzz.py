"""Property-based tests of the app's OpenAPI surface (schemathesis + Hypothesis) with every role, over real HTTP.

The app runs in its production posture (a real-looking page, long secrets) under uvicorn on a free port, with Rasa
and the Graph API on ports where nothing listens: routes that need them must answer 502/503 cleanly. For each
operation and each caller (anonymous, admin, agente, editor, the service token), generated requests must get
no 5xx, and no 2xx where the route × role table (tests/support/console_routes.py) forbids that caller.

What it proves on the code it replaced: before the request guard a body past its limit or a cut-off upload was
not refused cleanly; before this test nothing held the role table against generated requests at all.
Examples per operation are capped (`EXAMPLES`) to keep the run inside the CI budget.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import create_app
from console.auth import Authenticator
from core.settings import Settings
from tests.support.console_routes import PAGE, PRODUCTION, PUBLIC, ROLES, SERVICE_TOKEN_ONLY
from tests.support.servers import RunningServer, serve_asgi
from tests.unit.console.conftest import fast_hasher

EXAMPLES = 12
# Rasa and the Graph API are down on purpose: a route that needs them says so (502/503 with an explanation).
UNAVAILABLE = (502, 503)
CALLERS = ("anonymous", "admin", "agent", "editor", "service")
PASSWORD = "clave-de-fuzz-segura-1"
DEAD_PORT_URL = "http://127.0.0.1:9"  # discard: nothing listens, connections are refused at once


def fuzz_settings(data_dir: Path) -> Settings:
    fields: dict[str, Any] = {**PRODUCTION, "graph_api_base": "https://127.0.0.1:9"}
    built = Settings(data_dir=data_dir, rasa_url=DEAD_PORT_URL, **fields)
    built.check_production_safe()
    return built


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    app = create_app(fuzz_settings(tmp_path_factory.mktemp("fuzz")))
    auth = Authenticator(app.state.console_auth.store, app.state.settings, hasher=fast_hasher())
    app.state.console_auth = auth
    for role in ("admin", "agent", "editor"):
        auth.add_user(f"fuzz-{role}", role, PASSWORD)
    with serve_asgi(app) as running:
        yield running


@pytest.fixture(scope="module")
def credentials(server: RunningServer) -> dict[str, dict[str, str]]:
    headers: dict[str, dict[str, str]] = {"anonymous": {},
                                          "service": {"Authorization": f"Bearer {PRODUCTION['service_token']}"}}
    for role in ("admin", "agent", "editor"):
        answer = httpx.post(server.url("/api/console/login"), json={"username": f"fuzz-{role}", "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        headers[role] = {"Cookie": f"console_session={answer.cookies['console_session']}",
                         "X-CSRF-Token": answer.json()["csrf_token"]}
    return headers


@pytest.fixture(scope="module")
def operations(server: RunningServer) -> dict[tuple[str, str], Any]:
    # Production serves no /openapi.json; the schema comes from the same app object.
    spec = server.server.config.app.openapi()
    schema = schemathesis.openapi.from_dict(spec)
    return {(op.method.upper(), op.path): op for op in (result.ok() for result in schema.get_all_operations())}


def allowed(caller: str, method: str, path: str) -> bool:
    key = (method, path)
    if key in PUBLIC:
        return True
    if key in SERVICE_TOKEN_ONLY:
        return caller == "service"
    roles, service = ROLES[key]
    return caller in roles or (caller == "service" and service)


def test_the_schema_covers_the_route_table(operations: dict[tuple[str, str], Any]) -> None:
    assert set(operations) == PUBLIC | SERVICE_TOKEN_ONLY | set(ROLES), "the schema and the role table differ"


def as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def httpx_files(files: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """schemathesis builds `requests`-style multipart parts, where a generated value may be a number: bytes for
    httpx, as a browser would send it."""
    parts = []
    for name, value in files:
        if isinstance(value, tuple):
            parts.append((name, (value[0], as_bytes(value[1]), *value[2:])))
        else:
            parts.append((name, ("upload", as_bytes(value))))
    return parts


ENDS_SESSION = {("POST", "/console/logout"), ("POST", "/api/console/logout")}


class Fuzzer:
    """Sends generated requests as one caller and keeps what went wrong."""

    def __init__(self, client: httpx.Client, base_url: str, caller: str, headers: dict[str, str]) -> None:
        self.client, self.base_url, self.caller, self.headers = client, base_url, caller, headers
        self.failures: list[str] = []
        self.statuses: Counter[int] = Counter()

    def run(self, method: str, path: str, operation: Any) -> None:
        may_succeed = allowed(self.caller, method, path)

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(),
               conversation=st.sampled_from([None, f"{PAGE}:u1", f"{PAGE}:fuzz", "999:u1"]))
        def check(case: Any, conversation: str | None) -> None:
            if conversation is not None and "conversation_id" in (case.path_parameters or {}):
                case.path_parameters["conversation_id"] = conversation  # sometimes a well-formed id
            self.send(case, f"{method} {path}", may_succeed)

        check()

    def send(self, case: Any, route: str, may_succeed: bool) -> None:
        kwargs = case.as_transport_kwargs(base_url=self.base_url)
        kwargs["headers"] = {**(kwargs.get("headers") or {}), **self.headers}
        if kwargs.get("files"):
            kwargs["files"] = httpx_files(kwargs["files"])
        request = self.client.build_request(**{k: v for k, v in kwargs.items() if k in (
            "method", "url", "headers", "params", "json", "content", "data", "files")})
        response = self.client.send(request, stream=True)  # /console/events streams: the status is enough
        clean_unavailable = False
        if response.status_code in UNAVAILABLE:
            response.read()
            clean_unavailable = response.headers.get("content-type", "").startswith(("application/json", "text/html"))
        response.close()
        self.statuses[response.status_code] += 1
        label = f"{self.caller} {route} → {response.status_code} ({request.url})"
        if response.status_code >= 500 and not clean_unavailable:
            self.failures.append("5xx: " + label)
        elif 200 <= response.status_code < 300 and not may_succeed:
            self.failures.append("wrong role reached: " + label)


@pytest.mark.parametrize("caller", CALLERS)
def test_generated_requests_get_no_5xx_and_no_wrong_role_2xx(
    server: RunningServer, credentials: dict[str, dict[str, str]], operations: dict[tuple[str, str], Any],
    caller: str,
) -> None:
    with httpx.Client(timeout=15) as client:
        fuzzer = Fuzzer(client, server.base_url, caller, credentials[caller])
        for (method, path), operation in sorted(operations.items()):
            if caller in ("admin", "agent", "editor") and (method, path) in ENDS_SESSION:
                continue  # would end the session the other operations use (checked by test_console_routes)
            fuzzer.run(method, path, operation)
    statuses = fuzzer.statuses
    print(f"{caller}: {sum(statuses.values())} generated requests, statuses {dict(sorted(statuses.items()))}")
    assert sum(n for code, n in statuses.items() if 200 <= code < 300) > 0, "no request got through: a broken login?"
    assert not fuzzer.failures, "\n".join(sorted(set(fuzzer.failures))[:40])
