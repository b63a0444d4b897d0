"""What validation found, as an editor reads it: issues with a row, a column and a message in Spanish.

On the ground floor of the package (it imports nothing from it), so `errors.InvalidMatrixError`
can carry a `Report` and the checks in `validation.py` can build one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]

COLUMN_LABELS: dict[str, str] = {
    "id": "id",
    "questions": "preguntas",
    "answer": "respuesta",
    "category": "categoría",
    "quick_replies": "respuestas rápidas",
    "buttons": "botones",
    "link": "enlace",
    "image": "imagen",
    "enabled": "activo",
    "language": "idioma",
    "tags": "etiquetas",
    "keywords": "palabras clave",
}


@dataclass(frozen=True)
class Issue:
    severity: Severity
    code: str
    message: str
    row: int | None = None
    column: str | None = None

    def render(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"fila {self.row}")
        if self.column is not None:
            where.append(f"columna «{COLUMN_LABELS.get(self.column, self.column)}»")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": self.code,
            "row": self.row,
            "column": self.column,
            "message": self.message,
        }


@dataclass(frozen=True)
class Report:
    issues: tuple[Issue, ...]
    entry_count: int = 0

    @property
    def errors(self) -> tuple[Issue, ...]:
        return tuple(issue for issue in self.issues if issue.severity == "error")

    @property
    def warnings(self) -> tuple[Issue, ...]:
        return tuple(issue for issue in self.issues if issue.severity == "warning")

    @property
    def error_count(self) -> int:
        return len(self.errors)

    @property
    def ok(self) -> bool:
        return not self.errors

    def with_issues(self, more: Sequence[Issue]) -> Report:
        return Report(issues=self.issues + tuple(more), entry_count=self.entry_count)

    def codes(self) -> list[str]:
        return [issue.code for issue in self.issues]

    def render(self) -> str:
        """The report as an editor reads it, in Spanish."""
        lines: list[str] = []
        if self.errors:
            lines.append(f"Errores ({len(self.errors)}): hay que corregirlos para publicar la matriz.")
            lines.extend(f"  - {issue.render()}" for issue in self.errors)
        if self.warnings:
            lines.append(f"Advertencias ({len(self.warnings)}): conviene revisarlas, pero no impiden publicar.")
            lines.extend(f"  - {issue.render()}" for issue in self.warnings)
        if self.ok:
            lines.append(f"La matriz es válida: {self.entry_count} entrada(s) lista(s) para publicar.")
        else:
            lines.append("La matriz NO se publicará hasta corregir los errores; la versión actual sigue respondiendo.")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "entry_count": self.entry_count, "issues": [issue.to_dict() for issue in self.issues]}
