"""`KnowledgeBase.search_many` scores many messages in batches; each must get the hits `search` gives it alone (the
bot's path): same entries in the same order, same numbers up to float rounding. Over the real labelled matrices,
their real queries, their own questions word for word, and random word salads, with every scoring option."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knowledge_matrix.embedders import EnsembleEmbedder, HashingEmbedder, SeededRandomEmbedder
from knowledge_matrix.knowledge_base import SEARCH_CHUNK, KnowledgeBase, settings_row_texts
from knowledge_matrix.lexical import LexicalIndex
from knowledge_matrix.matrix import Matrix, entries_from_sheet, parse_keywords, read_sheet
from knowledge_matrix.retrieval import Hit
from knowledge_matrix.settings import DEFAULT_SETTINGS, RetrievalSettings

DATA = Path(__file__).resolve().parents[2] / "data" / "knowledge"
MATRICES = {
    "dev": (DATA / "dev_matrix.csv", DATA / "dev_queries.csv"),
    "heldout_tienda": (DATA / "heldout_tienda_matrix.csv", DATA / "heldout_tienda_queries.csv"),
    "heldout_ecuabots": (DATA / "heldout_ecuabots_matrix.csv", DATA / "heldout_ecuabots_queries.csv"),
    "farmacia_quito": (DATA / "blind/farmacia_quito/matrix.csv", DATA / "blind/farmacia_quito/queries.csv"),
    # With its «palabras clave» (written blind, keywords/heldout_tienda.csv): keyword rows and keyword-augmented
    # lexical documents in the batched path.
    "heldout_tienda+keywords": (DATA / "heldout_tienda_matrix.csv", DATA / "heldout_tienda_queries.csv"),
}
KEYWORDS = {"heldout_tienda+keywords": DATA / "keywords" / "heldout_tienda.csv"}

OPTIONS: dict[str, RetrievalSettings] = {
    "defaults": DEFAULT_SETTINGS,
    "rrf lexical, hubness": DEFAULT_SETTINGS.with_changes(lexical_fusion="rrf", hubness_weight=0.5),
    "no lexical, no anchors, no agreement": DEFAULT_SETTINGS.with_changes(
        lexical_weight=0.0, off_topic_anchors=False, model_agreement=False
    ),
    "hnsw index": DEFAULT_SETTINGS.with_changes(exact_max_rows=10),
    "keywords lexical only, question text": DEFAULT_SETTINGS.with_changes(keywords="lexical", lexical_text="question"),
}
TOLERANCE = 1e-5


def ensemble() -> EnsembleEmbedder:
    return EnsembleEmbedder([(HashingEmbedder(128), 1.0), (SeededRandomEmbedder(64), 1.0)])


def matrix_of(name: str) -> Matrix:
    entries = entries_from_sheet(read_sheet(MATRICES[name][0]))
    if name in KEYWORDS:
        keywords = {
            row.get("id").strip(): parse_keywords(row.get("keywords")) for row in read_sheet(KEYWORDS[name]).rows
        }
        entries = [replace(entry, keywords=keywords.get(entry.id, ())) for entry in entries]
        assert sum(1 for entry in entries if entry.keywords) > len(entries) // 2
    return Matrix.of(entries)


def queries_of(name: str) -> list[str]:
    return [row.get("query") for row in read_sheet(MATRICES[name][1]).rows]


def knowledge_base(name: str, option: str, in_memory: bool) -> KnowledgeBase:
    return KnowledgeBase.build(
        matrix_of(name), ensemble(), OPTIONS[option].with_changes(embedder=ensemble().name), in_memory_index=in_memory
    )


def close(first: float | None, second: float | None) -> bool:
    if first is None or second is None:
        return first is second
    return math.isclose(first, second, rel_tol=TOLERANCE, abs_tol=TOLERANCE)


def assert_same_hits(batched: list[Hit], alone: list[Hit], query: str) -> None:
    assert [hit.entry_id for hit in batched] == [hit.entry_id for hit in alone], query
    for mine, reference in zip(batched, alone, strict=True):
        assert mine.matched_question == reference.matched_question, query
        for field in ("score", "fused", "margin", "off_topic_gap", "agreement"):
            assert close(getattr(mine, field), getattr(reference, field)), (query, field)
        assert len(mine.cosines) == len(reference.cosines) == 2
        assert all(close(a, b) for a, b in zip(mine.cosines, reference.cosines, strict=True)), query


def assert_batched_equals_alone(base: KnowledgeBase, queries: list[str], k: int) -> None:
    batched = base.search_many(queries, k)
    assert len(batched) == len(queries)
    for query, hits in zip(queries, batched, strict=True):
        assert_same_hits(hits, base.search(query, k), query)


@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("name", sorted(MATRICES))
def test_batched_hits_equal_one_search_each_on_the_real_matrices(name: str, option: str) -> None:
    base = knowledge_base(name, option, in_memory=name != "heldout_ecuabots" and option != "hnsw index")
    if option == "hnsw index":
        assert base.index_kind == "hnsw"
    questions = [question for entry in base.entries for question in entry.questions]
    if name in KEYWORDS and base.settings.keywords in ("row", "both"):
        assert len(settings_row_texts(base.entries, base.settings)[0]) > len(questions), "keyword rows are searched"
    queries = queries_of(name) + questions
    assert_batched_equals_alone(base, queries, k=6)
    # Word for word one of the questions: its entry first, answered directly, in the batch as alone.
    exact = base.search_many(questions, 3)
    owners = {question: entry.id for entry in base.entries for question in entry.questions}
    duplicated = {q for q in questions if questions.count(q) > 1}
    assert all(hits[0].entry_id == owners[q] for q, hits in zip(questions, exact, strict=True) if q not in duplicated)


def test_the_anchors_and_faiss_are_in_play() -> None:
    """The comparisons above exercise the off-topic anchors and the FAISS index, not only the numpy fake."""
    base = knowledge_base("heldout_ecuabots", "defaults", in_memory=False)
    assert base.index_kind == "flat" and base.off_topic_anchor_count > 0
    hits = base.search_many(queries_of("heldout_ecuabots")[:20], 3)
    assert all(hit.off_topic_gap is not None and hit.agreement is not None for found in hits for hit in found)


def test_more_messages_than_a_chunk_and_any_depth() -> None:
    base = knowledge_base("heldout_tienda", "defaults", in_memory=False)
    queries = queries_of("heldout_tienda")
    many = (queries * (SEARCH_CHUNK // len(queries) + 2))[: SEARCH_CHUNK + 7]
    batched = base.search_many(many, 4)
    assert len(batched) == len(many)
    for query, hits in zip(many[SEARCH_CHUNK - 3 :], batched[SEARCH_CHUNK - 3 :], strict=True):
        assert_same_hits(hits, base.search(query, 4), query)
    for k in (1, len(base.entries), len(base.entries) + 5):
        assert_batched_equals_alone(base, queries[:15], k)
    assert base.search_many([], 5) == []


_BASES: dict[str, KnowledgeBase] = {}


def shared_base(name: str) -> KnowledgeBase:
    if name not in _BASES:
        _BASES[name] = knowledge_base(name, "defaults", in_memory=name == "dev")
    return _BASES[name]


WORDS = sorted(
    {
        word
        for entry in matrix_of("heldout_tienda").entries
        for text in (*entry.questions, entry.answer)
        for word in text.split()
    }
)


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(["dev", "heldout_tienda"]),
    messages=st.lists(
        st.one_of(
            st.lists(st.sampled_from(WORDS), min_size=1, max_size=8).map(" ".join),
            st.text(max_size=30),
        ),
        min_size=1,
        max_size=12,
    ),
    k=st.integers(min_value=1, max_value=8),
)
def test_any_messages_get_the_same_hits_batched_as_alone(name: str, messages: list[str], k: int) -> None:
    assert_batched_equals_alone(shared_base(name), messages, k)


def test_lexical_scores_of_many_are_the_same_numbers_as_one_call_each() -> None:
    documents = [text for entry in matrix_of("heldout_tienda").entries for text in (*entry.questions, entry.answer)]
    lexical = LexicalIndex.build(documents, stemmer="snowball")
    rng = np.random.default_rng(3)
    queries = ["horario de la tienda", "", "envío a Galápagos gratis", "zzz", documents[4]]
    docs = [rng.choice(len(documents), size=int(rng.integers(0, 30))).astype(np.int64) for _ in queries]
    for query, chosen, scores in zip(queries, docs, lexical.scores_of_many(queries, docs), strict=True):
        assert np.array_equal(scores, lexical.scores_of(query, chosen))
    assert lexical.scores_of_many([], []) == []
