"""The Rasa channel's glue (`connectors/messenger.py`) end to end: a real Rasa process, the real app, signed
webhooks in, the Graph sandbox out. What the channel does around Rasa's turns: a person's echo pausing the
conversation through the app (retried while the app is down, then given up visibly), an echo and a user message in
one delivery, window-opening events that Rasa never sees, and standby messages reaching the agents' live view.

One stack for the module (its own, never the session's), with the app behind `HandoffOutage`: the connector's
calls to the app's handoff API (`/internal/handoff/pause`, `/user-message`) can be refused (503, as a proxy in
front of a down app answers) for one user at a time; everything else, the Graph sandbox included, passes through
`GraphTap` to the app. The upkeep loop runs every second (`MESSENGER_UPKEEP_SECONDS`), so a journaled live-view
notice is retried quickly.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.stack import Stack
from core.settings import DEMO_SERVICE_TOKEN, PAGE_INBOX_APP_ID
from sandbox import simulate
from tests.conftest import require_or_skip
from tests.integration.faults.support import GraphTap, sqlite_rows, wait_until
from tests.support.servers import serve_asgi
from tests.support.stack import PAGE_ID, Messenger, rasa_available, start_stack

AUTH = {"Authorization": f"Bearer {DEMO_SERVICE_TOKEN}"}
# connectors/messenger.py's MAX_PROCESSING_ATTEMPTS (that module imports Rasa: not importable in this environment).
MAX_PROCESSING_ATTEMPTS = 3
FOREVER = -1


class HandoffOutage:
    """ASGI in front of the tap: refuses the handoff API's POSTs for chosen users (503), a number of times or for
    ever, and notes when each refusal happened; everything else goes on to `inner`."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._refusing: dict[tuple[str, str], int] = {}
        self.refused: dict[tuple[str, str], list[float]] = collections.defaultdict(list)

    def refuse(self, path: str, user: str, times: int) -> None:
        with self._lock:
            self._refusing[(path, user)] = times

    def refusals(self, path: str, user: str) -> list[float]:
        with self._lock:
            return list(self.refused[(path, user)])

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith("/internal/handoff/"):
            await self.inner(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        try:
            user = str(json.loads(body).get("user_id"))
        except (ValueError, AttributeError):
            user = ""
        key = (scope["path"], user)
        with self._lock:
            left = self._refusing.get(key, 0)
            if left:
                self._refusing[key] = left - 1 if left > 0 else left
                self.refused[key].append(time.monotonic())
        if left:
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": b'{"detail": "the app is down"}'})
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.inner(scope, replay, send)


@dataclass
class Glue:
    stack: Stack
    outage: HandoffOutage
    messenger: Messenger

    def journal(self, user: str) -> list[dict[str, Any]]:
        rows = sqlite_rows(
            self.stack.data_dir / "messenger.sqlite3",
            "SELECT kind, status, attempts, last_error, window_pending, notice_pending FROM inbound_events"
            " WHERE user_id = ? ORDER BY id",
            (user,),
        )
        return [dict(row) for row in rows]

    def last_user_message_at(self, user: str) -> datetime | None:
        rows = sqlite_rows(self.stack.data_dir / "outbox.sqlite3",
                           "SELECT last_user_message_at FROM conversations WHERE page_id = ? AND user_id = ?",
                           (PAGE_ID, user))
        if not rows or rows[0][0] is None:
            return None
        return datetime.fromisoformat(str(rows[0][0]).replace("Z", "+00:00"))

    def handoff_state(self, user: str) -> dict[str, Any]:
        answer = httpx.get(self.stack.app_url + "/internal/handoff/state", params={"page_id": PAGE_ID, "user_id": user},
                           headers=AUTH)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def live_view(self, user: str) -> list[tuple[str, str]]:
        return [(item["author"], item["text"]) for item in self.handoff_state(user)["messages"]]

    def requests_to(self, user: str) -> list[dict[str, Any]]:
        """Every Send API request for the user the sandbox saw, sender actions included."""
        return list(httpx.get(self.stack.app_url + "/sandbox/requests", params={"recipient_id": user}).json())

    def rasa_tracker(self, user: str) -> dict[str, Any]:
        from core.settings import DEMO_RASA_TOKEN
        from handoff.rasa_api import rasa_auth_headers

        answer = httpx.get(f"{self.stack.rasa_url}/conversations/{user}/tracker",
                           headers=rasa_auth_headers(DEMO_RASA_TOKEN))
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def bot_message(self, user: str) -> httpx.Response:
        """What an automated follow-up asks of the outbox: an untagged bot message (only inside the 24-hour window)."""
        return httpx.post(self.stack.app_url + "/api/outbox", headers=AUTH, json={
            "page_id": PAGE_ID, "recipient_id": user, "text": f"seguimiento {uuid.uuid4().hex[:6]}",
            "sender": "bot", "purpose": "follow_up",
        })


@pytest.fixture(scope="module")
def glue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Glue]:
    require_or_skip(rasa_available(), "the Rasa environment (.venv-rasa; run `make install`)")
    tap = GraphTap()
    outage = HandoffOutage(tap.app)
    with serve_asgi(outage) as front:
        env = {"BOT_APP_URL": front.base_url, "MESSENGER_UPKEEP_SECONDS": "1"}
        stack = start_stack(Path(tmp_path_factory.mktemp("glue-stack")), extra_env=env)
        tap.upstream = stack.app_url
        messenger = Messenger(stack)
        try:
            yield Glue(stack, outage, messenger)
        finally:
            messenger.http.close()
            stack.stop()


def new_user() -> str:
    return f"psid-glue-{uuid.uuid4().hex[:10]}"


def person_echo(user: str, text: str) -> dict[str, Any]:
    """A message a person sent from the Page inbox, as Meta echoes it."""
    message = {"mid": simulate.new_mid(), "text": text, "is_echo": True, "app_id": int(PAGE_INBOX_APP_ID)}
    echo = simulate.messaging(PAGE_ID, user, message=message)
    echo["sender"], echo["recipient"] = {"id": PAGE_ID}, {"id": user}
    return echo


def finished(glue: Glue, user: str, count: int) -> bool:
    rows = glue.journal(user)
    return len(rows) == count and all(row["status"] != "pending" for row in rows)


# --- a person's echo pauses the conversation through the app ------------------------------------------------------


def test_an_echo_while_the_app_is_down_is_retried_with_backoff_then_failed_with_its_reason(glue: Glue) -> None:
    user = new_user()
    glue.outage.refuse("/internal/handoff/pause", user, FOREVER)
    echo = simulate.webhook_body(PAGE_ID, [person_echo(user, "Hola, soy Ana")])
    assert glue.messenger.deliver(echo).status_code == 200
    wait_until(lambda: finished(glue, user, 1), 60, "the echo given up")
    [row] = glue.journal(user)
    assert (row["kind"], row["status"]) == ("echo", "failed"), row
    assert "the app did not record the pause" in row["last_error"], row
    assert row["attempts"] == MAX_PROCESSING_ATTEMPTS, "each attempt counted once (the give-up is none)"
    refusals = glue.outage.refusals("/internal/handoff/pause", user)
    assert len(refusals) == MAX_PROCESSING_ATTEMPTS, f"tried {MAX_PROCESSING_ATTEMPTS} times: {refusals}"
    gaps = [later - earlier for earlier, later in zip(refusals, refusals[1:], strict=False)]
    assert gaps[0] >= 0.45 and gaps[1] >= 0.95, f"with a growing backoff between the attempts: {gaps}"
    assert glue.handoff_state(user)["conversation"] is None, "the app never recorded a pause"


def test_an_echo_whose_app_comes_back_in_time_records_the_pause_and_is_done(glue: Glue) -> None:
    user = new_user()
    glue.outage.refuse("/internal/handoff/pause", user, 1)
    text = "Hola, soy Ana de la tienda"
    assert glue.messenger.deliver(simulate.webhook_body(PAGE_ID, [person_echo(user, text)])).status_code == 200
    wait_until(lambda: finished(glue, user, 1), 60, "the echo done")
    [row] = glue.journal(user)
    assert (row["kind"], row["status"], row["last_error"]) == ("echo", "done", None), row
    assert len(glue.outage.refusals("/internal/handoff/pause", user)) == 1
    conversation = glue.handoff_state(user)["conversation"]
    assert (conversation["state"], conversation["paused_reason"], conversation["paused_by"]) == (
        "paused", "agent_wrote_outside", "page_inbox"), conversation
    assert glue.live_view(user) == [("agent:page_inbox", text)]
    assert glue.rasa_tracker(user)["paused"] is True, "Rasa itself holds the conversation paused"


# --- an echo and a user message in one delivery -----------------------------------------------------------------


@pytest.mark.parametrize("pause_refusals", [0, 1], ids=["app-up", "app-down-once"])
def test_an_echo_and_a_user_message_in_one_delivery_keep_the_bot_silent(glue: Glue, pause_refusals: int) -> None:
    """The person's echo comes first in the delivery: the user's message, handled after it (in order, even while
    the pause is retried), gets no bot reply at all (no greeting, disclosure, typing or mark_seen) and is kept for
    the agents: in Rasa's tracker and in the live view. Fails if the message overtakes a pause being retried."""
    user = new_user()
    glue.outage.refuse("/internal/handoff/pause", user, pause_refusals)
    asked = "hola, ¿me ayudan con mi pedido?"
    items = [person_echo(user, "Hola, le escribe Ana"), simulate.text_message(PAGE_ID, user, asked)]
    assert glue.messenger.deliver(simulate.webhook_body(PAGE_ID, items)).status_code == 200
    wait_until(lambda: finished(glue, user, 2), 60, "both events finished")
    assert [(row["kind"], row["status"]) for row in glue.journal(user)] == [("echo", "done"), ("message", "done")]
    wait_until(lambda: ("user", asked) in glue.live_view(user), 30, "the user's message in the live view")
    assert glue.live_view(user) == [("agent:page_inbox", "Hola, le escribe Ana"), ("user", asked)]
    assert glue.requests_to(user) == [], "the bot said nothing while a person holds the conversation"
    tracker = glue.rasa_tracker(user)
    assert tracker["paused"] is True
    assert [event.get("text") for event in tracker["events"] if event["event"] == "user"] == [asked]


# --- events Rasa never sees open the 24-hour window -------------------------------------------------------------


def window_opening(kind: str, user: str, at: datetime) -> dict[str, Any]:
    """A delivery of `kind` from the user at `at`."""
    timestamp = int(at.timestamp() * 1000)
    if kind == "standby message":
        item = simulate.text_message(PAGE_ID, user, f"escribo en standby {uuid.uuid4().hex[:6]}")
    elif kind == "reaction":
        reaction = {"mid": simulate.new_mid(), "action": "react", "reaction": "love", "emoji": "❤"}
        item = simulate.messaging(PAGE_ID, user, reaction=reaction)
    else:
        referral = {"ref": f"promo-{uuid.uuid4().hex[:6]}", "source": "SHORTLINK", "type": "OPEN_THREAD"}
        item = simulate.messaging(PAGE_ID, user, referral=referral)
    item["timestamp"] = timestamp
    return simulate.webhook_body(PAGE_ID, [item], standby=kind == "standby message")


@pytest.mark.parametrize("kind", ["reaction", "referral", "standby message"])
def test_a_window_opening_event_moves_the_users_last_message_and_opens_the_window(glue: Glue, kind: str) -> None:
    """A user who last acted two days ago: an untagged bot message is refused (outside the 24-hour window). The
    same kind of event now moves the outbox's record of the user's last message, and the message is allowed and
    sent. Rasa never sees these events; the channel journals the window with them and applies it (a referral's is
    recorded when the channel processes it, in order with the user's messages)."""
    user = new_user()
    two_days_ago = datetime.now(timezone.utc) - timedelta(days=2)
    assert glue.messenger.deliver(window_opening(kind, user, two_days_ago)).status_code == 200
    wait_until(lambda: glue.last_user_message_at(user) is not None, 30, "the old window recorded")
    stale = glue.last_user_message_at(user)
    assert stale is not None and abs(stale - two_days_ago) < timedelta(seconds=1), stale
    refused = glue.bot_message(user)
    assert refused.status_code == 422 and refused.json()["error"]["reason_code"] == "outside_window", refused.text

    now = datetime.now(timezone.utc)
    assert glue.messenger.deliver(window_opening(kind, user, now)).status_code == 200
    wait_until(lambda: (glue.last_user_message_at(user) or stale) > stale, 30, "the window moved")
    moved = glue.last_user_message_at(user)
    assert moved is not None and abs(moved - now) < timedelta(seconds=5), moved
    allowed = glue.bot_message(user)
    assert allowed.status_code == 201, allowed.text
    text = allowed.json()["message"]["message"]["text"]
    glue.messenger.wait_for(lambda: text in glue.messenger.texts(user), 30, "the follow-up sent")
    assert all(row["window_pending"] == 0 for row in glue.journal(user)), "every journaled window applied"
    # A referral is processed in order (its link may start an answer: connectors/referrals.py); this ref has no
    # link, so it only records: no turn either way.
    expected = "done" if kind == "referral" else "recorded"
    assert [row["status"] for row in glue.journal(user)] == [expected, expected], "Rasa never saw them"


# --- standby: another app holds the thread ----------------------------------------------------------------------


def standby_message(user: str, text: str) -> dict[str, Any]:
    return simulate.webhook_body(PAGE_ID, [simulate.text_message(PAGE_ID, user, text)], standby=True)


def test_a_message_in_standby_reaches_the_agents_live_view(glue: Glue) -> None:
    user = new_user()
    text = "hola, ¿siguen ahí?"
    assert glue.messenger.deliver(standby_message(user, text)).status_code == 200
    wait_until(lambda: glue.live_view(user) == [("user", text)], 30, "the standby message in the live view")
    wait_until(lambda: glue.journal(user)[0]["notice_pending"] == 0, 30, "the notice confirmed")
    assert glue.journal(user)[0]["status"] == "recorded", "Rasa never saw it"
    assert glue.requests_to(user) == [], "the bot does not answer in standby"


def test_a_standby_message_while_the_app_is_down_reaches_the_live_view_once_it_is_back(glue: Glue) -> None:
    """The app refuses the first two live-view notices: the notice stays journaled and the upkeep loop sends it
    again until the app confirms it; the agents then see the message, once."""
    user = new_user()
    text = "¿me pueden ayudar?"
    glue.outage.refuse("/internal/handoff/user-message", user, 2)
    assert glue.messenger.deliver(standby_message(user, text)).status_code == 200
    wait_until(lambda: len(glue.outage.refusals("/internal/handoff/user-message", user)) >= 1, 30,
               "the first notice refused")
    # taken while an instance applies it (take_journaled), set back once the app refused it
    wait_until(lambda: glue.journal(user)[0]["notice_pending"] == 1, 30, "journaled again while the app is down")
    wait_until(lambda: glue.live_view(user) == [("user", text)], 60, "the notice delivered once the app is back")
    wait_until(lambda: glue.journal(user)[0]["notice_pending"] == 0, 30, "the notice confirmed")
    assert len(glue.outage.refusals("/internal/handoff/user-message", user)) == 2
    time.sleep(2)  # two more upkeep rounds: a confirmed notice is never sent again
    assert glue.live_view(user) == [("user", text)]
