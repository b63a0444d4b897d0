"""The console's "Respuestas privadas" part: admins manage each page's reply rules for comments (create, edit,
switch off, reorder, delete) and its comment settings, and see the recent comments with their verdict and the
counters per rule. The page is `/console/comments`; the same operations are JSON under `/api/console/comments/...`
(admins, and the service token like the knowledge API).

The rules live in `comments.rules_store` (checked by `comments.rules.parse_rule`); the comments and their verdicts
in the comment journal (`comments.journal.CommentJournal`), which the webhook process writes and the processor
decides. Both are opened on first use unless the app put them on its state (`comment_rules`, `comment_journal`).
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from comments.journal import RECORD_REASONS, CommentJournal, StoredComment, open_comment_journal
from comments.rules import RuleInvalid, parse_rule, parse_settings
from comments.rules_store import RuleNotFound, RulesStore, open_rules_store
from console.auth import Principal, require_role
from console.parts import MAX_ID, ConsoleError, now_of, state_store
from core.settings import Settings
from outbox import wording

log = logging.getLogger(__name__)

# Mounted by `console.routes.install`, which imports this module: this one does not import it.
TEMPLATES = Jinja2Templates(directory=str(FilePath(__file__).parent / "templates"))

ADMINS = ("admin",)
RECENT_MAX = 200

STATUSES_ES = {
    "pending": "Pendiente",
    "recorded": "Guardado",
    "ignored": "Ignorado",
    "replied": "Respondido",
    "skipped": "Sin respuesta",
}
# Why a comment got no reply (the journal's reasons at ingest, the processor's and the outbox's): code → Spanish.
REASONS_ES: dict[str, str] = {
    **RECORD_REASONS,
    "no_rule": "Ninguna regla activa coincide con el comentario",
    "already_replied_today": "La persona ya recibió una respuesta por esta publicación hoy",
    "conversation_paused": "La conversación con esta persona está en pausa (la atiende un agente)",
    "no_answer": "La matriz de conocimientos no tiene una respuesta con suficiente puntaje",
    "private_reply_already_sent": "Este comentario ya recibió su respuesta privada (Messenger permite una)",
    "outside_window": "El comentario es demasiado antiguo: Messenger permite responder en privado hasta 7 días después",
    "not_allowed": "La política de envío no permite esta respuesta",
    "never_wrote": "No consta el comentario al que se quiere responder",
    "purpose_not_allowed": "La política de envío no permite respuestas privadas",
    "page_paused": "Los envíos de esta página están detenidos",
    "private_reply_failed": "El mensaje privado no se pudo enviar",
    "person_unavailable": "Esta persona no está disponible en Messenger",
    "processing_failed": "No se pudo procesar el comentario tras varios intentos (el registro de errores dice por qué)",
    "post_text_unavailable": "No se pudo leer el texto de la publicación en Facebook para aplicar la regla",
}


def reason_es(code: str | None) -> str | None:
    """A reason code in Spanish: the table above, Meta's refusals (`graph_<code>`), the outbox's own sentences that
    need no facts, else the code itself (never a blank)."""
    if code is None:
        return None
    if code in REASONS_ES:
        return REASONS_ES[code]
    if code.startswith("graph_"):
        return f"Meta rechazó el mensaje privado (error {code.removeprefix('graph_')})"
    template = wording.TEMPLATES.get(code)
    if template is not None and "{" not in template.es:
        return template.es.rstrip(".")
    return f"Sin respuesta (motivo «{code}»)"


class CommentsRefused(ConsoleError):
    """A refusal an admin can act on (`message_es` is shown; bot/errors.py gives the status of `reason_code`)."""


# --- the app's pieces ----------------------------------------------------------------------------------

def rules_of(request: Request) -> RulesStore:
    """The app's rules store (`app.state.comment_rules`), opened at `settings.store_url("comments")` when the app
    did not open it."""
    return state_store(request, "comment_rules", lambda settings: open_rules_store(settings.store_url("comments")))


def journal_of(request: Request) -> CommentJournal:
    """The app's comment journal (`app.state.comment_journal`), opened the same way."""
    return state_store(request, "comment_journal",
                       lambda settings: open_comment_journal(settings.store_url("comment_journal")))


def known_page(request: Request, page_id: str) -> str:
    if page_id not in request.app.state.settings.page_tokens:
        raise CommentsRefused("unknown_page", f"La página {page_id[:40]} no está configurada.")
    return page_id


# --- views ---------------------------------------------------------------------------------------------


def comment_view(comment: StoredComment, rule_names: dict[str, str]) -> dict[str, Any]:
    view = comment.to_dict()
    view["status_es"] = STATUSES_ES.get(comment.status, comment.status)
    view["reason_es"] = reason_es(comment.reason_code)
    view["rule_name"] = rule_names.get(str(comment.rule_id)) if comment.rule_id is not None else None
    return view


def counts_view(counts: dict[str, Any], rule_names: dict[str, str]) -> dict[str, Any]:
    """The journal's counters with names: one row per rule of the page (zeros included), then rules since
    deleted that still have counts."""
    by_rule = counts.get("by_rule", {})
    zero = {"matched": 0, "private": 0, "public": 0, "delivered": 0, "started": 0}
    rows = [{"rule_id": rule_id, "name": name, **zero, **by_rule.get(rule_id, {})}
            for rule_id, name in rule_names.items()]
    rows += [{"rule_id": rule_id, "name": f"Regla {rule_id} (borrada)", **zero, **values}
             for rule_id, values in by_rule.items() if rule_id not in rule_names]
    reasons = [{"reason_code": code, "reason_es": reason_es(code), "count": count}
               for code, count in sorted(counts.get("by_reason", {}).items(), key=lambda item: -item[1])]
    return {"received": counts.get("received", 0), "private": counts.get("private", 0),
            "public": counts.get("public", 0), "delivered": counts.get("delivered", 0),
            "started": counts.get("started", 0), "by_status": counts.get("by_status", {}), "rules": rows,
            "reasons": reasons}


def _rule_names(store: RulesStore, page_id: str) -> dict[str, str]:
    return {str(rule.id): rule.name for rule in store.list_rules(page_id)}


def _recent(request: Request, page_id: str, limit: int, before_id: int | None) -> list[dict[str, Any]]:
    names = _rule_names(rules_of(request), page_id)
    return [comment_view(c, names) for c in journal_of(request).recent(page_id, limit, before_id)]


def _counts(request: Request, page_id: str, since: datetime | None) -> dict[str, Any]:
    names = _rule_names(rules_of(request), page_id)
    return counts_view(journal_of(request).counts(page_id, since), names)


# --- routes --------------------------------------------------------------------------------------------

router = APIRouter(tags=["console: respuestas privadas"])

AdminPage = Annotated[Principal, Depends(require_role(*ADMINS))]
Admin = Annotated[Principal, Depends(require_role(*ADMINS, service=True))]
PageId = Annotated[str, Path(min_length=1, max_length=40)]
RuleId = Annotated[int, Path(ge=1, le=MAX_ID)]
API = "/api/console/comments"


class OrderBody(BaseModel):
    rule_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(max_length=500)


class EnabledBody(BaseModel):
    enabled: bool


@router.get("/console/comments", response_class=HTMLResponse)
async def comments_page(request: Request, principal: AdminPage,
                        page_id: Annotated[str | None, Query(max_length=40)] = None) -> HTMLResponse:
    pages = sorted(request.app.state.settings.page_tokens)
    chosen = page_id if page_id in pages else (pages[0] if pages else None)
    data: dict[str, Any] = {"page_id": chosen, "pages": pages, "rules": [], "settings": None, "recent": [],
                            "counts": None}
    unavailable = None
    if chosen is not None:
        store = rules_of(request)
        data["rules"] = [rule.to_dict() for rule in await run_in_threadpool(store.list_rules, chosen)]
        data["settings"] = (await run_in_threadpool(store.page_settings, chosen)).to_dict()
        try:
            data["recent"] = await run_in_threadpool(_recent, request, chosen, 50, None)
            data["counts"] = await run_in_threadpool(_counts, request, chosen, None)
        except (sqlite3.Error, RuntimeError) as exc:  # another store: the rules stay editable without it
            log.warning("comment journal unavailable", extra={"error": type(exc).__name__})
            unavailable = "Los comentarios recibidos no se pueden leer en este momento."
    settings: Settings = request.app.state.settings
    return TEMPLATES.TemplateResponse(request, "console/comments.html", {
        "user": principal, "csrf_token": principal.csrf_token, "is_production": settings.is_production,
        "is_demo": settings.is_demo, "data": data, "unavailable": unavailable})


@router.get(API + "/pages/{page_id}/rules")
async def list_rules(page_id: PageId, request: Request, principal: Admin) -> dict[str, Any]:
    known_page(request, page_id)
    rules = await run_in_threadpool(rules_of(request).list_rules, page_id)
    return {"page_id": page_id, "rules": [rule.to_dict() for rule in rules]}


@router.post(API + "/pages/{page_id}/rules")
async def create_rule(page_id: PageId, request: Request, principal: Admin,
                      body: Annotated[dict[str, Any], Body()]) -> JSONResponse:
    """A new rule, last in the page's order (the first rule that matches a comment wins)."""
    known_page(request, page_id)
    if body.get("page_id") not in (None, page_id):
        raise RuleInvalid("page_id", "La regla indica otra página que la dirección.")
    rule = parse_rule(body, page_id=page_id)
    saved = await run_in_threadpool(rules_of(request).create_rule, rule, principal.username, now_of(request))
    log.info("comment rule created", extra={"rule_id": saved.id, "page_id": page_id, "by": principal.username})
    return JSONResponse({"rule": saved.to_dict()}, status_code=201)


@router.put(API + "/pages/{page_id}/order")
async def reorder_rules(page_id: PageId, body: OrderBody, request: Request, principal: Admin) -> dict[str, Any]:
    """The page's rules in a new order: `rule_ids` names each of them once."""
    known_page(request, page_id)
    rules = await run_in_threadpool(rules_of(request).reorder, page_id, body.rule_ids, principal.username,
                                    now_of(request))
    return {"page_id": page_id, "rules": [rule.to_dict() for rule in rules]}


@router.get(API + "/pages/{page_id}/settings")
async def get_settings(page_id: PageId, request: Request, principal: Admin) -> dict[str, Any]:
    known_page(request, page_id)
    return {"settings": (await run_in_threadpool(rules_of(request).page_settings, page_id)).to_dict()}


@router.put(API + "/pages/{page_id}/settings")
async def save_settings(page_id: PageId, request: Request, principal: Admin,
                        body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    known_page(request, page_id)
    settings = parse_settings(body, page_id)
    saved = await run_in_threadpool(rules_of(request).save_page_settings, settings, principal.username,
                                    now_of(request))
    return {"settings": saved.to_dict()}


@router.get(API + "/pages/{page_id}/recent")
async def recent_comments(page_id: PageId, request: Request, principal: Admin,
                          limit: Annotated[int, Query(ge=1, le=RECENT_MAX)] = 50,
                          before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> dict[str, Any]:
    """The page's latest comments (newest first) with their verdict; `before_id` pages back."""
    known_page(request, page_id)
    return {"comments": await run_in_threadpool(_recent, request, page_id, limit, before_id)}


@router.get(API + "/pages/{page_id}/counts")
async def comment_counts(page_id: PageId, request: Request, principal: Admin,
                         days: Annotated[int | None, Query(ge=1, le=3660)] = None) -> dict[str, Any]:
    """Comments received, rules matched, private and public replies per rule (over the last `days`, or all)."""
    known_page(request, page_id)
    since = now_of(request) - timedelta(days=days) if days is not None else None
    return {"counts": await run_in_threadpool(_counts, request, page_id, since)}


@router.get(API + "/rules/{rule_id}")
async def get_rule(rule_id: RuleId, request: Request, principal: Admin) -> dict[str, Any]:
    return {"rule": (await run_in_threadpool(rules_of(request).get_rule, rule_id)).to_dict()}


@router.put(API + "/rules/{rule_id}")
async def update_rule(rule_id: RuleId, request: Request, principal: Admin,
                      body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    """A rule's new content (the whole rule, as created); its page and place in the order stay."""
    store = rules_of(request)
    current = await run_in_threadpool(store.get_rule, rule_id)
    if body.get("page_id") not in (None, current.page_id):
        raise RuleInvalid("page_id", "Una regla no cambia de página: cree una nueva en la otra página.")
    rule = parse_rule(body, page_id=current.page_id)
    saved = await run_in_threadpool(store.update_rule, rule_id, rule, principal.username, now_of(request))
    log.info("comment rule changed", extra={"rule_id": rule_id, "by": principal.username})
    return {"rule": saved.to_dict()}


@router.put(API + "/rules/{rule_id}/enabled")
async def switch_rule(rule_id: RuleId, body: EnabledBody, request: Request, principal: Admin) -> dict[str, Any]:
    """Switch a rule on or off; it keeps its place."""
    saved = await run_in_threadpool(rules_of(request).set_enabled, rule_id, body.enabled, principal.username,
                                    now_of(request))
    log.info("comment rule switched", extra={"rule_id": rule_id, "enabled": body.enabled, "by": principal.username})
    return {"rule": saved.to_dict()}


@router.delete(API + "/rules/{rule_id}")
async def delete_rule(rule_id: RuleId, request: Request, principal: Admin) -> dict[str, Any]:
    store = rules_of(request)
    if not await run_in_threadpool(store.delete_rule, rule_id):
        raise RuleNotFound(rule_id)
    log.info("comment rule deleted", extra={"rule_id": rule_id, "by": principal.username})
    return {"deleted": rule_id}
