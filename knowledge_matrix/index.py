"""Vector indexes: exact inner product for small matrices, HNSW past a measured size.

Rows are unit vectors, so inner product is cosine. Both implementations can hand back the
stored vectors of given rows: retrieval re-scores every candidate entry exactly, so an
approximate index only decides which entries are looked at, never their scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from knowledge_matrix.errors import ArtifactError

IndexKind = Literal["flat", "hnsw"]
FloatMatrix = npt.NDArray[np.float32]
IdMatrix = npt.NDArray[np.int64]

# Measured with bench/knowledge.py (896 dimensions, 2 cores): an exact search takes 0.4 ms at 5 000
# rows, 6 ms at 20 000 and 28 ms at 50 000; HNSW stays near 0.5 ms with recall@10 of 0.99-1.0 and
# builds in 0.5 s / 3 s / 9 s. Up to 10 000 rows exactness costs ~2 ms, nothing next to the ~20 ms
# of embedding the message; past that, HNSW.
EXACT_MAX_ROWS = 10_000
HNSW_NEIGHBORS = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128


class VectorIndex(Protocol):
    """Inner-product search over fixed rows."""

    @property
    def kind(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def size(self) -> int: ...

    def search(self, queries: FloatMatrix, k: int) -> tuple[FloatMatrix, IdMatrix]:
        """Best `k` rows per query, best first: scores and row ids (-1 where fewer exist)."""
        ...

    def vectors(self, rows: Sequence[int]) -> FloatMatrix:
        """The stored vectors of `rows`, in that order."""
        ...

    def save(self, path: Path) -> None: ...


def _check(vectors: FloatMatrix, dimension: int) -> FloatMatrix:
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[1] != dimension:
        raise ValueError(f"expected vectors of shape (n, {dimension}), got {matrix.shape}")
    return matrix


class NumpyIndex:
    """Exact in-memory index: the fake with the same semantics as the FAISS ones."""

    kind = "numpy"

    def __init__(self, vectors: FloatMatrix) -> None:
        self._vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self._vectors.ndim != 2:
            raise ValueError("vectors must be a 2-D array")

    @property
    def dimension(self) -> int:
        return int(self._vectors.shape[1])

    @property
    def size(self) -> int:
        return int(self._vectors.shape[0])

    def search(self, queries: FloatMatrix, k: int) -> tuple[FloatMatrix, IdMatrix]:
        queries = _check(queries, self.dimension)
        scores = queries @ self._vectors.T
        take = min(k, self.size)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :take]
        out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        out_ids = np.full((len(queries), k), -1, dtype=np.int64)
        out_scores[:, :take] = np.take_along_axis(scores, order, axis=1)
        out_ids[:, :take] = order
        return out_scores, out_ids

    def vectors(self, rows: Sequence[int]) -> FloatMatrix:
        return self._vectors[np.asarray(rows, dtype=np.int64)]

    def save(self, path: Path) -> None:
        with path.open("wb") as handle:
            np.save(handle, self._vectors)

    @classmethod
    def load(cls, path: Path) -> NumpyIndex:
        return cls(np.load(path))


class FaissIndex:
    """FAISS `IndexFlatIP` (exact) or `IndexHNSWFlat` with inner product (approximate)."""

    def __init__(self, index: Any, kind: IndexKind) -> None:
        self._index = index
        self._kind = kind

    @classmethod
    def build(
        cls,
        vectors: FloatMatrix,
        kind: IndexKind | None = None,
        *,
        exact_max_rows: int = EXACT_MAX_ROWS,
    ) -> FaissIndex:
        import faiss

        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        dimension = int(matrix.shape[1])
        chosen: IndexKind = kind or ("flat" if len(matrix) <= exact_max_rows else "hnsw")
        index: Any
        if chosen == "flat":
            index = faiss.IndexFlatIP(dimension)
        else:
            index = faiss.IndexHNSWFlat(dimension, HNSW_NEIGHBORS, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            index.hnsw.efSearch = HNSW_EF_SEARCH
        index.add(matrix)
        return cls(index, chosen)

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def dimension(self) -> int:
        return int(self._index.d)

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    def search(self, queries: FloatMatrix, k: int) -> tuple[FloatMatrix, IdMatrix]:
        queries = _check(queries, self.dimension)
        scores, ids = self._index.search(queries, k)
        scores = np.where(ids < 0, -np.inf, scores).astype(np.float32)
        return scores, ids.astype(np.int64)

    def vectors(self, rows: Sequence[int]) -> FloatMatrix:
        ids = np.asarray(rows, dtype=np.int64)
        if len(ids) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.asarray(self._index.reconstruct_batch(ids), dtype=np.float32)

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path, kind: IndexKind) -> FaissIndex:
        import faiss

        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise ArtifactError(f"cannot read the FAISS index {path}: {exc}") from exc
        if kind == "hnsw":
            hnsw: Any = faiss.downcast_index(index)
            hnsw.hnsw.efSearch = HNSW_EF_SEARCH
        return cls(index, kind)
