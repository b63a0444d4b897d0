"""The Messenger channel for Rasa: `credentials.yml` names it `connectors.messenger.MessengerInput`.

The webhook answers 200 as soon as the events are durably recorded, then processes them in
the background, in order per user. Runs inside the Rasa process (Python 3.10).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.settings import Settings, load_settings
from connectors.dispatch import ConversationDispatcher
from connectors.errors import GraphError, MessengerError, TransientGraphError
from connectors.events import WebhookPayloadError, parse_webhook
from connectors.graph import GraphClient
from connectors.ingest import DONE, FAILED, PENDING, IngestStore, StoredEvent
from connectors.outgoing import OutgoingMessageError, build_messages, mark_seen_action, typing_action
from connectors.signature import SIGNATURE_HEADER, is_valid_signature

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MAX_PROCESSING_ATTEMPTS = 3
INLINE_SEND_RETRIES = 2


class MessengerOutput(OutputChannel):
    """Sends one conversation's replies through the Send API, one message at a time, in order."""

    def __init__(self, client: GraphClient, store: IngestStore, page_id: str | None, typing: bool = True) -> None:
        self.client = client
        self.store = store
        self.page_id = page_id
        self.typing = typing

    @classmethod
    def name(cls) -> str:
        return "messenger"

    async def _page_for(self, recipient_id: str) -> str:
        page_id = self.page_id or await self.store.run(self.store.page_for_user, recipient_id)
        if not page_id:
            raise MessengerError(f"no page known for recipient {recipient_id}")
        return page_id

    async def _send(self, recipient_id: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The one send path; a failure is logged and recorded, never raised into Rasa's turn."""
        page_id = await self._page_for(recipient_id)
        request = {"recipient": {"id": recipient_id}, **body}
        for attempt in range(INLINE_SEND_RETRIES + 1):
            try:
                result = await self.client.send_message(page_id, request)
            except TransientGraphError as exc:
                if attempt < INLINE_SEND_RETRIES:
                    delay = min(getattr(exc, "retry_after_seconds", None) or 0.3 * 2**attempt, 5.0)
                    await asyncio.sleep(delay)
                    continue
                await self._record_failure(page_id, recipient_id, request, exc)
                return None
            except GraphError as exc:
                await self._record_failure(page_id, recipient_id, request, exc)
                return None
            if "message" in request:
                await self.store.run(
                    self.store.log_send, page_id, recipient_id, request, "sent", result.get("message_id")
                )
            return result
        return None

    async def _record_failure(self, page_id: str, recipient_id: str, request: dict[str, Any], exc: GraphError) -> None:
        logger.error(
            "Send API call failed",
            extra={
                "page_id": page_id,
                "recipient_id": recipient_id,
                "code": exc.code,
                "subcode": exc.subcode,
                "status": exc.status,
                "error_kind": type(exc).__name__,
                "graph_message": exc.message,
            },
        )
        await self.store.run(self.store.log_send, page_id, recipient_id, request, "failed", None, exc.code, str(exc))
        return None

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        try:
            outgoing = build_messages(message)
        except OutgoingMessageError as exc:
            # A response that cannot become a Messenger message is a content bug: say so loudly.
            logger.error("bot response cannot be sent to Messenger: %s", exc, extra={"recipient_id": recipient_id})
            page_id = await self._page_for(recipient_id)
            await self.store.run(
                self.store.log_send, page_id, recipient_id, dict(message), "failed", None, None, str(exc)
            )
            return
        for warning in outgoing.warnings:
            logger.warning("reply adjusted to Messenger limits: %s", warning, extra={"recipient_id": recipient_id})
        for item in outgoing.messages:
            await self._send(recipient_id, {"messaging_type": "RESPONSE", "message": item})

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"text": text})

    async def send_sender_actions(self, recipient_id: str) -> None:
        if self.typing:
            await self._send(recipient_id, mark_seen_action())
            await self._send(recipient_id, typing_action(True))


class MessengerInput(InputChannel):
    """Webhook at /webhooks/messenger/webhook."""

    @classmethod
    def name(cls) -> str:
        return "messenger"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> MessengerInput:
        # Secrets come from the environment (one settings object), not from credentials.yml.
        return cls(load_settings())

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = IngestStore(settings.ingest_db_path)
        self.client = GraphClient(settings)
        self.typing = True
        self._dispatcher: ConversationDispatcher[StoredEvent] | None = None
        self._on_new_message: Callable[[UserMessage], Awaitable[Any]] | None = None
        self._app: Any = None

    def get_output_channel(self) -> OutputChannel:
        """For Rasa's HTTP API (`trigger_intent`, reminders): the page is looked up per recipient."""
        return MessengerOutput(self.client, self.store, None, typing=False)

    async def _agent_ready(self) -> None:
        for _ in range(600):
            agent = getattr(self._app.ctx, "agent", None) if self._app is not None else None
            if agent is not None and agent.is_ready():
                return
            await asyncio.sleep(0.5)
        raise MessengerError("Rasa's agent did not become ready within 300 s")

    async def _process(self, stored: StoredEvent) -> None:
        event = stored.event
        assert self._on_new_message is not None
        output = MessengerOutput(self.client, self.store, event.page_id, typing=self.typing)
        for attempt in range(stored.attempts, MAX_PROCESSING_ATTEMPTS):
            try:
                await self._agent_ready()
                await output.send_sender_actions(event.user_id)
                await self._on_new_message(
                    UserMessage(
                        event.user_text(),
                        output,
                        event.user_id,
                        input_channel=self.name(),
                        message_id=event.mid,
                        metadata=event.metadata(),
                    )
                )
            except Exception as exc:  # recorded with the event, retried, then given up visibly
                logger.exception("processing a Messenger event failed", extra={"event_id": stored.id})
                attempts = await self.store.run(self.store.note_attempt_failed, stored.id, repr(exc)[:500])
                if attempts >= MAX_PROCESSING_ATTEMPTS:
                    await self.store.run(self.store.finish, stored.id, FAILED, repr(exc)[:500])
                    return
                await asyncio.sleep(0.5 * 2**attempt)
                continue
            await self.store.run(self.store.finish, stored.id, DONE, None)
            return

    def _dispatch(self, events: Any) -> None:
        assert self._dispatcher is not None
        for stored in events:
            if stored.status == PENDING:
                self._dispatcher.submit(stored.event.conversation_key, stored)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        self._on_new_message = on_new_message
        webhook = Blueprint("messenger_webhook", __name__)

        @webhook.listener("after_server_start")
        async def start(app: Any, _loop: Any) -> None:
            self._app = app
            self._dispatcher = ConversationDispatcher(self._process)
            recovered = await self.store.run(self.store.pending)
            if recovered:
                logger.info("resuming %d Messenger events recorded before a restart", len(recovered))
            self._dispatch(recovered)

        @webhook.listener("before_server_stop")
        async def stop(_app: Any, _loop: Any) -> None:
            if self._dispatcher is not None:
                await self._dispatcher.stop()
            await self.client.close()

        @webhook.route("/", methods=["GET"])
        async def health(_request: Request) -> HTTPResponse:
            return response.json({"status": "ok", "pending": self._dispatcher.pending_count if self._dispatcher else 0})

        @webhook.route("/webhook", methods=["GET"])
        async def verify(request: Request) -> HTTPResponse:
            mode = request.args.get("hub.mode")
            token = request.args.get("hub.verify_token") or ""
            challenge = request.args.get("hub.challenge") or ""
            if mode == "subscribe" and is_valid_token(token, self.settings.verify_token):
                return response.text(challenge)
            return response.text("forbidden", status=403)

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            body = request.body or b""
            if len(body) > MAX_BODY_BYTES:
                return response.json({"error": "body larger than 1 MiB"}, status=413)
            if not is_valid_signature(body, request.headers.get(SIGNATURE_HEADER), self.settings.app_secret):
                logger.warning("webhook rejected: missing or wrong %s", SIGNATURE_HEADER)
                return response.json({"error": "invalid signature"}, status=403)
            try:
                events = parse_webhook(json.loads(body))
            except (ValueError, WebhookPayloadError) as exc:
                return response.json({"error": f"not a Messenger page webhook: {exc}"}, status=400)
            fresh = await self.store.run(self.store.record, events, self.settings.app_id)
            self._dispatch(fresh)
            return response.text("EVENT_RECEIVED")

        return webhook


def is_valid_token(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
