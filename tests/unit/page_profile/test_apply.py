"""Applying a saved profile through the real Graph client to the Graph sandbox (in-process transport), and what
is recorded when Facebook refuses.

Would catch: a field left set on Facebook after the console removed it (no DELETE), a call with a body Meta refuses,
a success not recorded as applied (or a failure recorded as applied), a Graph error answered as a 500 or without
Spanish words (rate limit, expired token, Meta's hiccup, a refusal), a token in what is stored."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from core.settings import SANDBOX_PAGE_ID, SANDBOX_PAGE_TOKEN
from meta.graph import GraphClient
from page_profile.apply import NothingToApply, ProfileNotApplied, apply_profile, live_profile
from page_profile.store import PageProfileStore, open_page_profile_store
from sandbox.graph import GraphSandbox, graph_error
from tests.support.graph_sandbox_transport import SandboxTransport

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
FULL = {
    "get_started": {"payload": "/greet"},
    "greeting": [{"locale": "default", "text": "¡Hola {{user_first_name}}!"}],
    "ice_breakers": [{"call_to_actions": [{"question": "¿Horario?", "payload": "/horario"}], "locale": "default"}],
    "persistent_menu": [{"locale": "default", "composer_input_disabled": False, "call_to_actions": [
        {"type": "postback", "title": "Menú", "payload": "/menu"}]}],
}


@pytest.fixture
def sandbox() -> GraphSandbox:
    return GraphSandbox({SANDBOX_PAGE_ID: SANDBOX_PAGE_TOKEN})


@pytest.fixture
def transport(sandbox: GraphSandbox) -> SandboxTransport:
    return SandboxTransport(sandbox)


@pytest.fixture
def graph(transport: SandboxTransport) -> GraphClient:
    return GraphClient({SANDBOX_PAGE_ID: SANDBOX_PAGE_TOKEN}, transport=transport)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PageProfileStore]:
    opened = open_page_profile_store(tmp_path / "page_profile.sqlite3")
    yield opened
    opened.close()


def apply(graph: GraphClient, store: PageProfileStore, by: str = "admin") -> Any:
    return asyncio.run(apply_profile(graph, store, SANDBOX_PAGE_ID, by, NOW))


def test_applying_sets_the_profile_then_removing_a_field_deletes_it(graph: GraphClient, store: PageProfileStore,
                                                                    sandbox: GraphSandbox) -> None:
    store.save(SANDBOX_PAGE_ID, FULL, "admin", NOW)
    stored = apply(graph, store)
    assert sandbox.messenger_profile(SANDBOX_PAGE_ID) == FULL
    assert (stored.applied, stored.applied_by, stored.applied_at, stored.last_ok) == (FULL, "admin", NOW, True)
    assert not stored.has_unapplied_changes
    assert stored.last_answer == {"calls": [{"method": "POST", "fields": list(FULL), "answer": {"result": "success"}}]}
    assert asyncio.run(live_profile(graph, SANDBOX_PAGE_ID)) == FULL

    smaller = {"get_started": FULL["get_started"], "greeting": FULL["greeting"]}
    assert store.save(SANDBOX_PAGE_ID, smaller, "ana", NOW).has_unapplied_changes
    stored = apply(graph, store, "ana")
    assert sandbox.messenger_profile(SANDBOX_PAGE_ID) == smaller
    assert [call["method"] for call in stored.last_answer["calls"]] == ["POST", "DELETE"]
    assert stored.last_answer["calls"][1]["fields"] == ["ice_breakers", "persistent_menu"]
    methods = [(r["method"], r["accepted"]) for r in sandbox.requests(page_id=SANDBOX_PAGE_ID)]
    assert methods == [("POST", True), ("GET", True), ("POST", True), ("DELETE", True)]


def test_an_empty_profile_only_deletes(graph: GraphClient, store: PageProfileStore, sandbox: GraphSandbox) -> None:
    store.save(SANDBOX_PAGE_ID, FULL, "admin", NOW)
    apply(graph, store)
    store.save(SANDBOX_PAGE_ID, {}, "admin", NOW)
    stored = apply(graph, store)
    assert sandbox.messenger_profile(SANDBOX_PAGE_ID) == {} and stored.applied == {}
    assert [call["method"] for call in stored.last_answer["calls"]] == ["DELETE"]
    assert asyncio.run(live_profile(graph, SANDBOX_PAGE_ID)) == {}


def test_nothing_saved_is_nothing_to_apply(graph: GraphClient, store: PageProfileStore) -> None:
    with pytest.raises(NothingToApply) as caught:
        apply(graph, store)
    assert caught.value.reason_code == "nothing_to_apply" and "Guarde" in caught.value.message_es


REFUSALS = [
    # (Meta's code, our reason code, words of the Spanish message)
    (4, "facebook_rate_limited", "10 cada 10 minutos"),
    (190, "page_token_invalid", "token de la página"),
    (2, "facebook_unavailable", "no respondió"),
    (100, "facebook_refused", "rechazó el perfil"),
    (10, "facebook_refused", "pages_messaging"),
]


@pytest.mark.parametrize(("code", "reason_code", "words"), REFUSALS)
def test_a_refusal_is_recorded_and_worded_and_the_applied_profile_stays(
        graph: GraphClient, store: PageProfileStore, transport: SandboxTransport, code: int, reason_code: str,
        words: str) -> None:
    store.save(SANDBOX_PAGE_ID, FULL, "admin", NOW)
    apply(graph, store)
    store.save(SANDBOX_PAGE_ID, {"get_started": {"payload": "/otro"}}, "ana", NOW)
    error = graph_error(code)
    headers = {"Retry-After": "120"} if code == 4 else {}
    transport.fail_with = (error.http_status, error.to_body("trace"), headers)
    with pytest.raises(ProfileNotApplied) as caught:
        apply(graph, store, "ana")
    refusal = caught.value
    assert (refusal.reason_code, words in refusal.message_es) == (reason_code, True), refusal.message_es
    assert refusal.details()["graph_error"]["code"] == code
    stored = store.get(SANDBOX_PAGE_ID)
    assert stored is not None
    assert (stored.applied, stored.applied_by, stored.last_ok, stored.last_attempt_by) == (FULL, "admin", False, "ana")
    assert stored.last_answer is not None and stored.last_answer["error"]["code"] == code
    assert stored.has_unapplied_changes
    assert SANDBOX_PAGE_TOKEN not in str(stored.to_dict())
    if code == 4:
        assert refusal.retry_after is not None and refusal.retry_after.total_seconds() == 120
        assert "2 minutos" in refusal.message_es


def test_a_page_without_a_token_is_refused_in_spanish(store: PageProfileStore, transport: SandboxTransport) -> None:
    store.save("999", FULL, "admin", NOW)
    with pytest.raises(ProfileNotApplied) as caught:
        asyncio.run(apply_profile(GraphClient({}, transport=transport), store, "999", "admin", NOW))
    assert caught.value.reason_code == "unknown_page" and "999" in caught.value.message_es
    assert store.get("999").last_ok is False  # type: ignore[union-attr]
