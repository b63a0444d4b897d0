"""In-memory fakes for the console's two collaborators: the handoff service and the knowledge editor.

Same semantics as the real ones where the console can tell: a reply outside the window is refused with the
outbox policy's reason (`ReplyRefused`), events are published to every subscriber, a draft with errors cannot
be published, a rollback serves the previous version.
"""

from __future__ import annotations

import re
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from console.knowledge_editor import (
    KEEP_DRAFTS,
    Draft,
    DraftHasErrors,
    DraftNotFound,
    KnowledgeStatus,
    NothingPublished,
    NothingToRollBack,
    TriedAnswer,
    TryResult,
    Version,
    is_stale,
    report_issues,
    stale_upload,
    upload_names,
)
from core.settings import SANDBOX_PAGE_ID
from handoff.model import (
    ConsoleEvent,
    Conversation,
    ConversationNotFound,
    ConversationState,
    PauseReason,
    ReplyRefused,
    TranscriptItem,
    conversation_id_of,
    split_conversation_id,
)
from handoff.pubsub import Broadcaster
from handoff.reply_window import ReplyWindow, reply_window
from handoff.service import IDEMPOTENCY_KEY_REUSED, PAUSED_BY_RASA, agent_reply_answer, checked_agent_reply
from knowledge_matrix.matrix import entries_from_sheet
from knowledge_matrix.publish import check_matrix
from knowledge_matrix.text import fold
from outbox.model import NewMessage, Purpose, SenderKind
from outbox.policy import decide
from outbox.policy_file import load_policy
from outbox.store import InMemoryOutboxStore
from outbox.worker import read_window


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class FakeHandoff:
    """`HandoffService` in memory, with `window_status` as the console calls it. The outbox is the outbox's own
    in-memory store (contract-tested against SQLite and PostgreSQL): the customer's last own message, idempotency
    keys and the queued agents' replies live there, as in the real service. `sent` keeps the agents' replies as the
    outbox would send them (text, sender, messaging type and tag).

    Checked against `handoff.service.Handoff` by tests/integration/console/test_handoff_contract.py."""

    def __init__(self, clock: Callable[[], datetime] = utc_now, page_ids: Iterable[str] = (SANDBOX_PAGE_ID,)) -> None:
        self.clock = clock
        self.page_ids = frozenset(page_ids)
        self.conversations: dict[str, Conversation] = {}
        self.transcripts: dict[str, list[TranscriptItem]] = {}  # what Rasa's tracker would show
        self.sent: list[dict[str, Any]] = []
        self.closing_notes: dict[str, str | None] = {}
        self.decide = partial(decide, policy=load_policy())  # what `Outbox.decide` is
        self.outbox = InMemoryOutboxStore()
        self._events: Broadcaster[ConsoleEvent] = Broadcaster(lambda: ConsoleEvent("resync", "", self.clock(), {}))

    def _publish(self, kind: str, conversation: Conversation, **data: Any) -> None:
        self._events.publish(ConsoleEvent(kind, conversation.id, self.clock(), {"conversation": conversation.to_dict(),
                                                                               **data}))

    def add_user_message(self, page_id: str, user_id: str, text: str, at: datetime | None = None) -> None:
        """A message the bot saw (the connector's part): Rasa's tracker and the outbox's record of the customer's
        last own message (the reply window) know it; the handoff record does not."""
        at = at or self.clock()
        self.transcripts.setdefault(conversation_id_of(page_id, user_id), []).append(TranscriptItem(at, "user", text))
        self.outbox.record_user_message(page_id, user_id, at)

    async def pause(self, page_id: str, user_id: str, reason: PauseReason, paused_by: str) -> Conversation:
        conversation_id = conversation_id_of(page_id, user_id)
        now = self.clock()
        current = self.conversations.get(conversation_id)
        if current is not None and current.state is ConversationState.PAUSED:
            return current  # the first reason and author stay
        base = current or Conversation(conversation_id, page_id, user_id, ConversationState.BOT)
        conversation = replace(base, state=ConversationState.PAUSED, paused_reason=PauseReason(reason),
                               paused_by=paused_by, paused_at=now, last_activity_at=now)
        self.conversations[conversation_id] = conversation
        self._publish("paused", conversation, reason=PauseReason(reason).value, by=paused_by)
        return conversation

    async def resume(self, conversation_id: str, by: str, closing_note: str) -> Conversation:
        current = await self.get(conversation_id)
        if current.state is not ConversationState.PAUSED:
            return current  # resuming a conversation the bot has changes nothing and tells nobody
        conversation = replace(current, state=ConversationState.BOT, paused_reason=None, paused_by=None,
                               paused_at=None, assigned_to=None, last_activity_at=self.clock())
        self.conversations[conversation_id] = conversation
        note = closing_note.strip() or None
        self.closing_notes[conversation_id] = note
        self._publish("resumed", conversation, by=by, closing_note=note)
        return conversation

    async def record_user_message(self, page_id: str, user_id: str, text: str, at: datetime) -> None:
        """A customer wrote while paused (the connector tells the app). A conversation the app never saw paused is
        recorded as paused by Rasa."""
        conversation_id = conversation_id_of(page_id, user_id)
        now = self.clock()
        self.add_user_message(page_id, user_id, text, at)
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            conversation = Conversation(conversation_id, page_id, user_id, ConversationState.PAUSED,
                                        paused_by=PAUSED_BY_RASA, paused_at=now, last_activity_at=now)
            self.conversations[conversation_id] = conversation
            self._publish("paused", conversation, reason=None, by=PAUSED_BY_RASA)
        conversation = replace(conversation, last_user_message_at=at, last_message_text=text, last_activity_at=now)
        self.conversations[conversation_id] = conversation
        self._publish("user_message", conversation, text=text, message_at=at.isoformat(timespec="microseconds"))

    async def reply_as_agent(
        self, conversation_id: str, agent: str, text: str, *, idempotency_key: str | None = None,
        quick_replies: Sequence[Mapping[str, Any]] = (), attachment: Mapping[str, Any] | None = None,
        shown: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """As `Handoff.reply_as_agent`: the input, then the outbox policy, then the pause (a conversation the bot
        holds is paused first), then the outbox with the key (the same key again is the first message, other
        words under it are refused)."""
        page_id, user_id = split_conversation_id(conversation_id)
        text, messages = checked_agent_reply(page_id, text, self.page_ids, quick_replies=quick_replies,
                                             attachment=attachment)
        now = self.clock()
        first = NewMessage(page_id=page_id, recipient_id=user_id, message=messages[0], sender=SenderKind.HUMAN,
                           purpose=Purpose.REPLY, sender_name=agent)
        decision = self.decide(first, read_window(self.outbox, page_id, user_id), now)
        if not decision.allowed:
            raise ReplyRefused(decision.reason_code, decision.reason_es, decision.reason_en)
        current = self.conversations.get(conversation_id)
        if current is None or current.state is not ConversationState.PAUSED:
            await self.pause(page_id, user_id, PauseReason.AGENT_TOOK_OVER, agent)
        stored, created = [], []
        for number, message in enumerate(messages):
            key = f"{idempotency_key}:{number}" if idempotency_key else None
            queued, new = self.outbox.enqueue(replace(first, message=message, idempotency_key=key), now)
            if not new and queued.message != message:
                raise ReplyRefused(IDEMPOTENCY_KEY_REUSED, "Esa clave de idempotencia ya se usó para otro mensaje "
                                   "con otro texto; no se envió nada.", "idempotency key already used")
            stored.append(queued)
            created.append(new)
        answer = agent_reply_answer(stored, text, decision)
        if not any(created):
            return {**answer, "repeated": True}
        for message in stored:
            self.sent.append({"recipient_id": user_id, "text": message.message.get("text", ""), "sender_name": agent,
                              "messaging_type": decision.messaging_type, "tag": decision.tag})
        outbox_id = stored[0].id
        self.transcripts.setdefault(conversation_id, []).append(
            TranscriptItem(now, f"agent:{agent}", text or "Archivo enviado", {"outbox_id": outbox_id, **(shown or {})}))
        conversation = replace(self.conversations[conversation_id], last_activity_at=now)
        self.conversations[conversation_id] = conversation
        self._publish("agent_message", conversation, author=f"agent:{agent}", text=text, outbox_id=outbox_id)
        return answer

    async def assign(self, conversation_id: str, agent: str | None) -> Conversation:
        conversation = replace(await self.get(conversation_id), assigned_to=agent, last_activity_at=self.clock())
        self.conversations[conversation_id] = conversation
        self._publish("assigned", conversation, agent=agent)
        return conversation

    async def paused_conversations(self) -> list[Conversation]:
        """Latest activity first, as the real store lists them."""
        paused = sorted((c for c in self.conversations.values() if c.state is ConversationState.PAUSED),
                        key=lambda c: c.id)
        return sorted(paused, key=lambda c: c.last_activity_at or datetime.min.replace(tzinfo=timezone.utc),
                      reverse=True)

    async def states_of(self, conversation_ids: Collection[str]) -> dict[str, Conversation]:
        return {cid: self.conversations[cid] for cid in set(conversation_ids) if cid in self.conversations}

    async def conversation_ids(self, state: ConversationState, assigned_to: str | None = None,
                               unassigned: bool = False) -> set[str]:
        return {c.id for c in self.conversations.values() if c.state is ConversationState(state)
                and (not unassigned or c.assigned_to is None)
                and (assigned_to is None or c.assigned_to == assigned_to)}

    async def get(self, conversation_id: str) -> Conversation:
        split_conversation_id(conversation_id)
        try:
            return self.conversations[conversation_id]
        except KeyError:
            raise ConversationNotFound(f"no conversation {conversation_id}") from None

    async def transcript(self, conversation_id: str) -> list[TranscriptItem]:
        split_conversation_id(conversation_id)
        return list(self.transcripts.get(conversation_id, []))

    async def window_status(self, conversation_id: str, now: datetime | None = None) -> ReplyWindow:
        page_id, user_id = split_conversation_id(conversation_id)
        return reply_window(self.outbox.last_user_message_at(page_id, user_id), now or self.clock(), self.decide)

    def subscribe(self) -> AsyncIterator[ConsoleEvent]:
        return self._events.subscribe()


# Words too common to tell two questions apart: the fake's "retrieval" matches the rest.
STOPWORDS = frozenset({
    "a", "al", "como", "con", "cual", "cuales", "cuando", "de", "del", "donde", "el", "en", "es", "esta", "este",
    "hay", "la", "las", "lo", "los", "me", "mi", "o", "para", "por", "que", "se", "su", "sus", "te", "tu", "un",
    "una", "y",
})
Entries = dict[str, tuple[tuple[str, ...], str]]  # entry id → (questions, answer)


class FakeKnowledgeEditor:
    """`KnowledgeEditor` in memory: the real reading and validation of the file (the package's pure checks, without
    the model's near-duplicate warnings), numbered versions with the real undo history, and a word-overlap
    "retrieval" (an asked question answers from its entry; a question sharing no content words answers nothing).

    Checked against `console.knowledge_editor.MatrixEditor` by
    tests/integration/console/test_knowledge_editor_contract.py."""

    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        self.clock = clock
        self.drafts: dict[str, tuple[Draft, Entries | None]] = {}  # None: the draft has errors
        self.versions: list[tuple[Version, Entries]] = []  # oldest first; "0001" is versions[0]
        self.lineage: list[int] = []  # indexes into versions, the live one last: what a rollback undoes
        self.sources: dict[str, bytes] = {}  # draft id → the uploaded bytes; a version keeps its draft's
        self.version_sources: list[bytes] = []  # parallel to versions

    @property
    def live_index(self) -> int | None:
        return self.lineage[-1] if self.lineage else None

    def status(self) -> KnowledgeStatus:
        live = self.live_index
        numbered = reversed(list(enumerate(self.versions)))
        versions = tuple(replace(version, live=(i == live)) for i, (version, _) in numbered)
        live_version = replace(self.versions[live][0], live=True) if live is not None else None
        return KnowledgeStatus(live=live_version, versions=versions, drafts=tuple(self._drafts_newest_first()[:5]))

    def _drafts_newest_first(self) -> list[Draft]:
        newest_last = [draft for draft, _ in self.drafts.values()]
        return sorted(reversed(newest_last), key=lambda draft: draft.uploaded_at, reverse=True)

    def upload(self, filename: str, data: bytes, by: str) -> Draft:
        name, source_name = upload_names(filename)
        with tempfile.TemporaryDirectory() as directory:
            source = Path(directory) / source_name
            source.write_bytes(data)
            report, sheet = check_matrix(source, None)
        entries = {e.id: (e.questions, e.answer) for e in entries_from_sheet(sheet)} if report.ok and sheet else None
        live = self.live_index
        draft = Draft(uuid.uuid4().hex[:12], name, by, self.clock(), report.ok, report.entry_count,
                      report_issues(report), report.render(),
                      base_version=self.versions[live][0].id if live is not None else None)
        self.drafts[draft.id] = (draft, entries)
        self.sources[draft.id] = data
        for old in self._drafts_newest_first()[KEEP_DRAFTS:]:
            del self.drafts[old.id]
            del self.sources[old.id]
        return draft

    def live_source(self) -> tuple[str, bytes]:
        live = self.live_index
        if live is None:
            raise NothingPublished("Todavía no hay una matriz publicada: suba la matriz y publíquela primero.")
        return self.versions[live][0].filename, self.version_sources[live]

    @staticmethod
    def _words(text: str) -> set[str]:
        return {word for word in re.findall(r"\w+", fold(text)) if word not in STOPWORDS}

    @classmethod
    def _answer(cls, entries: Entries, question: str) -> TriedAnswer:
        words = cls._words(question)
        best, best_score = None, 0
        for entry_id, (questions, _answer) in entries.items():
            score = max((len(words & cls._words(q)) for q in questions), default=0)
            if score > best_score:
                best, best_score = entry_id, score
        if best is None or best_score < min(2, len(words)):
            return TriedAnswer("none")
        return TriedAnswer("answer", entries[best][1], best, 0.9)

    def _draft(self, draft_id: str) -> tuple[Draft, Entries | None]:
        if draft_id not in self.drafts:
            raise DraftNotFound("No existe ese borrador.")
        return self.drafts[draft_id]

    def try_question(self, question: str, draft_id: str | None) -> TryResult:
        draft = None
        if draft_id:
            entries = self._draft(draft_id)[1]
            draft = self._answer(entries, question) if entries is not None else TriedAnswer(
                "none", text="El borrador tiene errores: corríjalos para probarlo.")
        live = self.live_index
        return TryResult(question, draft, self._answer(self.versions[live][1], question) if live is not None else None)

    def publish(self, draft_id: str, by: str, *, confirm_stale: bool = False) -> Version:
        draft, entries = self._draft(draft_id)
        live = self.versions[self.live_index][0].id if self.live_index is not None else None
        if is_stale(draft, live) and not confirm_stale:  # uploads only: the fake makes no console drafts
            raise stale_upload(draft, live)
        if entries is None:
            errors = sum(1 for issue in draft.issues if issue.severity == "error")
            raise DraftHasErrors(f"El borrador tiene {errors} error(es): corríjalos y vuelva a subir el archivo. "
                                 "La versión publicada sigue respondiendo.")
        version = Version(f"{len(self.versions) + 1:04d}", self.clock(), by, draft.entry_count, draft.filename)
        self.versions.append((version, entries))
        self.version_sources.append(self.sources[draft_id])
        self.lineage.append(len(self.versions) - 1)
        self.drafts[draft_id] = (replace(draft, published_version=version.id), entries)
        return replace(version, live=True)

    def rollback(self, by: str, version_id: str | None = None) -> Version:
        """Undo the last switch (a publication or a version made live); with `version_id`, make that one live."""
        if version_id is None:
            if len(self.lineage) < 2:
                raise NothingToRollBack("No hay una versión anterior a la que volver.")
            self.lineage.pop()
        else:
            ids = [version.id for version, _ in self.versions]
            if version_id not in ids:
                raise NothingToRollBack(f"La versión {version_id} no existe.")
            if ids.index(version_id) != self.live_index:
                self.lineage.append(ids.index(version_id))
        return replace(self.versions[self.lineage[-1]][0], live=True)
