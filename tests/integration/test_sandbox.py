"""The Graph API sandbox over real HTTP: uvicorn on a free port, driven with httpx."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from core.settings import SANDBOX_PAGE_ID, SANDBOX_PAGE_TOKEN, Settings, SettingsError
from meta.validate import GraphErrorSpec
from sandbox import graph as sandbox
from tests.support.servers import RunningServer, serve_asgi

OTHER_PAGE_ID = "200000000000002"
OTHER_PAGE_TOKEN = "other-page-token"
PSID = "24863291170007543"
VERSION = "v21.0"
SEND_PATH = f"/{VERSION}/{SANDBOX_PAGE_ID}/messages"
TOKEN = {"access_token": SANDBOX_PAGE_TOKEN}


def make_app() -> FastAPI:
    settings = Settings(page_tokens={SANDBOX_PAGE_ID: SANDBOX_PAGE_TOKEN, OTHER_PAGE_ID: OTHER_PAGE_TOKEN})
    app = FastAPI()
    app.state.sandbox = sandbox.GraphSandbox(settings.page_tokens)
    app.include_router(sandbox.router)
    return app


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with serve_asgi(make_app()) as running:
        yield running


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        assert http.post("/sandbox/reset").status_code == 200
        yield http


def text_body(text: str = "Hola 👋", recipient: str = PSID, **extra: Any) -> dict[str, Any]:
    return {"recipient": {"id": recipient}, "messaging_type": "RESPONSE", "message": {"text": text}, **extra}


def send(client: httpx.Client, body: Any, path: str = SEND_PATH, **kwargs: Any) -> httpx.Response:
    kwargs.setdefault("params", TOKEN)
    return client.post(path, json=body, **kwargs)


def assert_graph_error(response: httpx.Response, status: int, code: int, subcode: int | None = None) -> dict[str, Any]:
    """Meta's error shape, exactly: message, type, code, error_subcode when there is one, fbtrace_id."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    expected_keys = {"message", "type", "code", "fbtrace_id"} | ({"error_subcode"} if subcode is not None else set())
    assert set(error) - {"is_transient"} == expected_keys
    assert error["code"] == code
    assert error.get("error_subcode") == subcode
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["fbtrace_id"], str) and len(error["fbtrace_id"]) >= 8
    return error


def add_failure(client: httpx.Client, **failure: Any) -> dict[str, Any]:
    response = client.post("/sandbox/failures", json=failure)
    assert response.status_code == 200, response.text
    return response.json()


# --- success -------------------------------------------------------------------------------


def test_text_message_is_accepted_and_recorded(client: httpx.Client) -> None:
    before = datetime.now(timezone.utc)
    body = text_body()
    response = send(client, body)
    assert response.status_code == 200
    answer = response.json()
    assert set(answer) == {"recipient_id", "message_id"}
    assert answer["recipient_id"] == PSID
    assert answer["message_id"].startswith("m_")

    [record] = client.get("/sandbox/sent").json()
    assert record["body"] == body
    assert record["response"] == answer
    assert (record["status"], record["accepted"]) == (200, True)
    assert (record["page_id"], record["version"], record["path"]) == (SANDBOX_PAGE_ID, VERSION, SEND_PATH)
    assert record["recipient_id"] == PSID
    received_at = datetime.fromisoformat(record["received_at"])
    assert received_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= received_at <= datetime.now(timezone.utc) + timedelta(seconds=1)


def test_sender_action_answers_only_the_recipient(client: httpx.Client) -> None:
    response = send(client, {"recipient": {"id": PSID}, "sender_action": "typing_on"})
    assert response.status_code == 200
    assert response.json() == {"recipient_id": PSID}
    assert client.get("/sandbox/sent").json()[0]["body"]["sender_action"] == "typing_on"


def test_me_messages_acts_for_the_tokens_page(client: httpx.Client) -> None:
    response = send(client, text_body(), path=f"/{VERSION}/me/messages", params={"access_token": OTHER_PAGE_TOKEN})
    assert response.status_code == 200
    [record] = client.get("/sandbox/sent").json()
    assert record["page_id"] == OTHER_PAGE_ID
    assert record["path"] == f"/{VERSION}/me/messages"


def test_bearer_token_is_accepted(client: httpx.Client) -> None:
    response = send(client, text_body(), params={}, headers={"Authorization": f"Bearer {SANDBOX_PAGE_TOKEN}"})
    assert response.status_code == 200


def test_form_encoded_body_with_json_fields(client: httpx.Client) -> None:
    form = {
        "recipient": json.dumps({"id": PSID}),
        "messaging_type": "RESPONSE",
        "message": json.dumps({"text": "hello, world!"}),
        "access_token": SANDBOX_PAGE_TOKEN,
    }
    response = client.post(SEND_PATH, data=form)
    assert response.status_code == 200, response.text
    [record] = client.get("/sandbox/sent").json()
    assert record["body"] == {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {"text": "hello, world!"},
    }


def test_tokens_are_never_recorded(client: httpx.Client) -> None:
    send(client, text_body())
    client.post(
        SEND_PATH,
        data={"recipient": json.dumps({"id": PSID}), "sender_action": "mark_seen", "access_token": SANDBOX_PAGE_TOKEN},
    )
    send(client, text_body(), params={"access_token": "leaked-token-value"})
    recorded = json.dumps(client.get("/sandbox/requests").json())
    assert SANDBOX_PAGE_TOKEN not in recorded
    assert "leaked-token-value" not in recorded


def test_private_reply_gets_a_stable_recipient_id_once_per_comment(client: httpx.Client) -> None:
    def private_reply(comment_id: str) -> httpx.Response:
        return send(client, {"recipient": {"comment_id": comment_id}, "messaging_type": "RESPONSE",
                             "message": {"text": "Thanks for your comment"}})

    first = private_reply("1234567890_987654321")
    second = private_reply("1234567890_987654321")  # Meta allows one private reply per comment
    other = private_reply("1234567890_111")

    assert first.json()["recipient_id"] == sandbox.sandbox_psid("1234567890_987654321")
    assert first.json()["recipient_id"].isdigit()
    assert (second.status_code, second.json()["error"]["code"]) == (400, 10900)
    assert second.json()["error"]["message"] == "(#10900) Activity already replied to"
    assert other.json()["recipient_id"] == sandbox.sandbox_psid("1234567890_111")
    assert len(client.get("/sandbox/sent", params={"recipient_id": "1234567890_987654321"}).json()) == 1


# --- tokens and paths ----------------------------------------------------------------------


def test_missing_token_on_a_page(client: httpx.Client) -> None:
    error = assert_graph_error(send(client, text_body(), params={}), 400, 104)
    assert error["type"] == "OAuthException"
    assert error["message"] == "An access token is required to request this resource."


def test_missing_token_on_me(client: httpx.Client) -> None:
    response = send(client, text_body(), path=f"/{VERSION}/me/messages", params={})
    assert assert_graph_error(response, 400, 2500)["type"] == "OAuthException"


def test_unknown_token_is_190(client: httpx.Client) -> None:
    response = send(client, text_body(), params={"access_token": "EAAGm0PX4ZCpsBAnotreal"})
    error = assert_graph_error(response, 400, 190)
    assert error["type"] == "OAuthException"
    assert response.headers["WWW-Authenticate"].startswith('OAuth "Facebook Platform" "invalid_token"')


def test_unknown_bearer_token_is_190(client: httpx.Client) -> None:
    response = send(client, text_body(), params={}, headers={"Authorization": "Bearer nope"})
    assert_graph_error(response, 400, 190)


def test_token_of_another_page(client: httpx.Client) -> None:
    response = send(client, text_body(), params={"access_token": OTHER_PAGE_TOKEN})
    error = assert_graph_error(response, 400, 100, 33)
    assert error["type"] == "GraphMethodException"
    assert f"Object with ID '{SANDBOX_PAGE_ID}' does not exist" in error["message"]


def test_unconfigured_page(client: httpx.Client) -> None:
    response = send(client, text_body(), path=f"/{VERSION}/999999999/messages")
    assert_graph_error(response, 400, 100, 33)


@pytest.mark.parametrize(
    "path", ["/21.0/me/messages", "/v21/me/messages", "/latest/me/messages", f"/{VERSION}/my-page/messages"]
)
def test_paths_that_are_not_the_send_api_are_left_alone(client: httpx.Client, path: str) -> None:
    assert send(client, text_body(), path=path).status_code == 404
    assert client.get("/sandbox/requests").json() == []


def test_every_rejection_is_recorded_but_not_sent(client: httpx.Client) -> None:
    send(client, text_body(), params={"access_token": "bad"})
    send(client, text_body("x" * 2001))
    send(client, text_body())
    requests = client.get("/sandbox/requests").json()
    assert [(record["status"], record["accepted"]) for record in requests] == [(400, False), (400, False), (200, True)]
    assert requests[1]["response"]["error"]["message"] == (
        "(#100) Length of param message[text] must be less than or equal to 2000"
    )
    assert requests[1]["body"]["message"]["text"] == "x" * 2001
    assert [record["seq"] for record in client.get("/sandbox/sent").json()] == [requests[2]["seq"]]


# --- validation over HTTP ------------------------------------------------------------------


def test_invalid_request_gets_metas_error(client: httpx.Client) -> None:
    response = send(client, {"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text": ""}})
    error = assert_graph_error(response, 400, 100, 2018034)
    assert error["message"] == "(#100) Message cannot be empty, must provide valid attachment or text"


def test_template_with_too_many_buttons(client: httpx.Client) -> None:
    buttons = [{"type": "postback", "title": f"Option {n}", "payload": f"OPT_{n}"} for n in range(4)]
    body = {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {
            "attachment": {
                "type": "template",
                "payload": {"template_type": "button", "text": "Pick", "buttons": buttons},
            }
        },
    }
    error = assert_graph_error(send(client, body), 400, 100)
    assert error["message"] == "(#100) param message[attachment][payload][buttons] has too many elements."


def test_unparsable_json(client: httpx.Client) -> None:
    response = client.post(
        SEND_PATH, params=TOKEN, content=b'{"recipient": ', headers={"Content-Type": "application/json"}
    )
    assert_graph_error(response, 400, 100)
    assert client.get("/sandbox/requests").json()[0]["body"] == '{"recipient": '


# --- injected failures ---------------------------------------------------------------------


def test_failures_are_consumed_in_order_then_sends_succeed(client: httpx.Client) -> None:
    add_failure(client, code=2, count=1)
    add_failure(
        client,
        code=2018278,
        error_subcode=None,
        http_status=400,
        message=None,
        count=2,
        retry_after_seconds=None,
        recipient_id=None,
        page_id=None,
    )
    assert len(client.get("/sandbox/failures").json()) == 2

    temporary = assert_graph_error(send(client, text_body("1")), 500, 2)
    assert temporary["is_transient"] is True
    assert temporary["message"] == "An unexpected error has occurred. Please retry your request later."
    for text in ("2", "3"):
        window = assert_graph_error(send(client, text_body(text)), 400, 10, 2018278)
        assert window["message"].startswith("(#10) This message is sent outside of allowed window.")
    assert send(client, text_body("4")).status_code == 200

    assert client.get("/sandbox/failures").json() == []
    assert [record["body"]["message"]["text"] for record in client.get("/sandbox/sent").json()] == ["4"]
    assert [record["status"] for record in client.get("/sandbox/requests").json()] == [500, 400, 400, 200]


@pytest.mark.parametrize(
    ("failure", "status", "code", "subcode", "message"),
    [
        ({"code": 2}, 500, 2, None, "An unexpected error has occurred. Please retry your request later."),
        ({"code": 10}, 400, 10, 2018278, None),
        ({"code": 2018278}, 400, 10, 2018278, None),
        ({"code": 551}, 400, 551, 1545041, "(#551) This person isn't available right now."),
        ({"code": 100, "error_subcode": 2018001}, 400, 100, 2018001, "(#100) No matching user found"),
        ({"code": 190}, 400, 190, None, "Invalid OAuth access token."),
        ({"code": 613}, 400, 613, None, "(#613) Calls to this api have exceeded the rate limit."),
        ({"code": 4}, 403, 4, None, "(#4) Application request limit reached"),
        ({"code": 1200}, 500, 1200, None, "Temporary send message failure. Please try again later."),
        ({"code": 4242, "message": "(#4242) custom", "http_status": 409}, 409, 4242, None, "(#4242) custom"),
        ({"code": 613, "http_status": 429}, 429, 613, None, None),
    ],
    ids=[
        "temporary",
        "window",
        "window by subcode",
        "unavailable",
        "no user",
        "token",
        "rate",
        "app rate",
        "send failure",
        "custom",
        "status override",
    ],
)
def test_injected_error_defaults(
    client: httpx.Client, failure: dict[str, Any], status: int, code: int, subcode: int | None, message: str | None
) -> None:
    add_failure(client, **failure)
    error = assert_graph_error(send(client, text_body()), status, code, subcode)
    if message is not None:
        assert error["message"] == message


def test_injected_token_error_has_www_authenticate(client: httpx.Client) -> None:
    add_failure(client, code=190)
    response = send(client, text_body())
    assert 'OAuth "Facebook Platform" "invalid_token"' in response.headers["WWW-Authenticate"]


def test_rate_limit_headers_and_retry_after(client: httpx.Client) -> None:
    add_failure(client, code=613, retry_after_seconds=90)
    response = send(client, text_body())
    assert_graph_error(response, 400, 613)
    assert response.headers["Retry-After"] == "90"
    usage = json.loads(response.headers["X-Business-Use-Case-Usage"])
    [bucket] = usage[SANDBOX_PAGE_ID]
    assert bucket["type"] == "messenger"
    assert bucket["call_count"] == 100
    assert bucket["estimated_time_to_regain_access"] == 2


@pytest.mark.parametrize(("code", "header"), [(4, "X-App-Usage"), (17, "X-App-Usage"), (32, "X-Page-Usage")])
def test_app_and_page_rate_limit_headers(client: httpx.Client, code: int, header: str) -> None:
    add_failure(client, code=code, retry_after_seconds=1.2)
    response = send(client, text_body())
    assert response.json()["error"]["code"] == code
    assert json.loads(response.headers[header])["call_count"] == 100
    assert response.headers["Retry-After"] == "2"


def test_no_retry_after_unless_asked(client: httpx.Client) -> None:
    add_failure(client, code=2)
    assert "Retry-After" not in send(client, text_body()).headers


def test_failure_for_one_recipient_only(client: httpx.Client) -> None:
    add_failure(client, code=551, recipient_id="111")
    assert send(client, text_body(recipient="222")).status_code == 200
    assert_graph_error(send(client, text_body(recipient="111")), 400, 551, 1545041)
    assert send(client, text_body(recipient="111")).status_code == 200


def test_failure_for_one_page_only(client: httpx.Client) -> None:
    add_failure(client, code=190, page_id=OTHER_PAGE_ID)
    assert send(client, text_body()).status_code == 200
    other = send(
        client, text_body(), path=f"/{VERSION}/{OTHER_PAGE_ID}/messages", params={"access_token": OTHER_PAGE_TOKEN}
    )
    assert_graph_error(other, 400, 190)


def test_failures_apply_to_valid_requests_only(client: httpx.Client) -> None:
    """Meta checks the request before it tries to deliver it: a bad body is not a delivery failure."""
    add_failure(client, code=2)
    assert_graph_error(send(client, text_body("")), 400, 100, 2018034)
    assert_graph_error(send(client, text_body()), 500, 2)


def test_clearing_failures(client: httpx.Client) -> None:
    add_failure(client, code=2, count=5)
    assert client.delete("/sandbox/failures").json() == {"cleared": 1}
    assert send(client, text_body()).status_code == 200


@pytest.mark.parametrize(
    "failure",
    [{"code": 2, "count": 0}, {"count": 1}, {"code": 2, "http_status": 200}, {"code": 2, "retry_after_seconds": -1}],
)
def test_invalid_failure_requests(client: httpx.Client, failure: dict[str, Any]) -> None:
    assert client.post("/sandbox/failures", json=failure).status_code == 422
    assert client.get("/sandbox/failures").json() == []


# --- listing and clearing ------------------------------------------------------------------


def test_filters(client: httpx.Client) -> None:
    send(client, text_body("a", recipient="111"))
    send(client, text_body("b", recipient="222"))
    send(
        client,
        text_body("c", recipient="111"),
        path=f"/{VERSION}/{OTHER_PAGE_ID}/messages",
        params={"access_token": OTHER_PAGE_TOKEN},
    )
    send(client, text_body("d", recipient="111"), params={"access_token": "bad"})

    def texts(path: str, **params: Any) -> list[str]:
        return [record["body"]["message"]["text"] for record in client.get(path, params=params).json()]

    assert texts("/sandbox/sent") == ["a", "b", "c"]
    assert texts("/sandbox/sent", recipient_id="111") == ["a", "c"]
    assert texts("/sandbox/sent", page_id=SANDBOX_PAGE_ID) == ["a", "b"]
    assert texts("/sandbox/sent", page_id=OTHER_PAGE_ID, recipient_id="111") == ["c"]
    assert texts("/sandbox/requests", recipient_id="111") == ["a", "c", "d"]
    first_seq = client.get("/sandbox/sent").json()[0]["seq"]
    assert texts("/sandbox/sent", after=first_seq) == ["b", "c"]


def test_clearing_keeps_seq_increasing(client: httpx.Client) -> None:
    send(client, text_body("before"))
    last_seq = client.get("/sandbox/sent").json()[-1]["seq"]
    assert client.delete("/sandbox/sent").json() == {"cleared": 1}
    assert client.get("/sandbox/sent").json() == []
    assert client.get("/sandbox/requests").json() == []
    send(client, text_body("after"))
    assert client.get("/sandbox/sent").json()[0]["seq"] > last_seq


# --- latency and concurrency ---------------------------------------------------------------


def test_latency(client: httpx.Client) -> None:
    assert client.post("/sandbox/latency", json={"ms": 150}).json() == {"ms": 150}
    assert client.get("/sandbox/latency").json() == {"ms": 150}
    started = time.monotonic()
    assert send(client, text_body()).status_code == 200
    assert time.monotonic() - started >= 0.15
    assert client.post("/sandbox/latency", json={"ms": -1}).status_code == 422
    client.post("/sandbox/reset")
    assert client.get("/sandbox/latency").json() == {"ms": 0}


async def test_concurrent_sends_are_each_recorded_once(server: RunningServer, client: httpx.Client) -> None:
    client.post("/sandbox/latency", json={"ms": 20})
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30, limits=limits) as http:
        responses = await asyncio.gather(
            *(
                http.post(SEND_PATH, params=TOKEN, json=text_body(f"message {n}", recipient=str(1000 + n % 7)))
                for n in range(200)
            )
        )
    assert [response.status_code for response in responses] == [200] * 200
    message_ids = {response.json()["message_id"] for response in responses}
    assert len(message_ids) == 200

    records = client.get("/sandbox/sent").json()
    assert len(records) == 200
    seqs = [record["seq"] for record in records]
    assert all(earlier < later for earlier, later in zip(seqs, seqs[1:], strict=False))
    assert sorted(record["body"]["message"]["text"] for record in records) == sorted(f"message {n}" for n in range(200))
    assert {record["response"]["message_id"] for record in records} == message_ids


async def test_concurrent_sends_consume_each_failure_once(server: RunningServer, client: httpx.Client) -> None:
    add_failure(client, code=613, count=50)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        responses = await asyncio.gather(
            *(http.post(SEND_PATH, params=TOKEN, json=text_body(f"m{n}")) for n in range(200))
        )
    statuses = [response.status_code for response in responses]
    assert statuses.count(400) == 50
    assert statuses.count(200) == 150
    assert len(client.get("/sandbox/sent").json()) == 150
    assert len(client.get("/sandbox/requests").json()) == 200
    assert client.get("/sandbox/failures").json() == []


# --- the state object itself ---------------------------------------------------------------


def test_sandbox_refuses_production() -> None:
    with pytest.raises(SettingsError):
        settings = Settings(environment="production")
        sandbox.GraphSandbox(settings.page_tokens, production=settings.is_production)


def test_sandbox_uses_the_given_clock() -> None:
    moment = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)
    state = sandbox.GraphSandbox(Settings().page_tokens, clock=lambda: moment)
    answer = state.handle_send(
        version=VERSION, node=SANDBOX_PAGE_ID, path=SEND_PATH, token=SANDBOX_PAGE_TOKEN, body=text_body()
    )
    assert answer.status == 200
    assert state.sent()[0]["received_at"] == "2024-05-01T12:30:00.000000+00:00"


def test_take_failure_is_pure_and_ordered() -> None:
    window = sandbox.FailureRule(GraphErrorSpec("(#10) w", 10, 2018278), remaining=2)
    person = sandbox.FailureRule(GraphErrorSpec("(#551) p", 551, 1545041), remaining=1, recipient_id="7")
    rules = (person, window)
    taken, left = sandbox.take_failure(rules, SANDBOX_PAGE_ID, ("8",))
    assert taken == window
    assert left == (person, sandbox.FailureRule(window.error, remaining=1))
    assert rules == (person, window)
    taken, left = sandbox.take_failure(left, SANDBOX_PAGE_ID, ("7",))
    assert taken == person
    assert left == (sandbox.FailureRule(window.error, remaining=1),)


def test_state_is_safe_across_threads() -> None:
    """Sends from many threads: every one recorded once, seq unique and in record order, failures used once."""
    state = sandbox.GraphSandbox(Settings().page_tokens)
    state.add_failure(sandbox.FailureRule(GraphErrorSpec("(#2) x", 2, http_status=500), remaining=300))
    per_thread, threads = 250, 8
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with ThreadPoolExecutor(threads) as pool:
            answers = list(
                pool.map(
                    lambda n: state.handle_send(
                        version=VERSION, node="me", path="/", token=SANDBOX_PAGE_TOKEN, body=text_body(f"t{n}")
                    ),
                    range(per_thread * threads),
                )
            )
    finally:
        sys.setswitchinterval(switch_interval)
    assert sum(answer.status == 500 for answer in answers) == 300
    records = state.requests()
    assert len(records) == per_thread * threads
    assert [record["seq"] for record in records] == list(range(1, per_thread * threads + 1))
    assert len(state.sent()) == per_thread * threads - 300


# --- the handover protocol --------------------------------------------------------------------------------------


def test_passing_and_taking_thread_control_answer_as_meta_and_are_recorded(client: httpx.Client) -> None:
    passed = client.post(f"/{VERSION}/{SANDBOX_PAGE_ID}/pass_thread_control", params=TOKEN,
                         json={"recipient": {"id": PSID}, "target_app_id": 263902037430900, "metadata": "handoff"})
    taken = client.post(f"/{VERSION}/me/take_thread_control", params=TOKEN, json={"recipient": {"id": PSID}})
    assert (passed.status_code, passed.json()) == (200, {"success": True})
    assert (taken.status_code, taken.json()) == (200, {"success": True})
    recorded = client.get("/sandbox/requests", params={"recipient_id": PSID}).json()
    assert [(r["path"], r["accepted"]) for r in recorded] == [
        (f"/{VERSION}/{SANDBOX_PAGE_ID}/pass_thread_control", True),
        (f"/{VERSION}/me/take_thread_control", True),
    ]
    assert recorded[0]["body"]["target_app_id"] == 263902037430900


def test_thread_control_is_refused_like_meta_without_a_token_recipient_or_app(client: httpx.Client) -> None:
    path = f"/{VERSION}/{SANDBOX_PAGE_ID}/pass_thread_control"
    no_token = client.post(path, json={"recipient": {"id": PSID}, "target_app_id": 263902037430900})
    no_recipient = client.post(path, params=TOKEN, json={"target_app_id": 263902037430900})
    no_app = client.post(path, params=TOKEN, json={"recipient": {"id": PSID}})
    for answer in (no_token, no_recipient, no_app):
        assert answer.status_code == 400 and "error" in answer.json(), answer.text
    assert "target_app_id" in no_app.json()["error"]["message"]
    assert all(not r["accepted"] for r in client.get("/sandbox/requests").json())
