"""Every request to the app is measured and, where a route needs credentials, checked before its body is read.

- Body size: `Content-Length` over the route's limit → 413 at once; a body without a length (chunked) is counted
  as it streams and the request ends in 413 as soon as it passes the limit. Matrix uploads and contact imports
  may carry their documented 5 MB, an agent's file 10 MB, the Graph sandbox's attachment uploads Meta's 25 MB (plus
  the multipart envelope); every other body is JSON or a small form
  (`BODY_LIMITS`).
- Credentials first: a state-changing request to a route that names roles (`require_role`) or wants the service
  token (`require_service_token`) without a valid session or token is answered 401 before one byte of its body
  is read (FastAPI would otherwise parse, and spool, the whole body before running the dependency).

The dependencies still decide (CSRF, roles); this only stops the work that would happen before them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console.attachments import ATTACHMENT_BODY_LIMIT, ATTACHMENT_PATH
from console.auth import SAFE_METHODS, SESSION_COOKIE, authenticator_of, bearer_token, same_secret
from console.knowledge_editor import MAX_UPLOAD_BYTES
from contacts.csv_io import MAX_IMPORT_BYTES
from meta.limits import ATTACHMENT_MAX_BYTES

MULTIPART_ENVELOPE_BYTES = 64 * 1024  # boundaries, part headers and the CSRF field around the file
DEFAULT_BODY_LIMIT = 256 * 1024
"""The largest legitimate JSON body: a 20,000-character text (the internal API's and the outbox's limit) written
with JSON's \\uXXXX escapes for emoji is ≈ 120 KB; every other body is far smaller."""

# Path → the largest body it accepts (an exact path; anything else gets DEFAULT_BODY_LIMIT).
BODY_LIMITS = {
    "/api/console/knowledge/drafts": MAX_UPLOAD_BYTES + MULTIPART_ENVELOPE_BYTES,
    "/api/console/contacts/import": MAX_IMPORT_BYTES + MULTIPART_ENVELOPE_BYTES,
    "/api/console/broadcasts/images": ATTACHMENT_BODY_LIMIT,  # a broadcast's image, as an agent's file
}


# Paths with an id in them → their limit: an agent's file (console/attachments.py, 10 MB) and the Graph sandbox's
# Attachment Upload API (Meta's 25 MB).
BODY_LIMIT_PATTERNS = (
    (ATTACHMENT_PATH, ATTACHMENT_BODY_LIMIT),
    (re.compile(r"^/v[0-9]+\.[0-9]+/(me|[0-9]+)/message_attachments$"),
     ATTACHMENT_MAX_BYTES + MULTIPART_ENVELOPE_BYTES),
)


def body_limit_for(path: str) -> int:
    if path in BODY_LIMITS:
        return BODY_LIMITS[path]
    return next((limit for pattern, limit in BODY_LIMIT_PATTERNS if pattern.match(path)), DEFAULT_BODY_LIMIT)


def too_large_body(limit: int) -> dict[str, object]:
    return {"error": {"reason_code": "body_too_large",
                      "message": f"La solicitud supera el tamaño máximo de {limit // 1024} KB para esta ruta.",
                      "limit_bytes": limit}}


@dataclass(frozen=True)
class Guard:
    """Who a route admits, read from its dependencies: nothing (public), people with roles (maybe the service
    token too), or the service token only."""

    roles: frozenset[str] | None = None
    admits_service: bool = False
    service_only: bool = False

    @property
    def is_public(self) -> bool:
        return self.roles is None and not self.service_only


def guard_of(route: APIRoute | RouteContext, service_token_dependency: Callable[..., object]) -> Guard:
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        pending.extend(dependency.dependencies)
        call = dependency.call
        if call is not None and hasattr(call, "allowed_roles"):
            admits_service = bool(getattr(call, "admits_service", False))
            return Guard(roles=frozenset(call.allowed_roles), admits_service=admits_service)
        if call is service_token_dependency:
            return Guard(service_only=True)
    return Guard()


class BodyTooLarge(Exception):
    """Raised from `receive` once a streamed body passes its limit; the guard answers 413."""


UnauthenticatedAnswer = Callable[[Request, Guard], Response]


class RequestGuard:
    """ASGI middleware: body limits for every request, credentials before the body on protected routes."""

    def __init__(self, app: ASGIApp, *, fastapi_app: FastAPI, service_token_dependency: Callable[..., object],
                 unauthenticated: UnauthenticatedAnswer) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self.service_token_dependency = service_token_dependency
        self.unauthenticated = unauthenticated

    def _guard(self, scope: Scope) -> Guard:
        for context in iter_route_contexts(self.fastapi_app.routes):
            if isinstance(context.original_route, APIRoute):
                match, _ = context.matches(scope)
                if match is Match.FULL:
                    return guard_of(context, self.service_token_dependency)
        return Guard()

    async def _authenticated(self, request: Request, guard: Guard) -> bool:
        settings = request.app.state.settings
        bearer = bearer_token(request)
        if guard.service_only or (guard.admits_service and bearer is not None):
            return bearer is not None and same_secret(bearer, settings.service_token)
        session = request.cookies.get(SESSION_COOKIE, "")
        if not session:
            return False
        return await run_in_threadpool(authenticator_of(request).session_principal, session) is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit_for(str(scope.get("path", "")))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _send_json(send, 413, too_large_body(limit))
            return
        if scope["method"] not in SAFE_METHODS:
            guard = self._guard(scope)
            if not guard.is_public:
                request = Request({**scope, "app": self.fastapi_app})
                if not await self._authenticated(request, guard):
                    await self.unauthenticated(request, guard)(scope, _no_body, send)
                    return

        received = 0
        exceeded = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                # Whatever the app made of the cut-off body (a parse error, a 400), the answer is 413.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _send_json(send, 413, too_large_body(limit))
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            if not started:
                await _send_json(send, 413, too_large_body(limit))


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_json(send: Send, status: int, body: dict[str, object]) -> None:
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": payload})


