"""Human handoff: the bot steps back, a person answers, the bot comes back. `Handoff` implements `HandoffService`.

Rasa is the source of truth for "the bot must not answer": a pause is Rasa's `ConversationPaused` (Rasa then
predicts nothing for that conversation) and a resume its `ConversationResumed`, both appended through Rasa's
HTTP API. `HandoffStore` (`<data_dir>/handoff.sqlite3`, or its schema on PostgreSQL) keeps what the console needs
around that: who or what paused each conversation, why and when, who it is assigned to, the pause/resume log with
closing notes, and a copy of the messages written while paused for the live view. Agents' replies go through the
outbox as HUMAN sends, after the same policy check the outbox makes, and are appended to Rasa's tracker as `bot`
events with `metadata.agent`, so the transcript (read back from Rasa) shows them.

Triggers: `actions/handoff.py` (the user asked, the bot failed, the GPT fallback declined) and the connector
(a person wrote from the Page inbox or another app) call `POST /internal/handoff/pause` (`bot/internal_api.py`);
the console calls this service directly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

from core.database import DatabaseStore, Session, moment, stored_time
from core.offload import Offload
from core.settings import PAGE_INBOX_APP_ID
from handoff.model import (
    Close,
    ConsoleEvent,
    Conversation,
    ConversationNotFound,
    ConversationState,
    Episode,
    HandoffLogEntry,
    PauseReason,
    ReplyRefused,
    TranscriptItem,
    conversation_id_of,
    split_conversation_id,
)
from handoff.pubsub import Broadcaster
from handoff.rasa_api import RasaTrackers
from handoff.reply_window import ReplyWindow, reply_window
from meta.errors import GraphError
from meta.graph import GraphClient
from meta.outgoing import OutgoingMessageError, build_messages
from outbox.model import NewMessage, OutboxMessage, Purpose, SenderKind
from outbox.outbox import Outbox
from outbox.policy import Decision

logger = logging.getLogger(__name__)

T = TypeVar("T")

SQL_DIR = Path(__file__).parent / "sql"  # sqlite/ and postgres/: numbered migrations and queries.sql

AUTO_RESUME_NOTE = "Reanudado automáticamente por inactividad"
AUTO_RESUME_BY = "system"
# The idle auto-resume is known by this reason (in the log and on the live "resumed" event), never by its actor's
# name alone: customer satisfaction asks about the closes of people only.
AUTO_RESUME_REASON = "idle"
AUTO_RESUME_CHECK_SECONDS = 60.0
AUTO_RESUME_SHORTEST_CHECK_SECONDS = 0.5
# Who paused when the app learns of a pause only from the connector (the action's notice was lost).
PAUSED_BY_RASA = "rasa"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


_time = stored_time


def _parse(value: str | datetime | None) -> datetime | None:
    return moment(value) if value else None


def _conversation(row: Any) -> Conversation:
    return Conversation(
        id=row["id"],
        page_id=row["page_id"],
        user_id=row["user_id"],
        state=ConversationState(row["state"]),
        paused_reason=PauseReason(row["paused_reason"]) if row["paused_reason"] else None,
        paused_by=row["paused_by"],
        paused_at=_parse(row["paused_at"]),
        assigned_to=row["assigned_to"],
        last_user_message_at=_parse(row["last_user_message_at"]),
        last_message_text=row["last_message_text"],
        last_activity_at=_parse(row["last_activity_at"]),
        contact_name=row["contact_name"],
    )


def _episode(row: Any) -> Episode:
    return Episode(
        conversation_id=row["conversation_id"], page_id=row["page_id"], user_id=row["user_id"],
        paused_at=moment(row["paused_at"]), reason=row["reason"], paused_by=row["paused_by"],
        first_reply_at=_parse(row["first_reply_at"]), first_reply_by=row["first_reply_by"],
        resumed_at=_parse(row["resumed_at"]), closed_by=row["closed_by"], assigned_to=row["assigned_to"],
    )


class HandoffStore(DatabaseStore):
    """The handoff's SQLite file or PostgreSQL schema (`core.database`). Synchronous and thread-safe; `Handoff`
    calls it through a thread. Every write is one transaction that first locks the conversation it changes
    (`lock_conversation`: SQLite's write lock, PostgreSQL's row lock), so writers of one conversation take turns
    in every process. Opened with a file path, `sqlite:///path`, `postgresql://…` (schema: the URL's search_path,
    else "handoff"), or ":memory:" (the same SQL in memory: unit tests)."""

    BACKEND = "handoff"
    SQL_DIR = SQL_DIR

    def _get(self, conn: Session, conversation_id: str, query: str = "get_conversation") -> Conversation:
        row = conn.execute(self._db.queries[query], {"id": conversation_id}).fetchone()
        if row is None:
            raise ConversationNotFound(f"no conversation {conversation_id}")
        return _conversation(row)

    def _insert(
        self, conn: Session, page_id: str, user_id: str, now: datetime, paused_by: str | None = None
    ) -> bool:
        """A conversation seen for the first time: the bot's, unless `paused_by` says Rasa already holds it."""
        params = {
            "id": conversation_id_of(page_id, user_id), "page_id": page_id, "user_id": user_id,
            "state": ConversationState.PAUSED.value if paused_by else ConversationState.BOT.value,
            "reason": None, "by": paused_by, "paused_at": _time(now) if paused_by else None, "now": _time(now),
        }
        return bool(conn.execute(self._db.queries["insert_conversation"], params).rowcount)

    def _log(self, conn: Session, conversation_id: str, action: str, by: str, now: datetime,
             reason: str | None = None, closing_note: str | None = None) -> None:
        conn.execute(self._db.queries["insert_log"], {"id": conversation_id, "action": action, "by": by,
                                                      "reason": reason, "closing_note": closing_note,
                                                      "now": _time(now)})

    def _insert_agent_message(self, conn: Session, conversation_id: str, agent: str, text: str, at: datetime,
                              outbox_id: int | None) -> None:
        """What a person of the team wrote (the console, or the Page inbox: an echo), in the local copy; the open
        episode's first reply when it has none yet."""
        conn.execute(self._db.queries["insert_message"], {"id": conversation_id, "author": f"agent:{agent}",
                                                          "text": text, "at": _time(at), "outbox_id": outbox_id})
        conn.execute(self._db.queries["touch"], {"id": conversation_id, "now": _time(at)})
        conn.execute(self._db.queries["episode_replied"], {"id": conversation_id, "at": _time(at), "by": agent})

    def get(self, conversation_id: str) -> Conversation:
        rows = self._db.read("get_conversation", {"id": conversation_id})
        if not rows:
            raise ConversationNotFound(f"no conversation {conversation_id}")
        return _conversation(rows[0])

    def find(self, conversation_id: str) -> Conversation | None:
        rows = self._db.read("get_conversation", {"id": conversation_id})
        return _conversation(rows[0]) if rows else None

    def pause(
        self, page_id: str, user_id: str, reason: PauseReason, by: str, now: datetime
    ) -> tuple[Conversation, bool]:
        """Paused now (True), or already paused (False: the first reason and author stay)."""
        conversation_id = conversation_id_of(page_id, user_id)
        with self._db.write() as conn:
            self._insert(conn, page_id, user_id, now)
            params = {"id": conversation_id, "reason": reason.value, "by": by, "now": _time(now)}
            changed = bool(conn.execute(self._db.queries["pause"], params).rowcount)
            if changed:
                self._log(conn, conversation_id, "paused", by, now, reason=reason.value)
                conn.execute(self._db.queries["insert_episode"], params)
            return self._get(conn, conversation_id), changed

    def resume(
        self, conversation_id: str, by: str, closing_note: str | None, now: datetime, reason: str | None = None
    ) -> tuple[Conversation, bool]:
        with self._db.write() as conn:
            self._get(conn, conversation_id, "lock_conversation")
            params = {"id": conversation_id, "now": _time(now)}
            changed = bool(conn.execute(self._db.queries["resume"], params).rowcount)
            if changed:
                self._log(conn, conversation_id, "resumed", by, now, reason=reason, closing_note=closing_note)
                conn.execute(self._db.queries["episode_closed"], {**params, "by": by})
            return self._get(conn, conversation_id), changed

    def assign(self, conversation_id: str, agent: str | None, by: str, now: datetime) -> Conversation:
        with self._db.write() as conn:
            self._get(conn, conversation_id, "lock_conversation")
            conn.execute(self._db.queries["assign"], {"id": conversation_id, "agent": agent, "now": _time(now)})
            conn.execute(self._db.queries["episode_assigned"], {"id": conversation_id, "agent": agent})
            self._log(conn, conversation_id, "assigned", by, now, reason=agent)
            return self._get(conn, conversation_id)

    def record_user_message(
        self, page_id: str, user_id: str, text: str, at: datetime, now: datetime
    ) -> tuple[Conversation, bool]:
        """A message the bot did not answer. An unknown conversation is recorded as paused by Rasa (True)."""
        conversation_id = conversation_id_of(page_id, user_id)
        with self._db.write() as conn:
            created = self._insert(conn, page_id, user_id, now, paused_by=PAUSED_BY_RASA)
            if created:
                self._log(conn, conversation_id, "paused", PAUSED_BY_RASA, now)
                conn.execute(self._db.queries["insert_episode"], {"id": conversation_id, "reason": None,
                                                                  "by": PAUSED_BY_RASA, "now": _time(now)})
            conn.execute(self._db.queries["note_user_message"],
                         {"id": conversation_id, "at": _time(at), "text": text, "now": _time(now)})
            conn.execute(self._db.queries["insert_message"],
                         {"id": conversation_id, "author": "user", "text": text, "at": _time(at), "outbox_id": None})
            return self._get(conn, conversation_id), created

    def record_agent_message(
        self, conversation_id: str, agent: str, text: str, at: datetime, outbox_id: int | None = None
    ) -> Conversation:
        with self._db.write() as conn:
            self._get(conn, conversation_id, "lock_conversation")
            self._insert_agent_message(conn, conversation_id, agent, text, at, outbox_id)
            return self._get(conn, conversation_id)

    def record_agent_reply_once(
        self, conversation_id: str, agent: str, text: str, at: datetime, outbox_id: int
    ) -> tuple[Conversation, bool]:
        """`record_agent_message` for an outbox message, at most once (a retried reply finishes what the first
        request left undone without writing it twice). Returns (conversation, written now)."""
        with self._db.write() as conn:
            self._get(conn, conversation_id, "lock_conversation")
            seen = conn.execute(self._db.queries["message_of_outbox"], {"id": conversation_id, "outbox_id": outbox_id})
            if seen.fetchone() is not None:
                return self._get(conn, conversation_id), False
            self._insert_agent_message(conn, conversation_id, agent, text, at, outbox_id)
            return self._get(conn, conversation_id), True

    def paused(self) -> list[Conversation]:
        return [_conversation(row) for row in self._db.read("list_paused", {})]

    def states_of(self, conversation_ids: Collection[str]) -> dict[str, Conversation]:
        """The rows of these conversations (one read); a conversation the bot always handled has none."""
        if not conversation_ids:
            return {}
        rows = self._db.read("states_of", {"ids": json.dumps(sorted(set(conversation_ids)))})
        return {row["id"]: _conversation(row) for row in rows}

    def ids_in_state(self, state: ConversationState, assigned_to: str | None = None,
                     unassigned: bool = False) -> set[str]:
        """The ids of the conversations in `state` (paused: optionally assigned to one agent, or to nobody)."""
        assignment = "none" if unassigned else "agent" if assigned_to is not None else "any"
        rows = self._db.read("ids_in_state", {"state": ConversationState(state).value, "assignment": assignment,
                                              "agent": assigned_to})
        return {row["id"] for row in rows}

    def idle_paused(self, cutoff: datetime) -> list[Conversation]:
        """Paused conversations with no activity since `cutoff`, longest idle first."""
        return [_conversation(row) for row in self._db.read("idle_paused", {"cutoff": _time(cutoff)})]

    def log(self, conversation_id: str) -> list[HandoffLogEntry]:
        return [
            HandoffLogEntry(row["conversation_id"], row["action"], row["actor"], moment(row["at"]),
                            row["reason"], row["closing_note"])
            for row in self._db.read("list_log", {"id": conversation_id})
        ]

    def closes_since(self, since: datetime) -> list[Close]:
        """Conversations a person gave back to the bot since `since` (not the idle auto-resume), oldest first."""
        return [Close(row["conversation_id"], row["page_id"], row["user_id"], row["actor"], moment(row["at"]))
                for row in self._db.read("closes_since", {"since": _time(since)})]

    def agent_of_close(self, conversation_id: str, closed_at: datetime) -> str | None:
        """The username of the team member who last wrote to the customer between the pause before `closed_at` and
        `closed_at` (None: nobody did)."""
        rows = self._db.read("agent_of_close", {"id": conversation_id, "closed_at": _time(closed_at)})
        return str(rows[0]["author"]).removeprefix("agent:") if rows else None

    def episodes(self, page_id: str | None, since: datetime, until: datetime) -> list[Episode]:
        """The handoff episodes paused in [since, until) (aware times; `page_id` None: every page), oldest first."""
        return [_episode(row) for row in self._db.read("episodes", {
            "page_id": page_id, "since": _time(since), "until": _time(until)})]

    def messages(self, conversation_id: str, limit: int = 100) -> list[TranscriptItem]:
        return [
            TranscriptItem(moment(row["at"]), row["author"], row["text"],
                           {"outbox_id": row["outbox_id"]} if row["outbox_id"] is not None else None)
            for row in self._db.read("list_messages", {"id": conversation_id, "limit": limit})
        ]


def open_handoff_store(url: Path | str) -> HandoffStore:
    """The handoff store at `Settings.handoff_store_url`: `sqlite:///path` (or a path) or `postgresql://…`."""
    return HandoffStore(url)


IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"  # the console answers it with 409


# --- Rasa's side ---------------------------------------------------------------------------------------------


# No timestamp: Rasa stamps an appended event when it holds the conversation's lock. Ours would be from before the
# wait for a turn in progress (another Rasa instance's, in the scale profile), so it could be older than a session
# that turn started, and Rasa's SQL tracker store reads only the events stamped since the latest session start: the
# pause (or resume) would vanish and the bot answer a paused conversation (tests/integration/scale found it).
def pause_event() -> dict[str, Any]:
    return {"event": "pause"}


def resume_event() -> dict[str, Any]:
    return {"event": "resume"}


def agent_message_event(text: str, agent: str, at: datetime, outbox_id: int | None,
                        data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What an agent wrote, as Rasa stores a bot message: the transcript tells it apart by `metadata.agent`. `data`
    (Rasa's bot `data`: what the console shows of a file sent, the quick replies offered) goes along when given."""
    event: dict[str, Any] = {"event": "bot", "text": text, "timestamp": at.timestamp(),
                             "metadata": {"agent": agent, "outbox_id": outbox_id}}
    if data:
        event["data"] = dict(data)
    return event


def _event_time(event: Mapping[str, Any]) -> datetime:
    return datetime.fromtimestamp(float(event.get("timestamp") or 0), tz=timezone.utc)


def transcript_items(events: Sequence[Mapping[str, Any]]) -> list[TranscriptItem]:
    """Rasa's tracker events → what an agent reads: the user's messages as they saw them, the bot's, the agents'."""
    items: list[TranscriptItem] = []
    for event in events:
        kind = event.get("event")
        metadata = event.get("metadata") if isinstance(event.get("metadata"), Mapping) else {}
        assert isinstance(metadata, Mapping)
        if kind == "user":
            # A quick reply or postback shows the title the user tapped, not its payload.
            text = metadata.get("shown_text") or metadata.get("title") or event.get("text") or ""
            data = {key: metadata[key] for key in ("payload", "attachments", "referral") if metadata.get(key)}
            items.append(TranscriptItem(_event_time(event), "user", str(text), data or None))
        elif kind == "bot":
            agent = metadata.get("agent")
            raw = event.get("data") if isinstance(event.get("data"), Mapping) else {}
            assert isinstance(raw, Mapping)
            data = {key: value for key, value in raw.items() if value not in (None, [], {}, "")}
            if agent and metadata.get("outbox_id") is not None:
                data["outbox_id"] = metadata["outbox_id"]
            author = f"agent:{agent}" if agent else "bot"
            items.append(TranscriptItem(_event_time(event), author, str(event.get("text") or ""), data or None))
        elif kind == "rewind":
            # Rasa's `UserUtteranceReverted` undoes the last user message and what followed it (the connector
            # reverts a turn whose action server died, then processes the message again): show it once.
            _drop_last_user_turn(items)
    return items


def _drop_last_user_turn(items: list[TranscriptItem]) -> None:
    for index in range(len(items) - 1, -1, -1):
        if items[index].author == "user":
            del items[index:]
            return


# --- the service ---------------------------------------------------------------------------------------------


def idle_cutoff(now: datetime, idle_minutes: float) -> datetime:
    return now - timedelta(minutes=idle_minutes)


def auto_resume_interval(idle_minutes: float, longest: float = AUTO_RESUME_CHECK_SECONDS) -> float:
    """How often the app looks for idle conversations: every minute, or a quarter of a shorter idle time (at
    least every half second), so a conversation goes back to the bot at most a quarter of its idle time late."""
    if idle_minutes <= 0:
        return longest
    return max(AUTO_RESUME_SHORTEST_CHECK_SECONDS, min(longest, idle_minutes * 60 / 4))


# What the transcript says for a file sent without a caption (Messenger's attachment type → Spanish).
ATTACHMENT_TEXT_ES = {"image": "Imagen enviada", "video": "Video enviado", "audio": "Audio enviado",
                      "file": "Archivo enviado"}


def checked_agent_reply(
    page_id: str,
    text: str,
    page_ids: Collection[str],
    *,
    quick_replies: Sequence[Mapping[str, Any]] = (),
    attachment: Mapping[str, Any] | None = None,
) -> tuple[str, tuple[dict[str, Any], ...]]:
    """An agent's reply as Messenger will get it: the text stripped, and the messages the outbox will send (the text,
    then the `attachment` — Messenger's `{"type", "payload"}` — if any; the quick replies on the last one). Refused
    (`ReplyRefused`) before anything is read or written: empty, for a page not configured, or not sendable."""
    text = text.strip()
    if not text and attachment is None:
        raise ReplyRefused("empty_text", "El mensaje está vacío.", "The message is empty.")
    if page_id not in page_ids:
        raise ReplyRefused("unknown_page", f"La página {page_id} no está configurada.",
                           f"page {page_id} is not configured")
    response: dict[str, Any] = {"text": text or None}
    if quick_replies:
        response["quick_replies"] = [dict(reply) for reply in quick_replies]
    if attachment is not None:
        response["attachment"] = dict(attachment)
    try:
        return text, build_messages(response).messages
    except OutgoingMessageError as exc:
        raise ReplyRefused("invalid_message", "El mensaje no se puede enviar por Messenger.", str(exc)) from exc


def agent_reply_answer(stored: Sequence[OutboxMessage], text: str, decision: Decision) -> dict[str, Any]:
    """What `reply_as_agent` answers: the messages queued (the first one on its own), the text, the policy's
    decision (how it goes out and until when the window is open)."""
    return {
        "message": stored[0].to_dict(),
        "messages": [message.to_dict() for message in stored],
        "text": text,
        "decision": {"messaging_type": decision.messaging_type, "tag": decision.tag,
                     "window_ends_at": _time(decision.window_ends_at) if decision.window_ends_at else None},
    }


class Handoff:
    """`HandoffService` over Rasa's HTTP API, the handoff store, the outbox and (optionally) Meta's handover."""

    def __init__(
        self,
        store: HandoffStore,
        rasa: RasaTrackers,
        outbox: Outbox,
        *,
        page_tokens: Mapping[str, str],
        idle_resume_minutes: float = 240.0,
        handover_to_page_inbox: bool = False,
        graph: GraphClient | None = None,
        clock: Callable[[], datetime] = utc_now,
        max_queued_events: int = 1000,
    ) -> None:
        # From the settings, only what it uses: the pages an agent may answer on (MESSENGER_PAGES),
        # HANDOFF_IDLE_RESUME_MINUTES (0: never) and HANDOVER_TO_PAGE_INBOX.
        self.page_tokens = dict(page_tokens)
        self.idle_resume_minutes = idle_resume_minutes
        self.handover_to_page_inbox = handover_to_page_inbox
        self.store = store
        self.rasa = rasa
        self.outbox = outbox
        self.graph = graph
        self.clock = clock
        self.events: Broadcaster[ConsoleEvent] = Broadcaster(
            lambda: ConsoleEvent("resync", "", self.clock(), {}), max_queued=max_queued_events
        )
        # One lock per outbox message being recorded, so a double-clicked reply (two requests, one key) records
        # the transcript and Rasa's event one request at a time. The app is one process (the console's live
        # events and this store are in it), so an in-process lock covers every request; a lock nobody holds goes.
        self._reply_locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()
        self._offload = Offload("handoff-store")  # the store's calls, off the event loop

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._offload.run(fn, *args)

    def _publish(self, kind: str, conversation: Conversation, at: datetime, **data: Any) -> None:
        self.events.publish(ConsoleEvent(kind, conversation.id, at, {"conversation": conversation.to_dict(), **data}))

    # Pausing and resuming.

    async def pause(
        self,
        page_id: str,
        user_id: str,
        reason: PauseReason,
        paused_by: str,
        *,
        rasa_already_paused: bool = False,
        text: str | None = None,
    ) -> Conversation:
        """Pause the bot for this conversation (Rasa first: that is what keeps the bot quiet), then record it.

        `rasa_already_paused`: the caller is an action that returns `ConversationPaused` itself (Rasa holds the
        conversation's lock while the action runs, so appending an event now would wait for it). `text`: what a
        person wrote from outside (an echo), kept for the live view.
        """
        reason = PauseReason(reason)
        now = self.clock()
        if not rasa_already_paused:
            await self.rasa.append_events(user_id, [pause_event()])
        conversation, changed = await self._db(self.store.pause, page_id, user_id, reason, paused_by, now)
        # Bot messages queued from before the pause must not reach a person now talking to an agent.
        await self.outbox.cancel_stale_bot_messages(page_id, user_id, now)
        if changed:
            logger.info("conversation paused", extra={"conversation_id": conversation.id, "reason": reason.value,
                                                      "paused_by": paused_by})
            self._publish("paused", conversation, now, reason=reason.value, by=paused_by)
            await self._pass_thread(conversation, reason)
        if text:
            conversation = await self._db(self.store.record_agent_message, conversation.id, paused_by, text, now)
            self._publish("agent_message", conversation, now, author=f"agent:{paused_by}", text=text)
        return conversation

    async def resume(self, conversation_id: str, by: str, closing_note: str, *,
                     reason: str | None = None) -> Conversation:
        """The bot answers again (Rasa's `ConversationResumed`); the closing note (and `reason`: AUTO_RESUME_REASON
        for the idle auto-resume) stays in the log."""
        split_conversation_id(conversation_id)
        current = await self._db(self.store.get, conversation_id)
        now = self.clock()
        await self.rasa.append_events(current.user_id, [resume_event()])
        note = closing_note.strip() or None
        conversation, changed = await self._db(self.store.resume, conversation_id, by, note, now, reason)
        if changed:
            logger.info("conversation resumed", extra={"conversation_id": conversation_id, "by": by})
            self._publish("resumed", conversation, now, by=by, closing_note=note, reason=reason)
            await self._take_thread(conversation)
        return conversation

    async def resume_idle(self, now: datetime | None = None) -> list[Conversation]:
        """Resume every conversation paused and idle for `HANDOFF_IDLE_RESUME_MINUTES`, so none stays paused forever."""
        minutes = self.idle_resume_minutes
        if minutes <= 0:
            return []
        now = now or self.clock()
        resumed = []
        for conversation in await self._db(self.store.idle_paused, idle_cutoff(now, minutes)):
            try:
                resumed.append(await self.resume(conversation.id, AUTO_RESUME_BY, AUTO_RESUME_NOTE,
                                                 reason=AUTO_RESUME_REASON))
            except Exception:  # Rasa down: the next round tries again
                logger.exception("auto-resume failed", extra={"conversation_id": conversation.id})
        return resumed

    async def run_auto_resume(self, interval_seconds: float | None = None) -> None:
        """The app's background task (cancel it to stop); by default it looks every `auto_resume_interval`."""
        if interval_seconds is None:
            interval_seconds = auto_resume_interval(self.idle_resume_minutes)
        while True:
            try:
                await self.resume_idle()
            except Exception:
                logger.exception("auto-resume round failed")
            await asyncio.sleep(interval_seconds)

    # Messages.

    async def record_user_message(self, page_id: str, user_id: str, text: str, at: datetime) -> None:
        """A user wrote while the bot is paused: keep it for the live view and tell open consoles."""
        now = self.clock()
        conversation, created = await self._db(self.store.record_user_message, page_id, user_id, text, at, now)
        if created:
            self._publish("paused", conversation, now, reason=None, by=PAUSED_BY_RASA)
        self._publish("user_message", conversation, now, text=text, message_at=_time(at))

    async def reply_as_agent(
        self,
        conversation_id: str,
        agent: str,
        text: str,
        *,
        idempotency_key: str | None = None,
        quick_replies: Sequence[Mapping[str, Any]] = (),
        attachment: Mapping[str, Any] | None = None,
        shown: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Send through the outbox as a HUMAN sender after the outbox's own policy check.

        `quick_replies` go on the last message; `attachment` (Messenger's `{"type", "payload"}`, e.g. an uploaded
        file's `attachment_id`) follows the text, which may then be empty (a file without a caption); `shown` is what
        the transcript keeps about it (Rasa's bot `data`). Refused (empty text, unknown page, outside the 7-day
        window…) → `ReplyRefused` with the policy's reason code and sentence. A conversation the bot still holds is
        paused first (AGENT_TOOK_OVER): a person and the bot must never answer together.
        """
        page_id, user_id = split_conversation_id(conversation_id)
        text, messages = checked_agent_reply(page_id, text, self.page_tokens, quick_replies=quick_replies,
                                             attachment=attachment)
        if not text and attachment is not None:
            text = ATTACHMENT_TEXT_ES.get(str(attachment.get("type")), ATTACHMENT_TEXT_ES["file"])
        now = self.clock()
        first = NewMessage(page_id=page_id, recipient_id=user_id, message=messages[0], sender=SenderKind.HUMAN,
                           purpose=Purpose.REPLY, sender_name=agent)
        decision = await self.outbox.preview(first, now)
        if not decision.allowed:
            raise ReplyRefused(decision.reason_code, decision.reason_es, decision.reason_en)

        conversation = await self._db(self.store.find, conversation_id)
        if conversation is None or conversation.state is not ConversationState.PAUSED:
            await self.pause(page_id, user_id, PauseReason.AGENT_TOOK_OVER, agent)
        stored = []
        created = []
        for number, message in enumerate(messages):
            key = f"{idempotency_key}:{number}" if idempotency_key else None
            outbox_message, new = await self.outbox.enqueue(replace(first, message=message, idempotency_key=key))
            if not new and outbox_message.message != message:
                # The key of an earlier reply with other words: answering "repeated" would tell the agent that
                # this text was sent when the customer got the earlier one.
                raise ReplyRefused(IDEMPOTENCY_KEY_REUSED,
                                   "Esa clave de idempotencia ya se usó para otro mensaje con otro texto; no se envió "
                                   "nada. Recargue la página y vuelva a enviar.",
                                   f"idempotency key already used for outbox message {outbox_message.id} with "
                                   "another text; nothing was sent")
            stored.append(outbox_message)
            created.append(new)
        # The text is what the outbox holds: a repeated key with other words was refused above.
        answer = agent_reply_answer(stored, text, decision)
        repeated = not any(created)  # a retried request (same idempotency key): queued the first time
        # Recorded once per outbox message, in this order, so a retry finishes whatever a first request that died
        # after queueing left undone: the local transcript (written at most once), then Rasa's tracker.
        # Under the message's lock: a concurrent repeat (a double click) waits until the first request has appended
        # to Rasa, then finds the event there and adds nothing; a repeat after a first request that failed or died
        # before appending finds nothing and finishes it.
        lock = self._reply_locks.setdefault(stored[0].id, asyncio.Lock())
        async with lock:
            conversation, written = await self._db(self.store.record_agent_reply_once, conversation_id, agent, text,
                                                   now, stored[0].id)
            if written or not await self._in_rasa_tracker(user_id, stored[0].id):
                try:
                    await self.rasa.append_events(user_id, [agent_message_event(text, agent, now, stored[0].id,
                                                                                shown)])
                except Exception:  # the reply is queued; only the transcript misses it (a retry adds it)
                    logger.exception("could not add an agent reply to Rasa's tracker",
                                     extra={"conversation_id": conversation_id})
        if written and conversation is not None:
            self._publish("agent_message", conversation, now, author=f"agent:{agent}", text=text,
                          outbox_id=stored[0].id, **({"shown": dict(shown)} if shown else {}))
        return {**answer, "repeated": True} if repeated else answer

    async def _in_rasa_tracker(self, user_id: str, outbox_id: int) -> bool:
        """Does Rasa's tracker already hold the agent's reply for this outbox message? (Unknown counts as yes:
        never a second copy on a guess.)"""
        try:
            tracker = await self.rasa.tracker(user_id)
        except Exception:
            logger.exception("could not read Rasa's tracker to finish a retried reply", extra={"user_id": user_id})
            return True
        return any((event.get("metadata") or {}).get("outbox_id") == outbox_id
                   for event in tracker.get("events") or [] if event.get("event") == "bot")

    # Reading.

    async def assign(self, conversation_id: str, agent: str | None) -> Conversation:
        split_conversation_id(conversation_id)
        now = self.clock()
        conversation = await self._db(self.store.assign, conversation_id, agent, agent or "console", now)
        self._publish("assigned", conversation, now, agent=agent)
        return conversation

    async def paused_conversations(self) -> list[Conversation]:
        return await self._db(self.store.paused)

    async def get(self, conversation_id: str) -> Conversation:
        split_conversation_id(conversation_id)
        return await self._db(self.store.get, conversation_id)

    async def states_of(self, conversation_ids: Collection[str]) -> dict[str, Conversation]:
        """The console's inbox: the handoff state of a page of conversations in one read (absent: the bot's)."""
        return await self._db(self.store.states_of, list(conversation_ids))

    async def conversation_ids(self, state: ConversationState, assigned_to: str | None = None,
                               unassigned: bool = False) -> set[str]:
        """The ids in `state` (the inbox's paused / assigned / unassigned / closed filters)."""
        return await self._db(self.store.ids_in_state, state, assigned_to, unassigned)

    async def find(self, page_id: str, user_id: str) -> Conversation | None:
        return await self._db(self.store.find, conversation_id_of(page_id, user_id))

    async def transcript(self, conversation_id: str) -> list[TranscriptItem]:
        _page_id, user_id = split_conversation_id(conversation_id)
        tracker = await self.rasa.tracker(user_id)
        return transcript_items(tracker.get("events") or [])

    async def messages(self, conversation_id: str, limit: int = 100) -> list[TranscriptItem]:
        """The local copy of what was written while paused (newest `limit`, oldest first)."""
        return await self._db(self.store.messages, conversation_id, limit)

    async def closes_since(self, since: datetime) -> list[Close]:
        """Resumes by a person since `since`, from the durable log (what the live "resumed" events said, after a
        restart too)."""
        return await self._db(self.store.closes_since, since)

    async def agent_of_close(self, conversation_id: str, closed_at: datetime) -> str | None:
        """Who of the team last wrote to the customer since the conversation was paused, up to its close at
        `closed_at` (the agent a satisfaction survey rates; None: nobody wrote, nothing to rate)."""
        return await self._db(self.store.agent_of_close, conversation_id, closed_at)

    async def episodes(self, page_id: str | None, since: datetime, until: datetime) -> list[Episode]:
        """The handoff episodes paused in [since, until), oldest first (the reports' waiting times per agent)."""
        return await self._db(self.store.episodes, page_id, since, until)

    async def history(self, conversation_id: str) -> list[HandoffLogEntry]:
        """Pauses, resumes (with their closing notes) and assignments, oldest first."""
        return await self._db(self.store.log, conversation_id)

    async def window_status(self, conversation_id: str, now: datetime | None = None) -> ReplyWindow:
        """How long a person can still answer, from the outbox's record of the user's last own message."""
        page_id, user_id = split_conversation_id(conversation_id)
        window = await self.outbox.conversation_window(page_id, user_id)
        return reply_window(window.last_user_message_at, now or self.clock(), self.outbox.decide)

    def subscribe(self) -> AsyncIterator[ConsoleEvent]:
        return self.events.subscribe()

    # Meta's handover protocol (HANDOVER_TO_PAGE_INBOX=1).

    async def _pass_thread(self, conversation: Conversation, reason: PauseReason) -> None:
        if not self.handover_to_page_inbox or self.graph is None:
            return
        try:
            await self.graph.pass_thread_control(conversation.page_id, conversation.user_id, PAGE_INBOX_APP_ID,
                                                 metadata=f"handoff:{reason.value}")
        except GraphError as exc:
            logger.warning("pass_thread_control failed", extra={"conversation_id": conversation.id,
                                                                "code": exc.code, "status": exc.status})

    async def _take_thread(self, conversation: Conversation) -> None:
        if not self.handover_to_page_inbox or self.graph is None:
            return
        try:
            await self.graph.take_thread_control(conversation.page_id, conversation.user_id, metadata="handoff:resumed")
        except GraphError as exc:
            logger.warning("take_thread_control failed", extra={"conversation_id": conversation.id,
                                                                "code": exc.code, "status": exc.status})
