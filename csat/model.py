"""Customer satisfaction's vocabulary: a question asked after an agent closed a conversation (`Ask`), how it was
asked, what became of it, and the person's answer (a rating 1 to 5 and an optional comment).

Pure: the messages the person gets (Meta's customer feedback template, or quick replies), the question id that ties
Meta's `messaging_feedback` answer back to its ask, and the reading of an answer."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from meta.events import CSAT_SCORES, FEEDBACK_TEXT_MAX_CHARS, csat_payload


class CsatError(Exception):
    """The root of the package's errors."""


# The "agent" (and closer) of an ask made after the bot resolved a conversation on its own (csat/resolved.py): no
# console user can be named so (console.auth.RESERVED_USERNAMES), so the reports show the bot as its own row.
BOT_AGENT = "bot"


class How(str, Enum):
    """How the person was asked."""

    TEMPLATE = "template"  # Meta's customer feedback template (attachment template_type customer_feedback)
    QUICK_REPLIES = "quick_replies"  # a text with five quick replies, inside the 24-hour window only


class AskStatus(str, Enum):
    ASKING = "asking"  # recorded, the outbox not yet asked (a crash here leaves it so: never sent twice)
    SENT = "sent"  # queued in the outbox (the outbox sends it, or records why not)
    NOT_SENT = "not_sent"  # the policy refused it (e.g. more than 7 days after the person's last message)
    ANSWERED = "answered"


class Mode(str, Enum):
    """CSAT_MODE: what the app asks with."""

    TEMPLATE = "template"
    QUICK_REPLIES = "quick_replies"
    OFF = "off"


# What the person reads (Spanish, "usted", as the help pages speak). Meta's limits: title ≤ 65, subtitle ≤ 80,
# button ≤ 20, question title 5–85, placeholder ≤ 65, no URLs; quick reply titles ≤ 20.
TEMPLATE_TITLE = "¿Cómo le atendimos?"
TEMPLATE_SUBTITLE = "Califique la atención que recibió: le toma unos segundos."
TEMPLATE_BUTTON = "Calificar"
QUESTION_TITLE = "¿Cómo calificaría la atención que recibió?"
FOLLOW_UP_PLACEHOLDER = "Cuéntenos más (opcional)"
TEMPLATE_EXPIRES_IN_DAYS = 3  # how long the form stays open in the thread (Meta: 1 to 7 days)
QUICK_REPLIES_TEXT = "¿Cómo le atendimos? Califique la atención del 1 (muy mala) al 5 (excelente)."
QUICK_REPLY_TITLES = {1: "1 · Muy mala", 2: "2 · Mala", 3: "3 · Regular", 4: "4 · Buena", 5: "5 · Excelente"}
THANKS_TEXT = "¡Gracias por su calificación!"

QUESTION_ID_PREFIX = "csat_"
_QUESTION_ID = re.compile(r"^csat_([0-9]{1,18})$")


def question_id_of(ask_id: int) -> str:
    """The template question's id (Meta: letters, digits, underscores): Meta sends it back with the answer."""
    return f"{QUESTION_ID_PREFIX}{ask_id}"


def ask_id_of(question_id: str) -> int | None:
    match = _QUESTION_ID.match(question_id or "")
    return int(match.group(1)) if match else None


def feedback_template(ask_id: int, privacy_url: str) -> dict[str, Any]:
    """The Send API `message` of Meta's customer feedback template: one CSAT question (five stars), a free-form
    follow-up, the page's privacy policy."""
    question = {"id": question_id_of(ask_id), "type": "csat", "title": QUESTION_TITLE, "score_label": "neg_pos",
                "score_option": "five_stars",
                "follow_up": {"type": "free_form", "placeholder": FOLLOW_UP_PLACEHOLDER}}
    return {"attachment": {"type": "template", "payload": {
        "template_type": "customer_feedback", "title": TEMPLATE_TITLE, "subtitle": TEMPLATE_SUBTITLE,
        "button_title": TEMPLATE_BUTTON, "feedback_screens": [{"questions": [question]}],
        "business_privacy": {"url": privacy_url}, "expires_in_days": TEMPLATE_EXPIRES_IN_DAYS}}}


def quick_replies_question() -> dict[str, Any]:
    """The Send API `message` asking with quick replies: payload `/csat{"score":N}` (meta.events reads it back)."""
    return {"text": QUICK_REPLIES_TEXT,
            "quick_replies": [{"content_type": "text", "title": QUICK_REPLY_TITLES[score],
                               "payload": csat_payload(score)} for score in CSAT_SCORES]}


def clean_comment(text: str | None) -> str | None:
    """The person's comment as kept: control characters out, spaces trimmed, at most Meta's 400 characters."""
    if not text:
        return None
    kept = "".join(char if char in "\n\t" or unicodedata.category(char)[0] != "C" else " " for char in text)
    kept = kept.strip()[:FEEDBACK_TEXT_MAX_CHARS]
    return kept or None


@dataclass(frozen=True)
class Answer:
    """What the person answered: a rating 1 to 5 (None: no CSAT score in it), a comment, and for the template the
    ask its question id names."""

    rating: int | None
    comment: str | None
    ask_id: int | None = None


def read_answer(answers: Sequence[Mapping[str, Any]]) -> Answer:
    """The webhook's answers (`{question_id, type, payload, follow_up}`) → the rating of the first CSAT question in
    1..5 and its follow-up text; anything else (another type, a score out of range) is no rating."""
    for answer in answers:
        if str(answer.get("type") or "") != "csat":
            continue
        payload = str(answer.get("payload") or "").strip()
        rating = int(payload) if payload.isdigit() and len(payload) == 1 and int(payload) in CSAT_SCORES else None
        follow_up = answer.get("follow_up")
        return Answer(rating, clean_comment(follow_up if isinstance(follow_up, str) else None),
                      ask_id_of(str(answer.get("question_id") or "")))
    return Answer(None, None)


@dataclass(frozen=True)
class Ask:
    """One request for a rating, made when an agent closed a conversation, or after the bot resolved one on its own
    (`agent` and `closed_by` `BOT_AGENT`, `closed_at` the person's last message)."""

    id: int
    page_id: str
    user_id: str
    conversation_id: str
    agent: str  # the team member who last wrote to the customer before the close: the agent rated
    closed_at: datetime
    asked_at: datetime
    status: AskStatus
    how: How | None = None
    tag: str | None = None  # CUSTOMER_FEEDBACK when sent after 24 hours
    outbox_id: int | None = None
    reason_code: str | None = None  # not_sent: the policy's reason
    reason_es: str | None = None
    rating: int | None = None
    comment: str | None = None
    answered_at: datetime | None = None
    closed_by: str | None = None  # who clicked «close» (None: an ask made before it was kept)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "page_id": self.page_id, "user_id": self.user_id,
                "conversation_id": self.conversation_id, "agent": self.agent, "closed_by": self.closed_by,
                "closed_at": self.closed_at.isoformat(),
                "asked_at": self.asked_at.isoformat(), "status": self.status.value,
                "how": self.how.value if self.how else None, "tag": self.tag, "outbox_id": self.outbox_id,
                "reason_code": self.reason_code, "reason_es": self.reason_es, "rating": self.rating,
                "comment": self.comment,
                "answered_at": self.answered_at.isoformat() if self.answered_at else None}


@dataclass(frozen=True)
class AgentSatisfaction:
    """An agent's ratings: how many conversations were asked and answered, the average (None: no answer yet)."""

    agent: str
    asked: int
    answered: int
    average: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"agent": self.agent, "asked": self.asked, "answered": self.answered,
                "average": round(self.average, 2) if self.average is not None else None}


@dataclass(frozen=True)
class CsatSummary:
    """The satisfaction of a period (the conversations closed in it): asks that reached the person, answers, the
    average rating (None: no answer) and how many answers gave each rating (1 to 5, every one present)."""

    asked: int
    answered: int
    average: float | None
    by_rating: dict[int, int]

    def to_dict(self) -> dict[str, Any]:
        return {"asked": self.asked, "answered": self.answered,
                "average": round(self.average, 2) if self.average is not None else None,
                "by_rating": {str(rating): n for rating, n in sorted(self.by_rating.items())}}
