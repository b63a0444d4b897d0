"""The page's Messenger profile in a real browser (Debian's Chromium) against the real stack: an admin edits the
greeting and an ice breaker, sees a refusal named on its field, applies, and the Graph sandbox has recorded the
Messenger Profile API call with what was typed."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from playwright.sync_api import expect

from bot.stack import Stack
from tests.e2e.test_console import login
from tests.support.stack import PAGE_ID

TIMEOUT = 15_000


def test_an_admin_edits_the_greeting_and_an_ice_breaker_and_applies_them(page: Any, stack: Stack) -> None:
    marker = uuid.uuid4().hex[:6]
    greeting = f"¡Hola {{{{user_first_name}}}}! Pregúntenos lo que quiera ({marker})"
    question = f"¿Tienen delivery? {marker}"
    login(page, stack, "admin", "admin-demo")
    page.goto(f"{stack.app_url}/console/page-profile")
    expect(page.locator("h1")).to_have_text("Perfil de Messenger")
    expect(page.locator('nav a[href="/console/page-profile"]')).to_have_attribute("aria-current", "page")

    page.locator(".greeting-row .greeting-text").first.fill(greeting)
    for button in page.locator("#ice-breaker-rows .remove-row").all()[::-1]:
        button.click()
    page.click("#add-ice-breaker")
    page.locator("#ice-breaker-rows .ice-question").last.fill(question)
    page.locator("#ice-breaker-rows .ice-payload").last.fill('/ask_knowledge{"entry_id":"delivery"}')

    # A menu link without https is refused, named on its field, before Facebook is called.
    page.click("#add-menu-item")
    page.locator("#menu-rows .menu-type").last.select_option("web_url")
    page.locator("#menu-rows .menu-title").last.fill("Nuestra web")
    page.locator("#menu-rows .menu-value").last.fill("http://ejemplo.ec")
    page.click("#apply-profile")
    expect(page.locator("#profile-error")).to_contain_text("https://", timeout=TIMEOUT)
    expect(page.locator("#menu-rows .menu-value").last).to_have_class("menu-value invalid")
    page.locator("#menu-rows .remove-row").last.click()

    page.click("#apply-profile")
    expect(page.locator("#profile-status")).to_contain_text("Aplicado en Facebook", timeout=TIMEOUT)
    expect(page.locator("#profile-error")).to_be_hidden()

    records = httpx.get(f"{stack.app_url}/sandbox/requests", params={"page_id": PAGE_ID}, timeout=30).json()
    posted = [r for r in records if r["path"].endswith("/me/messenger_profile") and r["method"] == "POST"]
    assert posted and posted[-1]["accepted"], posted[-1:]
    body = posted[-1]["body"]
    assert body["greeting"][0] == {"locale": "default", "text": greeting}
    assert body["ice_breakers"] == [{"call_to_actions": [
        {"question": question, "payload": '/ask_knowledge{"entry_id":"delivery"}'}], "locale": "default"}]
    assert body["get_started"] == {"payload": "/greet"}
    # What Facebook has now, as the page shows it.
    page.click("#show-live")
    expect(page.locator("#live-profile")).to_contain_text(marker, timeout=TIMEOUT)
