"""A broadcast's world on real stores: the outbox (its SQLite store behind the `Outbox` façade, its worker sending to
a scripted Graph transport), the contacts and handoff stores (SQLite), the broadcasts store (SQLite, or PostgreSQL
where a test asks), and a clock the test moves."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from broadcasts.model import BroadcastDraft, BroadcastStatus
from broadcasts.service import Broadcasts
from broadcasts.store import BroadcastStore, open_broadcasts_store
from contacts.store import ContactsStore, open_contacts_store
from core.settings import SANDBOX_PAGE_ID, SANDBOX_PAGE_TOKEN
from handoff.model import Conversation, PauseReason
from handoff.service import HandoffStore, open_handoff_store
from meta.graph import GraphClient, GraphRequest, GraphResponse
from outbox.model import MessageFilter, OutboxMessage
from outbox.outbox import Outbox
from outbox.policy_file import load_policy
from outbox.store import open_store

PAGE = SANDBOX_PAGE_ID
T0 = datetime(2026, 11, 30, 15, 0, tzinfo=timezone.utc)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class ScriptedGraph:
    """Meta's Send API: accepts every send (a message id each), except to the PSIDs in `unavailable` (error 551,
    "This person isn't available right now")."""

    clock: Clock
    unavailable: set[str] = field(default_factory=set)
    sent: list[dict[str, Any]] = field(default_factory=list)
    sent_at: list[datetime] = field(default_factory=list)

    async def send(self, request: GraphRequest) -> GraphResponse:
        body = dict(request.json_body or {})
        psid = body.get("recipient", {}).get("id", "")
        if psid in self.unavailable:
            return GraphResponse(400, {"error": {"message": "(#551) This person isn't available right now.",
                                                 "type": "OAuthException", "code": 551, "error_subcode": 1545041}})
        self.sent.append(body)
        self.sent_at.append(self.clock())
        return GraphResponse(200, {"recipient_id": psid, "message_id": f"m_{len(self.sent)}"})

    async def close(self) -> None:
        return None

    def received_by(self, psid: str) -> list[dict[str, Any]]:
        return [body for body in self.sent if body.get("recipient", {}).get("id") == psid]


class StoreHandoff:
    """The handoff's answer to "which conversations are paused", from its real store (`Handoff.states_of` reads
    the same)."""

    def __init__(self, store: HandoffStore) -> None:
        self.store = store

    async def states_of(self, conversation_ids: Iterable[str]) -> dict[str, Conversation]:
        return await asyncio.to_thread(self.store.states_of, list(conversation_ids))


@dataclass
class World:
    tmp: Path
    clock: Clock
    graph: ScriptedGraph
    outbox: Outbox
    contacts: ContactsStore
    handoff_store: HandoffStore
    store: BroadcastStore
    service: Broadcasts
    client: GraphClient

    def wrote(self, psid: str, hours_ago: float = 0.0, *, tags: Iterable[str] = ()) -> None:
        """The person wrote to the page `hours_ago` (the outbox and the contacts both know it)."""
        at = self.clock() - timedelta(hours=hours_ago)
        self.outbox_store.record_user_message(PAGE, psid, at)
        self.contacts.upsert_seen(PAGE, psid, at)
        if tags:
            self.contacts.add_tags(PAGE, psid, list(tags), self.clock())

    def imported(self, psid: str, *, tags: Iterable[str] = ()) -> None:
        """A contact from a CSV file: never wrote."""
        self.contacts.import_contact(PAGE, psid, "Ana", "Import", list(tags), {}, self.clock())

    def pause(self, psid: str) -> None:
        self.handoff_store.pause(PAGE, psid, PauseReason.AGENT_TOOK_OVER, "agente", self.clock())

    @property
    def outbox_store(self) -> Any:
        return self.outbox._store  # noqa: SLF001 - tests set the scene in the outbox's own store

    async def messages_to(self, psid: str) -> list[OutboxMessage]:
        return await self.outbox.find(MessageFilter(recipient_id=psid, page_id=PAGE, limit=1000))

    def sending(self) -> bool:
        """A broadcast still sending (a runner that died holds its lease for a while: the next one waits)."""
        return any(broadcast.status is BroadcastStatus.SENDING for broadcast in self.store.list(None, 200, None))

    async def drain(self, rounds: int = 50, step_seconds: float = 30.0) -> None:
        """Runner and outbox worker rounds, the clock moving on, until neither has anything left to do."""
        for _ in range(rounds):
            work = await self.service.run_once()
            sent = await self.outbox.run_once()
            self.clock.advance(seconds=step_seconds)
            if not work and not sent:
                counts = await self.outbox.counts()
                if not counts.get("pending") and not counts.get("sending") and not self.sending():
                    await self.service.run_once()
                    return
        raise AssertionError("the broadcast did not settle")


def draft(audience: dict[str, Any] | None = None, **fields: Any) -> BroadcastDraft:
    body: dict[str, Any] = {"page_id": PAGE, "name": "Promo de diciembre",
                            "content": {"text": "¡Hola! 20 % de descuento esta semana."},
                            "audience": {"page_id": PAGE, **(audience or {})}}
    body.update(fields)
    return BroadcastDraft.from_dict(json.loads(json.dumps(body)))


def open_world(tmp: Path, broadcasts_url: str | None = None, page_rate: float = 10.0,
               tags_until: datetime | None = None) -> World:
    """`tags_until`: the retired tags stay usable until then (default: the shipped dates, retired by T0)."""
    clock = Clock()
    graph = ScriptedGraph(clock=clock)
    client = GraphClient({PAGE: SANDBOX_PAGE_TOKEN}, transport=graph)
    policy = load_policy(retired_tags_until=tags_until)
    outbox = Outbox(open_store(f"sqlite:///{tmp / 'outbox.sqlite3'}"), client, policy, clock=clock, page_rate=0,
                    batch_size=500)
    contacts = open_contacts_store(tmp / "contacts.sqlite3")
    handoff_store = open_handoff_store(tmp / "handoff.sqlite3")
    store = open_broadcasts_store(broadcasts_url or tmp / "broadcasts.sqlite3")
    service = Broadcasts(store, contacts, outbox, StoreHandoff(handoff_store), page_rate=page_rate, clock=clock)
    return World(tmp, clock, graph, outbox, contacts, handoff_store, store, service, client)


async def close_world(world: World) -> None:
    world.service.close()
    await world.outbox.stop()
    world.outbox.close()
    await world.client.close()
    for store in (world.contacts, world.handoff_store, world.store):
        store.close()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    opened = open_world(tmp_path)
    yield opened
    await close_world(opened)
