"""Files and quick replies in an agent's reply (console/attachments.py), in process: the console's API over the fake
handoff service (the outbox's own in-memory store and policy) and the real Graph client against the Graph sandbox."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handoff.model import PauseReason
from meta.graph import GraphClient
from sandbox.graph import GraphSandbox
from tests.support.graph_sandbox_transport import SandboxTransport
from tests.unit.console.conftest import PAGE, ConsoleApp, ConsoleClient
from tests.unit.meta.test_attachments import EXE, PNG

CONVERSATION = f"{PAGE}:u1"
ATTACH = f"/api/console/conversations/{CONVERSATION}/attachment"
REPLY = f"/api/console/conversations/{CONVERSATION}/reply"


def with_sandbox(env: ConsoleApp, ago: timedelta = timedelta(hours=1)) -> GraphSandbox:
    settings = env.app.state.settings
    sandbox = GraphSandbox(settings.page_tokens)
    env.app.state.graph = GraphClient(settings.page_tokens, transport=SandboxTransport(sandbox))
    env.handoff.add_user_message(PAGE, "u1", "¿tienen catálogo?", at=env.clock() - ago)
    asyncio.run(env.handoff.pause(PAGE, "u1", PauseReason.USER_ASKED, "bot"))
    return sandbox


def messages_of(answer: Any) -> list[dict[str, Any]]:
    return [message["message"] for message in answer.json()["outbox"]["messages"]]


def test_an_image_is_uploaded_once_and_sent_with_its_attachment_id(console_env: ConsoleApp) -> None:
    sandbox = with_sandbox(console_env)
    agent = console_env.login("maria")
    answer = agent.post(ATTACH, files={"file": ("catálogo.bin", PNG, "application/octet-stream")},
                        data={"caption": "Nuestro catálogo", "idempotency_key": "attach-key-1"})
    assert answer.status_code == 201, answer.text
    attachment_id = answer.json()["attachment_id"]
    assert [r["path"] for r in sandbox.requests()] == ["/v21.0/me/message_attachments"]
    assert messages_of(answer) == [
        {"text": "Nuestro catálogo"},
        {"attachment": {"type": "image", "payload": {"attachment_id": attachment_id}}}]
    shown = answer.json()["attachment"]
    # the type the bytes say, not the name
    assert shown["filename"] == "catálogo.png" and shown["content_type"] == "image/png"
    image = agent.get(shown["url"])
    assert image.status_code == 200 and image.content == PNG and image.headers["content-type"] == "image/png"
    transcript = agent.get(f"/api/console/conversations/{CONVERSATION}").json()["conversation"]["transcript"]
    assert transcript[-1]["data"]["attachment"]["url"] == shown["url"]
    # The same file again (a retry with its key): no second upload, the same message.
    again = agent.post(ATTACH, files={"file": ("x.png", PNG, "image/png")},
                       data={"caption": "Nuestro catálogo", "idempotency_key": "attach-key-1"})
    assert again.status_code == 200 and again.json()["repeated"] is True
    assert len(sandbox.requests()) == 1


def test_a_program_renamed_jpg_is_refused_by_its_bytes(console_env: ConsoleApp) -> None:
    sandbox = with_sandbox(console_env)
    agent = console_env.login("maria")
    answer = agent.post(ATTACH, files={"file": ("foto.jpg", EXE, "image/jpeg")})
    assert answer.status_code == 415
    assert answer.json()["error"]["reason_code"] == "unsupported_file"
    assert "se reconoce por el contenido" in answer.json()["error"]["message"]
    empty = agent.post(ATTACH, files={"file": ("vacío.png", b"", "image/png")})
    assert empty.status_code == 422 and empty.json()["error"]["reason_code"] == "empty_file"
    assert sandbox.requests() == [] and console_env.handoff.sent == []


def test_a_file_outside_seven_days_is_refused_as_a_text_reply_is(console_env: ConsoleApp) -> None:
    with_sandbox(console_env, ago=timedelta(days=8))
    agent = console_env.login("maria")
    answer = agent.post(ATTACH, files={"file": ("foto.png", PNG, "image/png")})
    assert answer.status_code == 422 and answer.json()["error"]["reason_code"] == "human_agent_window_expired"
    assert console_env.handoff.sent == []


def test_quick_replies_and_a_file_by_url_in_the_json_reply(console_env: ConsoleApp) -> None:
    with_sandbox(console_env)
    agent = console_env.login("maria")
    answer = agent.post(REPLY, json={"text": "¿Le sirve?", "quick_replies": [{"title": "Sí"},
                                                                               {"title": "No", "payload": "NO"}]})
    assert answer.status_code == 201, answer.text
    assert messages_of(answer) == [{"text": "¿Le sirve?", "quick_replies": [
        {"content_type": "text", "title": "Sí", "payload": "Sí"},
        {"content_type": "text", "title": "No", "payload": "NO"}]}]
    by_url = agent.post(REPLY, json={"attachment": {"url": "https://tienda.ec/menu.pdf", "type": "file"}})
    assert by_url.status_code == 201, by_url.text
    assert messages_of(by_url) == [{"attachment": {"type": "file", "payload": {"url": "https://tienda.ec/menu.pdf",
                                                                                "is_reusable": True}}}]
    for url in ("http://tienda.ec/a.png", "https://user:clave@tienda.ec/a.png", "javascript:alert(1)//x"):
        refused = agent.post(REPLY, json={"attachment": {"url": url}})
        assert refused.status_code == 422 and refused.json()["error"]["reason_code"] in ("attachment_invalid",
                                                                                         "invalid_request"), url
    too_long = agent.post(REPLY, json={"text": "x", "quick_replies": [{"title": "t" * 21}]})
    assert too_long.status_code == 422
    too_many = agent.post(REPLY, json={"text": "x", "quick_replies": [{"title": str(n)} for n in range(14)]})
    assert too_many.status_code == 422


JSON_SCALAR = st.none() | st.booleans() | st.integers() | st.text(max_size=30)
JSON = st.recursive(
    JSON_SCALAR,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
QUICK_REPLY = st.fixed_dictionaries(
    {}, optional={"title": st.text(max_size=24) | JSON, "payload": st.text(max_size=30) | JSON})
URLS = st.sampled_from(["https://e.ec/a.png", "http://e.ec/a", "https://", "https://e.ec/a b", "ftp://e.ec/x"])
ATTACHMENT = st.fixed_dictionaries({}, optional={
    "url": URLS | st.text(max_size=40) | JSON,
    "type": st.sampled_from(["image", "file", "video", "audio", "sticker"]) | JSON})
BODY = st.fixed_dictionaries({}, optional={
    "text": st.text(max_size=40) | JSON, "quick_replies": st.lists(QUICK_REPLY, max_size=15) | JSON,
    "attachment": ATTACHMENT | JSON})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODY)
def test_the_reply_body_fuzzed_is_never_a_500(console_env: ConsoleApp, body: dict[str, Any]) -> None:
    if getattr(console_env.app.state, "graph", None) is None:
        with_sandbox(console_env)
    agent = getattr(console_env, "_fuzz_agent", None) or console_env.login("maria")
    console_env._fuzz_agent = agent  # type: ignore[attr-defined]
    answer = agent.post(REPLY, json=body)
    assert answer.status_code in (200, 201, 409, 415, 422), (body, answer.text)
    if answer.status_code >= 400:
        assert answer.json()["error"]["message"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=64) | st.sampled_from([PNG, EXE]), name=st.text(max_size=40),
       caption=st.text(max_size=30))
def test_the_attachment_form_fuzzed_is_never_a_500(console_env: ConsoleApp, data: bytes, name: str,
                                                   caption: str) -> None:
    if getattr(console_env.app.state, "graph", None) is None:
        with_sandbox(console_env)
    agent: ConsoleClient = getattr(console_env, "_fuzz_agent", None) or console_env.login("maria")
    console_env._fuzz_agent = agent  # type: ignore[attr-defined]
    answer = agent.post(ATTACH, files={"file": (name or "f", data, "application/octet-stream")},
                        data={"caption": caption})
    assert answer.status_code in (200, 201, 409, 413, 415, 422), answer.text
    if answer.status_code >= 400:
        assert answer.json()["error"]["message"]
