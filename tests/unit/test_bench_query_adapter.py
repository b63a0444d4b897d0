"""bench/query_adapter.py: the adapter learns a change of style shared by every set (the way customers word a question
against the way editors wrote it), and carries it to a set it never saw; its penalty holds it back."""

from __future__ import annotations

import numpy as np

from bench.query_adapter import SetVectors, fit_adapter
from knowledge_matrix.embedders import normalize_rows as unit

MODEL = "m"
DIMENSION = 16


def styled_set(rng: np.random.Generator, style: np.ndarray, entries: int = 6, per_entry: int = 3) -> SetVectors:
    """Entries with one row each; each message is its entry's row seen through `style` (plus noise)."""
    rows = unit(rng.normal(size=(entries, DIMENSION)))
    labels = np.repeat(np.arange(entries), per_entry)
    queries = unit(rows[labels] @ style + 0.05 * rng.normal(size=(len(labels), DIMENSION)))
    return SetVectors(
        rows={MODEL: rows}, queries={MODEL: queries}, owners=np.arange(entries), labels=labels, entries=entries
    )


def top1(vectors: SetVectors, adapter: np.ndarray) -> float:
    queries = vectors.queries[MODEL]
    adapted = unit(queries + queries @ adapter)
    return float(((adapted @ vectors.rows[MODEL].T).argmax(axis=1) == vectors.labels).mean())


def test_a_style_shared_by_the_training_sets_is_undone_on_a_set_left_out() -> None:
    rng = np.random.default_rng(3)
    # The same change of style in every business: a rotation that sends most messages nearer another entry.
    style, _ = np.linalg.qr(np.eye(DIMENSION) + 1.5 * rng.normal(size=(DIMENSION, DIMENSION)) / np.sqrt(DIMENSION))
    training = [styled_set(rng, style) for _ in range(8)]
    held_out = styled_set(rng, style)
    untouched = np.zeros((DIMENSION, DIMENSION), dtype=np.float32)
    before = top1(held_out, untouched)
    adapter = fit_adapter(training, MODEL, l2=1e-4, epochs=500)
    after = top1(held_out, adapter)
    assert before < 0.5, f"the style must confuse the unadapted ranking for the test to mean anything ({before})"
    assert after > before + 0.3, (before, after)


def test_a_heavy_penalty_keeps_the_adapter_near_zero() -> None:
    rng = np.random.default_rng(5)
    style = np.eye(DIMENSION)
    training = [styled_set(rng, style) for _ in range(3)]
    light = fit_adapter(training, MODEL, l2=1e-4, epochs=100)
    heavy = fit_adapter(training, MODEL, l2=10.0, epochs=100)
    assert np.abs(heavy).max() < np.abs(light).max()
