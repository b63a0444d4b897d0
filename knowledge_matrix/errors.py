"""One root exception for the package; callers catch `KnowledgeMatrixError` and nothing wider."""

from __future__ import annotations

from knowledge_matrix.report import Report  # the ground floor: errors.py imports nothing else of the package


class KnowledgeMatrixError(Exception):
    """Root of every error this package raises on purpose."""


class MatrixReadError(KnowledgeMatrixError):
    """The file cannot be read as a matrix at all (missing, unknown format, no header row, broken)."""

    code = "unreadable_file"


class MatrixTooLargeError(MatrixReadError):
    """The file is over a documented cap (size, rows, columns, declared dimensions): refused before the work."""

    code = "matrix_too_large"


class InvalidMatrixError(KnowledgeMatrixError):
    """The matrix was read but has errors an editor must fix; it is never built or published."""

    def __init__(self, report: Report) -> None:
        super().__init__(f"la matriz tiene {len(report.errors)} error(es)")
        self.report = report


class EmbedderUnavailableError(KnowledgeMatrixError):
    """The embedding model cannot be loaded here (package missing, no local files, no network)."""


class ArtifactError(KnowledgeMatrixError):
    """A built index directory is missing, incomplete or corrupt."""


class RebuildRequiredError(ArtifactError):
    """The artifact was built for another model, dimension or format version: build it again."""


# The GPT fallback (`knowledge_matrix.llm`)


class LLMError(KnowledgeMatrixError):
    """Root of what the GPT fallback raises."""


class LLMSettingsError(LLMError, ValueError):
    """An `LLM_*` variable has a value we cannot use; the message names it (never its value)."""


class LLMCallError(LLMError):
    """One call to the model failed. Messages carry the class of failure and the HTTP status only:
    a server's error text can echo the key (or part of it) and must never reach a log."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class LLMTransientError(LLMCallError):
    """Worth another attempt if time allows: 5xx, 408, 409, connection errors."""


class LLMTimeoutError(LLMTransientError):
    """The attempt ran out of time."""


class LLMRateLimitedError(LLMTransientError):
    """429; `retry_after_seconds` from `retry-after-ms` / `retry-after` when the server sent one."""

    def __init__(self, message: str, *, status: int | None = 429, retry_after_seconds: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after_seconds = retry_after_seconds


class LLMPermanentError(LLMCallError):
    """The same request will fail the same way: wrong key, unknown model, bad request, no quota."""
