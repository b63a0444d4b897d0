"""Human handoff against the real stack: signed webhooks in, Rasa's tracker, the app's handoff service, the
Send API sandbox out. The worst failure is the bot answering while a person talks to the customer."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from actions.handoff import HANDOFF_TEXTS
from actions.knowledge import NO_ANSWER_TEXTS
from bot.stack import Stack
from core.settings import DEMO_RASA_TOKEN, DEMO_SERVICE_TOKEN, PAGE_INBOX_APP_ID
from handoff.model import PauseReason, conversation_id_of
from handoff.rasa_api import rasa_auth_headers
from handoff.service import transcript_items
from sandbox import simulate
from tests.support.stack import PAGE_ID, Messenger, response_texts

AUTH = {"Authorization": f"Bearer {DEMO_SERVICE_TOKEN}"}
HANDOFF_PHRASE = "te comunico con una persona del equipo"


def new_user() -> str:
    return f"psid-{uuid.uuid4().hex[:12]}"


def handoff_state(stack: Stack, user: str) -> dict[str, Any]:
    answer = httpx.get(stack.app_url + "/internal/handoff/state", params={"page_id": PAGE_ID, "user_id": user},
                       headers=AUTH)
    assert answer.status_code == 200, answer.text
    return answer.json()


def conversation_state(stack: Stack, user: str) -> str | None:
    conversation = handoff_state(stack, user)["conversation"]
    return conversation["state"] if conversation else None


def rasa_tracker(stack: Stack, user: str) -> dict[str, Any]:
    answer = httpx.get(f"{stack.rasa_url}/conversations/{user}/tracker", headers=rasa_auth_headers(DEMO_RASA_TOKEN))
    assert answer.status_code == 200, answer.text
    return answer.json()


def requests_to(stack: Stack, user: str) -> list[dict[str, Any]]:
    """Every Send API request for the user, sender actions and rejected ones included."""
    return httpx.get(stack.app_url + "/sandbox/requests", params={"recipient_id": user}).json()


def outbox_messages(stack: Stack, user: str) -> list[dict[str, Any]]:
    answer = httpx.get(stack.app_url + "/api/outbox", params={"recipient_id": user}, headers=AUTH)
    return answer.json()["messages"]


def wait_for_handoff_text(messenger: Messenger, user: str) -> list[str]:
    messenger.wait_for(lambda: any(HANDOFF_PHRASE in t.lower() for t in messenger.texts(user)), 60,
                       f"the handoff message to {user}")
    return messenger.texts(user)


def test_a_person_takes_over_the_bot_stays_silent_and_comes_back_after_the_close(
    messenger: Messenger, stack: Stack
) -> None:
    user = new_user()
    conversation_id = conversation_id_of(PAGE_ID, user)

    # 1. The user asks for a person: told a person will answer; Rasa pauses; the app lists the conversation.
    assert messenger.say(user, "quiero hablar con una persona").status_code == 200
    texts = wait_for_handoff_text(messenger, user)
    assert texts[-1] == HANDOFF_TEXTS[PauseReason.USER_ASKED]
    messenger.wait_for(lambda: conversation_state(stack, user) == "paused", 10, "the app to record the pause")
    assert rasa_tracker(stack, user)["paused"] is True
    conversation = handoff_state(stack, user)["conversation"]
    assert (conversation["paused_reason"], conversation["paused_by"]) == ("user_asked", "bot")
    assert conversation["paused_at"]

    # 2. While paused the user writes: no Send API request at all for them (not even typing or mark_seen),
    #    Rasa keeps the message and agents see it. A typed `/restart` does not wake the bot either.
    requests_before = len(requests_to(stack, user))
    outbox_before = len(outbox_messages(stack, user))
    for text in ("hola, ¿hay alguien?", "/restart"):
        assert messenger.say(user, text).status_code == 200
    messenger.wait_for(
        lambda: [m["text"] for m in handoff_state(stack, user)["messages"]] == ["hola, ¿hay alguien?", "/restart"],
        30, "the messages written while paused in the live view",
    )
    # The app hears of a message after Rasa stored it, so anything the bot would send has been sent by now.
    assert len(requests_to(stack, user)) == requests_before, requests_to(stack, user)[requests_before:]
    assert len(outbox_messages(stack, user)) == outbox_before
    tracker = rasa_tracker(stack, user)
    assert tracker["paused"] is True
    user_texts = [event.get("text") for event in tracker["events"] if event["event"] == "user"]
    assert user_texts[-2:] == ["hola, ¿hay alguien?", "restart"]  # typed text never reaches Rasa as a /command

    # 3. An agent answers through the service: the outbox sends it as a person's reply inside 24 h.
    reply = httpx.post(stack.app_url + "/internal/handoff/reply", headers=AUTH,
                       json={"conversation_id": conversation_id, "agent": "ana", "text": "Hola, soy Ana. Te ayudo."})
    assert reply.status_code == 200, reply.text
    assert reply.json()["decision"]["messaging_type"] == "RESPONSE"
    messenger.wait_for(lambda: "Hola, soy Ana. Te ayudo." in messenger.texts(user), 30, "the agent's reply")
    sent = [item["body"] for item in messenger.sent(user) if item["body"].get("message", {}).get("text") ==
            "Hola, soy Ana. Te ayudo."]
    assert [body["messaging_type"] for body in sent] == ["RESPONSE"] and "tag" not in sent[0]
    [stored] = [m for m in outbox_messages(stack, user) if m["sender"] == "human"]
    assert (stored["sender_name"], stored["purpose"]) == ("ana", "reply")
    agent_events = [e for e in rasa_tracker(stack, user)["events"] if e["event"] == "bot"
                    and (e.get("metadata") or {}).get("agent") == "ana"]
    assert [e["text"] for e in agent_events] == ["Hola, soy Ana. Te ayudo."], "the transcript includes the agent"
    transcript = [(item.author, item.text) for item in transcript_items(rasa_tracker(stack, user)["events"])]
    asked = transcript.index(("user", "quiero hablar con una persona"))
    assert transcript[asked + 1] == ("bot", HANDOFF_TEXTS[PauseReason.USER_ASKED])
    assert transcript[-3:] == [("user", "hola, ¿hay alguien?"), ("user", "/restart"),
                               ("agent:ana", "Hola, soy Ana. Te ayudo.")]
    assert rasa_tracker(stack, user)["paused"] is True

    # 4. Closed with a note: Rasa resumes, and the next message gets the bot's answer.
    closed = httpx.post(stack.app_url + "/internal/handoff/resume", headers=AUTH,
                        json={"conversation_id": conversation_id, "by": "ana", "closing_note": "Pedido 123 resuelto"})
    assert closed.status_code == 200, closed.text
    assert closed.json()["conversation"]["state"] == "bot"
    assert rasa_tracker(stack, user)["paused"] is False
    assert messenger.say(user, "muchas gracias").status_code == 200
    messenger.wait_for_text(user, response_texts("utter_thanks"), 60)


def test_an_echo_from_the_page_inbox_pauses_the_conversation(messenger: Messenger, stack: Stack) -> None:
    user = new_user()
    assert messenger.say(user, "hola").status_code == 200
    messenger.wait_for_text(user, response_texts("utter_greet"))

    text = "Hola, soy Ana de la tienda"
    message = {"mid": simulate.new_mid(), "text": text, "is_echo": True, "app_id": int(PAGE_INBOX_APP_ID)}
    echo = simulate.messaging(PAGE_ID, user, message=message)
    echo["sender"], echo["recipient"] = {"id": PAGE_ID}, {"id": user}  # the page wrote to the user
    assert messenger.deliver(simulate.webhook_body(PAGE_ID, [echo])).status_code == 200

    messenger.wait_for(lambda: conversation_state(stack, user) == "paused", 30, "the echo to pause the conversation")
    state = handoff_state(stack, user)
    assert (state["conversation"]["paused_reason"], state["conversation"]["paused_by"]) == (
        "agent_wrote_outside", "page_inbox",
    )
    assert [(m["author"], m["text"]) for m in state["messages"]] == [("agent:page_inbox", text)]
    assert rasa_tracker(stack, user)["paused"] is True

    requests_before = len(requests_to(stack, user))
    assert messenger.say(user, "gracias Ana").status_code == 200
    messenger.wait_for(lambda: any(m["text"] == "gracias Ana" for m in handoff_state(stack, user)["messages"]), 30,
                       "the user's message in the live view")
    assert len(requests_to(stack, user)) == requests_before


def test_a_person_writing_first_to_someone_the_bot_never_met_pauses_the_conversation(
    messenger: Messenger, stack: Stack
) -> None:
    """A person writes from the Page inbox to a customer who never wrote to the bot: Rasa has no conversation
    for them yet, and appending the pause used to run a session start with no output channel (Rasa answered
    500, the echo ended `failed` and the bot was not paused)."""
    user = new_user()
    text = "Hola, le escribimos por su pedido"
    message = {"mid": simulate.new_mid(), "text": text, "is_echo": True, "app_id": int(PAGE_INBOX_APP_ID)}
    echo = simulate.messaging(PAGE_ID, user, message=message)
    echo["sender"], echo["recipient"] = {"id": PAGE_ID}, {"id": user}
    assert messenger.deliver(simulate.webhook_body(PAGE_ID, [echo])).status_code == 200

    messenger.wait_for(lambda: conversation_state(stack, user) == "paused", 30,
                       "the first-contact echo to pause the conversation")
    assert rasa_tracker(stack, user)["paused"] is True, "Rasa itself must hold the conversation paused"
    requests_before = len(requests_to(stack, user))
    assert messenger.say(user, "hola, sí, ¿qué pasó?").status_code == 200
    messenger.wait_for(lambda: any(m["text"] == "hola, sí, ¿qué pasó?" for m in handoff_state(stack, user)["messages"]),
                       30, "the customer's answer in the live view")
    assert len(requests_to(stack, user)) == requests_before, "the bot must stay silent while a person holds it"


def test_two_questions_in_a_row_without_an_answer_hand_off(messenger: Messenger, stack: Stack) -> None:
    # Off-topic for the demo matrix: no answer and no "¿Quisiste decir…?"; without an LLM key, no GPT fallback.
    user = new_user()
    assert messenger.say(user, "¿cuál es la capital de Mongolia?").status_code == 200
    messenger.wait_for(lambda: any(t in NO_ANSWER_TEXTS for t in messenger.texts(user)), 60, "the first no-answer")
    assert conversation_state(stack, user) is None, "one miss does not hand off"

    assert messenger.say(user, "recomiéndame una película de terror").status_code == 200
    texts = wait_for_handoff_text(messenger, user)
    assert texts[-1] == HANDOFF_TEXTS[PauseReason.BOT_FAILED]
    messenger.wait_for(lambda: conversation_state(stack, user) == "paused", 10, "the app to record the pause")
    assert handoff_state(stack, user)["conversation"]["paused_reason"] == "bot_failed"
    assert rasa_tracker(stack, user)["paused"] is True


def test_an_agent_reply_the_policy_refuses_says_why(stack: Stack) -> None:
    conversation_id = conversation_id_of(PAGE_ID, new_user())  # never wrote: no window at all
    answer = httpx.post(stack.app_url + "/internal/handoff/reply", headers=AUTH,
                        json={"conversation_id": conversation_id, "agent": "ana", "text": "Hola"})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["reason_code"] == "never_wrote" and error["reason_es"]


@pytest.mark.parametrize("path", ["/internal/handoff/state?page_id=1&user_id=2", "/internal/handoff/pause"])
def test_the_internal_api_needs_the_service_token(stack: Stack, path: str) -> None:
    method = httpx.get if "state" in path else httpx.post
    kwargs: dict[str, Any] = {} if "state" in path else {"json": {}}
    assert method(stack.app_url + path, headers={"Authorization": "Bearer wrong"}, **kwargs).status_code == 401
    assert method(stack.app_url + path, **kwargs).status_code == 401


def test_rasa_api_needs_its_token(stack: Stack) -> None:
    answer = httpx.get(f"{stack.rasa_url}/conversations/someone/tracker")
    assert answer.status_code == 401, "Rasa's HTTP API (pause/resume) is not open to anyone"


def test_a_new_session_does_not_wake_a_paused_bot(messenger: Messenger, stack: Stack) -> None:
    """Rasa starts a new session after an hour of silence, and SessionStarted unpauses: a customer coming back
    to a conversation a person holds must still get no bot answer (actions/session.py keeps the pause)."""
    user = new_user()
    two_hours_ago = time.time() - 2 * 3600
    parse_data = {"text": "hola", "intent": {"name": "greet", "confidence": 1.0}, "entities": []}
    history = [
        {"event": "action", "name": "action_session_start", "timestamp": two_hours_ago},
        {"event": "session_started", "timestamp": two_hours_ago},
        {"event": "action", "name": "action_listen", "timestamp": two_hours_ago},
        {"event": "user", "text": "hola", "parse_data": parse_data, "timestamp": two_hours_ago},
        {"event": "pause", "timestamp": two_hours_ago},
    ]
    answer = httpx.put(f"{stack.rasa_url}/conversations/{user}/tracker/events",
                       headers=rasa_auth_headers(DEMO_RASA_TOKEN),
                       json=history)
    assert answer.status_code == 200, answer.text

    for text in ("hola, ¿me ayudan?", "gracias"):
        assert messenger.say(user, text).status_code == 200
    messenger.wait_for(lambda: len(handoff_state(stack, user)["messages"]) == 2, 30, "both messages in the live view")
    assert requests_to(stack, user) == [], "no disclosure, no typing, no answer"
    tracker = rasa_tracker(stack, user)
    assert tracker["paused"] is True
    assert any(event["event"] == "session_started" for event in tracker["events"]), "a new session did start"
    conversation = handoff_state(stack, user)["conversation"]
    assert (conversation["state"], conversation["paused_by"]) == ("paused", "rasa"), "listed for agents"
