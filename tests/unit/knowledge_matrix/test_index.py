"""One contract for every `VectorIndex`: the numpy fake and both FAISS kinds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from knowledge_matrix.embedders import normalize_rows
from knowledge_matrix.index import FaissIndex, NumpyIndex, VectorIndex

Factory = Callable[[np.ndarray], VectorIndex]
Loader = Callable[[Path], VectorIndex]

IMPLEMENTATIONS: dict[str, tuple[Factory, Loader]] = {
    "numpy": (NumpyIndex, NumpyIndex.load),
    "faiss-flat": (lambda v: FaissIndex.build(v, "flat"), lambda p: FaissIndex.load(p, "flat")),
    "faiss-hnsw": (lambda v: FaissIndex.build(v, "hnsw"), lambda p: FaissIndex.load(p, "hnsw")),
}


@pytest.fixture(params=list(IMPLEMENTATIONS))
def implementation(request: pytest.FixtureRequest) -> tuple[Factory, Loader]:
    return IMPLEMENTATIONS[request.param]


@pytest.fixture
def vectors() -> np.ndarray:
    return normalize_rows(np.random.default_rng(5).normal(size=(40, 16)))


def test_search_returns_the_best_rows_first(implementation: tuple[Factory, Loader], vectors: np.ndarray) -> None:
    index = implementation[0](vectors)
    assert (index.size, index.dimension) == (40, 16)
    scores, ids = index.search(vectors[[3, 17]], 5)
    assert ids[:, 0].tolist() == [3, 17]
    assert np.allclose(scores[:, 0], 1.0, atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    exact = vectors[[3, 17]] @ vectors.T
    assert np.allclose(scores, np.sort(exact, axis=1)[:, ::-1][:, :5], atol=1e-5)


def test_asking_for_more_rows_than_exist_pads_with_minus_one(implementation: tuple[Factory, Loader]) -> None:
    few = normalize_rows(np.eye(3, 8))
    scores, ids = implementation[0](few).search(few[:1], 5)
    assert ids[0, :3].tolist()[0] == 0 and ids[0, 3:].tolist() == [-1, -1]
    assert np.all(np.isinf(scores[0, 3:]))


def test_vectors_are_returned_as_stored(implementation: tuple[Factory, Loader], vectors: np.ndarray) -> None:
    index = implementation[0](vectors)
    assert np.allclose(index.vectors([5, 0, 39]), vectors[[5, 0, 39]])
    assert index.vectors([]).shape == (0, 16)


def test_save_and_load_give_the_same_answers(
    implementation: tuple[Factory, Loader], vectors: np.ndarray, tmp_path: Path
) -> None:
    factory, loader = implementation
    index = factory(vectors)
    index.save(tmp_path / "index.bin")
    loaded = loader(tmp_path / "index.bin")
    assert loaded.kind == index.kind
    assert np.array_equal(loaded.search(vectors[:4], 3)[1], index.search(vectors[:4], 3)[1])


def test_wrong_query_dimension_is_rejected(implementation: tuple[Factory, Loader], vectors: np.ndarray) -> None:
    with pytest.raises(ValueError):
        implementation[0](vectors).search(np.zeros((1, 3), dtype=np.float32), 1)


def test_faiss_picks_exact_below_the_threshold_and_hnsw_above(vectors: np.ndarray) -> None:
    assert FaissIndex.build(vectors, exact_max_rows=40).kind == "flat"
    assert FaissIndex.build(vectors, exact_max_rows=39).kind == "hnsw"
