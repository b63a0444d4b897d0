""""Respuestas privadas" in a real browser (Debian's Chromium) against the real stack: an admin creates a rule in the
page and sees it listed, a customer comments "PRECIO??? 😍" under the rule's post (a signed `feed` webhook to the
webhook process), and the page shows the comment answered by that rule, while the Send API sandbox received the
private reply addressed to the comment.

Would catch: a form that builds a body the API refuses; a rule saved but not listed; a comment that never reaches the
journal, is not matched despite case, accents and emoji, or is shown without its verdict.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from playwright.sync_api import expect

from bot.stack import Stack
from sandbox import simulate
from tests.support.stack import PAGE_ID, Messenger

TIMEOUT = 30_000


def test_an_admin_creates_a_rule_and_watches_a_comment_get_its_reply(page: Any, stack: Stack) -> None:
    run = uuid.uuid4().hex[:8]
    name = f"Precio {run}"
    post_id = f"{PAGE_ID}_{uuid.uuid4().int % 10**12}"  # the rule is for this post only: other tests are untouched
    page.goto(f"{stack.app_url}/console/login?next=/console/comments")
    page.fill("#username", "admin")
    page.fill("#password", "admin-demo")
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{stack.app_url}/console/comments")
    messenger = Messenger(stack)
    try:
        page.fill("#rule-name", name)
        page.select_option("#rule-posts-mode", "ids")
        page.fill("#rule-post-ids", post_id)
        page.fill("#rule-keywords", "precio, cuánto cuesta")
        page.fill("#rule-text", "¡Hola! Te contamos los precios por aquí 👇")
        page.fill("#rule-quick-replies", "Ver catálogo | /catalogo")
        page.fill("#rule-public-replies", "¡Te escribimos por interno! 📩")
        page.click("#rule-save")
        row = page.locator("#rule-rows tr", has_text=name)
        expect(row).to_be_visible(timeout=TIMEOUT)
        expect(row).to_contain_text("Activa")
        expect(row).to_contain_text("«precio», «cuánto cuesta»")
        expect(row).to_contain_text("Te contamos los precios")

        comment_id = f"{post_id.rsplit('_', 1)[-1]}_{uuid.uuid4().int % 10**15}"
        change = simulate.comment(PAGE_ID, f"e2e-{run}", "Ana Pérez", post_id, "PRECIO??? 😍", comment_id=comment_id)
        assert messenger.deliver(simulate.feed_body(PAGE_ID, [change])).status_code == 200

        page.click("#recent-refresh")  # the page looks again every 2 s while a comment it shows is pending
        comment = page.locator(f'#recent-rows tr[data-comment-id="{comment_id}"]')
        expect(comment).to_have_attribute("data-status", "replied", timeout=TIMEOUT)
        expect(comment).to_contain_text("Respondido")
        expect(comment).to_contain_text(name)
        expect(comment).to_contain_text("PRECIO??? 😍")

        private = [item["body"] for item in messenger.sent()
                   if item["body"].get("recipient", {}).get("comment_id") == comment_id]
        assert [body["message"]["text"] for body in private] == ["¡Hola! Te contamos los precios por aquí 👇"]
    finally:
        messenger.http.close()
        _delete_rules_named(stack, name)


def _delete_rules_named(stack: Stack, name: str) -> None:
    with httpx.Client(base_url=stack.app_url, timeout=10) as http:
        csrf = http.post("/api/console/login", json={"username": "admin", "password": "admin-demo"}).json()[
            "csrf_token"]
        rules = http.get(f"/api/console/comments/pages/{PAGE_ID}/rules").json()["rules"]
        for rule in rules:
            if rule["name"] == name:
                http.delete(f"/api/console/comments/rules/{rule['id']}", headers={"X-CSRF-Token": csrf})
