"""Learning from use: a customer's wording proposed to editors as a new question of an entry, never applied silently.

Two uses make a proposal of the pair (wording, entry):
- `tapped`: the person was offered «¿Quisiste decir…?» for their question and tapped one of the candidates within 10
  minutes (the journal's did_you_mean row, followed by the selected row: `AnswersStore.record`);
- `agent`: the person's question went unanswered and an agent replied with an entry from the console («Responder con
  una entrada»: `AnswersStore.agent_answered`).

Editors see the open proposals in «Preguntas sin respuesta» → «Sugerencias», most people first; accepting one makes a
draft with the question added (the knowledge editor's `draft_with_question`), rejecting hides it. Either decision is
remembered: the pair is never proposed again. A wording that is already a question of its entry is not shown, nor a
proposal whose entry the live matrix no longer has (`shown_proposals`). The wording is the journal's (masked).

This module holds the pure parts: the value objects and the rules over entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from answers.grouping import wording_key
from answers.model import AnswersError

if TYPE_CHECKING:
    from knowledge_matrix.matrix import Entry

ProposalStatus = Literal["open", "accepted", "rejected"]
ProposalSource = Literal["tapped", "agent"]
PROPOSAL_STATUSES: tuple[str, ...] = ("open", "accepted", "rejected")
MAX_ENTRY_MATCHES = 50


class ProposalNotFound(AnswersError, LookupError):
    def __init__(self, proposal_id: int) -> None:
        super().__init__(f"Esa sugerencia ({proposal_id}) no existe.")
        self.proposal_id = proposal_id


@dataclass(frozen=True)
class Proposal:
    """A (wording, entry) pair and who used it: `people` distinct people, `tapped` taps on the entry in «¿Quisiste
    decir…?», `agent` agent replies with it (counts over the days the journal keeps). `entry_question`: the entry's
    first question in the live matrix (filled by the façade; empty when read from the store)."""

    id: int
    wording: str
    entry_id: str
    status: ProposalStatus
    people: int
    tapped: int
    agent: int
    first_at: datetime | None = None
    last_at: datetime | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None
    draft_id: str | None = None
    entry_question: str = ""

    @property
    def sources(self) -> tuple[ProposalSource, ...]:
        found: list[ProposalSource] = []
        if self.tapped:
            found.append("tapped")
        if self.agent:
            found.append("agent")
        return tuple(found)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "wording": self.wording, "entry_id": self.entry_id, "status": self.status,
                "people": self.people, "tapped": self.tapped, "agent": self.agent, "sources": list(self.sources),
                "first_at": self.first_at.isoformat() if self.first_at else None,
                "last_at": self.last_at.isoformat() if self.last_at else None,
                "decided_at": self.decided_at.isoformat() if self.decided_at else None,
                "decided_by": self.decided_by, "draft_id": self.draft_id, "entry_question": self.entry_question}


def tapped_in_offer(entry_id: str, candidates: Sequence[str]) -> bool:
    """A tap follows an offer when the entry was one of its candidates (a person offered twice in 10 minutes taps a
    candidate of one of them; the other offer's wording is not that entry's). An offer journaled without its
    candidates is taken as followed."""
    return not candidates or entry_id in candidates


def is_question_of(entry: Entry, wording: str) -> bool:
    """The wording is one of the entry's questions already (as `wording_key` folds them): nothing to propose."""
    key = wording_key(wording)
    return any(wording_key(question) == key for question in entry.questions)


def shown_proposals(proposals: Iterable[Proposal], entries: Sequence[Entry]) -> list[Proposal]:
    """The proposals worth an editor's look, with their entry's first question: not those whose entry the live
    matrix does not have, nor those whose wording is already a question of that entry (published since)."""
    by_id = {entry.id: entry for entry in entries}
    shown = []
    for proposal in proposals:
        entry = by_id.get(proposal.entry_id)
        if entry is None or is_question_of(entry, proposal.wording):
            continue
        shown.append(_with_question(proposal, entry))
    return shown


def with_entry_question(proposal: Proposal, entries: Sequence[Entry]) -> Proposal:
    entry = next((entry for entry in entries if entry.id == proposal.entry_id), None)
    return _with_question(proposal, entry) if entry is not None else proposal


def _with_question(proposal: Proposal, entry: Entry) -> Proposal:
    return replace(proposal, entry_question=entry.questions[0] if entry.questions else "")


def match_entries(entries: Sequence[Entry], text: str, limit: int = 20) -> list[Entry]:
    """The live matrix's entries for the agent's «Responder con una entrada» search: every word of `text` (folded as
    `wording_key` folds) in the entry's id, questions, «palabras clave» or answer; entries whose id, a question or a
    keyword holds them first, then matrix order. Empty text: the first entries. Disabled entries are not offered."""
    limit = max(1, min(limit, MAX_ENTRY_MATCHES))
    words = wording_key(text).split()
    asked: list[tuple[int, int, Entry]] = []
    for position, entry in enumerate(entries):
        if not entry.enabled:
            continue
        if not words:
            asked.append((0, position, entry))
            continue
        titles = wording_key(
            " ".join((entry.id.replace("-", " ").replace("_", " "), *entry.questions, *entry.keywords))
        )
        everything = f"{titles} {wording_key(entry.answer)}"
        if all(word in everything for word in words):
            asked.append((0 if all(word in titles for word in words) else 1, position, entry))
    asked.sort(key=lambda item: (item[0], item[1]))
    return [entry for _, _, entry in asked[:limit]]


__all__ = ["PROPOSAL_STATUSES", "Proposal", "ProposalNotFound", "ProposalSource", "ProposalStatus",
           "is_question_of", "match_entries", "shown_proposals", "tapped_in_offer", "with_entry_question"]
