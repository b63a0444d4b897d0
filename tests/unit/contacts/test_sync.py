"""The contacts' sync over real SQLite stores (the outbox's and the contacts') and the Graph client against the
in-process Graph sandbox: people who wrote become contacts with the sandbox's profile; a PSID without permission
keeps its PSID and says why; Meta down → unavailable, asked again after the backoff; late webhooks are not lost;
the cursor survives a restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from contacts.model import FETCHED, NO_PERMISSION, PENDING, UNAVAILABLE
from contacts.store import ContactsStore, open_contacts_store
from contacts.sync import PAGE_REFUSALS_TO_PAUSE, ContactSync
from core.settings import SANDBOX_PAGE_ID, SANDBOX_PAGE_TOKEN
from meta.graph import GraphClient
from outbox.outbox import Outbox, open_outbox
from sandbox.graph import GraphSandbox, sandbox_profile
from tests.support.graph_sandbox_transport import SandboxTransport

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=timezone.utc)
PAGE = SANDBOX_PAGE_ID


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def transport() -> SandboxTransport:
    return SandboxTransport(GraphSandbox({PAGE: SANDBOX_PAGE_TOKEN}))


@pytest.fixture
def graph(transport: SandboxTransport) -> GraphClient:
    return GraphClient({PAGE: SANDBOX_PAGE_TOKEN}, transport=transport)


@pytest.fixture
def outbox(tmp_path: Path, graph: GraphClient) -> Iterator[Outbox]:
    opened = open_outbox(f"sqlite:///{tmp_path / 'outbox.sqlite3'}", graph)
    yield opened
    opened.close()


@pytest.fixture
def contacts(tmp_path: Path) -> Iterator[ContactsStore]:
    opened = open_contacts_store(f"sqlite:///{tmp_path / 'contacts.sqlite3'}")
    yield opened
    opened.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sync(contacts: ContactsStore, outbox: Outbox, graph: GraphClient, clock: Clock) -> ContactSync:
    campaigns = {(PAGE, "ana-1"): "menu_mesas"}
    return ContactSync(contacts, outbox, graph, clock, lambda page, psid: campaigns.get((page, psid)),
                       profile_page_interval=0)


async def test_people_who_wrote_become_contacts_with_the_sandbox_profile(
        sync: ContactSync, outbox: Outbox, contacts: ContactsStore) -> None:
    await outbox.record_user_message(PAGE, "ana-1", NOW - timedelta(minutes=3))
    await outbox.record_user_message(PAGE, "1234567890", NOW - timedelta(minutes=1))
    assert await sync.sync_seen() == 2
    pending = contacts.get(PAGE, "ana-1")
    assert pending is not None and (pending.profile_status, pending.campaign) == (PENDING, "menu_mesas")

    assert await sync.fetch_profiles() == 2
    expected = sandbox_profile("ana-1")
    ana = contacts.get(PAGE, "ana-1")
    assert ana is not None
    assert (ana.profile_status, ana.first_name, ana.last_name, ana.profile_pic, ana.locale) == (
        FETCHED, expected["first_name"], expected["last_name"], expected["profile_pic"], "es_LA")
    assert ana.display_name == f"{expected['first_name']} {expected['last_name']}"
    assert ana.last_user_message_at == NOW - timedelta(minutes=3)
    assert await sync.run_once() == 0  # nothing new: nothing done


async def test_without_permission_the_contact_keeps_its_psid_and_says_why(
        sync: ContactSync, outbox: Outbox, contacts: ContactsStore) -> None:
    await outbox.record_user_message(PAGE, "noperm-7", NOW)
    await outbox.record_user_message(PAGE, "noprofile-8", NOW)
    await sync.run_once()
    refused = contacts.get(PAGE, "noperm-7")
    assert refused is not None
    assert (refused.profile_status, refused.first_name, refused.display_name) == (
        NO_PERMISSION, None, "Sin nombre (PSID …rm-7)")
    assert refused.profile_reason is not None and "permiso" in refused.profile_reason
    phone = contacts.get(PAGE, "noprofile-8")
    assert phone is not None and phone.profile_status == NO_PERMISSION
    assert phone.profile_reason is not None and "teléfono" in phone.profile_reason
    assert contacts.profiles_to_fetch(NOW + timedelta(hours=23), 10) == []  # asked again a day later, not before
    assert len(contacts.profiles_to_fetch(NOW + timedelta(days=1), 10)) == 2


async def test_meta_down_is_unavailable_and_retried_after_the_backoff(
        sync: ContactSync, outbox: Outbox, contacts: ContactsStore, transport: SandboxTransport,
        clock: Clock) -> None:
    await outbox.record_user_message(PAGE, "luis-2", NOW)
    transport.fail_with = (500, {"error": {"message": "An unexpected error has occurred. Please retry your request "
                                                      "later.", "type": "OAuthException", "code": 2,
                                           "is_transient": True}}, {})
    await sync.run_once()
    down = contacts.get(PAGE, "luis-2")
    assert down is not None and (down.profile_status, down.profile_attempts) == (UNAVAILABLE, 1)
    transport.fail_with = None
    clock.now = NOW + timedelta(seconds=29)
    assert await sync.fetch_profiles() == 0  # still backing off
    clock.now = NOW + timedelta(seconds=30)
    assert await sync.fetch_profiles() == 1
    back = contacts.get(PAGE, "luis-2")
    assert back is not None and (back.profile_status, back.first_name, back.profile_attempts, back.profile_reason) == (
        FETCHED, sandbox_profile("luis-2")["first_name"], 0, None)


async def test_a_message_handled_an_hour_late_still_makes_a_contact_and_a_restart_loses_nobody(
        sync: ContactSync, outbox: Outbox, contacts: ContactsStore, graph: GraphClient, clock: Clock) -> None:
    await outbox.record_user_message(PAGE, "u-1", NOW)
    assert await sync.sync_seen() == 1
    # Meta's time an hour old, recorded now (an outage, a redelivery, a backlog, the journal replayed): far behind
    # the lookback, but the sync follows when the outbox recorded it
    await outbox.record_user_message(PAGE, "u-2", NOW - timedelta(hours=1))
    assert await sync.sync_seen() == 1
    late = contacts.get(PAGE, "u-2")
    assert late is not None and late.last_user_message_at == NOW - timedelta(hours=1)
    await outbox.record_user_message(PAGE, "u-1", NOW + timedelta(minutes=1))  # wrote again
    assert await sync.sync_seen() == 1
    again = contacts.get(PAGE, "u-1")
    assert again is not None and again.last_user_message_at == NOW + timedelta(minutes=1)
    assert contacts.sync_cursor() == (await outbox.conversations_since(None, 10))[-1].recorded_at

    restarted = ContactSync(contacts, outbox, graph, clock, lookback=timedelta(0))
    await outbox.record_user_message(PAGE, "u-3", NOW + timedelta(minutes=2))
    assert await restarted.sync_seen() == 1  # u-3: not everyone from the start


async def test_the_cursor_is_saved_after_each_batch_so_a_failure_midway_does_not_start_over(
        contacts: ContactsStore, outbox: Outbox, graph: GraphClient, clock: Clock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(6):
        await outbox.record_user_message(PAGE, f"p-{n}", NOW)
    recorded = [row.recorded_at for row in await outbox.conversations_since(None, 10)]
    upsert_seen = contacts.upsert_seen

    def fails_on_the_fifth(page_id: str, psid: str, at: datetime, *rest: Any) -> bool:
        if psid == "p-4":
            raise RuntimeError("the contacts store went away")
        return upsert_seen(page_id, psid, at, *rest)

    monkeypatch.setattr(contacts, "upsert_seen", fails_on_the_fifth)
    with pytest.raises(RuntimeError):
        await ContactSync(contacts, outbox, graph, clock, batch_size=2, lookback=timedelta(0)).sync_seen()
    cursor = contacts.sync_cursor()
    assert cursor is not None and recorded[1] <= cursor < recorded[4]  # kept up to the last finished batch

    monkeypatch.setattr(contacts, "upsert_seen", upsert_seen)
    resumed = ContactSync(contacts, outbox, graph, clock, batch_size=2, lookback=timedelta(0))
    assert await resumed.sync_seen() <= 3  # not the first batches again
    assert {c.psid for c in contacts.export_rows()} == {f"p-{n}" for n in range(6)}


async def test_many_at_one_instant_are_all_read_whatever_the_batch(
        contacts: ContactsStore, outbox: Outbox, graph: GraphClient, clock: Clock) -> None:
    small = ContactSync(contacts, outbox, graph, clock, batch_size=3)
    for n in range(7):
        await outbox.record_user_message(PAGE, f"p-{n}", NOW)
    await outbox.record_user_message(PAGE, "q-1", NOW + timedelta(seconds=1))
    assert await small.sync_seen() == 8
    assert {c.psid for c in contacts.export_rows()} == {f"p-{n}" for n in range(7)} | {"q-1"}


class CountingProfiles:
    """The real Graph client, counted; `hang` makes every call wait forever (Meta not answering)."""

    def __init__(self, graph: GraphClient, hang: bool = False) -> None:
        self.graph, self.hang, self.calls = graph, hang, 0

    async def get_user_profile(self, page_id: str, psid: str, fields: Sequence[str] = ()) -> dict[str, Any]:
        self.calls += 1
        if self.hang:
            await asyncio.Event().wait()
        return await self.graph.get_user_profile(page_id, psid, fields)


async def test_a_hanging_meta_holds_a_round_only_for_its_time_budget(
        contacts: ContactsStore, outbox: Outbox, graph: GraphClient, clock: Clock) -> None:
    for n in range(10):
        await outbox.record_user_message(PAGE, f"h-{n}", NOW)
    sync = ContactSync(contacts, outbox, CountingProfiles(graph, hang=True), clock, profile_round_seconds=0.3,
                       profile_call_seconds=0.1, profile_page_interval=0)
    await sync.sync_seen()
    started = time.monotonic()
    recorded = await asyncio.wait_for(sync.fetch_profiles(), timeout=5)
    assert time.monotonic() - started < 1.0
    assert 1 <= recorded < 10  # the rest next round
    statuses = [(c.profile_status, c.profile_reason) for c in contacts.export_rows() if c.profile_status != PENDING]
    assert len(statuses) == recorded
    assert all(status == UNAVAILABLE and reason and "no respondió" in reason for status, reason in statuses)


async def test_calls_to_one_page_are_paced(
        contacts: ContactsStore, outbox: Outbox, graph: GraphClient, clock: Clock) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    for n in range(3):
        await outbox.record_user_message(PAGE, f"r-{n}", NOW)
    sync = ContactSync(contacts, outbox, graph, clock, profile_page_interval=0.5, sleep=sleep)
    await sync.sync_seen()
    assert await sync.fetch_profiles() == 3
    assert len(waits) == 2 and all(0.4 < wait <= 0.5 for wait in waits)


async def test_a_page_meta_refuses_as_a_whole_is_asked_a_few_times_a_day_not_per_contact(
        contacts: ContactsStore, outbox: Outbox, graph: GraphClient, clock: Clock) -> None:
    for n in range(10):
        await outbox.record_user_message(PAGE, f"noperm-{n}", NOW)  # the sandbox refuses these with 2018247
    counted = CountingProfiles(graph)
    sync = ContactSync(contacts, outbox, counted, clock, profile_page_interval=0)
    await sync.sync_seen()
    assert await sync.fetch_profiles() == 10
    assert counted.calls == PAGE_REFUSALS_TO_PAUSE * 2  # each refused contact is asked once more without locale
    refused = list(contacts.export_rows())
    assert all(c.profile_status == NO_PERMISSION and c.profile_reason and "permiso" in c.profile_reason
               for c in refused)
    clock.now = NOW + timedelta(days=1)
    assert await sync.fetch_profiles() == 10
    assert counted.calls == 2 * PAGE_REFUSALS_TO_PAUSE * 2  # the next day: probed again, not 10 contacts × 2


async def test_the_last_message_and_how_many_they_wrote_come_from_the_outbox(
        sync: ContactSync, outbox: Outbox, contacts: ContactsStore) -> None:
    await outbox.record_user_message(PAGE, "ana-1", NOW, "hola")
    await outbox.record_user_message(PAGE, "ana-1", NOW + timedelta(seconds=5), "¿Tienen mesas para el sábado?")
    await sync.sync_seen()
    contact = contacts.require(PAGE, "ana-1")
    assert (contact.last_text, contact.message_count) == ("¿Tienen mesas para el sábado?", 2)
    await outbox.record_user_message(PAGE, "ana-1", NOW + timedelta(seconds=9))  # a photo: no text
    await sync.sync_seen()
    [seen] = await outbox.conversations_since(None, 10)
    contact = contacts.require(PAGE, "ana-1")
    assert (contact.last_text, contact.message_count) == (seen.last_text, 3)  # as the outbox tells it
