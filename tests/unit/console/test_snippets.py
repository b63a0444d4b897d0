"""Snippets ("Atajos"): names, checks and the `/name` expansion."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.snippets import SnippetError, check_name, check_text, expand

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
