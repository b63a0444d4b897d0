"""The sandbox's record of sends as a long poll (`GET /sandbox/sent?after=<seq>&wait=<s>`): the answer waits until a
request after `after` is recorded, from whichever thread records it, and never longer than `wait`; a bad `wait` is
a 422, never a 500."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.settings import SANDBOX_PAGE_ID, SANDBOX_PAGE_TOKEN
from sandbox import graph as sandbox

USER = "6123456789012345"


def send(state: sandbox.GraphSandbox, text: str) -> int:
    body = {"recipient": {"id": USER}, "messaging_type": "RESPONSE", "message": {"text": text}}
    return state.handle_send(version="v21.0", node=SANDBOX_PAGE_ID, path=f"/v21.0/{SANDBOX_PAGE_ID}/messages",
                             token=SANDBOX_PAGE_TOKEN, body=body).status


def later(seconds: float, fn: Any) -> threading.Timer:
    timer = threading.Timer(seconds, fn)
    timer.start()
    return timer


@pytest.fixture()
def state() -> sandbox.GraphSandbox:
    return sandbox.GraphSandbox({SANDBOX_PAGE_ID: SANDBOX_PAGE_TOKEN})


@pytest.fixture()
def client(state: sandbox.GraphSandbox) -> Iterator[TestClient]:
    app = FastAPI()
    app.state.sandbox = state
    app.include_router(sandbox.router)
    with TestClient(app, raise_server_exceptions=False) as http:
        yield http


class NoWaiters(list):
    """`GraphSandbox._waiters` for a call that must not wait: registering a waiter fails the test."""

    def append(self, item: Any) -> None:
        raise AssertionError("a waiter was registered")


def test_a_record_already_past_after_answers_at_once(state: sandbox.GraphSandbox) -> None:
    assert send(state, "uno") == 200
    state._waiters = NoWaiters()

    assert asyncio.run(state.wait_for_records(0, 30.0)) is True


def test_a_send_from_another_thread_wakes_the_waiter(state: sandbox.GraphSandbox) -> None:
    assert send(state, "uno") == 200
    seq = state.sent()[-1]["seq"]
    timer = later(0.05, lambda: send(state, "dos"))
    try:
        # Were the waiter never woken, it would give up after 30 s and say False.
        assert asyncio.run(state.wait_for_records(seq, 30.0)) is True
    finally:
        timer.join()
    assert [record["body"]["message"]["text"] for record in state.sent(after_seq=seq)] == ["dos"]
    assert state._waiters == []


def test_nothing_new_gives_up_after_the_wait_and_forgets_the_waiter(state: sandbox.GraphSandbox) -> None:
    assert send(state, "uno") == 200
    seq = state.sent()[-1]["seq"]

    assert asyncio.run(state.wait_for_records(seq, 0.05)) is False
    assert state._waiters == []


def test_a_rejected_request_wakes_the_waiter_too(state: sandbox.GraphSandbox) -> None:
    body = {"recipient": {"id": USER}, "message": {"text": "sin token"}}
    timer = later(0.05, lambda: state.handle_send(version="v21.0", node=SANDBOX_PAGE_ID, path="/x", token=None,
                                                  body=body))
    try:
        assert asyncio.run(state.wait_for_records(0, 30.0)) is True
    finally:
        timer.join()
    assert state.sent() == [] and len(state.requests()) == 1


def test_cleared_records_do_not_count_as_new(state: sandbox.GraphSandbox) -> None:
    assert send(state, "uno") == 200
    state.clear_records()

    assert asyncio.run(state.wait_for_records(0, 0.05)) is False


def test_the_route_waits_for_the_next_send(client: TestClient, state: sandbox.GraphSandbox) -> None:
    assert send(state, "uno") == 200
    seq = client.get("/sandbox/sent").json()[-1]["seq"]
    timer = later(0.05, lambda: send(state, "dos"))
    try:
        answer = client.get("/sandbox/sent", params={"after": seq, "wait": 30})
    finally:
        timer.join()

    assert answer.status_code == 200, answer.text
    assert [record["body"]["message"]["text"] for record in answer.json()] == ["dos"]


def test_the_route_answers_empty_when_the_wait_runs_out(client: TestClient, state: sandbox.GraphSandbox) -> None:
    assert send(state, "uno") == 200
    seq = client.get("/sandbox/sent").json()[-1]["seq"]

    answer = client.get("/sandbox/sent", params={"after": seq, "wait": 0.05})

    assert answer.status_code == 200 and answer.json() == []


def test_without_after_the_route_does_not_wait(client: TestClient, state: sandbox.GraphSandbox,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[tuple[int, float]] = []

    async def wait_for_records(after_seq: int, timeout: float) -> bool:
        waits.append((after_seq, timeout))
        return False

    monkeypatch.setattr(state, "wait_for_records", wait_for_records)
    assert send(state, "uno") == 200
    answer = client.get("/sandbox/sent", params={"wait": 30})

    assert answer.status_code == 200 and [record["body"]["message"]["text"] for record in answer.json()] == ["uno"]
    assert waits == [], "nothing to wait past without `after`"


def test_a_rejected_request_or_another_recipients_send_does_not_end_the_wait(client: TestClient,
                                                                             state: sandbox.GraphSandbox) -> None:
    assert send(state, "uno") == 200
    seq = client.get("/sandbox/sent").json()[-1]["seq"]
    other = {"recipient": {"id": "7000000000000001"}, "messaging_type": "RESPONSE", "message": {"text": "otro"}}
    rejected = {"recipient": {"id": USER}, "message": {"text": "sin token"}}

    def noise_then_the_awaited_send() -> None:
        state.handle_send(version="v21.0", node=SANDBOX_PAGE_ID, path="/x", token=None, body=rejected)
        state.handle_send(version="v21.0", node=SANDBOX_PAGE_ID, path="/x", token=SANDBOX_PAGE_TOKEN, body=other)
        threading.Timer(0.1, lambda: send(state, "dos")).start()

    timer = later(0.05, noise_then_the_awaited_send)
    try:
        answer = client.get("/sandbox/sent", params={"after": seq, "wait": 30, "recipient_id": USER})
    finally:
        timer.join()

    assert answer.status_code == 200, answer.text
    assert [record["body"]["message"]["text"] for record in answer.json()] == ["dos"]


def test_a_cancelled_wait_leaves_no_waiter(state: sandbox.GraphSandbox) -> None:
    async def scenario() -> None:
        task = asyncio.create_task(state.wait_for_records(0, 30.0))
        while not state._waiters:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert state._waiters == []


@pytest.mark.parametrize("wait", ["-1", "30.5", "nan", "inf", "-inf", "ya", "", "1e400"])
def test_a_bad_wait_is_a_422(client: TestClient, wait: str) -> None:
    answer = client.get("/sandbox/sent", params={"after": 0, "wait": wait})

    assert answer.status_code == 422, answer.text


def test_a_waiter_whose_loop_closed_never_breaks_a_send(state: sandbox.GraphSandbox) -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    state._waiters.append((loop, asyncio.Event()))

    assert send(state, "uno") == 200
    assert state._waiters == [] and len(state.sent()) == 1
