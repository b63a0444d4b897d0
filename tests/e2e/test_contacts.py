"""«Contactos» in a real browser (Debian's Chromium) against the real stack: an agent opens the page from the menu,
finds a contact by name (typed without accents), opens it, sees the time left of the 24-hour window and of
HUMAN_AGENT, tags it, adds and then changes a field, writes a note; after a reload all of it is still there, and the
list filtered by the new tag shows the contact. An admin downloads the CSV export from the page (BOM, the
formula-looking tag escaped) and imports a file with a bad row: nothing imported and the row's error shown, then the
valid rows on request. The contacts are seeded in the app's contact store, as the contact sync records a person who
wrote (its profile from Meta)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from bot.stack import Stack
from contacts.store import ContactsStore
from tests.support.stack import PAGE_ID


def login(page: Any, stack: Stack, username: str, password: str) -> None:
    page.goto(f"{stack.app_url}/console/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")


def test_an_agent_finds_tags_and_annotates_a_contact(page: Any, stack: Stack, contacts: ContactsStore) -> None:
    psid = str(uuid.uuid4().int)[:16]
    token = uuid.uuid4().hex[:6]
    surname = f"Cañar {token}"
    tag = f"Cliente VIP/{token}"  # a "/" cannot travel in a URL path: the page removes tags through the body
    now = datetime.now(timezone.utc)
    contacts.upsert_seen(PAGE_ID, psid, now - timedelta(hours=2))
    contacts.record_profile(PAGE_ID, psid, "Ximena", surname, None, "es_LA", "fetched", None, now)

    login(page, stack, "agente", "agente-demo")
    expect(page).to_have_url(f"{stack.app_url}/console/inbox")
    page.get_by_role("link", name="Contactos").click()
    expect(page).to_have_url(f"{stack.app_url}/console/contacts")
    page.fill("#contacts-q", f"ximena {surname.replace('ñ', 'n').upper()}")
    page.get_by_role("button", name="Buscar").click()
    row = page.locator(f'tr[data-psid="{psid}"]')
    expect(row).to_be_visible()
    expect(page.locator("#contact-rows tr")).to_have_count(1)
    expect(row.locator(".contact-window")).to_contain_text("Abierta: quedan 21 h")
    row.get_by_role("link", name=f"Ximena {surname}").click()

    expect(page).to_have_url(f"{stack.app_url}/console/contacts/{PAGE_ID}/{psid}")
    expect(page.locator("#contact-name")).to_have_text(f"Ximena {surname}")
    expect(page.locator("#contact-window")).to_contain_text("Quedan 21 h")
    expect(page.locator("#contact-human-agent")).to_contain_text("HUMAN_AGENT durante 6 días 21 h")
    expect(page.locator("#contact-conversation")).to_have_attribute("href", f"/console/conversations/{PAGE_ID}:{psid}")

    page.fill("#tag-input", tag)
    page.get_by_role("button", name="Añadir", exact=True).click()
    expect(page.locator("#contact-tags")).to_contain_text(tag)
    page.evaluate("document.getElementById('tag-input').removeAttribute('maxlength')")
    page.fill("#tag-input", "x" * 41)
    page.get_by_role("button", name="Añadir", exact=True).click()
    expect(page.locator("#toast")).to_contain_text("más de 40 caracteres")

    page.fill("#field-key", "ciudad")
    page.fill("#field-value", "Quito")
    page.get_by_role("button", name="Añadir campo").click()
    value = page.locator('input.field-value[data-key="ciudad"]')
    expect(value).to_have_value("Quito")
    value.fill("Guayaquil")
    page.locator('tr[data-key="ciudad"]').get_by_role("button", name="Guardar").click()
    expect(page.locator("#toast")).to_contain_text("Campo guardado")

    page.fill("#note-text", "Quiere el catálogo de diciembre.\nLlamar por la tarde.")
    page.get_by_role("button", name="Guardar nota").click()
    expect(page.locator("#notes .note").first).to_contain_text("Quiere el catálogo de diciembre.")
    expect(page.locator("#notes .note").first).to_contain_text("agente")

    stored = contacts.get(PAGE_ID, psid)
    assert stored is not None
    assert (stored.tags, dict(stored.fields), stored.notes_count) == ((tag,), {"ciudad": "Guayaquil"}, 1)

    page.reload()
    expect(page.locator("#contact-tags")).to_contain_text(tag)
    expect(page.locator('input.field-value[data-key="ciudad"]')).to_have_value("Guayaquil")
    expect(page.locator("#notes")).to_contain_text("Llamar por la tarde.")
    page.locator(f'#contact-tags button.remove-tag[data-tag="{tag}"]').click()
    expect(page.locator("#contact-tags-empty")).to_be_visible()
    page.fill("#tag-input", tag)
    page.get_by_role("button", name="Añadir", exact=True).click()
    expect(page.locator("#contact-tags")).to_contain_text(tag)

    page.goto(f"{stack.app_url}/console/contacts")
    page.select_option("#contacts-tag", tag)
    page.get_by_role("button", name="Buscar").click()
    expect(page.locator(f'tr[data-psid="{psid}"]')).to_contain_text(tag)


def test_an_admin_exports_and_imports_contacts_from_the_page(page: Any, stack: Stack, contacts: ContactsStore,
                                                            tmp_path: Path) -> None:
    psid = str(uuid.uuid4().int)[:16]
    token = uuid.uuid4().hex[:6]
    now = datetime.now(timezone.utc)
    contacts.upsert_seen(PAGE_ID, psid, now - timedelta(hours=1))
    contacts.record_profile(PAGE_ID, psid, "Rosa", f"Quishpe {token}", None, "es_LA", "fetched", None, now)
    contacts.add_tags(PAGE_ID, psid, ["=SUMA(1;2)"], now)

    login(page, stack, "admin", "admin-demo")
    page.goto(f"{stack.app_url}/console/contacts")
    with page.expect_download() as download_info:
        page.locator("#contacts-export").click()
    saved = tmp_path / "contactos.csv"
    download_info.value.save_as(saved)
    data = saved.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM, as Excel expects
    line = next(row for row in data.decode("utf-8-sig").splitlines() if f";{psid};" in row)
    assert f"Quishpe {token}" in line and "'=SUMA(1;2)" in line  # the formula-looking tag escaped

    # A file with one bad row: nothing imported, the row's error shown in Spanish.
    bad = tmp_path / "importar.csv"
    bad.write_bytes(f"psid;nombre;etiquetas\n{psid};Rosa María;Importada {token}\n;Sin PSID;x\n".encode("utf-8-sig"))
    page.set_input_files("#contacts-import-file", str(bad))
    page.get_by_role("button", name="Importar contactos").click()
    expect(page.locator("#contacts-import-summary")).to_contain_text("no se importó ningún contacto")
    expect(page.locator("#contacts-import-errors tbody tr")).to_have_count(1)
    expect(page.locator("#contacts-import-errors tbody")).to_contain_text("3")
    stored = contacts.get(PAGE_ID, psid)
    assert stored is not None and stored.first_name == "Rosa"

    # Only the valid rows, on request.
    page.check("#contacts-import-partial")
    page.get_by_role("button", name="Importar contactos").click()
    expect(page.locator("#contacts-import-summary")).to_contain_text("1 actualizados")
    stored = contacts.get(PAGE_ID, psid)
    assert stored is not None and f"Importada {token}" in stored.tags
