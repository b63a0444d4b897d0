"""The links API's edges in-process (console app over SQLite): link ids beyond a database integer, and a start
intent the bot does not have (domain.yml, read once by links.intents).

Would catch: a huge link id answering 500 on SQLite (OverflowError) where PostgreSQL answers 404, and a link created
with an intent Rasa does not know (every scan would then start nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import SANDBOX_PAGE_ID
from links.intents import DOMAIN_FILE, bot_intents
from links.model import LinkInvalid, Start, check_start_intent
from tests.unit.console.conftest import ConsoleApp, ConsoleClient


@pytest.fixture
def admin(console_env: ConsoleApp) -> ConsoleClient:
    return console_env.login("admin")


@pytest.mark.parametrize("link_id", ["99999999999999999999", str(2**62 + 1), "0", "-1"])
def test_a_link_id_outside_a_database_integer_is_a_422(admin: ConsoleClient, link_id: str) -> None:
    for answer in (admin.get(f"/api/console/links/{link_id}/qr.png"),
                   admin.send("PATCH", f"/api/console/links/{link_id}", json={"enabled": False})):
        assert answer.status_code == 422, answer.text


def test_a_link_id_in_range_that_does_not_exist_is_a_404(admin: ConsoleClient) -> None:
    for link_id in (1, 2**62):
        answer = admin.get(f"/api/console/links/{link_id}/qr.svg")
        assert answer.status_code == 404 and answer.json()["error"]["reason_code"] == "link_not_found", answer.text


def test_a_start_intent_the_bot_does_not_have_is_refused_naming_it(admin: ConsoleClient) -> None:
    refused = admin.post("/api/console/links", json={"name": "Menú", "page_id": SANDBOX_PAGE_ID,
                                                     "start": {"intent": "menu_typo"}})
    created = admin.post("/api/console/links", json={"name": "Hola", "page_id": SANDBOX_PAGE_ID,
                                                     "start": {"intent": "greet"}})

    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["reason_code"] == "link_invalid" and error["field"] == "start"
    assert "«menu_typo» no existe en el bot" in error["message"] and "greet" in error["message"]
    assert created.status_code == 201 and created.json()["link"]["start"] == {"intent": "greet"}, created.text


def test_the_intents_come_from_the_domain_once() -> None:
    intents = bot_intents()
    assert intents is not None and {"greet", "request_human"} <= intents
    assert bot_intents() is intents, "read once"
    assert bot_intents(DOMAIN_FILE.with_name("no-such-domain.yml")) is None
    check_start_intent(Start(intent="greet"), intents)
    check_start_intent(Start(entry_id="menu"), intents)
    with pytest.raises(LinkInvalid, match="«saludo»") as refused:
        check_start_intent(Start(intent="saludo"), intents)
    assert "restart" not in refused.value.message_es and "ask_knowledge" not in refused.value.message_es


def test_a_domain_with_intents_as_mappings_is_read(tmp_path: Path) -> None:
    domain = tmp_path / "domain.yml"
    domain.write_text("version: '3.1'\nintents:\n  - greet\n  - pedir_menu:\n      use_entities: []\n",
                      encoding="utf-8")
    assert bot_intents(domain) == frozenset({"greet", "pedir_menu"})
    broken = tmp_path / "broken.yml"
    broken.write_text("intents: [greet\n", encoding="utf-8")
    assert bot_intents(broken) is None

