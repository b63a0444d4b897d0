"""No route but the console/internal API wakes a paused conversation, and Rasa serves no unauthenticated channel.

On the old code `credentials.yml` served Rasa's REST channel (`rest: {}`) without authentication, and Rasa's HTTP
API took its token in the query string (`?token=`): the first two tests fail there. The last one walks every
route a stranger has to a paused conversation (typed, quick reply and postback payloads `/restart`,
`/session_start`, signed as Meta signs them) and proves none makes the bot talk or unpauses it.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from bot.stack import Stack
from core.settings import DEMO_RASA_TOKEN, DEMO_SERVICE_TOKEN
from handoff.rasa_api import rasa_auth_headers
from sandbox import simulate
from tests.support.stack import PAGE_ID, Messenger

AUTH = {"Authorization": f"Bearer {DEMO_SERVICE_TOKEN}"}


def new_user() -> str:
    return f"psid-{uuid.uuid4().hex[:12]}"


def tracker(stack: Stack, user: str) -> dict[str, Any]:
    answer = httpx.get(f"{stack.rasa_url}/conversations/{user}/tracker", headers=rasa_auth_headers(DEMO_RASA_TOKEN))
    assert answer.status_code == 200, answer.text
    return answer.json()


def app_state(stack: Stack, user: str) -> dict[str, Any]:
    answer = httpx.get(stack.app_url + "/internal/handoff/state", params={"page_id": PAGE_ID, "user_id": user},
                       headers=AUTH)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_rasa_serves_no_rest_channel(stack: Stack) -> None:
    body = {"sender": new_user(), "message": "/restart", "metadata": {"shown_text": "texto falso"}}
    for path in ("/webhooks/rest/webhook", "/webhooks/rest/"):
        answer = httpx.post(stack.rasa_url + path, json=body)
        assert answer.status_code == 404, f"{path}: Rasa's unauthenticated REST channel is not served"


def test_rasa_api_takes_no_token_in_the_query_string(stack: Stack) -> None:
    url = f"{stack.rasa_url}/conversations/{new_user()}/tracker"
    assert httpx.get(url).status_code == 401, "no token: refused"
    assert httpx.get(url, params={"token": DEMO_RASA_TOKEN}).status_code == 401, "a query-string token is refused"
    assert httpx.get(url, headers=rasa_auth_headers("another-secret")).status_code == 401, "a JWT signed otherwise"
    assert httpx.get(url, headers=rasa_auth_headers(DEMO_RASA_TOKEN)).status_code == 200, "the app's JWT works"
    wake = httpx.post(f"{stack.rasa_url}/conversations/{new_user()}/trigger_intent",
                      json={"name": "restart"}, params={"token": DEMO_RASA_TOKEN})
    assert wake.status_code == 401, "nobody restarts a conversation through the API with a query-string token"


def test_restart_and_session_start_payloads_do_not_wake_a_paused_conversation(
    messenger: Messenger, stack: Stack
) -> None:
    user = new_user()
    assert messenger.say(user, "quiero hablar con una persona").status_code == 200
    messenger.wait_for(lambda: tracker(stack, user)["paused"] is True, 60, "the handoff to pause the conversation")
    messenger.wait_for(lambda: (app_state(stack, user)["conversation"] or {}).get("state") == "paused", 30,
                       "the app to record the pause")
    requests_before = len(httpx.get(stack.app_url + "/sandbox/requests", params={"recipient_id": user}).json())

    items = [
        simulate.text_message(PAGE_ID, user, "/session_start"),
        simulate.quick_reply(PAGE_ID, user, "Reiniciar", "/restart"),
        simulate.postback(PAGE_ID, user, "Empezar", "/restart"),
        simulate.postback(PAGE_ID, user, "Empezar", "/session_start"),
        simulate.text_message(PAGE_ID, user, "hola"),
    ]
    for item in items:
        assert messenger.deliver(simulate.webhook_body(PAGE_ID, [item])).status_code == 200
    messenger.wait_for(lambda: len(app_state(stack, user)["messages"]) == len(items), 60,
                       "every message written while paused in the agents' live view")

    requests = httpx.get(stack.app_url + "/sandbox/requests", params={"recipient_id": user}).json()
    assert requests[requests_before:] == [], "the bot sent nothing (not even typing) while paused"
    state = tracker(stack, user)
    assert state["paused"] is True, "Rasa's conversation is still paused"
    assert not [e for e in state["events"] if e["event"] in ("restart", "resume")], "no restart nor resume applied"
    assert app_state(stack, user)["conversation"]["state"] == "paused", "the console still says paused, truthfully"
    shown = [m["text"] for m in app_state(stack, user)["messages"]]
    assert shown == ["/session_start", "Reiniciar", "Empezar", "Empezar", "hola"], "agents see what the user saw"
