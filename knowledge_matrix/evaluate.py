"""Evaluation against labeled queries: the contract behind `python -m knowledge_matrix eval`.

Metrics (an empty denominator gives `None`, printed as JSON `null`):

- `top1`: among answerable queries (non-empty `expected_id`), the share whose best entry is the
  expected one.
- `mrr`: among answerable queries, the mean of 1/rank of the expected entry in the ranking
  (rank counted over the first `MRR_DEPTH` entries; beyond that it contributes 0).
- `answered_precision`: among queries the bot would answer directly (verdict `answer` at the
  configured threshold), answerable or not, the share whose top entry is the expected one; an
  answered unanswerable query counts as wrong.
- `answered_coverage`: answered answerable queries / answerable queries (right or wrong).
- `unanswerable_rejection`: unanswerable queries not answered / unanswerable queries (an
  ambiguous verdict is not an answer: the bot asks instead of asserting).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knowledge_matrix.errors import MatrixReadError
from knowledge_matrix.knowledge_base import KnowledgeBase
from knowledge_matrix.matrix import decode_csv_bytes, parse_csv_bytes

MRR_DEPTH = 100


@dataclass(frozen=True)
class LabeledQuery:
    query: str
    expected_id: str  # "" when the matrix cannot answer it

    @property
    def answerable(self) -> bool:
        return bool(self.expected_id)


@dataclass(frozen=True)
class QueryResult:
    query: str
    expected_id: str
    top_id: str
    score: float
    answered: bool
    verdict: str
    rank: int  # 1-based rank of the expected entry, 0 when absent or unanswerable
    offered: bool = False  # the expected entry is among the «¿Quisiste decir…?» candidates (verdict `ambiguous`)

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "expected_id": self.expected_id,
            "top_id": self.top_id,
            "score": round(self.score, 6),
            "answered": self.answered,
        }


@dataclass(frozen=True)
class Summary:
    top1: float | None
    mrr: float | None
    answered_precision: float | None
    answered_coverage: float | None
    unanswerable_rejection: float | None
    answerable: int
    unanswerable: int
    answered: int

    def to_dict(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 6)

        return {
            "top1": rounded(self.top1),
            "mrr": rounded(self.mrr),
            "answered_precision": rounded(self.answered_precision),
            "answered_coverage": rounded(self.answered_coverage),
            "unanswerable_rejection": rounded(self.unanswerable_rejection),
        }


def _ratio(numerator: float, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def summarize(results: Sequence[QueryResult]) -> Summary:
    """The five metrics of the module docstring over per-query results."""
    answerable = [r for r in results if r.expected_id]
    unanswerable = [r for r in results if not r.expected_id]
    answered = [r for r in results if r.answered]
    return Summary(
        top1=_ratio(sum(r.top_id == r.expected_id for r in answerable), len(answerable)),
        mrr=_ratio(sum(1.0 / r.rank for r in answerable if r.rank > 0), len(answerable)),
        answered_precision=_ratio(
            sum(bool(r.expected_id) and r.top_id == r.expected_id for r in answered), len(answered)
        ),
        answered_coverage=_ratio(sum(r.answered for r in answerable), len(answerable)),
        unanswerable_rejection=_ratio(sum(not r.answered for r in unanswerable), len(unanswerable)),
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        answered=len(answered),
    )


def parse_queries_bytes(data: bytes) -> list[LabeledQuery]:
    """`query,expected_id` CSV (same tolerance as matrices: BOM, `;`, CRLF, Spanish headers)."""
    sheet = parse_csv_bytes(data) if decode_csv_bytes(data).strip() else None
    if sheet is None:
        raise MatrixReadError("el archivo de consultas está vacío")
    queries: list[LabeledQuery] = []
    for row in sheet.rows:
        # `query`/`expected_id` are not matrix columns (kept as `extra:`); Spanish headers map to ours.
        text = row.cells.get("extra:query") or row.cells.get("questions") or ""
        expected = row.cells.get("extra:expected_id") or row.cells.get("id") or ""
        if text.strip():
            queries.append(LabeledQuery(text.strip(), expected.strip()))
    return queries


def read_queries(path: Path) -> list[LabeledQuery]:
    if not path.is_file():
        raise MatrixReadError(f"no existe el archivo {path}")
    queries = parse_queries_bytes(path.read_bytes())
    if not queries:
        raise MatrixReadError(f"{path} no tiene consultas (columnas esperadas: query,expected_id)")
    return queries


def evaluate(knowledge_base: KnowledgeBase, queries: Sequence[LabeledQuery]) -> list[QueryResult]:
    """Rank and decide every query exactly as the bot would."""
    depth = min(MRR_DEPTH, len(knowledge_base.entries))
    results: list[QueryResult] = []
    all_hits = knowledge_base.search_many([q.query for q in queries], k=depth)
    for labeled, hits in zip(queries, all_hits, strict=True):
        verdict = knowledge_base.decide(hits)
        ranked_ids = [hit.entry_id for hit in hits]
        rank = ranked_ids.index(labeled.expected_id) + 1 if labeled.expected_id in ranked_ids else 0
        top = hits[0] if hits else None
        results.append(
            QueryResult(
                query=labeled.query,
                expected_id=labeled.expected_id,
                top_id=top.entry_id if top else "",
                score=top.score if top else 0.0,
                answered=verdict.kind == "answer",
                verdict=verdict.kind,
                rank=rank,
            )
        )
    return results


def report(results: Sequence[QueryResult]) -> dict[str, Any]:
    """The JSON object `eval --json` prints."""
    return {"results": [r.to_dict() for r in results], "summary": summarize(results).to_dict()}
