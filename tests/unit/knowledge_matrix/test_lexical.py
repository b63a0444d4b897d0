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


def test_snowball_stems_join_a_noun_and_its_verb_and_survive_saving(tmp_path: Path) -> None:
    docs = ["¿Cómo exporto mis clientes?", "¿Cómo importo mis clientes?", "¿Cuál es el horario?"]
    index = LexicalIndex.build(docs, stemmer="snowball")
    assert int(np.argmax(index.scores("exportación de clientes"))) == 0
    index.save(tmp_path / "lexical.npz")
    loaded = LexicalIndex.load(tmp_path / "lexical.npz")
    assert loaded.stemmer == "snowball"
    assert np.allclose(loaded.scores("exportacion clientes"), index.scores("exportacion clientes"))


def test_scoring_some_documents_equals_scoring_all_then_picking() -> None:
    index = LexicalIndex.build(DOCS + ["", "pago con tarjeta o transferencia"], stemmer="snowball")
    docs = np.array([4, 0, 2, 3], dtype=np.int64)
    for query in ("horario de atencion", "como conceto facebok", "tarjeta", "", "zzzz"):
        assert np.allclose(index.scores_of(query, docs), index.scores(query)[docs], atol=1e-6)
    assert index.scores_of("horario", np.zeros(0, dtype=np.int64)).shape == (0,)


def test_the_unknown_share_counts_the_words_no_row_uses(tmp_path: Path) -> None:
    """Words (stems, stopwords aside) no document has, over the message's words: 0 when the matrix uses all of
    them, whatever their form (Snowball stems: «horarios», «atención» are known), 1 when it uses none, and the same
    after saving. Fails when known words count as unknown, or stopwords count at all."""
    index = LexicalIndex.build(DOCS, stemmer="snowball")
    assert index.unknown_share("¿Cuáles son los horarios de atención?") == 0.0
    assert index.unknown_share("¿cuánto cuesta la leche Vita?") == 1.0  # cuesta, leche, vita: none in DOCS
    assert index.unknown_share("horario de la farmacia") == 0.5  # horario known, farmacia not
    assert index.unknown_share("¿y de la?") == 0.0  # stopwords only: nothing to judge
    assert index.unknown_share("") == 0.0
    index.save(tmp_path / "lexical.npz")
    assert LexicalIndex.load(tmp_path / "lexical.npz").unknown_share("horario de la farmacia") == 0.5
