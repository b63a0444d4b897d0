"""Answers what small talk does not cover: the questions meant for the knowledge matrix.

The live version of the matrix (`knowledge_matrix.live.LiveKnowledge`, switched without a
restart when an editor publishes) decides what to do with the message:

- **answer**: the entry's answer, its link appended, its image, its quick replies or buttons;
- **ambiguous**: "¿Quisiste decir…?" with up to 3 candidate questions as quick replies; tapping one
  sends `/ask_knowledge{"entry_id":"…"}`, which Rasa's regex interpreter turns into the intent
  `ask_knowledge` with the entity `entry_id`, and this action answers that entry. A matrix quick
  reply or button `=> #id` sends the same payload;
- **no match**: the GPT fallback (`knowledge_matrix.llm`) answers from the best entries alone, or
  declines. Declining, or no key configured, ends in the honest "no tengo esa respuesta" and the
  offer of a person; `actions.handoff` counts those misses and hands off after
  `HANDOFF_MAX_FAILURES` in a row, or at once when the GPT fallback declined.

Each outcome is written to the answer journal (`answers.service.Answers`: answered from the matrix, a candidate
tapped, "¿Quisiste decir…?", GPT, no answer, handed off), from which the console's «Preguntas sin respuesta» and the
reports are made. The journal never holds an answer up: opening it and each write run in the background
(`JournalWrites`, in a thread of their own), at most MAX_PENDING_JOURNAL_WRITES at once (more are dropped and
counted). A journal that cannot be written is logged; the answer is sent anyway.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.handoff import answered, handoff_events, no_answer, page_of
from answers.model import Handling
from answers.service import Answers
from core.offload import Offload
from core.settings import Settings, load_settings
from knowledge_matrix.errors import KnowledgeMatrixError, LLMSettingsError
from knowledge_matrix.live import LiveKnowledge, Lookup
from knowledge_matrix.llm.client import LLMClient, make_llm_client
from knowledge_matrix.llm.fallback import answer_with_fallback
from knowledge_matrix.llm.grounding import GroundedEntry
from knowledge_matrix.llm.prompt import Turn
from knowledge_matrix.llm.settings import LLMSettings, llm_settings_from
from knowledge_matrix.matrix import Button, Entry, QuickReply
from knowledge_matrix.retrieval import Hit
from knowledge_matrix.text import fold

logger = logging.getLogger(__name__)

ACTION_NAME = "action_knowledge_answer"
ENTRY_INTENT = "ask_knowledge"
ENTRY_ENTITY = "entry_id"
QUICK_REPLY_TITLE_LIMIT = 20  # Messenger
MAX_CANDIDATES = 3
FALLBACK_TURNS = 6  # earlier messages of the session given to the GPT fallback

DID_YOU_MEAN = "¿Quisiste decir…?"
AGENT_QUICK_REPLY: dict[str, str] = {"title": "Hablar con un agente", "payload": "/request_human"}
OFFER_PERSON_QUICK_REPLIES: tuple[dict[str, str], ...] = (
    AGENT_QUICK_REPLY,
    {"title": "No, gracias", "payload": "/deny"},
)

# Varied by how many times the action already answered in this session, so a user who
# asks two things in a row does not read the same sentence twice.
NO_ANSWER_TEXTS: tuple[str, ...] = (
    "Ese tema todavía no está en mi información, así que prefiero no inventarte una respuesta. "
    "¿Quieres que te comunique con una persona del equipo?",
    "Sobre eso todavía no tengo información confiable. Una persona del equipo sí te puede ayudar, ¿te comunico?",
    "Todavía no sé responder eso y no quiero darte un dato equivocado. ¿Prefieres que te atienda una persona?",
)

# Why the GPT fallback gave no answer without being asked, or without replying: these count as one
# more miss. Any other reason means the model replied and it (or our checks) declined: hand off at once.
NOT_ASKED_OR_FAILED = frozenset(
    {"llm_disabled", "empty_question", "no_entries", "injection_suspected", "llm_timeout", "llm_unavailable",
     "llm_rejected"}
)

# Words a too-long question can lose at its start ("¿Qué son los mensajes de etiqueta?" → "Mensajes de etiqueta").
_LEADING_FILLERS = frozenset(
    {"como", "que", "cual", "cuales", "donde", "cuando", "quien", "es", "son", "se", "hay", "el", "la", "los", "las",
     "un", "una", "mi", "mis"}
)
# Words a shortened title should not end on ("Cómo pauso el…" says less than "Cómo pauso…").
_TRAILING_FILLERS = frozenset(
    {"a", "al", "con", "de", "del", "el", "en", "es", "la", "las", "lo", "los", "mi", "mis", "o", "para", "por",
     "que", "se", "su", "sus", "tu", "tus", "un", "una", "y"}
)


# --- the seam -----------------------------------------------------------------------------------------


class KnowledgeSource(Protocol):
    """What the action needs from the matrix; `LiveKnowledge` in the server, a fake in tests."""

    async def lookup(self, question: str) -> Lookup | None:
        """The verdict and best entries of the live version; None when nothing is published."""
        ...

    async def entry(self, entry_id: str) -> Entry | None: ...


@dataclass(frozen=True)
class Fallback:
    """The GPT fallback's settings and client (None without a key: nothing is ever sent)."""

    settings: LLMSettings
    client: LLMClient | None


class AnswerJournal(Protocol):
    """Where each outcome is written: `answers.service.Answers` in the server, a fake in tests."""

    def record_question(
        self, *, page_id: str, psid: str, question: str, handling: Handling, at: datetime,
        entry_id: str | None = None, score: float | None = None, candidates: Sequence[str] = (),
        reason: str | None = None, matrix_version: str | None = None,
    ) -> int: ...


@dataclass(frozen=True)
class Outcome:
    """How one question was handled, for the answer journal."""

    handling: Handling
    question: str
    entry_id: str | None = None
    score: float | None = None
    candidates: tuple[str, ...] = ()
    reason: str | None = None
    matrix_version: str | None = None


# Why a question got no answer, as journaled (the handoff's own reason when it was handed off).
NO_MATCH = "no_match"  # the matrix had nothing close and the GPT fallback was off or could not answer
LLM_DECLINED = "llm_declined"  # the GPT fallback was asked and declined
UNKNOWN_ENTRY = "unknown_entry"  # a tapped reply points to an entry the live version does not have
EMPTY_QUESTION = "empty_question"  # nothing written (a sticker, a photo)
JOURNAL_RETRY_SECONDS = 60.0  # a journal that could not be opened is tried again after this long
MAX_PENDING_JOURNAL_WRITES = 64  # journal writes waiting at once; more are dropped (a stuck database must not pile up)
DROPPED_WARNING_EVERY = 100  # after the first drop of a run, one warning per this many drops

_defaults_lock = threading.Lock()
_default_knowledge: LiveKnowledge | None = None
_default_fallback: Fallback | None = None
_default_journal: AnswerJournal | None = None
# The journal's own lock: opening it may wait for PostgreSQL (CONNECT_TIMEOUT_SECONDS), in the journal's thread, and
# must not hold up `default_fallback()`, which every answer calls on the event loop.
_journal_lock = threading.Lock()
_journal_failed_at = float("-inf")


def default_knowledge() -> LiveKnowledge:
    """One `LiveKnowledge` per action server process, warming up in the background from the
    moment the action is registered, so the first customer does not wait for the models."""
    global _default_knowledge
    with _defaults_lock:
        if _default_knowledge is None:
            _default_knowledge = LiveKnowledge(load_settings().data_dir)
            _default_knowledge.start_warm_up()
        return _default_knowledge


def default_fallback() -> Fallback:
    """`LLM_*` from the settings; a base URL we cannot use is logged and the fallback is off."""
    global _default_fallback
    with _defaults_lock:
        if _default_fallback is None:
            try:
                settings = llm_settings_from(load_settings())
            except LLMSettingsError as exc:
                logger.error("the GPT fallback is off: %s", exc)
                settings = LLMSettings()
            _default_fallback = Fallback(settings, make_llm_client(settings))
        return _default_fallback


def default_journal() -> AnswerJournal | None:
    """The answer journal at ANSWERS_DB_URL (else answers.sqlite3); None, logged, while it cannot be opened."""
    global _default_journal, _journal_failed_at
    with _journal_lock:
        if _default_journal is None and time.monotonic() - _journal_failed_at >= JOURNAL_RETRY_SECONDS:
            try:
                _default_journal = Answers.from_settings(load_settings())
            except Exception as exc:  # any store error: the bot answers without its journal
                _journal_failed_at = time.monotonic()
                logger.error("the answer journal cannot be opened; answers are not journaled for a while",
                             extra={"error": str(exc)})
        return _default_journal


class JournalWrites:
    """Journal writes in the background of the answers: each one a task (opening the journal if needed, then
    writing, both in a thread), its reference kept until it ends, its failure logged. At most `max_pending` at once:
    when the journal is slow or stuck, a further write is dropped and counted (`dropped`) with a warning, never
    queued behind the others."""

    def __init__(self, max_pending: int = MAX_PENDING_JOURNAL_WRITES) -> None:
        self.max_pending = max_pending
        self.dropped = 0
        self._dropped_in_a_row = 0
        self._pending: set[asyncio.Task[None]] = set()
        # One thread of its own: a slow journal never takes the threads the matrix lookups run in.
        self._thread = Offload("answer-journal")

    @property
    def pending(self) -> int:
        return len(self._pending)

    def submit(self, write: Callable[[AnswerJournal], Any], *, open_journal: Callable[[], AnswerJournal | None],
               handling: Handling, user_id: str) -> bool:
        """Start `write(journal)` in the background; False (and counted) when too many are pending."""
        if len(self._pending) >= self.max_pending:
            self.dropped += 1
            self._dropped_in_a_row += 1
            if self._dropped_in_a_row % DROPPED_WARNING_EVERY == 1:
                logger.warning("the answer journal is behind; answers are not journaled", extra={
                    "pending": len(self._pending), "dropped": self.dropped, "handling": handling.value})
            return False
        self._dropped_in_a_row = 0
        task = asyncio.get_running_loop().create_task(self._write(write, open_journal, handling, user_id))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return True

    async def _write(self, write: Callable[[AnswerJournal], Any], open_journal: Callable[[], AnswerJournal | None],
                     handling: Handling, user_id: str) -> None:
        try:
            journal = await self._thread.run(open_journal)
            if journal is not None:
                await self._thread.run(write, journal)
        except Exception as exc:  # the journal must never cost the customer the answer
            logger.error("an answer could not be journaled", extra={
                "error": str(exc), "error_type": type(exc).__name__, "handling": handling.value, "user_id": user_id})

    async def drain(self) -> None:
        """Wait for the writes started so far (tests; a clean shutdown)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)


# --- what is sent ---------------------------------------------------------------------------------------


def entry_payload(entry_id: str) -> str:
    """The payload that makes this action answer an entry: `/ask_knowledge{"entry_id":"…"}`."""
    return f"/{ENTRY_INTENT}" + json.dumps({ENTRY_ENTITY: entry_id}, ensure_ascii=False, separators=(",", ":"))


def reply_payload(value: str) -> str:
    """A matrix payload as sent: `#id` points to an entry; anything else (`/request_human`, a text) as is."""
    value = value.strip()
    if value.startswith("#") and len(value) > 1:
        return entry_payload(value[1:].strip())
    return value


def quick_reply_dict(reply: QuickReply) -> dict[str, str]:
    return {"title": reply.title, "payload": reply_payload(reply.payload or reply.title)}


def button_dict(button: Button) -> dict[str, str]:
    if button.is_link:
        return {"type": "web_url", "title": button.title, "url": button.url}
    return {"type": "postback", "title": button.title, "payload": reply_payload(button.payload or button.title)}


def answer_text(entry: Entry) -> str:
    """The answer with the entry's link on its own line (unless the answer already has it)."""
    if entry.link and entry.link not in entry.answer:
        return f"{entry.answer}\n\n{entry.link}"
    return entry.answer


def answer_message(entry: Entry) -> dict[str, Any]:
    """`utter_message` arguments for an entry. The connector sends the image as its own message
    after the text and attaches the quick replies to the last message, where Messenger shows them."""
    message: dict[str, Any] = {"text": answer_text(entry)}
    if entry.image:
        message["image"] = entry.image
    if entry.quick_replies:
        message["quick_replies"] = [quick_reply_dict(reply) for reply in entry.quick_replies]
    if entry.buttons:
        message["buttons"] = [button_dict(button) for button in entry.buttons]
    return message


def _clean_question(text: str) -> str:
    cleaned = " ".join(text.translate(str.maketrans("", "", "¿?¡!")).split())
    return cleaned[:1].upper() + cleaned[1:]


def short_title(text: str, limit: int = QUICK_REPLY_TITLE_LIMIT) -> str:
    """A question as a quick reply title, never over `limit`: without ¿?¡!; if still too long, without
    its leading question words; else cut after a whole word, with "…"."""
    cleaned = _clean_question(text)
    if len(cleaned) <= limit:
        return cleaned
    words = cleaned.split()
    while len(words) > 1 and fold(words[0]) in _LEADING_FILLERS:
        words.pop(0)
    core = _clean_question(" ".join(words))
    if len(core) <= limit:
        return core
    kept: list[str] = []
    for word in cleaned.split():
        if len(" ".join([*kept, word])) > limit - 1:
            break
        kept.append(word)
    while len(kept) > 1 and fold(kept[-1]) in _TRAILING_FILLERS:
        kept.pop()
    if not kept:
        return cleaned[: limit - 1].rstrip() + "…"
    return " ".join(kept) + "…"


def candidate_question(hit: Hit, limit: int = QUICK_REPLY_TITLE_LIMIT) -> str:
    """The question to offer for a candidate: the one that matched, unless another way of asking
    fits a quick reply title whole."""
    for question in (hit.matched_question, *hit.entry.questions):
        if len(_clean_question(question)) <= limit:
            return question
    return hit.matched_question or hit.entry.questions[0]


def did_you_mean_message(candidates: Sequence[Hit]) -> dict[str, Any]:
    """"¿Quisiste decir…?", the candidate questions in full, one quick reply each (and a person)."""
    chosen = list(candidates[:MAX_CANDIDATES])
    questions = [candidate_question(hit) for hit in chosen]
    titles = [short_title(question) for question in questions]
    if len(set(titles)) < len(titles):  # two shortened alike: number them as the list does
        titles = [short_title(f"{number}. {question}") for number, question in enumerate(questions, start=1)]
    lines = [DID_YOU_MEAN, *(f"• {question}" for question in questions)]
    replies = [
        {"title": title, "payload": entry_payload(hit.entry.id)} for title, hit in zip(titles, chosen, strict=True)
    ]
    return {"text": "\n".join(lines), "quick_replies": [*replies, dict(AGENT_QUICK_REPLY)]}


def no_answer_text(previous_runs: int) -> str:
    """The honest reply when nothing was found, varied by `previous_runs` in this session."""
    return NO_ANSWER_TEXTS[previous_runs % len(NO_ANSWER_TEXTS)]


# --- what is read from the conversation ------------------------------------------------------------------


def count_previous_runs(events: list[dict[str, Any]]) -> int:
    """How many times this action already ran in the current session."""
    runs = 0
    for event in events:
        if event.get("event") in ("session_started", "restart"):
            runs = 0
        elif event.get("event") == "action" and event.get("name") == ACTION_NAME:
            runs += 1
    return runs


def selected_entry_id(tracker: Tracker) -> str | None:
    """The entry a tapped quick reply or button asks for (`/ask_knowledge{"entry_id":"…"}`)."""
    for value in tracker.get_latest_entity_values(ENTRY_ENTITY):
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def recent_turns(events: Iterable[dict[str, Any]], limit: int = FALLBACK_TURNS) -> list[Turn]:
    """The last messages of the current session, the user's and the bot's, for the GPT fallback.
    Payloads (`/intent…`) are what a button sent, not what anyone wrote: left out."""
    turns: list[Turn] = []
    for event in events:
        kind = event.get("event")
        if kind in ("session_started", "restart"):
            turns = []
            continue
        text = (event.get("text") or "").strip()
        if not text or text.startswith("/"):
            continue
        if kind == "user":
            turns.append(Turn("user", text))
        elif kind == "bot":
            turns.append(Turn("bot", text))
    return turns[-limit:] if limit > 0 else []


def grounded_entries(hits: Iterable[Hit]) -> list[GroundedEntry]:
    return [GroundedEntry(hit.entry.id, hit.entry.questions, hit.entry.answer) for hit in hits]


def fallback_declined(reason: str) -> bool:
    """The model was asked and replied, and the reply was `NO_ANSWER` or failed our checks."""
    return reason not in NOT_ASKED_OR_FAILED


# --- the action ------------------------------------------------------------------------------------------


class ActionKnowledgeAnswer(Action):
    """Registered by the action server with no arguments (the live matrix and `LLM_*` from the
    environment); tests pass a fake `knowledge` and a `Fallback` with `FakeLLMClient`."""

    def __init__(
        self,
        knowledge: KnowledgeSource | None = None,
        fallback: Fallback | None = None,
        journal: AnswerJournal | None = None,
        *,
        settings: Settings | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._knowledge = knowledge if knowledge is not None else default_knowledge()
        self._fallback = fallback
        self._journal = journal
        self.journal_writes = JournalWrites()
        self._settings = settings
        self._clock = clock or (lambda: datetime.now(timezone.utc))

    def name(self) -> str:
        return ACTION_NAME

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[dict[str, Any]]:
        text = (tracker.latest_message.get("text") or "").strip()
        entry_id = selected_entry_id(tracker)
        if entry_id is not None:
            tapped = "" if text.startswith("/") else text  # the payload is not what anyone wrote
            entry = await self._knowledge.entry(entry_id)
            if entry is not None:
                dispatcher.utter_message(**answer_message(entry))
                self._journal_outcome(tracker, Outcome(Handling.SELECTED, tapped, entry_id=entry.id))
                return answered(tracker)
            logger.warning("a quick reply points to an entry the live version does not have",
                           extra={"entry_id": entry_id, "user_id": tracker.sender_id})
            return await self._no_answer(dispatcher, tracker, llm_declined=False,
                                         outcome=Outcome(Handling.NO_ANSWER, tapped, reason=UNKNOWN_ENTRY))

        question = text
        if not question:
            return await self._no_answer(dispatcher, tracker, llm_declined=False,
                                         outcome=Outcome(Handling.NO_ANSWER, "", reason=EMPTY_QUESTION))
        lookup = await self._lookup(question)
        version = lookup.version if lookup is not None else None
        if lookup is not None and lookup.verdict.kind == "answer" and lookup.verdict.hit is not None:
            best = lookup.verdict.hit
            dispatcher.utter_message(**answer_message(best.entry))
            self._journal_outcome(tracker, Outcome(Handling.MATRIX, question, entry_id=best.entry_id,
                                                         score=best.score, matrix_version=version))
            return answered(tracker)
        if lookup is not None and lookup.verdict.kind == "ambiguous":
            offered = lookup.verdict.candidates[:MAX_CANDIDATES]
            dispatcher.utter_message(**did_you_mean_message(offered))
            self._journal_outcome(tracker, Outcome(
                Handling.DID_YOU_MEAN, question, candidates=tuple(hit.entry_id for hit in offered),
                score=offered[0].score if offered else None, matrix_version=version))
            return []  # neither an answer nor a miss: the user picks, or asks again

        fallback = self._fallback or default_fallback()
        result = await answer_with_fallback(
            question,
            grounded_entries(lookup.hits if lookup is not None else ()),
            recent_turns(tracker.events or []),
            fallback.client,
            fallback.settings,
        )
        if result.kind == "answer":
            dispatcher.utter_message(text=result.text)
            self._journal_outcome(tracker, Outcome(Handling.GPT, question, matrix_version=version))
            return answered(tracker)
        declined = fallback_declined(result.reason)
        return await self._no_answer(dispatcher, tracker, llm_declined=declined, outcome=Outcome(
            Handling.NO_ANSWER, question, reason=LLM_DECLINED if declined else NO_MATCH, matrix_version=version))

    async def _lookup(self, question: str) -> Lookup | None:
        try:
            return await self._knowledge.lookup(question)
        except KnowledgeMatrixError as exc:
            logger.error("knowledge lookup failed; answering as if nothing matched", extra={"error": str(exc)})
            return None

    async def _no_answer(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, *, llm_declined: bool, outcome: Outcome
    ) -> list[dict[str, Any]]:
        """The honest "not in my information" and the offer of a person, or the handoff itself."""
        decision = no_answer(tracker, llm_declined=llm_declined)
        if decision.hand_off:
            assert decision.reason is not None
            events = await handoff_events(dispatcher, tracker, decision.reason)
            self._journal_outcome(tracker, Outcome(
                Handling.HANDOFF, outcome.question, reason=decision.reason.value,
                matrix_version=outcome.matrix_version))
            return events
        dispatcher.utter_message(
            text=no_answer_text(count_previous_runs(tracker.events or [])),
            quick_replies=[dict(reply) for reply in OFFER_PERSON_QUICK_REPLIES],
        )
        self._journal_outcome(tracker, outcome)
        return decision.events

    def _journal_outcome(self, tracker: Tracker, outcome: Outcome) -> None:
        """Start writing the outcome to the answer journal in the background (`JournalWrites`): the answer never
        waits for it; a failure is logged, never raised."""
        try:
            if self._settings is None:
                self._settings = load_settings()
            page_id = page_of(tracker, self._settings)
            if page_id is None:
                logger.warning("the page of a question is unknown; not journaled",
                               extra={"user_id": tracker.sender_id, "handling": outcome.handling.value})
                return
            psid, at = str(tracker.sender_id), self._clock()

            def write(journal: AnswerJournal) -> None:
                journal.record_question(
                    page_id=page_id, psid=psid, question=outcome.question, handling=outcome.handling, at=at,
                    entry_id=outcome.entry_id, score=outcome.score, candidates=outcome.candidates,
                    reason=outcome.reason, matrix_version=outcome.matrix_version)

            given = self._journal
            self.journal_writes.submit(write, open_journal=(lambda: given) if given is not None else default_journal,
                                       handling=outcome.handling, user_id=psid)
        except Exception as exc:  # the journal must never cost the customer the answer
            logger.error("an answer could not be journaled", extra={
                "error": str(exc), "error_type": type(exc).__name__, "handling": outcome.handling.value,
                "user_id": tracker.sender_id})
