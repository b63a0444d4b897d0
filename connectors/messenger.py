"""The Messenger channel for Rasa: `credentials.yml` names it `connectors.messenger.MessengerInput`.

Meta's deliveries reach the webhook process (connectors/webhook_server.py), which records them in the ingest journal
and answers 200. This channel's feeder (`connectors.dispatch.JournalFeeder`) claims the pending events of the journal
for this Rasa instance (RASA_INSTANCE_ID) and processes them in the background, in order per user. The channel's own
POST route stays (one-process deployments, tests): it records the same way and wakes the feeder at once; a delivery's
`feed` changes (comments on the page's posts) go to the comment journal before the 200, as the webhook process does
(503 when it cannot be written, so Meta delivers again). Runs inside the Rasa process (Python 3.10).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from comments.journal import CommentJournal, open_comment_journal
from connectors.action_server import OUTAGE_TEXT, watch_action_server
from connectors.dispatch import ConversationDispatcher, JournalFeeder
from connectors.handoff import AppHandoffClient, outside_author
from connectors.ingest import (
    DONE,
    FAILED,
    IngestJournal,
    JournalApplier,
    StoredEvent,
    open_ingest_store,
    tell_outbox,
)
from connectors.referrals import AppReferralClient, referral_report, turn_event
from connectors.turns import (
    LocalTurns,
    RemoteTurns,
    TurnMessage,
    TurnOutcome,
    TurnsUnavailable,
    authorized,
    serve_turn,
)
from core.settings import Settings, load_settings
from handoff.model import PauseReason
from meta.delivery import judge_delivery
from meta.errors import GraphError, MessengerError
from meta.events import EventKind, InboundEvent
from meta.feed import FeedChange
from meta.graph import GraphClient
from meta.outgoing import OutgoingMessageError, build_messages, mark_seen_action, typing_action
from meta.signature import SIGNATURE_HEADER, is_valid_verify_token
from outbox.model import MAX_BATCH, NewMessage, Purpose, SenderKind
from outbox.outbox import WAKE_FILE_NAME, Outbox, open_outbox

logger = logging.getLogger(__name__)

# Sanic's own cap (REQUEST_MAX_SIZE) for every request on Rasa's port, refused (413) before the body is read.
# The webhook's limit is 1 MiB (meta/delivery.py); nothing we send to Rasa's HTTP API comes near 2 MiB.
MAX_REQUEST_BYTES = 2 * 1024 * 1024
# Upkeep: journaled windows retried every `Settings.messenger_upkeep_seconds`, then old finished events pruned
# (connectors/ingest.py).
PRUNE_INTERVAL_SECONDS = 3600.0
MAX_PROCESSING_ATTEMPTS = 3


def instance_id(configured: str) -> str:
    """The journal claims' owner: RASA_INSTANCE_ID (`bot run` gives each Rasa process its name, so a restarted one
    finds its claims its own), else "<hostname>:<pid>"."""
    return configured or f"{socket.gethostname()}:{os.getpid()}"


class ActionCallsFailed(MessengerError):
    """Action calls of a turn failed (Rasa logged and swallowed them): the turn is undone and retried."""


def reply_key_prefix(base: str, reverted_turns: int) -> str:
    """The outbox keys of a turn's replies, from the event's count of reverted turns (the ingest journal's
    `reverted_turns`), never from its attempts. A turn undone after a failed action call (`UserUtteranceReverted`)
    is followed by a new turn: its replies get new keys, or its answer (reply 2) would be taken for something the
    undone turn queued under the same position and dropped. Every other retry (a crash, or a failure that escaped
    Rasa's turn, such as the outbox refusing a write: Rasa then saved nothing) replays the same turn: it reuses the
    keys, so what the failed attempt already queued (the greeting, the disclosure) is not queued, nor sent, again."""
    return base if reverted_turns == 0 else f"{base}:revert{reverted_turns}"


def user_message_time(event: InboundEvent) -> datetime:
    now = datetime.now(timezone.utc)
    if event.timestamp_ms <= 0:
        return now
    # Meta's timestamp, but never in our future (clock skew must not stretch the window).
    try:
        return min(datetime.fromtimestamp(event.timestamp_ms / 1000, tz=timezone.utc), now)
    except (OverflowError, OSError, ValueError):
        return now


class MessengerOutput(OutputChannel):
    """Rasa's replies for one conversation: each message is written to the outbox (durable,
    policy-checked, in order per recipient) and the worker is woken to send it at once."""

    def __init__(
        self,
        client: GraphClient,
        store: IngestJournal,
        outbox: Outbox,
        page_id: str | None,
        key_prefix: str | None = None,
        typing: bool = True,
    ) -> None:
        self.client = client
        self.store = store
        self.outbox = outbox
        self.page_id = page_id
        self.key_prefix = key_prefix
        self.typing = typing
        self._sequence = 0
        # The sender actions (mark_seen, typing_on), started as the turn starts: they run alongside Rasa, and the
        # first reply is queued only once they went out, so Meta still gets them before the answer.
        self.before_first_reply: asyncio.Task | None = None

    async def _ready_to_reply(self) -> None:
        task, self.before_first_reply = self.before_first_reply, None
        if task is not None:
            try:
                await task
            except Exception:  # ephemeral: a failure never holds the reply back
                logger.warning("sender actions failed", exc_info=True)

    @classmethod
    def name(cls) -> str:
        return "messenger"

    async def _page_for(self, recipient_id: str) -> str:
        page_id = self.page_id or await self.store.run(self.store.page_for_user, recipient_id)
        if not page_id:
            raise MessengerError(f"no page known for recipient {recipient_id}")
        return page_id

    @property
    def replied(self) -> bool:
        """Whether a reply was queued in this turn."""
        return self._sequence > 0

    def _idempotency_key(self) -> str | None:
        """Replies to one event get positional keys: reprocessing the event after a crash
        enqueues the same keys, so nothing is sent twice."""
        self._sequence += 1
        return f"{self.key_prefix}:{self._sequence}" if self.key_prefix else None

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        await self.send_responses(recipient_id, [message])

    async def send_responses(self, recipient_id: str, messages: Sequence[dict[str, Any]]) -> None:
        """Several responses of one turn, queued in order in one outbox write (all or none: a refused write queues
        nothing, and the turn's retry queues them again under the same positional keys)."""
        if not messages:
            return
        page_id = await self._page_for(recipient_id)
        news: list[NewMessage] = []
        for message in messages:
            try:
                outgoing = build_messages(message)
            except OutgoingMessageError as exc:
                # A response that cannot become a Messenger message is a content bug: say so loudly.
                logger.error("bot response cannot be sent to Messenger: %s", exc,
                             extra={"recipient_id": recipient_id})
                await self.store.run(
                    self.store.log_send, page_id, recipient_id, dict(message), "failed", None, None, str(exc)
                )
                continue
            for warning in outgoing.warnings:
                logger.warning("reply adjusted to Messenger limits: %s", warning,
                               extra={"recipient_id": recipient_id})
            news.extend(NewMessage(page_id=page_id, recipient_id=recipient_id, message=item, sender=SenderKind.BOT,
                                   purpose=Purpose.REPLY, idempotency_key=self._idempotency_key())
                        for item in outgoing.messages)
        if not news:
            return
        await self._ready_to_reply()
        for start in range(0, len(news), MAX_BATCH):
            await self.outbox.enqueue_many(news[start:start + MAX_BATCH])

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"text": text})

    async def send_sender_actions(self, recipient_id: str) -> None:
        """mark_seen and typing_on: ephemeral, so sent directly; a failure is logged and recorded."""
        if not self.typing:
            return
        page_id = await self._page_for(recipient_id)
        for action in (mark_seen_action(), typing_action(True)):
            request = {"recipient": {"id": recipient_id}, **action}
            try:
                await self.client.send_message(page_id, request)
            except GraphError as exc:
                logger.warning(
                    "sender action failed",
                    extra={"page_id": page_id, "recipient_id": recipient_id, "code": exc.code, "status": exc.status},
                )
                await self.store.run(
                    self.store.log_send, page_id, recipient_id, request, "failed", None, exc.code, str(exc)
                )
                return


class MessengerInput(InputChannel):
    """Webhook at /webhooks/messenger/webhook."""

    @classmethod
    def name(cls) -> str:
        return "messenger"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> MessengerInput:
        # Secrets come from the environment (one settings object), not from credentials.yml.
        return cls(load_settings())

    def __init__(self, settings: Settings, turns: RemoteTurns | None = None) -> None:
        self.settings = settings
        # Where turns run: Rasa's agent here (the route `turns/<op>` serves it to a feeder process too), or a Rasa
        # server over HTTP when this object is the feeder process's (connectors/feeder.py).
        self.local = LocalTurns(settings.action_timeout_seconds)
        self.turns: LocalTurns | RemoteTurns = turns if turns is not None else self.local
        self.store = open_ingest_store(settings.ingest_store_url, role="feeder")  # status writes without fsync
        # The feed changes this route receives (one-process deployments); the app's processor decides them.
        self.comments: CommentJournal = open_comment_journal(settings.store_url("comment_journal"))
        self.client = GraphClient(settings.page_tokens, base_url=settings.graph_api_base,
                                  version=settings.graph_api_version, timeout_seconds=settings.graph_timeout_seconds)
        self.outbox = open_outbox(settings.outbox_store_url, self.client, policy_file=settings.outbox_policy_file,
                                  retired_tags_until=settings.outbox_retired_tags_until,
                                  page_rate=settings.outbox_page_rate, lease_seconds=settings.outbox_lease_seconds,
                                  poll_seconds=settings.outbox_poll_seconds)
        self._upkeep_task: asyncio.Task | None = None
        self._window_tasks: set[asyncio.Task] = set()
        self._journal = JournalApplier(self.store, self._record_window, self._notice_recorded)
        self.handoff = AppHandoffClient(settings.app_url, settings.service_token)
        self.referrals = AppReferralClient(settings.app_url, settings.service_token)
        self.typing = True
        self.owner = instance_id(settings.rasa_instance_id)
        self._feeder: JournalFeeder | None = None
        self._waiting_for_rasa = 0  # turns whose call found Rasa away: claim nothing until it answers again
        # A dead action server: messages wait for it (bounded), then get an honest reply (connectors/action_server.py).
        self.actions = watch_action_server(settings.action_server_url, settings.action_outage_seconds)

    def get_output_channel(self) -> OutputChannel:
        """For Rasa's HTTP API (`trigger_intent`, reminders): the page is looked up per recipient."""
        return MessengerOutput(self.client, self.store, self.outbox, None, typing=False)

    @property
    def _dispatcher(self) -> ConversationDispatcher[StoredEvent] | None:
        return self._feeder.dispatcher if self._feeder is not None else None

    async def _process(self, stored: StoredEvent) -> None:
        await self._process_once(stored)

    async def _pause_for_person(self, event: InboundEvent) -> None:
        """A person wrote from the Page inbox or another app: pause before any later message is handled."""
        author = outside_author(event.app_id)
        await self.turns.ensure_conversation(event.user_id)
        paused = await self.handoff.pause(
            event.page_id, event.user_id, PauseReason.AGENT_WROTE_OUTSIDE, author, text=event.shown_text()
        )
        if not paused:
            raise MessengerError("the app did not record the pause (it is down or refused the call)")

    async def _process_once(self, stored: StoredEvent) -> None:
        event = stored.event
        if stored.attempts >= MAX_PROCESSING_ATTEMPTS:  # a crash between the last attempt and its verdict
            await self.store.run(
                self.store.finish, stored.id, FAILED, "attempts exhausted before a restart", counted=True
            )
            return
        if event.kind is EventKind.ECHO:
            for attempt in range(stored.attempts, MAX_PROCESSING_ATTEMPTS):
                try:
                    await self._pause_for_person(event)
                except Exception as exc:  # the app is down: retried, then given up visibly
                    logger.exception("pausing after a person's message failed", extra={"event_id": stored.id})
                    attempts = await self.store.run(self.store.note_attempt_failed, stored.id, repr(exc)[:500])
                    if attempts >= MAX_PROCESSING_ATTEMPTS:
                        await self.store.run(self.store.finish, stored.id, FAILED, repr(exc)[:500], counted=True)
                        return
                    await asyncio.sleep(0.5 * 2**attempt)
                    continue
                await self.store.run(self.store.finish, stored.id, DONE, None)
                return
            return
        # A referral is recorded by the app, and its link may start an intent or a matrix entry: Rasa then gets that
        # (connectors/referrals.py). None: a standalone referral that starts nothing (recorded only, no turn).
        turn = await self._referral_turn(event)
        event = turn if turn is not None else event
        key_prefix = f"reply:{event.page_id}:{event.dedup_key}"
        # A reverted turn is also a failed attempt (`note_turn_reverted`), and attempts only grow: a first attempt
        # needs no journal read (a thread hop per message on Rasa's loop).
        reverted = await self.store.run(self.store.reverted_turns, stored.id) if stored.attempts else 0
        # A replay after a crash that may have come between recording a revert and doing it: finish it (a no-op
        # when the tracker's latest message is no longer this one).
        unfinished_revert = reverted > 0
        # Once per event in this process: a retried turn must not count the person's message twice (a replay after a
        # crash may, at most once more: the outbox's count is a counter, the window's time is idempotent).
        window_recorded = False
        attempt = stored.attempts
        # A turn Rasa ran for the feeder process whose replies could not all be queued (the outbox refused a write):
        # the retry queues them again under the same keys instead of running the turn a second time (Rasa saved it).
        answered: TurnOutcome | None = None
        while attempt < MAX_PROCESSING_ATTEMPTS:
            output = MessengerOutput(self.client, self.store, self.outbox, event.page_id,
                                     reply_key_prefix(key_prefix, reverted), self.typing)
            try:
                if not window_recorded:
                    await self._record_window(event)
                    window_recorded = True
                if turn is None:
                    await self.store.run(self.store.finish, stored.id, DONE, None)
                    return
                if answered is not None:
                    await self._queue_replies(answered, event, output)
                    await self.store.run(self.store.finish, stored.id, DONE, None)
                    return
                await self.turns.ready()
                if unfinished_revert:
                    await self.turns.revert(event.user_id, event.mid)
                    unfinished_revert = False
                sender_actions = self._sends_sender_actions()
                # In a burst (no sender actions) with the action server known up, the pause is checked by the turn
                # itself: one call to Rasa instead of two (each a request on its loop with MESSENGER_FEEDER=process).
                # Otherwise first, so that a paused conversation gets no typing indicator and no outage reply.
                checked_by_turn = not sender_actions and self.actions.seems_up()
                if not checked_by_turn and await self._is_paused(event.user_id):
                    await self._store_while_paused(event, stored.id)
                elif not await self.actions.wait_until_up():  # nothing written to the tracker while it is down
                    down = f"the action server was down for {self.actions.down_for():.0f} s"
                    await self._give_up_on_actions(stored, down)
                    return
                else:
                    # mark_seen and typing_on go out while Rasa works on the turn (not before it): the first reply
                    # waits for them, so Meta still gets them first. Not in a burst (`_sends_sender_actions`).
                    if sender_actions:
                        output.before_first_reply = asyncio.get_running_loop().create_task(
                            output.send_sender_actions(event.user_id))
                    try:
                        answered = await self._run_turn(event, output, unless_paused=checked_by_turn)
                        await self._queue_replies(answered, event, output)
                    finally:
                        await output._ready_to_reply()  # a turn without replies (or a failed one) still ends it
                    if answered.paused or (
                        not output.replied and await self.turns.stored_while_paused(event.user_id, event.mid)
                    ):
                        # paused (found by the turn, or a pause that landed between the check above and the turn):
                        # Rasa stored the message without predicting, the live view hears of it as for any message
                        # written while paused
                        await self._tell_live_view(event, stored.id)
            except ActionCallsFailed as exc:  # the server died mid-turn (or an action crashed): undo, wait, retry
                logger.error("an action call failed in a turn: %s", exc, extra={"event_id": stored.id})
                self.actions.saw_failure()
                # Recorded before the revert: the next turn's replies (and a replay after a crash) use new keys.
                attempts, reverted = await self.store.run(self.store.note_turn_reverted, stored.id, str(exc)[:500])
                await self.turns.revert(event.user_id, event.mid)
                if attempts >= MAX_PROCESSING_ATTEMPTS:
                    await self._give_up_on_actions(stored, str(exc), counted=True)
                    return
                attempt += 1
                continue
            except Exception as exc:  # recorded with the event, retried, then given up visibly
                if isinstance(exc, TurnsUnavailable):
                    back = await self._rasa_is_back(exc, stored)
                    if back is None:
                        return  # another instance took the conversation over meanwhile: the event is its now
                    if back:  # Rasa was restarting, or hung (the feeder process's calls): the same attempt again
                        if event.mid:
                            # The call may have reached Rasa, and its turn run (or be running) with the answer lost:
                            # undone first (under Rasa's lock, so after that turn), the dialogue sees the message once.
                            # A no-op when Rasa's latest message is another one.
                            await self.turns.revert(event.user_id, event.mid)
                        continue
                logger.exception("processing a Messenger event failed", extra={"event_id": stored.id})
                attempts = await self.store.run(self.store.note_attempt_failed, stored.id, repr(exc)[:500])
                if attempts >= MAX_PROCESSING_ATTEMPTS:
                    await self.store.run(self.store.finish, stored.id, FAILED, repr(exc)[:500], counted=True)
                    return
                await asyncio.sleep(0.5 * 2**attempt)
                attempt += 1
                continue
            await self.store.run(self.store.finish, stored.id, DONE, None)
            return

    async def _rasa_is_back(self, exc: TurnsUnavailable, stored: StoredEvent) -> bool | None:
        """Rasa did not answer a turn call (killed, restarting, loading its model): wait for it (`Turns.ready`, up
        to READY_TIMEOUT_SECONDS) rather than spend the event's attempts in the seconds a restart takes, claiming
        and renewing nothing meanwhile, so that another instance's feeder takes the conversations over once their
        leases run out. True: back, and the conversation still this instance's: run the turn again. None: another
        instance holds it now (it runs the event; this one lets go). False: Rasa stayed away; the event then counts
        a failed attempt, as any other failure."""
        logger.warning("Rasa did not answer; waiting for it: %s", exc, extra={"event_id": stored.id})
        self._waiting_for_rasa += 1
        try:
            await self.turns.ready()
        except TurnsUnavailable:
            return False
        finally:
            self._waiting_for_rasa -= 1
        if self._feeder is not None and not await self._feeder.holds(stored.event.conversation_key):
            logger.warning("another instance took the conversation over while Rasa was away",
                           extra={"event_id": stored.id})
            return None
        return True

    def _sends_sender_actions(self) -> bool:
        """Whether this turn begins with mark_seen and typing_on (MESSENGER_SENDER_ACTIONS). `unless_busy`: not while
        other conversations wait for a processing slot. In a burst the typing indicator is what gives way: each pair
        costs Rasa's loop about 2 ms and the page two Send API calls (they count against its rate, outbox/policy.yml
        `send_rates`), and the answers themselves then come sooner."""
        mode = self.settings.messenger_sender_actions
        if mode != "unless_busy":
            return mode == "always"
        dispatcher = self._dispatcher
        return dispatcher is None or dispatcher.waiting_for_slot == 0

    async def _referral_turn(self, event: InboundEvent) -> InboundEvent | None:
        """The event Rasa gets: unchanged without a referral, else what the app answered for it (the app down: as
        if there were no links, logged)."""
        report = referral_report(event, user_message_time(event))
        if report is None:
            return None if event.kind is EventKind.REFERRAL else event
        return turn_event(event, await self.referrals.report(report))

    async def _run_turn(self, event: InboundEvent, output: MessengerOutput,
                        unless_paused: bool = False) -> TurnOutcome:
        """Rasa's turn, with its failed action calls (which Rasa swallows) raised as `ActionCallsFailed`. With
        `unless_paused`, a paused conversation's message is only stored (`paused`), as `_store_while_paused` does."""
        outcome = await self.turns.run(turn_message(event), output, unless_paused=unless_paused)
        if outcome.failures:
            # What the turn said before the failed call goes out, as from a turn run in this process (the session
            # start's automation notice: the retried turn, in the same session, does not say it again).
            await self._queue_replies(outcome, event, output)
            raise ActionCallsFailed("; ".join(outcome.failures))
        return outcome

    @staticmethod
    async def _queue_replies(outcome: TurnOutcome, event: InboundEvent, output: MessengerOutput) -> None:
        """The responses of a turn Rasa ran for the feeder process, queued in order (keys by position: what an
        earlier attempt queued is not queued again). A turn run in this process queued its own as it went."""
        await output.send_responses(event.user_id, [dict(reply) for reply in outcome.messages])

    async def _give_up_on_actions(self, stored: StoredEvent, reason: str, counted: bool = False) -> None:
        """Never silence: the customer is told (once per outage) and the event is `failed` with the reason."""
        event = stored.event
        told = ""
        if self.actions.was_told(event.conversation_key):  # forgotten when the server is back: bounded
            told = "the customer was already told in this outage"
        else:
            try:
                await self.outbox.enqueue(NewMessage(
                    page_id=event.page_id, recipient_id=event.user_id, message={"text": OUTAGE_TEXT},
                    sender=SenderKind.BOT, purpose=Purpose.REPLY,
                    idempotency_key=f"outage:{event.page_id}:{event.dedup_key}",
                ))
                told = "the customer was told"
                self.actions.note_told(event.conversation_key)
            except Exception as exc:
                logger.exception("telling the customer about the outage failed", extra={"event_id": stored.id})
                told = f"telling the customer failed ({type(exc).__name__})"
        logger.error("a message was not answered: %s; %s", reason, told,
                     extra={"event_id": stored.id, "user_id": event.user_id})
        await self.store.run(
            self.store.finish, stored.id, FAILED, f"action server unavailable: {reason}; {told}"[:500], counted=counted
        )

    async def _is_paused(self, user_id: str) -> bool:
        """A person holds the conversation (Rasa's ConversationPaused): the bot sends nothing at all."""
        return await self.turns.is_paused(user_id)

    async def _store_while_paused(self, event: InboundEvent, event_id: int) -> None:
        """Rasa keeps the message without predicting, and the app shows it to agents."""
        await self.turns.store_while_paused(turn_message(event))
        await self._tell_live_view(event, event_id)

    async def _tell_live_view(self, event: InboundEvent, event_id: int) -> None:
        """The app shows agents what the user wrote while paused. If the app does not answer now (down, or slower
        than the call's timeout under load), the notice is journaled on the event (`notice_pending`) and the upkeep
        loop delivers it later: never lost, never silent."""
        if await self.handoff.user_message(event.page_id, event.user_id, event.shown_text(),
                                           user_message_time(event)):
            return
        await self.store.run(self.store.restore_journaled, event_id, False, True)
        logger.warning("the live-view notice is journaled for the upkeep loop", extra={"event_id": event_id})

    async def _notice_recorded(self, event: InboundEvent) -> bool:
        """What a user writes while another app holds the thread (standby) reaches the agents' live view; a rating
        reaches the app's ratings (csat/). Journaled (`notice_pending`) in the ingest transaction; True once the app
        confirmed it (a rating the app cannot match to a question it asked is confirmed too: nothing to retry)."""
        if event.is_feedback:
            return await self.handoff.feedback(event)
        return await self.handoff.user_message(
            event.page_id, event.user_id, event.shown_text(), user_message_time(event)
        )

    async def _record_window(self, event: InboundEvent) -> bool:
        """What the outbox must hear of an event (the journal's `window_pending`): a user acting opens the window
        (and is their last message, counted); a delivery or read receipt marks what the page sent (False: it came
        before the outbox recorded the send; `connectors.ingest.tell_outbox`)."""
        return await tell_outbox(self.outbox, event, user_message_time(event), datetime.now(timezone.utc),
                                 timedelta(seconds=self.settings.outbox_lease_seconds))

    async def _apply_windows(self, journaled: list[StoredEvent]) -> None:
        """Windows and live-view notices of events not for Rasa, journaled in the ingest transaction: each flag is
        cleared once the outbox (window) or the app (notice) has it; a failure leaves it journaled for the upkeep
        loop (and the next start) to apply again (`connectors.ingest.JournalApplier`)."""
        await self._journal.apply(journaled)

    async def _upkeep(self) -> None:
        """Apply journaled windows and live-view notices (at start: those a crash or an outage left behind) and
        prune old events."""
        loop = asyncio.get_running_loop()
        last_prune = None
        while True:
            try:
                await self._journal.apply_backlog()  # a page at a time, from where the last round stopped
                if last_prune is None or loop.time() - last_prune >= PRUNE_INTERVAL_SECONDS:
                    retention = timedelta(days=self.settings.event_retention_days)
                    pruned = await self.store.run(self.store.prune, datetime.now(timezone.utc), retention)
                    last_prune = loop.time()
                    if pruned.events_deleted or pruned.sends_deleted or pruned.keys_expired:
                        logger.info("pruned old webhook events: %s", pruned)
            except Exception:  # upkeep must keep running; the next round tries again
                logger.exception("webhook upkeep failed")
            await asyncio.sleep(self.settings.messenger_upkeep_seconds)

    async def _record_changes(self, changes: list[FeedChange]) -> bool:
        """The delivery's feed changes in the comment journal, durable before the 200 (False: it cannot be
        written; the events recorded already are a no-op when Meta delivers again)."""
        return await self.comments.record_delivery(changes, datetime.now(timezone.utc))

    def _wake_feeder(self) -> None:
        # Before the start-up listener ran there is no feeder yet: the events are recorded (pending), and the
        # feeder's first round, right after it starts, claims them.
        if self._feeder is not None:
            self._feeder.wake()

    @property
    def feeds_here(self) -> bool:
        """Whether this Rasa process claims the journal and runs its turns (MESSENGER_FEEDER=rasa), or leaves that to
        the feeder process (`process`) and only serves it turns (the `turns` routes)."""
        return self.settings.messenger_feeder == "rasa"

    async def start_feeding(self) -> None:
        """The feeder claims what the webhook process recorded (and, at start, what a restart left pending), and
        the upkeep loop re-applies journaled windows and notices: in Rasa's process, or in the feeder process."""
        self._feeder = JournalFeeder(
            self.store, self.owner, self._process, lambda stored: stored.event.conversation_key,
            apply_journaled=self._apply_windows,
            max_concurrency=self.settings.messenger_processing_concurrency,
            poll_seconds=self.settings.messenger_feeder_poll_seconds,
            lease_seconds=self.settings.messenger_claim_lease_seconds,
            standing_by=lambda: self._waiting_for_rasa > 0,
        )
        # Rasa's replies are sent by the app's worker (or the standalone ones, OUTBOX_WORKERS), off Rasa's event
        # loop: it finds them within OUTBOX_POLL_SECONDS. OUTBOX_IN_RASA=1 runs a worker here too.
        self._start_outbox()
        self._upkeep_task = asyncio.get_running_loop().create_task(self._upkeep())
        dispatched = await self._feeder.round()  # the recovery: what a restart left pending, claimed now
        if dispatched:
            logger.info("resuming %d Messenger events recorded before this start", dispatched)
        self._feeder.start()

    def _start_outbox(self) -> None:
        if self.settings.rasa_runs_outbox:
            self.outbox.start()
        elif self.settings.runs_outbox_in_process:  # the app's worker: woken after each enqueue, not polled
            self.outbox.wake_others(self.settings.data_dir / WAKE_FILE_NAME)

    async def stop_feeding(self) -> None:
        if self._upkeep_task is not None:
            self._upkeep_task.cancel()
        if self._feeder is not None:
            await self._feeder.stop()
        await self.outbox.stop()
        await self.handoff.close()
        await self.referrals.close()
        await self.client.close()
        if isinstance(self.turns, RemoteTurns):
            await self.turns.close()
        await asyncio.get_running_loop().run_in_executor(None, self.comments.close)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        self.local.bind_handler(on_new_message)
        webhook = Blueprint("messenger_webhook", __name__)

        @webhook.listener("after_server_start")
        async def start(app: Any, _loop: Any) -> None:
            self.local.bind(app)
            if self.feeds_here:
                await self.start_feeding()
            else:  # the feeder process runs the journal; what Rasa's HTTP API sends still wakes the app's worker
                self._start_outbox()

        @webhook.listener("before_server_start")
        async def cap_request_size(app: Any, _loop: Any) -> None:
            # Sanic reads this per connection: bodies over it get 413 before they are buffered.
            if "SANIC_REQUEST_MAX_SIZE" not in os.environ:
                app.config.REQUEST_MAX_SIZE = min(app.config.REQUEST_MAX_SIZE, MAX_REQUEST_BYTES)

        @webhook.listener("before_server_stop")
        async def stop(_app: Any, _loop: Any) -> None:
            await self.stop_feeding()

        @webhook.route("/turns", methods=["GET"])
        async def turns_ready(request: Request) -> HTTPResponse:
            """The feeder process's readiness check: 200 once the agent can run turns (the service token)."""
            if not authorized(request.headers.get("Authorization"), self.settings.service_token):
                return response.json({"error": "a valid service token is required"}, status=401)
            ready = self.local.is_ready()
            return response.json({"ready": ready}, status=200 if ready else 503)

        @webhook.route("/turns/<op>", methods=["POST"])
        async def turn(request: Request, op: str) -> HTTPResponse:
            """One turn operation for the feeder process (connectors/turns.py `serve_turn`; the service token)."""
            if not authorized(request.headers.get("Authorization"), self.settings.service_token):
                return response.json({"error": "a valid service token is required"}, status=401)
            try:
                body = json.loads(request.body or b"null")
            except ValueError:
                return response.json({"error": "the body is not JSON"}, status=400)
            status, answer = await serve_turn(self.local, op, body)
            return response.json(answer, status=status)

        @webhook.route("/", methods=["GET"])
        async def health(_request: Request) -> HTTPResponse:
            return response.json({"status": "ok", "pending": self._feeder.pending_count if self._feeder else 0})

        @webhook.route("/webhook", methods=["GET"])
        async def verify(request: Request) -> HTTPResponse:
            mode = request.args.get("hub.mode")
            token = request.args.get("hub.verify_token") or ""
            challenge = request.args.get("hub.challenge") or ""
            if mode == "subscribe" and is_valid_verify_token(token, self.settings.verify_token):
                return response.text(challenge)
            return response.text("forbidden", status=403)

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            verdict = judge_delivery(
                request.body or b"", request.headers.get(SIGNATURE_HEADER), self.settings.app_secret
            )
            if verdict.status == 403:
                logger.warning("webhook rejected: missing or wrong %s", SIGNATURE_HEADER)
            if not verdict.accepted:
                if verdict.status == 400:
                    logger.warning("webhook refused: %s", verdict.error)
                return response.json({"error": verdict.error}, status=verdict.status)
            for skipped in verdict.skipped:  # signed by Meta but unusable: left out, said out loud
                logger.warning(
                    "webhook item skipped: %s",
                    skipped.reason,
                    extra={"entry": skipped.entry_index, "list": skipped.list_name, "item": skipped.item_index},
                )
            # Windows and live-view notices of events not for Rasa are journaled in this same transaction.
            fresh = await self.store.record_async(list(verdict.events), self.settings.app_id)
            if verdict.changes and not await self._record_changes(list(verdict.changes)):
                return response.json({"error": "the comment journal is unavailable; deliver again"}, status=503)
            self._wake_feeder()  # the feeder claims them at once (and this instance's claim keeps them in order)
            journaled = [stored for stored in fresh if stored.window_pending or stored.notice_pending]
            if journaled:  # applied after the answer; the journal makes it survive a crash or an outage
                task = asyncio.get_running_loop().create_task(self._apply_windows(journaled))
                self._window_tasks.add(task)
                task.add_done_callback(self._window_tasks.discard)
            return response.text("EVENT_RECEIVED")

        return webhook


def turn_message(event: InboundEvent) -> TurnMessage:
    """What Rasa gets of an event."""
    return TurnMessage(user_id=event.user_id, text=event.user_text(), mid=event.mid, metadata=event.metadata())
