"""The console's m.me links ("Enlaces y códigos QR"): admins create named links, switch them off, download their QR
codes (PNG, SVG) and see how many people arrived by each. The page `/console/links`, the JSON under
`/api/console/links` (admins; the service token may read and create), and `arrival_of`, the campaign a conversation
arrived by, for the conversation view.

Mounted by `console.routes.install` (`install`), which owns the app's console; this module does not import it (the
routes import this one for the conversation view).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from console.auth import Principal, require_role
from console.parts import MAX_ID, ConsoleError, now_of, pages_of
from core.postgres import DatabaseUnavailable
from core.settings import Settings
from knowledge_matrix.errors import KnowledgeMatrixError
from knowledge_matrix.publish import live_entries
from links.intents import bot_intents
from links.model import Link, LinkInvalid, NewLink, check_page_username, check_start_intent, parse_new_link
from links.qr import FORMATS, qr_bytes
from links.store import LinksStore, RefInUse, StoredReferral, UnknownLink, open_links_store

log = logging.getLogger(__name__)

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
SOURCES_ES = {"SHORTLINK": "enlace m.me o código QR", "ADS": "anuncio", "CUSTOMER_CHAT_PLUGIN": "chat del sitio web"}
VIA_ES = {"referral": "abrió la conversación", "postback": "tocó «Empezar»", "message": "escribió desde un anuncio"}


class LinksRefused(ConsoleError):
    """A refusal an admin can act on (`message_es` is shown; bot/errors.py gives the status of `reason_code`)."""


def links_of(request: Request) -> LinksStore:
    store: LinksStore | None = getattr(request.app.state, "links_store", None)
    if store is None:
        raise LinksRefused("links_unavailable", "Los enlaces m.me no están disponibles; intente en un momento.")
    return store


async def _call(request: Request, method: str, *args: Any) -> Any:
    """A store method off the event loop; a database that is down is a 503 the admin can retry."""
    try:
        return await run_in_threadpool(getattr(links_of(request), method), *args)
    except DatabaseUnavailable as exc:
        raise LinksRefused("links_unavailable", "La base de datos de los enlaces no responde; intente en un "
                                                "momento.") from exc


async def links_view(request: Request) -> dict[str, Any]:
    """Every link with its URL and counters, refs no link has, and the configured pages with their usernames."""
    links: list[Link] = await _call(request, "links")
    counts = await _call(request, "counts")
    usernames: dict[str, str] = await _call(request, "page_usernames")
    unmatched = await _call(request, "unmatched_refs")
    rows = []
    for link in links:
        row = link.to_dict(usernames.get(link.page_id))
        used = counts.get(link.id)
        row["counts"] = used.to_dict() if used else {"referrals": 0, "people": 0, "new_contacts": 0}
        row["start_es"] = link.start.label_es() if link.start else "Solo registra la campaña"
        rows.append(row)
    return {"links": rows, "unmatched_refs": [ref.to_dict() for ref in unmatched],
            "pages": [{"page_id": page, "username": usernames.get(page)} for page in pages_of(request)]}


async def arrival_of(request: Request, page_id: str, user_id: str) -> dict[str, Any] | None:
    """The campaign a conversation arrived by (its first referral) and its latest one, for the conversation view;
    None without referrals. Never fails the view: a store that is down is logged and shows nothing."""
    store = getattr(request.app.state, "links_store", None)
    if store is None:
        return None
    try:
        referrals = await run_in_threadpool(store.conversation_referrals, page_id, user_id)
    except DatabaseUnavailable:
        log.warning("the links store did not answer for a conversation view", extra={"page_id": page_id})
        return None
    if not referrals:
        return None
    first, latest = referrals[0], referrals[-1]

    def described(referral: StoredReferral) -> dict[str, Any]:
        label = referral.link_name or referral.ref or "(sin referencia)"
        if referral.link_name:
            text = f"Llegó por el enlace «{label}»"
        elif referral.source == "ADS":
            text = f"Llegó por un anuncio (referencia «{label}»)" if referral.ref else "Llegó por un anuncio"
        else:
            text = f"Llegó con la referencia «{label}»"
        return {**referral.to_dict(), "label": label, "text_es": text,
                "source_es": SOURCES_ES.get(referral.source, referral.source),
                "via_es": VIA_ES.get(referral.via, referral.via)}

    return {"first": described(first), "latest": described(latest), "count": len(referrals)}


# --- routers -------------------------------------------------------------------------------------------------------


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    try:
        yield
    finally:
        store = getattr(app.state, "links_store", None)
        if store is not None:
            store.close()


pages = APIRouter(prefix="/console", tags=["console pages"], lifespan=_lifespan)
api = APIRouter(prefix="/api/console/links", tags=["console"])

AdminPage = Annotated[Principal, Depends(require_role("admin"))]
Admin = Annotated[Principal, Depends(require_role("admin"))]
AdminOrService = Annotated[Principal, Depends(require_role("admin", service=True))]
LinkId = Annotated[int, PathParam(ge=1, le=MAX_ID)]  # 422 beyond, on SQLite and PostgreSQL alike


class SwitchBody(BaseModel):
    enabled: bool


class UsernameBody(BaseModel):
    username: str = Field(min_length=1, max_length=60)


NO_MATRIX_WARNING = ("Todavía no hay una Matriz de Conocimientos publicada: no se pudo comprobar la entrada «{entry}». "
                     "El enlace la responderá cuando se publique una matriz que la tenga.")


async def check_start_entry(settings: Settings, new: NewLink) -> str | None:
    """A start that answers a matrix entry must name an entry of the live version: refused (422, naming it) when it
    does not; allowed with a warning (returned) when no matrix is published yet or the live one cannot be read."""
    entry_id = new.start.entry_id if new.start is not None else None
    if not entry_id:
        return None
    try:
        live = await run_in_threadpool(live_entries, settings.data_dir)
    except KnowledgeMatrixError:
        log.warning("the live knowledge version could not be read to check a link's entry", exc_info=True)
        return (f"No se pudo leer la Matriz de Conocimientos publicada para comprobar la entrada «{entry_id}»; "
                "revísela antes de compartir el enlace.")
    if live is None:
        return NO_MATRIX_WARNING.format(entry=entry_id)
    if entry_id not in live.ids:
        raise LinksRefused("link_invalid", f"La entrada «{entry_id}» no existe en la Matriz de Conocimientos "
                                           f"publicada (versión {live.version}). Revise el id (columna «id» de la "
                                           "matriz) o publique una matriz que la tenga.", field="start")
    return None


def check_start_intent_known(new: NewLink) -> str | None:
    """A start's intent must be one of the bot's (domain.yml, read once): refused (422, naming it) when it is not;
    allowed with a warning (returned) when the domain cannot be read."""
    intent = new.start.intent if new.start is not None else None
    if not intent:
        return None
    intents = bot_intents()
    if intents is None:
        return (f"No se pudo leer el dominio del bot (domain.yml) para comprobar la intención «{intent}»; revísela "
                "antes de compartir el enlace.")
    try:
        check_start_intent(new.start, intents)
    except LinkInvalid as exc:
        raise _invalid(exc) from exc
    return None


def _invalid(exc: LinkInvalid) -> LinksRefused:
    return LinksRefused("link_invalid", exc.message_es, field=exc.field)


@pages.get("/links", response_class=HTMLResponse)
async def links_page(request: Request, principal: AdminPage) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    return TEMPLATES.TemplateResponse(request, "console/links.html", {
        "user": principal, "csrf_token": principal.csrf_token, "is_production": settings.is_production,
        "is_demo": settings.is_demo, **await links_view(request)})


@api.get("")
async def list_links(request: Request, principal: AdminOrService) -> dict[str, Any]:
    return await links_view(request)


@api.post("")
async def create_link(request: Request, principal: AdminOrService,
                      body: Annotated[dict[str, Any], Body()]) -> JSONResponse:
    """Create a link: `name`, optional `ref` (made from the name), `page_id` (the only page when one is configured)
    and optional `start` (`{"intent": …}` or `{"entry_id": …}`: an entry of the live matrix; with none published the
    link is created with a `warning`)."""
    pages_configured = pages_of(request)
    if "page_id" not in body and len(pages_configured) == 1:
        body = {**body, "page_id": pages_configured[0]}
    try:
        new = parse_new_link(body)
    except LinkInvalid as exc:
        raise _invalid(exc) from exc
    if new.page_id not in pages_configured:
        raise LinksRefused("link_invalid", f"La página {new.page_id} no está configurada.", field="page_id")
    warning = check_start_intent_known(new) or await check_start_entry(request.app.state.settings, new)
    try:
        link: Link = await _call(request, "create", new, principal.username, now_of(request))
    except RefInUse as exc:
        raise LinksRefused("ref_in_use", f"Esta página ya tiene un enlace con la referencia «{exc.ref}»; elija "
                                         "otra.", field="ref") from exc
    log.info("m.me link created", extra={"link_id": link.id, "page_id": link.page_id, "by": principal.username})
    usernames: dict[str, str] = await _call(request, "page_usernames")
    answer: dict[str, Any] = {"link": link.to_dict(usernames.get(link.page_id))}
    if warning is not None:
        answer["warning"] = warning
    return JSONResponse(answer, status_code=201)


async def _link(request: Request, link_id: int) -> Link:
    try:
        return await _call(request, "get", link_id)  # type: ignore[no-any-return]
    except UnknownLink as exc:
        raise LinksRefused("link_not_found", f"No existe el enlace {link_id}.") from exc


@api.patch("/{link_id}")
async def switch_link(link_id: LinkId, body: SwitchBody, request: Request, principal: Admin) -> dict[str, Any]:
    """Switch a link off (`{"enabled": false}`: referrals are still counted, nothing starts) or on again."""
    await _link(request, link_id)
    link: Link = await _call(request, "set_enabled", link_id, body.enabled, principal.username, now_of(request))
    usernames: dict[str, str] = await _call(request, "page_usernames")
    return {"link": link.to_dict(usernames.get(link.page_id))}


@api.get("/{link_id}/qr.{fmt}")
async def link_qr(link_id: LinkId, fmt: str, request: Request, principal: AdminOrService) -> Response:
    """The link's QR code as a download: `qr.png` or `qr.svg`."""
    if fmt not in FORMATS:
        raise LinksRefused("link_not_found", "El código QR se descarga como PNG o SVG.")
    link = await _link(request, link_id)
    usernames: dict[str, str] = await _call(request, "page_usernames")
    data, media_type = qr_bytes(link.url(usernames.get(link.page_id)), fmt, link.name)
    return Response(data, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="qr-{link.ref[:80]}.{fmt}"'})


@api.put("/usernames/{page_id}")
async def set_page_username(page_id: str, body: UsernameBody, request: Request, principal: Admin) -> dict[str, Any]:
    """The page's username (facebook.com/<username>): its links read `https://m.me/<username>?ref=…`."""
    if page_id not in pages_of(request):
        raise LinksRefused("link_invalid", f"La página {page_id} no está configurada.", field="page_id")
    try:
        username = check_page_username(body.username)
    except LinkInvalid as exc:
        raise _invalid(exc) from exc
    await _call(request, "set_page_username", page_id, username, now_of(request))
    return {"page_id": page_id, "username": username}


def install(app: FastAPI, settings: Settings) -> None:
    """Open the links store (`LINKS_DB_URL`, else `<data_dir>/links.sqlite3`) and mount the page and the API."""
    app.state.links_store = open_links_store(settings.store_url("links"))
    app.include_router(pages)
    app.include_router(api)
