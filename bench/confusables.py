"""The confusable-entries check alone (`knowledge_matrix/confusables.py`), timed at several matrix sizes.

    .venv/bin/python bench/confusables.py                      # 100 / 1 000 / 10 000 entries
    .venv/bin/python bench/confusables.py --sizes 1000 --questions 3

What is timed is `confusable_issues(knowledge_base)` as `publish.checked_report` runs it: every question already
embedded by the near-duplicate check (`QueryVectorMemo`), so the check only scores. The matrices are
bench/knowledge.py's synthetic entries (`--questions` ways of asking each) over stored vectors: real embeddings of a
few hundred rows and noisy copies; each question's vector is its row's plus noise (embedding 10 000 questions for
real would take longer than the check). A progress bar goes to stderr, the figures to stdout. Nothing in the test
suite asserts a duration.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.knowledge import progress, synthetic_entries, synthetic_vectors  # noqa: E402
from knowledge_matrix.confusables import QueryVectorMemo, confusable_issues, probes_of  # noqa: E402
from knowledge_matrix.embedders import (  # noqa: E402
    DelegatingEmbedder,
    Embedder,
    TextRole,
    create_embedder,
    normalize_rows,
)
from knowledge_matrix.knowledge_base import KnowledgeBase, row_texts  # noqa: E402
from knowledge_matrix.matrix import Entry, Matrix  # noqa: E402
from knowledge_matrix.settings import DEFAULT_SETTINGS  # noqa: E402

REWORDINGS = ("¿Me ayudan con esto? {}", "Quisiera saber: {}")


class StoredEmbedder(DelegatingEmbedder):
    """Stored vectors: the rows of the matrix as passages, each question's vector as a query."""

    def __init__(self, real: Embedder, rows: np.ndarray, queries: dict[str, np.ndarray]) -> None:
        super().__init__(real)
        self._rows = rows
        self._queries = queries

    def embed(self, texts: Sequence[str], *, role: TextRole = "query") -> np.ndarray:
        if role == "passage" and len(texts) == len(self._rows):
            return self._rows
        if role == "query" and all(text in self._queries for text in texts):
            return np.stack([self._queries[text] for text in texts]) if texts else self._rows[:0]
        return self.inner.embed(texts, role=role)


def entries_of(size: int, questions: int) -> list[Entry]:
    return [
        replace(entry, questions=(entry.questions[0], *(r.format(entry.questions[0]) for r in REWORDINGS))[:questions])
        for entry in synthetic_entries(size)
    ]


def knowledge_base_of(real: Embedder, size: int, questions: int) -> KnowledgeBase:
    entries = entries_of(size, questions)
    texts, owners, positions = row_texts(entries, DEFAULT_SETTINGS.passage_fields)
    rows = synthetic_vectors(real, len(texts))
    rng = np.random.default_rng(5)
    noisy = normalize_rows(rows + rng.normal(scale=0.03, size=rows.shape).astype(np.float32))
    queries = {
        entries[owner].questions[position]: noisy[row]
        for row, (owner, position) in enumerate(zip(owners, positions, strict=True))
    }
    memo = QueryVectorMemo(StoredEmbedder(real, rows, queries))
    return KnowledgeBase.build(Matrix.of(entries), memo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--questions", type=int, default=1, help="ways of asking per entry (1-3)")
    args = parser.parse_args()
    real = create_embedder(DEFAULT_SETTINGS.embedder)
    for size in (int(s) for s in args.sizes.split(",")):
        knowledge_base = knowledge_base_of(real, size, max(1, min(3, args.questions)))
        label = f"confusables, {size} entries"
        started = time.perf_counter()
        issues = confusable_issues(knowledge_base, progress=partial(progress, label))
        seconds = time.perf_counter() - started
        searched = len(probes_of(knowledge_base.entries))
        print(
            f"{size:>6} entries, {args.questions} question(s) each ({knowledge_base.index_kind} index): "
            f"check {seconds:7.2f} s ({searched} questions searched, {1000 * seconds / searched:5.1f} ms each), "
            f"{len(issues)} warnings"
        )


if __name__ == "__main__":
    main()
