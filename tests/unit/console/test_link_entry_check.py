"""An m.me link whose start answers a matrix entry is checked against the live matrix when it is created
(console/links.py `check_start_entry`, the live version's ids read by `knowledge_matrix.publish.live_entries`).

Would catch: a link to an entry the live matrix does not have created silently (the QR code would answer nothing), a
refusal that does not name the entry, or links refused while no matrix is published yet (a new business sets up its
QR codes first)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from console.links import LinksRefused, check_start_entry
from core.settings import Settings
from knowledge_matrix.knowledge_base import ENTRIES_FILE
from knowledge_matrix.publish import INDEX_DIR, Pointer, live_entries, version_dir, write_pointer
from links.model import NewLink, parse_new_link

PAGE = "100000000000001"


def publish_entries(data_dir: Path, version: str, ids: list[str]) -> None:
    """A published version as far as its entry ids go: its entries.json and the pointer naming it."""
    index = version_dir(data_dir, version) / INDEX_DIR
    index.mkdir(parents=True)
    (index / ENTRIES_FILE).write_text(json.dumps([{"id": entry_id} for entry_id in ids]), encoding="utf-8")
    write_pointer(data_dir, Pointer(version, (version,), "2026-03-02T15:00:00+00:00", "test", "publish"))


def link(start: dict[str, str] | None) -> NewLink:
    return parse_new_link({"page_id": PAGE, "name": "Menú en las mesas", **({"start": start} if start else {})})


async def test_an_entry_of_the_live_matrix_is_accepted_and_a_missing_one_refused_by_name(tmp_path: Path) -> None:
    publish_entries(tmp_path, "0002", ["menu", "horario"])
    settings = Settings(data_dir=tmp_path)

    assert await check_start_entry(settings, link({"entry_id": "menu"})) is None
    with pytest.raises(LinksRefused) as refused:
        await check_start_entry(settings, link({"entry_id": "menú_del_día"}))

    assert refused.value.reason_code == "link_invalid" and refused.value.details() == {"field": "start"}
    assert "«menú_del_día» no existe" in refused.value.message_es and "versión 0002" in refused.value.message_es


async def test_without_a_published_matrix_the_link_is_allowed_with_a_warning(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)

    warning = await check_start_entry(settings, link({"entry_id": "menu"}))

    assert warning is not None and "Todavía no hay una Matriz" in warning and "«menu»" in warning
    assert live_entries(tmp_path) is None


async def test_intents_and_links_without_a_start_are_not_checked(tmp_path: Path) -> None:
    publish_entries(tmp_path, "0001", ["menu"])
    settings = Settings(data_dir=tmp_path)

    assert await check_start_entry(settings, link({"intent": "greet"})) is None
    assert await check_start_entry(settings, link(None)) is None
