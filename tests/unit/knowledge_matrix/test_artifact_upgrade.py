"""A version published by older code answers after an upgrade as it did before: its manifest carries the
calibration it was built with (or, for one from before the «palabras clave» column, reads as the calibration of
then), and bad keyword contents in an artifact are an `ArtifactError`, as any other corruption."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from knowledge_matrix.artifact import MANIFEST
from knowledge_matrix.embedders import EnsembleEmbedder, HashingEmbedder, SeededRandomEmbedder
from knowledge_matrix.errors import ArtifactError
from knowledge_matrix.knowledge_base import KnowledgeBase
from knowledge_matrix.matrix import Entry, Matrix
from knowledge_matrix.retrieval import Calibration, Thresholds
from knowledge_matrix.settings import (
    CALIBRATION_BEFORE_KEYWORDS,
    CALIBRATIONS,
    DEFAULT_EMBEDDER,
    DEFAULT_SETTINGS,
    GENERIC_CALIBRATION,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ENTRIES = (
    Entry("horario", ("¿Cuál es el horario de atención?", "¿A qué hora abren?"), "De lunes a viernes de 8 a 18."),
    Entry("parqueadero", ("¿Tienen parqueadero?", "¿Dónde dejo el carro?"), "Sí, en el subsuelo del edificio."),
    Entry("pagos", ("¿Qué métodos de pago aceptan?",), "Tarjeta y transferencia."),
    Entry("facebook", ("¿Cómo conecto mi página de Facebook?",), "Acepte la invitación de agencia."),
)
QUERIES = ("a que hora abren", "donde parqueo", "pago con tarjeta", "conectar facebook", "hola")


def two_models() -> EnsembleEmbedder:
    """Two parts, as the default ensemble has, so both cosine coefficients of a calibration count."""
    return EnsembleEmbedder([(HashingEmbedder(128), 1.0), (SeededRandomEmbedder(64), 1.0)])


def edit_manifest(directory: Path, change: Any) -> None:
    path = directory / MANIFEST
    manifest = json.loads(path.read_text("utf-8"))
    change(manifest)
    path.write_text(json.dumps(manifest), encoding="utf-8")


def verdicts(base: KnowledgeBase) -> list[tuple[str, str | None, float | None]]:
    found = []
    for query in QUERIES:
        verdict = base.answer(query)
        found.append(
            (verdict.kind, None if verdict.hit is None else verdict.hit.entry_id, verdict.hit and verdict.hit.score)
        )
    return found


def test_a_version_from_before_the_keywords_column_answers_with_the_calibration_it_was_built_with(
    tmp_path: Path,
) -> None:
    embedder = two_models()
    settings = DEFAULT_SETTINGS.with_changes(embedder=embedder.name, keywords="off")
    KnowledgeBase.build(Matrix.of(ENTRIES), embedder, settings, in_memory_index=True).save(tmp_path / "kb", now=NOW)

    def as_written_before(manifest: dict[str, Any]) -> None:
        # What 5daffc5 wrote for the default ensemble: no `keywords`, a null calibration, its threshold 0.875.
        del manifest["settings"]["keywords"]
        manifest["settings"].update(embedder=DEFAULT_EMBEDDER, calibration=None)
        manifest["settings"]["thresholds"]["answer"] = 0.875

    edit_manifest(tmp_path / "kb", as_written_before)
    loaded = KnowledgeBase.load(tmp_path / "kb", embedder)
    assert loaded.settings.calibration == CALIBRATION_BEFORE_KEYWORDS and loaded.settings.keywords == "off"
    then = settings.with_changes(calibration=CALIBRATION_BEFORE_KEYWORDS, thresholds=loaded.settings.thresholds)
    old = KnowledgeBase.build(Matrix.of(ENTRIES), embedder, then, in_memory_index=True)
    today = KnowledgeBase.build(
        Matrix.of(ENTRIES),
        embedder,
        then.with_changes(calibration=CALIBRATIONS[DEFAULT_EMBEDDER]),
        in_memory_index=True,
    )
    assert [loaded.search(q, 3) for q in QUERIES] == [old.search(q, 3) for q in QUERIES]
    assert verdicts(loaded) == verdicts(old)
    assert verdicts(loaded) != verdicts(today), "the two calibrations must score these queries apart"


def test_only_a_manifest_without_keywords_and_calibration_of_the_default_embedder_reads_as_before(
    tmp_path: Path,
) -> None:
    embedder = two_models()
    settings = DEFAULT_SETTINGS.with_changes(embedder=DEFAULT_EMBEDDER)
    data = settings.to_dict()
    del data["keywords"]
    assert type(settings).from_dict(data).calibration == CALIBRATION_BEFORE_KEYWORDS
    assert type(settings).from_dict(settings.to_dict()).calibration is None  # keywords written: not an old one
    other = {**data, "embedder": embedder.name}
    assert type(settings).from_dict(other).calibration is None  # never calibrated: the generic one, then and now
    explicit = Calibration(intercept=-1.0, z=1.0, margin=1.0)
    assert type(settings).from_dict({**data, "calibration": explicit.to_dict()}).calibration == explicit


def test_a_new_manifest_carries_its_calibration_and_answers_the_same_after_the_table_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = two_models()
    settings = DEFAULT_SETTINGS.with_changes(embedder=embedder.name, thresholds=Thresholds(answer=0.6, suggest=0.2))
    fitted = Calibration(intercept=-2.0, z=0.7, margin=1.1, cosine=(2.0, 0.5), off_topic=0.3, agreement=1.2)
    monkeypatch.setitem(CALIBRATIONS, embedder.name, fitted)  # the table of the code that builds
    built = KnowledgeBase.build(Matrix.of(ENTRIES), embedder, settings, in_memory_index=True)
    manifest = built.save(tmp_path / "kb", now=NOW)
    assert manifest.settings["keywords"] == "both"
    assert Calibration.from_dict(manifest.settings["calibration"]) == fitted
    on_disk = json.loads((tmp_path / "kb" / MANIFEST).read_text("utf-8"))
    assert Calibration.from_dict(on_disk["settings"]["calibration"]) == fitted
    monkeypatch.delitem(CALIBRATIONS, embedder.name)  # an upgrade: the table no longer says that
    assert settings.calibration_for(embedder.name) == GENERIC_CALIBRATION
    loaded = KnowledgeBase.load(tmp_path / "kb", embedder)
    assert loaded.settings == settings.with_changes(calibration=fitted, query_adapter="")  # no adapter for these models
    assert [loaded.search(q, 3) for q in QUERIES] == [built.search(q, 3) for q in QUERIES]
    assert verdicts(loaded) == verdicts(built)


@pytest.mark.parametrize(
    ("where", "value"),
    [("manifest", "sometimes"), ("entries", "zona azul"), ("entries", 7), ("entries", {"a": 1})],
)
def test_bad_keywords_in_an_artifact_are_an_artifact_error(tmp_path: Path, where: str, value: object) -> None:
    embedder = HashingEmbedder(64)
    settings = DEFAULT_SETTINGS.with_changes(embedder=embedder.name)
    KnowledgeBase.build(Matrix.of(ENTRIES), embedder, settings, in_memory_index=True).save(tmp_path / "kb", now=NOW)
    if where == "manifest":
        edit_manifest(tmp_path / "kb", lambda manifest: manifest["settings"].update(keywords=value))
    else:
        path = tmp_path / "kb" / "entries.json"
        entries = json.loads(path.read_text("utf-8"))
        entries[1]["keywords"] = value
        path.write_text(json.dumps(entries), encoding="utf-8")
    with pytest.raises(ArtifactError, match="incomplete or corrupt"):
        KnowledgeBase.load(tmp_path / "kb")


def test_null_keywords_in_entries_read_as_none(tmp_path: Path) -> None:
    embedder = HashingEmbedder(64)
    settings = DEFAULT_SETTINGS.with_changes(embedder=embedder.name)
    built = KnowledgeBase.build(Matrix.of(ENTRIES), embedder, settings, in_memory_index=True)
    built.save(tmp_path / "kb", now=NOW)
    path = tmp_path / "kb" / "entries.json"
    entries = json.loads(path.read_text("utf-8"))
    for entry in entries:
        entry["keywords"] = None
    path.write_text(json.dumps(entries), encoding="utf-8")
    loaded = KnowledgeBase.load(tmp_path / "kb")
    assert loaded.entries == built.entries
    assert loaded.search("donde parqueo", 3) == built.search("donde parqueo", 3)
