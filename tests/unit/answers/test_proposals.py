"""The pure rules of learning from use (answers/proposals.py): which tap follows which offer, which proposals an
editor sees, and the agents' entry search.

Would catch: a wording already in the entry proposed again because of its accents or question marks, a proposal for
an entry no longer live shown, a search that misses an entry by its answer or offers a disabled one."""

from __future__ import annotations

from datetime import datetime, timezone

from answers.proposals import (
    Proposal,
    is_question_of,
    match_entries,
    shown_proposals,
    tapped_in_offer,
    with_entry_question,
)
from knowledge_matrix.matrix import Entry

AT = datetime(2026, 11, 23, 15, 0, tzinfo=timezone.utc)
ENTRIES = (
    Entry("horario", ("¿A qué hora abren?", "¿Cuál es el horario de atención?"), "Abrimos de 9:00 a 19:00."),
    Entry("envios", ("¿Hacen envíos a Galápagos?",), "Sí: enviamos a todo el Ecuador por Servientrega."),
    Entry("pagos-tarjeta", ("¿Aceptan tarjeta de crédito?",), "Aceptamos tarjeta y transferencia."),
    Entry("viejo", ("¿Venden discos?",), "Ya no.", enabled=False),
)


def proposal(number: int, wording: str, entry_id: str) -> Proposal:
    return Proposal(id=number, wording=wording, entry_id=entry_id, status="open", people=1, tapped=1, agent=0,
                    first_at=AT, last_at=AT)


def test_a_tap_follows_an_offer_that_held_the_entry() -> None:
    assert tapped_in_offer("envios", ("envios", "pagos"))
    assert not tapped_in_offer("horario", ("envios", "pagos"))
    assert tapped_in_offer("horario", ()), "an offer journaled without candidates"


def test_a_wording_already_in_the_entry_is_known_whatever_its_accents_and_marks() -> None:
    assert is_question_of(ENTRIES[1], "hacen envios a galapagos")
    assert is_question_of(ENTRIES[1], "¡¡HACEN ENVÍOS A GALÁPAGOS!!")
    assert not is_question_of(ENTRIES[1], "mandan a galapagos")


def test_editors_see_proposals_of_live_entries_not_known_yet_with_the_entrys_question() -> None:
    found = [proposal(1, "mandan a galapagos", "envios"), proposal(2, "Hacen envíos a Galápagos", "envios"),
             proposal(3, "venden vinilos", "discos"), proposal(4, "a q hora abren", "horario")]

    shown = shown_proposals(found, ENTRIES)

    assert [(p.id, p.entry_question) for p in shown] == [(1, "¿Hacen envíos a Galápagos?"),
                                                         (4, "¿A qué hora abren?")]
    assert with_entry_question(found[2], ENTRIES).entry_question == "", "no such entry: as it was"
    assert shown[0].to_dict()["sources"] == ["tapped"]


def test_the_entry_search_finds_every_word_in_id_questions_or_answer() -> None:
    assert [e.id for e in match_entries(ENTRIES, "")] == ["horario", "envios", "pagos-tarjeta"], "no disabled one"
    assert [e.id for e in match_entries(ENTRIES, "Galápagos")] == ["envios"]
    assert [e.id for e in match_entries(ENTRIES, "servientrega")] == ["envios"], "by its answer"
    assert [e.id for e in match_entries(ENTRIES, "pagos tarjeta")] == ["pagos-tarjeta"], "by its id's words"
    assert [e.id for e in match_entries(ENTRIES, "transferencia")] == ["pagos-tarjeta"]
    assert match_entries(ENTRIES, "galapagos tarjeta") == [], "every word"
    assert [e.id for e in match_entries(ENTRIES, "a", limit=1)] == ["horario"]
    # Entries whose id or a question hold the words come before those whose answer does.
    ranked = match_entries(ENTRIES, "tarjeta")
    assert [e.id for e in ranked] == ["pagos-tarjeta"]
    both = (Entry("a", ("¿Precio?",), "Con tarjeta hay recargo."), Entry("b", ("¿Aceptan tarjeta?",), "Sí."))
    assert [e.id for e in match_entries(both, "tarjeta")] == ["b", "a"]


def test_the_entry_search_finds_an_entry_by_its_keywords_among_the_first() -> None:
    whatsapp = Entry("whatsapp", ("¿Funciona con WhatsApp?",), "Sí, con la API oficial.", keywords=("wasap", "wsp"))
    other = Entry("precios", ("¿Cuánto cuesta?",), "Desde 20 USD; el wasap va aparte.")
    assert [e.id for e in match_entries((other, whatsapp), "Wasap")] == ["whatsapp", "precios"]
    assert match_entries((whatsapp,), "wsp whatsapp") == [whatsapp]
