"""The `Answers` façade: the one thing the action server and the app ask about the answer journal.

- the action server `record`s how each customer question was handled (`record_question` hashes the person);
- the app runs `regroup(now)` every ANSWERS_GROUP_SECONDS: the days older than ANSWERS_RETENTION_DAYS are pruned
  (kept as counts only), then new unanswered questions are embedded with the live matrix's own embedder and join a
  similar group (open, resolved or dismissed) or start new ones (`grouping.py`);
- the console lists `groups(...)`, shows one `group(...)` with the live matrix's `suggest_entries(...)`, and marks
  a group `resolve`d when the draft made from it is published (or `dismiss`ed: not a real question);
- learning from use (`answers.proposals`): the console journals an agent's reply with an entry (`agent_answered`),
  finds the entries an agent may reply with (`entries_matching`), and lists the `proposals(...)` (a tapped «¿Quisiste
  decir…?» candidate or an agent's reply: a wording for an entry) for editors to accept or reject.

Synchronous (SQLite or PostgreSQL, models): async code calls it through a thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import numpy as np

from answers.grouping import (
    MAX_BATCH,
    Centroid,
    assign_groups,
    group_label,
    prepare,
    threshold_for,
)
from answers.model import (
    AnswerInvalid,
    AnswerRecord,
    Group,
    Handling,
    Question,
    ResolveAction,
    Suggestion,
    person_key,
)
from answers.proposals import Proposal, match_entries, shown_proposals, with_entry_question
from answers.store import AnswersStore, NewGroup, open_answers_store
from knowledge_matrix.embedders import Embedder, shared_embedder
from knowledge_matrix.settings import DEFAULT_SETTINGS

if TYPE_CHECKING:
    from core.settings import Settings
    from knowledge_matrix.knowledge_base import KnowledgeBase
    from knowledge_matrix.matrix import Entry

logger = logging.getLogger(__name__)

SUGGESTION_QUERIES = 5  # a group's wordings searched in the live matrix
SUGGESTION_HITS = 5  # hits per wording before the best per entry is kept


class LiveMatrix(Protocol):
    """What the façade needs of the live matrix: `knowledge_matrix.live.LiveKnowledge` in the app."""

    def refresh(self) -> _LiveVersion | None: ...


class _LiveVersion(Protocol):
    @property
    def version(self) -> str: ...
    @property
    def knowledge(self) -> KnowledgeBase: ...


@dataclass(frozen=True)
class RegroupResult:
    """What one `regroup` did: questions grouped, of them joined to existing groups, groups created."""

    grouped: int = 0
    joined: int = 0
    created: int = 0
    embedder: str = ""
    pruned: int = 0  # journal rows older than the retention deleted (their counts kept)


class Answers:
    """The answer journal and its groups over one `AnswersStore`.

    `knowledge`: the live matrix (suggestions; its embedder groups the questions). `embedder`: used instead of the
    live matrix's (tests; a process without a matrix falls back to the default models). `secret`: the key of
    `person_key` (ANSWERS_SECRET; outside production it may be empty: the service token). `threshold`: the grouping's
    similarity, else the one measured for the embedder (`grouping.threshold_for`). `retention`: how long each question
    is kept (`regroup` prunes older days; None: kept)."""

    def __init__(
        self,
        store: AnswersStore,
        *,
        knowledge: LiveMatrix | None = None,
        embedder: Embedder | None = None,
        secret: str = "",
        threshold: float | None = None,
        embedder_for: Callable[[str], Embedder] = shared_embedder,
        retention: timedelta | None = None,
    ) -> None:
        self.store = store
        self._knowledge = knowledge
        self._embedder = embedder
        self._secret = secret
        self.threshold = threshold
        self._embedder_for = embedder_for
        self.retention = retention

    @classmethod
    def from_settings(cls, settings: Settings, *, knowledge: LiveMatrix | None = None,
                      embedder: Embedder | None = None) -> Answers:
        return cls(open_answers_store(settings.store_url("answers")), knowledge=knowledge, embedder=embedder,
                   secret=settings.answers_secret or settings.service_token,
                   retention=timedelta(days=settings.answers_retention_days))

    def close(self) -> None:
        self.store.close()

    # --- the journal ----------------------------------------------------------------------------------------

    def record(self, rec: AnswerRecord) -> int:
        """Journal one handled question; its id."""
        return self.store.record(rec)

    def person_key(self, page_id: str, psid: str) -> str:
        return person_key(self._secret, page_id, psid)

    def record_question(
        self,
        *,
        page_id: str,
        psid: str,
        question: str,
        handling: Handling,
        at: datetime,
        entry_id: str | None = None,
        score: float | None = None,
        candidates: Sequence[str] = (),
        reason: str | None = None,
        matrix_version: str | None = None,
    ) -> int:
        """`record` for a person by PSID: only the keyed hash of page and PSID is kept."""
        return self.record(AnswerRecord(
            page_id=page_id, person_key=self.person_key(page_id, psid), question=question, handling=handling, at=at,
            entry_id=entry_id, score=score, candidates=tuple(candidates), reason=reason,
            matrix_version=matrix_version))

    def latest_handling(self, page_id: str, psid: str, since: datetime) -> Handling | None:
        """How the bot handled the person's latest question on the page since `since` (None: no question journaled),
        by their `person_key`: the survey after the bot resolved a conversation asks only after an answer."""
        return self.store.latest_handling(page_id, self.person_key(page_id, psid), since)

    def unanswered(self, page_id: str | None, since: datetime, until: datetime) -> list[Question]:
        return self.store.unanswered(page_id, since, until)

    def counts_by_handling(self, page_id: str | None, since: datetime, until: datetime) -> dict[str, int]:
        return self.store.counts_by_handling(page_id, since, until)

    def entry_use(self, page_id: str | None, since: datetime, until: datetime) -> dict[str, int]:
        return self.store.entry_use(page_id, since, until)

    # --- grouping -------------------------------------------------------------------------------------------

    def embedder(self) -> Embedder:
        """The live matrix's own embedder; without a live version, the default models."""
        if self._embedder is not None:
            return self._embedder
        live = self._knowledge.refresh() if self._knowledge is not None else None
        if live is not None:
            return live.knowledge.embedder
        return self._embedder_for(DEFAULT_SETTINGS.embedder)

    def prune(self, now: datetime) -> int:
        """Delete the questions older than the retention (whole UTC days; their counts by handling and entry are
        kept). How many were deleted."""
        if self.retention is None:
            return 0
        pruned = self.store.prune(now - self.retention)
        if pruned:
            logger.info("answers pruned", extra={"pruned": pruned, "retention_days": self.retention.days})
        return pruned

    def regroup(self, now: datetime) -> RegroupResult:
        """Prune what is past the retention, then group the unanswered questions not grouped yet (a "¿Quisiste
        decir…?" once its 10 minutes are over)."""
        pruned = self.prune(now)
        pending = self.store.ungrouped(now, limit=MAX_BATCH)
        if not pending:
            return RegroupResult(pruned=pruned)
        embedder = self.embedder()
        centroids = self._centroids(embedder)
        vectors = embedder.embed([prepare(question.question) for question in pending], role="query")
        threshold = self.threshold if self.threshold is not None else threshold_for(embedder.name)
        assignment = assign_groups(vectors, centroids, threshold)
        new_groups = [
            NewGroup(label=group_label([pending[i].question for i in members], vectors[list(members)]),
                     members=tuple(pending[i].id for i in members), centroid=centroid)
            for members, centroid in assignment.new_groups
        ]
        joined = {group_id: tuple(pending[i].id for i in members)
                  for group_id, members in assignment.joined.items()}
        self.store.save_groups(new_groups, joined, assignment.centroids, embedder.name, now)
        result = RegroupResult(grouped=len(pending), joined=sum(len(m) for m in joined.values()),
                               created=len(new_groups), embedder=embedder.name, pruned=pruned)
        logger.info("answers regrouped", extra={"grouped": result.grouped, "joined": result.joined,
                                                "created": result.created, "embedder": result.embedder})
        return result

    def _centroids(self, embedder: Embedder) -> list[Centroid]:
        """The existing groups' mean vectors in this embedder's space; a group grouped with another model (the matrix
        changed its models) is embedded again from its wording."""
        centroids = []
        for stored in self.store.centroids():
            vector = stored.vector
            if stored.embedder != embedder.name or vector is None or vector.shape[0] != embedder.dimension:
                wording = self.store.group_wording(stored.group_id, limit=50)
                if not wording:
                    continue
                embedded = embedder.embed([prepare(text) for text in wording], role="query")
                vector = embedded.mean(axis=0).astype(np.float32)
            centroids.append(Centroid(stored.group_id, vector, stored.size))
        return centroids

    # --- the editor's loop ----------------------------------------------------------------------------------

    def groups(self, status: str = "open", *, page_id: str | None = None, limit: int = 50,
               offset: int = 0) -> list[Group]:
        """Groups ranked by distinct people (then most recent), each with up to 5 examples."""
        return self.store.groups(status, page_id=page_id, limit=limit, offset=offset)

    def group(self, group_id: int) -> Group:
        """One group (GroupNotFound)."""
        return self.store.group(group_id)

    def suggest_entries(self, group_id: int, k: int = 3) -> list[Suggestion]:
        """Entries of the live matrix most similar to the group's wording, best first; [] with nothing live."""
        group = self.store.group(group_id)
        live = self._knowledge.refresh() if self._knowledge is not None else None
        if live is None:
            return []
        queries = list(group.wording[:SUGGESTION_QUERIES]) or [group.label]
        best: dict[str, Suggestion] = {}
        for hits in live.knowledge.search_many(queries, k=SUGGESTION_HITS):
            for hit in hits:
                current = best.get(hit.entry_id)
                if current is None or hit.score > current.score:
                    best[hit.entry_id] = Suggestion(hit.entry_id, hit.entry.questions[0], hit.matched_question,
                                                    float(hit.score))
        return sorted(best.values(), key=lambda s: (-s.score, s.entry_id))[:max(0, k)]

    def resolve(self, group_id: int, entry_id: str, action: ResolveAction, by: str, at: datetime) -> Group:
        """Mark a group resolved by the published draft made from it (`added_question` or `new_entry`)."""
        if action not in ("added_question", "new_entry"):
            raise AnswerInvalid("action", "La acción debe ser «added_question» o «new_entry».")
        return self.store.resolve_group(group_id, entry_id, action, by, at)

    def dismiss(self, group_id: int, by: str, at: datetime) -> Group:
        """Not a real question (spam, a greeting): out of the open list; similar questions keep joining it."""
        return self.store.dismiss_group(group_id, by, at)

    def returned_after(self, group_id: int) -> int:
        return self.store.returned_after(group_id)

    # --- learning from use ----------------------------------------------------------------------------------

    def live_entries(self) -> tuple[Entry, ...]:
        """The live matrix's entries; none when nothing is published."""
        live = self._knowledge.refresh() if self._knowledge is not None else None
        return live.knowledge.entries if live is not None else ()

    def live_entry(self, entry_id: str) -> Entry | None:
        return next((entry for entry in self.live_entries() if entry.id == entry_id), None)

    def entries_matching(self, text: str, limit: int = 20) -> list[Entry]:
        """The live entries an agent may reply with, found by the words of `text` (`proposals.match_entries`)."""
        return match_entries(self.live_entries(), text, limit)

    def agent_answered(self, *, page_id: str, psid: str, entry_id: str, agent: str, since: datetime,
                       at: datetime) -> Proposal | None:
        """An agent replied to the person with a live entry: their latest unanswered question since `since` is
        proposed as a question of it. None when there is no such question, the entry is not live, or the pair was
        decided already."""
        if self.live_entry(entry_id) is None:
            return None
        return self.store.agent_answered(page_id, self.person_key(page_id, psid), entry_id, agent, since=since, at=at)

    def proposals(self, status: str = "open", *, limit: int = 100) -> list[Proposal]:
        """Proposals with `status`, most people first, each with its entry's first question; open ones only when
        the live matrix has their entry and their wording is not one of its questions yet (nothing live: none)."""
        found = self.store.proposals(status)
        entries = self.live_entries()
        if status == "open":
            return shown_proposals(found, entries)[:max(0, limit)]
        return [with_entry_question(proposal, entries) for proposal in found[:max(0, limit)]]

    def proposal(self, proposal_id: int) -> Proposal:
        """One proposal with its entry's first question (ProposalNotFound)."""
        return with_entry_question(self.store.proposal(proposal_id), self.live_entries())


def open_answers(settings: Settings, *, knowledge: LiveMatrix | None = None) -> Answers:
    """The app's and the action server's façade at `settings.store_url("answers")`."""
    return Answers.from_settings(settings, knowledge=knowledge)


__all__ = ["Answers", "LiveMatrix", "RegroupResult", "open_answers"]
