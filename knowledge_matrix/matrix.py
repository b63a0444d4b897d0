"""Reading the knowledge matrix as editors export it from Excel or Google Sheets.

Excel writes CSV with a BOM, `;` as delimiter in Spanish locales, CRLF line ends and, on
Windows, cp1252 instead of UTF-8; "Unicode text" is UTF-16 with tabs. Headers come in any
case, with or without accents, in English or Spanish (`Pregunta(s)`, `Respuesta`,
`Categoría`). All of that is read here into a `Sheet` (cells by canonical column, with the
row number the editor sees), and a `Sheet` becomes frozen `Entry` objects.

Reading is thin I/O (`read_sheet`); everything after the bytes are in memory is pure.

Files come from editors and may be hostile or broken: every read is bounded by `SheetLimits`
(file size, data rows, columns, declared XLSX dimensions, uncompressed XLSX size) and refused
with a Spanish message before the work, and anything a parser raises on a malformed file
becomes a `MatrixReadError`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import warnings
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowledge_matrix.errors import MatrixReadError, MatrixTooLargeError
from knowledge_matrix.text import fold

REQUIRED_COLUMNS: tuple[str, ...] = ("id", "questions", "answer")
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "category",
    "quick_replies",
    "buttons",
    "link",
    "image",
    "enabled",
    "language",
    "tags",
    "keywords",
)
KNOWN_COLUMNS: tuple[str, ...] = REQUIRED_COLUMNS + OPTIONAL_COLUMNS

# Folded header (accents stripped, lowercase, `_` for spaces and dashes) → canonical column.
COLUMN_ALIASES: dict[str, str] = {
    **{alias: "id" for alias in ("id", "identificador", "clave", "codigo", "cod", "key", "slug")},
    **{
        alias: "questions"
        for alias in (
            "questions",
            "question",
            "pregunta",
            "preguntas",
            "variantes",
            "formas_de_preguntar",
            "consulta",
            "consultas",
        )
    },
    **{alias: "answer" for alias in ("answer", "answers", "respuesta", "respuestas", "contestacion", "texto")},
    **{alias: "category" for alias in ("category", "categoria", "categorias", "tema", "seccion", "grupo")},
    **{
        alias: "quick_replies"
        for alias in (
            "quick_replies",
            "quick_reply",
            "quickreplies",
            "respuestas_rapidas",
            "respuesta_rapida",
            "opciones",
            "sugerencias",
        )
    },
    **{alias: "buttons" for alias in ("buttons", "button", "botones", "boton")},
    **{alias: "link" for alias in ("link", "links", "enlace", "enlaces", "url", "vinculo")},
    **{alias: "image" for alias in ("image", "imagen", "image_url", "url_imagen", "foto")},
    **{alias: "enabled" for alias in ("enabled", "activo", "activa", "habilitado", "habilitada", "publicar")},
    **{alias: "language" for alias in ("language", "lang", "idioma", "lengua")},
    **{alias: "tags" for alias in ("tags", "tag", "etiquetas", "etiqueta")},
    **{
        alias: "keywords"
        for alias in (
            "keywords",
            "keyword",
            "palabras_clave",
            "palabra_clave",
            "sinonimos",
            "sinonimo",
            "terminos_de_busqueda",
        )
    },
}

_ITEM_SEPARATOR = re.compile(r"\s*(?:\r\n|\r|\n|\|)\s*")
_TAG_SEPARATOR = re.compile(r"\s*[,;|\n]\s*")
_TRUE = frozenset({"1", "si", "s", "yes", "y", "true", "verdadero", "x", "activo", "activa", "habilitado", "on"})
_FALSE = frozenset({"0", "no", "n", "false", "falso", "inactivo", "inactiva", "deshabilitado", "off"})
_DELIMITERS = (",", ";", "\t")
_CSV_SUFFIXES = frozenset({".csv", ".txt", ".tsv"})
_XLSX_SUFFIXES = frozenset({".xlsx", ".xlsm"})
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # encrypted OOXML and old .xls are OLE compound files


@dataclass(frozen=True)
class SheetLimits:
    """What a matrix file may hold; anything bigger is refused before it is parsed or embedded.

    50,000 rows validate with the FAISS near-duplicate check within ~1 GB (bench/spreadsheets.py);
    50 columns leave room for every known column and the editor's own notes.
    """

    file_bytes: int = 5 * 1024 * 1024
    rows: int = 50_000  # data rows, the header row not counted
    columns: int = 50
    blank_tail: int = 1_000  # blank rows tolerated after the last allowed row (formatting, not content)
    text_chars: int = 20_000_000  # all cells together (an .xlsx can repeat one long shared string everywhere)
    questions: int = 200_000  # ways of asking, all entries together (each one is embedded)
    xlsx_uncompressed_bytes: int = 100 * 1024 * 1024
    xlsx_members: int = 1_000


LIMITS = SheetLimits()


def _thousands(value: int) -> str:
    return f"{value:,}".replace(",", ".")


def _megabytes(value: int) -> str:
    return f"{value / (1024 * 1024):.1f}".replace(".", ",").replace(",0", "")


def column_key(header: str) -> str:
    """A header as `COLUMN_ALIASES` knows it: `Pregunta(s)` → `preguntas`, `Palabras clave` → `palabras_clave`."""
    key = fold(header.replace("\ufeff", "")).strip()
    key = key.replace("(s)", "s").replace("(es)", "es")
    return re.sub(r"[^a-z0-9]+", "_", key).strip("_")


def canonical_column(header: str) -> str | None:
    """`Pregunta(s)` → `questions`, `Categoría` → `category`; None for a column we do not know."""
    return COLUMN_ALIASES.get(column_key(header))


@dataclass(frozen=True)
class SheetRow:
    """One data row: the row number the editor sees in the spreadsheet and its cells by column."""

    number: int
    cells: Mapping[str, str]

    def get(self, column: str) -> str:
        return self.cells.get(column, "")

    @property
    def is_empty(self) -> bool:
        return not any(value.strip() for value in self.cells.values())


@dataclass(frozen=True)
class Sheet:
    """A table as read: canonical columns present, headers we did not recognize, and the rows."""

    columns: tuple[str, ...]
    unknown_headers: tuple[str, ...]
    rows: tuple[SheetRow, ...]
    source_sha256: str = ""
    # A header for a column an earlier header already gave: (the earlier header, this one).
    duplicate_headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class QuickReply:
    """A Messenger quick reply: `title` is shown, `payload` comes back when tapped."""

    title: str
    payload: str

    def to_dict(self) -> dict[str, str]:
        return {"title": self.title, "payload": self.payload}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QuickReply:
        return cls(title=str(data["title"]), payload=str(data.get("payload") or data["title"]))


@dataclass(frozen=True)
class Button:
    """A button: a web link when `url` is set, otherwise a postback carrying `payload`."""

    title: str
    url: str = ""
    payload: str = ""

    @property
    def is_link(self) -> bool:
        return bool(self.url)

    def to_dict(self) -> dict[str, str]:
        if self.is_link:
            return {"type": "web_url", "title": self.title, "url": self.url}
        return {"type": "postback", "title": self.title, "payload": self.payload}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Button:
        return cls(title=str(data["title"]), url=str(data.get("url", "")), payload=str(data.get("payload", "")))


@dataclass(frozen=True)
class Entry:
    """One answer of the matrix and the ways of asking for it."""

    id: str
    questions: tuple[str, ...]
    answer: str
    category: str = ""
    quick_replies: tuple[QuickReply, ...] = ()
    buttons: tuple[Button, ...] = ()
    link: str = ""
    image: str = ""
    enabled: bool = True
    language: str = "es"
    tags: tuple[str, ...] = ()
    row: int = 0
    # «Palabras clave»: synonyms and words customers use for this entry that its questions do not have.
    keywords: tuple[str, ...] = ()
    extra: tuple[tuple[str, str], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "questions": list(self.questions),
            "answer": self.answer,
            "category": self.category,
            "quick_replies": [reply.to_dict() for reply in self.quick_replies],
            "buttons": [button.to_dict() for button in self.buttons],
            "link": self.link,
            "image": self.image,
            "enabled": self.enabled,
            "language": self.language,
            "tags": list(self.tags),
            "row": self.row,
            "extra": dict(self.extra),
            "keywords": list(self.keywords),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Entry:
        return cls(
            id=str(data["id"]),
            questions=tuple(str(q) for q in data.get("questions", ())),
            answer=str(data.get("answer", "")),
            category=str(data.get("category", "")),
            quick_replies=tuple(QuickReply.from_dict(r) for r in data.get("quick_replies", ())),
            buttons=tuple(Button.from_dict(b) for b in data.get("buttons", ())),
            link=str(data.get("link", "")),
            image=str(data.get("image", "")),
            enabled=bool(data.get("enabled", True)),
            language=str(data.get("language", "es")),
            tags=tuple(str(t) for t in data.get("tags", ())),
            row=int(data.get("row", 0)),
            extra=tuple(sorted((str(k), str(v)) for k, v in dict(data.get("extra", {})).items())),
            keywords=_keywords_of(data.get("keywords")),
        )


def _keywords_of(value: Any) -> tuple[str, ...]:
    """An entry's stored keywords: a list of strings; absent or null (an entry from before the column) is none."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"keywords must be a list, not {type(value).__name__}")
    return tuple(str(k) for k in value)


@dataclass(frozen=True)
class Matrix:
    """The entries of one matrix file and the hash that identifies its content."""

    entries: tuple[Entry, ...]
    sha256: str
    source_sha256: str = ""

    @classmethod
    def of(cls, entries: Iterable[Entry], source_sha256: str = "") -> Matrix:
        frozen = tuple(entries)
        return cls(entries=frozen, sha256=content_sha256(frozen), source_sha256=source_sha256)

    @property
    def enabled_entries(self) -> tuple[Entry, ...]:
        return tuple(entry for entry in self.entries if entry.enabled)


def content_sha256(entries: Sequence[Entry]) -> str:
    """Hash of what the bot would serve: the same content saved from Excel or Sheets hashes the same.

    An entry without keywords hashes as it did before the column existed."""
    canonical = [
        {k: v for k, v in entry.to_dict().items() if k != "row" and not (k == "keywords" and not v)}
        for entry in entries
    ]
    payload = json.dumps(canonical, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# --- cells ----------------------------------------------------------------------------------------


def split_items(cell: str) -> tuple[str, ...]:
    """Items of a multi-valued cell: one per line or separated by `|`; blanks dropped."""
    return tuple(item for item in (part.strip() for part in _ITEM_SEPARATOR.split(cell)) if item)


def split_questions(cell: str) -> tuple[str, ...]:
    """The ways of asking, in order, without repeats."""
    seen: set[str] = set()
    questions: list[str] = []
    for item in split_items(cell):
        if item not in seen:
            seen.add(item)
            questions.append(item)
    return tuple(questions)


def parse_enabled(cell: str) -> bool | None:
    """`sí`, `x`, `TRUE`, `1` … → True; `no`, `FALSE`, `0` … → False; blank → True; else None."""
    value = fold(cell).strip()
    if not value:
        return True
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def _split_pair(item: str) -> tuple[str, str]:
    """`Título => valor` (also `->`): the title and the value; the value is empty when absent."""
    for arrow in ("=>", "->"):
        if arrow in item:
            title, _, value = item.partition(arrow)
            return title.strip(), value.strip()
    return item.strip(), ""


def parse_quick_replies(cell: str) -> tuple[QuickReply, ...]:
    """`Precios | Hablar con soporte => /request_human`: payload defaults to the title."""
    replies = []
    for item in split_items(cell):
        title, payload = _split_pair(item)
        replies.append(QuickReply(title=title, payload=payload or title))
    return tuple(replies)


def parse_buttons(cell: str) -> tuple[Button, ...]:
    """`Ver planes => https://…` is a link button; `Hablar con alguien => /request_human` a postback."""
    buttons = []
    for item in split_items(cell):
        title, value = _split_pair(item)
        if value.lower().startswith(("http://", "https://")):
            buttons.append(Button(title=title, url=value))
        else:
            buttons.append(Button(title=title, payload=value or title))
    return tuple(buttons)


def parse_tags(cell: str) -> tuple[str, ...]:
    return tuple(tag for tag in (part.strip() for part in _TAG_SEPARATOR.split(cell)) if tag)


def parse_keywords(cell: str) -> tuple[str, ...]:
    """`parqueo, parking; estacionamiento`: separated like tags (`,` `;` `|` or one per line), blanks and exact
    repeats dropped, in order."""
    return tuple(dict.fromkeys(" ".join(part.split()) for part in parse_tags(cell)))


def entry_from_row(row: SheetRow, unknown: Mapping[str, str] | None = None) -> Entry:
    """The entry a row describes; call after validation (an unreadable `enabled` counts as enabled)."""
    enabled = parse_enabled(row.get("enabled"))
    return Entry(
        id=row.get("id").strip(),
        questions=split_questions(row.get("questions")),
        answer=row.get("answer").strip(),
        category=row.get("category").strip(),
        quick_replies=parse_quick_replies(row.get("quick_replies")),
        buttons=parse_buttons(row.get("buttons")),
        link=row.get("link").strip(),
        image=row.get("image").strip(),
        enabled=True if enabled is None else enabled,
        language=(row.get("language").strip().lower() or "es"),
        tags=parse_tags(row.get("tags")),
        keywords=parse_keywords(row.get("keywords")),
        row=row.number,
        extra=tuple(sorted((unknown or {}).items())),
    )


def entries_from_sheet(sheet: Sheet) -> tuple[Entry, ...]:
    """Entries of every non-empty row that has an id, a question and an answer."""
    entries = []
    for row in sheet.rows:
        if row.is_empty:
            continue
        entry = entry_from_row(row, {k: v for k, v in row.cells.items() if k.startswith("extra:") and v})
        if entry.id and entry.questions and entry.answer:
            entries.append(entry)
    return tuple(entries)


# --- tables ---------------------------------------------------------------------------------------


def _column_letter(index: int) -> str:
    """1 → A, 27 → AA (as the editor sees the column)."""
    letters = ""
    while index > 0:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def bounded_table(rows: Iterable[Sequence[Any]], limits: SheetLimits = LIMITS) -> list[list[Any]]:
    """The rows of a table, read lazily and refused as soon as they go past `limits`.

    Stops early: the first data row over `limits.rows`, the first cell with content past
    `limits.columns`, or more than `limits.blank_tail` rows (even blank) after the allowed ones.
    Cells past the column limit that are empty (trailing separators, formatting) are dropped.
    """
    table: list[list[Any]] = []
    header_seen = False
    data_rows = 0
    characters = 0
    max_total = limits.rows + 1 + limits.blank_tail
    for number, row in enumerate(rows, start=1):
        if number > max_total:
            raise MatrixTooLargeError(
                f"la hoja tiene más de {_thousands(max_total)} filas (contando las vacías); el máximo es "
                f"{_thousands(limits.rows)} filas de datos. Borre las filas sobrantes (también las vacías con "
                "formato) y vuelva a guardar el archivo."
            )
        cells = list(row[: limits.columns])
        for offset, value in enumerate(row[limits.columns :], start=limits.columns + 1):
            if _cell_text(value):
                raise MatrixTooLargeError(
                    f"la fila {number} tiene datos en la columna {_column_letter(offset)} (columna {offset}); "
                    f"el máximo es {limits.columns} columnas. Quite las columnas que no use."
                )
        characters += sum(len(value) if isinstance(value, str) else 16 for value in cells if value is not None)
        if characters > limits.text_chars:
            raise MatrixTooLargeError(
                f"la hoja tiene más de {_thousands(limits.text_chars)} caracteres de texto; el máximo es "
                f"{_thousands(limits.text_chars)}. Acorte las respuestas o divida la matriz."
            )
        blank = not any(_cell_text(value) for value in cells)
        if not blank:
            if header_seen:
                data_rows += 1
                if data_rows > limits.rows:
                    raise MatrixTooLargeError(
                        f"la hoja tiene más de {_thousands(limits.rows)} filas de datos; el máximo es "
                        f"{_thousands(limits.rows)}. Divida la matriz o quite filas."
                    )
            header_seen = True
        table.append(cells)
    return table


def sheet_from_table(table: Sequence[Sequence[Any]], source_sha256: str = "") -> Sheet:
    """A header row and data rows (row 1 is the header, as the editor sees it) → `Sheet`.

    Unknown columns are kept under `extra:<header>` so nothing an editor typed is lost.
    """
    rows = list(table)
    while rows and not any(_cell_text(cell) for cell in rows[0]):
        rows.pop(0)  # leading blank lines some exports add
    if not rows:
        raise MatrixReadError("el archivo está vacío: no tiene una fila de encabezados")
    header_offset = len(table) - len(rows)
    headers = [_cell_text(cell) for cell in rows[0]]
    keys: list[str | None] = []
    columns: list[str] = []
    unknown: list[str] = []
    duplicates: list[tuple[str, str]] = []
    kept: dict[str, str] = {}
    for header in headers:
        canonical = canonical_column(header)
        if canonical is None:
            if header:
                unknown.append(header)
                keys.append(f"extra:{header}")
            else:
                keys.append(None)
        elif canonical in kept:
            duplicates.append((kept[canonical], header))
            keys.append(None)
        else:
            columns.append(canonical)
            kept[canonical] = header
            keys.append(canonical)
    sheet_rows = []
    for offset, values in enumerate(rows[1:], start=2 + header_offset):
        cells: dict[str, str] = {}
        for key, value in zip(keys, values, strict=False):
            if key is not None:
                cells[key] = _cell_text(value)
        sheet_rows.append(SheetRow(number=offset, cells=cells))
    while sheet_rows and sheet_rows[-1].is_empty:
        sheet_rows.pop()  # trailing blank rows are formatting, not content
    return Sheet(
        columns=tuple(columns),
        unknown_headers=tuple(unknown),
        rows=tuple(sheet_rows),
        source_sha256=source_sha256,
        duplicate_headers=tuple(duplicates),
    )


def _cell_text(value: Any) -> str:
    """Cell value as text: `1.0` → `1` (Excel numbers), booleans as `TRUE`/`FALSE`, None → ``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).replace("\r\n", "\n").replace("\r", "\n").strip()


def decode_csv_bytes(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM (Excel "Unicode text"), else cp1252 (Excel on Windows)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:  # a truncated or damaged "Unicode text" export
            raise MatrixReadError(
                "el archivo dice ser texto Unicode (UTF-16) pero está dañado o cortado: expórtelo de nuevo, "
                "mejor como «CSV UTF-8»."
            ) from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def sniff_delimiter(text: str) -> str:
    """The delimiter of the header line: the one among `,` `;` tab that occurs most outside quotes."""
    header = _first_record_line(text)
    counts = {delimiter: _count_outside_quotes(header, delimiter) for delimiter in _DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _first_record_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip(" ,;\t"):
            return line
    return ""


def _count_outside_quotes(line: str, delimiter: str) -> int:
    count, quoted = 0, False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif char == delimiter and not quoted:
            count += 1
    return count


def parse_csv_bytes(data: bytes, limits: SheetLimits = LIMITS) -> Sheet:
    """A CSV export as bytes → `Sheet`. Pure: no file access."""
    _check_size(len(data), limits)
    text = decode_csv_bytes(data)
    if "\x00" in text:
        raise MatrixReadError(
            "el archivo tiene caracteres nulos: no parece un CSV de texto. Expórtelo de nuevo como CSV (UTF-8)."
        )
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(text))
    try:
        table = bounded_table(reader, limits)
    except csv.Error as exc:
        raise MatrixReadError(f"el CSV no se puede leer: {exc}") from exc
    return sheet_from_table(table, hashlib.sha256(data).hexdigest())


def _check_size(size: int, limits: SheetLimits) -> None:
    if size > limits.file_bytes:
        raise MatrixTooLargeError(
            f"el archivo pesa {_megabytes(size)} MB; el máximo es {_megabytes(limits.file_bytes)} MB. "
            "Quite filas o columnas que no use, o divida la matriz."
        )


def check_xlsx_container(data: bytes, limits: SheetLimits = LIMITS) -> None:
    """Refuse what must not reach the XML parser: not a zip, encrypted, macros, a zip bomb."""
    if data.startswith(_OLE_MAGIC):
        raise MatrixReadError(
            "el archivo está protegido con contraseña o es un Excel antiguo (.xls): quite la contraseña y "
            "guárdelo como .xlsx o .csv."
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    # NotImplementedError: a member needing a newer zip version or an unknown compression (a damaged header).
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, ValueError, EOFError) as exc:
        raise MatrixReadError(
            "el archivo no es un Excel .xlsx válido (no es un libro de Excel o está dañado)."
        ) from exc
    if len(members) > limits.xlsx_members:
        raise MatrixTooLargeError(f"el libro tiene {len(members)} partes internas; no parece una matriz.")
    if any(member.flag_bits & 0x1 for member in members):
        raise MatrixReadError("el archivo está cifrado: quite la contraseña y guárdelo como .xlsx o .csv.")
    if any(member.filename.lower().endswith("vbaproject.bin") for member in members):
        raise MatrixReadError(
            "el libro contiene macros: guárdelo como «Libro de Excel (.xlsx)» sin macros, o como .csv."
        )
    uncompressed = sum(member.file_size for member in members)
    if uncompressed > limits.xlsx_uncompressed_bytes:
        raise MatrixTooLargeError(
            f"el libro descomprimido ocupa {_megabytes(uncompressed)} MB; el máximo es "
            f"{_megabytes(limits.xlsx_uncompressed_bytes)} MB. Quite filas, columnas o formatos que no use."
        )


def _check_declared_dimensions(max_row: int | None, max_column: int | None, limits: SheetLimits) -> None:
    """The worksheet's `<dimension>`: a 5 KB file may declare a cell at XFD1048576 (openpyxl would pad to it)."""
    rows, columns = max_row or 0, max_column or 0
    if rows > limits.rows + 1 + limits.blank_tail or columns > limits.columns:
        raise MatrixTooLargeError(
            f"la hoja declara un rango de {_thousands(rows)} filas y {_thousands(columns)} columnas "
            f"(hasta la celda {_column_letter(columns)}{rows}); el máximo es {_thousands(limits.rows)} filas de datos "
            f"y {limits.columns} columnas. Borre las filas y columnas sobrantes (también las vacías con formato) "
            "y vuelva a guardar el archivo."
        )


def parse_xlsx_bytes(data: bytes, limits: SheetLimits = LIMITS) -> Sheet:
    """The first worksheet of an .xlsx (values, not formulas) → `Sheet`, bounded by `limits`.

    Read-only mode streams the XML; rows are read with explicit column and row bounds, so
    neither a declared dimension nor a far-away cell makes openpyxl pad rows.
    """
    _check_size(len(data), limits)
    check_xlsx_container(data, limits)
    from openpyxl import load_workbook

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openpyxl warns about styles and extensions it drops; none matter here
        try:
            workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
        except MatrixReadError:
            raise
        except Exception as exc:  # an untrusted file: whatever the parser raises means "broken"
            raise MatrixReadError(f"el archivo no es un Excel .xlsx válido: {_reason(exc)}") from exc
        try:
            worksheets = workbook.worksheets
            if not worksheets:
                raise MatrixReadError("el libro no tiene ninguna hoja de cálculo")
            worksheet: Any = worksheets[0]
            _check_declared_dimensions(worksheet.max_row, worksheet.max_column, limits)
            rows = worksheet.iter_rows(
                min_row=1,
                max_row=limits.rows + 2 + limits.blank_tail,
                min_col=1,
                max_col=limits.columns + 1,
                values_only=True,
            )
            table = bounded_table(rows, limits)
        except MatrixReadError:
            raise
        except Exception as exc:  # broken XML, bad cell types, truncated parts …
            raise MatrixReadError(f"el archivo no es un Excel .xlsx válido: {_reason(exc)}") from exc
        finally:
            workbook.close()
    return sheet_from_table(table, hashlib.sha256(data).hexdigest())


def _reason(exc: Exception) -> str:
    """A short, safe description of a parser failure (type and the start of its message)."""
    text = " ".join(str(exc).split())[:120]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def read_xlsx(path: Path, limits: SheetLimits = LIMITS) -> Sheet:
    """The first worksheet of an .xlsx file → `Sheet`."""
    return parse_xlsx_bytes(_read_bounded(path, limits), limits)


def _read_bounded(path: Path, limits: SheetLimits) -> bytes:
    _check_size(path.stat().st_size, limits)
    with path.open("rb") as handle:
        data = handle.read(limits.file_bytes + 1)
    _check_size(len(data), limits)
    return data


def read_sheet(path: Path, limits: SheetLimits = LIMITS) -> Sheet:
    """A .csv/.tsv/.txt or .xlsx/.xlsm file → `Sheet` (refused with a `MatrixReadError` when over `limits`)."""
    if not path.is_file():
        raise MatrixReadError(f"no existe el archivo {path}")
    suffix = path.suffix.lower()
    if suffix in _XLSX_SUFFIXES:
        return read_xlsx(path, limits)
    if suffix in _CSV_SUFFIXES:
        return parse_csv_bytes(_read_bounded(path, limits), limits)
    if suffix == ".xls":
        raise MatrixReadError("el formato .xls (Excel 97-2003) no se admite: guárdelo como .xlsx o .csv")
    raise MatrixReadError(f"formato no admitido: {path.suffix or '(sin extensión)'}; use .csv o .xlsx")
