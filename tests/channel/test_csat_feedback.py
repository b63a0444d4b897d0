"""Ratings in the channel (csat/): Meta's `messaging_feedback` and a satisfaction quick reply are journaled for the app
(`notice_pending`), posted to the app's `POST /internal/csat/answer` (here a small fake of it) and never given to
Rasa; an app that does not take it at first gets it again later (the journal keeps it until the app confirmed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from aiohttp import web

from connectors.handoff import AppHandoffClient
from connectors.messenger import MessengerInput
from sandbox import simulate
from tests.channel.conftest import OpenChannel
from tests.channel.support import PAGE_ID, ChannelServer, FakeEndpoint, eventually


class FakeApp(FakeEndpoint):
    """`POST /internal/csat/answer`: refuses the first `refuse` calls (503: not now) and the bodies of users in
    `refuse_for_good` (422: the body), then records every body; `calls` counts what reached it per user."""

    path = "/internal/csat/answer"

    def __init__(self) -> None:
        super().__init__()
        self.refuse = 0
        self.refuse_for_good: set[str] = set()
        self.calls: dict[str, int] = {}
        self.answers: list[dict[str, Any]] = []

    async def answer(self, request: web.Request) -> web.Response:
        assert request.headers.get("Authorization") == "Bearer token"
        body = await request.json()
        self.calls[body["user_id"]] = self.calls.get(body["user_id"], 0) + 1
        if body["user_id"] in self.refuse_for_good:
            return web.json_response({"error": "cuerpo inválido"}, status=422)
        if self.refuse > 0:
            self.refuse -= 1
            return web.json_response({"error": "no disponible"}, status=503)
        self.answers.append(body)
        return web.json_response({"recorded": True})


@pytest_asyncio.fixture(loop_scope="session")
async def fake_app() -> AsyncIterator[FakeApp]:
    app = FakeApp()
    await app.start()
    yield app
    await app.close()


async def channel_to(open_channel: OpenChannel, fake_app: FakeApp) -> ChannelServer:
    def to_fake_app(channel: MessengerInput) -> None:
        channel.handoff = AppHandoffClient(fake_app.url, "token")

    channel = await open_channel(to_fake_app)
    await channel.start()
    return channel


async def test_a_submitted_template_and_a_tapped_rating_reach_the_app_not_rasa(
    open_channel: OpenChannel, fake_app: FakeApp
) -> None:
    channel = await channel_to(open_channel, fake_app)
    template_user, tap_user = "psid-csat-template", "psid-csat-tap"
    feedback = simulate.feedback(PAGE_ID, template_user, "csat_7", 5, "Excelente atención")
    tap = simulate.quick_reply(PAGE_ID, tap_user, "3 · Regular", '/csat{"score":3}')
    assert await channel.deliver(simulate.webhook_body(PAGE_ID, [feedback, tap])) == 200
    await eventually(lambda: len(fake_app.answers) >= 2, "both ratings at the app")
    by_user = {answer["user_id"]: answer for answer in fake_app.answers}
    assert by_user[template_user]["via"] == "template" and by_user[template_user]["answers"] == [
        {"question_id": "csat_7", "type": "csat", "payload": "5", "follow_up": "Excelente atención"}]
    assert by_user[tap_user]["via"] == "quick_replies" and by_user[tap_user]["answers"][0]["payload"] == "3"
    assert [row["status"] for row in channel.journal(template_user)] == ["recorded"]
    assert [row["status"] for row in channel.journal(tap_user)] == ["recorded"]
    assert await channel.user_texts_in_tracker(template_user) == []
    assert await channel.user_texts_in_tracker(tap_user) == [], "a rating is no turn of Rasa"


async def test_a_rating_the_app_did_not_take_is_delivered_later(open_channel: OpenChannel, fake_app: FakeApp) -> None:
    fake_app.answers.clear()
    fake_app.refuse = 1
    channel = await channel_to(open_channel, fake_app)
    user = "psid-csat-retry"
    assert await channel.deliver(simulate.webhook_body(PAGE_ID, [simulate.feedback(PAGE_ID, user, "csat_8", 2)])) == 200
    await eventually(lambda: fake_app.refuse == 0, "the app refused once")
    await channel.channel._apply_windows(await channel.channel.store.run(channel.channel.store.journaled))
    await eventually(lambda: [a["user_id"] for a in fake_app.answers] == [user], "delivered after the refusal")


async def test_a_rating_the_app_refuses_for_good_is_dropped_not_retried(open_channel: OpenChannel,
                                                                       fake_app: FakeApp) -> None:
    user = "psid-csat-refused"
    fake_app.refuse_for_good.add(user)
    channel = await channel_to(open_channel, fake_app)
    assert await channel.deliver(simulate.webhook_body(PAGE_ID, [simulate.feedback(PAGE_ID, user, "csat_9", 4)])) == 200
    await eventually(lambda: fake_app.calls.get(user) == 1, "the app refused it")
    store = channel.channel.store

    def journaled_for(user_id: str) -> list[Any]:
        return [row for row in store.journaled() if row.event.user_id == user_id]

    for _ in range(2):  # the upkeep's next rounds
        await channel.channel._apply_windows(await store.run(journaled_for, user))
    assert journaled_for(user) == [] and fake_app.calls[user] == 1, "refused once, never sent again"
