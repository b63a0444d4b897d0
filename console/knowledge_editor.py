"""The knowledge editor page's narrow view of the knowledge matrix: upload a draft, try it, publish, roll back.

The console programs against `KnowledgeEditor`; `MatrixEditor` implements it over `knowledge_matrix.publish`
(the same versions and live pointer the action server answers from), and unit tests use an in-memory fake with
the same semantics. Calls are synchronous (they read files and embed text): the console runs them in a thread.
Heavy work (validating an upload, building a draft to try, publishing) runs one at a time per editor: a second
request meanwhile is refused at once with `EditorBusy` (429, in Spanish) instead of queueing threads and memory.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from core.errors import DomainError
from knowledge_matrix.embedders import Embedder, shared_embedder
from knowledge_matrix.errors import KnowledgeMatrixError
from knowledge_matrix.knowledge_base import KnowledgeBase
from knowledge_matrix.matrix import Sheet, SheetLimits, read_sheet, split_questions
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
from knowledge_matrix.retrieval import Verdict
from knowledge_matrix.settings import DEFAULT_SETTINGS
from knowledge_matrix.text import fold

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

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "text": self.text, "entry_id": self.entry_id,
                "confidence": self.confidence, "suggestions": list(self.suggestions)}


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

    def publish(self, draft_id: str, by: str) -> Version:
        """Make a draft without errors the live version (DraftHasErrors otherwise)."""
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

    def draft_origin(self, draft_id: str) -> dict[str, Any] | None:
        """What a draft made by `draft_with_*` came from (`origin`), None for an uploaded one."""
        ...


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


def _tried(verdict: Verdict) -> TriedAnswer:
    hit = verdict.hit
    if verdict.kind == "answer" and hit is not None:
        return TriedAnswer("answer", hit.entry.answer, hit.entry.id, round(hit.score, 3))
    if verdict.kind == "ambiguous":
        return TriedAnswer("suggest", suggestions=tuple(h.entry.questions[0] if h.entry.questions else h.entry.id
                                                        for h in verdict.candidates))
    return TriedAnswer("none", confidence=round(hit.score, 3) if hit is not None else None)


def _version(info: VersionInfo, live_id: str | None) -> Version:
    return Version(info.id, info.published_datetime, info.published_by, info.entry_count, info.filename,
                   live=info.id == live_id)


# --- a draft made of the live matrix plus one change («Preguntas sin respuesta») -----------------------

MAX_QUESTION_CHARS = 500  # one way of asking, as the matrix keeps it
MAX_NEW_QUESTIONS = 50
ORIGIN_FILE = "origin.json"  # beside draft.json: what a draft made from the live matrix came from
DRAFT_NAME_SUFFIX = " (Preguntas sin respuesta)"  # the editor's file name, then this: a draft made in the console
_SEPARATORS = re.compile(r"[\s|]+")  # a new line or "|" would split one question into two in the cell


def clean_question(text: str) -> str:
    """One way of asking as a cell keeps it: one line, no «|» (both separate questions), no control characters."""
    printable = "".join(char if char.isprintable() else " " for char in text)
    return _SEPARATORS.sub(" ", printable).strip()[:MAX_QUESTION_CHARS].strip()


def sheet_table(sheet: Sheet) -> list[list[str]]:
    """A read sheet as a table again (header row first) that reads back the same: its columns under the names
    editors use, the editor's own columns kept."""
    keys = [*sheet.columns, *(f"extra:{header}" for header in sheet.unknown_headers)]
    header = [COLUMN_LABELS.get(column, column) for column in sheet.columns] + list(sheet.unknown_headers)
    return [header] + [[row.cells.get(key, "") for key in keys] for row in sheet.rows]


def table_csv(table: Sequence[Sequence[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(table)
    return out.getvalue().encode("utf-8")


def _entry_rows(sheet: Sheet, entry_id: str) -> list[int]:
    return [index for index, row in enumerate(sheet.rows) if row.get("id").strip() == entry_id]


def with_question(sheet: Sheet, entry_id: str, question: str) -> list[list[str]]:
    """The sheet's table with `question` added to entry `entry_id`'s ways of asking (KnowledgeEditorError when the
    entry is not there, the question is empty or the entry already has it)."""
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
    table = sheet_table(sheet)
    column = sheet.columns.index("questions")
    table[found[0] + 1][column] = current.rstrip() + separator + cleaned if current.strip() else cleaned
    return table


def with_entry(sheet: Sheet, entry_id: str, questions: Sequence[str], answer: str) -> list[list[str]]:
    """The sheet's table with a new entry at the end (KnowledgeEditorError when the id is taken, or there is no
    question or no answer). The id's form and the rest are the validation report's to judge."""
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
    table = sheet_table(sheet)
    new_row = [""] * len(table[0])
    for column, value in (("id", entry_id), ("questions", "\n".join(cleaned)), ("answer", answer.strip())):
        new_row[sheet.columns.index(column)] = value
    table.append(new_row)
    return table


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
        name, source_name = upload_names(filename)
        draft_id = uuid.uuid4().hex[:12]
        directory = self.drafts_dir / draft_id
        with self._exclusive():
            embedder = self.embedder()
            directory.mkdir(parents=True)
            try:
                source = directory / source_name
                source.write_bytes(data)
                report, _sheet = check_matrix(source, embedder)
                draft = Draft(draft_id, name, by, self.clock(), report.ok, report.entry_count, report_issues(report),
                              report.render())
                (directory / DRAFT_FILE).write_text(json.dumps(draft.to_dict(), ensure_ascii=False),
                                                    encoding="utf-8")
            except BaseException:
                shutil.rmtree(directory, ignore_errors=True)  # no orphan draft, whatever went wrong
                raise
        self._forget_old_drafts()
        return draft

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
            draft_answer = _tried(knowledge.answer(question)) if knowledge is not None else TriedAnswer(
                "none", text="El borrador tiene errores: corríjalos para probarlo.")
        live = self._live_knowledge()
        return TryResult(question, draft_answer, _tried(live.answer(question)) if live is not None else None)

    # versions

    def status(self) -> KnowledgeStatus:
        live = current_version(self.data_dir)
        live_id = live.id if live else None
        versions = tuple(_version(info, live_id) for info in reversed(list_versions(self.data_dir)))
        return KnowledgeStatus(live=_version(live, live_id) if live else None, versions=versions,
                               drafts=tuple(self.drafts()[:5]))

    def publish(self, draft_id: str, by: str) -> Version:
        source = self._draft_source(draft_id)
        draft = self._read_draft(source.parent)
        with self._exclusive():
            # Stored with the editor's file name, not the draft's copy ("source.csv"): the version list and a
            # rollback read it back from the version.
            result = publish_matrix(source, self.data_dir, self.clock(), by=by, embedder=self.embedder(),
                                    filename=draft.filename if draft is not None else None)
        if result.version is None:
            raise DraftHasErrors(
                f"El borrador tiene {result.report.error_count} error(es): corríjalos y vuelva a subir el archivo. "
                "La versión publicada sigue respondiendo."
            )
        return _version(result.version, result.version.id)

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

    def _live_sheet(self) -> tuple[Sheet, VersionInfo]:
        live = current_version(self.data_dir)
        if live is None:
            raise KnowledgeEditorError("Todavía no hay una matriz publicada: suba la matriz y publíquela primero.")
        sources = sorted(version_dir(self.data_dir, live.id).glob("source.*"))
        try:
            if not sources:
                raise KnowledgeMatrixError(f"the version {live.id} kept no source file")
            return read_sheet(sources[0]), live
        except KnowledgeMatrixError as exc:
            raise KnowledgeUnavailable(f"No se pudo leer la versión publicada {live.id}: {exc}") from exc

    def _draft_from(self, table: list[list[str]], live: VersionInfo, by: str,
                    origin: Mapping[str, Any] | None) -> Draft:
        stem = Path(live.filename).stem.removesuffix(DRAFT_NAME_SUFFIX) or "matriz"
        draft = self.upload(f"{stem}{DRAFT_NAME_SUFFIX}.csv", table_csv(table), by)
        if origin is not None:
            (self.drafts_dir / draft.id / ORIGIN_FILE).write_text(json.dumps(dict(origin), ensure_ascii=False),
                                                                  encoding="utf-8")
        return draft

    def draft_with_question(self, entry_id: str, question: str, by: str, *,
                            origin: Mapping[str, Any] | None = None) -> Draft:
        sheet, live = self._live_sheet()
        return self._draft_from(with_question(sheet, entry_id, question), live, by, origin)

    def draft_with_entry(self, entry_id: str, questions: Sequence[str], answer: str, by: str, *,
                         origin: Mapping[str, Any] | None = None) -> Draft:
        sheet, live = self._live_sheet()
        return self._draft_from(with_entry(sheet, entry_id, questions, answer), live, by, origin)

    def draft_origin(self, draft_id: str) -> dict[str, Any] | None:
        directory = self._draft_source(draft_id).parent
        try:
            found = json.loads((directory / ORIGIN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):  # none (an uploaded draft) or unreadable: not from a group
            return None
        return found if isinstance(found, dict) else None
