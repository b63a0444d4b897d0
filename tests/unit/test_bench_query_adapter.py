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


def test_the_unadapted_terms_are_calibration_features_and_map_back_to_their_fields() -> None:
    """What the calibration is fitted on (`hit_features`) names the agreement terms as `Calibration`'s fields, so a
    fitted weight lands on the term the bot applies it to."""
    from bench.knowledge import calibration_from, hit_features
    from knowledge_matrix.matrix import Entry
    from knowledge_matrix.retrieval import Hit, Unadapted

    entry = Entry("a", ("¿Pregunta?",), "Respuesta.")
    plain = Hit(entry, 0.5, fused=2.0, margin=0.5, matched_question="¿Pregunta?", cosines=(0.8,))
    adapted = Hit(entry, 0.5, fused=2.0, margin=0.5, matched_question="¿Pregunta?", cosines=(0.8,),
                  unadapted=Unadapted(1.0, 0.5, 1.7))
    assert [name for name, _ in hit_features(plain)] == ["z", "margin", "cosine[0]"]
    named = hit_features(adapted)
    assert named[-3:] == [("same_top", 1.0), ("reciprocal_rank", 0.5), ("unadapted_fused", 1.7)]
    names = [name for name, _ in named]
    weights = np.arange(len(names) + 1, dtype=np.float64)  # intercept 0, then 1, 2, … per feature
    calibration = calibration_from(weights, names)
    assert (calibration.same_top, calibration.reciprocal_rank, calibration.unadapted_fused) == (4.0, 5.0, 6.0)
    assert (calibration.z, calibration.margin, calibration.cosine) == (1.0, 2.0, (3.0,))
