"""One table from reason code to HTTP status (core.errors.HTTP_STATUS), one handler (bot.errors).

Would catch: a new domain error (or a new reason code raised with ConsoleError/OutboxInputError/ReplyRefused, or a
new refusal of the outbox policy) without a row, which the app would answer with a 500; a domain error that picks
its own HTTP status again (`status_code`); a refusal answered in another shape than `{"error": {...}}`.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bot import errors
from console.auth import TooManyAttempts
from core.errors import HTTP_STATUS, DomainError
from core.settings import Settings
from handoff.model import ConversationNotFound, ReplyRefused
from outbox import wording
from outbox.policy import ALLOWED, TAG_NOT_NEEDED

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("core", "meta", "knowledge_matrix", "outbox", "comments", "links", "page_profile", "contacts", "handoff",
            "sandbox", "broadcasts", "reports", "console", "connectors", "bot")
# Errors raised with their reason code as the first argument.
RAISED_WITH_A_CODE = ("BroadcastStateError", "ConsoleError", "CommentsRefused", "LinksRefused", "OutboxInputError",
                      "ReplyRefused")


def modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__main__":
                continue
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join(parts), path


def domain_errors() -> list[type[DomainError]]:
    for name, _ in modules():
        if name.startswith("connectors"):
            continue  # Rasa's process (Python 3.10, its own environment): no HTTP app of ours answers there
        importlib.import_module(name)
    found: list[type[DomainError]] = []
    pending = [DomainError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return [cls for cls in found if cls.__module__.split(".")[0] in PACKAGES]


def codes_raised_in_source() -> Iterator[tuple[str, int, str]]:
    for _, path in modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in RAISED_WITH_A_CODE
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                yield str(path.relative_to(ROOT)), node.lineno, node.args[0].value


def test_every_domain_error_class_has_a_row_and_no_status_of_its_own() -> None:
    classes = domain_errors()
    assert len(classes) > 20  # the walk found the packages' errors
    missing = [f"{cls.__module__}.{cls.__qualname__}: {cls.reason_code}" for cls in classes
               if cls.reason_code not in HTTP_STATUS]
    assert missing == []
    with_status = [f"{cls.__module__}.{cls.__qualname__}" for cls in classes
                   if any("status_code" in vars(klass) or "status" in vars(klass) for klass in cls.__mro__
                          if klass is not Exception and klass is not BaseException and klass is not object)]
    assert with_status == []


def test_every_reason_code_raised_in_the_source_has_a_row() -> None:
    found = list(codes_raised_in_source())
    assert len(found) > 10
    assert [f"{path}:{line} {code}" for path, line, code in found if code not in HTTP_STATUS] == []


def test_every_refusal_of_the_outbox_policy_has_a_row() -> None:
    # The templates' keys: the reason codes, and their variants and added sentences ("never_wrote:private_reply").
    refusals = {key for key in wording.TEMPLATES if ":" not in key} - {ALLOWED, TAG_NOT_NEEDED, "write_again"}
    assert refusals
    assert sorted(refusals - set(HTTP_STATUS)) == []


def test_the_table_only_holds_error_statuses() -> None:
    assert all(400 <= status < 600 for status in HTTP_STATUS.values())


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = FastAPI()
    app.state.settings = Settings(data_dir=tmp_path_factory.mktemp("errors"))
    errors.install(app)

    @app.get("/internal/conversation")
    async def internal() -> None:
        raise ConversationNotFound("no conversation 1:2")

    @app.get("/api/console/conversation")
    async def console_api() -> None:
        raise ConversationNotFound("no conversation 1:2")

    @app.get("/api/outbox/refused")
    async def refused() -> None:
        raise ReplyRefused("idempotency_key_reused", "Esa clave ya se usó.", "that key was used")

    @app.get("/api/console/busy")
    async def busy() -> None:
        raise TooManyAttempts("Espere un momento.", timedelta(seconds=30))

    @app.get("/console/page")
    async def page() -> None:
        raise ConversationNotFound("no conversation 1:2")

    with TestClient(app) as test_client:
        yield test_client


def test_one_shape_words_for_the_audience(client: TestClient) -> None:
    internal = client.get("/internal/conversation")
    assert internal.status_code == 404
    assert internal.json() == {"error": {"reason_code": "conversation_not_found", "message": "no conversation 1:2"}}
    console = client.get("/api/console/conversation")
    assert console.status_code == 404
    assert console.json() == {"error": {"reason_code": "conversation_not_found",
                                        "message": "No existe esa conversación."}}


def test_details_and_retry_after_go_into_the_answer(client: TestClient) -> None:
    refused = client.get("/api/outbox/refused")
    assert refused.status_code == 409
    assert refused.json()["error"] == {"reason_code": "idempotency_key_reused", "message": "that key was used",
                                       "reason_es": "Esa clave ya se usó."}
    busy = client.get("/api/console/busy")
    assert (busy.status_code, busy.headers["retry-after"]) == (429, "30")


def test_a_console_page_gets_the_error_page_not_json(client: TestClient) -> None:
    page = client.get("/console/page")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "No existe esa conversación." in page.text
