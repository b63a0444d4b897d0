from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from knowledge_matrix.artifact import FORMAT_VERSION, MANIFEST, read_manifest
from knowledge_matrix.embedders import HashingEmbedder
from knowledge_matrix.errors import ArtifactError, KnowledgeMatrixError, RebuildRequiredError
from knowledge_matrix.knowledge_base import KnowledgeBase, background_sample, row_texts
from knowledge_matrix.matrix import Entry, Matrix, QuickReply
from knowledge_matrix.retrieval import Thresholds
from knowledge_matrix.settings import DEFAULT_SETTINGS, GENERIC_CALIBRATION

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ENTRIES = (
    Entry("horario", ("¿Cuál es el horario de atención?", "¿A qué hora abren?"), "De lunes a viernes de 8 a 18."),
    Entry(
        "precio",
        ("¿Cuánto cuesta la suscripción mensual?",),
        "49 USD al mes.",
        quick_replies=(QuickReply("Pagar", "#pagos"),),
    ),
    Entry("pagos", ("¿Qué métodos de pago aceptan?",), "Tarjeta y transferencia."),
    Entry("facebook", ("¿Cómo conecto mi página de Facebook?",), "Acepte la invitación de agencia."),
    Entry("apagado", ("¿Cómo pauso el chatbot?",), "Use Pausar el Chatbot.", enabled=False),
)
SETTINGS = DEFAULT_SETTINGS.with_changes(embedder="hashing:256", thresholds=Thresholds(answer=0.6, suggest=0.2))


@pytest.fixture
def knowledge_base() -> KnowledgeBase:
    return KnowledgeBase.build(Matrix.of(ENTRIES), HashingEmbedder(256), SETTINGS, in_memory_index=True)


def test_rows_are_one_per_question_with_the_answer_attached() -> None:
    texts, owners, positions = row_texts(ENTRIES[:2], "question+answer")
    assert (owners, positions) == ([0, 0, 1], [0, 1, 0])
    assert texts[1] == "¿A qué hora abren?\nDe lunes a viernes de 8 a 18."
    assert row_texts(ENTRIES[:1], "question")[0] == list(ENTRIES[0].questions)
    both, owners, positions = row_texts(ENTRIES[:1], "question|question+answer")
    assert both[:2] == [
        "¿Cuál es el horario de atención?",
        "¿Cuál es el horario de atención?\nDe lunes a viernes de 8 a 18.",
    ]
    assert (owners, positions) == ([0, 0, 0, 0], [0, 0, 1, 1])
    with pytest.raises(ValueError):
        row_texts(ENTRIES, "answer")


def test_answer_sentences_are_extra_rows_of_their_entry() -> None:
    entry = Entry(
        "envio", ("¿Hacen envíos?",), "Sí, a todo el país. El envío tarda dos días hábiles.\nEs gratis desde 60 USD."
    )
    texts, owners, positions = row_texts([entry], "question+answer", answer_sentence_rows=True)
    # "Sí, a todo el país." has four words and is kept; each sentence points back to the first question
    assert texts[1:] == ["Sí, a todo el país.", "El envío tarda dos días hábiles.", "Es gratis desde 60 USD."]
    assert (owners, positions) == ([0, 0, 0, 0], [0, 0, 0, 0])


def test_every_ranking_option_builds_saves_and_loads_alike(tmp_path: Path) -> None:
    settings = SETTINGS.with_changes(
        lexical_weight=0.5,
        lexical_fusion="rrf",
        lexical_stemmer="snowball",
        answer_sentence_rows=True,
        spelling_correction=True,
        hubness_weight=0.5,
        model_agreement=True,
        thresholds=Thresholds(answer=0.6, suggest=0.2, margin=0.1),
    )
    built = KnowledgeBase.build(Matrix.of(ENTRIES), HashingEmbedder(64), settings, in_memory_index=True)
    hits = built.search("metodos de pago con tarjta", 3)  # a typo the matrix's own words correct
    assert hits[0].entry_id == "pagos" and hits[0].agreement is not None
    built.save(tmp_path / "kb", now=NOW)
    loaded = KnowledgeBase.load(tmp_path / "kb")
    # as built, pinned; the default query adapter has no matrix for the hashing model, so the version names none
    assert loaded.settings == settings.with_changes(calibration=GENERIC_CALIBRATION, query_adapter="")
    assert loaded.search("metodos de pago con tarjta", 3) == hits


def test_background_is_every_row_or_an_even_sample() -> None:
    assert background_sample(5, 10).tolist() == [0, 1, 2, 3, 4]
    sample = background_sample(1000, 10)
    assert len(sample) == 10 and sample[0] == 0 and sample[-1] == 999


def test_search_ranks_the_matching_entry_first_and_skips_disabled_ones(knowledge_base: KnowledgeBase) -> None:
    hits = knowledge_base.search("horario de atención", k=3)
    assert hits[0].entry_id == "horario"
    assert hits[0].matched_question == "¿Cuál es el horario de atención?"
    assert hits[0].score > hits[1].score
    assert [h.fused for h in hits] == sorted((h.fused for h in hits), reverse=True)
    assert all(0.0 <= h.score <= 1.0 for h in hits)
    assert "apagado" not in {e.id for e in knowledge_base.entries}


def test_search_many_equals_search(knowledge_base: KnowledgeBase) -> None:
    many = knowledge_base.search_many(["métodos de pago", "conectar facebook"], k=2)
    assert many == [knowledge_base.search("métodos de pago", 2), knowledge_base.search("conectar facebook", 2)]


def test_answer_and_decide_use_the_configured_thresholds(knowledge_base: KnowledgeBase) -> None:
    verdict = knowledge_base.answer("¿Qué métodos de pago aceptan?")
    assert verdict.kind in ("answer", "ambiguous")
    assert verdict.hit is not None and verdict.hit.entry_id == "pagos"
    assert knowledge_base.decide([]).kind == "no_match"


def test_save_and_load_serve_identical_hits(knowledge_base: KnowledgeBase, tmp_path: Path) -> None:
    manifest = knowledge_base.save(tmp_path / "kb", now=NOW)
    assert manifest.format_version == FORMAT_VERSION
    assert (manifest.model_name, manifest.dimension) == ("hashing:256", 256)
    assert (manifest.entry_count, manifest.row_count, manifest.index_kind) == (4, 5, "numpy")
    assert manifest.matrix_sha256 == Matrix.of(ENTRIES).sha256
    assert manifest.created_at == "2026-11-25T12:00:00+00:00"
    on_disk = json.loads((tmp_path / "kb" / MANIFEST).read_text("utf-8"))
    assert on_disk["settings"]["thresholds"] == {"answer": 0.6, "suggest": 0.2, "max_candidates": 3, "margin": 0.0}
    loaded = KnowledgeBase.load(tmp_path / "kb")  # the embedder comes from the manifest
    assert loaded.entries == knowledge_base.entries
    assert loaded.search("cuánto cuesta", 3) == knowledge_base.search("cuánto cuesta", 3)
    # the one it was built with (no query adapter: the default one has no matrix for the hashing model)
    assert loaded.settings == SETTINGS.with_changes(calibration=GENERIC_CALIBRATION, query_adapter="")


def test_saving_again_replaces_the_artifact_atomically(knowledge_base: KnowledgeBase, tmp_path: Path) -> None:
    knowledge_base.save(tmp_path / "kb", now=NOW)
    other = KnowledgeBase.build(Matrix.of(ENTRIES[:2]), HashingEmbedder(256), SETTINGS, in_memory_index=True)
    other.save(tmp_path / "kb", now=NOW)
    assert read_manifest(tmp_path / "kb").entry_count == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb"]  # no staging or retired leftovers


def test_another_model_or_dimension_requires_a_rebuild(knowledge_base: KnowledgeBase, tmp_path: Path) -> None:
    knowledge_base.save(tmp_path / "kb", now=NOW)

    class Renamed(HashingEmbedder):
        def __init__(self, name: str, dimension: int) -> None:
            super().__init__(dimension)
            self._name = name

        @property
        def name(self) -> str:
            return self._name

    with pytest.raises(RebuildRequiredError, match="otro-modelo"):
        KnowledgeBase.load(tmp_path / "kb", embedder=Renamed("otro-modelo", 256))
    with pytest.raises(RebuildRequiredError, match="dimension"):
        KnowledgeBase.load(tmp_path / "kb", embedder=Renamed("hashing:256", 128))
    with pytest.raises(RebuildRequiredError):
        KnowledgeBase.load(tmp_path / "kb", embedder=HashingEmbedder(128))


def test_another_format_version_requires_a_rebuild(knowledge_base: KnowledgeBase, tmp_path: Path) -> None:
    knowledge_base.save(tmp_path / "kb", now=NOW)
    path = tmp_path / "kb" / MANIFEST
    data = json.loads(path.read_text("utf-8"))
    data["format_version"] = FORMAT_VERSION + 1
    path.write_text(json.dumps(data), "utf-8")
    with pytest.raises(RebuildRequiredError, match="format"):
        KnowledgeBase.load(tmp_path / "kb")


def test_an_index_built_before_the_lexical_channel_must_be_rebuilt(
    knowledge_base: KnowledgeBase, tmp_path: Path
) -> None:
    """Format 1 artifacts were scored without the lexical channel and model agreement the calibration now weighs."""
    knowledge_base.save(tmp_path / "kb", now=NOW)
    path = tmp_path / "kb" / MANIFEST
    data = json.loads(path.read_text("utf-8"))
    data["format_version"] = 1
    path.write_text(json.dumps(data), "utf-8")
    with pytest.raises(RebuildRequiredError, match="rebuild the index"):
        KnowledgeBase.load(tmp_path / "kb")


def test_missing_or_broken_artifacts_are_artifact_errors(knowledge_base: KnowledgeBase, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a built index"):
        KnowledgeBase.load(tmp_path)
    knowledge_base.save(tmp_path / "kb", now=NOW)
    (tmp_path / "kb" / "rows.npy").unlink()
    with pytest.raises(ArtifactError):
        KnowledgeBase.load(tmp_path / "kb")
    (tmp_path / "kb" / MANIFEST).write_text("{not json", "utf-8")
    with pytest.raises(ArtifactError):
        KnowledgeBase.load(tmp_path / "kb")


def test_naive_timestamps_are_refused(knowledge_base: KnowledgeBase, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        knowledge_base.save(tmp_path / "kb", now=datetime(2026, 1, 1))


def test_a_matrix_without_enabled_entries_cannot_be_built() -> None:
    with pytest.raises(KnowledgeMatrixError):
        KnowledgeBase.build(Matrix.of(ENTRIES[4:]), HashingEmbedder(64), SETTINGS, in_memory_index=True)


def test_lexical_fusion_is_saved_and_loaded(tmp_path: Path) -> None:
    settings = SETTINGS.with_changes(lexical_weight=0.5)
    built = KnowledgeBase.build(Matrix.of(ENTRIES), HashingEmbedder(64), settings, in_memory_index=True)
    built.save(tmp_path / "kb", now=NOW)
    assert (tmp_path / "kb" / "lexical.npz").is_file()
    loaded = KnowledgeBase.load(tmp_path / "kb")
    assert loaded.search("pausa chatbot metodos pago", 2) == built.search("pausa chatbot metodos pago", 2)


def test_faiss_and_numpy_indexes_rank_alike() -> None:
    matrix = Matrix.of(ENTRIES)
    in_memory = KnowledgeBase.build(matrix, HashingEmbedder(64), SETTINGS, in_memory_index=True)
    with_faiss = KnowledgeBase.build(matrix, HashingEmbedder(64), SETTINGS)
    assert with_faiss.index_kind == "flat"
    for query in ("horario", "pago con tarjeta", "facebook"):
        first = in_memory.search(query, 3)
        second = with_faiss.search(query, 3)
        assert [h.entry_id for h in first] == [h.entry_id for h in second]
        assert np.allclose([h.score for h in first], [h.score for h in second], atol=1e-5)


def test_a_message_that_is_one_of_the_questions_ranks_its_entry_first() -> None:
    entries = (
        Entry("etiqueta", ("¿Qué son los mensajes de etiqueta?",), "Permiten escribir fuera de las 24 horas."),
        Entry(
            "promociones",
            ("¿Puedo enviar promociones con mensajes de etiqueta?",),
            "No: los mensajes de etiqueta no sirven para promociones; los mensajes de etiqueta son para avisos.",
        ),
    )
    settings = SETTINGS.with_changes(lexical_weight=5.0)  # a lexical channel strong enough to prefer the other
    built = KnowledgeBase.build(Matrix.of(entries), HashingEmbedder(64), settings, in_memory_index=True)
    assert built.search("que son los MENSAJES de etiqueta", 2)[0].entry_id == "etiqueta"


def test_a_message_that_is_one_of_the_questions_is_answered_directly_whatever_the_threshold() -> None:
    entries = (
        Entry("etiqueta", ("¿Qué son los mensajes de etiqueta?",), "Permiten escribir fuera de las 24 horas."),
        Entry("promociones", ("¿Puedo enviar promociones?",), "Sí, dentro de las 24 horas."),
        Entry("duplicada_a", ("¿Tienen envíos?",), "Sí, a todo el país."),
        Entry("duplicada_b", ("¿Tienen envíos?",), "Solo en Quito."),
    )
    settings = SETTINGS.with_changes(thresholds=Thresholds(answer=0.98, suggest=0.2))
    built = KnowledgeBase.build(Matrix.of(entries), HashingEmbedder(64), settings, in_memory_index=True)
    exact = built.search("que son los MENSAJES de etiqueta?", 2)
    assert exact[0].entry_id == "etiqueta" and exact[0].score >= 0.98
    assert built.decide(exact).kind == "answer"
    # Not word for word: the calibrated score stands (below this threshold with a hashing embedder).
    assert built.search("mensajes de etiqueta que son", 1)[0].score < 0.98
    # A question two entries share is nobody's exact match.
    assert all(hit.score < 0.98 for hit in built.search("¿Tienen envíos?", 2))
