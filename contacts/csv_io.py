"""Contacts as CSV, the way a spreadsheet opens and saves them: export (UTF-8 with BOM, `;`, CRLF, a Spanish
header) and import (BOM or not, `;`, `,` or tab, UTF-8 or Excel's cp1252, errors by row in Spanish).

Pure: bytes in, value objects out; the console's routes (console/contacts_csv.py) read the store and write to it.

Formula injection (OWASP "CSV Injection"): a cell whose text starts with `=`, `+`, `-`, `@`, a tab or a carriage
return (or their full-width forms) would be run by a spreadsheet as a formula; the export writes it with a leading
`'`. The import removes exactly that `'` again, so an export imports back to the same text (`escape_cell` and
`unescape_cell` are inverses: a text that already starts with `'`s before such a character gets one more).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from contacts.model import (
    MAX_FIELDS,
    MAX_TAGS,
    Contact,
    ContactInvalid,
    check_field_key,
    check_field_value,
    check_fields,
    check_name,
    check_page_id,
    check_psid,
    check_tags,
    fold,
    tag_key,
)
from core.errors import DomainError

MAX_IMPORT_BYTES = 5 * 1024 * 1024  # the import's file limit; the app's request guard reads it from here
MAX_IMPORT_ROWS = 50_000
MAX_REPORTED_ERRORS = 1_000  # an answer lists at most this many; `errors_total` counts them all

DELIMITER = ";"  # what Excel writes in Spanish locales (the decimal comma takes `,`)
FIELD_PREFIX = "campo:"
HEADER = ("page_id", "psid", "nombre", "apellido", "etiquetas", "primer_contacto", "ultimo_mensaje", "campana")
READ_ONLY_COLUMNS = frozenset({"primer_contacto", "ultimo_mensaje", "campana"})  # exported, ignored on import
TAG_SEPARATOR = ", "

# OWASP's list: = + - @ tab CR, and their full-width forms (U+FF1D, U+FF0B, U+FF0D, U+FF20).
FORMULA_STARTS = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
ESCAPE = "'"

SCIENTIFIC_RE = re.compile(r"\d+([.,]\d+)?[eE]\+?\d+")  # 6,12346E+15: a spreadsheet turned the PSID into a number
CHUNK_CHARS = 64 * 1024


class CsvRefused(DomainError):
    """The file as a whole cannot be read (too large, not text, no PSID column, too many rows): nothing is imported.
    `message_es` is shown; `reason_code` is `contacts_csv_invalid` or `file_too_large`."""

    reason_code = "contacts_csv_invalid"

    def __init__(self, message_es: str, reason_code: str = "contacts_csv_invalid") -> None:
        super().__init__(message_es)
        self.message_es = message_es
        self.reason_code = reason_code


@dataclass(frozen=True)
class ImportLimits:
    file_bytes: int = MAX_IMPORT_BYTES
    rows: int = MAX_IMPORT_ROWS


@dataclass(frozen=True)
class ImportRow:
    """One valid line of the file: `row` as the spreadsheet numbers it (the header is row 1). A name that is None
    (an empty cell) keeps the stored one; tags and fields are added to the contact's."""

    row: int
    page_id: str
    psid: str
    first_name: str | None
    last_name: str | None
    tags: tuple[str, ...]
    fields: Mapping[str, str]


@dataclass(frozen=True)
class RowError:
    row: int
    field: str | None  # the column (`psid`, `etiquetas`, `campo:ciudad`), None for the whole row
    message: str  # Spanish, starting with "Fila <row>: "

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.message}


@dataclass(frozen=True)
class ImportPlan:
    rows: list[ImportRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    delimiter: str = DELIMITER
    encoding: str = "utf-8"

    @property
    def error_rows(self) -> int:
        return len({error.row for error in self.errors})


# --- formulas ------------------------------------------------------------------------------------------------------


def escape_cell(text: str) -> str:
    """`'` before a text a spreadsheet would run as a formula (also before `'…'=…`, so the import can undo it)."""
    return ESCAPE + text if text.lstrip(ESCAPE)[:1] in FORMULA_STARTS else text


def unescape_cell(text: str) -> str:
    """The inverse of `escape_cell` on what it writes; any other text is returned as it is."""
    rest = text.lstrip(ESCAPE)
    return text[1:] if text.startswith(ESCAPE) and rest and rest[0] in FORMULA_STARTS else text


# --- export --------------------------------------------------------------------------------------------------------


def header_for(field_keys: Sequence[str]) -> list[str]:
    return [*HEADER, *(FIELD_PREFIX + key for key in field_keys)]


def _time(at: datetime | None) -> str:
    return at.astimezone(timezone.utc).isoformat(timespec="seconds") if at is not None else ""


def join_tags(tags: Iterable[str]) -> str:
    """Tags in one cell, separated by ", "; a tag holding a comma or starting with a quote is quoted the CSV way
    (`"Pollo, papas", VIP`), so the import splits it back as it was."""
    return TAG_SEPARATOR.join(f'"{tag.replace(chr(34), chr(34) * 2)}"' if "," in tag or tag.startswith('"') else tag
                              for tag in tags)


def split_tags(cell: str) -> list[str]:
    """The tags of a cell as people write them (`vip, nuevo`) or `join_tags` wrote them; tags have no line breaks."""
    if not cell.strip():
        return []
    parsed = next(csv.reader([cell.replace("\r", " ").replace("\n", " ")], delimiter=",", skipinitialspace=True))
    return [tag for tag in parsed if tag.strip()]


def contact_cells(contact: Contact, field_keys: Sequence[str]) -> list[str]:
    cells = [contact.page_id, contact.psid, contact.first_name or "", contact.last_name or "", join_tags(contact.tags),
             _time(contact.first_seen_at), _time(contact.last_user_message_at), contact.campaign or "",
             *(contact.fields.get(key, "") for key in field_keys)]
    return [escape_cell(cell) for cell in cells]


def field_keys_of(contacts: Iterable[Contact]) -> list[str]:
    """The free fields any of the contacts has, sorted: the export's `campo:<key>` columns."""
    keys: set[str] = set()
    for contact in contacts:
        keys.update(contact.fields)
    return sorted(keys)


def export_csv(contacts: Iterable[Contact], field_keys: Sequence[str]) -> Iterator[bytes]:
    """The file in pieces of about 64 KB (the first one starts with the BOM and the header): a download streams
    it without holding every contact."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=DELIMITER, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header_for(field_keys))
    first = True
    for contact in contacts:
        writer.writerow(contact_cells(contact, field_keys))
        if buffer.tell() >= CHUNK_CHARS:
            yield _encoded(buffer, first)
            first = False
    yield _encoded(buffer, first)


def _encoded(buffer: io.StringIO, first: bool) -> bytes:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return (codecs.BOM_UTF8 if first else b"") + text.encode("utf-8")


# --- import --------------------------------------------------------------------------------------------------------


def column_name(text: str) -> str:
    """A header name compared as people write it: no accents, any case, spaces as `_` ("Último mensaje" →
    "ultimo_mensaje")."""
    return fold(text).replace(" ", "_")


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding): UTF-8 with or without BOM, UTF-16 with BOM (Excel's «Texto Unicode»), else cp1252 (what
    Excel writes as «CSV (delimitado por comas)» on Windows in Spanish)."""
    if data.startswith(b"PK\x03\x04") or data.startswith(b"\xd0\xcf\x11\xe0"):
        raise CsvRefused("El archivo es un libro de Excel, no un CSV: en Excel use «Guardar como» y elija "
                         "«CSV UTF-8 (delimitado por comas)».")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise CsvRefused("El archivo dice ser UTF-16 pero no se puede leer así; guárdelo como "
                             "«CSV UTF-8».") from exc
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        if data.startswith(codecs.BOM_UTF8):
            raise CsvRefused("El archivo empieza como UTF-8 pero tiene bytes que no lo son; guárdelo otra vez como "
                             "«CSV UTF-8 (delimitado por comas)».") from None
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError as exc:
        raise CsvRefused("No se pudo leer el archivo como texto (ni UTF-8 ni Windows-1252); guárdelo como «CSV UTF-8 "
                         "(delimitado por comas)».") from exc


def sniff_delimiter(text: str) -> str:
    """The separator the header uses: the most frequent of `;`, `,` and tab on the first line (`,` when it has one
    column)."""
    first_line = text.split("\n", 1)[0]
    counts = {delimiter: first_line.count(delimiter) for delimiter in (";", ",", "\t")}
    best = max(counts, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


@dataclass(frozen=True)
class _Columns:
    page_id: int | None
    psid: int
    first_name: int | None
    last_name: int | None
    tags: int | None
    fields: tuple[tuple[int, str, str], ...]  # (index, column as written, key)


def _columns(header: list[str], errors: list[RowError]) -> _Columns:
    known: dict[str, int] = {}
    fields: list[tuple[int, str, str]] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(header):
        name = column_name(unescape_cell(raw))
        if not name:
            continue
        if name.startswith(FIELD_PREFIX):
            column = raw.strip()
            try:
                # split the folded name: "campo：ciudad" (a full-width colon) folds to "campo:" as well
                key = check_field_key(column_name(fold(unescape_cell(raw)).split(":", 1)[1]))  # "Campo: Ciudad"
            except ContactInvalid as exc:
                errors.append(_error(1, column, f"la columna «{column}»: {_sentence(exc)}"))
                continue
            name = FIELD_PREFIX + key
            if name not in seen:
                fields.append((index, column, key))
        elif name in HEADER:
            known.setdefault(name, index)
        else:
            errors.append(_error(1, raw.strip(), f"la columna «{raw.strip()}» no se reconoce; las columnas son "
                                                 f"{', '.join(HEADER)} y campo:<nombre> para los campos libres "
                                                 f"(por ejemplo «campo:{name[:40]}»)"))
            continue
        if name in seen:
            errors.append(_error(1, raw.strip(), f"la columna «{raw.strip()}» está repetida (también es la "
                                                 f"columna {seen[name] + 1})"))
        seen.setdefault(name, index)
    if "psid" not in known:
        raise CsvRefused("Fila 1: falta la columna «psid» (la primera fila debe tener los nombres de las columnas, "
                         "como en el archivo exportado).")
    return _Columns(known.get("page_id"), known["psid"], known.get("nombre"), known.get("apellido"),
                    known.get("etiquetas"), tuple(fields))


def _error(row: int, column: str | None, text: str) -> RowError:
    return RowError(row, column, f"Fila {row}: {text}")


def _sentence(exc: ContactInvalid) -> str:
    """The model's refusal inside "Fila 7: …": lower-case start, no final period."""
    text = exc.message_es.rstrip(".")
    return text[:1].lower() + text[1:]


def _cell(cells: list[str], index: int | None) -> str:
    return unescape_cell(cells[index]) if index is not None and index < len(cells) else ""


def _psid(text: str) -> str | None:
    """None when the PSID is acceptable, else why not."""
    if not text:
        return "falta el PSID"
    if SCIENTIFIC_RE.fullmatch(text):
        return (f"el PSID «{text}» fue convertido en número por la hoja de cálculo y perdió dígitos; dé a la columna "
                "psid el formato Texto y copie los PSID del archivo exportado")
    try:
        check_psid(text)
    except ContactInvalid as exc:
        return f"el PSID «{text[:80]}» no es válido ({_sentence(exc)})"
    return None


def _page_id(text: str, pages: Collection[str] | None) -> str | None:
    if not text:
        return "falta el page_id (la página de Facebook del contacto)"
    try:
        check_page_id(text)
    except ContactInvalid as exc:
        return f"el page_id «{text[:80]}» no es válido ({_sentence(exc)})"
    if pages is not None and text not in pages:
        return f"la página {text} no está configurada"
    return None


def _row(number: int, cells: list[str], columns: _Columns, default_page_id: str | None,
         pages: Collection[str] | None) -> tuple[ImportRow | None, list[RowError]]:
    errors: list[RowError] = []

    def refuse(column: str | None, why: str | None) -> None:
        if why is not None:
            errors.append(_error(number, column, why))

    page_id = _cell(cells, columns.page_id).strip() or (default_page_id or "")
    refuse("page_id", _page_id(page_id, pages))
    psid = _cell(cells, columns.psid).strip()
    refuse("psid", _psid(psid))
    names: dict[str, str | None] = {}
    for name, column, index in (("first_name", "nombre", columns.first_name),
                                ("last_name", "apellido", columns.last_name)):
        try:
            names[name] = check_name(_cell(cells, index), name)
        except ContactInvalid as exc:
            refuse(column, _sentence(exc))
    tags: tuple[str, ...] = ()
    try:
        tags = check_tags(split_tags(_cell(cells, columns.tags)))
    except ContactInvalid as exc:
        refuse("etiquetas", _sentence(exc))
    changes: dict[str, str | None] = {}
    for index, column, key in columns.fields:
        try:
            changes[key] = check_field_value(key, _cell(cells, index))
        except ContactInvalid as exc:
            refuse(column, _sentence(exc))
    fields = {key: value for key, value in changes.items() if value is not None}  # an empty cell changes nothing
    try:
        check_fields(fields)
    except ContactInvalid as exc:
        refuse(None, _sentence(exc))
    if errors:
        return None, errors
    return ImportRow(number, page_id, psid, names.get("first_name"), names.get("last_name"), tags, fields), []


def _thousands(count: int) -> str:
    return f"{count:,}".replace(",", ".")


def import_csv(data: bytes, default_page_id: str | None, *, pages: Collection[str] | None = None,
               limits: ImportLimits = ImportLimits()) -> ImportPlan:
    """Read a file of contacts: the rows to import and every error by row (the header is row 1, a row as the
    spreadsheet shows it, whatever line breaks its cells hold). `pages`: the configured pages (None: any)."""
    if len(data) > limits.file_bytes:
        raise CsvRefused(f"El archivo supera {limits.file_bytes // (1024 * 1024) or 1} MB; divídalo en varios.",
                         "file_too_large")
    text, encoding = decode(data)
    if not text.strip():
        raise CsvRefused("El archivo está vacío.")
    delimiter = sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    errors: list[RowError] = []
    rows: list[ImportRow] = []
    first_seen: dict[tuple[str, str], int] = {}
    number = 0  # the last row read; a CSV error is in the next one
    try:
        columns = _columns(next(reader), errors)
        number = 1
        data_rows = 0
        for number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue  # an empty line (Excel writes `;;;` for one): nothing to import, still counted
            data_rows += 1
            if data_rows > limits.rows:
                raise CsvRefused(f"Fila {number}: el archivo tiene más de {_thousands(limits.rows)} filas de "
                                 "contactos; divídalo en varios.")
            row, row_errors = _row(number, cells, columns, default_page_id, pages)
            errors.extend(row_errors)
            if row is None:
                continue
            key = (row.page_id, row.psid)
            if key in first_seen:
                errors.append(_error(number, "psid", f"el PSID {row.psid} ya aparece en la fila {first_seen[key]}"))
                continue
            first_seen[key] = number
            rows.append(row)
    except csv.Error as exc:
        raise CsvRefused(f"Fila {number + 1}: una celda no se puede leer (¿comillas sin cerrar, o una celda de más de "
                         f"{_thousands(csv.field_size_limit())} caracteres?).") from exc
    return ImportPlan(rows, errors, delimiter, encoding)


def merge_errors(row: ImportRow, current: Contact | None) -> list[RowError]:
    """What the store would refuse when the row is added to the contact it has (more than 50 tags or fields in
    all), found before anything is written so a file is imported whole or not at all."""
    if current is None:
        return []
    errors = []
    tags = {tag_key(tag) for tag in current.tags} | {tag_key(tag) for tag in row.tags}
    if len(tags) > MAX_TAGS:
        errors.append(_error(row.row, "etiquetas", f"el contacto ya tiene {len(current.tags)} etiquetas; con las de "
                                                   f"esta fila serían {len(tags)} y el máximo es {MAX_TAGS}"))
    fields = set(current.fields) | set(row.fields)
    if len(fields) > MAX_FIELDS:
        errors.append(_error(row.row, None, f"el contacto ya tiene {len(current.fields)} campos; con los de esta fila "
                                            f"serían {len(fields)} y el máximo es {MAX_FIELDS}"))
    return errors
