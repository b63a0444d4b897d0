"""A broadcast's audience (`ContactsStore.audience` / `count_audience`) on SQLite and PostgreSQL: every condition
(tags any / none, fields ignoring case and accents, campaign, last interaction after / before) together, contacts who
never wrote included, one page only, pages by internal id that never skip or repeat (also while contacts are added),
the count equal to the walk; a few thousand contacts walked in pages of 1000 with the same answer as a filter in
Python. And the contacts' last message and message count copied from the outbox (the search finds the text)."""

from __future__ import annotations

import random
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from contacts.model import Audience, Contact, ContactInvalid, ContactQuery, fold, tag_key
from contacts.store import ContactsStore, _audience_params, open_contacts_store

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=timezone.utc)
PAGE, OTHER_PAGE = "100000000000001", "100000000000002"


def later(**span: float) -> datetime:
    return NOW + timedelta(**span)


def walk(store: ContactsStore, audience: Audience, limit: int = 1000) -> list[str]:
    psids: list[str] = []
    after = 0
    while True:
        page = store.audience(audience, after=after, limit=limit)
        psids += [contact.psid for contact in page.contacts]
        if page.next_after is None:
            return psids
        after = page.next_after


def test_every_condition_holds_together_and_who_never_wrote_is_included(store: ContactsStore) -> None:
    store.upsert_seen(PAGE, "1001", later(days=-1), campaign="menu_mesas")
    store.add_tags(PAGE, "1001", ["Cliente VIP"], NOW)
    store.set_fields(PAGE, "1001", {"ciudad": "Quito"}, NOW)
    store.upsert_seen(PAGE, "1002", later(days=-10))
    store.add_tags(PAGE, "1002", ["cliente vip", "No molestar"], NOW)
    store.set_fields(PAGE, "1002", {"ciudad": "QUITO"}, NOW)
    store.import_contact(PAGE, "1003", "Ana", None, ["Cliente VÍP"], {"ciudad": "quitó"}, NOW)  # never wrote
    store.upsert_seen(PAGE, "1004", NOW)
    store.set_fields(PAGE, "1004", {"ciudad": "Guayaquil"}, NOW)
    store.upsert_seen(OTHER_PAGE, "1001", NOW)
    store.add_tags(OTHER_PAGE, "1001", ["Cliente VIP"], NOW)

    assert walk(store, Audience(PAGE)) == ["1001", "1002", "1003", "1004"]
    assert walk(store, Audience(PAGE, tags_any=("CLIENTE vip", "otra"))) == ["1001", "1002", "1003"]
    assert walk(store, Audience(PAGE, tags_none=("no MOLESTAR",))) == ["1001", "1003", "1004"]
    assert walk(store, Audience(PAGE, fields={"ciudad": "quito"})) == ["1001", "1002", "1003"]
    assert walk(store, Audience(PAGE, fields={"ciudad": "quito", "pedido": "1"})) == []
    assert walk(store, Audience(PAGE, campaign="menu_mesas")) == ["1001"]
    assert walk(store, Audience(PAGE, last_interaction_after=later(days=-2))) == ["1001", "1004"]
    assert walk(store, Audience(PAGE, last_interaction_before=NOW)) == ["1001", "1002"]  # < now; never wrote: out
    both = Audience(PAGE, tags_any=("Cliente VIP",), tags_none=("No molestar",), fields={"ciudad": "Quito"})
    assert walk(store, both) == ["1001", "1003"]
    assert store.count_audience(both) == 2
    assert store.count_audience(Audience(OTHER_PAGE, tags_any=("cliente vip",))) == 1
    assert store.count_audience(Audience("100000000000009")) == 0


def test_a_field_changed_or_removed_leaves_the_audience(store: ContactsStore) -> None:
    store.upsert_seen(PAGE, "1001", NOW)
    store.set_fields(PAGE, "1001", {"ciudad": "Quito"}, NOW)
    quito = Audience(PAGE, fields={"ciudad": "QUITO"})
    assert store.count_audience(quito) == 1
    store.set_fields(PAGE, "1001", {"ciudad": "Cuenca"}, later(seconds=1))
    assert store.count_audience(quito) == 0
    store.set_fields(PAGE, "1001", {"ciudad": "Cuenca"}, later(seconds=1))
    assert store.count_audience(Audience(PAGE, fields={"ciudad": "cuenca"})) == 1
    store.set_fields(PAGE, "1001", {"ciudad": None}, later(seconds=2))
    assert store.count_audience(Audience(PAGE, fields={"ciudad": "cuenca"})) == 0


def test_pages_never_skip_or_repeat_while_contacts_are_added(store: ContactsStore) -> None:
    for number in range(25):
        store.upsert_seen(PAGE, f"2{number:03d}", later(seconds=number))
    audience = Audience(PAGE)
    seen: list[str] = []
    page = store.audience(audience, limit=10)
    seen += [c.psid for c in page.contacts]
    store.upsert_seen(PAGE, "9999", later(hours=1))  # a new contact during the walk: at the end, once
    while page.next_after is not None:
        page = store.audience(audience, after=page.next_after, limit=10)
        seen += [c.psid for c in page.contacts]
    assert seen == [f"2{number:03d}" for number in range(25)] + ["9999"]
    assert store.audience(audience, limit=26).next_after is None
    with pytest.raises(ContactInvalid) as refused:
        store.audience(audience, limit=1001)
    assert refused.value.field == "limit"
    with pytest.raises(ContactInvalid):
        store.audience(audience, after=-1)


def test_a_few_thousand_contacts_walk_in_pages_as_a_filter_in_python_says(store: ContactsStore) -> None:
    shuffle = random.Random(13)
    tags = ["Cliente VIP", "Mayorista", "No molestar", "Quito", "Promo"]
    cities = ["Quito", "quito", "Guayaquil", "Cuenca", "Loja"]
    rows = []
    for number in range(3000):
        chosen = [tag for tag in tags if shuffle.random() < 0.3]
        fields = {"ciudad": shuffle.choice(cities)} if shuffle.random() < 0.8 else {}
        rows.append((f"{number:05d}", chosen, fields))
    store.import_contacts([_Row(PAGE, psid, chosen, fields) for psid, chosen, fields in rows], NOW)
    for psid, _chosen, _fields in rows[::3]:  # a third wrote, at different times
        store.upsert_seen(PAGE, psid, later(minutes=-int(psid)))
    audience = Audience(PAGE, tags_any=("cliente vip", "MAYORISTA"), tags_none=("no molestar",),
                        fields={"ciudad": "QUITO"}, last_interaction_after=later(minutes=-2000))
    everyone = walk(store, Audience(PAGE))
    assert len(everyone) == 3000 and everyone == sorted(everyone)
    expected = sorted(psid for psid, chosen, fields in rows if _matches(audience, psid, chosen, fields))
    assert walk(store, audience) == expected and expected
    assert store.count_audience(audience) == len(expected)


def test_an_old_field_is_folded_when_the_store_opens(tmp_path: Path) -> None:
    path = tmp_path / "contacts.sqlite3"
    store = open_contacts_store(str(path))
    store.upsert_seen(PAGE, "1001", NOW)
    store.set_fields(PAGE, "1001", {"ciudad": "Quitó"}, NOW)
    store.close()
    with sqlite3.connect(path) as raw:  # as a row written before migration 002 looks
        raw.execute("UPDATE contact_fields SET value_key = NULL")
    reopened = open_contacts_store(str(path))
    try:
        assert reopened.count_audience(Audience(PAGE, fields={"ciudad": "quito"})) == 1
    finally:
        reopened.close()


def test_the_last_message_and_the_count_follow_the_newest_message(store: ContactsStore) -> None:
    store.upsert_seen(PAGE, "1001", NOW, last_text="¿Tienen mesas para el sábado?", message_count=3)
    store.add_tags(PAGE, "1001", ["Reserva"], NOW)
    store.upsert_seen(PAGE, "1001", later(minutes=-5), last_text="hola", message_count=2)  # an older one, late
    contact = store.require(PAGE, "1001")
    assert (contact.last_text, contact.message_count) == ("¿Tienen mesas para el sábado?", 3)
    assert [c.psid for c in store.search(ContactQuery(text="MESAS para el SABADO")).contacts] == ["1001"]
    assert [c.psid for c in store.inbox(ContactQuery(text="sabado")).contacts] == ["1001"]
    store.upsert_seen(PAGE, "1001", later(minutes=1), last_text="Gra\x00cias\x07 " + "x" * 600, message_count=4)
    contact = store.require(PAGE, "1001")
    assert contact.last_text is not None and contact.last_text.startswith("Gracias ") and len(contact.last_text) == 500
    assert contact.message_count == 4 and contact.tags == ("Reserva",)
    assert store.search(ContactQuery(text="sabado")).contacts == []  # the search follows the newest text
    assert [c.psid for c in store.search(ContactQuery(text="gracias")).contacts] == ["1001"]
    store.upsert_seen(PAGE, "1001", later(minutes=2), last_text=None, message_count=5)  # a photo: no text
    contact = store.require(PAGE, "1001")
    assert (contact.last_text, contact.message_count) == (None, 5)
    assert store.search(ContactQuery(text="gracias")).contacts == []
    store.add_tags(PAGE, "1001", ["Otra"], later(minutes=3))
    store.upsert_seen(PAGE, "1001", later(minutes=4), last_text="Una más", message_count=6)
    store.set_fields(PAGE, "1001", {"ciudad": "Quito"}, later(minutes=5))  # a refresh keeps the text searchable
    assert [c.psid for c in store.search(ContactQuery(text="una mas")).contacts] == ["1001"]
    assert store.require(PAGE, "1001").to_dict()["last_text"] == "Una más"


class _Row:
    def __init__(self, page_id: str, psid: str, tags: list[str], fields: dict[str, str]) -> None:
        self.page_id, self.psid, self.first_name, self.last_name = page_id, psid, None, None
        self.tags: list[str] = tags
        self.fields: dict[str, str | None] = dict(fields)


def _matches(audience: Audience, psid: str, tags: list[str], fields: dict[str, str]) -> bool:
    keys = {tag_key(tag) for tag in tags}
    wrote = int(psid) % 3 == 0
    last = later(minutes=-int(psid)) if wrote else None
    contact = Contact(page_id=PAGE, psid=psid, first_seen_at=NOW, last_user_message_at=last)
    return (
        (not audience.tags_any or bool(keys & {tag_key(tag) for tag in audience.tags_any}))
        and not keys & {tag_key(tag) for tag in audience.tags_none}
        and all(fold(fields.get(key, "\x00")) == fold(value) for key, value in audience.fields.items())
        and (audience.last_interaction_after is None
             or (contact.last_user_message_at is not None
                 and contact.last_user_message_at >= audience.last_interaction_after))
    )


def test_a_page_of_an_audience_reads_the_page_index_not_the_whole_table(tmp_path: Path) -> None:
    """At 100,000 contacts a page of 1000 stays fast because it walks (page_id, id) from the cursor and checks each
    condition by primary key; the plan says so (no wall clock)."""
    path = tmp_path / "contacts.sqlite3"
    store = open_contacts_store(str(path))
    store.close()
    audience = Audience(PAGE, tags_any=("VIP",), tags_none=("No molestar",), fields={"ciudad": "Quito"},
                        campaign="menu", last_interaction_after=NOW)
    with sqlite3.connect(path) as raw:
        query = store._db.queries["audience_contacts"]
        plan = " | ".join(row[3] for row in raw.execute(
            "EXPLAIN QUERY PLAN " + query, {**_audience_params(audience), "after_id": 0, "limit": 1001}))
    assert "SEARCH c USING INDEX contacts_by_page (page_id=? AND id>?)" in plan, plan
    assert "SCAN c" not in plan and "TEMP B-TREE" not in plan, plan
    assert "contact_tags" in plan and "sqlite_autoindex_contact_fields_1 (page_id=? AND psid=? AND key=?)" in plan
