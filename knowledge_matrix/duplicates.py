"""Near-duplicate questions across entries, found with FAISS top-k neighbours instead of an N×N matrix.

The old check multiplied every question vector by every other (30,000 questions: a 3.6 GB matrix
and 450 million pairs looped over in Python). Here the questions are embedded in batches into one
FAISS index and each question asks only for its `neighbours` nearest ones. The index is exact
(`IndexFlatIP`, blocked search, no N×N matrix) while rows² × dimension stays under
`EXACT_SEARCH_FLOPS` (a few seconds of BLAS), and HNSW past it (50,000 questions of the default
896-dimension ensemble). Memory is the vectors once plus a
batch; only pairs above the threshold and owned by different entries ever reach Python.

Approximate on purpose: a question with more than `neighbours` rewordings inside its own entry can
hide a near duplicate in another entry. The check only warns, so that is an acceptable miss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from knowledge_matrix.embedders import Embedder

NEIGHBOURS = 24
BATCH_SIZE = 1024
EXACT_SEARCH_FLOPS = 2e11
# Cheaper than the bot's own index (index.py): a warning-only check can afford a little recall.
HNSW_NEIGHBORS = 16
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 64

SimilarPair = tuple[int, int, float]  # question i, question j (i < j), cosine


def _empty_index(dimension: int, expected_rows: int, exact_search_flops: float) -> Any:
    import faiss

    if float(expected_rows) ** 2 * dimension <= exact_search_flops:
        return faiss.IndexFlatIP(dimension)
    index = faiss.IndexHNSWFlat(dimension, HNSW_NEIGHBORS, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.hnsw.efSearch = HNSW_EF_SEARCH
    return index


def similar_question_pairs(
    texts: Sequence[str],
    owners: Sequence[str],
    embedder: Embedder,
    threshold: float,
    *,
    neighbours: int = NEIGHBOURS,
    batch_size: int = BATCH_SIZE,
    exact_search_flops: float = EXACT_SEARCH_FLOPS,
) -> list[SimilarPair]:
    """For each pair of entries (`owners`), its most similar pair of questions at or above `threshold`."""
    if len(texts) != len(owners):
        raise ValueError("one owner per question is needed")
    count = len(texts)
    if count < 2:
        return []
    index: Any = None
    for start in range(0, count, batch_size):
        vectors = np.ascontiguousarray(embedder.embed(list(texts[start : start + batch_size]), role="query"),
                                       dtype=np.float32)
        if index is None:
            index = _empty_index(int(vectors.shape[1]), count, exact_search_flops)
        index.add(vectors)
    _, owner_codes = np.unique(np.asarray(owners, dtype=object).astype(str), return_inverse=True)
    k = min(neighbours + 1, count)
    best: dict[tuple[int, int], SimilarPair] = {}
    for start in range(0, count, batch_size):
        stop = min(start + batch_size, count)
        queries = index.reconstruct_n(start, stop - start)
        scores, ids = index.search(queries, k)
        rows = np.arange(start, stop)[:, None]
        found = ids >= 0
        safe_ids = np.where(found, ids, 0)
        keep = found & (scores >= threshold) & (owner_codes[safe_ids] != owner_codes[rows])
        for row, column in zip(*np.nonzero(keep), strict=True):
            i, j = start + int(row), int(ids[row, column])
            first, second = min(i, j), max(i, j)
            key = (min(owner_codes[first], owner_codes[second]), max(owner_codes[first], owner_codes[second]))
            score = float(scores[row, column])
            if key not in best or score > best[key][2]:
                best[key] = (first, second, score)
    return sorted(best.values(), key=lambda pair: (-pair[2], pair[0], pair[1]))
