"""The confusable-entries rule on hand-made hits (pure), the words that tell two entries apart, and the memo that
lets the check reuse the near-duplicate check's question vectors (hashing fake)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from knowledge_matrix.confusables import (
    ConfusablePair,
    Probe,
    QueryVectorMemo,
    confusable_pairs,
    distinctive_terms,
    document_frequency,
    entry_words,
    pair_message,
    probes_of,
    shared_keywords,
)
from knowledge_matrix.embedders import DelegatingEmbedder, FloatMatrix, HashingEmbedder, TextRole
from knowledge_matrix.matrix import Entry, read_sheet
from knowledge_matrix.publish import built_report, checked_report, full_report
from knowledge_matrix.retrieval import Hit

IMPORT = Entry("importar", ("¿Cómo importo mis contactos desde un archivo?",), "Suba un CSV en Contactos.", row=2)
EXPORT = Entry("exportar", ("¿Cómo exporto mis contactos?",), "Pulse Descargar en Contactos.", row=3)
HOURS = Entry("horario", ("¿A qué hora abren?", "¿Abren el domingo?"), "De 9 a 18.", row=4)


def hit(entry: Entry, fused: float) -> Hit:
    return Hit(entry=entry, score=0.5, fused=fused, margin=0.0, matched_question=entry.questions[0])


def test_a_rival_close_to_the_own_score_makes_a_pair_and_a_far_one_does_not() -> None:
    probes = [Probe(IMPORT, IMPORT.questions[0]), Probe(HOURS, HOURS.questions[0])]
    hits = [[hit(IMPORT, 4.0), hit(EXPORT, 3.0)], [hit(HOURS, 4.0), hit(EXPORT, 1.0)]]
    pairs = confusable_pairs(probes, hits, ratio=0.55)
    assert [(p.asking.id, p.rival.id, p.closeness) for p in pairs] == [("importar", "exportar", 0.75)]
    assert confusable_pairs(probes, hits, ratio=0.8) == []


def test_a_rival_above_the_own_entry_or_with_the_own_entry_missing_is_confusable() -> None:
    probes = [Probe(IMPORT, IMPORT.questions[0]), Probe(HOURS, HOURS.questions[0])]
    hits = [[hit(EXPORT, 4.0), hit(IMPORT, 2.0)], [hit(EXPORT, 0.3)]]
    pairs = {p.key: p.closeness for p in confusable_pairs(probes, hits, ratio=0.55)}
    assert pairs == {("exportar", "importar"): 2.0, ("exportar", "horario"): 1.0}


def test_each_pair_is_reported_once_with_its_closest_question() -> None:
    probes = [Probe(IMPORT, IMPORT.questions[0]), Probe(EXPORT, EXPORT.questions[0])]
    hits = [[hit(IMPORT, 4.0), hit(EXPORT, 2.4)], [hit(EXPORT, 4.0), hit(IMPORT, 3.6)]]
    (pair,) = confusable_pairs(probes, hits, ratio=0.55)
    assert (pair.asking.id, pair.question, round(pair.closeness, 2)) == ("exportar", EXPORT.questions[0], 0.9)


def test_weak_own_scores_do_not_make_pairs() -> None:
    probes = [Probe(IMPORT, IMPORT.questions[0])]
    assert confusable_pairs(probes, [[hit(IMPORT, -0.5), hit(EXPORT, -0.6)]], ratio=0.55) == []


def test_probes_keep_every_entry_and_add_more_questions_only_within_the_budget() -> None:
    assert [p.question for p in probes_of([IMPORT, HOURS], per_entry=3, budget=10)] == [
        IMPORT.questions[0],
        HOURS.questions[0],
        HOURS.questions[1],
    ]
    assert [p.question for p in probes_of([IMPORT, HOURS], per_entry=3, budget=2)] == [
        IMPORT.questions[0],
        HOURS.questions[0],
    ]


def test_distinctive_terms_are_the_words_the_other_entry_never_uses_as_written() -> None:
    words = {entry.id: entry_words(entry) for entry in (IMPORT, EXPORT, HOURS)}
    frequency = document_frequency(words.values())
    own = distinctive_terms(words["importar"], words["exportar"], frequency, 3)
    other = distinctive_terms(words["exportar"], words["importar"], frequency, 3)
    assert "importo" in own and "contactos" not in own
    assert "exporto" in other and "descargar" in other and "contactos" not in other


def test_the_message_names_both_entries_their_rows_and_the_words() -> None:
    pair = ConfusablePair(IMPORT, EXPORT, IMPORT.questions[0], 0.8)
    message = pair_message(pair, IMPORT, EXPORT, ["importo", "archivo"], ["exporto", "descargar"])
    assert message.startswith("la entrada «exportar» se puede confundir con «importar» (fila 2)")
    assert "«exporto», «descargar»" in message and "«importo», «archivo»" in message
    assert "casi tan cerca" in message
    above = pair_message(ConfusablePair(IMPORT, EXPORT, IMPORT.questions[0], 1.2), IMPORT, EXPORT, [], [])
    assert "el bot responde con «exportar»" in above and "no tiene palabras propias" in above


def test_keywords_are_words_of_the_entry_and_one_made_of_the_others_words_may_be_removed() -> None:
    """An entry set apart only by its «palabras clave» has words of its own, and a keyword that repeats what the
    other entry says is named as the thing to remove."""
    export = Entry(
        "exportar",
        ("¿Cómo exporto mis contactos?",),
        "Pulse Descargar en Contactos.",
        keywords=("respaldo", "importar contactos"),
        row=3,
    )
    words = {entry.id: entry_words(entry) for entry in (IMPORT, export)}
    frequency = document_frequency(words.values())
    assert "respaldo" in distinctive_terms(words["exportar"], words["importar"], frequency, 2, limit=10)
    assert shared_keywords(export, words["importar"]) == ["importar contactos"]
    assert shared_keywords(IMPORT, words["exportar"]) == []
    pair = ConfusablePair(IMPORT, export, IMPORT.questions[0], 1.2)
    message = pair_message(pair, IMPORT, export, ["archivo"], ["respaldo"], [], ["importar contactos"])
    assert "use en las preguntas o palabras clave de «exportar» palabras como «respaldo»" in message
    assert message.endswith(
        "; o quite de «exportar» la palabra clave «importar contactos», que también dice «importar»."
    )
    bare = pair_message(pair, IMPORT, export, [], [])
    assert "agregue formas de preguntar o palabras clave" in bare and "quite" not in bare


class CountingEmbedder(DelegatingEmbedder):
    """The hashing fake, keeping every text it is asked to embed, by role."""

    def __init__(self) -> None:
        super().__init__(HashingEmbedder(64))
        self.asked: dict[str, list[str]] = {"query": [], "passage": []}

    def embed(self, texts: Sequence[str], *, role: TextRole = "query") -> FloatMatrix:
        self.asked[role].extend(texts)
        return self.inner.embed(texts, role=role)


def test_the_memo_embeds_each_query_once_and_passes_passages_and_released_calls_through() -> None:
    counting = CountingEmbedder()
    memo = QueryVectorMemo(counting)
    first = memo.embed(["¿Abren el domingo?", "¿A qué hora abren?"])
    again = memo.embed(["¿A qué hora abren?", "¿Abren el domingo?", "¿A qué hora abren?"])
    assert np.array_equal(again, first[[1, 0, 1]])
    assert np.array_equal(first, HashingEmbedder(64).embed(["¿Abren el domingo?", "¿A qué hora abren?"]))
    assert counting.asked["query"] == ["¿Abren el domingo?", "¿A qué hora abren?"]
    memo.embed(["De 9 a 18."], role="passage")
    memo.embed(["De 9 a 18."], role="passage")
    assert counting.asked["passage"] == ["De 9 a 18."] * 2 and memo.remembered == 2
    assert memo.embed([]).shape == (0, 64)
    memo.release()
    memo.embed(["¿Abren el domingo?"])
    assert memo.remembered == 0 and counting.asked["query"][-1] == "¿Abren el domingo?"
    assert (memo.name, memo.dimension) == (counting.name, counting.dimension)


def test_a_checked_matrix_embeds_each_question_once_and_reports_as_without_the_memo(tmp_path: Path) -> None:
    path = tmp_path / "matriz.csv"
    path.write_text(
        "id,preguntas,respuesta\n"
        "importar,¿Cómo importo mis contactos?|¿Puedo subir mis contactos?,Suba un CSV en Contactos.\n"
        "exportar,¿Cómo exporto mis contactos?,Pulse Descargar en Contactos.\n"
        "horario,¿A qué hora abren?|¿Abren el domingo?,De 9 a 18.\n",
        encoding="utf-8",
    )
    sheet = read_sheet(path)
    counting = CountingEmbedder()
    report, knowledge_base = checked_report(sheet, counting)
    assert knowledge_base is not None
    questions = [question for entry in knowledge_base.entries for question in entry.questions]
    assert sorted(counting.asked["query"]) == sorted(questions)  # the near-duplicate check's, reused
    plain = HashingEmbedder(64)
    expected, _ = built_report(sheet, full_report(sheet, plain), plain)
    assert report == expected
    assert any(issue.code == "confusable_entries" for issue in report.issues)
