"""Comments become conversations, through the real path of the running stack: a signed `feed` webhook → the webhook
process → the comment journal → the app's comment processor → the outbox → the Graph API sandbox (the private
reply with `recipient.comment_id`, the public reply on the comment's `/comments` edge).

One admin rule (made through the console API, first in the page's order, scoped to this test's post and keyword).
Would catch: a comment answered twice when Meta redelivers it; a private reply to a comment older than Meta's 7 days;
a second reply to the same person on the same post the same day; a comment left without a reason the console shows;
the private reply's PSID not learnt (the conversation that follows not knowing the comment it started from).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from bot.stack import Stack
from handoff.model import conversation_id_of
from sandbox import simulate
from tests.support.console_client import ConsoleSession
from tests.support.stack import PAGE_ID, Messenger

API = f"/api/console/comments/pages/{PAGE_ID}"
PRIVATE_TEXT = "¡Hola! Te escribimos por aquí con los precios 👇"
PUBLIC_TEXTS = ["¡Te escribimos por interno! 📩", "Revisa tu Messenger 😊"]


@pytest.fixture
def admin(stack: Stack) -> Iterator[ConsoleSession]:
    session = ConsoleSession(stack.app_url, "admin")
    yield session
    session.close()


def new_keyword() -> str:
    """A word of this test only (letters: the rules normalize digits and repeated letters their own way)."""
    return "combo" + "".join(random.choice("bcdfghjklmnpqrstvwz") for _ in range(6))


def sent_for(messenger: Messenger, comment_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The accepted private replies to a comment and the public replies under it, oldest first."""
    records = messenger.sent()
    private = [r for r in records if r["path"].endswith("/messages")
               and r["body"].get("recipient", {}).get("comment_id") == comment_id]
    public = [r for r in records if r["path"].endswith(f"/{comment_id}/comments")]
    return private, public


def verdict(admin: ConsoleSession, comment_id: str) -> dict[str, Any] | None:
    """The comment as the console lists it, once the processor decided it."""
    for row in admin.get(f"{API}/recent", params={"limit": 200}).json()["comments"]:
        if row["comment_id"] == comment_id and row["status"] not in ("pending",):
            return row
    return None


def wait_for_verdict(messenger: Messenger, admin: ConsoleSession, comment_id: str) -> dict[str, Any]:
    messenger.wait_for(lambda: verdict(admin, comment_id) is not None, 30, f"the verdict on {comment_id}")
    found = verdict(admin, comment_id)
    assert found is not None
    return found


def test_comments_get_one_private_and_public_reply_within_the_limits(
    stack: Stack, messenger: Messenger, admin: ConsoleSession
) -> None:
    tag = uuid.uuid4().hex[:8]
    keyword, post_id = new_keyword(), simulate.new_post_id(PAGE_ID)
    created = admin.post(f"{API}/rules", json={
        "name": f"Precios {tag}", "posts": {"mode": "ids", "post_ids": [post_id]},
        "comments": {"mode": "keywords", "keywords": [keyword]},
        "reply": {"mode": "fixed", "message": {"text": PRIVATE_TEXT}}, "public_replies": PUBLIC_TEXTS,
    })
    assert created.status_code == 201, created.text
    rule_id = created.json()["rule"]["id"]
    others = [rule["id"] for rule in admin.get(f"{API}/rules").json()["rules"] if rule["id"] != rule_id]
    assert admin.send("PUT", f"{API}/order", json={"rule_ids": [rule_id, *others]}).status_code == 200
    psid = f"ana-{tag}"  # the PSID the sandbox chat talks as: the private reply reaches it
    try:
        # 1. A comment from the sandbox's comment form (signed, through the webhook process).
        first = messenger.http.post(stack.app_url + "/sandbox/comments", json={
            "user_id": psid, "from_name": "Ana", "text": f"¿{keyword.upper()}? 😍", "post_id": post_id})
        assert first.status_code == 200 and first.json()["webhook_status"] == 200, first.text
        comment_a = first.json()["comment_id"]
        messenger.wait_for(lambda: all(sent_for(messenger, comment_a)), 30, "the private and the public reply")
        [private], [public] = sent_for(messenger, comment_a)
        assert private["body"]["message"] == {"text": PRIVATE_TEXT}
        assert private["body"]["messaging_type"] == "RESPONSE"
        assert private["response"]["recipient_id"] == psid, "Meta answers the commenter's PSID"
        assert public["body"]["message"] in PUBLIC_TEXTS
        assert wait_for_verdict(messenger, admin, comment_a)["status"] == "replied"

        # 2. Meta delivers another person's comment twice: one reply.
        comment_b = simulate.new_comment_id(post_id)
        body_b = simulate.feed_body(PAGE_ID, [simulate.comment(PAGE_ID, "6100000000000042", "Luis", post_id,
                                                               f"{keyword} por favor", comment_id=comment_b)])
        assert messenger.deliver(body_b).status_code == 200
        assert messenger.deliver(body_b).status_code == 200

        # 3. A comment 8 days old (a late delivery): no private reply, and the console says why.
        comment_c = simulate.new_comment_id(post_id)
        eight_days_ago = simulate.now_seconds() - 8 * 24 * 3600
        assert messenger.deliver(simulate.feed_body(PAGE_ID, [simulate.comment(
            PAGE_ID, "6100000000000043", "Rosa", post_id, f"{keyword}?", comment_id=comment_c,
            created_time=eight_days_ago)])).status_code == 200

        # 4. The first person again, on the same post, the same day: no second reply.
        again = messenger.http.post(stack.app_url + "/sandbox/comments", json={
            "user_id": psid, "from_name": "Ana", "text": f"{keyword} y el envío?", "post_id": post_id})
        assert again.status_code == 200, again.text
        comment_d = again.json()["comment_id"]

        old, repeat = wait_for_verdict(messenger, admin, comment_c), wait_for_verdict(messenger, admin, comment_d)
        assert (old["status"], old["reason_code"]) == ("skipped", "outside_window")
        assert "7 días" in old["reason_es"]
        assert (repeat["status"], repeat["reason_code"]) == ("skipped", "already_replied_today")
        assert wait_for_verdict(messenger, admin, comment_b)["status"] == "replied"
        # A redelivery is never journaled twice (below), so its comment is decided once: its two sends are all.
        messenger.wait_for(lambda: all(sent_for(messenger, comment_b)), 30, "the replies to the redelivered one")
        assert [len(replies) for replies in sent_for(messenger, comment_b)] == [1, 1]
        assert [len(replies) for replies in sent_for(messenger, comment_a)] == [1, 1]
        assert sent_for(messenger, comment_c) == ([], []) and sent_for(messenger, comment_d) == ([], [])
        rows = [row for row in admin.get(f"{API}/recent", params={"limit": 200}).json()["comments"]
                if row["comment_id"] == comment_b]
        assert len(rows) == 1, "the redelivery was recorded once"

        # 5. Ana answers the private reply in Messenger: a normal conversation, which knows its comment.
        assert messenger.say(psid, "hola").status_code == 200
        messenger.wait_for(lambda: bool(messenger.texts(psid)[1:]), 60, "the bot's answer to Ana")
        conversation = f"/api/console/conversations/{conversation_id_of(PAGE_ID, psid)}"
        messenger.wait_for(lambda: admin.get(conversation).json()["conversation"].get("from_comment") is not None,
                           30, "the conversation's comment")
        origin = admin.get(conversation).json()["conversation"]["from_comment"]
        assert (origin["text"], origin["comment_id"]) == (f"¿{keyword.upper()}? 😍", comment_a)
        page = admin.get(f"/console/conversations/{conversation_id_of(PAGE_ID, psid)}")
        assert f"Inició desde un comentario: «¿{keyword.upper()}? 😍»" in page.text
    finally:
        admin.send("DELETE", f"/api/console/comments/rules/{rule_id}")

