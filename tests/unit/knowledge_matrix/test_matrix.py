from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import Workbook

from knowledge_matrix.errors import MatrixReadError
from knowledge_matrix.matrix import (
    Button,
    Entry,
    Matrix,
    QuickReply,
    canonical_column,
    entries_from_sheet,
    parse_buttons,
    parse_csv_bytes,
    parse_enabled,
    parse_quick_replies,
    read_sheet,
    sniff_delimiter,
    split_questions,
)

EXCEL_SPANISH = (
    "\ufeffID;Categoría;Pregunta(s);Respuesta;Respuestas rápidas;Activo\r\n"
    'horario;General;"¿A qué hora abren?\r\n¿Cuál es el horario?";Atendemos de 8 a 18.;'
    "Ver mapa | Agente => /request_human;sí\r\n"
    "precio;Ventas;¿Cuánto cuesta? | precio del plan;49 USD al mes.;;no\r\n"
)


def test_canonical_column_understands_spanish_excel_headers() -> None:
    assert canonical_column("Pregunta(s)") == "questions"
    assert canonical_column(" RESPUESTA ") == "answer"
    assert canonical_column("Categoría") == "category"
    assert canonical_column("Respuestas rápidas") == "quick_replies"
    assert canonical_column("\ufeffid") == "id"
    assert canonical_column("Notas internas") is None


def test_excel_spanish_csv_with_bom_semicolons_and_crlf() -> None:
    sheet = parse_csv_bytes(EXCEL_SPANISH.encode("utf-8"))
    assert sheet.columns == ("id", "category", "questions", "answer", "quick_replies", "enabled")
    entries = entries_from_sheet(sheet)
    assert [e.id for e in entries] == ["horario", "precio"]
    horario, precio = entries
    assert horario.questions == ("¿A qué hora abren?", "¿Cuál es el horario?")
    assert horario.quick_replies == (QuickReply("Ver mapa", "Ver mapa"), QuickReply("Agente", "/request_human"))
    assert horario.row == 2 and precio.row == 3
    assert precio.questions == ("¿Cuánto cuesta?", "precio del plan")
    assert precio.enabled is False
    assert Matrix.of(entries).enabled_entries == (horario,)


def test_windows_cp1252_csv_is_decoded() -> None:
    data = "id,preguntas,respuesta\r\nhorario,¿Cuándo abren?,Abrimos a las 8.\r\n".encode("cp1252")
    (entry,) = entries_from_sheet(parse_csv_bytes(data))
    assert entry.questions == ("¿Cuándo abren?",)


def test_utf16_unicode_text_export_with_tabs() -> None:
    data = "id\tpregunta\trespuesta\nhorario\t¿Cuándo abren?\tA las 8.\n".encode("utf-16")
    (entry,) = entries_from_sheet(parse_csv_bytes(data))
    assert entry.answer == "A las 8."


def test_sniff_delimiter_ignores_commas_inside_quotes() -> None:
    assert sniff_delimiter('id;"pregunta, con coma";respuesta\n') == ";"
    assert sniff_delimiter("id,questions,answer\n") == ","


def test_unknown_columns_are_kept_and_blank_rows_skipped() -> None:
    data = b"id,questions,answer,Notas\n,,,\nhola,hola?,Hola!,interna\n,,,\n\n"
    sheet = parse_csv_bytes(data)
    assert sheet.unknown_headers == ("Notas",)
    assert [row.number for row in sheet.rows] == [2, 3]  # trailing blank rows are dropped
    (entry,) = entries_from_sheet(sheet)
    assert dict(entry.extra) == {"extra:Notas": "interna"}


def test_split_questions_by_lines_and_pipes_without_repeats() -> None:
    assert split_questions(" a \n\nb | c|a ") == ("a", "b", "c")


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("", True),
        ("Sí", True),
        ("x", True),
        ("TRUE", True),
        ("1", True),
        ("no", False),
        ("FALSO", False),
        ("quizás", None),
    ],
)
def test_parse_enabled(cell: str, expected: bool | None) -> None:
    assert parse_enabled(cell) is expected


def test_buttons_are_links_or_postbacks() -> None:
    assert parse_buttons("Ver planes => https://ecuabots.com/planes | Hablar con alguien => /request_human") == (
        Button("Ver planes", url="https://ecuabots.com/planes"),
        Button("Hablar con alguien", payload="/request_human"),
    )
    assert parse_quick_replies("Sí -> #precio") == (QuickReply("Sí", "#precio"),)


def test_entry_round_trips_through_dict() -> None:
    entry = Entry(
        id="a",
        questions=("q1", "q2"),
        answer="r",
        quick_replies=(QuickReply("t", "p"),),
        buttons=(Button("b", url="https://x.ec"),),
        tags=("t1",),
        row=4,
        extra=(("extra:Notas", "n"),),
    )
    assert Entry.from_dict(entry.to_dict()) == entry


def _write_xlsx(path: Path, rows: list[list[object]]) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    workbook.save(path)


def test_real_xlsx_with_numbers_booleans_and_multiline_cells(tmp_path: Path) -> None:
    path = tmp_path / "matriz.xlsx"
    _write_xlsx(
        path,
        [
            ["Identificador", "Preguntas", "Respuesta", "Habilitado", "Etiquetas"],
            [101, "¿Qué horario tienen?\n¿A qué hora abren?", "De 8 a 18.", True, "horario, local"],
            [None, None, None, None, None],
            ["cerrado", "¿Abren domingo?", "No.", False, None],
        ],
    )
    sheet = read_sheet(path)
    assert [row.number for row in sheet.rows] == [2, 3, 4]
    first, second = entries_from_sheet(sheet)
    assert first.id == "101"  # Excel numbers become their text, without ".0"
    assert first.questions == ("¿Qué horario tienen?", "¿A qué hora abren?")
    assert first.tags == ("horario", "local")
    assert (first.enabled, second.enabled) == (True, False)
    assert second.row == 4


def test_same_content_from_csv_and_xlsx_has_the_same_hash(tmp_path: Path) -> None:
    rows = [["id", "questions", "answer"], ["a", "¿uno?", "Uno."], ["b", "¿dos?", "Dos."]]
    _write_xlsx(tmp_path / "m.xlsx", rows)
    (tmp_path / "m.csv").write_text("\n".join(",".join(r) for r in rows), encoding="utf-8")
    from_xlsx = Matrix.of(entries_from_sheet(read_sheet(tmp_path / "m.xlsx")))
    from_csv = Matrix.of(entries_from_sheet(read_sheet(tmp_path / "m.csv")))
    assert from_xlsx.sha256 == from_csv.sha256
    changed = Matrix.of(entries_from_sheet(parse_csv_bytes(b"id,questions,answer\na,uno?,Uno.\nb,dos?,Tres.\n")))
    assert changed.sha256 != from_csv.sha256


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("viejo.xls", b"whatever", ".xls"),
        ("matriz.pdf", b"%PDF", "formato no admitido"),
        ("vacio.csv", b"", "vacío"),
        ("roto.xlsx", b"not a zip", "Excel"),
    ],
)
def test_unreadable_files_raise_a_clear_error(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(MatrixReadError, match=message):
        read_sheet(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MatrixReadError, match="no existe"):
        read_sheet(tmp_path / "nada.csv")
