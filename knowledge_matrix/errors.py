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
