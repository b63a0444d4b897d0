"""Contacts as CSV (contacts/csv_io.py): the export Excel opens in a Spanish locale, the import of what Excel saves,
formula cells escaped and restored, errors by row in Spanish, the limits.

Would catch: a name like `=HYPERLINK(…)` or `+593…` exported as is (a spreadsheet runs it); the escape not undone on
import (an export → import round trip that adds `'`); a tag holding a comma split in two; a file saved by Excel as
cp1252 or with `,` refused; row numbers counted by physical lines (a cell with a line break shifts every later
error); an Excel-mangled PSID (6,12346E+15) imported as a new contact; a file over the limits read whole."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from types import MappingProxyType

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from contacts.csv_io import (
    FORMULA_STARTS,
    HEADER,
    MAX_IMPORT_BYTES,
    MAX_IMPORT_ROWS,
    CsvRefused,
    ImportLimits,
    ImportPlan,
    ImportRow,
    escape_cell,
    export_csv,
    field_keys_of,
    import_csv,
    join_tags,
    merge_errors,
    split_tags,
    unescape_cell,
)
from contacts.model import Contact, ContactInvalid, check_name, check_tags

PAGE = "100000000000001"
OTHER_PAGE = "100000000000002"
AT = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)


def contact(psid: str, **values: object) -> Contact:
    fields = values.pop("fields", {})
    assert isinstance(fields, Mapping)
    return Contact(page_id=str(values.pop("page_id", PAGE)), psid=psid, first_seen_at=AT,
                   fields=MappingProxyType(dict(fields)), **values)  # type: ignore[arg-type]


def exported(contacts: list[Contact]) -> bytes:
    return b"".join(export_csv(contacts, field_keys_of(contacts)))


def cells(data: bytes) -> list[list[str]]:
    text = data.decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))


def only_errors(plan: ImportPlan) -> list[str]:
    return [error.message for error in plan.errors]


# --- export ------------------------------------------------------------------------------------------------------


def test_the_export_is_what_excel_opens_in_a_spanish_locale() -> None:
    people = [
        contact("6123456789012345", first_name="José María", last_name="Peña Núñez 😀", tags=("Cliente VIP", "Quito"),
                fields={"ciudad": "Quito; La Floresta", "pedido": 'Pollo "familiar", papas\ny cola'},
                last_user_message_at=AT + timedelta(hours=2), campaign="menu_mesas"),
        contact("6123456789012346"),
    ]

    data = exported(people)

    assert data.startswith(codecs.BOM_UTF8)
    assert data.count(b"\r\n") == 3  # header and two rows; the line break inside «pedido» stays as it was
    lines = data.decode("utf-8-sig").split("\r\n")
    assert lines[0] == ("page_id;psid;nombre;apellido;etiquetas;primer_contacto;ultimo_mensaje;campana;"
                        "campo:ciudad;campo:pedido")
    rows = cells(data)
    assert rows[1] == [PAGE, "6123456789012345", "José María", "Peña Núñez 😀", "Cliente VIP, Quito",
                       "2026-03-02T15:00:00+00:00", "2026-03-02T17:00:00+00:00", "menu_mesas", "Quito; La Floresta",
                       'Pollo "familiar", papas\ny cola']
    assert rows[2] == [PAGE, "6123456789012346", "", "", "", "2026-03-02T15:00:00+00:00", "", "", "", ""]


def test_the_export_streams_in_pieces_with_one_bom() -> None:
    people = [contact(f"61234567{index:08d}", first_name="Ñandú " * 10) for index in range(3000)]

    pieces = list(export_csv(people, []))

    assert len(pieces) > 2
    assert pieces[0].startswith(codecs.BOM_UTF8) and all(not piece.startswith(codecs.BOM_UTF8) for piece in pieces[1:])
    assert len(cells(b"".join(pieces))) == 3001


def test_no_contacts_is_the_header_alone() -> None:
    assert exported([]) == codecs.BOM_UTF8 + (";".join(HEADER) + "\r\n").encode()


@pytest.mark.parametrize("start", sorted(FORMULA_STARTS))
def test_a_cell_a_spreadsheet_would_run_is_escaped(start: str) -> None:
    dangerous = f"{start}HYPERLINK(\"http://malo.example\";\"clic\")"
    person = contact("6123", first_name=dangerous, tags=(f"{start}cmd",), fields={"nota": dangerous},
                     campaign=f"{start}1")

    row = cells(exported([person]))[1]

    assert row[2] == "'" + dangerous and row[8] == "'" + dangerous
    assert row[4] == f"'{start}cmd" and row[7] == f"'{start}1"
    assert all(cell[:1] not in FORMULA_STARTS for cell in row)


@pytest.mark.parametrize("text", ["=1+1", "+593 99 123 4567", "-5", "@SUM(A1)", "\tx", "\rx", "＝1", "＋1", "－1",
                                  "＠a", "'=1", "''+x", "'hola", "'", "", "hola", "a=b", " =1"])
def test_escape_and_unescape_are_inverses(text: str) -> None:
    escaped = escape_cell(text)

    assert unescape_cell(escaped) == text
    assert escaped[:1] not in FORMULA_STARTS


def test_only_cells_that_start_like_a_formula_are_escaped() -> None:
    assert escape_cell("hola =1") == "hola =1"
    assert escape_cell(" =1") == " =1"  # a leading space: not run as a formula
    assert escape_cell("'hola") == "'hola" and unescape_cell("'hola") == "'hola"
    assert escape_cell("'=1") == "''=1"  # so the import gives back '=1, not =1


@settings(max_examples=300, deadline=None, database=None)
@given(st.text())
def test_any_text_escapes_and_comes_back(text: str) -> None:
    escaped = escape_cell(text)
    assert escaped[:1] not in FORMULA_STARTS
    assert unescape_cell(escaped) == text


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20),
                max_size=6))
def test_tags_holding_commas_and_quotes_split_back(tags: list[str]) -> None:
    assume(all(tag.strip() for tag in tags))
    stored = check_tags(tags)

    assert check_tags(split_tags(join_tags(stored))) == stored


def test_tags_as_people_type_them() -> None:
    assert split_tags("vip,  nuevo ,Quito") == ["vip", "nuevo ", "Quito"]
    assert split_tags('"Pollo, papas", VIP') == ["Pollo, papas", "VIP"]
    assert split_tags(" , ,") == [] and split_tags("") == []
    assert join_tags(["Pollo, papas", "VIP"]) == '"Pollo, papas", VIP'


# --- round trip --------------------------------------------------------------------------------------------------

TRICKY = st.sampled_from(["=1+1", "+593 99 123 4567", "-", "@a", "\t", "＝", "'", "''=", ";", ",", '"', "\n", "\r\n",
                          "ñ", "á", "😀", " ", "Ñandú", "José", "a;b", 'c,"d"'])
TEXT = st.lists(st.one_of(TRICKY, st.text(max_size=6)), max_size=6).map("".join)


def stored_name(text: str) -> str | None:
    try:
        return check_name(text, "first_name")
    except ContactInvalid:
        return None


@st.composite
def contacts(draw: st.DrawFn) -> Contact:
    psid = draw(st.text(alphabet="0123456789abcXYZ-", min_size=1, max_size=64))
    raw_tags = draw(st.lists(TEXT, max_size=5))
    try:
        tags = check_tags([tag for tag in raw_tags if tag.strip()])
    except ContactInvalid:
        tags = ()
    keys = draw(st.lists(st.text(alphabet="abcdefxyz0189_", min_size=1, max_size=12), max_size=4, unique=True))
    fields = {key: value for key in keys if (value := draw(TEXT)).strip() and "\x00" not in value}
    return contact(psid, page_id=draw(st.sampled_from([PAGE, OTHER_PAGE])), first_name=stored_name(draw(TEXT)),
                   last_name=stored_name(draw(TEXT)), tags=tags, fields=fields, campaign=draw(st.none() | TEXT) or None)


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.lists(contacts(), max_size=8, unique_by=lambda person: (person.page_id, person.psid)))
def test_export_then_import_gives_the_same_contacts(people: list[Contact]) -> None:
    plan = import_csv(exported(people), None)

    assert plan.errors == []
    imported = [(row.page_id, row.psid, row.first_name, row.last_name, row.tags, dict(row.fields)) for row in plan.rows]
    assert imported == [(person.page_id, person.psid, person.first_name, person.last_name, person.tags,
                         dict(person.fields)) for person in people]
    assert [row.row for row in plan.rows] == list(range(2, len(people) + 2))


def test_formula_looking_values_come_back_as_they_were() -> None:
    person = contact("6123", first_name="=Juan", last_name="+Pérez", tags=("-descuento", "@vip", "'=x"),
                     fields={"telefono": "+593 99 123 4567", "formula": "=HYPERLINK(\"http://x\")", "cita": "'=1"})

    data = exported([person])
    row = import_csv(data, None).rows[0]

    assert b"'=Juan" in data and b"'+P" in data and b"''=1" in data
    assert (row.first_name, row.last_name, row.tags) == ("=Juan", "+Pérez", ("-descuento", "@vip", "'=x"))
    assert dict(row.fields) == {"telefono": "+593 99 123 4567", "formula": "=HYPERLINK(\"http://x\")", "cita": "'=1"}


# --- files as spreadsheets save them ---------------------------------------------------------------------------


def test_excel_utf8_with_bom_and_semicolons() -> None:
    data = codecs.BOM_UTF8 + ("PSID;Nombre;Apellido;Etiquetas;Campo:Ciudad;Campo:Pedido\r\n"
                              "6123;Ana;Muñoz;VIP, Quito;Cuenca;\"2 pollos; 1 cola\"\r\n"
                              "6124;;;;;\r\n").encode()

    plan = import_csv(data, PAGE)

    assert (plan.delimiter, plan.encoding, plan.errors) == (";", "utf-8", [])
    assert plan.rows == [
        ImportRow(2, PAGE, "6123", "Ana", "Muñoz", ("VIP", "Quito"),
                  {"ciudad": "Cuenca", "pedido": "2 pollos; 1 cola"}),
        ImportRow(3, PAGE, "6124", None, None, (), {}),
    ]


def test_excel_cp1252_with_semicolons() -> None:
    """«CSV (delimitado por comas)» of Excel on Windows in Spanish: Windows-1252 and `;`."""
    data = ("psid;nombre;apellido;etiquetas;campo:direccion\r\n"
            "6123;José;Peña;Cliente frecuente;Av. 10 de Agosto Nº 5\r\n")

    plan = import_csv(data.encode("cp1252"), PAGE)

    assert plan.encoding == "cp1252" and plan.errors == []
    row = plan.rows[0]
    assert (row.first_name, row.last_name, row.fields["direccion"]) == ("José", "Peña", "Av. 10 de Agosto Nº 5")


def test_commas_with_quoted_cells_and_line_breaks() -> None:
    data = ('page_id,psid,nombre,etiquetas,campo:nota\n'
            f'{PAGE},6123,"Núñez, Ana","vip, nuevo","línea 1\nlínea 2, con ""comillas"""\n'
            f'{PAGE},6124,Luis,,\n').encode()

    plan = import_csv(data, None)

    assert plan.delimiter == "," and plan.errors == []
    assert plan.rows[0].first_name == "Núñez, Ana" and plan.rows[0].tags == ("vip", "nuevo")
    assert plan.rows[0].fields == {"nota": 'línea 1\nlínea 2, con "comillas"'}
    assert [row.row for row in plan.rows] == [2, 3]


def test_utf16_tab_separated_unicode_text() -> None:
    """Excel's «Texto Unicode»: UTF-16 with BOM, tabs."""
    data = "psid\tnombre\r\n6123\tÑusta 😀\r\n".encode("utf-16")

    plan = import_csv(data, PAGE)

    assert plan.delimiter == "\t" and plan.rows[0].first_name == "Ñusta 😀"


def test_headers_are_read_without_case_accents_or_underscores() -> None:
    data = "Page ID;PSID;NOMBRE;Apellido;Etiquetas;Primer contacto;Último mensaje;Campaña;Campo: Ciudad\n" \
           f"{PAGE};6123;Ana;Ruiz;vip;2026-01-01;;x;Loja\n"

    plan = import_csv(data.encode(), None)

    assert plan.errors == [] and plan.rows[0].fields == {"ciudad": "Loja"} and plan.rows[0].last_name == "Ruiz"


@pytest.mark.parametrize("header", ["campo：ciudad", "Campo﹕ Ciudad", "ＣＡＭＰＯ:ｃｉｕｄａｄ"])
def test_a_field_header_typed_with_full_width_characters_is_the_same_field(header: str) -> None:
    plan = import_csv(f"psid;{header}\n6123;Loja\n".encode(), PAGE)

    assert plan.errors == [] and plan.rows[0].fields == {"ciudad": "Loja"}


def test_rows_without_page_id_take_the_default_and_pages_are_checked() -> None:
    data = f"psid;page_id\n6123;\n6124;{OTHER_PAGE}\n6125;abc\n".encode()

    plan = import_csv(data, PAGE, pages={PAGE})

    assert [(row.page_id, row.psid) for row in plan.rows] == [(PAGE, "6123")]
    assert only_errors(plan) == [f"Fila 3: la página {OTHER_PAGE} no está configurada",
                                 "Fila 4: el page_id «abc» no es válido (el id de la página debe tener solo dígitos "
                                 "(hasta 64))"]
    assert only_errors(import_csv(b"psid\n6123\n", None)) == [
        "Fila 2: falta el page_id (la página de Facebook del contacto)"]


# --- errors by row ------------------------------------------------------------------------------------------------


def test_errors_name_the_row_as_the_spreadsheet_shows_it() -> None:
    data = ("psid;nombre;etiquetas;campo:nota\n"
            "6123;Ana;vip;\"una nota\nde dos líneas\"\n"  # row 2 spans two lines of the file
            ";Sin PSID;;\n"  # row 3
            "\n"  # row 4: empty
            "6,12346E+15;Luis;;\n"  # row 5: Excel turned the PSID into a number
            f"6126;Eva;{'x' * 41};{'y' * 501}\n"  # row 6: two errors
            "6123;Ana otra vez;;\n"  # row 7: the same person again
            "61/27;Mal;;\n")  # row 8

    plan = import_csv(data.encode(), PAGE)

    assert [row.psid for row in plan.rows] == ["6123"]
    assert [(error.row, error.field) for error in plan.errors] == [
        (3, "psid"), (5, "psid"), (6, "etiquetas"), (6, "campo:nota"), (7, "psid"), (8, "psid")]
    messages = only_errors(plan)
    assert messages[0] == "Fila 3: falta el PSID"
    assert messages[1].startswith("Fila 5: el PSID «6,12346E+15» fue convertido en número por la hoja de cálculo")
    assert messages[2] == "Fila 6: la etiqueta «xxxxxxxxxxxxxxxxxxxx…» tiene más de 40 caracteres"
    assert messages[3] == "Fila 6: el valor del campo nota tiene más de 500 caracteres"
    assert messages[4] == "Fila 7: el PSID 6123 ya aparece en la fila 2"
    assert messages[5].startswith("Fila 8: el PSID «61/27» no es válido")
    assert plan.error_rows == 5
    assert plan.errors[0].to_dict() == {"row": 3, "field": "psid", "message": "Fila 3: falta el PSID"}


def test_header_problems_are_row_1() -> None:
    data = "psid;ciudad;campo:Teléfono;campo:bad-key!;nombre;Nombre\n6123;Quito;0999;x;Ana;Ana\n".encode()

    plan = import_csv(data, PAGE)

    messages = only_errors(plan)
    assert all(message.startswith("Fila 1: ") for message in messages)
    assert "la columna «ciudad» no se reconoce" in messages[0] and "campo:ciudad" in messages[0]
    assert messages[1].startswith("Fila 1: la columna «campo:bad-key!»")
    assert messages[2] == "Fila 1: la columna «Nombre» está repetida (también es la columna 5)"
    assert plan.rows[0].fields == {"telefono": "0999"} and plan.rows[0].first_name == "Ana"


def test_too_many_tags_or_fields_in_a_row() -> None:
    tags = ", ".join(f"t{index}" for index in range(51))
    plan = import_csv(f"psid;etiquetas\n6123;{tags}\n".encode(), PAGE)
    assert only_errors(plan) == ["Fila 2: un contacto tiene como máximo 50 etiquetas"]

    header = ";".join(f"campo:c{index}" for index in range(51))
    plan = import_csv(f"psid;{header}\n6123;{';'.join('v' * 51)}\n".encode(), PAGE)
    assert only_errors(plan) == ["Fila 2: un contacto tiene como máximo 50 campos"]


def test_names_with_control_characters_are_refused() -> None:
    plan = import_csv(b'psid;nombre\n6123;"Ana\x07"\n', PAGE)

    assert only_errors(plan) == ["Fila 2: el nombre no puede contener caracteres de control"]


@pytest.mark.parametrize(("data", "message"), [
    (b"PK\x03\x04rest-of-a-zip", "libro de Excel"),
    (b"\xd0\xcf\x11\xe0old-xls", "libro de Excel"),
    (b"", "vacío"),
    (b"\r\n  \r\n", "vacío"),
    (b"nombre;apellido\nAna;Ruiz\n", "falta la columna «psid»"),
    (codecs.BOM_UTF8 + b"psid\n\xff\xfe\xfa\n", "UTF-8"),
    (b"psid;nombre\n\x81\x8d\n", "ni UTF-8 ni Windows-1252"),
    (b'psid;nombre\n6123;"' + b"x" * 140_000 + b"\n", "Fila 2: una celda no se puede leer"),
])
def test_a_file_that_cannot_be_read_is_refused_whole(data: bytes, message: str) -> None:
    with pytest.raises(CsvRefused) as refused:
        import_csv(data, PAGE)

    assert message in refused.value.message_es and refused.value.reason_code == "contacts_csv_invalid"


# --- limits ------------------------------------------------------------------------------------------------------


def test_the_limits() -> None:
    assert (MAX_IMPORT_BYTES, MAX_IMPORT_ROWS) == (5 * 1024 * 1024, 50_000)
    assert ImportLimits() == ImportLimits(MAX_IMPORT_BYTES, MAX_IMPORT_ROWS)
    rows = b"psid\n" + b"".join(b"61%d\n" % index for index in range(4))

    assert len(import_csv(rows, PAGE, limits=ImportLimits(rows=4)).rows) == 4
    with pytest.raises(CsvRefused, match="Fila 5: el archivo tiene más de 3 filas"):
        import_csv(rows + b"\n\n", PAGE, limits=ImportLimits(rows=3))
    with pytest.raises(CsvRefused) as too_large:
        import_csv(rows, PAGE, limits=ImportLimits(file_bytes=len(rows) - 1))
    assert too_large.value.reason_code == "file_too_large"
    assert len(import_csv(rows, PAGE, limits=ImportLimits(file_bytes=len(rows))).rows) == 4


def test_the_row_limit_counts_contacts_not_empty_lines() -> None:
    rows = b"psid;nombre\n" + b"\n;\n" * 10 + b"6123;\n6124;\n"

    assert len(import_csv(rows, PAGE, limits=ImportLimits(rows=2)).rows) == 2
    assert "50.000" in _refusal(b"psid\n" + b"1\n" * (MAX_IMPORT_ROWS + 1))


def _refusal(data: bytes) -> str:
    with pytest.raises(CsvRefused) as refused:
        import_csv(data, PAGE)
    return refused.value.message_es


# --- what the store has ---------------------------------------------------------------------------------------------


def test_merge_errors_see_the_tags_and_fields_the_contact_already_has() -> None:
    current = contact("6123", tags=tuple(f"t{index}" for index in range(49)),
                      fields={f"c{index}": "v" for index in range(50)})
    fits = ImportRow(2, PAGE, "6123", None, None, ("T1", "nueva"), {"c1": "w"})
    too_many = ImportRow(3, PAGE, "6123", None, None, ("a", "b"), {"otro": "x"})

    assert merge_errors(fits, current) == [] and merge_errors(too_many, None) == []
    assert [error.message for error in merge_errors(too_many, current)] == [
        "Fila 3: el contacto ya tiene 49 etiquetas; con las de esta fila serían 51 y el máximo es 50",
        "Fila 3: el contacto ya tiene 50 campos; con los de esta fila serían 51 y el máximo es 50"]


# --- any bytes ----------------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(st.binary(max_size=400),
                 st.lists(st.one_of(st.text(max_size=30), st.sampled_from([";", ",", "\n", '"', "psid", "campo:",
                                                                            "\x00", "\ufeff", "'=", "campo：",
                                                                            "campo﹕", "ＣＡＭＰＯ:", "\n1;"])),
                          max_size=40).map(lambda parts: ("psid;" + "".join(parts)).encode("utf-8", "surrogatepass"))))
def test_any_bytes_are_a_plan_or_a_spanish_refusal(data: bytes) -> None:
    try:
        plan = import_csv(data, PAGE)
    except CsvRefused as refused:
        assert refused.message_es
        return
    for error in plan.errors:
        assert error.message.startswith(f"Fila {error.row}: ")
    for row in plan.rows:
        assert row.psid and row.page_id
