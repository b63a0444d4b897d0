"""The knowledge editor page's narrow view of the knowledge matrix: upload a draft, try it, publish, roll back.

The console programs against `KnowledgeEditor`; `MatrixEditor` implements it over `knowledge_matrix.publish`
(the same versions and live pointer the action server answers from), and unit tests use an in-memory fake with
the same semantics. Calls are synchronous (they read files and embed text): the console runs them in a thread.
Heavy work (validating an upload, building a draft to try, publishing) runs one at a time per editor: a second
request meanwhile is refused at once with `EditorBusy` (429, in Spanish) instead of queueing threads and memory.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import re
import shutil
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from copy import copy
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from core.errors import DomainError
from knowledge_matrix.embedders import Embedder, shared_embedder
from knowledge_matrix.errors import KnowledgeMatrixError
from knowledge_matrix.knowledge_base import KnowledgeBase
from knowledge_matrix.matrix import (
    Sheet,
    SheetLimits,
    canonical_column,
    decode_csv_bytes,
    read_sheet,
    sniff_delimiter,
    split_questions,
)
from knowledge_matrix.publish import (
    NothingToRollBackError,
    UnknownVersionError,
    VersionInfo,
    activate,
    check_matrix,
    current_version,
    list_versions,
    load_draft,
    load_version,
    version_dir,
)
from knowledge_matrix.publish import publish as publish_matrix
from knowledge_matrix.publish import rollback as roll_back_matrix
from knowledge_matrix.report import COLUMN_LABELS, Report
from knowledge_matrix.settings import DEFAULT_SETTINGS
from knowledge_matrix.text import fold

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = SheetLimits().file_bytes  # the matrix's own limit, for the request guard and the upload route


class KnowledgeEditorError(DomainError):
    """Root of the editor's errors; `message_es` is shown to the editor."""

    reason_code = "knowledge_error"

    def __init__(self, message_es: str) -> None:
        super().__init__(message_es)
        self.message_es = message_es


class DraftNotFound(KnowledgeEditorError):
    reason_code = "draft_not_found"


class DraftHasErrors(KnowledgeEditorError):
    reason_code = "draft_has_errors"


class NothingToRollBack(KnowledgeEditorError):
    reason_code = "nothing_to_roll_back"


class NothingPublished(KnowledgeEditorError):
    reason_code = "nothing_published"


class KnowledgeUnavailable(KnowledgeEditorError):
    reason_code = "knowledge_unavailable"


class EditorBusy(KnowledgeEditorError):
    reason_code = "knowledge_busy"


class StaleDraft(KnowledgeEditorError):
    """The live matrix changed since the draft was made from it: publishing it would drop what was published since.
    `can_confirm`: an uploaded file, which the editor may publish anyway (`confirm_stale`); a console draft whose one
    change no longer applies cannot."""

    reason_code = "stale_draft"

    def __init__(self, message_es: str, *, base_version: str | None, live_version: str | None,
                 can_confirm: bool) -> None:
        super().__init__(message_es)
        self.base_version = base_version
        self.live_version = live_version
        self.can_confirm = can_confirm

    def details(self) -> dict[str, Any]:
        return {"base_version": self.base_version, "live_version": self.live_version,
                "can_confirm": self.can_confirm}


BUSY_MESSAGE = (
    "Ya se está validando o publicando otra matriz. Espere a que termine (puede tardar un minuto) "
    "y vuelva a intentarlo."
)


@dataclass(frozen=True)
class ReportIssue:
    severity: str  # "error" or "warning"
    code: str
    message: str  # Spanish, without the row and column (they have their own fields)
    row: int | None = None
    column: str | None = None  # the canonical column ("answer")

    @property
    def column_label(self) -> str | None:
        """The column as editors name it ("respuesta")."""
        return COLUMN_LABELS.get(self.column, self.column) if self.column else None

    def to_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "code": self.code, "message": self.message, "row": self.row,
                "column": self.column, "column_label": self.column_label}


@dataclass(frozen=True)
class Draft:
    id: str
    filename: str
    uploaded_by: str
    uploaded_at: datetime
    ok: bool  # no errors: it can be published
    entry_count: int
    issues: tuple[ReportIssue, ...] = ()
    summary: str = ""  # the whole report as an editor reads it
    base_version: str | None = None  # the live version when it was uploaded or made (None: nothing was live)
    published_version: str | None = None  # the version its last publication made
    made_in_console: bool = False  # made by `draft_with_*` (rebuilt on the live version at publish), not uploaded

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "filename": self.filename,
            "uploaded_by": self.uploaded_by,
            "uploaded_at": self.uploaded_at.isoformat(),
            "ok": self.ok,
            "entry_count": self.entry_count,
            "error_count": sum(1 for issue in self.issues if issue.severity == "error"),
            "warning_count": sum(1 for issue in self.issues if issue.severity == "warning"),
            "issues": [issue.to_dict() for issue in self.issues],
            "summary": self.summary,
            "base_version": self.base_version,
            "published_version": self.published_version,
            "made_in_console": self.made_in_console,
        }


@dataclass(frozen=True)
class Version:
    id: str
    published_at: datetime
    published_by: str
    entry_count: int
    filename: str = ""
    live: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "published_at": self.published_at.isoformat(), "published_by": self.published_by,
                "entry_count": self.entry_count, "filename": self.filename, "live": self.live}


@dataclass(frozen=True)
class TriedAnswer:
    """What one version would do with a question: answer, suggest entries, or nothing."""

    outcome: str  # "answer", "suggest", "none"
    text: str = ""
    entry_id: str | None = None
    confidence: float | None = None
    suggestions: tuple[str, ...] = ()
    # The message's words this version read as the matrix's own (equivalent words, `knowledge_matrix/synonyms.py`):
    # (the customer's words, the matrix's).
    equivalents: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "text": self.text, "entry_id": self.entry_id,
                "confidence": self.confidence, "suggestions": list(self.suggestions),
                "equivalents": [{"said": said, "read_as": read_as} for said, read_as in self.equivalents]}


@dataclass(frozen=True)
class TryResult:
    question: str
    draft: TriedAnswer | None  # None: no draft to try
    live: TriedAnswer | None  # None: nothing published yet

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.question, "draft": self.draft.to_dict() if self.draft else None,
                "live": self.live.to_dict() if self.live else None}


@dataclass(frozen=True)
class KnowledgeStatus:
    live: Version | None
    versions: tuple[Version, ...] = ()  # newest first
    drafts: tuple[Draft, ...] = ()  # newest first
    notes: tuple[str, ...] = field(default=())  # anything the editor should know (Spanish)

    def to_dict(self) -> dict[str, Any]:
        return {"live": self.live.to_dict() if self.live else None,
                "versions": [version.to_dict() for version in self.versions],
                "drafts": [draft.to_dict() for draft in self.drafts], "notes": list(self.notes)}


class KnowledgeEditor(Protocol):
    def status(self) -> KnowledgeStatus: ...

    def live_source(self) -> tuple[str, bytes]:
        """The live version's file as it was published (its name, its bytes): what an editor downloads to edit
        further, so a question added from «Preguntas sin respuesta» is not lost by uploading an older copy.
        KnowledgeEditorError before a first publication."""
        ...

    def upload(self, filename: str, data: bytes, by: str) -> Draft:
        """Read and validate a CSV/XLSX; keep it as a draft whatever the report says."""
        ...

    def try_question(self, question: str, draft_id: str | None) -> TryResult: ...

    def publish(self, draft_id: str, by: str, *, confirm_stale: bool = False) -> Version:
        """Make a draft without errors the live version (DraftHasErrors otherwise). When the live version changed
        since the draft was made (`stale_draft`): a draft made by `draft_with_*` is made again on the live version
        (StaleDraft when its change no longer applies); an uploaded one is refused with StaleDraft unless
        `confirm_stale`."""
        ...

    def rollback(self, by: str, version_id: str | None = None) -> Version:
        """Serve the previous published version again (or `version_id`)."""
        ...

    def draft_with_question(self, entry_id: str, question: str, by: str, *,
                            origin: Mapping[str, Any] | None = None) -> Draft:
        """A draft: the live matrix with one more way of asking in entry `entry_id` (then the usual report)."""
        ...

    def draft_with_entry(self, entry_id: str, questions: Sequence[str], answer: str, by: str, *,
                         origin: Mapping[str, Any] | None = None) -> Draft:
        """A draft: the live matrix with a new entry (then the usual report)."""
        ...

    def draft_with_questions(self, additions: Sequence[tuple[str, str]], by: str, *,
                             origin: Mapping[str, Any] | None = None) -> Draft:
        """A draft: the live matrix with several ways of asking added, each (entry id, question) (then the usual
        report); one the entry has already is skipped."""
        ...

    def draft_origin(self, draft_id: str) -> dict[str, Any] | None:
        """What a draft came from: the `origin` given to `draft_with_*` (none for an upload), with `base_version` (the
        live version its content was built on) and `published_version` (what its last publication made)."""
        ...


def is_stale(draft: Draft, live_id: str | None) -> bool:
    """Publishing `draft` now would drop what was published since it was made. A draft uploaded before anything was
    published is not a copy of anything; one published already is as current as the version it made."""
    if live_id is None or draft.base_version is None:
        return False
    return live_id not in (draft.base_version, draft.published_version)


def stale_upload(draft: Draft, live_id: str | None) -> StaleDraft:
    return StaleDraft(
        f"La matriz publicada cambió desde que se subió «{draft.filename}»: se subió cuando respondía la versión "
        f"{draft.base_version} y ahora responde la {live_id}. Si la publica, se pierde lo publicado después (por "
        "ejemplo, preguntas agregadas desde «Preguntas sin respuesta»). Lo más seguro es descargar la matriz "
        "publicada y hacer sus cambios sobre ella; si está seguro, confirme para publicarla de todos modos.",
        base_version=draft.base_version, live_version=live_id, can_confirm=True)


# --- over the knowledge_matrix package -----------------------------------------------------------------


DRAFTS_DIR = "knowledge-drafts"
KEEP_DRAFTS = 20
DRAFT_FILE = "draft.json"
_SUFFIX = re.compile(r"^\.[a-z0-9]{1,5}$")


def upload_names(filename: str) -> tuple[str, str]:
    """The name an upload is kept under (no folders; "matriz.csv" when empty) and the name of the draft's copy
    (`source` with the upload's suffix when it looks like one: the reader picks the format by it)."""
    name = Path(filename.replace("\\", "/")).name[:200] or "matriz.csv"
    suffix = Path(name).suffix.lower()
    return name, "source" + (suffix if _SUFFIX.match(suffix) else ".bin")


def report_issues(report: Report) -> tuple[ReportIssue, ...]:
    return tuple(ReportIssue(i.severity, i.code, i.message, i.row, i.column) for i in report.issues)


def _tried(knowledge: KnowledgeBase, question: str) -> TriedAnswer:
    verdict = knowledge.answer(question)
    equivalents = tuple((r.old, r.new) for r in knowledge.equivalent_words(question))
    hit = verdict.hit
    if verdict.kind == "answer" and hit is not None:
        return TriedAnswer("answer", hit.entry.answer, hit.entry.id, round(hit.score, 3), equivalents=equivalents)
    if verdict.kind == "ambiguous":
        return TriedAnswer("suggest", suggestions=tuple(h.entry.questions[0] if h.entry.questions else h.entry.id
                                                        for h in verdict.candidates), equivalents=equivalents)
    return TriedAnswer("none", confidence=round(hit.score, 3) if hit is not None else None, equivalents=equivalents)


def _version(info: VersionInfo, live_id: str | None) -> Version:
    return Version(info.id, info.published_datetime, info.published_by, info.entry_count, info.filename,
                   live=info.id == live_id)


# --- a draft made of the live matrix plus one change («Preguntas sin respuesta») -----------------------
#
# The draft is a copy of the live version's own file with that one change made in place: the one cell of the entry's
# questions, or one row appended after the last one. Everything else the editor keeps in the file stays as it was:
# other sheets, formatting, formulas, columns the matrix does not read (blank or repeated headers too), the CSV's
# delimiter and encoding.

MAX_QUESTION_CHARS = 500  # one way of asking, as the matrix keeps it
MAX_NEW_QUESTIONS = 50
ORIGIN_FILE = "origin.json"  # beside draft.json: what a draft made from the live matrix came from
CHANGE_FILE = "change.json"  # beside draft.json: its one change, made again on a newer live version at publish
DRAFT_NAME_SUFFIX = " (Preguntas sin respuesta)"  # what older console drafts added to the file name: taken off
_SEPARATORS = re.compile(r"[\s|]+")  # a new line or "|" would split one question into two in the cell
_XLSX_ILLEGAL = re.compile(r"[\000-\010\013\014\016-\037]")  # characters an .xlsx cell cannot hold
_XLSX_SUFFIXES = (".xlsx", ".xlsm")


def clean_question(text: str) -> str:
    """One way of asking as a cell keeps it: one line, no «|» (both separate questions), no control characters."""
    printable = "".join(char if char.isprintable() else " " for char in text)
    return _SEPARATORS.sub(" ", printable).strip()[:MAX_QUESTION_CHARS].strip()


@dataclass(frozen=True)
class MatrixChange:
    """The one change a console draft makes: a way of asking added to an entry (`question`) or a new entry
    (`entry`). Kept with the draft (change.json) so that it can be made again on a newer live version."""

    kind: Literal["question", "entry", "questions"]
    entry_id: str
    questions: tuple[str, ...]
    answer: str = ""
    additions: tuple[tuple[str, str], ...] = ()  # kind "questions": (entry id, question) pairs

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "entry_id": self.entry_id, "questions": list(self.questions),
                "answer": self.answer, "additions": [list(pair) for pair in self.additions]}

    @classmethod
    def from_dict(cls, data: Any) -> MatrixChange | None:
        """None for anything that is not a change this module wrote."""
        if not isinstance(data, dict) or data.get("kind") not in ("question", "entry", "questions"):
            return None
        questions = data.get("questions")
        if not isinstance(questions, list) or not all(isinstance(q, str) for q in questions):
            return None
        additions = data.get("additions", [])
        if not isinstance(additions, list) or not all(
                isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
                for pair in additions):
            return None
        return cls(data["kind"], str(data.get("entry_id", "")), tuple(questions), str(data.get("answer", "")),
                   tuple((pair[0], pair[1]) for pair in additions))


@dataclass(frozen=True)
class CellEdit:
    """Put `value` in column `column` (canonical) of row `row` (numbered as the editor sees the sheet)."""

    row: int
    column: str
    value: str


@dataclass(frozen=True)
class NewRow:
    """A row after the last one with content, with `values` by canonical column (the other cells empty)."""

    values: Mapping[str, str]


def _entry_rows(sheet: Sheet, entry_id: str) -> list[int]:
    return [index for index, row in enumerate(sheet.rows) if row.get("id").strip() == entry_id]


def with_question(sheet: Sheet, entry_id: str, question: str) -> CellEdit:
    """The cell edit that adds `question` to entry `entry_id`'s ways of asking, in the cell's own style
    (KnowledgeEditorError when the entry is not there, the question is empty or the entry already has it)."""
    cleaned = clean_question(question)
    if not cleaned:
        raise KnowledgeEditorError("Escriba la pregunta que quiere agregar.")
    found = _entry_rows(sheet, entry_id.strip())
    if not found:
        raise KnowledgeEditorError(f"La entrada «{entry_id.strip()[:100]}» no existe en la matriz publicada.")
    row = sheet.rows[found[0]]
    current = row.get("questions")
    if fold(cleaned) in {fold(asked) for asked in split_questions(current)}:
        raise KnowledgeEditorError(f"La entrada «{entry_id.strip()}» ya tiene la pregunta «{cleaned}».")
    separator = " | " if "|" in current and "\n" not in current else "\n"
    return CellEdit(row.number, "questions", current.rstrip() + separator + cleaned if current.strip() else cleaned)


def with_entry(sheet: Sheet, entry_id: str, questions: Sequence[str], answer: str) -> NewRow:
    """The new row of a new entry (KnowledgeEditorError when the id is taken, or there is no question or no answer).
    The id's form and the rest are the validation report's to judge."""
    entry_id = entry_id.strip()
    if not entry_id:
        raise KnowledgeEditorError("Escriba el id de la nueva entrada (por ejemplo «horario-feriados»).")
    if _entry_rows(sheet, entry_id):
        raise KnowledgeEditorError(f"Ya existe una entrada «{entry_id[:100]}»: elija otro id o agregue la pregunta a "
                                   "esa entrada.")
    cleaned = split_questions("\n".join(clean_question(question) for question in questions[:MAX_NEW_QUESTIONS]))
    if not cleaned:
        raise KnowledgeEditorError("Escriba al menos una pregunta para la nueva entrada.")
    if not answer.strip():
        raise KnowledgeEditorError("Escriba la respuesta de la nueva entrada.")
    return NewRow({"id": entry_id, "questions": "\n".join(cleaned), "answer": answer.strip()})


def with_questions(sheet: Sheet, additions: Sequence[tuple[str, str]]) -> list[CellEdit]:
    """The cell edits that add each (entry id, question): one edit per entry, the questions it has already (or
    repeated) skipped (KnowledgeEditorError when an entry is not there, or nothing is left to add)."""
    edits: list[CellEdit] = []
    by_entry: dict[str, list[str]] = {}
    for entry_id, question in additions:
        by_entry.setdefault(entry_id.strip(), []).append(question)
    for entry_id, questions in by_entry.items():
        found = _entry_rows(sheet, entry_id)
        if not found:
            raise KnowledgeEditorError(f"La entrada «{entry_id[:100]}» no existe en la matriz publicada.")
        row = sheet.rows[found[0]]
        current = row.get("questions")
        asked = {fold(question) for question in split_questions(current)}
        separator = " | " if "|" in current and "\n" not in current else "\n"
        value = current.rstrip()
        for question in questions:
            cleaned = clean_question(question)
            if not cleaned or fold(cleaned) in asked:
                continue
            asked.add(fold(cleaned))
            value = value + separator + cleaned if value.strip() else cleaned
        if value != current.rstrip():
            edits.append(CellEdit(row.number, "questions", value))
    if not edits:
        raise KnowledgeEditorError("No queda ninguna pregunta por agregar: las entradas ya las tienen.")
    return edits


def change_edit(sheet: Sheet, change: MatrixChange) -> CellEdit | NewRow | list[CellEdit]:
    if change.kind == "question":
        return with_question(sheet, change.entry_id, change.questions[0] if change.questions else "")
    if change.kind == "questions":
        return with_questions(sheet, change.additions)
    return with_entry(sheet, change.entry_id, change.questions, change.answer)


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _layout(rows: Sequence[Sequence[Any]]) -> tuple[int, dict[str, int], int]:
    """(index of the header row, first position of each canonical column, index of the last row with content)."""
    filled = [index for index, row in enumerate(rows) if any(_text(value) for value in row)]
    if not filled:
        raise KnowledgeEditorError("El archivo de la versión publicada no tiene encabezados.")
    header = filled[0]
    positions: dict[str, int] = {}
    for position, value in enumerate(rows[header]):
        canonical = canonical_column(_text(value))
        if canonical is not None:
            positions.setdefault(canonical, position)
    return header, positions, filled[-1]


def _position(positions: Mapping[str, int], column: str) -> int:
    if column not in positions:
        raise KnowledgeEditorError(f"El archivo de la versión publicada no tiene la columna «"
                                   f"{COLUMN_LABELS.get(column, column)}».")
    return positions[column]


def csv_codec(data: bytes) -> str:
    """The codec a CSV was saved in (as `decode_csv_bytes` reads it), to write it back the same way."""
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def write_csv(rows: Sequence[Sequence[str]], codec: str = "utf-8-sig", delimiter: str = ",",
              newline: str = "\r\n") -> bytes:
    """A CSV file; a new one is UTF-8 with a BOM, so Excel on Windows opens its accents right. Text the file's own
    codec cannot hold (cp1252 and an emoji) makes it UTF-8 with a BOM as well."""
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator=newline).writerows(rows)
    try:
        return out.getvalue().encode(codec)
    except UnicodeEncodeError:
        return out.getvalue().encode("utf-8-sig")


def edit_csv(data: bytes, edit: CellEdit | NewRow | Sequence[CellEdit]) -> bytes:
    """The CSV with cells changed or one row added; its delimiter, line ends, encoding and BOM kept."""
    text = decode_csv_bytes(data)
    delimiter = sniff_delimiter(text)
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    header, positions, last = _layout(rows)
    if not isinstance(edit, NewRow):
        for cell_edit in [edit] if isinstance(edit, CellEdit) else edit:
            row, position = rows[cell_edit.row - 1], _position(positions, cell_edit.column)
            row.extend([""] * (position + 1 - len(row)))
            row[position] = cell_edit.value
    else:
        new_row = [""] * max(len(rows[header]), *(_position(positions, c) + 1 for c in edit.values))
        for column, value in edit.values.items():
            new_row[_position(positions, column)] = value
        rows.insert(last + 1, new_row)
    return write_csv(rows, csv_codec(data), delimiter, "\r\n" if "\r\n" in text else "\n")


def _set_cell(cell: Any, value: str) -> None:
    cell.value = _XLSX_ILLEGAL.sub("", value)
    if isinstance(cell.value, str) and cell.value.startswith("="):
        cell.data_type = "s"  # text the editor typed, never a formula


def edit_xlsx(data: bytes, edit: CellEdit | NewRow | Sequence[CellEdit], *, keep_vba: bool = False) -> bytes:
    """The workbook with one cell of its first sheet changed or one row added (styled as the row above); its other
    sheets, formatting, formulas and columns kept (what openpyxl keeps: not images or charts)."""
    from openpyxl import load_workbook

    limits = SheetLimits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # styles and extensions openpyxl does not know
        book = load_workbook(io.BytesIO(data), keep_vba=keep_vba, keep_links=True)
    sheet: Any = book.worksheets[0]
    # Within the sheet's own range: asking openpyxl for more makes the cells (and a range the reader refuses).
    rows = list(sheet.iter_rows(min_row=1, max_row=min(sheet.max_row, limits.rows + 2 + limits.blank_tail),
                                max_col=min(sheet.max_column, limits.columns), values_only=True))
    header, positions, last = _layout(rows)
    if not isinstance(edit, NewRow):
        for cell_edit in [edit] if isinstance(edit, CellEdit) else edit:
            _set_cell(sheet.cell(row=cell_edit.row, column=_position(positions, cell_edit.column) + 1),
                      cell_edit.value)
    else:
        number = last + 2  # the sheet's row numbers start at 1
        for column, value in edit.values.items():
            position = _position(positions, column) + 1
            cell = sheet.cell(row=number, column=position)
            above = sheet.cell(row=number - 1, column=position)
            if number - 1 > header + 1 and above.has_style:
                cell._style = copy(above._style)
            _set_cell(cell, value)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def edit_source(suffix: str, data: bytes, edit: CellEdit | NewRow | Sequence[CellEdit]) -> bytes:
    """The matrix file (`suffix` says its format) with `edit` made in place."""
    if suffix.lower() in _XLSX_SUFFIXES:
        return edit_xlsx(data, edit, keep_vba=suffix.lower() == ".xlsm")
    return edit_csv(data, edit)


def draft_name(live_filename: str, suffix: str) -> str:
    """A console draft keeps the live file's name (an older draft's « (Preguntas sin respuesta)» taken off)."""
    path = Path(live_filename)
    stem = path.stem.removesuffix(DRAFT_NAME_SUFFIX) or "matriz"
    return stem + (path.suffix if path.suffix.lower() == suffix.lower() else suffix.lower())


class MatrixEditor:
    """`KnowledgeEditor` over `knowledge_matrix.publish`: drafts kept under `<data_dir>/knowledge-drafts/`,
    versions and the live pointer where the action server reads them (`<data_dir>/knowledge/`).

    The embedding model is loaded on first use (the process-wide one) unless one is given (tests).
    """

    def __init__(self, data_dir: Path, clock: Callable[[], datetime], embedder: Embedder | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.clock = clock
        self._embedder = embedder
        self._lock = threading.Lock()
        self._heavy = threading.Lock()  # one validation, build or publish at a time
        self._built: dict[str, KnowledgeBase] = {}  # draft id or "live:<version>" → knowledge base

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Heavy work one at a time; a second caller is refused at once (the console answers 429)."""
        if not self._heavy.acquire(blocking=False):
            raise EditorBusy(BUSY_MESSAGE)
        try:
            yield
        finally:
            self._heavy.release()

    @property
    def drafts_dir(self) -> Path:
        return self.data_dir / DRAFTS_DIR

    def embedder(self) -> Embedder:
        if self._embedder is None:
            try:
                self._embedder = shared_embedder(DEFAULT_SETTINGS.embedder)
            except KnowledgeMatrixError as exc:
                raise KnowledgeUnavailable(f"No se pudo cargar el modelo de la matriz: {exc}") from exc
        return self._embedder

    # drafts

    def _draft_source(self, draft_id: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{12}", draft_id):
            raise DraftNotFound("No existe ese borrador.")
        directory = self.drafts_dir / draft_id
        sources = sorted(directory.glob("source.*"))
        if not sources:
            raise DraftNotFound("No existe ese borrador; vuelva a subir el archivo.")
        return sources[0]

    def _read_draft(self, directory: Path) -> Draft | None:
        try:
            data = json.loads((directory / DRAFT_FILE).read_text(encoding="utf-8"))
            return Draft(
                id=data["id"], filename=data["filename"], uploaded_by=data["uploaded_by"],
                uploaded_at=datetime.fromisoformat(data["uploaded_at"]), ok=data["ok"],
                entry_count=data["entry_count"], summary=data["summary"],
                issues=tuple(ReportIssue(**{k: v for k, v in issue.items() if k != "column_label"})
                             for issue in data["issues"]),
                base_version=data.get("base_version"), published_version=data.get("published_version"),
                made_in_console=bool(data.get("made_in_console", False)),
            )
        except (OSError, KeyError, TypeError, ValueError):
            return None

    def drafts(self) -> list[Draft]:
        """Newest first."""
        if not self.drafts_dir.is_dir():
            return []
        found = [self._read_draft(path) for path in self.drafts_dir.iterdir() if path.is_dir()]
        return sorted((d for d in found if d is not None), key=lambda d: d.uploaded_at, reverse=True)

    def upload(self, filename: str, data: bytes, by: str) -> Draft:
        with self._exclusive():
            live = current_version(self.data_dir)
            draft = self._new_draft(filename, data, by, live.id if live else None)
        self._forget_old_drafts()
        return draft

    def _new_draft(self, filename: str, data: bytes, by: str, base_version: str | None,
                   change: MatrixChange | None = None, origin: Mapping[str, Any] | None = None) -> Draft:
        """A draft kept under its own folder with its report (call it holding `_exclusive`)."""
        name, source_name = upload_names(filename)
        draft_id = uuid.uuid4().hex[:12]
        directory = self.drafts_dir / draft_id
        self.embedder()  # before anything is written: a model that cannot load leaves no draft
        directory.mkdir(parents=True)
        try:
            source = directory / source_name
            source.write_bytes(data)
            if change is not None:
                (directory / CHANGE_FILE).write_text(json.dumps(change.to_dict(), ensure_ascii=False),
                                                     encoding="utf-8")
            if origin is not None:
                (directory / ORIGIN_FILE).write_text(json.dumps(dict(origin), ensure_ascii=False),
                                                     encoding="utf-8")
            return self._checked(source, Draft(draft_id, name, by, self.clock(), False, 0,
                                               base_version=base_version, made_in_console=change is not None))
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)  # no orphan draft, whatever went wrong
            raise

    def _checked(self, source: Path, draft: Draft) -> Draft:
        """`draft` with the report of its file `source`, written beside it."""
        report, _sheet = check_matrix(source, self.embedder())
        checked = replace(draft, ok=report.ok, entry_count=report.entry_count, issues=report_issues(report),
                          summary=report.render())
        self._write_draft(checked)
        return checked

    def _write_draft(self, draft: Draft) -> None:
        (self.drafts_dir / draft.id / DRAFT_FILE).write_text(json.dumps(draft.to_dict(), ensure_ascii=False),
                                                             encoding="utf-8")

    def _forget_old_drafts(self) -> None:
        for draft in self.drafts()[KEEP_DRAFTS:]:
            shutil.rmtree(self.drafts_dir / draft.id, ignore_errors=True)
            self._built.pop(draft.id, None)

    # trying

    def _draft_knowledge(self, draft_id: str) -> KnowledgeBase | None:
        source = self._draft_source(draft_id)
        with self._lock:
            built = self._built.get(draft_id)
        if built is None:
            with self._exclusive():
                _report, built = load_draft(source, embedder=self.embedder())
            if built is None:
                return None  # a draft with errors cannot answer
            with self._lock:
                self._built = {key: kb for key, kb in self._built.items() if key.startswith("live:")}
                self._built[draft_id] = built
        return built

    def _live_knowledge(self) -> KnowledgeBase | None:
        live = current_version(self.data_dir)
        if live is None:
            return None
        key = f"live:{live.id}"
        with self._lock:
            built = self._built.get(key)
        if built is None:
            built = load_version(self.data_dir, live.id, lambda _name: self.embedder())
            with self._lock:
                self._built = {k: kb for k, kb in self._built.items() if not k.startswith("live:")}
                self._built[key] = built
        return built

    def try_question(self, question: str, draft_id: str | None) -> TryResult:
        draft_answer = None
        if draft_id:
            knowledge = self._draft_knowledge(draft_id)
            draft_answer = _tried(knowledge, question) if knowledge is not None else TriedAnswer(
                "none", text="El borrador tiene errores: corríjalos para probarlo.")
        live = self._live_knowledge()
        return TryResult(question, draft_answer, _tried(live, question) if live is not None else None)

    # versions

    def status(self) -> KnowledgeStatus:
        live = current_version(self.data_dir)
        live_id = live.id if live else None
        versions = tuple(_version(info, live_id) for info in reversed(list_versions(self.data_dir)))
        return KnowledgeStatus(live=_version(live, live_id) if live else None, versions=versions,
                               drafts=tuple(self.drafts()[:5]))

    def publish(self, draft_id: str, by: str, *, confirm_stale: bool = False) -> Version:
        source = self._draft_source(draft_id)
        with self._exclusive():  # the live version checked and replaced in one go
            draft = self._read_draft(source.parent)
            live = current_version(self.data_dir)
            if draft is not None and live is not None and is_stale(draft, live.id):
                change = self._change_of(draft.id)
                if draft.made_in_console and change is not None:
                    source, draft = self._rebuilt(draft, change)
                elif not confirm_stale:
                    raise stale_upload(draft, live.id)
                else:
                    log.warning("a stale draft published on confirmation", extra={
                        "draft_id": draft.id, "base_version": draft.base_version, "live_version": live.id, "by": by})
            # Stored with the editor's file name, not the draft's copy ("source.csv"): the version list and a
            # rollback read it back from the version.
            result = publish_matrix(source, self.data_dir, self.clock(), by=by, embedder=self.embedder(),
                                    filename=draft.filename if draft is not None else None)
            if result.version is None:
                raise DraftHasErrors(
                    f"El borrador tiene {result.report.error_count} error(es): corríjalos y vuelva a subir el "
                    "archivo. La versión publicada sigue respondiendo."
                )
            if draft is not None:
                self._write_draft(replace(draft, published_version=result.version.id))
        return _version(result.version, result.version.id)

    def _rebuilt(self, draft: Draft, change: MatrixChange) -> tuple[Path, Draft]:
        """A console draft made again on the live version: its one change on the live file, a new report."""
        live, live_source = self._live_file()
        try:
            data = self._changed(live, live_source, change)
        except KnowledgeUnavailable:
            raise
        except KnowledgeEditorError as exc:
            raise StaleDraft(
                f"La matriz publicada cambió desde que se preparó este borrador (sobre la versión "
                f"{draft.base_version}; ahora responde la {live.id}) y su cambio ya no se puede aplicar: "
                f"{exc.message_es} Vuelva a prepararlo desde la matriz publicada.",
                base_version=draft.base_version, live_version=live.id, can_confirm=False) from exc
        directory = self.drafts_dir / draft.id
        name, source_name = upload_names(draft_name(live.filename, live_source.suffix))
        source = directory / source_name
        source.write_bytes(data)
        for old in directory.glob("source.*"):
            if old != source:
                old.unlink()
        with self._lock:
            self._built.pop(draft.id, None)
        log.info("a console draft made again on the live version", extra={
            "draft_id": draft.id, "base_version": draft.base_version, "live_version": live.id})
        return source, self._checked(source, replace(draft, filename=name, base_version=live.id))

    def rollback(self, by: str, version_id: str | None = None) -> Version:
        try:
            if version_id is None:
                info = roll_back_matrix(self.data_dir, self.clock(), by=by)
            else:
                info = activate(self.data_dir, version_id, self.clock(), by=by)
        except NothingToRollBackError as exc:
            raise NothingToRollBack("No hay una versión anterior a la que volver.") from exc
        except UnknownVersionError as exc:
            raise NothingToRollBack(str(exc)[:1].upper() + str(exc)[1:] + ".") from exc
        return _version(info, info.id)


    # a draft from the live matrix plus one change

    def live_source(self) -> tuple[str, bytes]:
        live = current_version(self.data_dir)
        if live is None:
            raise NothingPublished("Todavía no hay una matriz publicada: suba la matriz y publíquela primero.")
        sources = sorted(version_dir(self.data_dir, live.id).glob("source.*"))
        if not sources:
            raise KnowledgeUnavailable(f"La versión publicada {live.id} no guardó su archivo.")
        return live.filename, sources[0].read_bytes()

    def _live_file(self) -> tuple[VersionInfo, Path]:
        live = current_version(self.data_dir)
        if live is None:
            raise KnowledgeEditorError("Todavía no hay una matriz publicada: suba la matriz y publíquela primero.")
        sources = sorted(version_dir(self.data_dir, live.id).glob("source.*"))
        if not sources:
            raise KnowledgeUnavailable(f"La versión publicada {live.id} no guardó su archivo.")
        return live, sources[0]

    def _changed(self, live: VersionInfo, source: Path, change: MatrixChange) -> bytes:
        """The live file with `change` made in place (KnowledgeEditorError when it does not apply)."""
        try:
            sheet = read_sheet(source)
        except KnowledgeMatrixError as exc:
            raise KnowledgeUnavailable(f"No se pudo leer la versión publicada {live.id}: {exc}") from exc
        edit = change_edit(sheet, change)
        try:
            return edit_source(source.suffix, source.read_bytes(), edit)
        except KnowledgeEditorError:
            raise
        except Exception as exc:  # openpyxl or the file: the live version is still served
            raise KnowledgeUnavailable(f"No se pudo editar el archivo de la versión publicada {live.id}: "
                                       f"{type(exc).__name__}.") from exc

    def _draft_with(self, change: MatrixChange, by: str, origin: Mapping[str, Any] | None) -> Draft:
        with self._exclusive():
            live, source = self._live_file()
            data = self._changed(live, source, change)
            draft = self._new_draft(draft_name(live.filename, source.suffix), data, by, live.id, change, origin)
        self._forget_old_drafts()
        return draft

    def draft_with_question(self, entry_id: str, question: str, by: str, *,
                            origin: Mapping[str, Any] | None = None) -> Draft:
        return self._draft_with(MatrixChange("question", entry_id.strip(), (question,)), by, origin)

    def draft_with_entry(self, entry_id: str, questions: Sequence[str], answer: str, by: str, *,
                         origin: Mapping[str, Any] | None = None) -> Draft:
        return self._draft_with(MatrixChange("entry", entry_id.strip(), tuple(questions), answer), by, origin)

    def draft_with_questions(self, additions: Sequence[tuple[str, str]], by: str, *,
                             origin: Mapping[str, Any] | None = None) -> Draft:
        pairs = tuple((entry_id.strip(), question) for entry_id, question in additions)
        return self._draft_with(MatrixChange("questions", "", (), additions=pairs), by, origin)

    def knowledge_for(self, draft_id: str | None = None) -> tuple[str, KnowledgeBase]:
        """The built index of a draft ("draft:<id>") or of the live version (its id), as the bot would answer with
        it: what LLM proposals are read from and screened against (KnowledgeEditorError when there is none)."""
        if draft_id:
            built = self._draft_knowledge(draft_id)
            if built is None:
                raise DraftHasErrors("El borrador tiene errores: corríjalos primero.")
            return f"draft:{draft_id}", built
        live = current_version(self.data_dir)
        built = self._live_knowledge()
        if live is None or built is None:
            raise NothingPublished("Todavía no hay una matriz publicada: suba la matriz y publíquela primero.")
        return live.id, built

    def _change_of(self, draft_id: str) -> MatrixChange | None:
        try:
            return MatrixChange.from_dict(json.loads((self.drafts_dir / draft_id / CHANGE_FILE).read_text(
                encoding="utf-8")))
        except (OSError, ValueError):  # none (an uploaded draft) or unreadable
            return None

    def draft_origin(self, draft_id: str) -> dict[str, Any] | None:
        directory = self._draft_source(draft_id).parent
        try:
            found = json.loads((directory / ORIGIN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):  # none (an uploaded draft) or unreadable: not from a group
            found = {}
        draft = self._read_draft(directory)
        return {**(found if isinstance(found, dict) else {}),
                "base_version": draft.base_version if draft else None,
                "published_version": draft.published_version if draft else None}
