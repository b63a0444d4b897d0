"""What a reply must satisfy before a customer reads it: not the sentinel, no word of our rules, short
enough for one Messenger message (cut at a sentence), and grounded in the entries (`grounding.py`).
Anything else is `no_answer`, and the customer is offered a person.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from knowledge_matrix.llm.grounding import GroundedEntry, check_grounding, entries_text
from knowledge_matrix.llm.prompt import CLOSING_REMINDER, RULES_VERSION, SYSTEM_RULES
from knowledge_matrix.text import cut_at_sentence_boundary, fold, raw_tokens

MESSENGER_TEXT_LIMIT = 2000  # Send API: characters per text message

_SENTINEL_WHOLE = re.compile(r"^\W*no[\s_-]*answer\W*$", re.IGNORECASE)
_SENTINEL_ANYWHERE = re.compile(r"no_answer", re.IGNORECASE)
_MARKDOWN = re.compile(r"\*\*|__|`+|^#{1,6}\s*", re.MULTILINE)


# Phrases that show a reply is talking about its instructions, folded. They count only when the
# entries do not contain them (an entry may well say "sigue estas instrucciones para pagar").
LEAK_PHRASES: tuple[str, ...] = tuple(
    fold(phrase)
    for phrase in (
        RULES_VERSION,
        "<entries>",
        "</entries>",
        "<question>",
        "<conversation>",
        "system prompt",
        "my instructions",
        "these rules",
        "my rules",
        "i was instructed",
        "i am instructed",
        "knowledge entries",
        "prompt del sistema",
        "instrucciones del sistema",
        "mis instrucciones",
        "estas instrucciones",
        "mis reglas",
        "estas reglas",
        "nunca reveles",
        "no debo revelar",
        "no puedo revelar",
        "mis indicaciones",
        "entradas de conocimiento",
    )
)
_SHINGLE_SIZE = 6


def _shingles(text: str, size: int = _SHINGLE_SIZE) -> set[tuple[str, ...]]:
    words = raw_tokens(text)
    return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}


_RULES_SHINGLES = _shingles(SYSTEM_RULES.replace("{language}", " ")) | _shingles(CLOSING_REMINDER)


def leaks_instructions(reply: str, entries: Sequence[GroundedEntry]) -> bool:
    """True when the reply quotes or talks about our rules: the canary, a telling phrase, or any
    six consecutive words of the rules (that the entries do not also contain)."""
    folded_reply = fold(reply)
    folded_entries = fold(entries_text(entries))
    if any(phrase in folded_reply and phrase not in folded_entries for phrase in LEAK_PHRASES):
        return True
    return bool((_shingles(reply) & _RULES_SHINGLES) - _shingles(entries_text(entries)))


@dataclass(frozen=True)
class FallbackAnswer:
    """`answer`: send `text`. `no_answer`: offer a person (`reason` says why, for logs and metrics)."""

    kind: Literal["answer", "no_answer"]
    text: str = ""
    used_entry_ids: tuple[str, ...] = ()
    reason: str = ""

    @classmethod
    def no_answer(cls, reason: str) -> FallbackAnswer:
        return cls("no_answer", "", (), reason)


def interpret_reply(
    raw: str | None,
    entries: Sequence[GroundedEntry],
    *,
    question: str = "",
    max_chars: int = MESSENGER_TEXT_LIMIT,
) -> FallbackAnswer:
    """The model's raw reply → an answer we can send, or `no_answer`."""
    text = _MARKDOWN.sub("", raw or "").strip()
    text = text.strip("\"'“”‘’«» \n\t")
    if not text:
        return FallbackAnswer.no_answer("empty")
    if _SENTINEL_WHOLE.match(text):
        return FallbackAnswer.no_answer("sentinel")
    if leaks_instructions(text, entries):
        return FallbackAnswer.no_answer("prompt_leak")
    if _SENTINEL_ANYWHERE.search(text):
        return FallbackAnswer.no_answer("sentinel_mixed")
    cut = cut_at_sentence_boundary(text, max_chars)
    if not cut:
        return FallbackAnswer.no_answer("too_long")
    grounding = check_grounding(cut, entries, question=question)
    if not grounding.grounded:
        return FallbackAnswer.no_answer(grounding.reason)
    return FallbackAnswer("answer", cut, grounding.entry_ids, "grounded")
