"""`search_many` (batched, what the confusable check and the evaluation use) against `search` (one message, the bot's
path) with the real default embedder, FAISS and the off-topic anchors, on the labelled sets: the same hits."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from knowledge_matrix.embedders import Embedder
from knowledge_matrix.knowledge_base import KnowledgeBase
from knowledge_matrix.matrix import Matrix, entries_from_sheet, read_sheet

from .conftest import HELD_OUT

SETS = {
    "dev": (HELD_OUT / "dev_matrix.csv", HELD_OUT / "dev_queries.csv"),
    "heldout_ecuabots": (HELD_OUT / "heldout_ecuabots_matrix.csv", HELD_OUT / "heldout_ecuabots_queries.csv"),
    "isp_manta": (HELD_OUT / "blind/isp_manta/matrix.csv", HELD_OUT / "blind/isp_manta/queries.csv"),
}


def close(first: float | None, second: float | None) -> bool:
    if first is None or second is None:
        return first is second
    return math.isclose(first, second, rel_tol=1e-5, abs_tol=1e-5)


@pytest.mark.parametrize("name", sorted(SETS))
def test_batched_search_gives_each_message_the_hits_it_gets_alone(name: str, knowledge_embedder: Embedder) -> None:
    matrix_path, queries_path = SETS[name]
    base = KnowledgeBase.build(Matrix.of(entries_from_sheet(read_sheet(Path(matrix_path)))), knowledge_embedder)
    assert base.index_kind == "flat" and base.off_topic_anchor_count > 0
    queries = [row.get("query") for row in read_sheet(queries_path).rows]
    queries += [question for entry in base.entries for question in entry.questions]
    for query, hits in zip(queries, base.search_many(queries, 6), strict=True):
        alone = base.search(query, 6)
        assert [hit.entry_id for hit in hits] == [hit.entry_id for hit in alone], query
        for mine, reference in zip(hits, alone, strict=True):
            assert mine.matched_question == reference.matched_question
            for field in ("score", "fused", "margin", "off_topic_gap", "agreement"):
                assert close(getattr(mine, field), getattr(reference, field)), (query, field)
            assert all(close(a, b) for a, b in zip(mine.cosines, reference.cosines, strict=True))
