"""Checks an editor can act on: every issue has a row number and a message in Spanish.

Errors block building and publishing (the live version keeps serving); warnings are shown
but do not block. Everything here is pure: the near-duplicate check takes the similar pairs
the caller found with the same embedder the bot uses (`duplicates.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlparse

from knowledge_matrix.matrix import (
    REQUIRED_COLUMNS,
    Sheet,
    SheetRow,
    parse_buttons,
    parse_enabled,
    parse_quick_replies,
    split_questions,
)
from knowledge_matrix.text import canonical_key

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class MessengerLimits:
    """What the Send API accepts (see connectors/outgoing.py for the sending side)."""

    text: int = 2000
    button_template_text: int = 640
    quick_replies: int = 13
    quick_reply_title: int = 20
    buttons: int = 3
    button_title: int = 20
    payload: int = 1000


MESSENGER = MessengerLimits()

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


def _error(code: str, message: str, row: int | None = None, column: str | None = None) -> Issue:
    return Issue("error", code, message, row, column)


def _warning(code: str, message: str, row: int | None = None, column: str | None = None) -> Issue:
    return Issue("warning", code, message, row, column)


def _is_url(value: str) -> bool:
    """Only https: Messenger shows these links to customers, and a plain-http page can be tampered with."""
    parsed = urlparse(value)
    return parsed.scheme == "https" and bool(parsed.netloc) and " " not in value


def _check_row(row: SheetRow, limits: MessengerLimits) -> list[Issue]:
    issues: list[Issue] = []
    number = row.number
    entry_id = row.get("id").strip()
    answer = row.get("answer").strip()
    questions = split_questions(row.get("questions"))
    if not entry_id:
        issues.append(
            _error("missing_id", "falta el id de la entrada (un nombre corto y único, p. ej. «horario»).", number, "id")
        )
    elif any(ch.isspace() for ch in entry_id):
        issues.append(
            _warning(
                "id_with_spaces",
                f"el id «{entry_id}» tiene espacios; use guiones bajos (p. ej. «{'_'.join(entry_id.split())}»).",
                number,
                "id",
            )
        )
    if not questions:
        issues.append(_error("missing_questions", "falta al menos una forma de preguntar.", number, "questions"))
    if not answer:
        issues.append(_error("missing_answer", "falta la respuesta.", number, "answer"))
    elif len(answer) > limits.text:
        issues.append(
            _error(
                "answer_too_long",
                f"la respuesta tiene {len(answer)} caracteres; Messenger admite {limits.text}. "
                "Acórtela o divídala en dos entradas.",
                number,
                "answer",
            )
        )
    quick_replies = parse_quick_replies(row.get("quick_replies"))
    if len(quick_replies) > limits.quick_replies:
        issues.append(
            _error(
                "too_many_quick_replies",
                f"hay {len(quick_replies)} respuestas rápidas; Messenger admite {limits.quick_replies}.",
                number,
                "quick_replies",
            )
        )
    for reply in quick_replies:
        if len(reply.title) > limits.quick_reply_title:
            issues.append(
                _error(
                    "quick_reply_title_too_long",
                    f"la respuesta rápida «{reply.title}» tiene {len(reply.title)} caracteres; "
                    f"el máximo es {limits.quick_reply_title}.",
                    number,
                    "quick_replies",
                )
            )
        if len(reply.payload) > limits.payload:
            issues.append(
                _error(
                    "payload_too_long",
                    f"el valor de «{reply.title}» supera {limits.payload} caracteres.",
                    number,
                    "quick_replies",
                )
            )
    buttons = parse_buttons(row.get("buttons"))
    if len(buttons) > limits.buttons:
        issues.append(
            _error(
                "too_many_buttons", f"hay {len(buttons)} botones; Messenger admite {limits.buttons}.", number, "buttons"
            )
        )
    for button in buttons:
        if len(button.title) > limits.button_title:
            issues.append(
                _error(
                    "button_title_too_long",
                    f"el botón «{button.title}» tiene {len(button.title)} caracteres; "
                    f"el máximo es {limits.button_title}.",
                    number,
                    "buttons",
                )
            )
        if not button.is_link and button.payload.lower().startswith("www."):
            issues.append(
                _error(
                    "invalid_url",
                    f"el botón «{button.title}» parece un enlace («{button.payload}»): escriba la dirección "
                    "completa, con https://.",
                    number,
                    "buttons",
                )
            )
        if button.is_link and not _is_url(button.url):
            issues.append(
                _error(
                    "invalid_url",
                    f"el enlace del botón «{button.title}» no es una dirección web válida "
                    "(debe empezar con https://).",
                    number,
                    "buttons",
                )
            )
    if buttons and answer and len(answer) > limits.button_template_text:
        issues.append(
            _error(
                "answer_too_long_for_buttons",
                f"con botones la respuesta puede tener hasta {limits.button_template_text} caracteres "
                f"y tiene {len(answer)}. "
                "Acórtela o quite los botones.",
                number,
                "answer",
            )
        )
    for column in ("link", "image"):
        value = row.get(column).strip()
        if value and not _is_url(value):
            issues.append(
                _error(
                    "invalid_url",
                    f"«{value}» no es una dirección web válida (debe empezar con https://).",
                    number,
                    column,
                )
            )
    if parse_enabled(row.get("enabled")) is None:
        issues.append(
            _error(
                "invalid_enabled",
                f"no se entiende «{row.get('enabled')}»; escriba «sí» o «no» (vacío cuenta como «sí»).",
                number,
                "enabled",
            )
        )
    seen: dict[str, str] = {}
    for question in questions:
        key = canonical_key(question)
        if key and key in seen:
            issues.append(
                _warning(
                    "repeated_question_in_entry",
                    f"«{question}» repite «{seen[key]}» en la misma entrada.",
                    number,
                    "questions",
                )
            )
        seen.setdefault(key, question)
    return issues


def validate_sheet(sheet: Sheet, limits: MessengerLimits = MESSENGER) -> Report:
    """Structure, each row, duplicate ids and questions repeated across entries."""
    issues: list[Issue] = []
    missing = [column for column in REQUIRED_COLUMNS if column not in sheet.columns]
    for column in missing:
        issues.append(
            _error(
                "missing_column",
                f"falta la columna «{COLUMN_LABELS[column]}» en la fila de encabezados (fila 1). "
                "Columnas obligatorias: id, preguntas, respuesta.",
                1,
            )
        )
    for header in sheet.unknown_headers:
        issues.append(_warning("unknown_column", f"la columna «{header}» no se usa; se conserva sin cambios.", 1))
    for header in sheet.duplicate_headers:
        issues.append(_error("duplicate_column", f"la columna «{header}» está repetida; deje solo una.", 1))
    if missing:
        return Report(tuple(issues))
    ids: dict[str, int] = {}
    question_owner: dict[str, tuple[str, int, str]] = {}
    entry_count = 0
    for row in sheet.rows:
        if row.is_empty:
            issues.append(_warning("empty_row", "la fila está vacía; se ignora.", row.number))
            continue
        row_issues = _check_row(row, limits)
        issues.extend(row_issues)
        entry_id = row.get("id").strip()
        if entry_id:
            folded = entry_id.casefold()
            if folded in ids:
                issues.append(
                    _error(
                        "duplicate_id",
                        f"el id «{entry_id}» ya se usa en la fila {ids[folded]}; cada id debe ser único.",
                        row.number,
                        "id",
                    )
                )
            else:
                ids[folded] = row.number
        for question in split_questions(row.get("questions")):
            key = canonical_key(question)
            owner = question_owner.get(key)
            if key and owner is not None and owner[0] != entry_id.casefold():
                issues.append(
                    _error(
                        "duplicate_question",
                        f"la pregunta «{question}» ya está en la entrada «{owner[2]}» (fila {owner[1]}); "
                        "el bot no sabría cuál responder. Déjela en una sola entrada.",
                        row.number,
                        "questions",
                    )
                )
            elif key and owner is None:
                question_owner[key] = (entry_id.casefold(), row.number, entry_id)
        if not any(issue.severity == "error" for issue in row_issues):
            entry_count += 1
    issues.extend(_check_links_to_entries(sheet, set(ids)))
    if entry_count == 0 and not missing:
        issues.append(_error("no_entries", "la matriz no tiene ninguna entrada completa (id, preguntas y respuesta)."))
    return Report(tuple(issues), entry_count=entry_count)


def _check_links_to_entries(sheet: Sheet, ids: set[str]) -> list[Issue]:
    """A quick reply or button whose value is `#id` must name an entry of this matrix."""
    issues = []
    for row in sheet.rows:
        values = [(r.title, r.payload, "quick_replies") for r in parse_quick_replies(row.get("quick_replies"))]
        values += [(b.title, b.payload, "buttons") for b in parse_buttons(row.get("buttons")) if not b.is_link]
        for title, payload, column in values:
            if payload.startswith("#") and payload[1:].strip().casefold() not in ids:
                issues.append(
                    _error(
                        "unknown_entry_link",
                        f"«{title}» lleva a «{payload}», pero no hay ninguna entrada con id «{payload[1:].strip()}».",
                        row.number,
                        column,
                    )
                )
    return issues


@dataclass(frozen=True)
class QuestionRef:
    """A question of an entry, for the near-duplicate check."""

    entry_id: str
    row: int
    text: str


MAX_NEAR_DUPLICATE_WARNINGS = 200


def near_duplicate_issues(
    questions: Sequence[QuestionRef],
    pairs: Iterable[tuple[int, int, float]],
    threshold: float,
    *,
    max_warnings: int = MAX_NEAR_DUPLICATE_WARNINGS,
) -> list[Issue]:
    """Warn about questions of different entries that the bot can hardly tell apart.

    `pairs` are `(i, j, cosine)` between `questions[i]` and `questions[j]` with the bot's own
    embedder (`duplicates.similar_question_pairs` finds them without an N×N matrix). Each pair
    of entries is reported once, with its most similar questions; past `max_warnings` one more
    warning says how many were left out, so a pathological matrix cannot make a huge report.
    """
    best: dict[tuple[str, str], tuple[float, int, int]] = {}
    for i, j, score in pairs:
        if not (0 <= i < len(questions) and 0 <= j < len(questions)):
            raise ValueError("a pair names a question that does not exist")
        a, b = questions[i], questions[j]
        if a.entry_id == b.entry_id or score < threshold:
            continue
        key = (min(a.entry_id, b.entry_id), max(a.entry_id, b.entry_id))
        current = best.get(key)
        if current is None or score > current[0]:
            best[key] = (float(score), i, j)
    ranked = sorted(best.values(), key=lambda item: (-item[0], item[1], item[2]))
    issues = []
    for score, i, j in ranked[:max_warnings]:
        first, second = sorted((questions[i], questions[j]), key=lambda q: q.row)
        issues.append(
            _warning(
                "near_duplicate_question",
                f"«{second.text}» (entrada «{second.entry_id}») se parece mucho a «{first.text}» "
                f"(entrada «{first.entry_id}», fila {first.row}; similitud {score:.2f}). "
                "Los usuarios que pregunten así pueden recibir cualquiera de las dos respuestas: "
                "reformule una de ellas o una las dos entradas.",
                second.row,
                "questions",
            )
        )
    if len(ranked) > max_warnings:
        issues.append(
            _warning(
                "near_duplicate_question",
                f"hay {len(ranked) - max_warnings} pares de entradas más con preguntas casi iguales; "
                "corrija las anteriores y vuelva a subir el archivo para verlos.",
            )
        )
    return issues


def question_refs(sheet: Sheet) -> list[QuestionRef]:
    """Every question of every complete row, for `near_duplicate_issues`."""
    refs: list[QuestionRef] = []
    for row in sheet.rows:
        entry_id = row.get("id").strip()
        if row.is_empty or not entry_id:
            continue
        refs.extend(QuestionRef(entry_id, row.number, q) for q in split_questions(row.get("questions")))
    return refs
