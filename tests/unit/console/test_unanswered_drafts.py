"""A draft made of the live matrix plus one change («Preguntas sin respuesta»): the pure table edits and
`MatrixEditor.draft_with_question` / `draft_with_entry` / `draft_origin` on a temporary data dir with the package's
deterministic fake embedder.

Would catch: a question added with a «|» or a new line (two questions in the cell), the editor's own columns or other
entries lost on the way back to CSV, a question the entry already has added twice, a new entry with a taken id, a
draft whose origin is lost (its group would never resolve), a published change the live matrix does not answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.knowledge_editor import (
    DRAFT_NAME_SUFFIX,
    KnowledgeEditorError,
    MatrixEditor,
    clean_question,
    sheet_table,
    table_csv,
    with_entry,
    with_question,
)
from knowledge_matrix.embedders import HashingEmbedder
from knowledge_matrix.matrix import entries_from_sheet, parse_csv_bytes
from tests.unit.console.conftest import Clock

MATRIX = ("id;preguntas;respuesta;notas internas\n"
          "horario;¿A qué hora abren? | ¿Cuál es el horario?;Abrimos de 9:00 a 19:00.;revisar en enero\n"
          'envios;"¿Hacen envíos a Galápagos?\n¿Envían a Quito?";Sí: a todo el Ecuador.;\n').encode()


def entries(table: list[list[str]]) -> dict[str, tuple[str, ...]]:
    return {entry.id: entry.questions for entry in entries_from_sheet(parse_csv_bytes(table_csv(table)))}


def test_a_question_is_one_line_without_separators() -> None:
    assert clean_question("  ¿abren\nel | domingo?\t ") == "¿abren el domingo?"
    assert clean_question("\x00\u200b") == ""
    assert len(clean_question("a" * 900)) == 500


def test_the_table_reads_back_the_same_with_the_editors_columns() -> None:
    sheet = parse_csv_bytes(MATRIX)
    again = parse_csv_bytes(table_csv(sheet_table(sheet)))
    assert [row.cells for row in again.rows] == [row.cells for row in sheet.rows]
    assert again.unknown_headers == ("notas internas",)


def test_a_question_joins_its_entry_in_the_cells_own_style() -> None:
    sheet = parse_csv_bytes(MATRIX)
    added = entries(with_question(sheet, "horario", "oe a q hora abren | los domingos"))
    assert added["horario"] == ("¿A qué hora abren?", "¿Cuál es el horario?", "oe a q hora abren los domingos")
    assert added["envios"] == ("¿Hacen envíos a Galápagos?", "¿Envían a Quito?")
    added = entries(with_question(sheet, "envios", "¿llega a Loja?"))
    assert added["envios"] == ("¿Hacen envíos a Galápagos?", "¿Envían a Quito?", "¿llega a Loja?")


@pytest.mark.parametrize(("entry_id", "question", "words"), [
    ("nada", "¿abren?", "no existe"),
    ("horario", "   ", "Escriba la pregunta"),
    ("horario", "¿a QUÉ hora abren?", "ya tiene la pregunta"),  # the same ignoring case and accents
])
def test_a_question_that_cannot_be_added_is_refused_in_spanish(entry_id: str, question: str, words: str) -> None:
    with pytest.raises(KnowledgeEditorError, match=words):
        with_question(parse_csv_bytes(MATRIX), entry_id, question)


def test_a_new_entry_goes_last_and_a_taken_id_is_refused() -> None:
    sheet = parse_csv_bytes(MATRIX)
    table = with_entry(sheet, "feriados", ["¿Abren los feriados?", "", "¿Abren los feriados?", "feriados|abren"],
                       " Sí, de 9:00 a 13:00. ")
    assert entries(table)["feriados"] == ("¿Abren los feriados?", "feriados abren")
    assert table[-1][:3] == ["feriados", "¿Abren los feriados?\nferiados abren", "Sí, de 9:00 a 13:00."]
    for entry_id, questions, answer, words in (("horario", ["x"], "y", "Ya existe"), ("", ["x"], "y", "id"),
                                               ("nueva", ["  "], "y", "al menos una pregunta"),
                                               ("nueva", ["x"], " ", "respuesta")):
        with pytest.raises(KnowledgeEditorError, match=words):
            with_entry(sheet, entry_id, questions, answer)


@pytest.fixture
def editor(tmp_path: Path, clock: Clock) -> MatrixEditor:
    return MatrixEditor(tmp_path, clock, embedder=HashingEmbedder(64))


def test_nothing_published_yet_is_said(editor: MatrixEditor) -> None:
    with pytest.raises(KnowledgeEditorError, match="Todavía no hay una matriz publicada"):
        editor.draft_with_question("horario", "¿abren?", "editor")


def test_a_draft_from_the_live_matrix_keeps_its_origin_and_publishes_the_change(editor: MatrixEditor) -> None:
    uploaded = editor.upload("matriz.csv", MATRIX, "editor")
    editor.publish(uploaded.id, "editor")
    assert editor.draft_origin(uploaded.id) is None

    draft = editor.draft_with_question("horario", "atienden el domingo en la tarde", "maria",
                                       origin={"group_id": 7, "action": "added_question", "entry_id": "horario"})
    assert draft.ok and draft.entry_count == 2 and draft.uploaded_by == "maria"
    assert draft.filename == f"matriz{DRAFT_NAME_SUFFIX}.csv"
    assert editor.draft_origin(draft.id) == {"group_id": 7, "action": "added_question", "entry_id": "horario"}
    before = editor.try_question("atienden el domingo en la tarde", None).live
    assert before is not None and before.confidence is not None
    version = editor.publish(draft.id, "maria")
    assert version.filename == f"matriz{DRAFT_NAME_SUFFIX}.csv"  # not «… (Preguntas sin respuesta) (…)» next time
    tried = editor.try_question("atienden el domingo en la tarde", None).live
    assert tried is not None and (tried.outcome, tried.entry_id) == ("answer", "horario")
    assert (tried.confidence or 0) > before.confidence  # the very question is now one of the entry's

    new = editor.draft_with_entry("feriados", ["¿Abren los feriados?"], "Sí, de 9:00 a 13:00.", "maria")
    assert new.ok and new.entry_count == 3 and new.filename == f"matriz{DRAFT_NAME_SUFFIX}.csv"
    editor.publish(new.id, "maria")
    tried = editor.try_question("¿Abren los feriados?", None).live
    assert tried is not None and (tried.entry_id, tried.text) == ("feriados", "Sí, de 9:00 a 13:00.")
    # The earlier change is still there: each draft starts from the live version.
    kept = editor.try_question("atienden el domingo en la tarde", None).live
    assert kept is not None and kept.entry_id == "horario" and (kept.confidence or 0) > before.confidence


def test_a_bad_new_entry_is_a_draft_with_errors_not_a_publish(editor: MatrixEditor) -> None:
    editor.publish(editor.upload("matriz.csv", MATRIX, "editor").id, "editor")
    draft = editor.draft_with_entry("feriados", ["¿Abren los feriados?"], "x" * 2100, "maria")
    assert not draft.ok and any(issue.severity == "error" for issue in draft.issues)
