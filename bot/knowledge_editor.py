"""The knowledge editor page's narrow view of the knowledge matrix: upload a draft, try it, publish, roll back.

The console programs against `KnowledgeEditor`; the implementation over the `knowledge_matrix` package lives
beside it, and tests use an in-memory fake with the same semantics. Calls are synchronous (they read files
and embed text): the console runs them in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class KnowledgeEditorError(Exception):
    """Root of the editor's errors; `message_es` is shown to the editor."""

    status_code = 422
    reason_code = "knowledge_error"

    def __init__(self, message_es: str) -> None:
        super().__init__(message_es)
        self.message_es = message_es


class DraftNotFound(KnowledgeEditorError):
    status_code = 404
    reason_code = "draft_not_found"


class DraftHasErrors(KnowledgeEditorError):
    status_code = 409
    reason_code = "draft_has_errors"


class NothingToRollBack(KnowledgeEditorError):
    status_code = 409
    reason_code = "nothing_to_roll_back"


class KnowledgeUnavailable(KnowledgeEditorError):
    status_code = 503
    reason_code = "knowledge_unavailable"


@dataclass(frozen=True)
class ReportIssue:
    severity: str  # "error" or "warning"
    code: str
    message: str  # Spanish, as `knowledge_matrix.validation.Issue.render()` words it
    row: int | None = None
    column: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "code": self.code, "message": self.message, "row": self.row,
                "column": self.column}


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
