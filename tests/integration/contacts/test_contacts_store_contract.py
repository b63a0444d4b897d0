"""One contract suite for `ContactsStore` on its two databases: a real SQLite file and a PostgreSQL schema of the
test's own (`open_contacts_store(url)` picks by URL). A contact is created by the person's first message and keeps its
first time; search by name, PSID, tag, field value (case and accents ignored), campaign and open window, paged by a
cursor that never skips or repeats; tags compared case- and accent-insensitively; fields deleted with None; notes;
profiles (fetched, refused, retried); the CSV import and export's reads. PostgreSQL missing → its half is skipped."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

import psycopg2
import pytest

from contacts.model import FETCHED, NO_PERMISSION, PENDING, UNAVAILABLE, ContactInvalid, ContactNotFound, ContactQuery
from contacts.store import ContactsStore, ImportRowInvalid

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=timezone.utc)
PAGE, OTHER_PAGE = "100000000000001", "100000000000002"


def later(**span: float) -> datetime:
    return NOW + timedelta(**span)


def test_a_contact_is_created_once_and_keeps_its_first_time_and_first_campaign(store: ContactsStore) -> None:
    assert store.upsert_seen(PAGE, "1001", later(hours=1), campaign="menu_mesas") is True
    assert store.upsert_seen(PAGE, "1001", later(hours=3), campaign="ad:777") is False
    assert store.upsert_seen(PAGE, "1001", later(hours=2)) is False  # an older event arrives late
    contact = store.get(PAGE, "1001")
    assert contact is not None
    assert (contact.first_seen_at, contact.last_user_message_at, contact.campaign) == (
        later(hours=1), later(hours=3), "menu_mesas")
    assert (contact.profile_status, contact.display_name, contact.tags, dict(contact.fields)) == (
        PENDING, "Sin nombre (PSID …1001)", (), {})
    assert store.upsert_seen(OTHER_PAGE, "1001", NOW) is True  # one record per person and page
    assert store.get(PAGE, "9999") is None


def test_several_tags_are_removed_at_once_whatever_they_hold(store: ContactsStore) -> None:
    store.upsert_seen(PAGE, "1001", NOW)
    store.add_tags(PAGE, "1001", ["1/2 pollo", "..", "Quito/Norte", "se queda"], NOW)
    contact = store.remove_tags(PAGE, "1001", ["QUITO/norte", "..", "1/2 POLLO", "no la tiene"], later(seconds=1))
    assert contact.tags == ("se queda",)
    assert [c.psid for c in store.search(ContactQuery(text="norte")).contacts] == []  # the search copy follows
    with pytest.raises(ContactNotFound):
        store.remove_tags(PAGE, "9999", ["x"], NOW)


def test_tags_are_one_per_spelling_and_removed_however_spelled(store: ContactsStore) -> None:
    store.upsert_seen(PAGE, "1001", NOW)
    contact = store.add_tags(PAGE, "1001", ["Cliente VIP", "  cliente   víp ", "Quito"], NOW)
    assert contact.tags == ("Cliente VIP", "Quito")
    assert store.add_tags(PAGE, "1001", ["CLIENTE VIP", "envío"], later(seconds=1)).tags == (
        "Cliente VIP", "envío", "Quito")
    assert store.remove_tag(PAGE, "1001", "ENVIO", later(seconds=2)).tags == ("Cliente VIP", "Quito")
    assert store.remove_tag(PAGE, "1001", "no la tiene", later(seconds=2)).tags == ("Cliente VIP", "Quito")
    store.upsert_seen(PAGE, "1002", NOW)
    store.add_tags(PAGE, "1002", ["cliente vip"], NOW)
    assert dict(store.all_tags()) == {"Cliente VIP": 2, "Quito": 1}
    assert store.all_tags(OTHER_PAGE) == []
    with pytest.raises(ContactInvalid) as refused:
        store.add_tags(PAGE, "1001", [f"etiqueta {n}" for n in range(49)], NOW)
    assert refused.value.field == "tags" and "50" in refused.value.message_es
    with pytest.raises(ContactNotFound):
        store.add_tags(PAGE, "9999", ["x"], NOW)


def test_fields_are_set_replaced_and_deleted_with_none(store: ContactsStore) -> None:
    store.upsert_seen(PAGE, "1001", NOW)
    assert dict(store.set_fields(PAGE, "1001", {"ciudad": "Quito", "pedido": "A-17"}, NOW).fields) == {
        "ciudad": "Quito", "pedido": "A-17"}
    assert dict(store.set_fields(PAGE, "1001", {"ciudad": "Cuenca", "pedido": None}, NOW).fields) == {
        "ciudad": "Cuenca"}
    with pytest.raises(ContactInvalid) as refused:
        store.set_fields(PAGE, "1001", {"Ciudad": "x"}, NOW)
    assert refused.value.field == "fields.Ciudad"


def test_notes_newest_first_and_counted(store: ContactsStore) -> None:
    store.upsert_seen(PAGE, "1001", NOW)
    first = store.add_note(PAGE, "1001", "Pidió factura", "ana@example.com", NOW)
    second = store.add_note(PAGE, "1001", "Llamar el lunes", "luis@example.com", later(minutes=5))
    assert [note.text for note in store.notes(PAGE, "1001")] == ["Llamar el lunes", "Pidió factura"]
    assert store.notes(PAGE, "1001")[1] == first and second.id > first.id
    contact = store.get(PAGE, "1001")
    assert contact is not None and contact.notes_count == 2
    with pytest.raises(ContactInvalid):
        store.add_note(PAGE, "1001", "   ", "ana", NOW)


def test_search_ignores_case_and_accents_in_names_psids_tags_and_fields(store: ContactsStore) -> None:
    for psid in ("1001", "1002", "1003"):
        store.upsert_seen(PAGE, psid, NOW)
    store.record_profile(PAGE, "1001", "José", "Pérez", None, "es_LA", FETCHED, None, NOW)
    store.add_tags(PAGE, "1002", ["Envío gratis"], NOW)
    store.set_fields(PAGE, "1003", {"ciudad": "Guayaquil"}, NOW)

    def found(**query: object) -> list[str]:
        return [contact.psid for contact in store.search(ContactQuery(**query)).contacts]  # type: ignore[arg-type]

    assert found(text="jose perez") == ["1001"]
    assert found(text="PÉREZ") == ["1001"]
    assert found(text="envio") == ["1002"]
    assert found(text="GUAYAQUIL") == ["1003"]
    assert found(text="1002") == ["1002"]
    assert found(text="100") == ["1003", "1002", "1001"]
    assert found(text="50%_") == []  # LIKE's own characters are searched for, not obeyed
    assert found(tag="ENVIO GRATIS") == ["1002"]
    assert found(tag="ENVIO GRATIS", text="jose") == []
    assert found(page_id=OTHER_PAGE) == []


def test_search_by_campaign_and_open_window(store: ContactsStore) -> None:
    store.upsert_seen(PAGE, "1001", NOW, campaign="menu_mesas")
    store.upsert_seen(PAGE, "1002", later(hours=20), campaign="ad:42")
    store.import_contact(PAGE, "1003", "Ana", None, [], {}, NOW)  # never wrote
    assert [c.psid for c in store.search(ContactQuery(campaign="ad:42")).contacts] == ["1002"]
    # The policy's RESPONSE window is 24 h, ends included: at NOW+24h the first is still open, a second later not.
    assert {c.psid for c in store.search(ContactQuery(window_open_at=later(hours=24))).contacts} == {"1001", "1002"}
    page = store.search(ContactQuery(window_open_at=later(hours=24, seconds=1)))
    assert ([c.psid for c in page.contacts], page.total) == (["1002"], 1)


def test_the_cursor_never_skips_or_repeats_even_when_contacts_change_meanwhile(store: ContactsStore) -> None:
    for n in range(23):
        store.upsert_seen(PAGE, f"{2000 + n}", later(minutes=n))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = store.search(ContactQuery(page_id=PAGE, limit=5, after=cursor))
        assert page.total == 23 + pages  # one new contact per page read so far
        seen += [contact.psid for contact in page.contacts]
        pages += 1
        store.upsert_seen(PAGE, f"{3000 + pages}", later(days=1))  # a newcomer: it goes on top, not into the walk
        store.upsert_seen(PAGE, "2000", later(days=1, minutes=pages))  # an old contact writes again
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"{2000 + n}" for n in reversed(range(23))]
    assert pages == 5
    with pytest.raises(ContactInvalid) as refused:
        store.search(ContactQuery(after="not-a-cursor"))
    assert refused.value.field == "cursor"


def test_profiles_due_fetched_refused_and_retried_with_backoff(store: ContactsStore) -> None:
    store.upsert_seen(PAGE, "1001", NOW)
    store.upsert_seen(PAGE, "1002", NOW)
    store.upsert_seen(PAGE, "1003", NOW)
    assert [c.psid for c in store.profiles_to_fetch(NOW, 10)] == ["1001", "1002", "1003"]
    assert store.profiles_to_fetch(NOW - timedelta(seconds=1), 10) == []

    fetched = store.record_profile(PAGE, "1001", "Ana", "Mora", "https://example.com/a.jpg", "es_LA", FETCHED, None,
                                   NOW)
    assert (fetched.display_name, fetched.profile_status, fetched.profile_fetched_at, fetched.locale) == (
        "Ana Mora", FETCHED, NOW, "es_LA")
    refused = store.record_profile(PAGE, "1002", None, None, None, None, NO_PERMISSION, "Sin permiso.", NOW)
    assert (refused.profile_status, refused.profile_reason, refused.display_name) == (
        NO_PERMISSION, "Sin permiso.", "Sin nombre (PSID …1002)")
    store.record_profile(PAGE, "1003", None, None, None, None, UNAVAILABLE, "Meta no respondió.", NOW)
    assert store.profiles_to_fetch(later(seconds=29), 10) == []
    assert [c.psid for c in store.profiles_to_fetch(later(seconds=30), 10)] == ["1003"]
    again = store.record_profile(PAGE, "1003", None, None, None, None, UNAVAILABLE, "Meta no respondió.",
                                 later(seconds=30))
    assert again.profile_attempts == 2
    assert store.profiles_to_fetch(later(seconds=89), 10) == []  # 30 s, then 60 s
    assert [c.psid for c in store.profiles_to_fetch(later(days=1), 10)] == ["1003", "1002"]
    with pytest.raises(ContactInvalid):
        store.record_profile(PAGE, "1003", None, None, None, None, "whatever", None, NOW)


def test_import_creates_or_updates_and_export_reads_everything_in_order(
        store: ContactsStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("contacts.store.EXPORT_CHUNK", 4)
    store.upsert_seen(PAGE, "1001", NOW)
    assert store.import_contact(PAGE, "1001", "Ana", "", ["VIP"], {"ciudad": "Loja"}, later(minutes=1)) is False
    assert store.import_contact(OTHER_PAGE, "1002", None, "Ruiz", ["vip"], {}, later(minutes=1)) is True
    first = store.get(PAGE, "1001")
    assert first is not None and (first.first_name, first.last_name, first.tags, dict(first.fields)) == (
        "Ana", None, ("VIP",), {"ciudad": "Loja"})
    imported = store.get(OTHER_PAGE, "1002")
    assert imported is not None and (imported.last_user_message_at, imported.profile_status) == (None, PENDING)
    for n in range(10):  # more than one export chunk, and a last chunk that is full
        store.upsert_seen(PAGE, f"{5000 + n}", NOW)
    exported = list(store.export_rows())
    assert len(exported) == 12 and len({c.key for c in exported}) == 12
    assert [c.psid for c in exported[:3]] == ["1001", "1002", "5000"]
    assert {c.page_id for c in store.export_rows(OTHER_PAGE)} == {OTHER_PAGE}


def test_text_with_nul_or_lone_surrogates_is_refused_before_the_database(store: ContactsStore) -> None:
    store.upsert_seen(PAGE, "1001", NOW)
    for bad in ("a\x00b", "\ud800"):
        with pytest.raises(ContactInvalid):
            store.add_note(PAGE, "1001", bad, "ana", NOW)
        with pytest.raises(ContactInvalid):
            store.set_fields(PAGE, "1001", {"ciudad": bad}, NOW)
        with pytest.raises(ContactInvalid):
            store.add_tags(PAGE, "1001", [bad], NOW)


@dataclasses.dataclass(frozen=True)
class ImportRow:  # what `import_contacts` takes (`contacts.csv_io.ImportRow` is one); a None field value deletes
    row: int
    page_id: str
    psid: str
    first_name: str | None
    last_name: str | None
    tags: tuple[str, ...]
    fields: Mapping[str, str | None]


def batch_rows(page_id: str) -> list[ImportRow]:
    """Rows that update stored contacts (names kept or set, tags re-spelled, fields set and deleted), create new
    ones, and name one contact twice (created, then updated)."""
    return [
        ImportRow(2, page_id, "1001", "Ana", None, ("vip", "Envío"), {"ciudad": "Loja", "pedido": None}),
        ImportRow(3, page_id, "2001", None, "Ruiz", ("Quito",), {"pedido": "A-1"}),
        ImportRow(4, page_id, "1002", None, None, (), {"ciudad": "Cuenca"}),
        ImportRow(5, page_id, "2002", "Luis", "Mora", ("ENVIO", "nuevo"), {}),
        ImportRow(6, page_id, "2001", "Rosa", None, ("quito", "Norte"), {"pedido": None, "zona": "norte"}),
    ]


def seed_for_batch(store: ContactsStore, page_id: str) -> None:
    store.upsert_seen(page_id, "1001", NOW, campaign="menu")
    store.add_tags(page_id, "1001", ["VIP"], NOW)
    store.set_fields(page_id, "1001", {"pedido": "B-9"}, NOW)
    store.upsert_seen(page_id, "1002", NOW)
    store.record_profile(page_id, "1002", "José", "Pérez", None, "es_LA", FETCHED, None, NOW)
    store.add_note(page_id, "1002", "Cliente antiguo", "ana", NOW)


def test_a_batch_import_gives_what_the_same_rows_one_by_one_give(store: ContactsStore) -> None:
    seed_for_batch(store, PAGE)
    seed_for_batch(store, OTHER_PAGE)
    one_by_one = [store.import_contact(row.page_id, row.psid, row.first_name, row.last_name, row.tags, row.fields,
                                       later(minutes=1)) for row in batch_rows(PAGE)]
    assert store.import_contacts(batch_rows(OTHER_PAGE), later(minutes=1)) == (
        one_by_one.count(True), one_by_one.count(False)) == (2, 3)

    def contacts(page_id: str) -> list[object]:
        return [dataclasses.replace(contact, page_id="-") for contact in store.export_rows(page_id)]

    assert contacts(OTHER_PAGE) == contacts(PAGE)
    assert store.all_tags(OTHER_PAGE) == store.all_tags(PAGE)
    rosa = store.get(OTHER_PAGE, "2001")
    assert rosa is not None and (rosa.display_name, rosa.tags, dict(rosa.fields), rosa.profile_status) == (
        "Rosa Ruiz", ("Norte", "Quito"), {"zona": "norte"}, PENDING)
    assert [c.psid for c in store.search(ContactQuery(page_id=OTHER_PAGE, text="envio"))
            .contacts] == ["2002", "1001"]
    assert store.import_contacts([], NOW) == (0, 0)


def test_a_batch_import_that_fails_partway_writes_nothing(store: ContactsStore) -> None:
    seed_for_batch(store, PAGE)
    before = (list(store.export_rows()), store.all_tags(), store.notes(PAGE, "1002"))
    # The database refuses the fourth row's field (a trigger standing in for any error the database raises).
    with store._db.write() as session:
        if isinstance(session, sqlite3.Connection):
            session.execute("CREATE TRIGGER refuse_boom BEFORE INSERT ON contact_fields WHEN NEW.value = 'boom' "
                            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
        else:
            session.execute("CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                            "IF NEW.value = 'boom' THEN RAISE EXCEPTION 'refused by the test'; END IF; "
                            "RETURN NEW; END $$")
            session.execute("CREATE TRIGGER refuse_boom BEFORE INSERT ON contact_fields FOR EACH ROW "
                            "EXECUTE FUNCTION refuse_boom()")
    rows = batch_rows(PAGE)
    rows.insert(3, ImportRow(9, PAGE, "2003", "Eva", None, ("x",), {"ciudad": "boom"}))
    with pytest.raises((sqlite3.DatabaseError, psycopg2.Error), match="refused by the test"):
        store.import_contacts(rows, later(minutes=1))
    assert (list(store.export_rows()), store.all_tags(), store.notes(PAGE, "1002")) == before

    # A row the store refuses with what the contact has (over 50 tags) names its place; nothing written either.
    rows[3] = ImportRow(9, PAGE, "1001", None, None, tuple(f"etiqueta {n}" for n in range(50)), {})
    with pytest.raises(ImportRowInvalid) as refused:
        store.import_contacts(rows, later(minutes=1))
    assert (refused.value.index, refused.value.field) == (3, "tags") and "50" in refused.value.message_es
    assert (list(store.export_rows()), store.all_tags()) == before[:2]
    with pytest.raises(ImportRowInvalid) as invalid:  # a bad value: refused before the database
        store.import_contacts([*rows[:2], ImportRow(4, PAGE, "no válido", None, None, (), {})], NOW)
    assert (invalid.value.index, invalid.value.field) == (2, "psid")
    assert store.import_contacts(batch_rows(PAGE), later(minutes=1)) == (2, 3)  # without the bad rows: written
