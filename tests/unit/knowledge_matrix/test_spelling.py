from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from knowledge_matrix.spelling import Vocabulary

VOCABULARY = Vocabulary.of(
    [
        "¿Tienen parqueadero?",
        "¿Cómo exporto mis contactos a Excel?",
        "Exportar contactos: Configuración > Contactos > Exportar.",
        "La facturación electrónica llega a su correo.",
    ]
)


def test_a_word_one_edit_from_a_matrix_word_becomes_that_word() -> None:
    assert VOCABULARY.correct("tienen parqeadero?") == "tienen parqueadero?"  # a letter missing
    assert VOCABULARY.correct("exportr mis contactoss") == "exportar mis contactos"  # missing, repeated
    assert VOCABULARY.correct("contcatos") == "contactos"  # two letters swapped


def test_known_short_and_far_words_are_left_alone() -> None:
    # a known word folded (accents, case) is known: nothing to correct
    assert VOCABULARY.correct("Facturacion ELECTRONICA") == "Facturacion ELECTRONICA"
    assert VOCABULARY.correct("pago casa") == "pago casa"  # under five letters
    assert VOCABULARY.correct("ozempic cigarrillos") == "ozempic cigarrillos"  # nothing one edit away
    assert VOCABULARY.correction("exportacion") is None


def test_the_most_frequent_matrix_word_wins_a_tie() -> None:
    vocabulary = Vocabulary.of(["plano plano plano", "plana"])
    assert vocabulary.correction("planx") == "plano"


@given(st.text(max_size=60))
def test_correcting_never_fails_and_a_corrected_text_stays_corrected(text: str) -> None:
    once = VOCABULARY.correct(text)
    assert VOCABULARY.correct(once) == once
