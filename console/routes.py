"""The console: pages under `/console/...` and the same operations as JSON under `/api/console/...`.

People log in (`console.auth`); agents see the paused conversations, read the transcript, reply through the outbox
as a person, assign, pause the bot ("Pausar el Chatbot") and close with a note ("Nota de cierre"); editors
upload, try, publish and roll back the knowledge matrix. Every route names the roles it admits
(`require_role`), and `route_roles(app)` lists them for the tests and the README.

The pages are server-rendered and use the JSON API for actions (with the session's CSRF token) and
server-sent events (`/console/events`) for live updates. No external assets: the console works offline.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console import attachments as attachment_sends
from console import broadcasts as broadcast_pages
from console import comments as comment_pages
from console import contacts as contact_pages
from console import contacts_csv
from console import csat as csat_pages
from console import inbox as inbox_pages
from console import links as link_pages
from console import page_profile as page_profile_pages
from console import paraphrases as paraphrase_pages
from console import reports as report_pages
from console import snippets as snippet_rules
from console import unanswered as unanswered_pages
from console.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_LIFETIME,
    Authenticator,
    InvalidCredentials,
    Principal,
    TooManyAttempts,
    authenticator_of,
    login_on_event_loop,
    request_login_client,
    require_role,
    same_secret,
)
from console.events import EventHub
from console.knowledge_editor import MAX_UPLOAD_BYTES, KnowledgeEditor, KnowledgeEditorError, MatrixEditor
from console.page_names import page_name_of
from console.parts import PAUSE_REASONS_ES, ConsoleError, handoff_of, now_of
from console.store import ConsoleStore, open_console_store
from core.errors import status_of
from core.postgres import DatabaseUnavailable
from core.settings import Settings
from handoff.model import (
    Conversation,
    ConversationNotFound,
    ConversationState,
    PauseReason,
    TranscriptItem,
    split_conversation_id,
)
from handoff.reply_window import ReplyWindow, duration_es, reply_window
from outbox.outbox import Outbox

log = logging.getLogger(__name__)

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
ASSETS = Path(__file__).parent / "templates" / "console" / "assets"
ASSET_TYPES = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8",
               "notice.wav": "audio/wav",  # notice.wav: console/notice_sound.py
               "broadcasts.js": "text/javascript; charset=utf-8",  # the «Transmisiones» pages (console/broadcasts.py)
               "unanswered.js": "text/javascript; charset=utf-8",  # «Preguntas sin respuesta» (console/unanswered.py)
               "paraphrases.js": "text/javascript; charset=utf-8",  # suggested ways of asking (console/paraphrases.py)
               "reports.js": "text/javascript; charset=utf-8"}  # «Reportes» (console/reports.py)
MAX_REPLY = 2000  # one Messenger text message

AGENTS = ("admin", "agent")
EDITORS = ("admin", "editor")
EVERYONE = ("admin", "agent", "editor")

CLOSING_NOTES = ("Consulta resuelta", "Venta concretada", "Cliente no respondió", "Derivado a otra área", "Spam")

SECURITY_HEADERS = (
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data: https://platform-lookaside.fbsbx.com https://*.fbcdn.net; "
     b"style-src 'self'; script-src 'self'; connect-src 'self'; "
     b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)
CONSOLE_PREFIXES = ("/console", "/api/console")


# --- the app's pieces ------------------------------------------------------------------------------


def knowledge_of(request: Request) -> KnowledgeEditor:
    editor = getattr(request.app.state, "knowledge_editor", None)
    if editor is None:
        raise ConsoleError("knowledge_unavailable", "El editor de la matriz de conocimientos no está disponible.")
    return editor  # type: ignore[no-any-return]


def outbox_of(request: Request) -> Outbox:
    outbox: Outbox | None = getattr(request.app.state, "outbox", None)
    if outbox is None:
        raise ConsoleError("outbox_unavailable", "El envío de mensajes no está disponible; intente en un momento.")
    return outbox


def hub_of(request: Request) -> EventHub:
    hub: EventHub | None = getattr(request.app.state, "console_hub", None)
    if hub is None:
        service = handoff_of(request)
        hub = request.app.state.console_hub = EventHub(service.subscribe)
    hub.start()
    return hub


def store_of(request: Request) -> ConsoleStore:
    return authenticator_of(request).store


# --- JSON shapes ---------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def conversation_view(conversation: Conversation, now: datetime, window: ReplyWindow | None = None) -> dict[str, Any]:
    reason = conversation.paused_reason
    waiting = now - conversation.paused_at if conversation.paused_at else None
    return {
        "id": conversation.id,
        "page_id": conversation.page_id,
        "user_id": conversation.user_id,
        "contact_name": conversation.contact_name,
        "state": conversation.state.value,
        "paused_reason": reason.value if reason else None,
        "paused_reason_es": PAUSE_REASONS_ES.get(reason, reason.value) if reason else None,
        "paused_by": conversation.paused_by,
        "paused_at": _iso(conversation.paused_at),
        "waiting_seconds": int(waiting.total_seconds()) if waiting is not None else None,
        "waiting_es": duration_es(waiting) if waiting is not None else None,
        "assigned_to": conversation.assigned_to,
        "last_user_message_at": _iso(conversation.last_user_message_at),
        "last_message_text": conversation.last_message_text,
        "last_activity_at": _iso(conversation.last_activity_at),
        "window": window.to_dict() if window is not None else None,
    }


async def window_of(request: Request, conversation: Conversation) -> ReplyWindow:
    """The service knows the customer's last own message best (the outbox records every one); a service
    without `window_status` asks the outbox's policy about the conversation's own record."""
    service = handoff_of(request)
    status = getattr(service, "window_status", None)
    if status is not None:
        return await status(conversation.id, now_of(request))  # type: ignore[no-any-return]
    return reply_window(conversation.last_user_message_at, now_of(request), outbox_of(request).decide)


async def conversation_or_bot(request: Request, conversation_id: str) -> Conversation:
    """A conversation the bot always handled has no handoff record yet: show it as the bot's (so an agent can
    pause the bot in it) when Rasa knows the customer."""
    service = handoff_of(request)
    page_id, user_id = split_conversation_id(conversation_id)
    try:
        return await service.get(conversation_id)
    except ConversationNotFound:
        if page_id not in request.app.state.settings.page_tokens or not await service.transcript(conversation_id):
            raise
        return Conversation(id=conversation_id, page_id=page_id, user_id=user_id, state=ConversationState.BOT)


def author_label(author: str) -> str:
    if author == "user":
        return "Cliente"
    if author == "bot":
        return "Bot"
    if author.startswith("agent:"):
        return author.split(":", 1)[1] or "Agente"
    return author


def transcript_view(items: list[TranscriptItem]) -> list[dict[str, Any]]:
    return [
        {"at": item.at.isoformat(), "author": item.author, "author_label": author_label(item.author),
         "kind": item.author.split(":", 1)[0], "text": item.text, "data": item.data}
        for item in items
    ]


# --- request bodies ------------------------------------------------------------------------------


class LoginBody(BaseModel):
    username: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=1024)


IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_.:-]{8,100}$"


class ReplyBody(BaseModel):
    text: str = Field(default="", max_length=20000)  # may be empty when an attachment goes
    # The same key twice is one message (a retried POST); the page makes a new one for each reply it sends.
    idempotency_key: str | None = Field(default=None, pattern=IDEMPOTENCY_KEY_PATTERN)
    # Quick replies on the reply's last message (titles of at most 20 characters, at most 13), and a file Meta
    # fetches from an https URL, sent after the text (console/attachments.py).
    quick_replies: attachment_sends.QuickReplies | None = None
    attachment: attachment_sends.UrlAttachmentIn | None = None
    # «Responder con una entrada»: the live entry whose answer this is; the customer's unanswered question is then
    # proposed to editors as a question of it (console/unanswered.py journal_agent_answer).
    entry_id: str | None = Field(default=None, min_length=1, max_length=200)


class AssignBody(BaseModel):
    agent: str | None = Field(default=None, max_length=80)  # None: unassign


class CloseBody(BaseModel):
    note: str = Field(min_length=1, max_length=1000)


class SnippetBody(BaseModel):
    text: str = Field(min_length=1, max_length=5000)


class PreviewBody(BaseModel):
    text: str = Field(min_length=1, max_length=20000)


class TryBody(BaseModel):
    question: str = Field(min_length=1, max_length=1000)
    draft_id: str | None = Field(default=None, max_length=100)


class PublishBody(BaseModel):
    draft_id: str = Field(min_length=1, max_length=100)
    confirm_stale: bool = False  # publish an upload older than the live version anyway (stale_draft, can_confirm)


class RollbackBody(BaseModel):
    version_id: str | None = Field(default=None, max_length=100)


# --- routers -------------------------------------------------------------------------------------


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # The app's own lifespan has run: start listening to the handoff service if it is there already.
    service = getattr(app.state, "handoff", None)
    if service is not None and getattr(app.state, "console_hub", None) is None:
        app.state.console_hub = EventHub(service.subscribe)
        app.state.console_hub.start()
    inbox_pages.listen_to_contacts(app)  # people who write move up in the open inboxes
    try:
        yield
    finally:
        hub = getattr(app.state, "console_hub", None)
        if hub is not None:
            await hub.stop()
            app.state.console_hub = None


pages = APIRouter(prefix="/console", tags=["console pages"], lifespan=_lifespan)
api = APIRouter(prefix="/api/console", tags=["console"])

Agent = Annotated[Principal, Depends(require_role(*AGENTS))]
AgentOrService = Annotated[Principal, Depends(require_role(*AGENTS, service=True))]
Editor = Annotated[Principal, Depends(require_role(*EDITORS, service=True))]
EditorPage = Annotated[Principal, Depends(require_role(*EDITORS))]
Anyone = Annotated[Principal, Depends(require_role(*EVERYONE))]


def _page(request: Request, template: str, principal: Principal | None, status_code: int = 200,
          **context: Any) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    return TEMPLATES.TemplateResponse(
        request,
        f"console/{template}",
        {"user": principal, "csrf_token": principal.csrf_token if principal else "",
         "is_production": settings.is_production, "is_demo": settings.is_demo, **context},
        status_code=status_code,
    )


def _set_session_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=int(SESSION_LIFETIME.total_seconds()), httponly=True,
                        samesite="lax", secure=request.app.state.settings.is_production, path="/")


_SAFE_NEXT = re.compile(r"^/console/[A-Za-z0-9_.:%/-]*(\?[A-Za-z0-9_.:%=&-]*)?$")


def _safe_next(value: str | None, principal: Principal) -> str:
    if value and _SAFE_NEXT.match(value) and ".." not in value:
        return value
    return _home(principal)


def _home(principal: Principal) -> str:
    return "/console/knowledge" if principal.role == "editor" else "/console/inbox"


# login and logout (pages)


@pages.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response = _page(request, "login.html", None, next=next or "", login_csrf=token, error=None)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, httponly=True, samesite="strict",
                        secure=request.app.state.settings.is_production, path="/console/login")
    return response


@pages.post("/login", response_class=HTMLResponse)
async def login_form(
    request: Request,
    username: Annotated[str, Form(max_length=80)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not csrf_token or not same_secret(csrf_token, expected):
        return _page(request, "login.html", None, status_code=403, next=next, login_csrf=expected or "",
                     error="El formulario caducó. Vuelva a escribir su usuario y contraseña.")
    auth = authenticator_of(request)
    try:
        result = await login_on_event_loop(auth, username, password, request_login_client(request))
    except (InvalidCredentials, TooManyAttempts) as exc:
        response = _page(request, "login.html", None, status_code=status_of(exc), next=next, login_csrf=expected,
                         error=exc.message_es, username=username[:80])
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(max(1, int(exc.retry_after.total_seconds())))
        return response
    redirect = RedirectResponse(_safe_next(next, result.principal), status_code=303)
    _set_session_cookie(redirect, request, result.session_token)
    redirect.delete_cookie(LOGIN_CSRF_COOKIE, path="/console/login")
    return redirect


@pages.post("/logout")
async def logout_form(request: Request, principal: Anyone) -> RedirectResponse:
    await run_in_threadpool(authenticator_of(request).logout, principal)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@pages.get("/assets/{name}")
async def asset(name: str) -> Response:
    """The console's own CSS and JavaScript: public, like the login page that needs them."""
    if name not in ASSET_TYPES:
        raise ConsoleError("not_found", "No existe ese archivo.")
    return Response((ASSETS / name).read_bytes(), media_type=ASSET_TYPES[name],
                    headers={"Cache-Control": "no-cache"})


# pages for people who are logged in


@pages.get("", response_class=RedirectResponse)
async def console_home(principal: Anyone) -> RedirectResponse:
    return RedirectResponse(_home(principal), status_code=303)


@pages.get("/inbox", response_class=HTMLResponse)
async def inbox_page(request: Request, principal: Agent) -> HTMLResponse:
    service = handoff_of(request)
    now = now_of(request)
    conversations = [conversation_view(c, now) for c in await service.paused_conversations()]
    conversations.sort(key=lambda c: c["paused_at"] or "")
    settings: Settings = request.app.state.settings
    return _page(request, "inbox.html", principal, conversations=conversations, page_ids=sorted(settings.page_tokens),
                 agents=await _agents(request), **await inbox_pages.page_context(request, principal),
                 satisfaction=await csat_pages.agents_block(request, principal, now))


@pages.get("/conversations/{conversation_id}", response_class=HTMLResponse)
async def conversation_page(conversation_id: str, request: Request, principal: Agent) -> HTMLResponse:
    view = await _conversation_with_transcript(request, conversation_id)
    await inbox_pages.mark_read(request, view["id"], principal)  # the inbox's unread mark
    snippets = [snippet.to_dict() for snippet in await run_in_threadpool(store_of(request).snippets)]
    return _page(request, "conversation.html", principal, conversation=view, agents=await _agents(request),
                 snippets=snippets, closing_notes=CLOSING_NOTES, reply_key=secrets.token_urlsafe(18))


@pages.get("/snippets", response_class=HTMLResponse)
async def snippets_page(request: Request, principal: Agent) -> HTMLResponse:
    snippets = [snippet.to_dict() for snippet in await run_in_threadpool(store_of(request).snippets)]
    return _page(request, "snippets.html", principal, snippets=snippets,
                 sample=snippet_rules.sample_for(principal.display_name).to_dict())


@pages.get("/knowledge", response_class=HTMLResponse)
async def knowledge_page(request: Request, principal: EditorPage) -> HTMLResponse:
    try:
        status = (await run_in_threadpool(knowledge_of(request).status)).to_dict()
        unavailable = None
    except (ConsoleError, KnowledgeEditorError) as exc:
        status, unavailable = None, getattr(exc, "message_es", str(exc))
    return _page(request, "knowledge.html", principal, status=status, unavailable=unavailable)


@pages.get("/events")
async def events(request: Request, principal: Agent) -> StreamingResponse:
    """Server-sent events: every handoff event, for the inbox and conversation pages."""
    hub = hub_of(request)
    stream = hub.stream(request.headers.get("last-event-id"), is_disconnected=request.is_disconnected)
    return StreamingResponse(stream, media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# --- JSON API ------------------------------------------------------------------------------------


@api.post("/login")
async def api_login(body: LoginBody, request: Request) -> JSONResponse:
    """Log in from a program or the page: the session cookie is set; use the returned CSRF token as X-CSRF-Token."""
    result = await login_on_event_loop(authenticator_of(request), body.username, body.password,
                                       request_login_client(request))
    response = JSONResponse({"user": result.principal.to_dict(), "csrf_token": result.principal.csrf_token,
                             "expires_at": result.expires_at.isoformat()})
    _set_session_cookie(response, request, result.session_token)
    return response


@api.post("/logout")
async def api_logout(request: Request, principal: Anyone) -> JSONResponse:
    await run_in_threadpool(authenticator_of(request).logout, principal)
    response = JSONResponse({"logged_out": True})
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@api.get("/me")
async def me(principal: Anyone) -> dict[str, Any]:
    return {"user": principal.to_dict(), "csrf_token": principal.csrf_token}


async def _agents(request: Request) -> list[dict[str, str]]:
    users = await run_in_threadpool(store_of(request).users)
    return [{"username": u.username, "display_name": u.display_name} for u in users if u.active and u.role in AGENTS]


@api.get("/agents")
async def agents(request: Request, principal: Agent) -> dict[str, Any]:
    return {"agents": await _agents(request)}


@api.get("/conversations")
async def list_conversations(request: Request, principal: AgentOrService) -> dict[str, Any]:
    service = handoff_of(request)
    now = now_of(request)
    conversations = [conversation_view(c, now) for c in await service.paused_conversations()]
    conversations.sort(key=lambda c: c["paused_at"] or "")
    return {"conversations": conversations, "now": now.isoformat()}


async def _conversation_with_transcript(request: Request, conversation_id: str) -> dict[str, Any]:
    conversation = await conversation_or_bot(request, conversation_id)
    transcript = await handoff_of(request).transcript(conversation_id)
    view = conversation_view(conversation, now_of(request), await window_of(request, conversation))
    view["contact"] = await contact_pages.contact_summary_of(request, conversation.page_id, conversation.user_id)
    if not view["contact_name"] and view["contact"]:  # the name from Meta's profile, when the page may read it
        view["contact_name"] = view["contact"]["name"]
    view["transcript"] = transcript_view(transcript)
    view["arrived_by"] = await link_pages.arrival_of(request, conversation.page_id, conversation.user_id)
    view["from_comment"] = await comment_origin_of(request, conversation.page_id, conversation.user_id)
    view["satisfaction"] = await csat_pages.satisfaction_of(request, conversation.id)  # the ratings asked (csat/)
    return view


COMMENT_ORIGIN_CHARS = 200  # the comment a conversation started from, as the conversation view quotes it


async def comment_origin_of(request: Request, page_id: str, user_id: str) -> dict[str, Any] | None:
    """The comment this conversation started from (its private reply reached this PSID: `CommentJournal.origin_of`),
    for "Inició desde un comentario: «…»"; None when it did not start from one or the journal cannot say now."""
    journal = getattr(request.app.state, "comment_journal", None)
    if journal is None:
        return None
    try:
        origin = await journal.run(journal.origin_of, page_id, user_id)
    except Exception as exc:  # the journal's database is away: the conversation still shows, without its origin
        log.warning("comment origin unavailable: %s", exc, extra={"page_id": page_id})
        return None
    if origin is None:
        return None
    text = origin.message
    if len(text) > COMMENT_ORIGIN_CHARS:
        text = text[:COMMENT_ORIGIN_CHARS] + "…"
    return {"text": text, "at": origin.created_at.isoformat(), "post_id": origin.post_id,
            "comment_id": origin.comment_id}


@api.get("/conversations/{conversation_id}")
async def get_conversation(conversation_id: str, request: Request, principal: AgentOrService) -> dict[str, Any]:
    view = await _conversation_with_transcript(request, conversation_id)
    await inbox_pages.mark_read(request, view["id"], principal)  # the inbox's unread mark
    return {"conversation": view}


def reply_idempotency_key(request: Request, body: ReplyBody, conversation_id: str, username: str) -> str | None:
    """The client's key (the `Idempotency-Key` header or the body's `idempotency_key`), scoped to this agent and
    conversation so one agent's key never matches another's message."""
    header = request.headers.get("idempotency-key")
    if header is not None and not re.match(IDEMPOTENCY_KEY_PATTERN, header):
        raise ConsoleError("invalid_idempotency_key",
                           "La cabecera Idempotency-Key debe tener de 8 a 100 letras, números, «.», «_», «:» o «-».")
    key = header or body.idempotency_key
    return f"console:{username}:{conversation_id}:{key}" if key else None


async def recipient_of(request: Request, conversation_id: str, principal: Principal) -> snippet_rules.Recipient:
    """The values a reply's variables take: the conversation's contact (one read), the agent's display name."""
    page_id, user_id = split_conversation_id(conversation_id)
    try:
        contact = await run_in_threadpool(contact_pages.contacts_of(request).get, page_id, user_id)
    except DatabaseUnavailable as exc:
        raise ConsoleError("contacts_unavailable", "No se pudieron leer los datos del contacto para completar las "
                                                   "variables del mensaje; intente en un momento.") from exc
    return snippet_rules.Recipient.of(contact, principal.display_name, await page_name_of(request, page_id))


async def reply_text(request: Request, conversation_id: str, typed: str, principal: Principal) \
        -> tuple[snippet_rules.Expansion, snippet_rules.Filled]:
    """A reply as it goes out: known `/name` snippets expanded, then variables filled (the contact is read only
    when the words hold something variable-shaped)."""
    saved = {s.name: s.text for s in await run_in_threadpool(store_of(request).snippets)}
    expansion = snippet_rules.expand(typed.strip(), saved)
    if not snippet_rules.uses_variables(expansion.text):
        return expansion, snippet_rules.Filled(expansion.text)
    recipient = await recipient_of(request, conversation_id, principal)
    return expansion, snippet_rules.fill(expansion.text, recipient)


@api.post("/conversations/{conversation_id}/reply/preview")
async def reply_preview(conversation_id: str, body: PreviewBody, request: Request, principal: Agent) \
        -> dict[str, Any]:
    """The reply as it would go out (snippets expanded, variables filled with this conversation's contact), with
    `warning_es` when a variable is unknown or empty: the page shows it before sending. Sends nothing."""
    split_conversation_id(conversation_id)
    expansion, filled = await reply_text(request, conversation_id, body.text, principal)
    return {**filled.to_dict(), "snippets_used": list(expansion.used)}


@api.post("/conversations/{conversation_id}/reply")
async def reply(conversation_id: str, body: ReplyBody, request: Request, principal: Agent) -> JSONResponse:
    """Send a person's reply through the outbox: a normal reply within 24 h of the customer's last message, with
    the HUMAN_AGENT tag up to 7 days, refused after that (422 with the policy's reason in Spanish). With an
    `Idempotency-Key` header (or `idempotency_key`), a retried request is the same message, not a second one
    (200, `repeated`, the words the outbox holds); the same key with other words is 409 `idempotency_key_reused`."""
    service = handoff_of(request)
    split_conversation_id(conversation_id)
    idempotency_key = reply_idempotency_key(request, body, conversation_id, principal.username)
    attachment, shown = attachment_sends.url_attachment(body.attachment) if body.attachment else (None, None)
    if body.quick_replies:  # the transcript shows the choices offered
        shown = {**(shown or {}), "quick_replies": [reply.title for reply in body.quick_replies]}
    expansion, filled = await reply_text(request, conversation_id, body.text, principal)
    text = filled.text.strip()
    if not text and attachment is None:
        raise ConsoleError("empty_reply", "El mensaje está vacío.")
    if len(text) > MAX_REPLY:
        raise ConsoleError("reply_too_long", f"El mensaje tiene {len(text)} caracteres; Messenger admite "
                                                  f"{MAX_REPLY}. Divídalo en dos mensajes.")
    queued = await service.reply_as_agent(conversation_id, principal.username, text, idempotency_key=idempotency_key,
                                          quick_replies=attachment_sends.quick_replies_of(body.quick_replies),
                                          attachment=attachment, shown=shown)
    repeated = bool(queued.get("repeated"))
    log.info("console reply queued", extra={"conversation_id": conversation_id, "agent": principal.username,
                                            "snippets": list(expansion.used), "repeated": repeated})
    proposal_id = None
    if body.entry_id and not repeated:  # answered with an entry: the customer's wording is proposed to editors
        proposal_id = await unanswered_pages.journal_agent_answer(request, conversation_id, body.entry_id,
                                                                  principal.username)
    # A repeat answers with what the outbox holds (the same words: other words under the same key are a 409).
    return JSONResponse({"queued": True, "repeated": repeated, "text": queued.get("text", text),
                         "snippets_used": list(expansion.used), "variables": filled.to_dict(),
                         "outbox": queued, "proposal_id": proposal_id}, status_code=200 if repeated else 201)


@api.post("/conversations/{conversation_id}/assign")
async def assign(conversation_id: str, body: AssignBody, request: Request, principal: Agent) -> dict[str, Any]:
    """Assign to an agent (yourself or another; "me" is you) or unassign (`agent: null`)."""
    service = handoff_of(request)
    agent = body.agent.strip().lower() if body.agent else None
    if agent == "me":
        agent = principal.username
    if agent is not None and agent not in {a["username"] for a in await _agents(request)}:
        raise ConsoleError("unknown_agent", f"No hay ningún agente activo llamado «{agent}».")
    conversation = await service.assign(conversation_id, agent)
    return {"conversation": conversation_view(conversation, now_of(request), await window_of(request, conversation))}


@api.post("/conversations/{conversation_id}/pause")
async def pause(conversation_id: str, request: Request, principal: Agent) -> dict[str, Any]:
    """"Pausar el Chatbot": the bot stops answering this customer and the conversation is assigned to you."""
    service = handoff_of(request)
    page_id, user_id = split_conversation_id(conversation_id)
    if page_id not in request.app.state.settings.page_tokens:
        raise ConsoleError("unknown_page", f"La página {page_id} no está configurada.")
    await service.pause(page_id, user_id, PauseReason.AGENT_TOOK_OVER, principal.username)
    conversation = await service.assign(conversation_id, principal.username)
    return {"conversation": conversation_view(conversation, now_of(request), await window_of(request, conversation))}


@api.post("/conversations/{conversation_id}/close")
async def close(conversation_id: str, body: CloseBody, request: Request, principal: Agent) -> dict[str, Any]:
    """Close with a closing note ("Nota de cierre"): the bot answers this customer again."""
    note = body.note.strip()
    if not note:
        raise ConsoleError("empty_note", "Escriba una nota de cierre.")
    conversation = await handoff_of(request).resume(conversation_id, principal.username, note)
    return {"conversation": conversation_view(conversation, now_of(request), await window_of(request, conversation))}


@api.get("/snippets")
async def list_snippets(request: Request, principal: Agent) -> dict[str, Any]:
    return {"snippets": [s.to_dict() for s in await run_in_threadpool(store_of(request).snippets)]}


@api.post("/snippets/preview")
async def preview_snippet(body: PreviewBody, principal: Agent) -> dict[str, Any]:
    """A snippet's text with its variables filled for a sample contact (the snippets page's preview)."""
    sample = snippet_rules.sample_for(principal.display_name)
    return {**snippet_rules.fill(body.text, sample).to_dict(), "sample": sample.to_dict()}


@api.put("/snippets/{name}")
async def save_snippet(name: str, body: SnippetBody, request: Request, principal: Agent) -> dict[str, Any]:
    try:
        checked_name, text = snippet_rules.check_name(name), snippet_rules.check_text(body.text)
        snippet_rules.check_variables(text)
    except snippet_rules.SnippetError as exc:
        raise ConsoleError("invalid_snippet", str(exc)[:1].upper() + str(exc)[1:] + ".",
                           **({"unknown_variables": exc.unknown} if exc.unknown else {})) from exc
    store = store_of(request)
    saved = await run_in_threadpool(store.save_snippet, checked_name, text, principal.username, now_of(request))
    return {"snippet": saved.to_dict()}


@api.delete("/snippets/{name}")
async def delete_snippet(name: str, request: Request, principal: Agent) -> dict[str, Any]:
    if not await run_in_threadpool(store_of(request).delete_snippet, name.strip().lstrip("/").lower()):
        raise ConsoleError("snippet_not_found", f"No hay ningún atajo «/{name}».")
    return {"deleted": name}


@api.get("/knowledge")
async def knowledge_status(request: Request, principal: Editor) -> dict[str, Any]:
    return (await run_in_threadpool(knowledge_of(request).status)).to_dict()


@api.get("/knowledge/live/source")
async def live_source(request: Request, principal: Editor) -> Response:
    """The live matrix's file as it was published: edit this copy, not an older one (a question added from
    «Preguntas sin respuesta» lives in the published version)."""
    filename, data = await run_in_threadpool(knowledge_of(request).live_source)
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    media_type = {"csv": "text/csv; charset=utf-8",
                  "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}.get(
        suffix, "application/octet-stream")
    return Response(data, media_type=media_type,
                    headers={"content-disposition": f"attachment; filename*=UTF-8''{quote(filename)}"})


@api.post("/knowledge/drafts")
async def upload_draft(request: Request, principal: Editor, file: Annotated[UploadFile, File()]) -> JSONResponse:
    """Upload a matrix (.csv or .xlsx): it is validated and kept as a draft; the live version keeps answering."""
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise ConsoleError("file_too_large", f"El archivo supera {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
    draft = await run_in_threadpool(knowledge_of(request).upload, file.filename or "matriz.csv", data,
                                    principal.username)
    return JSONResponse({"draft": draft.to_dict()}, status_code=201)


@api.post("/knowledge/try")
async def try_question(body: TryBody, request: Request, principal: Editor) -> dict[str, Any]:
    result = await run_in_threadpool(knowledge_of(request).try_question, body.question.strip(), body.draft_id)
    return result.to_dict()


@api.post("/knowledge/publish")
async def publish(body: PublishBody, request: Request, principal: Editor) -> dict[str, Any]:
    version = await run_in_threadpool(knowledge_of(request).publish, body.draft_id, principal.username,
                                      confirm_stale=body.confirm_stale)
    log.info("knowledge matrix published", extra={"version": version.id, "by": principal.username})
    # A draft made from «Preguntas sin respuesta» resolves its group once published.
    group_id = await unanswered_pages.resolve_published(request, body.draft_id, principal.username)
    return {"version": version.to_dict(), "resolved_group_id": group_id}


@api.post("/knowledge/rollback")
async def rollback(body: RollbackBody, request: Request, principal: Editor) -> dict[str, Any]:
    version = await run_in_threadpool(knowledge_of(request).rollback, principal.username, body.version_id)
    log.info("knowledge matrix rolled back", extra={"version": version.id, "by": principal.username})
    return {"version": version.to_dict()}


# --- errors, headers, mounting -------------------------------------------------------------------


def error_page(request: Request, status_code: int, reason_code: str, message_es: str) -> Response:
    """A refusal on a console page (bot/errors.py answers the JSON API): the login for a 401, else the error page."""
    if status_code == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/console/login?next={quote(target, safe='/')}", status_code=303)
    return _page(request, "error.html", None, status_code=status_code, message=message_es,
                 reason_code=reason_code)


def install(app: FastAPI, settings: Settings, authenticator: Authenticator | None = None) -> Authenticator:
    """Mount the console on the app: its routes, security headers, users (demo ones in development); its errors are
    answered by the app's one handler (bot/errors.py).
    Tests pass their own `authenticator` (a clock they move, cheaper hashing)."""
    auth = authenticator or Authenticator(open_console_store(settings.console_store_url), settings)
    app.state.console_auth = auth
    app.state.knowledge_editor = MatrixEditor(settings.data_dir, auth.clock)
    created = auth.seed_demo_users()
    if created:
        log.info("demo console users created", extra={"usernames": created})
    app.include_router(pages)
    app.include_router(api)
    link_pages.install(app, settings)  # m.me links and QR codes: /console/links, /api/console/links
    page_profile_pages.install(app)  # the page's Messenger profile: /console/page-profile, /api/console/page-profile
    app.include_router(comment_pages.router)  # "Respuestas privadas": /console/comments, /api/console/comments
    contact_pages.install(app)  # "Contactos": /console/contacts, /api/console/contacts, /api/console/tags
    contacts_csv.install(app)  # contacts as CSV: /api/console/contacts/export.csv, /api/console/contacts/import
    inbox_pages.install(app)  # every conversation: /api/console/inbox (the page is /console/inbox?estado=...)
    attachment_sends.install(app)  # files in a reply: /api/console/conversations/{id}/attachment, /attachments/{id}
    broadcast_pages.install(app)  # «Transmisiones»: /console/broadcasts, /api/console/broadcasts (admins)
    unanswered_pages.install(app)  # «Preguntas sin respuesta»: /console/unanswered, /api/console/unanswered (editors)
    paraphrase_pages.install(app)  # LLM-proposed ways of asking: /console/knowledge/paraphrases, /api/… (editors)
    report_pages.install(app)  # «Reportes»: /console/reports, /api/console/reports (admins; editors the knowledge part)

    app.add_middleware(ConsoleHeaders)
    return auth


class ConsoleHeaders:
    """Security headers on console pages and API answers only (the sandbox and the outbox API keep theirs)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(CONSOLE_PREFIXES):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in SECURITY_HEADERS if name not in present]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, with_headers)


def route_roles(app: FastAPI) -> list[dict[str, Any]]:
    """Every route of the app with the roles it admits: (method, path, roles, service token?, public?)."""
    table = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = getattr(context, "path", None) or getattr(route, "path", "")
        methods = sorted(getattr(route, "methods", None) or [])
        roles: frozenset[str] | None = None
        service = False
        if isinstance(route, APIRoute):
            for dependency in route.dependant.dependencies:
                call = dependency.call
                if call is not None and hasattr(call, "allowed_roles"):
                    roles = call.allowed_roles
                    service = bool(getattr(call, "admits_service", False))
        for method in methods:
            table.append({"method": method, "path": path, "roles": sorted(roles) if roles is not None else None,
                          "service_token": service})
    return table

