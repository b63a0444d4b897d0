"""Checks an editor can act on: every issue has a row number and a message in Spanish.

Errors block building and publishing (the live version keeps serving); warnings are shown
but do not block. Everything here is pure: the near-duplicate check takes the similar pairs
the caller found with the same embedder the bot uses (`duplicates.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any, Literal
from urllib.parse import urlparse

from knowledge_matrix.matrix import (
    REQUIRED_COLUMNS,
    Button,
    QuickReply,
    Sheet,
    SheetRow,
    canonical_column,
    column_key,
    parse_buttons,
    parse_enabled,
    parse_keywords,
    parse_quick_replies,
    split_questions,
)
from knowledge_matrix.report import COLUMN_LABELS, Issue, Report, Severity
from knowledge_matrix.text import canonical_key


@dataclass(frozen=True)
class MessengerLimits:
    """What the Send API accepts (see meta/outgoing.py for the sending side)."""

    text: int = 2000
    button_template_text: int = 640
    quick_replies: int = 13
    quick_reply_title: int = 20
    buttons: int = 3
    button_title: int = 20
    payload: int = 1000


MESSENGER = MessengerLimits()

# «Palabras clave» of one row: a handful of synonyms is what helps; a cell that is a paragraph is a mistake.
MAX_KEYWORDS = 30
MAX_KEYWORD_CHARS = 80
MAX_REPEATED_KEYWORD_WARNINGS = 200


def _error(code: str, message: str, row: int | None = None, column: str | None = None) -> Issue:
    return Issue("error", code, message, row, column)


def _warning(code: str, message: str, row: int | None = None, column: str | None = None) -> Issue:
    return Issue("warning", code, message, row, column)


def _is_url(value: str) -> bool:
    """Only https: Messenger shows these links to customers, and a plain-http page can be tampered with."""
    parsed = urlparse(value)
    return parsed.scheme == "https" and bool(parsed.netloc) and " " not in value


@dataclass(frozen=True)
class RowCells:
    """One row's cells as the checks read them: stripped, split and parsed once."""

    number: int
    entry_id: str
    answer: str
    questions: tuple[str, ...]
    quick_replies: tuple[QuickReply, ...]
    buttons: tuple[Button, ...]
    link: str
    image: str
    enabled: str  # as written: the message quotes it
    repeats: tuple[tuple[str, str], ...]  # (a question, the earlier question of this entry it repeats)
    keywords: tuple[str, ...] = ()

    @classmethod
    def of(cls, row: SheetRow) -> RowCells:
        questions = split_questions(row.get("questions"))
        first_of: dict[str, str] = {}
        repeats = []
        for question in questions:
            key = canonical_key(question)
            if key and key in first_of:
                repeats.append((question, first_of[key]))
            first_of.setdefault(key, question)
        return cls(
            number=row.number,
            entry_id=row.get("id").strip(),
            answer=row.get("answer").strip(),
            questions=questions,
            quick_replies=parse_quick_replies(row.get("quick_replies")),
            buttons=parse_buttons(row.get("buttons")),
            link=row.get("link").strip(),
            image=row.get("image").strip(),
            enabled=row.get("enabled"),
            repeats=tuple(repeats),
            keywords=parse_keywords(row.get("keywords")),
        )


RowScope = Literal["row", "quick_reply", "button", "repeat", "keyword"]

# What a check of each scope runs on: the row once, or each of its quick replies, buttons, repeated questions.
ITEMS_OF: dict[RowScope, Callable[[RowCells], Sequence[Any]]] = {
    "row": lambda row: (row,),
    "quick_reply": lambda row: row.quick_replies,
    "button": lambda row: row.buttons,
    "repeat": lambda row: row.repeats,
    # Only the keywords a row may have: `too_many_keywords` already speaks of the rest (one cell of a thousand long
    # keywords would otherwise give a thousand errors).
    "keyword": lambda row: row.keywords[:MAX_KEYWORDS],
}


@dataclass(frozen=True)
class Check:
    """One rule for a row: on each item of `scope`, when `fails(item, limits)`, an issue `code` on `column`
    that says `message(item, limits)`."""

    scope: RowScope
    severity: Severity
    code: str
    column: str
    fails: Callable[[Any, MessengerLimits], bool]
    message: Callable[[Any, MessengerLimits], str]


def _example_id(entry_id: str) -> str:
    return "_".join(entry_id.split())


# In the order of the report. Consecutive checks of one scope run together on each item in turn:
# a quick reply's title, then its value, then the next quick reply's.
# fmt: off
ROW_CHECKS: tuple[Check, ...] = (
    #     scope, severity, code, column; then when it fails; then what the editor reads
    Check("row", "error", "missing_id", "id",
          lambda row, _: not row.entry_id,
          lambda row, _: "falta el id de la entrada (un nombre corto y único, p. ej. «horario»)."),
    Check("row", "warning", "id_with_spaces", "id",
          lambda row, _: bool(row.entry_id) and any(ch.isspace() for ch in row.entry_id),
          lambda row, _: f"el id «{row.entry_id}» tiene espacios; use guiones bajos "
                         f"(p. ej. «{_example_id(row.entry_id)}»)."),
    Check("row", "error", "missing_questions", "questions",
          lambda row, _: not row.questions,
          lambda row, _: "falta al menos una forma de preguntar."),
    Check("row", "error", "missing_answer", "answer",
          lambda row, _: not row.answer,
          lambda row, _: "falta la respuesta."),
    Check("row", "error", "answer_too_long", "answer",
          lambda row, limits: bool(row.answer) and len(row.answer) > limits.text,
          lambda row, limits: f"la respuesta tiene {len(row.answer)} caracteres; Messenger admite {limits.text}. "
                              "Acórtela o divídala en dos entradas."),
    Check("row", "error", "too_many_quick_replies", "quick_replies",
          lambda row, limits: len(row.quick_replies) > limits.quick_replies,
          lambda row, limits: f"hay {len(row.quick_replies)} respuestas rápidas; "
                              f"Messenger admite {limits.quick_replies}."),
    Check("quick_reply", "error", "quick_reply_title_too_long", "quick_replies",
          lambda reply, limits: len(reply.title) > limits.quick_reply_title,
          lambda reply, limits: f"la respuesta rápida «{reply.title}» tiene {len(reply.title)} caracteres; "
                                f"el máximo es {limits.quick_reply_title}."),
    Check("quick_reply", "error", "payload_too_long", "quick_replies",
          lambda reply, limits: len(reply.payload) > limits.payload,
          lambda reply, limits: f"el valor de «{reply.title}» supera {limits.payload} caracteres."),
    Check("row", "error", "too_many_buttons", "buttons",
          lambda row, limits: len(row.buttons) > limits.buttons,
          lambda row, limits: f"hay {len(row.buttons)} botones; Messenger admite {limits.buttons}."),
    Check("button", "error", "button_title_too_long", "buttons",
          lambda button, limits: len(button.title) > limits.button_title,
          lambda button, limits: f"el botón «{button.title}» tiene {len(button.title)} caracteres; "
                                 f"el máximo es {limits.button_title}."),
    Check("button", "error", "invalid_url", "buttons",
          lambda button, _: not button.is_link and button.payload.lower().startswith("www."),
          lambda button, _: f"el botón «{button.title}» parece un enlace («{button.payload}»): "
                            "escriba la dirección completa, con https://."),
    Check("button", "error", "invalid_url", "buttons",
          lambda button, _: button.is_link and not _is_url(button.url),
          lambda button, _: f"el enlace del botón «{button.title}» no es una dirección web válida "
                            "(debe empezar con https://)."),
    Check("row", "error", "answer_too_long_for_buttons", "answer",
          lambda row, limits: bool(row.buttons and row.answer) and len(row.answer) > limits.button_template_text,
          lambda row, limits: f"con botones la respuesta puede tener hasta {limits.button_template_text} "
                              f"caracteres y tiene {len(row.answer)}. Acórtela o quite los botones."),
    Check("row", "error", "invalid_url", "link",
          lambda row, _: bool(row.link) and not _is_url(row.link),
          lambda row, _: f"«{row.link}» no es una dirección web válida (debe empezar con https://)."),
    Check("row", "error", "invalid_url", "image",
          lambda row, _: bool(row.image) and not _is_url(row.image),
          lambda row, _: f"«{row.image}» no es una dirección web válida (debe empezar con https://)."),
    Check("row", "error", "invalid_enabled", "enabled",
          lambda row, _: parse_enabled(row.enabled) is None,
          lambda row, _: f"no se entiende «{row.enabled}»; escriba «sí» o «no» (vacío cuenta como «sí»)."),
    Check("repeat", "warning", "repeated_question_in_entry", "questions",
          lambda repeat, _: True,  # `RowCells.repeats` holds only the repeats
          lambda repeat, _: f"«{repeat[0]}» repite «{repeat[1]}» en la misma entrada."),
    Check("row", "error", "too_many_keywords", "keywords",
          lambda row, _: len(row.keywords) > MAX_KEYWORDS,
          lambda row, _: f"hay {len(row.keywords)} palabras clave; el máximo es {MAX_KEYWORDS} por fila "
                         "(entre 3 y 8 suele bastar). Sepárelas con comas y deje las más útiles."),
    Check("keyword", "error", "keyword_too_long", "keywords",
          lambda keyword, _: len(keyword) > MAX_KEYWORD_CHARS,
          lambda keyword, _: f"la palabra clave «{keyword[:40]}…» tiene {len(keyword)} caracteres; el máximo es "
                             f"{MAX_KEYWORD_CHARS}. Use palabras o frases cortas separadas por comas."),
)
# fmt: on
ROW_CHECK_GROUPS: tuple[tuple[RowScope, tuple[Check, ...]], ...] = tuple(
    (scope, tuple(checks)) for scope, checks in groupby(ROW_CHECKS, key=lambda check: check.scope)
)


def _check_row(row: SheetRow, limits: MessengerLimits) -> list[Issue]:
    cells = RowCells.of(row)
    return [
        Issue(check.severity, check.code, check.message(item, limits), cells.number, check.column)
        for scope, checks in ROW_CHECK_GROUPS
        for item in ITEMS_OF[scope](cells)
        for check in checks
        if check.fails(item, limits)
    ]


def _missing_columns(sheet: Sheet) -> list[str]:
    return [column for column in REQUIRED_COLUMNS if column not in sheet.columns]


@dataclass(frozen=True)
class HeaderCheck:
    """One rule for the header row: an issue `code` on row 1 for each of `headers(sheet)` (a header, or for
    `duplicate_column` the earlier header and the repeated one), saying `message(item)`."""

    severity: Severity
    code: str
    headers: Callable[[Sheet], Sequence[Any]]
    message: Callable[[Any], str]


def _duplicate_column(headers: tuple[str, str]) -> str:
    """The same header twice, or two names of one column (`Palabras clave` and `Sinónimos`)."""
    earlier, repeated = headers
    if column_key(earlier) == column_key(repeated):
        return f"la columna «{repeated}» está repetida; deje solo una."
    column = canonical_column(repeated) or ""
    return f"las columnas «{earlier}» y «{repeated}» son ambas «{COLUMN_LABELS.get(column, column)}»; deje solo una."


HEADER_CHECKS: tuple[HeaderCheck, ...] = (
    HeaderCheck(
        "error",
        "missing_column",
        _missing_columns,
        lambda column: (
            f"falta la columna «{COLUMN_LABELS[column]}» en la fila de encabezados (fila 1). "
            "Columnas obligatorias: id, preguntas, respuesta."
        ),
    ),
    HeaderCheck(
        "warning",
        "unknown_column",
        lambda sheet: sheet.unknown_headers,
        lambda header: f"la columna «{header}» no se usa; se conserva sin cambios.",
    ),
    HeaderCheck(
        "error",
        "duplicate_column",
        lambda sheet: sheet.duplicate_headers,
        _duplicate_column,
    ),
)


def validate_sheet(sheet: Sheet, limits: MessengerLimits = MESSENGER) -> Report:
    """Structure, each row, duplicate ids and questions repeated across entries."""
    issues = [
        Issue(check.severity, check.code, check.message(header), 1)
        for check in HEADER_CHECKS
        for header in check.headers(sheet)
    ]
    missing = _missing_columns(sheet)
    if missing:
        return Report(tuple(issues))
    seen = SeenSoFar()
    entry_count = 0
    for row in sheet.rows:
        if row.is_empty:
            issues.append(_warning("empty_row", "la fila está vacía; se ignora.", row.number))
            continue
        row_issues = _check_row(row, limits)
        issues.extend(row_issues)
        issues.extend(_check_against_earlier_rows(row, seen))
        if not any(issue.severity == "error" for issue in row_issues):
            entry_count += 1
    issues.extend(_check_links_to_entries(sheet, set(seen.ids)))
    issues.extend(repeated_keyword_issues(sheet))
    if entry_count == 0 and not missing:
        issues.append(_error("no_entries", "la matriz no tiene ninguna entrada completa (id, preguntas y respuesta)."))
    return Report(tuple(issues), entry_count=entry_count)


@dataclass
class SeenSoFar:
    """What the rows above used: ids (folded → row number) and questions (canonical key → folded id, row, id)."""

    ids: dict[str, int] = field(default_factory=dict)
    questions: dict[str, tuple[str, int, str]] = field(default_factory=dict)


def _check_against_earlier_rows(row: SheetRow, seen: SeenSoFar) -> list[Issue]:
    """An id used above (in any case), a question another entry above already has; records this row's."""
    issues = []
    entry_id = row.get("id").strip()
    if entry_id:
        folded = entry_id.casefold()
        if folded in seen.ids:
            issues.append(
                _error(
                    "duplicate_id",
                    f"el id «{entry_id}» ya se usa en la fila {seen.ids[folded]}; cada id debe ser único.",
                    row.number,
                    "id",
                )
            )
        else:
            seen.ids[folded] = row.number
    for question in split_questions(row.get("questions")):
        key = canonical_key(question)
        owner = seen.questions.get(key)
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
            seen.questions[key] = (entry_id.casefold(), row.number, entry_id)
    return issues


def _rows_text(rows: Sequence[int]) -> str:
    """[4, 9] → «4 y 9»; [4, 9, 12] → «4, 9 y 12»."""
    numbers = [str(row) for row in rows]
    return numbers[0] if len(numbers) == 1 else f"{', '.join(numbers[:-1])} y {numbers[-1]}"


def repeated_keyword_issues(sheet: Sheet, max_warnings: int = MAX_REPEATED_KEYWORD_WARNINGS) -> list[Issue]:
    """A warning for each keyword (canonical key: case, accents, punctuation aside) in two or more entries:
    it points to all of them, so it cannot tell the bot which one to answer."""
    rows_of: dict[str, list[int]] = {}
    ids_of: dict[str, set[str]] = {}
    written: dict[str, str] = {}
    for row in sheet.rows:
        entry_id = row.get("id").strip().casefold()
        for keyword in parse_keywords(row.get("keywords")):
            key = canonical_key(keyword)
            if not key:
                continue
            written.setdefault(key, keyword)
            if row.number not in rows_of.setdefault(key, []):
                rows_of[key].append(row.number)
            ids_of.setdefault(key, set()).add(entry_id)
    repeated = [key for key, rows in rows_of.items() if len(rows) > 1 and len(ids_of[key]) > 1]
    issues = [
        _warning(
            "repeated_keyword",
            f"la palabra clave «{written[key]}» está en las filas {_rows_text(rows_of[key])}: "
            "el bot no sabrá por ella cuál responder. Déjela en una sola fila.",
            rows_of[key][1],
            "keywords",
        )
        for key in repeated[:max_warnings]
    ]
    if len(repeated) > max_warnings:
        issues.append(
            _warning(
                "repeated_keyword",
                f"hay {len(repeated) - max_warnings} palabras clave repetidas más; "
                "corrija las anteriores y vuelva a subir el archivo para verlas.",
                column="keywords",
            )
        )
    return issues


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
