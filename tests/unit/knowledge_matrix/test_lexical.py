from __future__ import annotations

from pathlib import Path

import numpy as np

from knowledge_matrix.lexical import LexicalIndex

DOCS = [
    "¿Cuál es el horario de atención? Atendemos de lunes a viernes.",
    "¿Cómo conecto mi página de Facebook? Acepte la invitación de agencia.",
    "¿Qué son los atajos o snippets? Respuestas guardadas.",
]


def test_scores_are_cosines_and_rank_the_matching_document_first() -> None:
    index = LexicalIndex.build(DOCS)
    scores = index.scores("horario de atencion")
    assert scores.shape == (3,) and scores.dtype == np.float32
    assert int(np.argmax(scores)) == 0
    assert np.all((scores >= 0) & (scores <= 1))


def test_typos_and_missing_accents_still_match() -> None:
    index = LexicalIndex.build(DOCS)
    assert int(np.argmax(index.scores("como conceto mi pajina de facebok"))) == 1
    assert int(np.argmax(index.scores("snipets"))) == 2


def test_a_query_with_nothing_in_common_scores_zero() -> None:
    assert LexicalIndex.build(DOCS).scores("zzzz qqqq").max() == 0.0
    assert LexicalIndex.build(DOCS).scores("").max() == 0.0


def test_save_and_load_keep_the_scores(tmp_path: Path) -> None:
    index = LexicalIndex.build(DOCS, char_weight=0.3)
    index.save(tmp_path / "lexical.npz")
    loaded = LexicalIndex.load(tmp_path / "lexical.npz")
    assert loaded.char_weight == 0.3
    assert np.allclose(loaded.scores("pagina facebook"), index.scores("pagina facebook"))
