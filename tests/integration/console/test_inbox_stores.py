"""The inbox's reads on both databases (SQLite and PostgreSQL): the contacts' `inbox` (newest last message first,
restricted to or excluding conversation ids, a cursor that never repeats), the handoff store's `states_of` and
`ids_in_state`, the looks kept on the contacts (`mark_read`, `copy_read_marks`: a later look wins) and the
inbox's unread count over every page, and the console store's older conversation reads."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from console.store import ConsoleStore, open_console_store
from contacts.model import ContactInvalid, ContactQuery
from contacts.store import ContactsStore, open_contacts_store
from handoff.model import ConversationState, PauseReason
from handoff.service import HandoffStore, open_handoff_store
from tests.support.postgres import STORE_BACKENDS, store_url

ROOT = Path(__file__).resolve().parents[3]
PAGE = "100000000000001"
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)


@pytest.fixture(params=STORE_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def contacts(backend: str, tmp_path: Path) -> Iterator[ContactsStore]:
    with store_url(backend, tmp_path, "contacts") as url:
        store = open_contacts_store(url)
        yield store
        store.close()


@pytest.fixture
def handoff(backend: str, tmp_path: Path) -> Iterator[HandoffStore]:
    with store_url(backend, tmp_path, "handoff") as url:
        store = open_handoff_store(url)
        yield store
        store.close()


@pytest.fixture
def console(backend: str, tmp_path: Path) -> Iterator[ConsoleStore]:
    with store_url(backend, tmp_path, "console") as url:
        store = open_console_store(url)
        yield store
        store.close()


def test_the_inbox_lists_who_wrote_newest_first_and_pages_without_repeats(contacts: ContactsStore) -> None:
    for number in range(6):  # 1005 wrote last; two at one instant (ids break the tie)
        contacts.upsert_seen(PAGE, f"100{number}", NOW + timedelta(minutes=min(number, 4)))
    contacts.import_contact(PAGE, "2000", "Nunca", "Escribió", (), {}, NOW)  # never wrote: not a conversation

    def psids(**kwargs: object) -> list[str]:
        return [c.psid for c in contacts.inbox(ContactQuery(limit=50), **kwargs).contacts]  # type: ignore[arg-type]

    assert psids() == ["1005", "1004", "1003", "1002", "1001", "1000"]
    assert psids(only={f"{PAGE}:1001", f"{PAGE}:1004", "otra:9"}) == ["1004", "1001"]
    assert psids(only=set()) == []
    assert psids(exclude={f"{PAGE}:1005", f"{PAGE}:1000"}) == ["1004", "1003", "1002", "1001"]

    first = contacts.inbox(ContactQuery(limit=2))
    assert [c.psid for c in first.contacts] == ["1005", "1004"] and first.total == 6
    contacts.upsert_seen(PAGE, "1001", NOW + timedelta(hours=1))  # writes again: above the pages already read
    seen, cursor = [c.psid for c in first.contacts], first.next_cursor
    while cursor is not None:
        page = contacts.inbox(ContactQuery(limit=2, after=cursor))
        seen += [c.psid for c in page.contacts]
        cursor = page.next_cursor
    assert seen == ["1005", "1004", "1003", "1002", "1000"]
    with pytest.raises(ContactInvalid):
        contacts.inbox(ContactQuery(after="bm8tYS1jdXJzb3I"))


def test_handoff_states_of_a_page_of_ids_and_ids_by_state(handoff: HandoffStore) -> None:
    for psid in ("1", "2", "3"):
        handoff.pause(PAGE, psid, PauseReason.USER_ASKED, "bot", NOW)
    handoff.assign(f"{PAGE}:2", "agente", "agente", NOW)
    handoff.resume(f"{PAGE}:3", "agente", "Consulta resuelta", NOW)
    states = handoff.states_of([f"{PAGE}:1", f"{PAGE}:3", f"{PAGE}:9"])
    assert {k: v.state for k, v in states.items()} == {f"{PAGE}:1": ConversationState.PAUSED,
                                                       f"{PAGE}:3": ConversationState.BOT}
    assert handoff.states_of([]) == {}
    assert handoff.ids_in_state(ConversationState.PAUSED) == {f"{PAGE}:1", f"{PAGE}:2"}
    assert handoff.ids_in_state(ConversationState.PAUSED, assigned_to="agente") == {f"{PAGE}:2"}
    assert handoff.ids_in_state(ConversationState.PAUSED, unassigned=True) == {f"{PAGE}:1"}
    assert handoff.ids_in_state(ConversationState.BOT) == {f"{PAGE}:3"}


def test_conversation_reads_keep_the_latest_look(console: ConsoleStore) -> None:
    console.mark_read(f"{PAGE}:1", "agente", NOW)
    console.mark_read(f"{PAGE}:1", "maria", NOW - timedelta(minutes=1))  # a slow, older request
    console.mark_read(f"{PAGE}:2", "maria", NOW + timedelta(minutes=1))
    assert console.reads_of([f"{PAGE}:1", f"{PAGE}:2", f"{PAGE}:3"]) == {
        f"{PAGE}:1": NOW, f"{PAGE}:2": NOW + timedelta(minutes=1)}
    assert console.reads_of([]) == {}


def test_a_look_keeps_the_message_count_and_the_latest_look_wins(console: ConsoleStore) -> None:
    console.mark_read(f"{PAGE}:1", "agente", NOW, message_count=4)
    console.mark_read(f"{PAGE}:1", "maria", NOW - timedelta(minutes=1), message_count=2)  # older: changes nothing
    console.mark_read(f"{PAGE}:2", "maria", NOW)  # count unknown (contacts store away, or before the counter)
    console.mark_read("200000000000002:7", "maria", NOW, message_count=1)
    marks = console.read_marks_of([f"{PAGE}:1", f"{PAGE}:2", f"{PAGE}:3"])
    assert {cid: (m.read_at, m.message_count) for cid, m in marks.items()} == {
        f"{PAGE}:1": (NOW, 4), f"{PAGE}:2": (NOW, None)}
    console.mark_read(f"{PAGE}:1", "agente", NOW + timedelta(minutes=1), message_count=6)
    assert console.read_marks_of([f"{PAGE}:1"])[f"{PAGE}:1"].message_count == 6
    chunks = list(console.read_marks(PAGE, chunk=1))  # one page's looks, a chunk at a time
    assert [sorted(chunk) for chunk in chunks] == [[f"{PAGE}:1"], [f"{PAGE}:2"]]
    assert sum(len(chunk) for chunk in console.read_marks()) == 3


def test_the_unread_conversations_of_a_filter_are_counted_over_every_page(contacts: ContactsStore) -> None:
    for number in range(6):
        contacts.upsert_seen(PAGE, f"100{number}", NOW + timedelta(minutes=number), last_text=f"mensaje {number}")
    contacts.add_tags(PAGE, "1004", ["VIP"], NOW)
    contacts.add_tags(PAGE, "1005", ["VIP"], NOW)
    contacts.import_contact(PAGE, "2000", None, None, (), {}, NOW)  # never wrote: not in the inbox
    assert contacts.mark_read(PAGE, "1000", NOW + timedelta(hours=1), 1)  # read after their last message
    assert contacts.mark_read(PAGE, "1004", NOW + timedelta(minutes=4), 1)  # at the very time of it: read
    assert contacts.mark_read(PAGE, "1005", NOW, None)  # before they wrote: unread
    assert contacts.mark_read(PAGE, "2000", NOW + timedelta(hours=1), None)  # never wrote: still not in the inbox
    assert not contacts.mark_read("200000000000002", "1000", NOW, 1)  # no such contact: nothing
    assert not contacts.mark_read(PAGE, "1000", NOW, 0)  # an older look (a slow request): nothing

    def counts(query: ContactQuery, **kwargs: object) -> tuple[int, int]:
        found = contacts.inbox(query, **kwargs)  # type: ignore[arg-type]
        return found.total, found.unread

    assert counts(ContactQuery()) == (6, 4)
    assert counts(ContactQuery(page_id=PAGE, limit=1)) == (6, 4)  # every page, not the rows shown
    assert counts(ContactQuery(tag="vip")) == (2, 1)
    assert counts(ContactQuery(text="MENSAJE 0")) == (1, 0)  # the last text is searched
    assert counts(ContactQuery(), only={f"{PAGE}:1004"}) == (1, 0)
    assert counts(ContactQuery(), exclude={f"{PAGE}:1004"}) == (5, 4)
    assert counts(ContactQuery(), only=set()) == (0, 0)
    assert counts(ContactQuery(page_id="200000000000002")) == (0, 0)
    rows = {c.psid: c for c in contacts.inbox(ContactQuery()).contacts}
    assert (rows["1000"].read_at, rows["1000"].read_message_count) == (NOW + timedelta(hours=1), 1)
    assert [psid for psid, c in rows.items() if c.is_unread] == ["1005", "1003", "1002", "1001"]
    contacts.upsert_seen(PAGE, "1000", NOW + timedelta(hours=2), message_count=2)  # wrote after the look
    assert counts(ContactQuery()) == (6, 5)


def test_copied_read_marks_never_replace_a_newer_look(contacts: ContactsStore) -> None:
    contacts.upsert_seen(PAGE, "1000", NOW)
    contacts.upsert_seen(PAGE, "1001", NOW)
    contacts.mark_read(PAGE, "1000", NOW + timedelta(minutes=5), 3)
    contacts.copy_read_marks([(PAGE, "1000", NOW + timedelta(minutes=1), 1), (PAGE, "1001", NOW, 2),
                              (PAGE, "9999", NOW, 1)])
    contacts.copy_read_marks([])
    after = {c.psid: (c.read_at, c.read_message_count) for c in contacts.inbox(ContactQuery()).contacts}
    assert after == {"1000": (NOW + timedelta(minutes=5), 3), "1001": (NOW, 2)}
    assert contacts.inbox(ContactQuery()).unread == 0


def test_a_contacts_file_from_before_migration_003_opens_with_every_conversation_unread(tmp_path: Path) -> None:
    path = tmp_path / "contacts.sqlite3"
    store = open_contacts_store(str(path))
    store.upsert_seen(PAGE, "1001", NOW, last_text="hola", message_count=2)
    store.close()
    with sqlite3.connect(path) as raw:  # the file as migration 002 left it
        raw.execute("DROP INDEX contacts_by_last_message_read")
        raw.execute("DROP INDEX contacts_who_wrote_by_first_seen")  # migrations 004 and 005 run again after 003
        raw.execute("ALTER TABLE contacts DROP COLUMN read_at")
        raw.execute("ALTER TABLE contacts DROP COLUMN read_message_count")
        raw.execute("PRAGMA user_version = 2")
    reopened = open_contacts_store(str(path))
    try:
        assert reopened.schema_version == len(list((ROOT / "contacts" / "sql" / "sqlite").glob("0*.sql")))
        found = reopened.inbox(ContactQuery())
        assert (found.total, found.unread, found.contacts[0].last_text) == (1, 1, "hola")
        assert reopened.mark_read(PAGE, "1001", NOW + timedelta(seconds=1), 2)
        assert reopened.inbox(ContactQuery()).unread == 0
    finally:
        reopened.close()
