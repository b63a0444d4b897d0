"""The sandbox chat in a real browser: typed messages go through the signed webhook, replies come back."""

from __future__ import annotations

import re
import uuid
from typing import Any

from playwright.sync_api import expect

from actions.handoff import HANDOFF_TEXTS
from bot.stack import Stack
from handoff.model import PauseReason
from tests.support.console_client import ConsoleSession
from tests.support.stack import PAGE_ID, Messenger, response_texts


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


def test_a_comment_from_the_chat_page_gets_its_private_reply_in_the_chat(page: Any, stack: Stack) -> None:
    """"Simular un comentario": the chat's user comments under a post (a signed `feed` webhook, the real path:
    journal, processor, outbox, the Graph sandbox), a rule for that post matches, and the private reply (addressed
    to the comment) arrives in this chat, since the sandbox knows the comment is this user's. Would catch a form
    that sends another author, a post id lost, or a private reply the chat does not show."""
    run = uuid.uuid4().hex[:8]
    user, post_id = f"browser-comment-{run}", f"{PAGE_ID}_{uuid.uuid4().int % 10**12}"
    reply = f"¡Hola! Te enviamos los precios por aquí ({run})"
    admin = ConsoleSession(stack.app_url, "admin")
    created = admin.post(f"/api/console/comments/pages/{PAGE_ID}/rules", json={
        "name": f"Chat {run}", "posts": {"mode": "ids", "post_ids": [post_id]},
        "comments": {"mode": "keywords", "keywords": ["precio"]},
        "reply": {"mode": "fixed", "message": {"text": reply}}})
    assert created.status_code == 201, created.text
    try:
        page.goto(f"{stack.app_url}/sandbox/chat?user={user}")
        page.click("#comment-box summary")
        page.fill("#comment-post", post_id)
        page.fill("#comment-text", "¿Precio? 😍")
        page.click("#comment-form button[type=submit]")

        expect(page.locator(".msg.comment")).to_have_text(f"💬 Comentario en {post_id}: ¿Precio? 😍")
        expect(page.locator(".msg.bot").last).to_have_text(reply, timeout=30_000)
        expect(page.locator(".msg.error")).to_have_count(0)
        expect(page.locator("#comment-post")).to_have_value(post_id)
    finally:
        admin.send("DELETE", f"/api/console/comments/rules/{created.json()['rule']['id']}")
        admin.close()
