"""m.me links: the checks of a link's name, ref and start (Spanish messages, never another exception), the URL and
what a start makes the user say to Rasa."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from links.model import (
    MAX_REF,
    LinkInvalid,
    Start,
    check_page_username,
    check_ref,
    mme_url,
    parse_new_link,
    parse_start,
    ref_from_name,
)

PAGE = "100000000000001"
REF_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_=.-"
META_REF = re.compile(r"^[A-Za-z0-9_=.-]{1,250}$")  # what we promise Meta gets


def test_a_link_with_an_entry_start() -> None:
    new = parse_new_link({"page_id": PAGE, "name": "  Menú   en las mesas ", "ref": "menu_mesas",
                          "start": {"entry_id": "horario"}})
    assert (new.page_id, new.name, new.ref) == (PAGE, "Menú en las mesas", "menu_mesas")
    assert new.start == Start(entry_id="horario")
    assert new.start.message_text() == '/ask_knowledge{"entry_id":"horario"}'
    assert mme_url(PAGE, new.ref) == f"https://m.me/{PAGE}?ref=menu_mesas"


def test_the_ref_is_made_from_the_name_when_missing() -> None:
    assert parse_new_link({"page_id": PAGE, "name": "Menú del Día ¡2x1!"}).ref == "menu_del_dia_2x1"
    assert parse_new_link({"page_id": PAGE, "name": "🍕🍕"}).ref == "enlace"


def test_an_intent_start_is_a_slash_command() -> None:
    assert parse_start({"intent": "greet"}) == Start(intent="greet")
    assert Start(intent="greet").message_text() == "/greet"
    assert parse_start({"intent": "", "entry_id": ""}) is None
    assert parse_start(None) is None and parse_start({}) is None


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"page_id": PAGE, "name": ""}, "name", "Escriba un nombre"),
    ({"page_id": PAGE, "name": "x" * 81}, "name", "como máximo 80"),
    ({"page_id": PAGE, "name": "a\u0000b"}, "name", "caracteres invisibles"),
    ({"page_id": PAGE, "name": 5}, "name", "debe ser un texto"),
    ({"page_id": PAGE, "name": "Menú", "ref": "con espacio"}, "ref", "sin espacios"),
    ({"page_id": PAGE, "name": "Menú", "ref": "menú"}, "ref", "letras sin tildes"),
    ({"page_id": PAGE, "name": "Menú", "ref": "a" * (MAX_REF + 1)}, "ref", "como máximo 250"),
    ({"page_id": PAGE, "name": "Menú", "ref": 7}, "ref", "debe ser un texto"),
    ({"page_id": "abc", "name": "Menú"}, "page_id", "solo números"),
    ({"name": "Menú"}, "page_id", "solo números"),
    ({"page_id": PAGE, "name": "Menú", "color": "rojo"}, "color", "Campo desconocido"),
    ({"page_id": PAGE, "name": "Menú", "start": {"intent": "restart"}}, "start", "no puede iniciar"),
    ({"page_id": PAGE, "name": "Menú", "start": {"intent": "hola mundo"}}, "start", "letras sin tildes"),
    ({"page_id": PAGE, "name": "Menú", "start": {"intent": "greet", "entry_id": "x"}}, "start", "no las dos"),
    ({"page_id": PAGE, "name": "Menú", "start": {"entry_id": "con espacio"}}, "start", "sin espacios"),
    ({"page_id": PAGE, "name": "Menú", "start": {"entry_id": 3}}, "start", "debe ser un texto"),
    ({"page_id": PAGE, "name": "Menú", "start": {"flow": "x"}}, "start", "no admite «flow»"),
    ({"page_id": PAGE, "name": "Menú", "start": "menu"}, "start", "El inicio debe ser"),
])
def test_refusals_name_the_field_in_spanish(body: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(LinkInvalid) as refused:
        parse_new_link(body)
    assert refused.value.field == field
    assert words in refused.value.message_es


def test_page_usernames() -> None:
    assert check_page_username("@MiNegocio.EC") == "MiNegocio.EC"
    for bad in ("abc", "mi negocio", "x" * 51, "negocio/otro"):
        with pytest.raises(LinkInvalid):
            check_page_username(bad)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=30),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                                       max_size=3), max_leaves=8)
bodies = st.dictionaries(st.sampled_from(["page_id", "name", "ref", "start", "extra"]),
                         json_values | st.text(alphabet=REF_CHARS + " áé/", max_size=300) |
                         st.fixed_dictionaries({}, optional={"intent": json_values | st.text(max_size=70),
                                                             "entry_id": json_values | st.text(max_size=120)}))


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(bodies)
def test_any_body_is_a_valid_link_or_a_spanish_refusal(body: dict[str, Any]) -> None:
    """Fuzz: whatever JSON arrives, the answer is a link Meta accepts (ref in its charset, a start Rasa reads as
    one command) or LinkInvalid with words for the admin; never another exception."""
    try:
        new = parse_new_link(body)
    except LinkInvalid as refused:
        assert refused.message_es and refused.field
        return
    assert META_REF.match(new.ref), new.ref
    assert 1 <= len(new.name) <= 80
    if new.start is not None:
        text = new.start.message_text()
        assert text.startswith("/") and "\n" not in text
        if new.start.entry_id is not None:
            assert json.loads(text[len("/ask_knowledge"):]) == {"entry_id": new.start.entry_id}


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None, database=None)
def test_a_ref_made_from_any_name_is_valid(name: str) -> None:
    assert META_REF.match(ref_from_name(name))


@given(st.text(alphabet=REF_CHARS, min_size=1, max_size=MAX_REF))
@settings(max_examples=200, deadline=None, database=None)
def test_every_ref_in_the_charset_is_accepted_unchanged(ref: str) -> None:
    assert check_ref(ref) == ref
