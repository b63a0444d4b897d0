"""m.me links against the real stack: the console's API over HTTP (admins; the service token reads and creates),
the QR code downloaded and decoded, and referrals through the real path (a signed webhook → the webhook process →
the ingest journal → the Rasa channel → the app's POST /internal/referrals → Rasa → the Send API sandbox): a QR
code whose link starts a knowledge entry answers with it at once, the conversation view says the link, the
counters count once per event."""

from __future__ import annotations

import io
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import pytest
import zxingcpp
from PIL import Image

from bot.stack import Stack
from core.settings import DEMO_SERVICE_TOKEN
from handoff.model import conversation_id_of
from sandbox import simulate
from tests.support.console_client import ConsoleSession
from tests.support.stack import PAGE_ID, Messenger

ENTRY = "iniciar_conversacion"  # the demo matrix's entry about sharing a QR code or an m.me link
ENTRY_ANSWER = "Las reglas de Facebook dicen que los contactos deben escribirle primero"
SERVICE = {"Authorization": f"Bearer {DEMO_SERVICE_TOKEN}"}


def new_user() -> str:
    return f"links-{uuid.uuid4().hex[:10]}"


def new_ref(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def admin(stack: Stack) -> Iterator[ConsoleSession]:
    session = ConsoleSession(stack.app_url, "admin")
    yield session
    session.close()


def link_row(admin: ConsoleSession, link_id: int) -> dict[str, Any]:
    answer = admin.get("/api/console/links")
    assert answer.status_code == 200, answer.text
    return next(row for row in answer.json()["links"] if row["id"] == link_id)


def ingest_rows(stack: Stack, user: str) -> list[sqlite3.Row]:
    """The user's events in the ingest journal (the embedded profile's SQLite file), oldest first."""
    with closing(sqlite3.connect(str(stack.data_dir / "messenger.sqlite3"), timeout=10)) as connection:
        connection.row_factory = sqlite3.Row
        return connection.execute("SELECT dedup_key, kind, status FROM inbound_events WHERE user_id = ? ORDER BY id",
                                  (user,)).fetchall()


def answered_with(messenger: Messenger, user: str, start: str) -> list[str]:
    return [text for text in messenger.texts(user) if text.startswith(start)]


def test_admins_create_links_and_download_their_qr_codes(stack: Stack, admin: ConsoleSession) -> None:
    ref = new_ref("menu")
    created = admin.post("/api/console/links", json={"name": "Menú en las mesas", "ref": ref,
                                                     "start": {"entry_id": ENTRY}})
    assert created.status_code == 201, created.text
    link = created.json()["link"]
    assert (link["page_id"], link["ref"], link["start"], link["enabled"], link["created_by"]) == (
        PAGE_ID, ref, {"entry_id": ENTRY}, True, "admin")
    assert link["url"] == f"https://m.me/{PAGE_ID}?ref={ref}"

    png = admin.get(f"/api/console/links/{link['id']}/qr.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.headers["content-disposition"] == f'attachment; filename="qr-{ref}.png"'
    decoded = [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png.content)))]
    assert decoded == [link["url"]]
    svg = admin.get(f"/api/console/links/{link['id']}/qr.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in svg.content and "Menú en las mesas".encode() in svg.content

    # Bad input: a clear 4xx in Spanish, never a 500.
    again = admin.post("/api/console/links", json={"name": "Otro", "ref": ref})
    assert again.status_code == 409 and again.json()["error"]["reason_code"] == "ref_in_use"
    spaced = admin.post("/api/console/links", json={"name": "Otro", "ref": "con espacio"})
    assert spaced.status_code == 422 and "sin espacios" in spaced.json()["error"]["message"]
    assert spaced.json()["error"]["field"] == "ref"
    missing = admin.post("/api/console/links", json={"name": "Otro", "start": {"entry_id": "no_existe_en_la_matriz"}})
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "start", missing.text
    assert "«no_existe_en_la_matriz» no existe en la Matriz" in missing.json()["error"]["message"]
    assert "warning" not in created.json(), "the demo matrix is live: the entry was checked"
    control = admin.post("/api/console/links", json={"name": "Otro", "start": {"intent": "restart"}})
    assert control.status_code == 422 and control.json()["error"]["field"] == "start"
    page = admin.post("/api/console/links", json={"name": "Otro", "page_id": "999"})
    assert page.status_code == 422 and "no está configurada" in page.json()["error"]["message"]
    assert admin.get("/api/console/links/999999/qr.png").status_code == 404
    assert admin.get(f"/api/console/links/{link['id']}/qr.gif").status_code == 404

    # Switched off: listed as such; the service token reads and creates but cannot switch.
    off = admin.send("PATCH", f"/api/console/links/{link['id']}", json={"enabled": False})
    assert off.status_code == 200 and off.json()["link"]["enabled"] is False
    assert link_row(admin, link["id"])["enabled"] is False
    with httpx.Client(base_url=stack.app_url, headers=SERVICE, timeout=30) as service:
        assert any(row["id"] == link["id"] for row in service.get("/api/console/links").json()["links"])
        made = service.post("/api/console/links", json={"name": "Volante de enero"})
        assert made.status_code == 201 and made.json()["link"]["created_by"] == "service"
        assert service.patch(f"/api/console/links/{link['id']}", json={"enabled": True}).status_code == 401
    agent = ConsoleSession(stack.app_url, "agente")
    try:
        refused = agent.get("/api/console/links")
        assert refused.status_code == 403 and refused.json()["error"]["message"].startswith("Su rol (agente)")
    finally:
        agent.close()


def test_a_qr_code_for_a_knowledge_entry_answers_with_it_at_once(
    stack: Stack, messenger: Messenger, admin: ConsoleSession
) -> None:
    """A person who already has a conversation scans the QR code (a standalone referral): the bot answers the
    link's entry with no message typed. Meta redelivers the same referral: recorded and answered once. The agent's
    conversation view says the link; the counters count the scan."""
    ref = new_ref("qr")
    link = admin.post("/api/console/links", json={"name": "Cómo me escriben", "ref": ref,
                                                  "start": {"entry_id": ENTRY}}).json()["link"]
    user = new_user()
    body = simulate.webhook_body(PAGE_ID, [simulate.referral(PAGE_ID, user, ref)])
    assert messenger.deliver(body).status_code == 200
    messenger.wait_for(lambda: bool(answered_with(messenger, user, ENTRY_ANSWER)), 60, "the entry's answer")
    assert messenger.deliver(body).status_code == 200  # Meta redelivers: dropped at ingest, before the 200
    assert [row["kind"] for row in ingest_rows(stack, user)] == ["referral"], "one event: none left to answer"
    messenger.wait_for(lambda: ingest_rows(stack, user)[0]["status"] == "done", 30, "the referral's turn finished")
    assert len(answered_with(messenger, user, ENTRY_ANSWER)) == 1
    assert link_row(admin, link["id"])["counts"] == {"referrals": 1, "people": 1, "new_contacts": 0}

    view = admin.get(f"/api/console/conversations/{conversation_id_of(PAGE_ID, user)}")
    assert view.status_code == 200, view.text
    arrived = view.json()["conversation"]["arrived_by"]
    assert arrived["first"]["text_es"] == "Llegó por el enlace «Cómo me escriben»"
    assert arrived["first"]["ref"] == ref and arrived["first"]["source"] == "SHORTLINK"
    users_lines = [item["text"] for item in view.json()["conversation"]["transcript"] if item["author"] == "user"]
    assert users_lines == ["Llegó por el enlace «Cómo me escriben»"], "agents read the link, not a command"
    page = admin.get(f"/console/conversations/{conversation_id_of(PAGE_ID, user)}")
    assert "Llegó por el enlace «Cómo me escriben»" in page.text


def test_get_started_from_a_link_starts_its_entry_and_without_a_start_keeps_its_payload(
    stack: Stack, messenger: Messenger, admin: ConsoleSession
) -> None:
    """A first conversation from an m.me link: Meta sends the Get Started postback with the referral. With a start
    the entry answers; a ref no link has, or a link switched off, keeps the button's payload (/greet)."""
    ref = new_ref("nuevo")
    link = admin.post("/api/console/links", json={"name": "Volante", "ref": ref,
                                                  "start": {"entry_id": ENTRY}}).json()["link"]
    first = new_user()
    assert messenger.deliver(simulate.webhook_body(PAGE_ID, [simulate.get_started(PAGE_ID, first, ref=ref)])
                             ).status_code == 200
    messenger.wait_for(lambda: bool(answered_with(messenger, first, ENTRY_ANSWER)), 60, "the entry's answer")
    assert link_row(admin, link["id"])["counts"] == {"referrals": 1, "people": 1, "new_contacts": 1}

    assert admin.send("PATCH", f"/api/console/links/{link['id']}", json={"enabled": False}).status_code == 200
    for user, item_ref in ((new_user(), ref), (new_user(), new_ref("desconocida"))):
        assert messenger.deliver(simulate.webhook_body(PAGE_ID, [simulate.get_started(PAGE_ID, user, ref=item_ref)])
                                 ).status_code == 200
        messenger.wait_for(lambda user=user: len(messenger.texts(user)) >= 2, 60, "the welcome")  # type: ignore[misc]
        assert not answered_with(messenger, user, ENTRY_ANSWER), messenger.texts(user)
    assert link_row(admin, link["id"])["counts"]["referrals"] == 2, "switched off, it still counts"
    listed = admin.get("/api/console/links").json()["unmatched_refs"]
    assert any(row["ref"].startswith("desconocida_") for row in listed)
