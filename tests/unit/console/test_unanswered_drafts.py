"""A draft made of the live matrix plus one change («Preguntas sin respuesta»): the pure edits, the live file edited
in place (CSV and XLSX), and `MatrixEditor.draft_with_question` / `draft_with_entry` / `draft_origin` / `publish`
on a temporary data dir with the package's deterministic fake embedder.

Would catch: a question added with a «|» or a new line (two questions in the cell); the editor's own columns lost
on the way (two columns with one header, a column without a header, a second «pregunta» column: review 14, 2a-2c);
an .xlsx turned into a CSV, its other sheets, formulas or formatting lost (2d); a CSV rewritten in another encoding,
without its BOM, or a new one Excel opens garbled (9); a question the entry already has added twice, a new entry
with a taken id; a draft whose origin is lost (its group would never resolve); a draft made on an older live version
that drops another editor's published change, or an old upload published over it without a confirmation (1)."""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

import openpyxl
import pytest
from openpyxl.styles import Font

from console.knowledge_editor import (
    DRAFT_NAME_SUFFIX,
    CellEdit,
    KnowledgeEditorError,
    MatrixEditor,
    NewRow,
    StaleDraft,
    clean_question,
    draft_name,
    edit_csv,
    with_entry,
    with_question,
    write_csv,
)
from knowledge_matrix.embedders import HashingEmbedder
from knowledge_matrix.matrix import entries_from_sheet, parse_csv_bytes, parse_xlsx_bytes
from tests.unit.console.conftest import Clock

MATRIX = ("id;preguntas;respuesta;notas internas\n"
          "horario;¿A qué hora abren? | ¿Cuál es el horario?;Abrimos de 9:00 a 19:00.;revisar en enero\n"
          'envios;"¿Hacen envíos a Galápagos?\n¿Envían a Quito?";Sí: a todo el Ecuador.;\n').encode()


def entries(data: bytes) -> dict[str, tuple[str, ...]]:
    return {entry.id: entry.questions for entry in entries_from_sheet(parse_csv_bytes(data))}


def test_a_question_is_one_line_without_separators() -> None:
    assert clean_question("  ¿abren\nel | domingo?\t ") == "¿abren el domingo?"
    assert clean_question("\x00\u200b") == ""
    assert len(clean_question("a" * 900)) == 500


def test_a_question_joins_its_entry_in_the_cells_own_style() -> None:
    sheet = parse_csv_bytes(MATRIX)
    edit = with_question(sheet, "horario", "oe a q hora abren | los domingos")
    assert edit == CellEdit(2, "questions",
                            "¿A qué hora abren? | ¿Cuál es el horario? | oe a q hora abren los domingos")
    added = entries(edit_csv(MATRIX, edit))
    assert added["horario"] == ("¿A qué hora abren?", "¿Cuál es el horario?", "oe a q hora abren los domingos")
    assert added["envios"] == ("¿Hacen envíos a Galápagos?", "¿Envían a Quito?")
    added = entries(edit_csv(MATRIX, with_question(sheet, "envios", "¿llega a Loja?")))
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
    edit = with_entry(sheet, "feriados", ["¿Abren los feriados?", "", "¿Abren los feriados?", "feriados|abren"],
                      " Sí, de 9:00 a 13:00. ")
    assert edit == NewRow({"id": "feriados", "questions": "¿Abren los feriados?\nferiados abren",
                           "answer": "Sí, de 9:00 a 13:00."})
    table = edit_csv(MATRIX + b"\n;;;\n", edit)  # trailing blank rows: the entry goes right after the last one
    assert list(entries(table)) == ["horario", "envios", "feriados"]
    assert entries(table)["feriados"] == ("¿Abren los feriados?", "feriados abren")
    for entry_id, questions, answer, words in (("horario", ["x"], "y", "Ya existe"), ("", ["x"], "y", "id"),
                                               ("nueva", ["  "], "y", "al menos una pregunta"),
                                               ("nueva", ["x"], " ", "respuesta")):
        with pytest.raises(KnowledgeEditorError, match=words):
            with_entry(sheet, entry_id, questions, answer)


# --- the live file edited in place (review 14, findings 2 and 9) -------------------------------------------------


@pytest.mark.parametrize(("header", "row", "kept"), [
    ("id;preguntas;respuesta;notas;notas", "horario;¿A qué hora abren?;Abrimos a las 9.;PRIMERA;SEGUNDA",
     ["PRIMERA", "SEGUNDA"]),  # 2a: two columns with one unknown header
    ("id;preguntas;respuesta;", "horario;¿A qué hora abren?;Abrimos a las 9.;dato sin encabezado",
     ["dato sin encabezado"]),  # 2b: a column with data and no header
    ("id;preguntas;respuesta;pregunta", "horario;¿A qué hora abren?;Abrimos a las 9.;otra forma",
     ["otra forma"]),  # 2c: a second «pregunta» column
])
def test_every_column_is_kept_where_it_was(header: str, row: str, kept: list[str]) -> None:
    data = f"{header}\n{row}\nenvios;¿Envían?;Sí.;x;y\n".encode()
    edited = edit_csv(data, with_question(parse_csv_bytes(data), "horario", "abren domingo"))
    table = list(csv.reader(io.StringIO(edited.decode("utf-8"), newline=""), delimiter=";"))
    assert table[0] == header.split(";") and table[2] == ["envios", "¿Envían?", "Sí.", "x", "y"]
    assert table[1] == ["horario", "¿A qué hora abren?\nabren domingo", "Abrimos a las 9.", *kept]
    assert entries(edited)["horario"] == ("¿A qué hora abren?", "abren domingo")


def test_only_the_one_row_changes_in_a_csv() -> None:
    data = ("id,preguntas,respuesta,notas,notas,\r\n"
            "horario,¿A qué hora abren?,Abrimos a las 9.,N1,N2,suelto\r\n"
            'envios,"¿Envían, a Loja?",Sí.,,,\r\n').encode()
    edited = edit_csv(data, with_question(parse_csv_bytes(data), "horario", "¿abren el domingo?"))
    assert edited.split(b"\r\n")[0] == data.split(b"\r\n")[0]
    assert edited.split(b"\r\n")[-2:] == data.split(b"\r\n")[-2:]
    assert 'horario,"¿A qué hora abren?\n¿abren el domingo?",Abrimos a las 9.,N1,N2,suelto'.encode() in edited


@pytest.mark.parametrize(("codec", "bom"), [("utf-8", b""), ("utf-8-sig", codecs.BOM_UTF8), ("cp1252", b""),
                                            ("utf-16", None)])
def test_a_csv_keeps_its_encoding_and_bom(codec: str, bom: bytes | None) -> None:
    data = MATRIX.decode("utf-8").replace("\n", "\r\n").encode(codec)
    edited = edit_csv(data, with_question(parse_csv_bytes(data), "horario", "¿atienden en días feriados?"))
    if bom is not None:
        assert edited.startswith(bom) and not edited[len(bom):].startswith(codecs.BOM_UTF8)
    assert edited.decode(codec).startswith("id;preguntas;respuesta;notas internas\r\n")
    assert "¿atienden en días feriados?" in edited.decode(codec)
    assert entries(edited)["horario"][-1] == "¿atienden en días feriados?"


def test_a_new_csv_is_utf8_with_a_bom_and_cp1252_that_cannot_hold_the_text_becomes_one() -> None:
    assert write_csv([["id", "pregunta"], ["x", "¿Qué?"]]).startswith(codecs.BOM_UTF8)
    data = MATRIX.decode("utf-8").encode("cp1252")
    edited = edit_csv(data, with_question(parse_csv_bytes(data), "horario", "¿abren? 🙂"))
    assert edited.startswith(codecs.BOM_UTF8) and "🙂" in edited.decode("utf-8-sig")


def workbook() -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Matriz"
    sheet.append(["id", "preguntas", "respuesta", "notas", "notas", None, "precio"])
    sheet.append(["horario", "¿A qué hora abren?", "Abrimos a las 9.", "N1", "N2", "suelto", 10])
    sheet.append(["envios", "¿Hacen envíos?", "Sí.", None, None, None, "=G2*2"])
    sheet["A1"].font = Font(bold=True)
    sheet["B3"].font = Font(italic=True)
    prices = book.create_sheet("Precios")
    prices.append(["producto", "precio"])
    prices.append(["camiseta", 12.5])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def read_book(data: bytes) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(data))


@pytest.fixture
def editor(tmp_path: Path, clock: Clock) -> MatrixEditor:
    return MatrixEditor(tmp_path, clock, embedder=HashingEmbedder(64))


def draft_bytes(editor: MatrixEditor, draft_id: str) -> bytes:
    [source] = (editor.drafts_dir / draft_id).glob("source.*")
    return source.read_bytes()


def test_an_xlsx_draft_stays_an_xlsx_with_its_sheets_formulas_and_formatting(editor: MatrixEditor) -> None:
    editor.publish(editor.upload("Matriz FAQ.xlsx", workbook(), "editor").id, "editor")
    draft = editor.draft_with_question("horario", "=¿abren el domingo?", "maria")
    assert draft.ok and draft.filename == "Matriz FAQ.xlsx" and draft.made_in_console
    book = read_book(draft_bytes(editor, draft.id))
    sheet = book["Matriz"]
    assert book.sheetnames == ["Matriz", "Precios"] and book["Precios"]["B2"].value == 12.5
    assert sheet["B2"].value == "¿A qué hora abren?\n=¿abren el domingo?" and sheet["B2"].data_type == "s"
    assert [cell.value for cell in sheet[2]] == ["horario", sheet["B2"].value, "Abrimos a las 9.", "N1", "N2",
                                                 "suelto", 10]
    assert sheet["G3"].value == "=G2*2" and sheet["A1"].font.bold

    added = editor.draft_with_entry("feriados", ["¿Abren los feriados?"], "Sí, de 9:00 a 13:00.", "maria")
    sheet = read_book(draft_bytes(editor, added.id))["Matriz"]
    assert [cell.value for cell in sheet[4]][:3] == ["feriados", "¿Abren los feriados?", "Sí, de 9:00 a 13:00."]
    assert sheet["B4"].font.italic, "a new row is styled as the row above"
    assert [e.id for e in entries_from_sheet(parse_xlsx_bytes(draft_bytes(editor, added.id)))] == [
        "horario", "envios", "feriados"]
    editor.publish(added.id, "maria")
    assert editor.live_source()[0] == "Matriz FAQ.xlsx"
    assert read_book(editor.live_source()[1]).sheetnames == ["Matriz", "Precios"]


def test_the_draft_keeps_the_live_file_s_name() -> None:
    assert draft_name("matriz.csv", ".csv") == "matriz.csv"
    assert draft_name(f"matriz{DRAFT_NAME_SUFFIX}.csv", ".csv") == "matriz.csv"
    assert draft_name("Matriz.XLSX", ".xlsx") == "Matriz.XLSX"


# --- drafts from the live matrix ---------------------------------------------------------------------------------


def test_nothing_published_yet_is_said(editor: MatrixEditor) -> None:
    with pytest.raises(KnowledgeEditorError, match="Todavía no hay una matriz publicada"):
        editor.draft_with_question("horario", "¿abren?", "editor")


def test_a_draft_from_the_live_matrix_keeps_its_origin_and_publishes_the_change(editor: MatrixEditor) -> None:
    uploaded = editor.upload("matriz.csv", MATRIX, "editor")
    assert uploaded.base_version is None and not uploaded.made_in_console
    editor.publish(uploaded.id, "editor")
    assert editor.draft_origin(uploaded.id) == {"base_version": None, "published_version": "0001"}

    draft = editor.draft_with_question("horario", "atienden el domingo en la tarde", "maria",
                                       origin={"group_id": 7, "action": "added_question", "entry_id": "horario"})
    assert draft.ok and draft.entry_count == 2 and draft.uploaded_by == "maria"
    assert (draft.filename, draft.base_version, draft.made_in_console) == ("matriz.csv", "0001", True)
    assert editor.draft_origin(draft.id) == {"group_id": 7, "action": "added_question", "entry_id": "horario",
                                             "base_version": "0001", "published_version": None}
    assert draft_bytes(editor, draft.id).startswith(b"id;preguntas;respuesta;notas internas\nhorario;")
    before = editor.try_question("atienden el domingo en la tarde", None).live
    assert before is not None
    before_confidence = (before.confidence or 0.0) if before.outcome == "answer" else 0.0  # a suggestion: not answered
    version = editor.publish(draft.id, "maria")
    assert version.filename == "matriz.csv"
    assert editor.draft_origin(draft.id)["published_version"] == version.id == "0002"  # type: ignore[index]
    tried = editor.try_question("atienden el domingo en la tarde", None).live
    assert tried is not None and (tried.outcome, tried.entry_id) == ("answer", "horario")
    assert (tried.confidence or 0) > before_confidence  # the very question is now one of the entry's

    new = editor.draft_with_entry("feriados", ["¿Abren los feriados?"], "Sí, de 9:00 a 13:00.", "maria")
    assert new.ok and new.entry_count == 3 and new.filename == "matriz.csv"
    editor.publish(new.id, "maria")
    tried = editor.try_question("¿Abren los feriados?", None).live
    assert tried is not None and (tried.entry_id, tried.text) == ("feriados", "Sí, de 9:00 a 13:00.")
    kept = editor.try_question("atienden el domingo en la tarde", None).live
    assert kept is not None and kept.entry_id == "horario" and (kept.confidence or 0) > before_confidence


def test_a_bad_new_entry_is_a_draft_with_errors_not_a_publish(editor: MatrixEditor) -> None:
    editor.publish(editor.upload("matriz.csv", MATRIX, "editor").id, "editor")
    draft = editor.draft_with_entry("feriados", ["¿Abren los feriados?"], "x" * 2100, "maria")
    assert not draft.ok and any(issue.severity == "error" for issue in draft.issues)


# --- stale drafts (review 14, finding 1) -------------------------------------------------------------------------


def test_two_console_drafts_of_one_live_version_both_reach_the_bot(editor: MatrixEditor) -> None:
    editor.publish(editor.upload("matriz.csv", MATRIX, "editor").id, "editor")
    first = editor.draft_with_question("horario", "¿abren los domingos?", "ana")
    second = editor.draft_with_entry("parqueadero", ["¿tienen parqueadero?"], "Sí, gratuito.", "leo")
    editor.publish(first.id, "ana")
    assert editor.publish(second.id, "leo").id == "0003"
    live = entries(editor.live_source()[1])
    assert live["horario"][-1] == "¿abren los domingos?", "the first editor's change is still live"
    assert live["parqueadero"] == ("¿tienen parqueadero?",)
    rebuilt = next(d for d in editor.drafts() if d.id == second.id)
    assert (rebuilt.base_version, rebuilt.published_version) == ("0002", "0003")


def test_a_console_draft_whose_change_no_longer_applies_is_refused(editor: MatrixEditor) -> None:
    editor.publish(editor.upload("matriz.csv", MATRIX, "editor").id, "editor")
    draft = editor.draft_with_question("envios", "¿llega a Loja?", "ana")
    without_envios = b"id;preguntas;respuesta\nhorario;\xc2\xbfA qu\xc3\xa9 hora abren?;Abrimos a las 9.\n"
    editor.publish(editor.upload("matriz.csv", without_envios, "leo").id, "leo")
    with pytest.raises(StaleDraft) as refused:
        editor.publish(draft.id, "ana", confirm_stale=True)
    assert refused.value.reason_code == "stale_draft" and not refused.value.can_confirm
    assert "La matriz publicada cambió" in refused.value.message_es
    assert "La entrada «envios» no existe en la matriz publicada." in refused.value.message_es
    assert refused.value.details() == {"base_version": "0001", "live_version": "0002", "can_confirm": False}
    assert editor.status().live is not None and editor.status().live.id == "0002"  # type: ignore[union-attr]


def test_an_upload_made_before_a_publication_needs_a_confirmation(editor: MatrixEditor) -> None:
    editor.publish(editor.upload("matriz.csv", MATRIX, "editor").id, "editor")
    old_copy = editor.upload("matriz.csv", MATRIX, "leo")
    assert old_copy.base_version == "0001"
    editor.publish(editor.draft_with_question("horario", "¿abren los domingos?", "ana").id, "ana")
    with pytest.raises(StaleDraft) as refused:
        editor.publish(old_copy.id, "leo")
    assert refused.value.can_confirm and "confirme" in refused.value.message_es
    assert editor.status().live.id == "0002"  # type: ignore[union-attr]
    assert editor.publish(old_copy.id, "leo", confirm_stale=True).id == "0003"
    assert editor.publish(old_copy.id, "leo").id == "0004", "published once, it is as current as its version"
