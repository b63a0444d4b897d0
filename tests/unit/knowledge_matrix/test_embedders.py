from __future__ import annotations

import numpy as np
import pytest

from knowledge_matrix.embedders import (
    Embedder,
    EnsembleEmbedder,
    HashingEmbedder,
    create_embedder,
    embedder_parts,
    normalize_rows,
)
from knowledge_matrix.errors import EmbedderUnavailableError


def test_hashing_embedder_is_deterministic_normalized_and_typed() -> None:
    embedder = HashingEmbedder(64)
    first = embedder.embed(["¿A qué hora abren?", "precio del plan"])
    again = HashingEmbedder(64).embed(["¿A qué hora abren?", "precio del plan"])
    assert isinstance(embedder, Embedder)
    assert first.dtype == np.float32 and first.shape == (2, 64)
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0)
    assert np.array_equal(first, again)


def test_hashing_embedder_places_shared_words_closer() -> None:
    embedder = HashingEmbedder(256)
    query, near, far = embedder.embed(["horario de atención", "cuál es el horario de atención", "métodos de pago"])
    assert query @ near > query @ far


def test_empty_input_and_zero_vectors() -> None:
    assert HashingEmbedder(32).embed([]).shape == (0, 32)
    assert np.array_equal(normalize_rows(np.zeros((1, 4))), np.zeros((1, 4), dtype=np.float32))


def test_ensemble_blocks_give_the_weighted_mean_of_cosines() -> None:
    a, b = HashingEmbedder(32), HashingEmbedder(16)
    ensemble = EnsembleEmbedder([(a, 3.0), (b, 1.0)])
    texts = ["horario de atención", "atención al cliente"]
    joint = ensemble.embed(texts)
    assert joint.shape == (2, 48)
    assert np.allclose(np.linalg.norm(joint, axis=1), 1.0, atol=1e-6)
    cos_a = float(a.embed(texts[:1])[0] @ a.embed(texts[1:])[0])
    cos_b = float(b.embed(texts[:1])[0] @ b.embed(texts[1:])[0])
    assert float(joint[0] @ joint[1]) == pytest.approx(0.75 * cos_a + 0.25 * cos_b, abs=1e-5)
    parts = embedder_parts(ensemble)
    assert [(p.start, p.stop, p.weight) for p in parts] == [(0, 32, 0.75), (32, 48, 0.25)]


def test_single_model_is_one_part() -> None:
    (part,) = embedder_parts(HashingEmbedder(8))
    assert (part.start, part.stop, part.weight) == (0, 8, 1.0)


def test_specs_round_trip_through_names() -> None:
    ensemble = create_embedder("hashing:32*2+hashing:16*1")
    assert ensemble.name == "hashing:32*2+hashing:16*1"
    assert create_embedder(ensemble.name).dimension == ensemble.dimension == 48
    assert create_embedder("hashing:64").name == "hashing:64"


@pytest.mark.parametrize("spec", ["nonsense", "sentence-transformers:", "hashing:4"])
def test_bad_specs_fail_clearly(spec: str) -> None:
    with pytest.raises((EmbedderUnavailableError, ValueError)):
        create_embedder(spec)


def test_ensemble_rejects_non_positive_weights() -> None:
    with pytest.raises(ValueError):
        EnsembleEmbedder([(HashingEmbedder(8), 0.0)])
