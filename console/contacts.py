"""The console's "Contactos": one record per person and page (profile, first seen, campaign, the 24-hour window and
the HUMAN_AGENT time left, tags, free fields, internal notes). Agents and admins find contacts and tag them, edit
their fields and add notes; admins also export and import them as CSV (console/contacts_csv.py).

The pages are `/console/contacts` and `/console/contacts/{page_id}/{psid}`; the same operations are JSON under
`/api/console/contacts` (agents and admins, and the service token), documented by the Pydantic models below, with
pagination by an opaque cursor. The records live in `contacts.store` (`app.state.contacts`, opened on first use when
the app did not open it); `contact_name_of` gives the conversation view the contact's name.

Mounted by `console.routes.install` (`install`), which owns the app's console; this module does not import it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path as FilePath
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from console.auth import Principal, require_role
from console.parts import ConsoleError, now_of, state_store
from contacts.model import (
    Contact,
    ContactInvalid,
    ContactNotFound,
    ContactPage,
    ContactQuery,
    Note,
    check_fields,
    check_note,
    check_page_id,
    check_psid,
    check_tag,
    check_tags,
)
from contacts.store import ContactsStore, open_contacts_store
from core.postgres import DatabaseUnavailable
from core.settings import Settings
from handoff.reply_window import duration_es
from outbox.policy import ReplyWindows

log = logging.getLogger(__name__)
T = TypeVar("T")

TEMPLATES = Jinja2Templates(directory=str(FilePath(__file__).parent / "templates"))

AGENTS = ("admin", "agent")
LIST_MAX = 200
PAGE_SIZE = 50  # the list page

PROFILE_STATUS_ES = {
    "pending": "Perfil pendiente de consultar en Facebook",
    "fetched": "Perfil leído de Facebook",
    "no_permission": "Sin permiso para leer el perfil",
    "unavailable": "Perfil no disponible por ahora",
}


# --- the app's pieces ----------------------------------------------------------------------------------


def contacts_of(request: Request) -> ContactsStore:
    """The app's contact store (`app.state.contacts`), opened at `settings.store_url("contacts")` when the app did
    not open it."""
    return state_store(request, "contacts", lambda settings: open_contacts_store(settings.store_url("contacts")))


def policy_of(request: Request) -> ReplyWindows | None:
    """The outbox policy the app sends by (`OUTBOX_POLICY_FILE`, through the app's outbox): the windows a contact
    shows are its RESPONSE and HUMAN_AGENT rules, as the store's "ventana abierta" filter reads them. None (the
    shipped policy) only where the app runs no outbox (tests of the console alone)."""
    outbox = getattr(request.app.state, "outbox", None)
    return outbox.reply_windows() if outbox is not None else None


async def _call(request: Request, method: str, *args: Any, **kwargs: Any) -> Any:
    """A store method off the event loop: a refused value is a 422 naming its field in Spanish, a database that is
    down a 503 the agent can retry."""
    store = contacts_of(request)
    try:
        return await run_in_threadpool(getattr(store, method), *args, **kwargs)
    except ContactInvalid as exc:
        raise invalid(exc) from exc
    except ContactNotFound as exc:
        raise not_found(exc.page_id, exc.psid) from exc
    except DatabaseUnavailable as exc:
        raise ConsoleError("contacts_unavailable", "La base de datos de los contactos no responde; intente en un "
                                                   "momento.") from exc


def invalid(exc: ContactInvalid) -> ConsoleError:
    return ConsoleError("contact_invalid", exc.message_es, field=exc.field)


def checked(check: Callable[..., T], *args: Any) -> T:
    """One of the model's checks (`contacts.model.check_*`), its refusal answered as a 422 in Spanish."""
    try:
        return check(*args)
    except ContactInvalid as exc:
        raise invalid(exc) from exc


def contact_key(page_id: str, psid: str) -> tuple[str, str]:
    return checked(check_page_id, page_id), checked(check_psid, psid)


def not_found(page_id: str, psid: str) -> ConsoleError:
    return ConsoleError("contact_not_found", f"No hay ningún contacto con el PSID {psid[:64]} en la página "
                                             f"{page_id[:64]}.")


async def contact_or_404(request: Request, page_id: str, psid: str) -> Contact:
    contact_key(page_id, psid)
    contact: Contact | None = await _call(request, "get", page_id, psid)
    if contact is None:
        raise not_found(page_id, psid)
    return contact


async def contact_summary_of(request: Request, page_id: str, psid: str) -> dict[str, Any] | None:
    """The conversation view's contact: its name ("Nombre Apellido", None when Meta gave none) and its page; None
    without a record. Never fails the view: a store that is down or an id no contact can have shows nothing."""
    try:
        check_page_id(page_id)
        check_psid(psid)
        contact: Contact | None = await run_in_threadpool(contacts_of(request).get, page_id, psid)
    except ContactInvalid:
        return None
    except DatabaseUnavailable:
        log.warning("the contact store did not answer for a conversation view", extra={"page_id": page_id})
        return None
    if contact is None:
        return None
    return {"name": contact.display_name if contact.first_name or contact.last_name else None,
            "url": contact_url(page_id, psid), "tags": list(contact.tags)}


# --- JSON shapes (the OpenAPI schema documents them) ---------------------------------------------------


class WindowOut(BaseModel):
    """When the page can still write to the person (the outbox policy's windows, from their last message)."""

    open: bool = Field(description="The standard 24-hour window is open: any reply goes out as RESPONSE.")
    standard_seconds_left: int | None = Field(description="Seconds left of the 24-hour window (None: closed).")
    standard_es: str = Field(description="The 24-hour window in Spanish.")
    human_agent_seconds_left: int | None = Field(
        description="Seconds left for a person to answer with the HUMAN_AGENT tag (None: no longer).")
    human_agent_es: str = Field(description="The HUMAN_AGENT time left in Spanish.")
    summary_es: str = Field(description="One line for a list.")


class ContactOut(BaseModel):
    page_id: str
    psid: str
    display_name: str = Field(description="«Nombre Apellido», or «Sin nombre (PSID …1234)».")
    has_name: bool
    first_name: str | None
    last_name: str | None
    profile_pic: str | None = Field(description="The profile picture's URL as Meta gave it (it expires).")
    picture_url: str | None = Field(
        description="The picture the console shows: `profile_pic` when it is an https address on Meta's picture "
                    "hosts (the only image hosts the console's Content-Security-Policy admits), else null.")
    locale: str | None
    profile_status: str = Field(description="pending | fetched | no_permission | unavailable")
    profile_status_es: str
    profile_reason: str | None = Field(description="Why the profile is missing, in Spanish.")
    profile_fetched_at: datetime | None
    first_seen_at: datetime | None
    last_user_message_at: datetime | None
    campaign: str | None = Field(description="The m.me `ref` they arrived by, or `ad:<id>`.")
    campaign_es: str | None
    tags: list[str]
    fields: dict[str, str]
    notes_count: int
    last_text: str | None = Field(default=None, description="The text of the person's last message (None: not text, "
                                                            "or never wrote).")
    message_count: int = Field(default=0, description="Messages the person wrote on this page.")
    window: WindowOut
    conversation_id: str
    url: str = Field(description="The contact's page in the console.")
    conversation_url: str


class ContactListOut(BaseModel):
    contacts: list[ContactOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; None on the last one.")
    total: int = Field(description="Contacts matching the filters, over every page.")


class ContactOneOut(BaseModel):
    contact: ContactOut


class NoteOut(BaseModel):
    id: int | str
    page_id: str
    psid: str
    text: str
    author: str
    created_at: datetime


class NotesOut(BaseModel):
    notes: list[NoteOut]


class NoteCreatedOut(BaseModel):
    note: NoteOut
    contact: ContactOut


class TagCountOut(BaseModel):
    tag: str
    count: int


class TagsOut(BaseModel):
    tags: list[TagCountOut]


class TagsBody(BaseModel):
    """Tags to add (kept once: «Cliente VIP» and «cliente vip» are the same tag)."""

    tags: list[Annotated[str, Field(max_length=200)]] = Field(min_length=1, max_length=200,
                                                               examples=[["Cliente VIP", "Quito"]])


class FieldsBody(BaseModel):
    """Free fields to set; a null value deletes the field. Keys: lowercase letters, digits and `_`."""

    fields: dict[Annotated[str, Field(max_length=100)], Annotated[str, Field(max_length=2000)] | None] = Field(
        min_length=1, max_length=200, examples=[{"ciudad": "Quito", "pedido": None}])


class NoteBody(BaseModel):
    """An internal note: only the team sees it, never the customer."""

    text: str = Field(min_length=1, max_length=20000, examples=["Prefiere que le escriban por la tarde."])


def window_view(contact: Contact, now: datetime, policy: ReplyWindows | None = None) -> WindowOut:
    """The windows by `policy` (the app's outbox policy; the shipped one when None)."""
    standard = contact.standard_window_left(now, policy)
    human = contact.human_agent_left(now, policy)
    wrote = contact.last_user_message_at is not None
    standard_es = (f"Quedan {duration_es(standard)} de la ventana de 24 h" if standard is not None
                   else "Ventana de 24 h cerrada" if wrote else "Nunca escribió a la página")
    human_es = (f"Un agente puede responder con la etiqueta HUMAN_AGENT durante {duration_es(human)} más"
                if human is not None else "Ya no se puede responder con la etiqueta HUMAN_AGENT" if wrote
                else "Sin conversación: no se le puede escribir")
    if standard is not None:
        summary = f"Abierta: quedan {duration_es(standard)}"
    elif human is not None:
        summary = f"Solo un agente (HUMAN_AGENT): {duration_es(human)}"
    else:
        summary = "Cerrada" if wrote else "Nunca escribió"
    return WindowOut(open=standard is not None, standard_seconds_left=_seconds(standard), standard_es=standard_es,
                     human_agent_seconds_left=_seconds(human), human_agent_es=human_es, summary_es=summary)


def _seconds(span: timedelta | None) -> int | None:
    return int(span.total_seconds()) if span is not None else None


def campaign_es(campaign: str | None) -> str | None:
    if not campaign:
        return None
    if campaign.startswith("ad:"):
        return f"Anuncio {campaign.removeprefix('ad:')}"
    return f"Enlace m.me «{campaign}»"


def contact_url(page_id: str, psid: str) -> str:
    return f"/console/contacts/{page_id}/{psid}"


# Where Meta serves profile pictures (User Profile API `profile_pic`): the console's CSP admits these for images and
# nothing else from outside (console/routes.py SECURITY_HEADERS).
META_PICTURE_HOSTS = ("platform-lookaside.fbsbx.com",)
META_PICTURE_HOST_SUFFIXES = (".fbcdn.net",)


def shown_picture(url: str | None) -> str | None:
    """The profile picture to show: an https URL on Meta's picture hosts; anything else (the sandbox's placeholder,
    a URL that is not Meta's) is not loaded — the contact page links it instead."""
    if not url:
        return None
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or parts.port not in (None, 443) or parts.username or parts.password:
        return None
    if host in META_PICTURE_HOSTS or host.endswith(META_PICTURE_HOST_SUFFIXES):
        return url
    return None


def contact_view(contact: Contact, now: datetime, policy: ReplyWindows | None = None) -> ContactOut:
    conversation_id = f"{contact.page_id}:{contact.psid}"
    return ContactOut(
        page_id=contact.page_id, psid=contact.psid, display_name=contact.display_name,
        has_name=bool(contact.first_name or contact.last_name), first_name=contact.first_name,
        last_name=contact.last_name, profile_pic=contact.profile_pic, picture_url=shown_picture(contact.profile_pic),
        locale=contact.locale,
        profile_status=contact.profile_status,
        profile_status_es=PROFILE_STATUS_ES.get(contact.profile_status, contact.profile_status),
        profile_reason=contact.profile_reason if contact.profile_status != "fetched" else None,
        profile_fetched_at=contact.profile_fetched_at, first_seen_at=contact.first_seen_at,
        last_user_message_at=contact.last_user_message_at, campaign=contact.campaign,
        campaign_es=campaign_es(contact.campaign), tags=list(contact.tags), fields=dict(contact.fields),
        notes_count=contact.notes_count, last_text=contact.last_text, message_count=contact.message_count,
        window=window_view(contact, now, policy), conversation_id=conversation_id,
        url=contact_url(contact.page_id, contact.psid), conversation_url=f"/console/conversations/{conversation_id}")


def viewed(request: Request, contact: Contact, now: datetime | None = None) -> ContactOut:
    """`contact_view` at `now` (the console's clock when None) by the app's policy."""
    return contact_view(contact, now or now_of(request), policy_of(request))


def note_view(note: Note) -> NoteOut:
    return NoteOut(id=note.id, page_id=note.page_id, psid=note.psid, text=note.text, author=note.author,
                   created_at=note.created_at)


# --- routes --------------------------------------------------------------------------------------------

router = APIRouter(tags=["console: contactos"])
API = "/api/console/contacts"

AgentPage = Annotated[Principal, Depends(require_role(*AGENTS))]
AgentOrService = Annotated[Principal, Depends(require_role(*AGENTS, service=True))]
# Checked by the model (check_page_id, check_psid: a 422 in Spanish); the length caps only bound what is read.
PageId = Annotated[str, Path(max_length=100)]
Psid = Annotated[str, Path(max_length=100)]
Filter = Annotated[str | None, Query(max_length=2200)]


def contact_query(request: Request, page_id: str | None, q: str | None, tag: str | None, campaign: str | None,
                  window_open: bool, limit: int, cursor: str | None) -> ContactQuery:
    """The filters as the model checks them (a blank filter is no filter)."""
    def cleaned(value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    return checked(ContactQuery, cleaned(page_id), cleaned(q), cleaned(tag), cleaned(campaign),
                   now_of(request) if window_open else None, limit, cursor or None)


async def search(request: Request, query: ContactQuery) -> ContactPage:
    return await _call(request, "search", query)  # type: ignore[no-any-return]


@router.get("/console/contacts", response_class=HTMLResponse)
async def contacts_page(request: Request, principal: AgentPage, q: Filter = None, tag: Filter = None,
                        campaign: Filter = None, window_open: bool = False, page_id: Filter = None,
                        cursor: Filter = None) -> HTMLResponse:
    query = contact_query(request, page_id, q, tag, campaign, window_open, PAGE_SIZE, cursor)
    found = await search(request, query)
    tags = await _call(request, "all_tags", query.page_id)
    now = now_of(request)
    settings: Settings = request.app.state.settings
    filters = {"q": query.text or "", "tag": query.tag or "", "campaign": query.campaign or "",
               "window_open": window_open, "page_id": query.page_id or "", "paged": bool(cursor)}
    return TEMPLATES.TemplateResponse(request, "console/contacts.html", {
        "user": principal, "csrf_token": principal.csrf_token, "is_production": settings.is_production,
        "is_demo": settings.is_demo,
        "contacts": [viewed(request, c, now).model_dump(mode="json") for c in found.contacts],
        "next_cursor": found.next_cursor, "total": found.total, "all_tags": [tag for tag, _ in tags],
        "pages": sorted(settings.page_tokens), "filters": filters})


@router.get("/console/contacts/{page_id}/{psid}", response_class=HTMLResponse)
async def contact_page(page_id: PageId, psid: Psid, request: Request, principal: AgentPage) -> HTMLResponse:
    contact = await contact_or_404(request, page_id, psid)
    notes: list[Note] = await _call(request, "notes", page_id, psid)
    settings: Settings = request.app.state.settings
    view = viewed(request, contact).model_dump(mode="json")
    return TEMPLATES.TemplateResponse(request, "console/contact.html", {
        "user": principal, "csrf_token": principal.csrf_token, "is_production": settings.is_production,
        "is_demo": settings.is_demo, "contact": view,
        "notes": [note_view(note).model_dump(mode="json") for note in notes]})


@router.get(API, response_model=ContactListOut)
async def list_contacts(
    request: Request, principal: AgentOrService,
    q: Annotated[str | None, Query(max_length=2200, description="Name, PSID, tag, field value or the last message's "
                                                                "text (accents and case do not matter).")] = None,
    tag: Filter = None, campaign: Filter = None,
    window_open: Annotated[bool, Query(description="Only people whose 24-hour window is open now.")] = False,
    page_id: Filter = None,
    limit: Annotated[int, Query(ge=1, le=LIST_MAX)] = 50,
    cursor: Annotated[str | None, Query(max_length=2200, description="`next_cursor` of the previous page.")] = None,
) -> ContactListOut:
    """Contacts matching the filters (all together), a page at a time."""
    found = await search(request, contact_query(request, page_id, q, tag, campaign, window_open, limit, cursor))
    now = now_of(request)
    return ContactListOut(contacts=[viewed(request, c, now) for c in found.contacts],
                          next_cursor=found.next_cursor, total=found.total)


@router.get(API + "/{page_id}/{psid}", response_model=ContactOneOut)
async def get_contact(page_id: PageId, psid: Psid, request: Request, principal: AgentOrService) -> ContactOneOut:
    return ContactOneOut(contact=viewed(request, await contact_or_404(request, page_id, psid)))


@router.post(API + "/{page_id}/{psid}/tags", response_model=ContactOneOut)
async def add_tags(page_id: PageId, psid: Psid, body: TagsBody, request: Request,
                   principal: AgentOrService) -> ContactOneOut:
    """Add tags (1 to 40 characters each, at most 50 per contact); a tag the contact has already stays once."""
    tags = checked(check_tags, body.tags)
    contact_key(page_id, psid)
    now = now_of(request)
    contact: Contact = await _call(request, "add_tags", page_id, psid, tags, now)
    log.info("contact tagged", extra={"page_id": page_id, "tags": len(tags), "by": principal.username})
    return ContactOneOut(contact=viewed(request, contact, now))


@router.post(API + "/{page_id}/{psid}/tags/remove", response_model=ContactOneOut)
async def remove_tags(page_id: PageId, psid: Psid, body: TagsBody, request: Request,
                      principal: AgentOrService) -> ContactOneOut:
    """Remove tags given in the body (any tag, also «1/2 pollo» or «..», which a path cannot carry; written in any
    case, with or without accents); removing one it does not have changes nothing. The console uses this form."""
    tags = checked(check_tags, body.tags)
    contact_key(page_id, psid)
    now = now_of(request)
    contact: Contact = await _call(request, "remove_tags", page_id, psid, tags, now)
    log.info("contact untagged", extra={"page_id": page_id, "tags": len(tags), "by": principal.username})
    return ContactOneOut(contact=viewed(request, contact, now))


@router.delete(API + "/{page_id}/{psid}/tags/{tag}", response_model=ContactOneOut)
async def remove_tag(page_id: PageId, psid: Psid, tag: Annotated[str, Path(max_length=200)], request: Request,
                     principal: AgentOrService) -> ContactOneOut:
    """Remove a tag (written in any case, with or without accents); removing one it does not have changes nothing.
    A tag holding `/` or made of dots cannot travel in a path: use `POST …/tags/remove`."""
    checked_tag = checked(check_tag, tag, "tag")
    contact_key(page_id, psid)
    now = now_of(request)
    contact: Contact = await _call(request, "remove_tag", page_id, psid, checked_tag, now)
    return ContactOneOut(contact=viewed(request, contact, now))


@router.patch(API + "/{page_id}/{psid}/fields", response_model=ContactOneOut)
async def set_fields(page_id: PageId, psid: Psid, body: FieldsBody, request: Request,
                     principal: AgentOrService) -> ContactOneOut:
    """Set free fields (`{"ciudad": "Quito"}`) and delete others (`{"pedido": null}` or an empty value); the rest
    stay."""
    fields = checked(check_fields, body.fields)
    contact_key(page_id, psid)
    now = now_of(request)
    contact: Contact = await _call(request, "set_fields", page_id, psid, fields, now)
    log.info("contact fields set", extra={"page_id": page_id, "fields": sorted(fields), "by": principal.username})
    return ContactOneOut(contact=viewed(request, contact, now))


@router.get(API + "/{page_id}/{psid}/notes", response_model=NotesOut)
async def list_notes(page_id: PageId, psid: Psid, request: Request, principal: AgentOrService) -> NotesOut:
    """The contact's internal notes, newest first (the latest 500)."""
    await contact_or_404(request, page_id, psid)
    notes: list[Note] = await _call(request, "notes", page_id, psid)
    return NotesOut(notes=[note_view(note) for note in notes])


@router.post(API + "/{page_id}/{psid}/notes", response_model=NoteCreatedOut, status_code=201)
async def add_note(page_id: PageId, psid: Psid, body: NoteBody, request: Request,
                   principal: AgentOrService) -> JSONResponse:
    """Add an internal note (1 to 5000 characters; only the team sees it), signed by whoever wrote it."""
    text = checked(check_note, body.text)
    contact_key(page_id, psid)
    now = now_of(request)
    note: Note = await _call(request, "add_note", page_id, psid, text, principal.username, now)
    contact = await contact_or_404(request, page_id, psid)
    answer = NoteCreatedOut(note=note_view(note), contact=viewed(request, contact, now))
    return JSONResponse(answer.model_dump(mode="json"), status_code=201)


@router.get("/api/console/tags", response_model=TagsOut)
async def list_tags(request: Request, principal: AgentOrService, page_id: Filter = None) -> TagsOut:
    """Every tag in use with how many contacts have it (on one page with `page_id`)."""
    page = checked(check_page_id, page_id.strip()) if page_id and page_id.strip() else None
    tags = await _call(request, "all_tags", page)
    return TagsOut(tags=[TagCountOut(tag=tag, count=count) for tag, count in tags])


def install(app: FastAPI) -> None:
    """Mount the pages and the API (the store is the app's, or opened on first use)."""
    app.include_router(router)
