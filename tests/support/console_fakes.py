"""In-memory fakes for the console's two collaborators: the handoff service and the knowledge editor.

Same semantics as the real ones where the console can tell: a reply outside the window is refused with the
outbox policy's reason (`ReplyRefused`), events are published to every subscriber, a draft with errors cannot
be published, a rollback serves the previous version.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from bot.handoff_model import (
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
from bot.knowledge_editor import (
    Draft,
    DraftHasErrors,
    DraftNotFound,
    KnowledgeStatus,
    NothingToRollBack,
    ReportIssue,
    TriedAnswer,
    TryResult,
    Version,
)
from bot.pubsub import Broadcaster
from bot.reply_window import reply_window
from knowledge_matrix.errors import KnowledgeMatrixError
from knowledge_matrix.matrix import entries_from_sheet, parse_csv_bytes
from knowledge_matrix.text import fold
from knowledge_matrix.validation import validate_sheet
from outbox.policy import load_policy


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class FakeHandoff:
    """`HandoffService` in memory. `sent` keeps the agents' replies as the outbox would get them."""

    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        self.clock = clock
        self.conversations: dict[str, Conversation] = {}
        self.transcripts: dict[str, list[TranscriptItem]] = {}
        self.sent: list[dict[str, Any]] = []
        self.replies_by_key: dict[str, dict[str, Any]] = {}
        self.closing_notes: dict[str, str] = {}
        self.policy = load_policy()
        self._events: Broadcaster[ConsoleEvent] = Broadcaster(lambda: ConsoleEvent("resync", "", self.clock(), {}))

    def _publish(self, kind: str, conversation: Conversation, **data: Any) -> None:
        self._events.publish(ConsoleEvent(kind, conversation.id, self.clock(), {"conversation": conversation.to_dict(),
                                                                               **data}))

    def add_user_message(self, page_id: str, user_id: str, text: str, at: datetime | None = None) -> None:
        """A message the bot answered (before any pause): only the transcript sees it."""
        at = at or self.clock()
        conversation_id = conversation_id_of(page_id, user_id)
        self.transcripts.setdefault(conversation_id, []).append(TranscriptItem(at, "user", text))
        if conversation_id in self.conversations:
            self.conversations[conversation_id] = replace(self.conversations[conversation_id],
                                                          last_user_message_at=at, last_message_text=text)

    async def pause(self, page_id: str, user_id: str, reason: PauseReason, paused_by: str) -> Conversation:
        conversation_id = conversation_id_of(page_id, user_id)
        now = self.clock()
        current = self.conversations.get(conversation_id)
        if current is not None and current.state is ConversationState.PAUSED:
            return current
        last_user = max((i.at for i in self.transcripts.get(conversation_id, []) if i.author == "user"), default=None)
        conversation = Conversation(
            id=conversation_id, page_id=page_id, user_id=user_id, state=ConversationState.PAUSED,
            paused_reason=PauseReason(reason), paused_by=paused_by, paused_at=now,
            assigned_to=current.assigned_to if current else None, last_user_message_at=last_user,
            last_activity_at=now,
        )
        self.conversations[conversation_id] = conversation
        self._publish("paused", conversation, reason=PauseReason(reason).value, by=paused_by)
        return conversation

    async def resume(self, conversation_id: str, by: str, closing_note: str) -> Conversation:
        conversation = await self.get(conversation_id)
        conversation = replace(conversation, state=ConversationState.BOT, paused_reason=None, paused_by=None,
                               paused_at=None, assigned_to=None)
        self.conversations[conversation_id] = conversation
        self.closing_notes[conversation_id] = closing_note
        self._publish("resumed", conversation, by=by, closing_note=closing_note)
        return conversation

    async def record_user_message(self, page_id: str, user_id: str, text: str, at: datetime) -> None:
        conversation_id = conversation_id_of(page_id, user_id)
        self.transcripts.setdefault(conversation_id, []).append(TranscriptItem(at, "user", text))
        conversation = self.conversations.get(conversation_id) or Conversation(
            conversation_id, page_id, user_id, ConversationState.PAUSED, paused_by="rasa", paused_at=at)
        conversation = replace(conversation, last_user_message_at=at, last_message_text=text, last_activity_at=at)
        self.conversations[conversation_id] = conversation
        self._publish("user_message", conversation, text=text)

    async def reply_as_agent(
        self, conversation_id: str, agent: str, text: str, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Like the outbox: the same idempotency key again is the first message, not a second one."""
        if idempotency_key is not None and idempotency_key in self.replies_by_key:
            first = self.replies_by_key[idempotency_key]
            if first["text"] != text:  # as bot.handoff: other words under a used key are refused (409)
                raise ReplyRefused("idempotency_key_reused", "Esa clave de idempotencia ya se usó con otro texto.")
            return {**first, "repeated": True}
        answer = await self._reply(conversation_id, agent, text)
        if idempotency_key is not None:
            self.replies_by_key[idempotency_key] = answer
        return answer

    async def _reply(self, conversation_id: str, agent: str, text: str) -> dict[str, Any]:
        conversation = await self.get(conversation_id)
        decision = reply_window(conversation.last_user_message_at, self.clock(), self.policy)
        if not decision.can_reply:
            raise ReplyRefused(decision.reason_code, decision.message_es)
        now = self.clock()
        message = {"recipient_id": conversation.user_id, "text": text, "sender_name": agent,
                   "messaging_type": decision.messaging_type, "tag": decision.tag}
        self.sent.append(message)
        self.transcripts.setdefault(conversation_id, []).append(TranscriptItem(now, f"agent:{agent}", text))
        self._publish("agent_message", conversation, author=f"agent:{agent}", text=text)
        return {"message": message, "text": text}

    async def assign(self, conversation_id: str, agent: str | None) -> Conversation:
        conversation = replace(await self.get(conversation_id), assigned_to=agent)
        self.conversations[conversation_id] = conversation
        self._publish("assigned", conversation, agent=agent)
        return conversation

    async def paused_conversations(self) -> list[Conversation]:
        return [c for c in self.conversations.values() if c.state is ConversationState.PAUSED]

    async def get(self, conversation_id: str) -> Conversation:
        split_conversation_id(conversation_id)
        try:
            return self.conversations[conversation_id]
        except KeyError:
            raise ConversationNotFound(f"no conversation {conversation_id}") from None

    async def transcript(self, conversation_id: str) -> list[TranscriptItem]:
        split_conversation_id(conversation_id)
        return list(self.transcripts.get(conversation_id, []))

    def subscribe(self) -> AsyncIterator[ConsoleEvent]:
        return self._events.subscribe()


class FakeKnowledgeEditor:
    """`KnowledgeEditor` in memory: real parsing and validation (pure), a word-overlap "retrieval"."""

    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        self.clock = clock
        self.drafts: dict[str, tuple[Draft, dict[str, tuple[tuple[str, ...], str]]]] = {}
        self.versions: list[tuple[Version, dict[str, tuple[tuple[str, ...], str]]]] = []
        self.live_index: int | None = None

    def status(self) -> KnowledgeStatus:
        live = self.versions[self.live_index][0] if self.live_index is not None else None
        numbered = reversed(list(enumerate(self.versions)))
        versions = tuple(replace(version, live=(i == self.live_index)) for i, (version, _) in numbered)
        drafts = tuple(d for d, _ in reversed(list(self.drafts.values())))
        return KnowledgeStatus(live=replace(live, live=True) if live else None, versions=versions, drafts=drafts)

    def upload(self, filename: str, data: bytes, by: str) -> Draft:
        try:
            sheet = parse_csv_bytes(data)
        except KnowledgeMatrixError as exc:
            issues: tuple[ReportIssue, ...] = (ReportIssue("error", "unreadable", str(exc)),)
            draft = Draft(uuid.uuid4().hex[:12], filename, by, self.clock(), False, 0, issues, str(exc))
            self.drafts[draft.id] = (draft, {})
            return draft
        report = validate_sheet(sheet)
        issues = tuple(ReportIssue(i.severity, i.code, i.message, i.row, i.column) for i in report.issues)
        entries = {e.id: (e.questions, e.answer) for e in entries_from_sheet(sheet)}
        draft = Draft(uuid.uuid4().hex[:12], filename, by, self.clock(), report.ok, report.entry_count, issues,
                      report.render())
        self.drafts[draft.id] = (draft, entries)
        return draft

    @staticmethod
    def _answer(entries: dict[str, tuple[tuple[str, ...], str]], question: str) -> TriedAnswer:
        words = set(fold(question).split())
        best, best_score = None, 0
        for entry_id, (questions, _answer) in entries.items():
            score = max((len(words & set(fold(q).split())) for q in questions), default=0)
            if score > best_score:
                best, best_score = entry_id, score
        if best is None or best_score < 2:
            return TriedAnswer("none")
        return TriedAnswer("answer", entries[best][1], best, 0.9)

    def try_question(self, question: str, draft_id: str | None) -> TryResult:
        draft = None
        if draft_id is not None:
            if draft_id not in self.drafts:
                raise DraftNotFound("No existe ese borrador.")
            draft = self._answer(self.drafts[draft_id][1], question)
        live = self._answer(self.versions[self.live_index][1], question) if self.live_index is not None else None
        return TryResult(question, draft, live)

    def publish(self, draft_id: str, by: str) -> Version:
        if draft_id not in self.drafts:
            raise DraftNotFound("No existe ese borrador.")
        draft, entries = self.drafts[draft_id]
        if not draft.ok:
            raise DraftHasErrors("El borrador tiene errores: corríjalos y vuelva a subirlo.")
        version = Version(f"v{len(self.versions) + 1}", self.clock(), by, draft.entry_count, draft.filename)
        self.versions.append((version, entries))
        self.live_index = len(self.versions) - 1
        return replace(version, live=True)

    def rollback(self, by: str, version_id: str | None = None) -> Version:
        if self.live_index is None or (version_id is None and self.live_index == 0):
            raise NothingToRollBack("No hay una versión anterior a la que volver.")
        if version_id is None:
            self.live_index -= 1
        else:
            ids = [v.id for v, _ in self.versions]
            if version_id not in ids:
                raise NothingToRollBack(f"No existe la versión {version_id}.")
            self.live_index = ids.index(version_id)
        return replace(self.versions[self.live_index][0], live=True)
