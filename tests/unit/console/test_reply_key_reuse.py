"""A reply's idempotency key after a failure (issue 8 review, item 6).

On the old code (a) a repeated key with other words answered 200 "repeated" with the *new* words, although the
customer got the first ones; (c) a first request that died after queueing but before Rasa's tracker and the
local transcript were written left the reply out of both for good: the retry answered "repeated" and did nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from handoff.model import PauseReason, ReplyRefused
from outbox.model import NewMessage, Purpose, SenderKind
from tests.unit.console.conftest import ConsoleApp
from tests.unit.console.test_console_api import CONVERSATION, paused
from tests.unit.handoff.test_handoff import CONVERSATION as SERVICE_CONVERSATION
from tests.unit.handoff.test_handoff import PAGE, T0, USER, Parts, parts  # noqa: F401 - the fixture

URL = f"/api/console/conversations/{CONVERSATION}/reply"


def test_a_used_key_with_other_words_is_a_conflict_and_sends_nothing(console_env: ConsoleApp) -> None:
    paused(console_env)
    agent = console_env.login("agente")
    first = agent.post(URL, json={"text": "El pedido sale hoy."}, headers={"Idempotency-Key": "clave-0001"})
    same = agent.post(URL, json={"text": "El pedido sale hoy."}, headers={"Idempotency-Key": "clave-0001"})
    other = agent.post(URL, json={"text": "El pedido sale mañana."}, headers={"Idempotency-Key": "clave-0001"})
    assert first.status_code == 201 and same.status_code == 200
    assert same.json()["text"] == "El pedido sale hoy."
    assert other.status_code == 409, other.text
    assert other.json()["error"]["reason_code"] == "idempotency_key_reused"
    assert [m["text"] for m in console_env.handoff.sent] == ["El pedido sale hoy."]


async def test_the_service_refuses_a_used_key_with_other_words(parts: Parts) -> None:  # noqa: F811
    parts.user_wrote(T0)
    await parts.handoff.reply_as_agent(SERVICE_CONVERSATION, "ana", "Llega el lunes.", idempotency_key="k-000001")
    with pytest.raises(ReplyRefused) as caught:
        await parts.handoff.reply_as_agent(SERVICE_CONVERSATION, "ana", "Llega el martes.", idempotency_key="k-000001")
    assert caught.value.reason_code == "idempotency_key_reused"
    again = await parts.handoff.reply_as_agent(SERVICE_CONVERSATION, "ana", "Llega el lunes.",
                                               idempotency_key="k-000001")
    assert again["repeated"] and again["text"] == "Llega el lunes."


def agent_events(made: Parts) -> list[dict[str, Any]]:
    return [e for e in made.rasa.trackers.get(USER, []) if e.get("event") == "bot"]


async def test_a_retry_finishes_the_recording_a_dead_first_request_left_undone(parts: Parts) -> None:  # noqa: F811
    parts.user_wrote(T0)
    await parts.handoff.pause(PAGE, USER, PauseReason.AGENT_TOOK_OVER, "ana")
    # The first request queued the reply and died before writing Rasa's tracker and the transcript.
    parts.outbox_store.enqueue(NewMessage(PAGE, USER, {"text": "Ya lo reviso."}, sender=SenderKind.HUMAN,
                                          purpose=Purpose.REPLY, sender_name="ana", idempotency_key="k-000002:0"), T0)
    assert agent_events(parts) == [] and await parts.handoff.messages(SERVICE_CONVERSATION) == []

    retry = await parts.handoff.reply_as_agent(SERVICE_CONVERSATION, "ana", "Ya lo reviso.", idempotency_key="k-000002")
    assert retry["repeated"]
    assert [e["text"] for e in agent_events(parts)] == ["Ya lo reviso."], "the retry adds the reply to Rasa's tracker"
    assert [m.text for m in await parts.handoff.messages(SERVICE_CONVERSATION)] == ["Ya lo reviso."]
    # Idempotent: a third try writes nothing twice.
    await parts.handoff.reply_as_agent(SERVICE_CONVERSATION, "ana", "Ya lo reviso.", idempotency_key="k-000002")
    assert len(agent_events(parts)) == 1 and len(await parts.handoff.messages(SERVICE_CONVERSATION)) == 1
