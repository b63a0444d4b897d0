"""The inbox of every conversation in a real browser (Debian's Chromium) against the real stack: an agent watches
the conversations the chatbot handles; a person writes to the page (a signed webhook) and, once the contacts' sync
has seen them, their row appears without a reload, unread, with the name from their Facebook profile (the sandbox's);
the agent opens it and takes it over with «Pausar el Chatbot», then gives it back with a closing note."""

from __future__ import annotations

import uuid
from typing import Any

from playwright.sync_api import expect

from bot.stack import Stack
from handoff.model import conversation_id_of
from tests.support.stack import PAGE_ID, Messenger

LIVE_TIMEOUT = 30_000


def test_an_agent_finds_a_conversation_the_bot_handles_and_takes_it_over(page: Any, stack: Stack) -> None:
    messenger = Messenger(stack)
    user = str(uuid.uuid4().int)[:16]
    conversation_id = conversation_id_of(PAGE_ID, user)
    try:
        page.goto(f"{stack.app_url}/console/login")
        page.fill("#username", "agente")
        page.fill("#password", "agente-demo")
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{stack.app_url}/console/inbox")
        expect(page.locator("#inbox-rows")).to_be_attached()  # the paused list stays the default
        page.select_option("#inbox-state", "bot")
        page.get_by_role("button", name="Filtrar").click()
        expect(page.locator("#live-status")).to_have_text("En vivo", timeout=LIVE_TIMEOUT)
        page.evaluate("window.__noReload = true")

        assert messenger.say(user, "hola").status_code == 200
        row = page.locator(f'tr[data-conversation-id="{conversation_id}"]')
        expect(row).to_be_visible(timeout=LIVE_TIMEOUT)
        assert page.evaluate("window.__noReload") is True
        expect(row).to_contain_text("Atiende el chatbot")
        expect(row.locator(".unread-dot")).to_be_visible()
        expect(row.get_by_role("link")).not_to_have_text(f"Sin nombre (PSID …{user[-4:]})", timeout=LIVE_TIMEOUT)

        row.get_by_role("link").click()
        expect(page.locator("#state-badge")).to_have_text("Atiende el chatbot")
        page.click("#pause-bot")
        expect(page.locator("#state-badge")).to_have_text("Chatbot en pausa")
        expect(page.locator("#paused-reason")).to_have_text("Un agente pausó el chatbot")

        page.goto(f"{stack.app_url}/console/inbox?estado=mine")
        mine = page.locator(f'tr[data-conversation-id="{conversation_id}"]')
        expect(mine).to_contain_text("Chatbot en pausa")
        expect(mine.locator(".unread-dot")).to_have_count(0)  # opened since the person wrote

        mine.get_by_role("link").click()
        page.fill("#close-note", "Consulta resuelta")
        page.click("#close-button")
        expect(page.locator("#state-badge")).to_have_text("Atiende el chatbot")
    finally:
        messenger.http.close()
