"""What the answer journal keeps: one `AnswerRecord` per customer question and how it was handled, the unanswered
`Question`s read back, and the `Group`s of unanswered questions an editor resolves.

People are kept only as `person_key`: an HMAC of the page and the PSID with ANSWERS_SECRET, enough to count distinct
people and to pair a "¿Quisiste decir…?" with the tap that followed it. It is a pseudonym, not anonymity: whoever holds
the secret and the PSIDs (the contacts store) can compute it again. Questions are kept with their e-mail addresses and
long numbers masked (`answers.privacy`), and only for ANSWERS_RETENTION_DAYS (`AnswersStore.prune`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any, Literal

from answers.privacy import mask_identifiers

MAX_QUESTION = 500
MAX_EXAMPLES = 5
# A "¿Quisiste decir…?" counts as answered when the same person taps a candidate within this long.
SELECTION_WINDOW = timedelta(minutes=10)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")

GroupStatus = Literal["open", "resolved", "dismissed"]
ResolveAction = Literal["added_question", "new_entry", "dismissed"]
RESOLVE_ACTIONS: tuple[str, ...] = ("added_question", "new_entry", "dismissed")
GROUP_FILTERS: tuple[str, ...] = ("open", "resolved", "dismissed", "all")


class AnswersError(Exception):
    """The root of this package's errors."""


class AnswerInvalid(AnswersError, ValueError):
    """A record or a request the journal refuses; `message` is Spanish, for an admin."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


class GroupNotFound(AnswersError, LookupError):
    def __init__(self, group_id: int) -> None:
        super().__init__(f"Ese grupo de preguntas ({group_id}) no existe.")
        self.group_id = group_id


class Handling(str, Enum):
    """How one customer question was handled."""

    MATRIX = "matrix"  # answered from the matrix (entry_id, score)
    SELECTED = "selected"  # the person tapped a "¿Quisiste decir…?" candidate (entry_id)
    DID_YOU_MEAN = "did_you_mean"  # offered candidates (candidate entry ids)
    GPT = "gpt"  # answered by the GPT fallback
    NO_ANSWER = "no_answer"  # nothing matched / fallback declined (reason)
    HANDOFF = "handoff"  # handed to a person because the bot could not answer


def clean_question(text: str) -> str:
    """The question as kept: control and invisible characters removed, spaces collapsed, e-mail addresses and long
    numbers masked (`answers.privacy`), at most 500 characters."""
    return mask_identifiers(" ".join(_CONTROL.sub(" ", text or "").split()))[:MAX_QUESTION]


def person_key(secret: str, page_id: str, psid: str) -> str:
    """HMAC-SHA256(secret, page_id + ":" + psid), first 16 hex digits: counts people without keeping the PSID (a
    pseudonym: the secret and the PSID give it again)."""
    digest = hmac.new(secret.encode("utf-8"), f"{page_id}:{psid}".encode(), hashlib.sha256).hexdigest()
    return digest[:16]


@dataclass(frozen=True)
class AnswerRecord:
    page_id: str
    person_key: str
    question: str
    handling: Handling
    at: datetime
    entry_id: str | None = None
    score: float | None = None
    candidates: tuple[str, ...] = ()
    reason: str | None = None  # no_answer / handoff: why (e.g. "no_match", "llm_declined")
    matrix_version: str | None = None

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise AnswerInvalid("at", "La hora de la pregunta debe tener zona horaria (UTC).")
        if not self.page_id:
            raise AnswerInvalid("page_id", "Falta la página de la pregunta.")
        if not self.person_key:
            raise AnswerInvalid("person_key", "Falta la clave de la persona.")
        object.__setattr__(self, "handling", Handling(self.handling))
        object.__setattr__(self, "question", clean_question(self.question))
        object.__setattr__(self, "candidates", tuple(self.candidates))

    @property
    def is_miss(self) -> bool:
        """A miss as recorded (a "¿Quisiste decir…?" is one only if no tap follows: the store decides that)."""
        return self.handling in (Handling.NO_ANSWER, Handling.HANDOFF)


@dataclass(frozen=True)
class GroupAsked:
    """An open group of unanswered questions as asked in a period: its questions and distinct people in the period
    only, and the latest (aware UTC)."""

    id: int
    label: str
    questions: int
    people: int
    last_at: datetime


@dataclass(frozen=True)
class HandlingHour:
    """How many questions of a page were handled one way in one UTC hour (`hour`: the hour's start, aware UTC)."""

    hour: datetime
    page_id: str
    handling: Handling
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"hour": self.hour.isoformat(), "page_id": self.page_id, "handling": self.handling.value,
                "n": self.n}


@dataclass(frozen=True)
class HandlingDay:
    """How many questions were handled one way in one local day (`day`): `handling_hours` summed per day in the
    database for one UTC offset (the reports over a long period)."""

    day: date
    handling: Handling
    n: int


@dataclass(frozen=True)
class Question:
    """An unanswered question read back from the journal."""

    id: int
    question: str
    at: datetime
    person_key: str
    handling: Handling
    page_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "question": self.question, "at": self.at.isoformat(), "handling": self.handling.value,
                "page_id": self.page_id}


@dataclass(frozen=True)
class Example:
    question: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.question, "at": self.at.isoformat()}


@dataclass(frozen=True)
class Group:
    """Unanswered questions that mean the same, ranked by how many people asked."""

    id: int
    label: str  # the most typical wording (the question nearest the group's centre)
    status: GroupStatus
    people: int  # distinct person_keys
    questions: int  # how many misses
    first_at: datetime
    last_at: datetime
    examples: tuple[Example, ...] = ()
    page_ids: tuple[str, ...] = ()
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolved_entry_id: str | None = None
    resolved_action: str | None = None
    returned: int = 0  # misses assigned after resolved_at ("volvió a preguntarse N veces")
    wording: tuple[str, ...] = field(default=())  # every distinct wording, most asked first (for suggestions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "label": self.label, "status": self.status, "people": self.people,
            "questions": self.questions, "first_at": self.first_at.isoformat(), "last_at": self.last_at.isoformat(),
            "examples": [example.to_dict() for example in self.examples], "page_ids": list(self.page_ids),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "resolved_by": self.resolved_by, "resolved_entry_id": self.resolved_entry_id,
            "resolved_action": self.resolved_action, "returned": self.returned,
        }


@dataclass(frozen=True)
class Suggestion:
    """An entry of the live matrix that may answer a group, best first."""

    entry_id: str
    question: str  # the entry's first question (how editors know it)
    matched_question: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"entry_id": self.entry_id, "question": self.question, "matched_question": self.matched_question,
                "score": round(self.score, 4)}
