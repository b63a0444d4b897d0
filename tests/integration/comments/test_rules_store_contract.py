"""One contract suite for `RulesStore` on its two databases: a real SQLite file and a PostgreSQL schema of the test's
own. Rules keep their order, content and switch; reordering is all or nothing; page settings default to one reply
per person per post per day. PostgreSQL missing → its half is skipped (failed with REQUIRE_SERVICES=1)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from comments.rules import PageCommentSettings, RuleInvalid, first_match, parse_rule
from comments.rules_store import RuleNotFound, RulesStore, open_rules_store
from tests.support.postgres import store_fixture, url_fixture

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
PAGE = "100000000000001"
OTHER = "100000000000002"


def body(name: str, keywords: list[str] | None = None, page_id: str = PAGE) -> dict[str, object]:
    return {
        "page_id": page_id,
        "name": name,
        "posts": {"mode": "ids", "post_ids": [f"{page_id}_77"]},
        "comments": {"mode": "keywords", "keywords": keywords} if keywords else {"mode": "any"},
        "reply": {"mode": "fixed", "message": {"text": f"Hola desde «{name}» 👋", "quick_replies": [
            {"content_type": "text", "title": "Sí, gracias", "payload": "/affirm"}]}},
        "public_replies": ["¡Te escribimos por interno! 📩", "Revisa tu bandeja 😉"],
    }


url = url_fixture("comments")
store = store_fixture(open_rules_store)


def test_rules_are_stored_whole_and_listed_in_order(store: RulesStore) -> None:
    price = store.create_rule(parse_rule(body("Precio", ["precio", "cuánto cuesta"])), "ana", NOW)
    general = store.create_rule(parse_rule(body("Todos")), "ana", NOW + timedelta(seconds=1))
    store.create_rule(parse_rule(body("Otra página", page_id=OTHER)), "ana", NOW)
    assert price.id and general.id and price.id != general.id
    assert [r.name for r in store.list_rules(PAGE)] == ["Precio", "Todos"]
    assert [r.position for r in store.list_rules(PAGE)] == [1, 2]
    read = store.get_rule(price.id)
    assert read == price
    assert read.comments.keywords == ("precio", "cuánto cuesta")
    assert read.posts.post_ids == (f"{PAGE}_77",)
    assert read.reply.message == body("Precio")["reply"]["message"]  # type: ignore[index]
    assert read.public_replies == ("¡Te escribimos por interno! 📩", "Revisa tu bandeja 😉")
    assert (read.created_at, read.updated_by, read.enabled) == (NOW, "ana", True)
    assert read.created_at is not None and read.created_at.utcoffset() == timedelta(0)
    assert first_match(store.list_rules(PAGE), "PRECIO??", f"{PAGE}_77") == price
    assert first_match(store.list_rules(PAGE), "hola", f"{PAGE}_77") == general


def test_update_switch_and_delete(store: RulesStore) -> None:
    rule = store.create_rule(parse_rule(body("Precio", ["precio"])), "ana", NOW)
    changed = store.update_rule(rule.id, parse_rule(body("Precios", ["costo"])), "bea", NOW + timedelta(minutes=1))
    assert (changed.name, changed.comments.keywords, changed.position) == ("Precios", ("costo",), rule.position)
    assert (changed.created_at, changed.updated_at, changed.updated_by) == (NOW, NOW + timedelta(minutes=1), "bea")
    with pytest.raises(RuleInvalid):
        store.update_rule(rule.id, parse_rule(body("x", page_id=OTHER)), "bea", NOW)
    off = store.set_enabled(rule.id, False, "bea", NOW)
    assert off.enabled is False and store.get_rule(rule.id).enabled is False
    assert first_match(store.list_rules(PAGE), "costo", f"{PAGE}_77") is None
    assert store.set_enabled(rule.id, True, "bea", NOW).enabled is True
    assert store.delete_rule(rule.id) is True
    assert store.delete_rule(rule.id) is False
    with pytest.raises(RuleNotFound):
        store.get_rule(rule.id)
    with pytest.raises(RuleNotFound):
        store.set_enabled(rule.id, True, "bea", NOW)
    with pytest.raises(RuleNotFound):
        store.update_rule(rule.id, parse_rule(body("x")), "bea", NOW)


def test_reorder_is_all_or_nothing(store: RulesStore) -> None:
    a, b, c = (store.create_rule(parse_rule(body(name)), "ana", NOW) for name in ("A", "B", "C"))
    assert [r.name for r in store.reorder(PAGE, [c.id, a.id, b.id], "bea", NOW)] == ["C", "A", "B"]
    for stale in ([a.id, b.id], [a.id, b.id, c.id, c.id], [a.id, b.id, c.id + 100]):
        with pytest.raises(RuleInvalid):
            store.reorder(PAGE, stale, "bea", NOW)
    assert [r.name for r in store.list_rules(PAGE)] == ["C", "A", "B"]
    d = store.create_rule(parse_rule(body("D")), "ana", NOW)
    assert [r.name for r in store.list_rules(PAGE)][-1] == "D" and d.position == 4


def test_page_settings_default_and_change(store: RulesStore) -> None:
    default = store.page_settings(PAGE)
    assert default == PageCommentSettings(PAGE) and default.one_reply_per_person_per_post_per_day is True
    saved = store.save_page_settings(replace(default, one_reply_per_person_per_post_per_day=False,
                                             knowledge_min_score=0.75), "ana", NOW)
    assert (saved.one_reply_per_person_per_post_per_day, saved.knowledge_min_score) == (False, 0.75)
    assert (saved.updated_at, saved.updated_by) == (NOW, "ana")
    again = store.save_page_settings(PageCommentSettings(PAGE), "bea", NOW + timedelta(hours=1))
    assert again.one_reply_per_person_per_post_per_day is True and again.knowledge_min_score is None
    assert store.page_settings(OTHER) == PageCommentSettings(OTHER)


def test_reopening_keeps_the_rules(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'comments.sqlite3'}"
    first = open_rules_store(url)
    rule = first.create_rule(parse_rule(body("Precio", ["precio"])), "ana", NOW)
    first.close()
    second = open_rules_store(url)
    try:
        assert second.get_rule(rule.id) == rule and second.schema_version == 1
    finally:
        second.close()
