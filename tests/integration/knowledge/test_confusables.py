"""Confusable entries with the real default embedder: the rule on a small matrix, a publish whose report warns,
and the CLI's `validate` and `build` output."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from knowledge_matrix.cli import EXIT_OK, main
from knowledge_matrix.confusables import confusable_issues
from knowledge_matrix.embedders import Embedder
from knowledge_matrix.knowledge_base import KnowledgeBase
from knowledge_matrix.matrix import Matrix, entries_from_sheet, read_sheet
from knowledge_matrix.publish import publish, version_dir

MATRIX = (
    "id,preguntas,respuesta\n"
    "importar_contactos,¿Cómo importo mis contactos desde un archivo Excel?,"
    "Vaya a Contactos > Importar y suba el archivo CSV o Excel con nombre y teléfono.\n"
    "exportar_contactos,¿Cómo exporto mis contactos a un archivo Excel?,"
    "Vaya a Contactos > Exportar y pulse Descargar: recibirá un archivo CSV.\n"
    "horario,¿A qué hora atienden?,De lunes a viernes de 08:00 a 18:00.\n"
    "envios,¿Hacen envíos a Galápagos?,Sí, por Servientrega, en 5 días hábiles.\n"
    "precio,¿Cuánto cuesta la suscripción mensual?,El plan mensual cuesta 49 USD.\n"
)


@pytest.fixture
def matrix_file(tmp_path: Path) -> Path:
    path = tmp_path / "matriz.csv"
    path.write_text(MATRIX, encoding="utf-8")
    return path


def test_import_and_export_are_confusable_and_unrelated_entries_are_not(
    matrix_file: Path, knowledge_embedder: Embedder
) -> None:
    sheet = read_sheet(matrix_file)
    knowledge_base = KnowledgeBase.build(Matrix.of(entries_from_sheet(sheet)), knowledge_embedder)
    issues = confusable_issues(knowledge_base)
    assert issues and all(issue.severity == "warning" and issue.code == "confusable_entries" for issue in issues)
    first = issues[0]
    assert (first.row, first.column) == (3, "questions")
    assert first.message.startswith(
        "la entrada «exportar_contactos» se puede confundir con «importar_contactos» (fila 2)"
    )
    assert "«exporto»" in first.message and "«importo»" in first.message
    # Only the close pairs: shipping to Galápagos and the monthly price have nothing to confuse.
    assert not any("«envios»" in issue.message and "«precio»" in issue.message for issue in issues)
    assert len(issues) <= 3


def test_a_publish_keeps_the_warning_in_its_report(
    matrix_file: Path, tmp_path: Path, knowledge_embedder: Embedder
) -> None:
    result = publish(matrix_file, tmp_path / "var", datetime(2026, 11, 25, tzinfo=UTC), embedder=knowledge_embedder)
    assert result.published and result.version is not None
    assert "confusable_entries" in result.report.codes()
    assert result.version.warning_count == len(result.report.warnings) >= 1
    report_text = (version_dir(tmp_path / "var", result.version.id) / "report.txt").read_text(encoding="utf-8")
    assert "Advertencias" in report_text and "se puede confundir con «importar_contactos»" in report_text


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return main(list(argv), out, err), out.getvalue(), err.getvalue()


def test_validate_and_build_print_the_warning(matrix_file: Path, tmp_path: Path, knowledge_embedder: Embedder) -> None:
    code, out, _ = run("validate", str(matrix_file))
    assert code == EXIT_OK
    assert "se puede confundir con «importar_contactos» (fila 2)" in out and "La matriz es válida" in out
    code, out, _ = run("validate", str(matrix_file), "--no-embeddings")
    assert code == EXIT_OK and "se puede confundir" not in out
    code, out, err = run("build", str(matrix_file), "--out", str(tmp_path / "kb"))
    assert code == EXIT_OK and "Índice creado" in out
    assert "se puede confundir con «importar_contactos»" in err
