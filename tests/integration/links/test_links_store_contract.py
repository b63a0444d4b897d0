"""One contract suite for `LinksStore` on its two databases: a real SQLite file and a PostgreSQL schema of the
test's own (`open_links_store(url)` picks by URL). Links (one ref per page), switching off, referrals once per event
(Meta's redeliveries and the channel's replays), the counters per link, refs no link has, a conversation's
campaign, page usernames. PostgreSQL missing → its half is skipped (failed with REQUIRE_SERVICES=1)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from links.model import NewLink, Referral, Start
from links.store import LinkCounts, LinksStore, RefInUse, UnknownLink, open_links_store
from tests.support.postgres import store_fixture, url_fixture

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
PAGE, OTHER_PAGE = "100000000000001", "100000000000002"
MENU = NewLink(PAGE, "Menú en las mesas", "menu_mesas", Start(entry_id="menu"))


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def referral(key: str, psid: str, ref: str = "menu_mesas", via: str = "referral", page: str = PAGE,
             at: datetime = NOW, source: str = "SHORTLINK", ad_id: str | None = None) -> Referral:
    return Referral(event_key=key, page_id=page, psid=psid, ref=ref, source=source, via=via, ad_id=ad_id, at=at)


url = url_fixture("links")
store = store_fixture(open_links_store)


def test_a_link_is_kept_with_its_start_and_one_ref_per_page(store: LinksStore) -> None:
    link = store.create(MENU, "admin", NOW)
    assert (link.page_id, link.name, link.ref, link.start, link.created_by, link.created_at, link.enabled) == (
        PAGE, "Menú en las mesas", "menu_mesas", Start(entry_id="menu"), "admin", NOW, True)
    assert store.get(link.id) == link == store.by_ref(PAGE, "menu_mesas")
    with pytest.raises(RefInUse):
        store.create(NewLink(PAGE, "Otro nombre", "menu_mesas", None), "admin", NOW)
    other = store.create(NewLink(OTHER_PAGE, "Menú", "menu_mesas", Start(intent="greet")), "admin", later(1))
    assert other.start == Start(intent="greet") and other.id != link.id
    assert [x.id for x in store.links()] == [link.id, other.id]
    assert [x.id for x in store.links(OTHER_PAGE)] == [other.id]
    assert store.by_ref(PAGE, "nada") is None
    with pytest.raises(UnknownLink):
        store.get(999_999)


def test_switched_off_a_link_records_but_starts_nothing(store: LinksStore) -> None:
    link = store.create(MENU, "admin", NOW)
    off = store.set_enabled(link.id, False, "ana", later(1))
    assert not off.enabled
    recorded = store.record_referral(referral("k1", "u1"))
    assert recorded.recorded and recorded.link == off and recorded.start is None
    store.set_enabled(link.id, True, "ana", later(2))
    assert store.record_referral(referral("k2", "u1")).start == Start(entry_id="menu")
    with pytest.raises(UnknownLink):
        store.set_enabled(999_999, False, "ana", NOW)


def test_a_referral_counts_once_per_event_and_the_counters(store: LinksStore) -> None:
    link = store.create(MENU, "admin", NOW)
    first = store.record_referral(referral("e1", "u1", via="postback"))
    again = store.record_referral(referral("e1", "u1", via="postback"))  # Meta redelivered, or a replay
    assert first.recorded and not again.recorded and again.start == first.start == Start(entry_id="menu")
    store.record_referral(referral("e2", "u1", at=later(60)))  # the same person scans again later
    store.record_referral(referral("e3", "u2", at=later(90)))
    store.record_referral(referral("e4", "u3", ref="otra", at=later(100)))  # a ref no link has
    assert store.counts() == {link.id: LinkCounts(referrals=3, people=2, new_contacts=1)}
    assert store.counts(OTHER_PAGE) == {}


def test_concurrent_redeliveries_record_one_referral(store: LinksStore) -> None:
    store.create(MENU, "admin", NOW)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: store.record_referral(referral("same", "u1")), range(8)))
    assert sum(result.recorded for result in results) == 1
    assert list(store.counts().values()) == [LinkCounts(1, 1, 0)]


def test_refs_no_link_has_are_counted_most_used_first(store: LinksStore) -> None:
    store.create(MENU, "admin", NOW)
    store.record_referral(referral("a1", "u1", ref="anuncio_fb", source="ADS", ad_id="2385", via="message"))
    store.record_referral(referral("a2", "u2", ref="anuncio_fb", source="ADS", at=later(5)))
    store.record_referral(referral("b1", "u3", ref="volante_viejo", at=later(9)))
    store.record_referral(referral("c1", "u4", ref="", source="ADS", page=OTHER_PAGE))
    unmatched = store.unmatched_refs()
    assert [(r.ref, r.source, r.referrals, r.people) for r in unmatched] == [
        ("anuncio_fb", "ADS", 2, 2), ("", "ADS", 1, 1), ("volante_viejo", "SHORTLINK", 1, 1)]
    assert unmatched[0].last_at == later(5)
    assert [r.ref for r in store.unmatched_refs(PAGE, limit=1)] == ["anuncio_fb"]


def test_a_conversations_campaign_is_its_first_referral(store: LinksStore) -> None:
    link = store.create(MENU, "admin", NOW)
    store.record_referral(referral("x2", "u1", ref="promo", at=later(30)))
    store.record_referral(referral("x1", "u1", at=NOW))
    store.record_referral(referral("x3", "u2", at=NOW))
    found = store.conversation_referrals(PAGE, "u1")
    assert [(r.ref, r.link_id, r.link_name, r.at) for r in found] == [
        ("menu_mesas", link.id, "Menú en las mesas", NOW), ("promo", None, None, later(30))]
    assert store.conversation_referrals(PAGE, "nadie") == []


def test_page_usernames(store: LinksStore) -> None:
    assert store.page_usernames() == {}
    store.set_page_username(PAGE, "MiNegocio", NOW)
    store.set_page_username(PAGE, "MiNegocioEC", later(1))
    assert store.page_usernames() == {PAGE: "MiNegocioEC"}


def test_reopened_the_schema_is_kept(url: str) -> None:
    first = open_links_store(url)
    link = first.create(MENU, "admin", NOW)
    assert first.schema_version == 1
    first.close()
    again = open_links_store(url)
    try:
        assert again.get(link.id) == link and again.schema_version == 1
    finally:
        again.close()
