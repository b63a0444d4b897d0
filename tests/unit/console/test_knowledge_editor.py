"""`MatrixEditor`: the knowledge editor page's adapter over `knowledge_matrix.publish`, on a temporary data dir
with the package's deterministic fake embedder (no model)."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import Workbook

from console.knowledge_editor import DraftHasErrors, DraftNotFound, MatrixEditor, NothingToRollBack
from knowledge_matrix.embedders import HashingEmbedder
from knowledge_matrix.publish import current_version
from tests.unit.console.conftest import Clock

HEADER = "id,preguntas,respuesta\n"
HOURS = "horario,¿Cuál es el horario de atención? | ¿A qué hora abren?,Abrimos de 9:00 a 19:00.\n"
SHIPPING = 'envios,¿Hacen envíos a Galápagos? | ¿Envían a las islas?,"{answer}"\n'


def matrix(answer: str) -> bytes:
    return (HEADER + HOURS + SHIPPING.format(answer=answer)).encode("utf-8")


@pytest.fixture
def editor(tmp_path: Path, clock: Clock) -> MatrixEditor:
    return MatrixEditor(tmp_path, clock, embedder=HashingEmbedder(64))


def test_a_draft_with_errors_is_reported_by_row_and_never_published(editor: MatrixEditor, tmp_path: Path) -> None:
    draft = editor.upload("matriz.csv", matrix(""), "editor")
    assert not draft.ok and [(i.row, i.code) for i in draft.issues if i.severity == "error"] == [(3, "missing_answer")]
    assert draft.issues[0].message == "falta la respuesta." and draft.issues[0].column_label == "respuesta"
    assert "fila 3" in draft.summary and "NO se publicará" in draft.summary
    with pytest.raises(DraftHasErrors):
        editor.publish(draft.id, "editor")
    assert current_version(tmp_path) is None and editor.status().live is None
    tried = editor.try_question("¿Hacen envíos a Galápagos?", draft.id)
    assert tried.draft is not None and tried.draft.outcome == "none" and tried.live is None


def test_publish_try_and_roll_back(editor: MatrixEditor, clock: Clock, tmp_path: Path) -> None:
    first = editor.upload("matriz.csv", matrix("Sí, por Servientrega."), "editor")
    assert first.ok and first.entry_count == 2
    version = editor.publish(first.id, "editor")
    assert (version.id, version.live, version.filename, version.published_by) == ("0001", True, "matriz.csv", "editor")
    assert current_version(tmp_path).id == "0001"  # type: ignore[union-attr]

    clock.advance(minutes=1)
    second = editor.upload("nueva.csv", matrix("No, todavía no enviamos a Galápagos."), "maria")
    tried = editor.try_question("¿Hacen envíos a Galápagos?", second.id)
    assert tried.live is not None and tried.draft is not None
    assert tried.live.entry_id in (None, "envios") and tried.draft.entry_id in (None, "envios")
    if tried.draft.outcome == "answer":
        assert tried.draft.text == "No, todavía no enviamos a Galápagos."
    assert editor.publish(second.id, "maria").id == "0002"
    status = editor.status()
    assert status.live is not None and status.live.id == "0002"
    assert [(v.id, v.live) for v in status.versions] == [("0002", True), ("0001", False)]
    assert [d.id for d in status.drafts] == [second.id, first.id]

    assert editor.rollback("editor").id == "0001"
    assert current_version(tmp_path).id == "0001"  # type: ignore[union-attr]
    with pytest.raises(NothingToRollBack):
        editor.rollback("editor")
    assert editor.rollback("editor", "0002").id == "0002"  # any version can come back
    with pytest.raises(NothingToRollBack, match="0009"):
        editor.rollback("editor", "0009")


def test_an_excel_workbook(editor: MatrixEditor, tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in (["ID", "Preguntas", "Respuesta"], ["horario", "¿A qué hora abren?", "A las 9:00."]):
        sheet.append(row)
    path = tmp_path / "matriz.xlsx"
    workbook.save(path)
    draft = editor.upload("C:\\Users\\ana\\matriz.xlsx", path.read_bytes(), "editor")
    assert draft.ok and draft.filename == "matriz.xlsx" and draft.entry_count == 1


def test_files_that_are_not_a_matrix(editor: MatrixEditor) -> None:
    pdf = editor.upload("matriz.pdf", b"%PDF-1.4", "editor")
    assert not pdf.ok and "formato no admitido" in pdf.issues[0].message
    empty = editor.upload("vacia.csv", b"", "editor")
    assert not empty.ok


def test_unknown_drafts(editor: MatrixEditor) -> None:
    for draft_id in ("0123456789ab", "../../etc", ""):
        with pytest.raises(DraftNotFound):
            editor.publish(draft_id, "editor")


def test_only_the_latest_drafts_are_kept(editor: MatrixEditor, clock: Clock) -> None:
    ids = []
    for _ in range(22):
        clock.advance(seconds=1)
        ids.append(editor.upload("m.csv", matrix("Sí."), "editor").id)
    assert [d.id for d in editor.drafts()] == list(reversed(ids))[:20]


def test_a_matrix_with_a_keywords_column(editor: MatrixEditor) -> None:
    data = (
        "id,preguntas,respuesta,Palabras clave\n"
        'parqueadero,¿Tienen parqueadero?,"Sí, en el subsuelo.","simert, zona azul, garaje"\n'
        'horario,¿A qué hora abren?,Abrimos de 9:00 a 19:00.,"hora de apertura, Garaje"\n'
    ).encode()
    draft = editor.upload("matriz.csv", data, "editor")
    assert draft.ok and draft.entry_count == 2
    assert [(i.code, i.row, i.column_label) for i in draft.issues] == [("repeated_keyword", 3, "palabras clave")]
    assert "«simert» está" not in draft.summary and "«garaje» está en las filas 2 y 3" in draft.summary
    tried = editor.try_question("hay zona azul por ahí?", draft.id)
    assert tried.draft is not None  # found by its keywords alone, offered by a real question of the entry
    assert tried.draft.entry_id == "parqueadero" or tried.draft.suggestions[:1] == ("¿Tienen parqueadero?",)
