from __future__ import annotations

import pytest

from knowledge_matrix.embedders import HashingEmbedder
from knowledge_matrix.evaluate import LabeledQuery, QueryResult, evaluate, parse_queries_bytes, report, summarize
from knowledge_matrix.knowledge_base import KnowledgeBase
from knowledge_matrix.matrix import Entry, Matrix
from knowledge_matrix.retrieval import Thresholds
from knowledge_matrix.settings import DEFAULT_SETTINGS


def result(expected: str, top: str, answered: bool, rank: int) -> QueryResult:
    return QueryResult("q", expected, top, 0.5, answered, "answer" if answered else "no_match", rank)


def test_metrics_follow_their_definitions() -> None:
    results = [
        result("a", "a", True, 1),  # answerable, right, answered
        result("b", "c", True, 2),  # answerable, wrong, answered
        result("c", "c", False, 1),  # answerable, right, not answered
        result("d", "a", False, 0),  # answerable, expected not ranked
        result("", "a", True, 0),  # unanswerable, answered (wrong)
        result("", "b", False, 0),  # unanswerable, rejected
        result("", "b", False, 0),  # unanswerable, rejected
    ]
    summary = summarize(results)
    assert summary.top1 == pytest.approx(2 / 4)
    assert summary.mrr == pytest.approx((1 + 0.5 + 1 + 0) / 4)
    assert summary.answered_precision == pytest.approx(1 / 3)
    assert summary.answered_coverage == pytest.approx(2 / 4)
    assert summary.unanswerable_rejection == pytest.approx(2 / 3)
    assert (summary.answerable, summary.unanswerable, summary.answered) == (4, 3, 3)


def test_empty_denominators_are_null() -> None:
    summary = summarize([result("", "a", False, 0)]).to_dict()
    assert summary["top1"] is None and summary["answered_precision"] is None
    assert summary["unanswerable_rejection"] == 1.0


def test_queries_csv_accepts_excel_exports_and_empty_expected_ids() -> None:
    data = "\ufeffquery;expected_id\r\n¿A qué hora abren?;hours\r\ncual es el mejor equipo;\r\n;\r\n".encode()
    assert parse_queries_bytes(data) == [
        LabeledQuery("¿A qué hora abren?", "hours"),
        LabeledQuery("cual es el mejor equipo", ""),
    ]


def test_evaluate_and_report_follow_the_json_contract() -> None:
    entries = (
        Entry("hours", ("¿Cuál es el horario de atención?",), "De 8 a 18."),
        Entry("price", ("¿Cuánto cuesta la suscripción?",), "49 USD."),
        Entry("pay", ("¿Qué métodos de pago aceptan?",), "Tarjeta."),
    )
    settings = DEFAULT_SETTINGS.with_changes(embedder="hashing:128", thresholds=Thresholds(answer=0.0, suggest=0.0))
    knowledge_base = KnowledgeBase.build(Matrix.of(entries), HashingEmbedder(128), settings, in_memory_index=True)
    queries = [
        LabeledQuery("horario de atención", "hours"),
        LabeledQuery("métodos de pago", "pay"),
        LabeledQuery("zzz", ""),
    ]
    results = evaluate(knowledge_base, queries)
    assert [r.top_id for r in results[:2]] == ["hours", "pay"]
    assert all(r.answered for r in results)  # threshold 0 answers everything
    printed = report(results)
    assert set(printed) == {"results", "summary"}
    assert set(printed["results"][0]) == {"query", "expected_id", "top_id", "score", "answered"}
    assert set(printed["summary"]) == {
        "top1",
        "mrr",
        "answered_precision",
        "answered_coverage",
        "unanswerable_rejection",
    }
    assert printed["summary"]["top1"] == 1.0 and printed["summary"]["unanswerable_rejection"] == 0.0
