"""Referrals in the channel (connectors/referrals.py) with a real Rasa turn: the channel reports each referral to
the app (here a small fake of `POST /internal/referrals`) and gives Rasa the link's start; a standalone referral
without one is recorded with no turn; the app down changes nothing for the user (a Get Started postback keeps its
payload, a standalone referral only records), and the user's next message is still processed after it, in order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
import yaml
from aiohttp import web

from actions.session import AUTOMATION_DISCLOSURE
from connectors.messenger import MessengerInput
from connectors.referrals import AppReferralClient
from core.settings import ROOT
from sandbox import simulate
from tests.channel.conftest import OpenChannel
from tests.channel.support import PAGE_ID, ChannelServer, FakeEndpoint, FakeGraph, eventually


def greetings() -> set[str]:
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    return {variant["text"] for variant in domain["responses"]["utter_greet"] if "text" in variant}


class FakeApp(FakeEndpoint):
    """`POST /internal/referrals` as the app answers it: a start per known ref; every report kept."""

    path = "/internal/referrals"

    def __init__(self, starts: dict[str, dict[str, str] | None]) -> None:
        super().__init__()
        self.starts = starts
        self.reports: list[dict[str, Any]] = []

    async def answer(self, request: web.Request) -> web.Response:
        assert request.headers.get("Authorization", "").startswith("Bearer ")
        body = await request.json()
        self.reports.append(body)
        known = body["ref"] in self.starts
        return web.json_response({"recorded": True, "link": {"id": 1, "name": "Saludo"} if known else None,
                                  "start": self.starts.get(body["ref"])})


@pytest_asyncio.fixture(loop_scope="session")
async def fake_app() -> AsyncIterator[FakeApp]:
    app = FakeApp({"saludo_qr": {"intent": "greet"}})
    await app.start()
    yield app
    await app.close()


def statuses(channel: ChannelServer, user: str) -> list[str]:
    return [row["status"] for row in channel.journal(user)]


def delivery(*items: dict[str, Any]) -> dict[str, Any]:
    return simulate.webhook_body(PAGE_ID, list(items))


async def test_a_referrals_start_is_the_turn_and_an_unknown_ref_only_records(
    open_channel: OpenChannel, fake_graph: FakeGraph, fake_app: FakeApp
) -> None:
    def to_fake_app(channel: MessengerInput) -> None:
        channel.referrals = AppReferralClient(fake_app.url, "token")

    channel = await open_channel(to_fake_app)
    await channel.start()
    scanned, unknown = "psid-referral-start", "psid-referral-unknown"
    assert await channel.deliver(delivery(simulate.referral(PAGE_ID, scanned, "saludo_qr"))) == 200
    assert await channel.deliver(delivery(simulate.referral(PAGE_ID, unknown, "otra_ref"))) == 200
    await eventually(lambda: statuses(channel, scanned) == ["done"] and statuses(channel, unknown) == ["done"],
                     "both referrals done")
    await eventually(lambda: len(fake_graph.texts(scanned)) >= 2, "the greeting the link starts")
    texts = fake_graph.texts(scanned)
    assert texts[0] == AUTOMATION_DISCLOSURE and texts[1] in greetings(), texts
    assert await channel.user_texts_in_tracker(scanned) == ["/greet"]
    assert fake_graph.texts(unknown) == [] and await channel.user_texts_in_tracker(unknown) == [], "no turn"
    assert sorted((r["user_id"], r["ref"], r["via"]) for r in fake_app.reports) == [
        (scanned, "saludo_qr", "referral"), (unknown, "otra_ref", "referral")]


async def test_with_the_app_down_referrals_keep_todays_behaviour_in_order(
    channel: ChannelServer, fake_graph: FakeGraph
) -> None:
    """The fixture's channel calls a closed port for the app."""
    user = "psid-referral-app-down"
    assert await channel.deliver(delivery(simulate.referral(PAGE_ID, user, "saludo_qr"))) == 200
    assert await channel.deliver(delivery(simulate.get_started(PAGE_ID, user, payload="/greet", ref="saludo_qr"))
                                 ) == 200
    await eventually(lambda: statuses(channel, user) == ["done", "done"], "both processed")
    await eventually(lambda: len(fake_graph.texts(user)) >= 2, "the welcome")
    assert await channel.user_texts_in_tracker(user) == ["/greet"], "the referral: no turn; Get Started: its payload"
    texts = fake_graph.texts(user)
    assert texts[0] == AUTOMATION_DISCLOSURE and texts[1] in greetings(), texts
