"""Snippets ("Atajos"): names, checks and the `/name` expansion."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.snippets import (
    Recipient,
    SnippetError,
    check_name,
    check_text,
    check_variables,
    expand,
    fill,
    uses_variables,
    variable_name,
)

SAVED = {"horario": "Atendemos de lunes a viernes, de 08:00 a 18:00.", "gracias": "¡Gracias por escribirnos!"}


def test_expands_known_names_anywhere_a_word_starts() -> None:
    result = expand("/gracias /horario ¿algo más?", SAVED)
    assert result.text == "¡Gracias por escribirnos! Atendemos de lunes a viernes, de 08:00 a 18:00. ¿algo más?"
    assert result.used == ("gracias", "horario")


def test_punctuation_after_a_name_and_upper_case() -> None:
    assert expand("Hola. /HORARIO.", SAVED).text == "Hola. Atendemos de lunes a viernes, de 08:00 a 18:00.."


def test_unknown_names_urls_and_paths_stay_as_typed() -> None:
    text = "Vea https://ecuabots.com/horario o /precios y a/horario"
    assert expand(text, SAVED).text == text
    assert expand(text, SAVED).used == ()


@pytest.mark.parametrize("name", ["horario", "/horario", "Horario", "fuera_de_horario", "a1-b"])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name.lstrip("/").lower()


@pytest.mark.parametrize("name", ["", "/", "horário", "con espacio", "x" * 33, "-guion"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(SnippetError):
        check_name(name)


def test_text_limits() -> None:
    assert check_text("  hola  ") == "hola"
    with pytest.raises(SnippetError):
        check_text("   ")
    with pytest.raises(SnippetError, match="2000"):
        check_text("x" * 2001)


@given(st.text(alphabet=st.characters(blacklist_characters="/"), max_size=200))
def test_text_without_slashes_is_never_changed(text: str) -> None:
    assert expand(text, SAVED).text == text


# --- variables ----------------------------------------------------------------------------------------------

ANA = Recipient("Ánge", "Ñúñez Peña", {"ciudad": "Loja", "pedido": "A-7"}, agent="Sofía",
                page_name="Panadería Doña Rosa")


def test_variables_take_the_contacts_the_agents_and_the_pages_values_with_accents() -> None:
    filled = fill("Hola {nombre} {apellido}, soy {agente} de {pagina} ({página}). ¿Sigue en {campo.ciudad}?", ANA)
    assert filled.text == ("Hola Ánge Ñúñez Peña, soy Sofía de Panadería Doña Rosa (Panadería Doña Rosa). "
                           "¿Sigue en Loja?")
    assert filled.unknown == () and filled.empty == () and filled.warning_es is None


def test_names_fold_case_but_field_keys_are_as_stored() -> None:
    assert fill("{Nombre} {NOMBRE} {Campo.ciudad}", ANA).text == "Ánge Ánge Loja"
    assert fill("{campo.Ciudad}", ANA).unknown == ("campo.Ciudad",)


def test_missing_values_become_the_fallback_or_empty_and_are_reported() -> None:
    nobody = Recipient(agent="Sofía")
    assert fill("Hola {nombre|estimado cliente}, su pedido {campo.pedido|}", nobody).text == \
        "Hola estimado cliente, su pedido "
    filled = fill("Hola {nombre}, ¿en {campo.ciudad}? {pagina}", nobody)
    assert filled.text == "Hola , ¿en ? "
    assert filled.empty == ("nombre", "campo.ciudad", "pagina")
    assert filled.warning_es is not None and "quedaron vacías" in filled.warning_es and "{nombre|" in filled.warning_es
    # A value of only spaces is no value; a fallback is not used when there is one.
    assert fill("{nombre|cliente}", Recipient(first_name="  ")).text == "cliente"
    assert fill("{nombre|cliente}", ANA).text == "Ánge"


def test_unknown_variables_stay_as_typed_and_are_reported_once() -> None:
    filled = fill("Hola {hola}, {ciudad|x} y {hola} {campo.no-es}", ANA)
    assert filled.text == "Hola {hola}, {ciudad|x} y {hola} {campo.no-es}"
    assert filled.unknown == ("hola", "ciudad")  # `{campo.no-es}` is not variable-shaped: plain text
    assert filled.warning_es == ("«{hola}» y «{ciudad}» no son variables y se enviarán tal cual; use {nombre}, "
                                 "{apellido}, {agente}, {pagina} o {campo.<clave>} (por ejemplo {campo.ciudad}).")


@pytest.mark.parametrize("text", ["{ hola }", "{}", '{"a": 1}', "{{", "}}{", "precio: {10 USD", "a|b}", "{ nombre}"])
def test_braces_that_cannot_be_a_variable_are_plain_text(text: str) -> None:
    filled = fill(text, ANA)
    assert filled.text == text and filled.unknown == () and not uses_variables(text)


def test_doubled_braces_fill_the_inner_variable() -> None:
    assert fill("{{nombre}}", ANA).text == "{Ánge}"


def test_recipient_of_a_contact_or_of_nobody() -> None:
    class Contact:
        first_name, last_name, fields = "Lucía", None, {"ciudad": "Quito"}

    assert Recipient.of(Contact(), "Sofía") == Recipient("Lucía", None, {"ciudad": "Quito"}, "Sofía")
    assert Recipient.of(None, "Sofía") == Recipient(agent="Sofía")


def test_saving_refuses_unknown_variables_by_name() -> None:
    assert check_variables("Hola {nombre|cliente}, {campo.pedido} listo {{ }}") == \
        "Hola {nombre|cliente}, {campo.pedido} listo {{ }}"
    with pytest.raises(SnippetError) as refused:
        check_variables("Hola {hola} de {ciudad} {ciudad}")
    assert refused.value.unknown == ["hola", "ciudad"]
    assert "«{hola}», «{ciudad}»" in str(refused.value) and "«{campo.ciudad}»" in str(refused.value)


# The fuzz: literal text (no braces) between variables, known and unknown, with and without fallbacks.
LITERAL = st.text(alphabet=st.characters(blacklist_characters="{}", blacklist_categories=("Cs",)), max_size=30)
NAME = st.sampled_from(["nombre", "Nombre", "apellido", "agente", "pagina", "página", "campo.ciudad", "campo.pedido",
                        "campo.nada", "hola", "ciudad", "x.y", "ñandú"])
FALLBACK = st.none() | st.text(alphabet=st.characters(blacklist_characters="{}\n", blacklist_categories=("Cs",)),
                               max_size=12)
VALUE = st.none() | st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


def expected_value(name: str, fallback: str | None, recipient: Recipient) -> str:
    known = variable_name(name)
    typed = "{" + name + ("" if fallback is None else "|" + fallback) + "}"
    if known is None:
        return typed
    value = {"nombre": recipient.first_name, "apellido": recipient.last_name, "agente": recipient.agent,
             "pagina": recipient.page_name}.get(known) if not known.startswith("campo.") \
        else recipient.fields.get(known[6:])
    value = (value or "").strip()
    return value or (fallback if fallback is not None else "")


@given(st.lists(st.tuples(LITERAL, NAME, FALLBACK), max_size=6), LITERAL, VALUE, VALUE, VALUE)
def test_fill_keeps_every_character_outside_variables(
        pieces: list[tuple[str, str, str | None]], tail: str, first: str | None, city: str | None,
        agent: str | None) -> None:
    recipient = Recipient(first, None, {"ciudad": city} if city is not None else {}, agent)
    text = "".join(lit + "{" + name + ("" if fb is None else "|" + fb) + "}" for lit, name, fb in pieces) + tail
    expected = "".join(lit + expected_value(name, fb, recipient) for lit, name, fb in pieces) + tail
    assert fill(text, recipient).text == expected


@given(st.text(max_size=300), VALUE)
def test_fill_never_raises_and_without_braces_changes_nothing(text: str, first: str | None) -> None:
    filled = fill(text, Recipient(first_name=first))
    assert isinstance(filled.text, str)
    if "{" not in text:
        assert filled.text == text and filled.unknown == () and filled.empty == ()
