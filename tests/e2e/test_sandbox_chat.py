"""The sandbox chat in a real browser: typed messages go through the signed webhook, replies come back."""

from __future__ import annotations

import re
import uuid
from typing import Any

from playwright.sync_api import expect

from actions.handoff import HANDOFF_TEXTS
from bot.stack import Stack
from handoff.model import PauseReason
from tests.support.stack import Messenger, response_texts


def one_of(texts: set[str]) -> re.Pattern[str]:
    return re.compile("^(" + "|".join(re.escape(text) for text in texts) + ")$")


def test_chat_page_round_trip_with_quick_replies(page: Any, stack: Stack) -> None:
    user = f"browser-{uuid.uuid4().hex[:8]}"
    page.goto(f"{stack.app_url}/sandbox/chat?user={user}")
    expect(page.locator("#who")).to_have_text(user)

    page.fill("#text", "eres un bot?")
    page.press("#text", "Enter")
    expect(page.locator(".msg.user")).to_have_text(["eres un bot?"])
    expect(page.locator(".msg.bot").first).to_contain_text("asistente virtual automático", timeout=30_000)
    expect(page.locator(".msg.bot").last).to_have_text(one_of(response_texts("utter_bot_challenge")), timeout=30_000)

    # The bot offered a person with quick replies; clicking one sends its payload as Meta does.
    quick = page.locator(".choices button", has_text="Hablar con un agente")
    expect(quick).to_be_visible(timeout=30_000)
    quick.click()
    expect(page.locator(".msg.user").last).to_have_text("Hablar con un agente")
    messenger = Messenger(stack)
    try:
        texts = messenger.wait_for_text(user, {HANDOFF_TEXTS[PauseReason.USER_ASKED]}, timeout=30)
        assert texts[-1] == HANDOFF_TEXTS[PauseReason.USER_ASKED]
        expect(page.locator(".msg.bot").last).to_have_text(texts[-1], timeout=30_000)
    finally:
        messenger.http.close()
