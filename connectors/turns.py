"""Where a Messenger event's turn runs: on Rasa's agent in this process (`LocalTurns`), or on a Rasa server reached
over HTTP (`RemoteTurns`) from the feeder process (`MESSENGER_FEEDER=process`, connectors/feeder.py).

The channel (connectors/messenger.py) decides everything around a turn (the journal's claims and verdicts, the
window, the pause, the outbox's keys); a `Turns` only touches Rasa's conversation: is it paused, run the turn, keep a
message without predicting, undo a failed turn, start a conversation a person opened. Over HTTP each of those is one
`POST /webhooks/messenger/turns/<op>` on Rasa's port (the service token; `serve_turn` below serves them), so Rasa's
process only runs turns and the durable work (SQLite writes, thread hops, the outbox) runs beside it: in one
process every thread's Python shares Rasa's GIL with its predictions. Runs inside Rasa's environment (Python 3.10).
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
from rasa.core.channels.channel import CollectingOutputChannel, OutputChannel, UserMessage
from rasa.shared.core.constants import ACTION_LISTEN_NAME, ACTION_SESSION_START_NAME
from rasa.shared.core.events import (
    ActionExecuted,
    ConversationPaused,
    SessionStarted,
    UserUtteranceReverted,
    UserUttered,
)

from connectors.action_server import end_turn, observe, start_turn
from meta.errors import MessengerError

logger = logging.getLogger(__name__)

CHANNEL_NAME = "messenger"
READY_TIMEOUT_SECONDS = 300.0
READY_POLL_SECONDS = 0.5
# A turn's HTTP call waits for the turn: its action calls (each up to ACTION_TIMEOUT_SECONDS, up to three), then this.
TURN_MARGIN_SECONDS = 30.0
# A turn call still open after HEARTBEAT_SECONDS: Rasa is asked whether its event loop still answers (`GET` on the
# turns route, answered between two turns even when Rasa is saturated). No answer at all within
# HEARTBEAT_TIMEOUT_SECONDS (the process stopped, its loop blocked: hung, not slow) ends every open call with
# `TurnsUnavailable`, so the feeder stands by and another instance takes the conversations over when their leases
# run out, instead of renewing them until the turn's own timeout (minutes). A slow turn whose Rasa answers the
# check is waited for.
HEARTBEAT_SECONDS = 5.0
HEARTBEAT_TIMEOUT_SECONDS = 10.0
TURN_OPS = ("ensure", "paused", "stored_paused", "store_paused", "revert", "run")


class TurnsUnavailable(MessengerError):
    """Rasa did not answer a turn call (down, restarting, not ready: no answer, or 503): the feeder waits for it and
    calls again, without spending the event's attempts."""


class TurnRefused(MessengerError):
    """Rasa answered a turn call with an error (a 4xx, a 500): a failed attempt of the event, as in Rasa's process."""


@dataclass(frozen=True)
class TurnMessage:
    """What Rasa gets of an event: the text it parses, the conversation, the mid and the metadata."""

    user_id: str
    text: str
    mid: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "text": self.text, "mid": self.mid, "metadata": dict(self.metadata)}

    @classmethod
    def from_json(cls, data: Any) -> TurnMessage:
        """A body of the turns route; `ValueError` says what is wrong with it (the route's 400)."""
        if not isinstance(data, dict):
            raise ValueError("the body is not a JSON object")
        user_id, text, mid, metadata = data.get("user_id"), data.get("text", ""), data.get("mid"), data.get("metadata")
        if not isinstance(user_id, str) or not user_id:
            raise ValueError("user_id must be a non-empty string")
        if not isinstance(text, str):
            raise ValueError("text must be a string")
        if mid is not None and not isinstance(mid, str):
            raise ValueError("mid must be a string or null")
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, dict):
            raise ValueError("metadata must be an object")
        return cls(user_id=user_id, text=text, mid=mid, metadata=metadata)


@dataclass(frozen=True)
class TurnOutcome:
    """How a turn ended: its failed action calls (Rasa swallows them), or `paused`: the conversation was paused, so
    the message was only stored (a turn asked to run `unless_paused`); `messages`: the responses of a turn run on
    another process, for the caller to queue (a turn run here sent its own through the output as it went)."""

    failures: tuple[str, ...] = ()
    paused: bool = False
    messages: tuple[Mapping[str, Any], ...] = ()


class Turns(Protocol):
    async def ready(self) -> None: ...
    async def ensure_conversation(self, user_id: str) -> None: ...
    async def is_paused(self, user_id: str) -> bool: ...
    async def stored_while_paused(self, user_id: str, mid: str | None) -> bool: ...
    async def store_while_paused(self, message: TurnMessage) -> None: ...
    async def revert(self, user_id: str, mid: str | None) -> None: ...
    async def run(self, message: TurnMessage, output: OutputChannel, unless_paused: bool = False) -> TurnOutcome: ...


class RawCollector(CollectingOutputChannel):
    """The turn's responses as Rasa hands them to a channel (`send_response`'s dict), for the feeder to send through
    its own `MessengerOutput`: the same messages, keys and limits as a turn run in the channel's process."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL_NAME

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        self.messages.append(dict(message))


class LocalTurns:
    """Turns on this process's agent (Rasa's app, bound when the server started)."""

    def __init__(self, action_timeout_seconds: float) -> None:
        self.action_timeout_seconds = action_timeout_seconds
        self._app: Any = None
        self._on_new_message: Callable[[UserMessage], Awaitable[Any]] | None = None

    def bind(self, app: Any) -> None:
        self._app = app

    def bind_handler(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> None:
        self._on_new_message = on_new_message

    @property
    def agent(self) -> Any:
        return self._app.ctx.agent

    def is_ready(self) -> bool:
        agent = getattr(self._app.ctx, "agent", None) if self._app is not None else None
        return agent is not None and agent.is_ready()

    async def ready(self) -> None:
        for _ in range(int(READY_TIMEOUT_SECONDS / READY_POLL_SECONDS)):
            if self.is_ready():
                return
            await asyncio.sleep(READY_POLL_SECONDS)
        raise MessengerError(f"Rasa's agent did not become ready within {READY_TIMEOUT_SECONDS:.0f} s")

    async def ensure_conversation(self, user_id: str) -> None:
        """Rasa's HTTP API starts a session for a conversation it has never seen, with no output channel: the
        session start's messages then fail the append (500). When a person writes first, the conversation starts
        here, without the bot's greeting (a person is talking); the pause is then appended to it."""
        await self.ready()
        agent = self.agent
        async with agent.lock_store.lock(user_id):
            tracker = await agent.tracker_store.retrieve(user_id)
            if tracker is not None and tracker.events:
                return
            tracker = await agent.processor.get_tracker(user_id)
            for started in (ActionExecuted(ACTION_SESSION_START_NAME), SessionStarted(),
                            ActionExecuted(ACTION_LISTEN_NAME)):
                tracker.update(started)
            await agent.tracker_store.save(tracker)

    async def _paused_tracker(self, user_id: str) -> Any:
        """The conversation's tracker if a person holds it (Rasa's ConversationPaused), else None. Only a `pause`
        event ever makes a tracker paused, so a conversation that never had one is not, and its tracker is not loaded
        a second time for the turn (Rasa loads it anyway): one indexed query instead."""
        store = self.agent.tracker_store
        if not ever_paused(store, user_id):
            return None
        tracker = await store.retrieve(user_id)
        return tracker if tracker is not None and tracker.is_paused() else None

    async def is_paused(self, user_id: str) -> bool:
        return await self._paused_tracker(user_id) is not None

    async def stored_while_paused(self, user_id: str, mid: str | None) -> bool:
        """After a turn that sent nothing: whether Rasa only stored the message because the conversation was paused
        by then (no action ran after it)."""
        tracker = await self._paused_tracker(user_id)
        return tracker is not None and stored_unpredicted(tracker.events, mid)

    async def store_while_paused(self, message: TurnMessage) -> None:
        """Rasa keeps the message (nothing is predicted, even for `/restart`; a collecting channel catches anything
        a session start might say)."""
        agent = self.agent
        async with agent.lock_store.lock(message.user_id):
            await agent.log_message(self._user_message(message, CollectingOutputChannel()))

    async def revert(self, user_id: str, mid: str | None) -> None:
        """Rasa's `UserUtteranceReverted`: the failed turn stays in the tracker's history but no longer counts, so
        the retry is the user's message once for the dialogue (the raw event list keeps both)."""
        agent = self.agent
        try:
            async with agent.lock_store.lock(user_id):
                tracker = await agent.tracker_store.retrieve(user_id)
                latest = tracker.latest_message if tracker is not None else None
                if latest is None or (mid and latest.message_id != mid):
                    return
                tracker.update(UserUtteranceReverted())
                await agent.tracker_store.save(tracker)
        except Exception:  # the retry still runs; the dialogue may then see the message twice
            logger.exception("reverting a failed turn failed", extra={"user_id": user_id})

    async def run(self, message: TurnMessage, output: OutputChannel, unless_paused: bool = False) -> TurnOutcome:
        """Rasa's turn, with its failed action calls (which Rasa swallows). `unless_paused`: a paused conversation's
        message is only stored (`store_while_paused`) and the outcome says `paused`."""
        assert self._on_new_message is not None, "the channel's blueprint was not built"
        if unless_paused and await self.is_paused(message.user_id):
            await self.store_while_paused(message)
            return TurnOutcome(paused=True)
        observe(self.agent.processor, self.action_timeout_seconds)
        turn = start_turn()
        try:
            await self._on_new_message(self._user_message(message, output))
        finally:
            failures = end_turn(turn)
        return TurnOutcome(failures=tuple(failures))

    @staticmethod
    def _user_message(message: TurnMessage, output: OutputChannel) -> UserMessage:
        return UserMessage(message.text, output, message.user_id, input_channel=CHANNEL_NAME,
                           message_id=message.mid, metadata=dict(message.metadata))


class RemoteTurns:
    """Turns on a Rasa server over HTTP (its `turns` routes, the service token), from the feeder process. Rasa down or
    restarting: each call waits for it (`ready`, up to READY_TIMEOUT_SECONDS), then raises `TurnsUnavailable`."""

    def __init__(self, rasa_url: str, service_token: str, action_timeout_seconds: float, *,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS,
                 heartbeat_timeout_seconds: float = HEARTBEAT_TIMEOUT_SECONDS) -> None:
        self.base_url = rasa_url.rstrip("/") + "/webhooks/messenger/turns"
        self._headers = {"Authorization": f"Bearer {service_token}"}
        # A turn makes at most three action calls of ACTION_TIMEOUT_SECONDS each, then Rasa answers.
        self.turn_timeout_seconds = 3 * action_timeout_seconds + TURN_MARGIN_SECONDS
        self.heartbeat_seconds = heartbeat_seconds
        self.heartbeat_timeout_seconds = heartbeat_timeout_seconds
        self._session: Any = None
        self._ready = False  # Rasa answered since the last failed call: `ready` asks it nothing
        self._answered_at = 0.0  # the loop's time of Rasa's latest answer (to a call or a heartbeat)
        self._open: dict[asyncio.Task[Any], float] = {}  # the calling tasks of the open calls → since when
        self._hung_calls: set[asyncio.Task[Any]] = set()  # the ones the watchdog cancelled
        self._watchdog: asyncio.Task[None] | None = None
        self.heartbeats = 0  # checks made (diagnostics, tests)

    def _client(self) -> Any:
        import aiohttp

        if self._session is None or self._session.closed:
            # One pooled session; the turns of `MESSENGER_PROCESSING_CONCURRENCY` conversations share it.
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self._session

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
            self._watchdog = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def ready(self) -> None:
        import aiohttp

        if self._ready:
            return
        for _ in range(int(READY_TIMEOUT_SECONDS / READY_POLL_SECONDS)):
            try:
                async with self._client().get(self.base_url, headers=self._headers,
                                              timeout=aiohttp.ClientTimeout(total=5)) as response:
                    if response.status == 200:
                        self._ready = True
                        self._answered_at = asyncio.get_running_loop().time()
                        return
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(READY_POLL_SECONDS)
        raise TurnsUnavailable(f"Rasa at {self.base_url} was not ready within {READY_TIMEOUT_SECONDS:.0f} s")

    async def _call(self, op: str, body: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        """One turns route. While calls are open, the watchdog (`_watch`) checks Rasa's heartbeat: a Rasa that stops
        answering ends each open call with `TurnsUnavailable` instead of at `timeout`. Nothing else per call: the
        calling task is registered, not wrapped in a task and a timer of its own (one watchdog serves every call)."""
        task = asyncio.current_task()
        assert task is not None
        self._open[task] = asyncio.get_running_loop().time()
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.ensure_future(self._watch())
        try:
            return await self._post(op, body, timeout)
        except asyncio.CancelledError:
            if task not in self._hung_calls:
                raise
            # The watchdog cancelled this call (and only it: the cancellation went no further than this await).
            uncancel = getattr(task, "uncancel", None)
            if uncancel is not None:
                uncancel()
            self._ready = False
            raise TurnsUnavailable(
                f"Rasa stopped answering during {op}: no answer to its heartbeat within "
                f"{self.heartbeat_timeout_seconds:g} s (the process stopped or its event loop blocked)") from None
        finally:
            self._open.pop(task, None)
            self._hung_calls.discard(task)

    async def _watch(self) -> None:
        """Every `heartbeat_seconds` while calls are open: a call open that long, and nothing heard of Rasa for
        that long either (an answer to any call counts), asks Rasa whether it answers (`GET` on the turns route;
        any HTTP answer counts, a 503 too: a loop that answers is not hung). No answer within
        `heartbeat_timeout_seconds`: every call open since before the check is cancelled (`_call` makes that
        `TurnsUnavailable`). Ends when no call is open."""
        loop = asyncio.get_running_loop()
        while self._open:
            await asyncio.sleep(self.heartbeat_seconds)
            now = loop.time()
            if now - self._answered_at < self.heartbeat_seconds:
                continue
            waiting = [task for task, since in self._open.items() if now - since >= self.heartbeat_seconds]
            if waiting and not await self._check_heartbeat():
                for task in waiting:
                    if task in self._open and not task.done():
                        self._hung_calls.add(task)
                        task.cancel()

    async def _check_heartbeat(self) -> bool:
        import aiohttp

        self.heartbeats += 1
        try:
            async with self._client().get(self.base_url, headers=self._headers,
                                          timeout=aiohttp.ClientTimeout(total=self.heartbeat_timeout_seconds)):
                self._answered_at = asyncio.get_running_loop().time()
                return True
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False

    async def _post(self, op: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        import aiohttp

        try:
            async with self._client().post(f"{self.base_url}/{op}", json=body, headers=self._headers,
                                           timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                if response.status == 503:
                    raise TurnsUnavailable(f"Rasa is not ready for {op} (503)")
                text = await response.text()
                if response.status != 200:
                    raise TurnRefused(f"Rasa answered {response.status} to {op}: {text[:300]}")
        except TurnsUnavailable:
            self._ready = False  # the next `ready` waits for Rasa
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self._ready = False
            raise TurnsUnavailable(f"Rasa did not answer {op}: {type(exc).__name__}: {exc}") from exc
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise TurnRefused(f"Rasa's answer to {op} is not JSON: {text[:300]}") from exc
        if not isinstance(data, dict):
            raise TurnRefused(f"Rasa answered {op} with {type(data).__name__}, not an object")
        self._ready = True
        self._answered_at = asyncio.get_running_loop().time()
        return data

    async def ensure_conversation(self, user_id: str) -> None:
        await self.ready()
        await self._call("ensure", {"user_id": user_id})

    async def is_paused(self, user_id: str) -> bool:
        return bool((await self._call("paused", {"user_id": user_id}))["paused"])

    async def stored_while_paused(self, user_id: str, mid: str | None) -> bool:
        return bool((await self._call("stored_paused", {"user_id": user_id, "mid": mid}))["stored"])

    async def store_while_paused(self, message: TurnMessage) -> None:
        await self._call("store_paused", message.to_json())

    async def revert(self, user_id: str, mid: str | None) -> None:
        try:
            await self._call("revert", {"user_id": user_id, "mid": mid})
        except (TurnsUnavailable, TurnRefused):  # as on Rasa's side: the retry still runs
            logger.exception("reverting a failed turn failed", extra={"user_id": user_id})

    async def run(self, message: TurnMessage, output: OutputChannel, unless_paused: bool = False) -> TurnOutcome:
        """The turn on Rasa; its responses come back in the outcome (`messages`), in their order, for the caller to
        queue (`output` is not used: a failure to queue them must not run the turn again)."""
        body = {**message.to_json(), "unless_paused": unless_paused}
        answer = await self._call("run", body, timeout=self.turn_timeout_seconds)
        messages, failures = answer.get("messages"), answer.get("failures")
        if not isinstance(messages, list) or not isinstance(failures, list):
            raise TurnRefused("Rasa's turn answer has no messages or failures list")
        return TurnOutcome(failures=tuple(str(failure) for failure in failures), paused=bool(answer.get("paused")),
                           messages=tuple(response for response in messages if isinstance(response, dict)))


def stored_unpredicted(events: Any, mid: str | None) -> bool:
    """Pure: the tracker's latest user message is `mid` (any, when None) and no action ran after it: Rasa stored it
    without predicting (the conversation was paused)."""
    for event in reversed(list(events)):
        if isinstance(event, ActionExecuted):
            return False
        if isinstance(event, UserUttered):
            return mid is None or event.message_id == mid
    return False


@functools.lru_cache(maxsize=8)
def pause_query(events: Any) -> Any:
    """`ever_paused`'s statement for a tracker store's event table (Rasa's `SQLEvent` class)."""
    return (
        sa.select(events.id)
        .where(events.sender_id == sa.bindparam("sender_id"), events.type_name == ConversationPaused.type_name)
        .limit(1)
    )


def ever_paused(tracker_store: Any, sender_id: str) -> bool:
    """Whether Rasa's SQL tracker store holds a `pause` event (ConversationPaused) for the sender, in any session;
    True when it cannot tell (another kind of tracker store, or the query failed): the caller then loads the
    tracker."""
    store = tracker_store
    while hasattr(store, "_tracker_store"):  # Rasa's AwaitableTrackerStore / FailSafeTrackerStore wrappers
        store = store._tracker_store
    events = getattr(store, "SQLEvent", None)
    engine = getattr(store, "engine", None)
    if events is None or engine is None:
        return True
    try:
        # A Core query on the store's own engine (kept connection on SQLite, connectors/tracker_store.py; Rasa's pool
        # on PostgreSQL): a fifth of an ORM session's cost, on Rasa's loop in every turn. Built once per table, the
        # sender a bound parameter: building it anew cost more than running it.
        with engine.connect() as connection:
            found = connection.execute(pause_query(events), {"sender_id": sender_id}).first()
    except Exception:  # the full retrieve says it (and fails the same way if the store is down)
        logger.exception("checking for a pause event failed", extra={"sender_id": sender_id})
        return True
    return found is not None


def authorized(header: str | None, service_token: str) -> bool:
    """`Authorization: Bearer <BOT_SERVICE_TOKEN>`, compared in constant time."""
    expected = f"Bearer {service_token}"
    return bool(service_token) and hmac.compare_digest((header or "").encode(), expected.encode())


async def serve_turn(turns: LocalTurns, op: str, body: Any) -> tuple[int, dict[str, Any]]:
    """One call of the turns route on Rasa's side: (status, JSON). A body that is not what `op` takes is 400 with
    what is wrong; an unknown op 404; Rasa not ready yet 503 (the feeder waits and calls again)."""
    if op not in TURN_OPS:
        return 404, {"error": f"unknown turn operation {op!r}; one of {', '.join(TURN_OPS)}"}
    try:
        if op in ("run", "store_paused"):
            message = TurnMessage.from_json(body)
            user_id, mid = message.user_id, message.mid
        else:
            message = None
            if not isinstance(body, dict) or not isinstance(body.get("user_id"), str) or not body["user_id"]:
                raise ValueError("user_id must be a non-empty string")
            user_id, mid = body["user_id"], body.get("mid")
            if mid is not None and not isinstance(mid, str):
                raise ValueError("mid must be a string or null")
    except ValueError as exc:
        return 400, {"error": str(exc)}
    if not turns.is_ready():
        return 503, {"error": "Rasa's agent is not ready yet"}
    if op == "ensure":
        await turns.ensure_conversation(user_id)
        return 200, {}
    if op == "paused":
        return 200, {"paused": await turns.is_paused(user_id)}
    if op == "stored_paused":
        return 200, {"stored": await turns.stored_while_paused(user_id, mid)}
    if op == "revert":
        await turns.revert(user_id, mid)
        return 200, {}
    assert message is not None
    if op == "store_paused":
        await turns.store_while_paused(message)
        return 200, {}
    unless_paused = body.get("unless_paused", False)
    if not isinstance(unless_paused, bool):
        return 400, {"error": "unless_paused must be true or false"}
    collector = RawCollector()
    outcome = await turns.run(message, collector, unless_paused=unless_paused)
    return 200, {"messages": collector.messages, "failures": list(outcome.failures), "paused": outcome.paused}
