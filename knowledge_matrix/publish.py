"""Publishing a matrix: validate, build, keep every version, and switch the live one atomically.

```
<data_dir>/knowledge/
  CURRENT                 the live version and the lineage of versions before it (JSON, replaced atomically)
  history.jsonl           every publish and rollback, one JSON line each (for people; never read to serve)
  .lock                   held while a version is numbered or the pointer changes
  versions/0001/
    version.json          who published what, when, from which file, with how many entries
    index/                the built artifact (`KnowledgeBase.save`: manifest, entries, FAISS index …)
    source.csv            the file as the editor uploaded it (`source.xlsx` for a workbook)
    report.txt            the validation report in Spanish (`report.json` for programs)
```

The action server reads only `CURRENT` and the version it names (`live.py`), so switching
versions is one `os.replace` of a small file: readers see the old pointer or the new one,
never a half-written one, and a version directory is complete before any pointer names it. A
crash leaves at most a temporary file or a staging directory behind; readers ignore both and
the next publish removes them.

**Rollback is undo**: `CURRENT` keeps the lineage of versions that were live, and `rollback`
returns to the one before the live one. Rolling back twice goes two versions back; a publish
after a rollback goes on from the version rolled back to (publish 1, 2, 3, roll back → 2,
publish 4, roll back → 2 again, roll back → 1). Every version stays on disk, so `activate`
(`rollback --to 0003` on the command line) can bring any of them back.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, cast

from knowledge_matrix.artifact import FORMAT_VERSION, MANIFEST, read_manifest, utc_timestamp
from knowledge_matrix.confusables import QueryVectorMemo, confusable_issues
from knowledge_matrix.duplicates import similar_question_pairs
from knowledge_matrix.embedders import Embedder, shared_embedder
from knowledge_matrix.errors import ArtifactError, KnowledgeMatrixError, MatrixReadError
from knowledge_matrix.knowledge_base import ENTRIES_FILE, KnowledgeBase
from knowledge_matrix.matrix import LIMITS, Matrix, Sheet, SheetLimits, entries_from_sheet, read_sheet
from knowledge_matrix.report import Issue, Report
from knowledge_matrix.settings import DEFAULT_SETTINGS, RetrievalSettings, near_duplicate_threshold
from knowledge_matrix.validation import near_duplicate_issues, question_refs, validate_sheet

logger = logging.getLogger(__name__)

KNOWLEDGE_DIR = "knowledge"
VERSIONS_DIR = "versions"
POINTER_FILE = "CURRENT"
HISTORY_FILE = "history.jsonl"
LOCK_FILE = ".lock"
INDEX_DIR = "index"
VERSION_FILE = "version.json"
REPORT_TEXT_FILE = "report.txt"
REPORT_JSON_FILE = "report.json"
SOURCE_STEM = "source"

_VERSION_NAME = re.compile(r"^\d{4,}$")
_POINTER_TEMP_PREFIX = f".{POINTER_FILE}.tmp-"

PointerAction = Literal["publish", "rollback", "activate"]


class NothingToRollBackError(KnowledgeMatrixError):
    """The live version is the first one: there is nothing older to return to."""


class UnknownVersionError(KnowledgeMatrixError):
    """No complete version with that name exists."""


# --- value objects ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionInfo:
    """One published version, as `version.json` records it."""

    id: str
    published_at: str  # ISO 8601, UTC
    published_by: str
    filename: str  # the name of the file the editor published
    entry_count: int
    row_count: int
    model_name: str
    matrix_sha256: str
    source_sha256: str
    warning_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "published_at": self.published_at,
            "published_by": self.published_by,
            "filename": self.filename,
            "entry_count": self.entry_count,
            "row_count": self.row_count,
            "model_name": self.model_name,
            "matrix_sha256": self.matrix_sha256,
            "source_sha256": self.source_sha256,
            "warning_count": self.warning_count,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VersionInfo:
        try:
            return cls(
                id=str(data["id"]),
                published_at=str(data["published_at"]),
                published_by=str(data.get("published_by", "")),
                filename=str(data.get("filename", "")),
                entry_count=int(data["entry_count"]),
                row_count=int(data.get("row_count", 0)),
                model_name=str(data.get("model_name", "")),
                matrix_sha256=str(data.get("matrix_sha256", "")),
                source_sha256=str(data.get("source_sha256", "")),
                warning_count=int(data.get("warning_count", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{VERSION_FILE} is incomplete: {exc}") from exc

    @property
    def published_datetime(self) -> datetime:
        return datetime.fromisoformat(self.published_at)


@dataclass(frozen=True)
class Pointer:
    """What `CURRENT` says: the live version, the versions live before it (oldest first, the live
    one last), and the change that made it live."""

    version: str
    lineage: tuple[str, ...]
    changed_at: str
    changed_by: str
    action: PointerAction

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "lineage": list(self.lineage),
            "changed_at": self.changed_at,
            "changed_by": self.changed_by,
            "action": self.action,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Pointer:
        try:
            version = str(data["version"])
            lineage = tuple(str(item) for item in data.get("lineage") or (version,))
            action = str(data.get("action", "publish"))
            if action not in ("publish", "rollback", "activate") or not lineage or lineage[-1] != version:
                raise ValueError("inconsistent pointer")
            return cls(
                version, lineage, str(data.get("changed_at", "")), str(data.get("changed_by", "")),
                cast(PointerAction, action),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{POINTER_FILE} is unreadable: {exc}") from exc

    @property
    def previous(self) -> str | None:
        """The version `rollback` returns to."""
        return self.lineage[-2] if len(self.lineage) > 1 else None


@dataclass(frozen=True)
class PublishResult:
    """`published`: `version` is live now. Refused: `report` says why; the live version did not change."""

    report: Report
    version: VersionInfo | None = None
    previous_version: str | None = None

    @property
    def published(self) -> bool:
        return self.version is not None


# --- paths and reading --------------------------------------------------------------------------------


def knowledge_dir(data_dir: Path) -> Path:
    return Path(data_dir) / KNOWLEDGE_DIR


def pointer_path(data_dir: Path) -> Path:
    return knowledge_dir(data_dir) / POINTER_FILE


def version_dir(data_dir: Path, version_id: str) -> Path:
    if not _VERSION_NAME.match(version_id):
        raise UnknownVersionError(f"«{version_id}» no es un nombre de versión (por ejemplo 0003)")
    return knowledge_dir(data_dir) / VERSIONS_DIR / version_id


def read_pointer(data_dir: Path) -> Pointer | None:
    """The live version, or None when nothing was ever published."""
    path = pointer_path(data_dir)
    try:
        return Pointer.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"cannot read {path}: {exc}") from exc


def read_version(data_dir: Path, version_id: str) -> VersionInfo:
    directory = version_dir(data_dir, version_id)
    try:
        return VersionInfo.from_dict(json.loads((directory / VERSION_FILE).read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise UnknownVersionError(f"no existe la versión {version_id}") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"cannot read {directory / VERSION_FILE}: {exc}") from exc


def current_version(data_dir: Path) -> VersionInfo | None:
    """The version the bot answers from, or None when nothing was ever published."""
    pointer = read_pointer(data_dir)
    return None if pointer is None else read_version(data_dir, pointer.version)


@dataclass(frozen=True)
class LiveEntries:
    """A version's entries as (id, first question), read from its `entries.json` without loading its index or model
    (an m.me link's or a broadcast's start checked against the live matrix; the reports' entries)."""

    version: str
    entries: tuple[tuple[str, str], ...]

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(entry_id for entry_id, _question in self.entries)


def version_entries(data_dir: Path, version_id: str) -> LiveEntries:
    """The entries of version `version_id` (the one reader of a version's `entries.json`). ArtifactError when they
    cannot be read; UnknownVersionError for a name that is not a version's."""
    path = version_dir(data_dir, version_id) / INDEX_DIR / ENTRIES_FILE
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
        entries = tuple((str(item["id"]), str((item.get("questions") or [""])[0])) for item in items)
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ArtifactError(f"cannot read the entries of version {version_id}: {exc}") from exc
    return LiveEntries(version_id, entries)


def live_entries(data_dir: Path) -> LiveEntries | None:
    """The live version's entries; None when nothing was ever published. ArtifactError when the pointer or the
    version cannot be read."""
    pointer = read_pointer(data_dir)
    return None if pointer is None else version_entries(data_dir, pointer.version)


def list_versions(data_dir: Path) -> list[VersionInfo]:
    """Every complete version, oldest first (staging leftovers of a crashed publish are not versions)."""
    root = knowledge_dir(data_dir) / VERSIONS_DIR
    if not root.is_dir():
        return []
    versions = []
    for path in sorted(root.iterdir(), key=lambda p: int(p.name) if _VERSION_NAME.match(p.name) else -1):
        if not _VERSION_NAME.match(path.name) or not (path / VERSION_FILE).is_file():
            continue
        try:
            versions.append(read_version(data_dir, path.name))
        except KnowledgeMatrixError as exc:
            logger.warning("skipping an unreadable knowledge version", extra={"version": path.name, "error": str(exc)})
    return versions


def load_version(
    data_dir: Path, version_id: str, embedder_for: Callable[[str], Embedder] = shared_embedder
) -> KnowledgeBase:
    """A published version ready to answer, with the embedder its manifest names (by default the
    process-wide one, so loading a version does not load a model again)."""
    directory = version_dir(data_dir, version_id) / INDEX_DIR
    if not (directory / MANIFEST).is_file():
        raise UnknownVersionError(f"la versión {version_id} no existe o está incompleta")
    return KnowledgeBase.load(directory, embedder_for(read_manifest(directory).model_name))


# --- checking and building ----------------------------------------------------------------------------


def full_report(sheet: Sheet, embedder: Embedder | None, limits: SheetLimits = LIMITS) -> Report:
    """Structural checks, plus near-duplicate questions when an embedder is at hand (FAISS top-k
    neighbours, never an N×N matrix)."""
    report = validate_sheet(sheet)
    if embedder is None:
        return report
    refs = question_refs(sheet)
    if len(refs) > limits.questions:
        return report.with_issues([Issue(
            "error", "too_many_questions",
            f"la matriz tiene {len(refs)} formas de preguntar en total; el máximo es {limits.questions}. "
            "Quite variantes repetidas o divida la matriz.",
        )])
    if len(refs) < 2:
        return report
    threshold = near_duplicate_threshold(embedder.name)
    pairs = similar_question_pairs([ref.text for ref in refs], [ref.entry_id for ref in refs], embedder, threshold)
    return report.with_issues(near_duplicate_issues(refs, pairs, threshold))


def check_matrix(path: Path, embedder: Embedder | None) -> tuple[Report, Sheet | None]:
    """The report for a file; a file that cannot be read at all is one error in the report. With an embedder the
    matrix is also built in memory, for the warnings only a built index can give (`checked_build`)."""
    report, sheet, _ = checked_build(path, embedder)
    return report, sheet


def checked_build(
    path: Path, embedder: Embedder | None, settings: RetrievalSettings = DEFAULT_SETTINGS
) -> tuple[Report, Sheet | None, KnowledgeBase | None]:
    """The whole report for a file and, when it has no errors and an embedder is at hand, the knowledge base it
    was checked against (publishing uses it instead of building twice)."""
    try:
        sheet = read_sheet(Path(path))
    except MatrixReadError as exc:
        return Report((Issue("error", exc.code, str(exc)),)), None, None
    report, knowledge_base = checked_report(sheet, embedder, settings)
    return report, sheet, knowledge_base


def checked_report(
    sheet: Sheet, embedder: Embedder | None, settings: RetrievalSettings = DEFAULT_SETTINGS
) -> tuple[Report, KnowledgeBase | None]:
    """`full_report` then `built_report` with one `QueryVectorMemo` around the embedder: the confusable check
    searches the questions the near-duplicate check has just embedded, and reuses their vectors."""
    memo = None if embedder is None else QueryVectorMemo(embedder)
    try:
        return built_report(sheet, full_report(sheet, memo), memo, settings)
    finally:
        if memo is not None:
            memo.release()


def built_report(
    sheet: Sheet, report: Report, embedder: Embedder | None, settings: RetrievalSettings = DEFAULT_SETTINGS
) -> tuple[Report, KnowledgeBase | None]:
    """`report` plus the entries the bot is likely to confuse (`confusables.py`, warnings), found with the matrix
    built as the bot will serve it; unchanged (and no knowledge base) with errors, without an embedder, or when
    nothing can be built (no active entry: publishing says so when it builds)."""
    if embedder is None or not report.ok:
        return report, None
    try:
        knowledge_base = build_knowledge_base(sheet, embedder, settings)
    except KnowledgeMatrixError as exc:
        logger.info("matrix not built for the confusable check", extra={"error": str(exc)})
        return report, None
    return report.with_issues(confusable_issues(knowledge_base)), knowledge_base


def build_knowledge_base(
    sheet: Sheet, embedder: Embedder, settings: RetrievalSettings = DEFAULT_SETTINGS
) -> KnowledgeBase:
    matrix = Matrix.of(entries_from_sheet(sheet), source_sha256=sheet.source_sha256)
    return KnowledgeBase.build(matrix, embedder, settings.with_changes(embedder=embedder.name))


def load_draft(
    path: Path, *, embedder: Embedder | None = None, settings: RetrievalSettings = DEFAULT_SETTINGS
) -> tuple[Report, KnowledgeBase | None]:
    """Check and build a matrix in memory, without publishing it (the editor's "try the draft").
    The knowledge base is None when the report has errors."""
    embedder = embedder or shared_embedder(settings.embedder)
    report, sheet, built = checked_build(path, embedder, settings)
    if not report.ok or sheet is None:
        return report, None
    return report, built or build_knowledge_base(sheet, embedder, settings)


# --- publishing -----------------------------------------------------------------------------------------


def publish(
    path: Path,
    data_dir: Path,
    now: datetime,
    *,
    by: str = "cli",
    filename: str | None = None,
    embedder: Embedder | None = None,
    settings: RetrievalSettings = DEFAULT_SETTINGS,
) -> PublishResult:
    """Validate, build, save as the next version and make it live. A matrix with errors is refused
    (the result carries the Spanish report) and the live version keeps serving. `filename` is the
    name the editor knows the file by (default: the name of `path`)."""
    path = Path(path)
    embedder = embedder or shared_embedder(settings.embedder)
    report, sheet, built = checked_build(path, embedder, settings)  # the slow part, outside the lock
    if not report.ok or sheet is None:
        logger.info("knowledge matrix refused", extra={"file": path.name, "errors": report.error_count, "by": by})
        return PublishResult(report)
    knowledge_base = built or build_knowledge_base(sheet, embedder, settings)
    timestamp = utc_timestamp(now)
    root = knowledge_dir(data_dir)
    with _locked(root):
        _remove_leftovers(root)
        version_id = _next_version_id(root / VERSIONS_DIR)
        staging = root / VERSIONS_DIR / f".{version_id}.staging-{uuid.uuid4().hex[:12]}"
        staging.mkdir(parents=True)
        try:
            manifest = knowledge_base.save(staging / INDEX_DIR, now=now)
            shutil.copyfile(path, staging / f"{SOURCE_STEM}{path.suffix.lower()}")
            (staging / REPORT_TEXT_FILE).write_text(report.render() + "\n", encoding="utf-8")
            _write_json(staging / REPORT_JSON_FILE, report.to_dict())
            info = VersionInfo(
                id=version_id,
                published_at=timestamp,
                published_by=by,
                filename=filename or path.name,
                entry_count=manifest.entry_count,
                row_count=manifest.row_count,
                model_name=manifest.model_name,
                matrix_sha256=manifest.matrix_sha256,
                source_sha256=manifest.source_sha256,
                warning_count=len(report.warnings),
            )
            _write_json(staging / VERSION_FILE, info.to_dict())
            _fsync_tree(staging)
            os.replace(staging, root / VERSIONS_DIR / version_id)
            _fsync_directory(root / VERSIONS_DIR)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        previous = _pointer_or_none(data_dir)
        lineage = (*(previous.lineage if previous else ()), version_id)
        _switch(data_dir, Pointer(version_id, lineage, timestamp, by, "publish"))
    logger.info(
        "knowledge version published",
        extra={"version": version_id, "previous": previous.version if previous else None, "by": by,
               "entries": info.entry_count, "file": path.name},
    )
    return PublishResult(report, info, previous.version if previous else None)


def outdated_live_source(data_dir: Path) -> Path | None:
    """The live version's own source file when its index is of an older format than this code reads (an upgrade
    changed how matrices are indexed); None when nothing is live or the live index is current."""
    pointer = read_pointer(data_dir)
    if pointer is None:
        return None
    directory = version_dir(data_dir, pointer.version)
    try:
        manifest = read_manifest(directory / INDEX_DIR)
    except ArtifactError:
        return None  # broken rather than old: the live loader logs it; a rebuild would hide it
    if manifest.format_version == FORMAT_VERSION:
        return None
    sources = sorted(directory.glob(f"{SOURCE_STEM}.*"))
    return sources[0] if sources else None


def republish_if_outdated(
    data_dir: Path, now: datetime, *, by: str = "upgrade", embedder: Embedder | None = None,
    settings: RetrievalSettings = DEFAULT_SETTINGS,
) -> PublishResult | None:
    """After an upgrade that changed the index format, the live version cannot be loaded (the bot would offer a
    person for every question): publish its own source file again, as the next version with the same file name, so
    the editors' matrix answers again without anyone re-uploading it. None when there was nothing to do."""
    source = outdated_live_source(data_dir)
    if source is None:
        return None
    live = current_version(data_dir)
    logger.warning("the live knowledge index is of an older format: publishing its source again",
                   extra={"version": live.id if live else None})
    return publish(source, data_dir, now, by=by, filename=live.filename if live else None, embedder=embedder,
                   settings=settings)


def rollback(data_dir: Path, now: datetime, *, by: str = "cli") -> VersionInfo:
    """Make the version before the live one live again (undo; see the module docstring)."""
    with _locked(knowledge_dir(data_dir)):
        pointer = read_pointer(data_dir)
        if pointer is None or pointer.previous is None:
            raise NothingToRollBackError("no hay una versión anterior a la que volver")
        target = read_version(data_dir, pointer.previous)
        _require_complete(data_dir, target.id)
        _switch(data_dir, Pointer(target.id, pointer.lineage[:-1], utc_timestamp(now), by, "rollback"))
    logger.info("knowledge version rolled back", extra={"version": target.id, "from": pointer.version, "by": by})
    return target


def activate(data_dir: Path, version_id: str, now: datetime, *, by: str = "cli") -> VersionInfo:
    """Make any published version live; `rollback` afterwards returns to the one live before it."""
    with _locked(knowledge_dir(data_dir)):
        target = read_version(data_dir, version_id)
        _require_complete(data_dir, target.id)
        pointer = read_pointer(data_dir)
        if pointer is not None and pointer.version == target.id:
            return target
        lineage = (*(pointer.lineage if pointer else ()), target.id)
        _switch(data_dir, Pointer(target.id, lineage, utc_timestamp(now), by, "activate"))
    logger.info("knowledge version activated", extra={"version": target.id, "by": by})
    return target


# --- atomic writes -------------------------------------------------------------------------------------


def write_pointer(data_dir: Path, pointer: Pointer) -> None:
    """Write temp + fsync + `os.replace` + fsync of the directory: `CURRENT` is the old or the new one."""
    root = knowledge_dir(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    temporary = root / f"{_POINTER_TEMP_PREFIX}{uuid.uuid4().hex[:12]}"
    with temporary.open("w", encoding="utf-8") as handle:
        handle.write(json.dumps(pointer.to_dict(), ensure_ascii=False, indent=1) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, root / POINTER_FILE)
    _fsync_directory(root)


def _switch(data_dir: Path, pointer: Pointer) -> None:
    write_pointer(data_dir, pointer)
    history = knowledge_dir(data_dir) / HISTORY_FILE
    with history.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"at": pointer.changed_at, "action": pointer.action, "version": pointer.version,
                                 "by": pointer.changed_by}, ensure_ascii=False) + "\n")


def _pointer_or_none(data_dir: Path) -> Pointer | None:
    """The pointer before a publish; an unreadable one is logged and replaced, so publishing repairs it."""
    try:
        return read_pointer(data_dir)
    except ArtifactError as exc:
        logger.error("the knowledge pointer was unreadable; the new version starts a new lineage",
                     extra={"error": str(exc)})
        return None


def _require_complete(data_dir: Path, version_id: str) -> None:
    if not (version_dir(data_dir, version_id) / INDEX_DIR / MANIFEST).is_file():
        raise UnknownVersionError(f"la versión {version_id} está incompleta; no se puede volver a ella")


def _next_version_id(versions: Path) -> str:
    numbers = [int(p.name) for p in versions.iterdir() if _VERSION_NAME.match(p.name)] if versions.is_dir() else []
    return f"{max(numbers, default=0) + 1:04d}"


def _remove_leftovers(root: Path) -> None:
    """Pointer temp files and staging directories of a publish that crashed (the lock is held)."""
    for temporary in root.glob(f"{_POINTER_TEMP_PREFIX}*"):
        temporary.unlink(missing_ok=True)
    versions = root / VERSIONS_DIR
    if versions.is_dir():
        for staging in versions.glob(".*.staging-*"):
            shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One writer at a time across processes (the CLI, the console, the launcher)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / LOCK_FILE).open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _fsync_tree(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    for path in [directory, *(p for p in directory.rglob("*") if p.is_dir())]:
        _fsync_directory(path)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
