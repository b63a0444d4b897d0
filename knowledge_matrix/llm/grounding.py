"""The matrix entries the model may answer from, and whether a reply is built from them alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from knowledge_matrix.llm.claims import content_stems, facts_of, guess_language, url_is_known
from knowledge_matrix.text import clip

# What the prompt may carry of the top entries, each bounded.
MAX_ENTRIES = 5
MAX_QUESTIONS_PER_ENTRY = 4
MAX_ENTRY_QUESTION_CHARS = 200
MAX_ENTRY_ANSWER_CHARS = 1200


@dataclass(frozen=True)
class GroundedEntry:
    """A matrix entry the model may answer from (retrieval maps its top hits to these, best first)."""

    id: str
    questions: tuple[str, ...]
    answer: str


def bound_entries(entries: Sequence[GroundedEntry], max_entries: int = MAX_ENTRIES) -> tuple[GroundedEntry, ...]:
    """The entries exactly as the model sees them: the first `max_entries`, each field clipped."""
    return tuple(
        GroundedEntry(
            id=clip(entry.id, 80),
            questions=tuple(
                clip(question, MAX_ENTRY_QUESTION_CHARS)
                for question in entry.questions[:MAX_QUESTIONS_PER_ENTRY]
                if question.strip()
            ),
            answer=clip(entry.answer, MAX_ENTRY_ANSWER_CHARS),
        )
        for entry in entries[:max_entries]
    )


def entries_text(entries: Sequence[GroundedEntry]) -> str:
    return "\n".join(" ".join((*entry.questions, entry.answer)) for entry in entries)


MIN_GROUNDED_SHARE = 0.5


@dataclass(frozen=True)
class Grounding:
    grounded: bool
    reason: str
    entry_ids: tuple[str, ...] = ()


def check_grounding(reply: str, entries: Sequence[GroundedEntry], *, question: str = "") -> Grounding:
    """Is `reply` built from `entries`? Every e-mail, link (with or without a scheme, look-alikes
    included), phone and number (in digits or in words, Spanish or English) in it must appear in
    them; at least one entry must support it; and, when reply and entries share a language, no
    content word may come from the question alone and at least half must come from the entries.

    Lexical, so it catches invented facts and off-topic replies, not a subtly wrong yes or no.
    """
    facts = facts_of(reply)
    per_entry = [(entry, facts_of(" \n ".join((*entry.questions, entry.answer)))) for entry in entries]
    known_emails = {email for _, entry_facts in per_entry for email in entry_facts.emails}
    known_urls = {url for _, entry_facts in per_entry for url in entry_facts.urls}
    known_phones = {phone for _, entry_facts in per_entry for phone in entry_facts.phones}
    known_amounts = {amount for _, entry_facts in per_entry for amount in entry_facts.amounts}
    known_numbers = {number for _, entry_facts in per_entry for number in entry_facts.numbers}
    known_plain = {number for _, entry_facts in per_entry for number in entry_facts.plain_numbers}
    known_quantities = {quantity for _, entry_facts in per_entry for quantity in entry_facts.quantities}
    if not facts.emails <= known_emails:
        return Grounding(False, "ungrounded_email")
    if not all(url_is_known(url, known_urls) for url in facts.urls):
        return Grounding(False, "ungrounded_link")
    if not facts.phones <= known_phones:
        return Grounding(False, "ungrounded_phone")
    # A price must be a price (or a bare number) in the entries: "$9" is not "de 9:00 a 18:00".
    if not facts.amounts <= known_amounts | known_plain:
        return Grounding(False, "ungrounded_amount")
    if not facts.numbers <= known_numbers | known_amounts | known_phones:
        return Grounding(False, "ungrounded_number")
    # "el doble", "la mitad", "cientos de clientes": a claim only an entry that makes it grounds.
    if not facts.quantities <= known_quantities:
        return Grounding(False, "ungrounded_quantity")
    # A span of time is its number and its unit: "2 semanas" is not grounded by "2 días". A number the entries
    # never give with a unit of time (a unit they spell in a way not read here) is left to the number check.
    known_spans = {span for _, entry_facts in per_entry for span in entry_facts.durations}
    timed_numbers = {number for number, _ in known_spans}
    known_totals = {int(number) * minutes for number, minutes in known_spans}  # `48 horas` is `2 días`
    if any(
        number in timed_numbers and int(number) * minutes not in known_totals for number, minutes in facts.durations
    ):
        return Grounding(False, "ungrounded_duration")

    reply_stems = content_stems(facts.rest)
    scores: list[tuple[int, int, str]] = []
    for position, (entry, entry_facts) in enumerate(per_entry):
        shared = len(reply_stems & content_stems(entry_facts.rest))
        shared += len(facts.emails & entry_facts.emails) + len(facts.phones & entry_facts.phones)
        shared += len(facts.numbers & entry_facts.numbers) + len(facts.amounts & entry_facts.amounts)
        shared += len(facts.quantities & entry_facts.quantities)
        shared += sum(url_is_known(url, entry_facts.urls) for url in facts.urls)
        if shared:
            scores.append((shared, -position, entry.id))
    if not scores:
        return Grounding(False, "no_supporting_entry")

    reply_language = guess_language(facts.rest)
    entries_language = guess_language(entries_text(entries))
    same_language = not (reply_language and entries_language and reply_language != entries_language)
    if reply_stems and same_language:
        # Only the entries ground a claim. A word the reply takes from the customer's question and the
        # entries never use ("me dijeron que es gratis" → "Sí, es gratis") is the customer's claim echoed.
        vocabulary = content_stems(facts_of(entries_text(entries)).rest)
        if (reply_stems & content_stems(question)) - vocabulary:
            return Grounding(False, "echoes_question")
        share = len(reply_stems & vocabulary) / len(reply_stems)
        if share < MIN_GROUNDED_SHARE:
            return Grounding(False, "off_topic")
    scores.sort(reverse=True)
    best = scores[0][0]
    return Grounding(True, "grounded", tuple(entry_id for shared, _, entry_id in scores if 2 * shared >= best))
