"""Customer satisfaction through the outbox's policy: the template inside 24 hours (a standard message), with the
CUSTOMER_FEEDBACK tag up to 7 days, refused after (recorded `not_sent` with the policy's reason, never silent); quick
replies inside the window only; answers matched to their ask, once. The real outbox (in memory) and policy file, the
csat store on SQLite in memory; every message asked is one Meta's validator (the sandbox's) accepts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from csat.model import AskStatus, How, question_id_of
from csat.service import Csat
from csat.store import open_csat_store
from meta.events import csat_payload
from meta.graph import GraphClient
from meta.validate import validate_send_request
from outbox.outbox import Outbox, open_outbox

PAGE, USER = "100000000000001", "2000000000000001"
CONVERSATION = f"{PAGE}:{USER}"
LAST_MESSAGE = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
PRIVACY = "https://tienda.example.ec/privacidad"


@pytest.fixture
async def outbox() -> AsyncIterator[Outbox]:
    client = GraphClient({PAGE: "token"}, base_url="http://127.0.0.1:9")
    opened = open_outbox("memory://", client)
    await opened.record_user_message(PAGE, USER, LAST_MESSAGE, "necesito ayuda")
    yield opened
    opened.close()
    await client.close()


def csat_of(outbox: Outbox, mode: str = "template", privacy_url: str = PRIVACY) -> Csat:
    return Csat(open_csat_store(":memory:"), outbox, mode=mode, privacy_url=privacy_url)


async def queued(outbox: Outbox, outbox_id: int | None) -> dict[str, Any]:
    assert outbox_id is not None
    return dict((await outbox.get(outbox_id)).message)


def meta_accepts(message: dict[str, Any], tag: str | None) -> None:
    body: dict[str, Any] = {"recipient": {"id": USER}, "message": message,
                            "messaging_type": "MESSAGE_TAG" if tag else "UPDATE"}
    if tag:
        body["tag"] = tag
    assert validate_send_request(body) is None


@pytest.mark.parametrize(("after", "tag"), [(timedelta(minutes=5), None), (timedelta(hours=23), None),
                                            (timedelta(hours=25), "CUSTOMER_FEEDBACK"),
                                            (timedelta(days=6, hours=23), "CUSTOMER_FEEDBACK")])
async def test_the_template_goes_inside_24_hours_and_with_the_tag_up_to_7_days(
        outbox: Outbox, after: timedelta, tag: str | None) -> None:
    csat = csat_of(outbox)
    closed = LAST_MESSAGE + after
    ask = await csat.ask_after_close(CONVERSATION, PAGE, USER, "ana", closed, now=closed)
    assert ask is not None and ask.status is AskStatus.SENT and ask.how is How.TEMPLATE and ask.tag == tag
    message = await queued(outbox, ask.outbox_id)
    payload = message["attachment"]["payload"]
    assert payload["template_type"] == "customer_feedback"
    assert payload["feedback_screens"][0]["questions"][0]["id"] == question_id_of(ask.id)
    assert payload["business_privacy"] == {"url": PRIVACY}
    meta_accepts(message, tag)
    csat.close()


async def test_after_7_days_the_template_is_not_sent_and_the_reason_is_recorded(outbox: Outbox) -> None:
    csat = csat_of(outbox)
    closed = LAST_MESSAGE + timedelta(days=7, seconds=1)
    ask = await csat.ask_after_close(CONVERSATION, PAGE, USER, "ana", closed, now=closed)
    assert ask is not None and ask.status is AskStatus.NOT_SENT and ask.outbox_id is None
    assert ask.reason_code and ask.reason_es  # the policy's own words, shown in the console
    assert await csat.of_conversation(CONVERSATION) == [ask]
    assert (await outbox.states_of([1])) == {}  # nothing queued
    csat.close()


async def test_quick_replies_go_inside_the_window_only(outbox: Outbox) -> None:
    csat = csat_of(outbox, mode="quick_replies")
    inside = LAST_MESSAGE + timedelta(hours=2)
    ask = await csat.ask_after_close(CONVERSATION, PAGE, USER, "ana", inside, now=inside)
    assert ask is not None and ask.status is AskStatus.SENT and ask.how is How.QUICK_REPLIES and ask.tag is None
    message = await queued(outbox, ask.outbox_id)
    assert [reply["payload"] for reply in message["quick_replies"]] == [csat_payload(n) for n in range(1, 6)]
    meta_accepts(message, None)
    outside = LAST_MESSAGE + timedelta(hours=30)
    late = await csat.ask_after_close(CONVERSATION, PAGE, USER, "ana", outside, now=outside)
    assert late is not None and late.status is AskStatus.NOT_SENT and late.how is How.QUICK_REPLIES
    csat.close()


async def test_without_a_privacy_url_the_template_mode_asks_with_quick_replies(outbox: Outbox) -> None:
    csat = csat_of(outbox, mode="template", privacy_url="")
    assert csat.how is How.QUICK_REPLIES
    assert csat_of(outbox, mode="off").how is None
    assert await csat_of(outbox, mode="off").ask_after_close(CONVERSATION, PAGE, USER, "ana", LAST_MESSAGE) is None
    csat.close()


async def test_a_close_seen_twice_asks_once(outbox: Outbox) -> None:
    csat = csat_of(outbox)
    first = await csat.ask_after_close(CONVERSATION, PAGE, USER, "ana", LAST_MESSAGE, now=LAST_MESSAGE)
    again = await csat.ask_after_close(CONVERSATION, PAGE, USER, "ana", LAST_MESSAGE, now=LAST_MESSAGE)
    assert first is not None and again is not None and again.id == first.id and again.outbox_id == first.outbox_id
    assert len(await csat.of_conversation(CONVERSATION)) == 1
    csat.close()


def template_answer(ask_id: int, score: str, text: str | None = None) -> list[dict[str, Any]]:
    return [{"question_id": question_id_of(ask_id), "type": "csat", "payload": score, "follow_up": text}]


async def test_the_template_answer_is_stored_once_with_its_comment(outbox: Outbox) -> None:
    csat = csat_of(outbox)
    ask = await csat.ask_after_close(CONVERSATION, PAGE, USER, "ana", LAST_MESSAGE, now=LAST_MESSAGE)
    assert ask is not None
    at = LAST_MESSAGE + timedelta(minutes=3)
    answered = await csat.record_answer(PAGE, USER, "template", template_answer(ask.id, "4", "Rápido\x00 y amable "),
                                        "sha256:a", at)
    assert answered is not None and (answered.rating, answered.comment, answered.answered_at) == (
        4, "Rápido  y amable", at)
    assert answered.status is AskStatus.ANSWERED
    # A redelivery, a second answer, another person's claim to the same question: nothing changes.
    assert await csat.record_answer(PAGE, USER, "template", template_answer(ask.id, "1"), "sha256:a", at) is None
    assert await csat.record_answer(PAGE, USER, "template", template_answer(ask.id, "1"), "sha256:b", at) is None
    assert await csat.record_answer(PAGE, "otro", "template", template_answer(ask.id, "1"), "sha256:c", at) is None
    assert (await csat.of_conversation(CONVERSATION))[0].rating == 4
    [agent] = await csat.agent_satisfaction()
    assert (agent.agent, agent.asked, agent.answered, agent.average) == ("ana", 1, 1, 4.0)
    csat.close()


@pytest.mark.parametrize("answers", [
    [{"question_id": "csat_1", "type": "nps", "payload": "9"}],
    [{"question_id": "csat_1", "type": "csat", "payload": "6"}],
    [{"question_id": "csat_1", "type": "csat", "payload": "cinco"}],
    [],
])
async def test_an_answer_without_a_rating_1_to_5_records_nothing(outbox: Outbox, answers: list[Any]) -> None:
    csat = csat_of(outbox)
    ask = await csat.ask_after_close(CONVERSATION, PAGE, USER, "ana", LAST_MESSAGE, now=LAST_MESSAGE)
    assert ask is not None
    assert await csat.record_answer(PAGE, USER, "template", answers, "sha256:x") is None
    assert (await csat.of_conversation(CONVERSATION))[0].status is AskStatus.SENT
    csat.close()


async def test_a_quick_reply_answers_the_newest_open_question_and_is_thanked(outbox: Outbox) -> None:
    csat = csat_of(outbox, mode="quick_replies")
    ask = await csat.ask_after_close(CONVERSATION, PAGE, USER, "luis", LAST_MESSAGE, now=LAST_MESSAGE)
    assert ask is not None
    at = LAST_MESSAGE + timedelta(minutes=1)
    answered = await csat.record_answer(PAGE, USER, "quick_replies",
                                        [{"question_id": "", "type": "csat", "payload": "5"}], "mid:1", at)
    assert answered is not None and answered.id == ask.id and answered.rating == 5
    thanks = await outbox.get((ask.outbox_id or 0) + 1)
    assert thanks.message == {"text": "¡Gracias por su calificación!"} and thanks.recipient_id == USER
    # Nobody asked this person: a tap records nothing.
    assert await csat.record_answer(PAGE, "nadie", "quick_replies",
                                    [{"question_id": "", "type": "csat", "payload": "5"}], "mid:2", at) is None
    csat.close()
