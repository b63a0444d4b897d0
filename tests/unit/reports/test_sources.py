"""The live matrix's entries as the reports and the console's start checks read them: one reader of a version's
`entries.json` (`knowledge_matrix.publish.version_entries` / `live_entries`), and the reports' cached reader over it
(`reports.sources.live_entries`).

Would catch: the two readers drifting apart again (ids without the first question, a question that is not the
first), the reports still showing the version before a publish, an unreadable version failing the whole report
instead of reading as no entries, or the console's checks getting [] instead of ArtifactError for it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from knowledge_matrix.embedders import HashingEmbedder
from knowledge_matrix.errors import ArtifactError
from knowledge_matrix.knowledge_base import ENTRIES_FILE
from knowledge_matrix.publish import INDEX_DIR, live_entries, publish, version_dir
from reports import sources

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
FIRST = (
    "id,preguntas,respuesta\n"
    "horario,¿A qué hora abren? | ¿Abren el domingo?,De 9 a 18.\n"
    "pagos,¿Qué métodos de pago aceptan?,Tarjeta y transferencia.\n"
)
SECOND = FIRST + "envios,¿Hacen envíos a Galápagos?,Sí.\n"


def publish_text(data_dir: Path, text: str, minutes: int) -> str:
    source = data_dir.parent / f"matriz{minutes}.csv"
    source.write_text(text, encoding="utf-8")
    result = publish(source, data_dir, NOW + timedelta(minutes=minutes), embedder=HashingEmbedder(32))
    assert result.version is not None, result.report.render()
    return result.version.id


def test_both_readers_give_each_entry_with_its_first_question_and_follow_a_new_version(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    reports_reader = sources.live_entries(data_dir)
    assert live_entries(data_dir) is None and list(reports_reader()) == []

    first = publish_text(data_dir, FIRST, 0)
    expected = [("horario", "¿A qué hora abren?"), ("pagos", "¿Qué métodos de pago aceptan?")]
    live = live_entries(data_dir)
    assert live is not None and live.version == first
    assert list(live.entries) == expected and live.ids == {"horario", "pagos"}
    assert list(reports_reader()) == expected

    second = publish_text(data_dir, SECOND, 1)
    assert second != first
    assert list(reports_reader()) == [*expected, ("envios", "¿Hacen envíos a Galápagos?")]


@pytest.mark.parametrize("damage", ["missing", "not json", "no id"])
def test_an_unreadable_version_is_artifact_error_for_the_console_and_no_entries_for_the_report(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "var"
    version = publish_text(data_dir, FIRST, 0)
    path = version_dir(data_dir, version) / INDEX_DIR / ENTRIES_FILE
    if damage == "missing":
        path.unlink()
    else:
        path.write_text("{no" if damage == "not json" else '[{"questions": ["¿Hola?"]}]', encoding="utf-8")

    with pytest.raises(ArtifactError, match=f"entries of version {version}"):
        live_entries(data_dir)
    with caplog.at_level(logging.WARNING, logger="reports.sources"):
        assert list(sources.live_entries(data_dir)()) == []
    assert "entries of the live version cannot be read" in caplog.text
