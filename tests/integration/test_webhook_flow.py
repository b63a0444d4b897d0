"""The whole path against a real Rasa server: signed webhook → Rasa → action server → Send API (sandbox)."""

from __future__ import annotations

import time
import uuid

import httpx

from bot.stack import Stack
from sandbox import simulate
from tests.support.stack import PAGE_ID, Messenger, response_texts

DISCLOSURE = "asistente virtual automático"


def new_user() -> str:
    return f"psid-{uuid.uuid4().hex[:12]}"


def test_verification_handshake(stack: Stack) -> None:
    url = stack.webhook_url
    ok = httpx.get(
        url, params={"hub.mode": "subscribe", "hub.verify_token": "demo-verify-token", "hub.challenge": "42"}
    )
    assert (ok.status_code, ok.text) == (200, "42")
    assert ok.headers["content-type"].startswith("text/plain")
    wrong = httpx.get(url, params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "42"})
    assert wrong.status_code == 403
    assert (
        httpx.get(url, params={"hub.mode": "unsubscribe", "hub.verify_token": "demo-verify-token"}).status_code == 403
    )


def test_signed_message_gets_a_reply_through_the_send_api(messenger: Messenger) -> None:
    user = new_user()
    answer = messenger.say(user, "hola buenas")
    assert answer.status_code == 200
    texts = messenger.wait_for_text(user, response_texts("utter_greet"))
    assert DISCLOSURE in texts[0], "the bot says it is automated at the start of a conversation"
    requests = messenger.sent(user)
    assert all(item["page_id"] == PAGE_ID for item in requests)
    replies = [item["body"] for item in requests if "message" in item["body"]]
    assert {body["messaging_type"] for body in replies} == {"RESPONSE"}
    actions = [item["body"].get("sender_action") for item in requests if "sender_action" in item["body"]]
    assert actions[:2] == ["mark_seen", "typing_on"]


def test_batched_events_from_two_users_are_all_answered_in_order_per_user(messenger: Messenger) -> None:
    alice, bob = new_user(), new_user()
    greet, thanks = response_texts("utter_greet"), response_texts("utter_thanks")
    body = {
        "object": "page",
        "entry": [
            {
                "id": PAGE_ID,
                "time": simulate.now_ms(),
                "messaging": [
                    simulate.text_message(PAGE_ID, alice, "hola"),
                    simulate.text_message(PAGE_ID, bob, "buenas tardes"),
                ],
            },
            {
                "id": PAGE_ID,
                "time": simulate.now_ms(),
                "messaging": [
                    simulate.text_message(PAGE_ID, alice, "muchas gracias"),
                ],
            },
        ],
    }
    assert messenger.deliver(body).status_code == 200
    alice_texts = messenger.wait_for_text(alice, thanks)
    bob_texts = messenger.wait_for_text(bob, greet)
    greet_at = next(i for i, t in enumerate(alice_texts) if t in greet)
    thanks_at = next(i for i, t in enumerate(alice_texts) if t in thanks)
    assert greet_at < thanks_at, alice_texts
    assert sum(t in greet for t in bob_texts) == 1


def test_a_redelivery_is_answered_once(messenger: Messenger) -> None:
    user = new_user()
    body = simulate.webhook_body(PAGE_ID, [simulate.text_message(PAGE_ID, user, "hola")])
    assert messenger.deliver(body).status_code == 200
    assert messenger.deliver(body).status_code == 200
    # A later message from the same user is processed after the earlier ones (in order per user).
    assert messenger.say(user, "gracias").status_code == 200
    texts = messenger.wait_for_text(user, response_texts("utter_thanks"))
    assert sum(t in response_texts("utter_greet") for t in texts) == 1, texts


def test_bad_or_missing_signature_is_403_and_nothing_is_processed(messenger: Messenger) -> None:
    user = new_user()
    body = simulate.webhook_body(PAGE_ID, [simulate.text_message(PAGE_ID, user, "hola")])
    assert messenger.deliver(body, secret="not-the-app-secret").status_code == 403
    raw, headers = simulate.signed_request(body, messenger.app_secret)
    assert messenger.deliver_raw(raw, {"Content-Type": "application/json"}).status_code == 403
    legacy = {"Content-Type": "application/json", "X-Hub-Signature": "sha1=" + "0" * 40}
    assert messenger.deliver_raw(raw, legacy).status_code == 403
    tampered = raw.replace(b"hola", b"hole")
    assert messenger.deliver_raw(tampered, headers).status_code == 403
    assert messenger.say(user, "gracias").status_code == 200
    texts = messenger.wait_for_text(user, response_texts("utter_thanks"))
    assert not any(t in response_texts("utter_greet") for t in texts), texts


def test_malformed_bodies_are_rejected_with_clear_statuses(messenger: Messenger) -> None:
    raw = b"not json"
    _, headers = simulate.signed_request({}, messenger.app_secret)
    from meta.signature import SIGNATURE_HEADER, sign

    headers[SIGNATURE_HEADER] = sign(raw, messenger.app_secret)
    assert messenger.deliver_raw(raw, headers).status_code == 400
    assert messenger.deliver({"object": "instagram", "entry": []}).status_code == 400
    huge = {"object": "page", "entry": [], "padding": "x" * (1024 * 1024)}
    assert messenger.deliver(huge).status_code == 413


def test_standby_and_receipts_are_recorded_without_a_reply(messenger: Messenger) -> None:
    user = new_user()
    standby = simulate.webhook_body(PAGE_ID, [simulate.text_message(PAGE_ID, user, "hola")], standby=True)
    assert messenger.deliver(standby).status_code == 200
    receipts = simulate.webhook_body(
        PAGE_ID,
        [
            simulate.messaging(PAGE_ID, user, delivery={"mids": ["m_1"], "watermark": simulate.now_ms()}),
            simulate.messaging(PAGE_ID, user, read={"watermark": simulate.now_ms()}),
            simulate.messaging(PAGE_ID, user, something_new={"x": 1}),
        ],
    )
    assert messenger.deliver(receipts).status_code == 200
    assert messenger.say(user, "gracias").status_code == 200
    texts = messenger.wait_for_text(user, response_texts("utter_thanks"))
    assert not any(t in response_texts("utter_greet") for t in texts), texts


def test_quick_reply_payload_drives_rasa(messenger: Messenger) -> None:
    user = new_user()
    item = simulate.quick_reply(PAGE_ID, user, "Texto cualquiera", "/thanks")
    assert messenger.deliver(simulate.webhook_body(PAGE_ID, [item])).status_code == 200
    messenger.wait_for_text(user, response_texts("utter_thanks"))


def test_send_api_errors_are_surfaced_not_swallowed(messenger: Messenger, stack: Stack) -> None:
    user = new_user()
    failure = {"code": 551, "message": "This person isn't available right now.", "count": 10, "recipient_id": user}
    assert httpx.post(stack.app_url + "/sandbox/failures", json=failure).status_code in (200, 201)
    auth = {"Authorization": "Bearer demo-service-token"}
    try:
        assert messenger.say(user, "hola").status_code == 200

        def failed() -> list[dict]:
            answer = httpx.get(stack.app_url + "/api/outbox", params={"recipient_id": user, "status": "failed"},
                               headers=auth)
            return answer.json()["messages"]

        messenger.wait_for(lambda: len(failed()) >= 2, what="the failed replies recorded in the outbox")
        assert {(m["last_error_code"], m["reason_code"]) for m in failed()} == {(551, "person_unavailable")}
    finally:
        httpx.delete(stack.app_url + "/sandbox/failures")


def test_a_restart_between_the_200_and_the_processing_still_replies(messenger: Messenger, stack: Stack) -> None:
    user = new_user()
    # Hold the first Send API call (mark_seen) so processing cannot finish before Rasa dies.
    assert httpx.post(stack.app_url + "/sandbox/latency", json={"ms": 20000}).status_code in (200, 204)
    try:
        assert messenger.say(user, "hola").status_code == 200
        time.sleep(0.5)
        stack.stop_process("rasa", kill=True)
    finally:
        httpx.post(stack.app_url + "/sandbox/latency", json={"ms": 0})
    assert messenger.texts(user) == []
    stack.start_rasa()
    texts = messenger.wait_for_text(user, response_texts("utter_greet"))
    assert sum(t in response_texts("utter_greet") for t in texts) == 1
