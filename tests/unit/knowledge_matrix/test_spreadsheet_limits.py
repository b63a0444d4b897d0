"""Spreadsheets that used to take the app down get a clear Spanish refusal (issue 8, item 5).

On the old reader: a 4.8 KB .xlsx declaring a cell at XFD1048576 made openpyxl pad every row (≈137 GB);
broken XML inside a valid zip raised a ParseError (a 500 in the console); encrypted and macro-enabled books,
zip bombs and oversized files were parsed; `http://` links were accepted; the near-duplicate check built an
N×N matrix. Each test names what it proves.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from openpyxl import Workbook

from console.knowledge_editor import EditorBusy, MatrixEditor
from core.errors import status_of
from knowledge_matrix.duplicates import similar_question_pairs
from knowledge_matrix.embedders import HashingEmbedder
from knowledge_matrix.errors import MatrixReadError, MatrixTooLargeError
from knowledge_matrix.matrix import SheetLimits, parse_csv_bytes, parse_xlsx_bytes, read_sheet
from knowledge_matrix.publish import check_matrix
from knowledge_matrix.validation import validate_sheet
from tests.unit.console.conftest import Clock

SMALL = SheetLimits(rows=20, columns=6, blank_tail=5, file_bytes=64 * 1024, xlsx_uncompressed_bytes=2 * 1024 * 1024)


def xlsx(rows: list[list[object]], far_cell: str | None = None) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    if far_cell:
        sheet[far_cell] = "x"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def rezip(data: bytes, edit: dict[str, bytes | None], extra: dict[str, bytes] | None = None) -> bytes:
    """The same workbook with some parts replaced (a regex → replacement on the sheet XML) or added."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename in edit:
                replacement = edit[item.filename]
                if replacement is None:
                    continue
                content = replacement
            target.writestr(item, content)
        for name, content in (extra or {}).items():
            target.writestr(name, content)
    return out.getvalue()


GOOD = [["id", "preguntas", "respuesta"], ["horario", "¿A qué hora abren?", "A las 9:00."]]
SHEET = "xl/worksheets/sheet1.xml"


def test_a_tiny_file_declaring_cell_xfd1048576_is_refused_before_any_padding() -> None:
    data = xlsx(GOOD, far_cell="XFD1048576")
    assert len(data) < 10_000
    with pytest.raises(MatrixTooLargeError, match="XFD1048576") as refused:
        parse_xlsx_bytes(data)
    assert "50.000 filas" in str(refused.value) and "50 columnas" in str(refused.value)


def test_without_a_declared_dimension_the_far_cell_still_stops_the_read_early() -> None:
    data = xlsx(GOOD, far_cell="XFD1048576")
    sheet_xml = zipfile.ZipFile(io.BytesIO(data)).read(SHEET)
    stripped = rezip(data, {SHEET: re.sub(rb"<dimension[^>]*/>", b"", sheet_xml)})
    with pytest.raises(MatrixTooLargeError, match="filas"):
        parse_xlsx_bytes(stripped)


def test_rows_and_columns_over_the_caps_are_refused_with_the_row_or_column() -> None:
    header = "id,preguntas,respuesta\n"
    with pytest.raises(MatrixTooLargeError, match="más de 20 filas de datos"):
        parse_csv_bytes((header + "".join(f"e{i},¿p{i}?,R.\n" for i in range(21))).encode(), SMALL)
    assert len(parse_csv_bytes((header + "".join(f"e{i},¿p{i}?,R.\n" for i in range(20))).encode(), SMALL).rows) == 20
    with pytest.raises(MatrixTooLargeError, match="columna H"):
        parse_csv_bytes(b"id,preguntas,respuesta\na,b,c,,,,,dato\n", SMALL)
    # trailing empty separators are formatting, not columns
    assert parse_csv_bytes(b"id,preguntas,respuesta" + b"," * 500 + b"\na,b,c\n", SMALL).columns == (
        "id", "questions", "answer")
    with pytest.raises(MatrixTooLargeError, match="pesa"):
        parse_csv_bytes(b"id,preguntas,respuesta\n" + b"a,b,c\n" * 20_000, SMALL)
    with pytest.raises(MatrixTooLargeError, match="declara"):
        parse_xlsx_bytes(xlsx(GOOD, far_cell="G1"), SMALL)


def test_a_zip_bomb_is_refused_from_its_directory() -> None:
    bomb = rezip(xlsx(GOOD), {}, extra={"xl/media/bomb.bin": b"\0" * (3 * 1024 * 1024)})
    assert len(bomb) < 64 * 1024
    with pytest.raises(MatrixTooLargeError, match="descomprimido"):
        parse_xlsx_bytes(bomb, SMALL)


def _with_version(data: bytes, version: int) -> bytes:
    """The same zip with every central-directory entry claiming it needs zip `version` (a damaged header)."""
    out = bytearray(data)
    start = 0
    while (found := out.find(b"PK\x01\x02", start)) != -1:
        out[found + 6:found + 8] = version.to_bytes(2, "little")  # "version needed to extract"
        start = found + 4
    return bytes(out)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a zip at all", "no es un Excel"),
        # Found by the spreadsheet fuzz: zipfile raised NotImplementedError ("zip file version 14.5"), a 500.
        (_with_version(xlsx(GOOD), 145), "no es un Excel"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, "contraseña"),
        (rezip(xlsx(GOOD), {}, extra={"xl/vbaProject.bin": b"macro"}), "macros"),
        (rezip(xlsx(GOOD), {SHEET: b"<worksheet><sheetData><row r='1'><c r='A1'"}), "no es un Excel"),
        (rezip(xlsx(GOOD), {SHEET: None}), "no es un Excel|ninguna hoja"),
        (rezip(xlsx(GOOD), {"xl/workbook.xml": b"\x00\xff garbage"}), "no es un Excel"),
        (xlsx(GOOD)[:200], "no es un Excel"),
    ],
    ids=["not-a-zip", "newer-zip-version", "encrypted", "macros", "broken-xml", "missing-sheet", "broken-workbook",
         "truncated"],
)
def test_malformed_books_are_a_read_error_not_a_crash(data: bytes, message: str) -> None:
    with pytest.raises(MatrixReadError, match=message):
        parse_xlsx_bytes(data)


def test_merged_cells_and_formulas_give_a_report() -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["id", "preguntas", "respuesta"])
    sheet.append(["a", "¿uno?", "=1+1"])  # a formula without a cached value reads as empty
    sheet.append(["b", "¿dos?", "Dos."])
    sheet.merge_cells("A2:A3")
    buffer = io.BytesIO()
    workbook.save(buffer)
    report = validate_sheet(parse_xlsx_bytes(buffer.getvalue()))
    assert "missing_answer" in report.codes() and "missing_id" in report.codes()


@pytest.mark.parametrize("column", ["enlace", "imagen"])
def test_http_links_are_refused_https_only(column: str) -> None:
    report = validate_sheet(parse_csv_bytes(f"id,preguntas,respuesta,{column}\na,¿a?,A.,http://x.ec/a\n".encode()))
    assert report.codes()[0] == "invalid_url" and "https://" in report.errors[0].message
    ok = validate_sheet(parse_csv_bytes(f"id,preguntas,respuesta,{column}\na,¿a?,A.,https://x.ec/a\n".encode()))
    assert ok.ok


def test_http_button_links_are_refused() -> None:
    report = validate_sheet(parse_csv_bytes("id,preguntas,respuesta,botones\na,¿a?,A.,Ver => http://x.ec\n".encode()))
    assert report.codes()[0] == "invalid_url" and "https://" in report.errors[0].message


def test_faiss_neighbours_find_what_the_full_matrix_finds() -> None:
    """Exact (flat) and approximate (HNSW) top-k give the same near-duplicate pairs as the old N×N matrix."""
    rng = np.random.default_rng(7)
    texts = [f"pregunta {i}" for i in range(300)]
    owners = [f"e{i // 3}" for i in range(300)]

    class Planted:
        name, dimension = "planted", 32
        base = rng.standard_normal((300, 32)).astype(np.float32)
        base[150] = base[10] + 0.01  # entry e50 vs e3: a near duplicate
        base[299] = base[0]  # e99 vs e0: identical
        base /= np.linalg.norm(base, axis=1, keepdims=True)

        def embed(self, batch: list[str], *, role: str = "query") -> np.ndarray:
            return self.base[[int(text.split()[1]) for text in batch]]

    embedder = Planted()
    similarity = embedder.base @ embedder.base.T
    expected = {(i, j) for i in range(300) for j in range(i + 1, 300)
                if owners[i] != owners[j] and similarity[i, j] >= 0.9}
    for flops in (float("inf"), 0.0):
        found = similar_question_pairs(texts, owners, embedder, 0.9, batch_size=64, exact_search_flops=flops)
        assert {(i, j) for i, j, _ in found} == expected == {(10, 150), (0, 299)}


def test_an_upload_that_fails_leaves_no_draft_and_a_second_one_meanwhile_is_refused(tmp_path: Path) -> None:
    clock = Clock()
    class Exploding(HashingEmbedder):
        def embed(self, texts, *, role="query"):  # type: ignore[no-untyped-def]
            raise RuntimeError("model crashed")

    editor = MatrixEditor(tmp_path, clock, embedder=Exploding(16))
    good = b"id,preguntas,respuesta\na,\xc2\xbfuno?,Uno.\nb,\xc2\xbfdos?,Dos.\n"
    with pytest.raises(RuntimeError):
        editor.upload("m.csv", good, "editor")
    assert not any((tmp_path / "knowledge-drafts").iterdir())  # no orphan
    editor = MatrixEditor(tmp_path, clock, embedder=HashingEmbedder(16))
    with editor._exclusive(), pytest.raises(EditorBusy) as busy:  # another validation is running
        editor.upload("m.csv", good, "editor")
    assert status_of(busy.value) == 429 and "Espere" in busy.value.message_es
    assert editor.upload("m.csv", good, "editor").ok
    bomb = editor.upload("bomba.xlsx", xlsx(GOOD, far_cell="XFD1048576"), "editor")
    assert not bomb.ok and bomb.issues[0].code == "matrix_too_large" and "XFD1048576" in bomb.summary


def test_check_matrix_reports_refusals_in_the_report(tmp_path: Path) -> None:
    path = tmp_path / "m.xlsx"
    path.write_bytes(b"\0" * (5 * 1024 * 1024 + 1))
    report, sheet = check_matrix(path, None)
    assert sheet is None and report.codes() == ["matrix_too_large"] and "5 MB" in report.render()
    with pytest.raises(MatrixTooLargeError):
        read_sheet(path)
