"""The m.me links page in a real browser (Debian's Chromium) against the real stack: an admin opens «Enlaces y
QR» from the menu, creates a link that answers a knowledge entry, sees it listed with its URL, downloads its QR
code as PNG and the test decodes it to that URL, then switches the link off. An agent has no such page."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import zxingcpp
from PIL import Image
from playwright.sync_api import expect

from bot.stack import Stack
from tests.support.stack import PAGE_ID


def login(page: Any, stack: Stack, username: str, password: str) -> None:
    page.goto(f"{stack.app_url}/console/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")


def test_an_admin_creates_a_link_and_downloads_its_qr_code(page: Any, stack: Stack, tmp_path: Path) -> None:
    ref = f"menu_{uuid.uuid4().hex[:8]}"
    login(page, stack, "admin", "admin-demo")
    expect(page).to_have_url(f"{stack.app_url}/console/inbox")
    page.get_by_role("link", name="Enlaces y QR").click()
    expect(page).to_have_url(f"{stack.app_url}/console/links")

    page.fill("#link-name", "Menú en las mesas")
    page.fill("#link-ref", ref)
    page.select_option("#link-start-kind", "entry_id")
    page.fill("#link-start-value", "iniciar_conversacion")
    page.get_by_role("button", name="Crear enlace").click()

    row = page.locator(f'tr[data-ref="{ref}"]')
    expect(row).to_be_visible()
    url = f"https://m.me/{PAGE_ID}?ref={ref}"
    expect(row.locator(".link-url")).to_have_text(url)
    expect(row).to_contain_text("entrada «iniciar_conversacion» de la matriz")
    expect(row.locator(".count-referrals")).to_have_text("0")

    with page.expect_download() as download_info:
        row.locator("a.qr-png").click()
    download = download_info.value
    assert download.suggested_filename == f"qr-{ref}.png"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert [result.text for result in zxingcpp.read_barcodes(Image.open(saved))] == [url]

    # A ref with a space is refused in Spanish, in place.
    page.fill("#link-name", "Otro")
    page.fill("#link-ref", "otra")
    page.evaluate("document.getElementById('link-ref').removeAttribute('pattern')")
    page.fill("#link-ref", "con espacio")
    page.select_option("#link-start-kind", "")
    page.get_by_role("button", name="Crear enlace").click()
    expect(page.locator("#toast")).to_contain_text("sin espacios")

    row.get_by_role("button", name="Apagar").click()
    expect(page.locator(f'tr[data-ref="{ref}"]')).to_contain_text("Apagado")
    expect(page.locator(f'tr[data-ref="{ref}"]').get_by_role("button", name="Encender")).to_be_visible()


def test_an_agent_has_no_links_page(page: Any, stack: Stack) -> None:
    login(page, stack, "agente", "agente-demo")
    expect(page).to_have_url(f"{stack.app_url}/console/inbox")
    expect(page.get_by_role("link", name="Enlaces y QR")).to_have_count(0)
    answer = page.goto(f"{stack.app_url}/console/links")
    assert answer is not None and answer.status == 403
