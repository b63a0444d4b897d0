"""The console's inbox of every conversation ("Bandeja de entrada"): not only the paused ones.

A conversation is a contact who wrote (`contacts.store.ContactsStore.inbox`: newest last message first, a cursor
that never repeats a row) joined with its handoff state (`Handoff.states_of`: one read per page of rows; a
conversation the bot always handled has no handoff row). The state filters run on the handoff side first
(`Handoff.conversation_ids`), then restrict the contacts' query: "paused", "mine" and "unassigned" keep to the
paused ids, "closed" to the conversations paused once and given back to the bot, "bot" leaves the paused ids out.
Tag, campaign, open window and the search (name, PSID, tag, field value, last message) are the contacts' own
filters.

Unread: the person wrote after the last time any agent opened the conversation (its page or its API:
`mark_read`). The latest look lives on the contact's row (`ContactsStore.mark_read`: when, and the contact's message
count then, the outbox's, copied by the contacts' sync), so a row shows how many messages came since
(`unread_count`; a look saved before the counter existed shows 1 when unread), and `unread_conversations`, the unread
conversations of the whole filter (never a page), is one count in the contacts store with the list's own filters
(`ContactPage.unread`): no read mark is walked. The looks the console store kept before (`ConsoleStore.read_marks`)
are copied there once, on the first inbox a process lists (`copy_console_reads`).
Live: the contacts' sync tells the console's event hub of each person who wrote (`contact_seen`,
`contact_listener`), and the handoff's own events (paused, resumed, assigned) come through the same hub; the page
reloads its first page of rows on either.

The paused-only list of `/console/inbox` stays what it was (the "Pausadas" filter, the default); the other filters
are `/console/inbox?estado=...` and `GET /api/console/inbox`. The row shows the person's last message (the
contacts store keeps its text, from the outbox; the handoff's for a paused conversation when the contact has none).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from console import contacts as contact_pages
from console.auth import Principal, authenticator_of, require_role
from console.events import EventHub
from console.parts import PAUSE_REASONS_ES, ConsoleError, handoff_of
from contacts.model import Contact, ContactInvalid, ContactPage, ContactQuery
from core.postgres import DatabaseUnavailable
from handoff.model import (
    ConsoleEvent,
    Conversation,
    ConversationState,
    PauseReason,
    conversation_id_of,
)
from handoff.reply_window import duration_es

log = logging.getLogger(__name__)

AGENTS = ("admin", "agent")
LIST_MAX = 200
PAGE_SIZE = 50
CONTACT_SEEN = "contact_seen"  # the event the contacts' sync publishes through the console's hub
CONSOLE_READS = "console_reads"  # the contacts store's note that the console's old read marks were copied


@dataclass(frozen=True)
class StateFilter:
    label_es: str
    state: ConversationState | None = None  # the handoff side's state, None: no handoff filter
    assignment: str = "any"  # "any" | "mine" | "none"
    exclude: bool = False  # True: leave the ids in `state` out ("bot": no paused row)


# The inbox's state filters, in the order the page offers them ("paused" is the page's default).
STATES: dict[str, StateFilter] = {
    "paused": StateFilter("Pausadas (las atiende una persona)", ConversationState.PAUSED),
    "mine": StateFilter("Asignadas a mí", ConversationState.PAUSED, "mine"),
    "unassigned": StateFilter("Pausadas sin asignar", ConversationState.PAUSED, "none"),
    "all": StateFilter("Todas"),
    "bot": StateFilter("Las atiende el chatbot", ConversationState.PAUSED, exclude=True),
    "closed": StateFilter("Cerradas (devueltas al chatbot)", ConversationState.BOT),
}
PAGE_DEFAULT = "paused"
API_DEFAULT = "all"


def state_filter(name: str) -> StateFilter:
    try:
        return STATES[name]
    except KeyError:
        raise ConsoleError("inbox_filter_invalid", "El filtro de estado debe ser uno de: " + ", ".join(STATES) + ".",
                           field="state") from None


def state_es(conversation: Conversation | None) -> str:
    if conversation is None:
        return "Atiende el chatbot"
    if conversation.state is ConversationState.PAUSED:
        return "Chatbot en pausa"
    return "Cerrada: atiende el chatbot"


def unread_count(contact: Contact) -> int:
    """How many messages the person wrote since an agent last opened the conversation: 0 when it is read (by time:
    the counter may lag behind the look), else the messages since (all of them when never opened), at least 1
    (a look or a contact from before the counter: 1)."""
    if not contact.is_unread:
        return 0
    if contact.read_at is None:
        return max(1, contact.message_count)
    if contact.read_message_count is None or contact.message_count <= 0:
        return 1
    return max(1, contact.message_count - contact.read_message_count)


# --- JSON shapes ---------------------------------------------------------------------------------------


class InboxRow(BaseModel):
    id: str = Field(description="The conversation id, `<page_id>:<psid>`.")
    page_id: str
    user_id: str
    contact_name: str = Field(description="«Nombre Apellido», or «Sin nombre (PSID …1234)».")
    has_name: bool
    tags: list[str]
    campaign: str | None
    campaign_es: str | None
    state: str = Field(description="bot | paused (the handoff's state; bot when it never was paused)")
    state_es: str
    closed: bool = Field(description="Paused once and given back to the chatbot.")
    assigned_to: str | None
    paused_reason_es: str | None
    waiting_es: str | None = Field(description="How long it has been paused.")
    last_user_message_at: datetime | None
    last_message_text: str | None = Field(description="The text of the person's last message (None: it was not "
                                                      "text, or not known yet).")
    window_open: bool
    window_es: str
    unread: bool = Field(description="The person wrote after an agent last opened the conversation.")
    unread_count: int = Field(description="Messages the person wrote since an agent last opened the conversation "
                                          "(0: read; 1 at least when unread).")
    message_count: int = Field(description="Messages the person wrote on this page (since the counter exists).")
    read_at: datetime | None
    url: str
    contact_url: str


class InboxOut(BaseModel):
    conversations: list[InboxRow]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; None on the last one.")
    total: int = Field(description="Conversations matching the filters, over every page.")
    unread: int = Field(description="Unread conversations on this page of rows.")
    unread_conversations: int = Field(description="Conversations matching the filters (over every page) with "
                                                  "unread messages.")
    state: str
    now: datetime


# --- the join --------------------------------------------------------------------------------------------


async def restriction(request: Request, chosen: StateFilter, username: str) -> tuple[set[str] | None, set[str]]:
    """(only these ids or None for any, leave these out) from the handoff side."""
    if chosen.state is None:
        return None, set()
    service: Any = handoff_of(request)
    ids: set[str] = await service.conversation_ids(chosen.state, assigned_to=username if chosen.assignment == "mine"
                                                   else None, unassigned=chosen.assignment == "none")
    return (None, ids) if chosen.exclude else (ids, set())


def row_view(contact: Contact, conversation: Conversation | None, now: datetime, request: Request,
             reasons_es: Mapping[PauseReason, str]) -> InboxRow:
    conversation_id = conversation_id_of(contact.page_id, contact.psid)
    window = contact_pages.window_view(contact, now, contact_pages.policy_of(request))
    paused = conversation if conversation is not None and conversation.state is ConversationState.PAUSED else None
    reason = paused.paused_reason if paused else None
    waiting = now - paused.paused_at if paused and paused.paused_at else None
    return InboxRow(
        id=conversation_id, page_id=contact.page_id, user_id=contact.psid, contact_name=contact.display_name,
        has_name=bool(contact.first_name or contact.last_name), tags=list(contact.tags), campaign=contact.campaign,
        campaign_es=contact_pages.campaign_es(contact.campaign),
        state=(ConversationState.PAUSED if paused else ConversationState.BOT).value, state_es=state_es(conversation),
        closed=conversation is not None and paused is None,
        assigned_to=paused.assigned_to if paused else None,
        paused_reason_es=reasons_es.get(reason, reason.value) if reason else None,
        waiting_es=duration_es(waiting) if waiting is not None else None,
        last_user_message_at=contact.last_user_message_at,
        last_message_text=contact.last_text or (paused.last_message_text if paused else None),
        window_open=window.open, window_es=window.summary_es,
        unread=contact.is_unread, unread_count=unread_count(contact),
        message_count=contact.message_count, read_at=contact.read_at,
        url=f"/console/conversations/{conversation_id}",
        contact_url=contact_pages.contact_url(contact.page_id, contact.psid))


async def list_inbox(request: Request, principal: Principal, state: str, query: ContactQuery) -> InboxOut:
    chosen = state_filter(state)
    only, exclude = await restriction(request, chosen, principal.username)
    now = authenticator_of(request).clock()
    if only is not None and not only:
        found = ContactPage([], None, 0)
    else:
        await copy_console_reads(request, now)
        found = await contact_store_call(request, "inbox", query, only, exclude)
    ids = [conversation_id_of(c.page_id, c.psid) for c in found.contacts]
    service: Any = handoff_of(request)
    states: dict[str, Conversation] = await service.states_of(ids) if ids else {}
    rows = [row_view(contact, states.get(cid), now, request, PAUSE_REASONS_ES)
            for contact, cid in zip(found.contacts, ids, strict=True)]
    return InboxOut(conversations=rows, next_cursor=found.next_cursor, total=found.total,
                    unread=sum(row.unread for row in rows), unread_conversations=found.unread, state=state, now=now)


async def copy_console_reads(request: Request, now: datetime) -> None:
    """Once: the looks the console store kept before they lived on the contacts (`ConsoleStore.read_marks`), copied
    to the contacts store a chunk at a time (a look older than the contact's own changes nothing), then noted there
    (`CONSOLE_READS` in its sync cursors) so no process copies them again. A store that is away: tried again on the
    next list."""
    if getattr(request.app.state, "inbox_reads_copied", False):
        return
    contacts, console_store = contact_pages.contacts_of(request), authenticator_of(request).store

    def copy() -> None:
        if contacts.sync_cursor(CONSOLE_READS) is not None:
            return
        for chunk in console_store.read_marks():
            marks = []
            for conversation_id, mark in chunk.items():
                page_id, sep, psid = conversation_id.partition(":")
                if sep:
                    marks.append((page_id, psid, mark.read_at, mark.message_count))
            contacts.copy_read_marks(marks)
        contacts.save_sync_cursor(now, CONSOLE_READS)

    try:
        await run_in_threadpool(copy)
    except DatabaseUnavailable:
        log.warning("console read marks not copied to the contacts yet")
        return
    request.app.state.inbox_reads_copied = True


async def contact_store_call(request: Request, method: str, *args: Any) -> ContactPage:
    return await contact_pages._call(request, method, *args)  # type: ignore[no-any-return]


def inbox_query(request: Request, q: str | None, tag: str | None, campaign: str | None, window_open: bool,
                page_id: str | None, limit: int, cursor: str | None) -> ContactQuery:
    return contact_pages.contact_query(request, page_id, q, tag, campaign, window_open, limit, cursor)


async def mark_read(request: Request, conversation_id: str, principal: Principal) -> None:
    """An agent opened the conversation (its page or its API): what the person wrote until now is read. The service
    token reads without marking; a contacts store that is down only costs the mark (as does a contact the sync has
    not copied yet)."""
    if principal.is_service:
        return
    at = authenticator_of(request).clock()  # before the count is read: a message that arrives meanwhile stays unread
    count = await message_count_of(request, conversation_id)
    page_id, _, psid = conversation_id.partition(":")
    try:
        await run_in_threadpool(contact_pages.contacts_of(request).mark_read, page_id, psid, at, count)
    except DatabaseUnavailable:
        log.warning("conversation read mark not saved", extra={"conversation_id": conversation_id[:140]})


async def message_count_of(request: Request, conversation_id: str) -> int | None:
    """The contact's message count (None: unknown contact, or the contacts store away: the look is kept without)."""
    page_id, _, psid = conversation_id.partition(":")
    try:
        contact = await run_in_threadpool(contact_pages.contacts_of(request).get, page_id, psid)
    except (DatabaseUnavailable, ContactInvalid):
        log.warning("message count unknown at a read mark", extra={"conversation_id": conversation_id[:140]})
        return None
    return contact.message_count if contact is not None and contact.message_count > 0 else None


# --- the page's part -------------------------------------------------------------------------------------


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "si", "sí", "on"}


async def page_context(request: Request, principal: Principal) -> dict[str, Any]:
    """What `/console/inbox` adds to the paused list: the filters chosen (`?estado=&q=&tag=&campaign=&ventana=`),
    and, unless that is the paused list itself, one page of rows."""
    params = request.query_params

    def text(name: str) -> str | None:
        value = params.get(name)
        if value is not None and len(value) > 2200:
            raise ConsoleError("inbox_filter_invalid", "Un filtro de la bandeja es demasiado largo.", field=name)
        return value

    state = (text("estado") or PAGE_DEFAULT).strip()
    state_filter(state)
    window_open = _flag(text("ventana"))
    query = inbox_query(request, text("q"), text("tag"), text("campaign"), window_open, None, PAGE_SIZE,
                        text("cursor") or None)
    filters = {"estado": state, "q": query.text or "", "tag": query.tag or "", "campaign": query.campaign or "",
               "ventana": window_open, "paged": query.after is not None}
    states = [{"value": name, "label": chosen.label_es} for name, chosen in STATES.items()]
    plain_paused = state == PAGE_DEFAULT and not (query.text or query.tag or query.campaign or window_open
                                                  or query.after)
    context: dict[str, Any] = {"inbox_filters": filters, "inbox_states": states, "inbox_all": not plain_paused}
    if not plain_paused:
        found = await list_inbox(request, principal, state, query)
        context["inbox"] = found.model_dump(mode="json")
    return context


# --- live: the contacts' sync through the console's hub --------------------------------------------------


def contact_listener(hub_of_app: Callable[[], EventHub | None]) -> Callable[[str, str, datetime], None]:
    """The contacts' sync's `on_seen`: a `contact_seen` event on the console's hub (when it runs) for each person
    whose last message moved, so an open inbox brings that row up."""

    def seen(page_id: str, psid: str, at: datetime) -> None:
        hub = hub_of_app()
        if hub is not None:
            hub.publish(ConsoleEvent(CONTACT_SEEN, conversation_id_of(page_id, psid), at,
                                     {"last_user_message_at": at.isoformat()}))

    return seen


def listen_to_contacts(app: FastAPI) -> None:
    """Hook the app's contacts' sync (if it runs) to the console's hub: called from the console's lifespan."""
    sync = getattr(app.state, "contact_sync", None)
    if sync is not None and getattr(sync, "on_seen", None) is None:
        sync.on_seen = contact_listener(lambda: getattr(app.state, "console_hub", None))


# --- routes ----------------------------------------------------------------------------------------------

router = APIRouter(tags=["console"])
AgentOrService = Annotated[Principal, Depends(require_role(*AGENTS, service=True))]
Filter = Annotated[str | None, Query(max_length=2200)]


@router.get("/api/console/inbox", response_model=InboxOut)
async def inbox(
    request: Request, principal: AgentOrService,
    state: Annotated[str, Query(max_length=40, description="all | bot | paused | mine | unassigned | closed")]
    = API_DEFAULT,
    q: Annotated[str | None, Query(max_length=2200, description="Name, PSID, tag, field value or the last message's "
                                                                "text (accents and case do not matter).")] = None,
    tag: Filter = None, campaign: Filter = None,
    window_open: Annotated[bool, Query(description="Only people whose 24-hour window is open now.")] = False,
    page_id: Filter = None,
    limit: Annotated[int, Query(ge=1, le=LIST_MAX)] = PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=2200, description="`next_cursor` of the previous page.")] = None,
) -> InboxOut:
    """Every conversation (a person who wrote), newest last message first, with its handoff state, its last
    message, and how many messages are unread; `unread_conversations` counts the unread ones of the whole filter.
    Filters all together."""
    query = inbox_query(request, q, tag, campaign, window_open, page_id, limit, cursor)
    return await list_inbox(request, principal, state.strip(), query)


def install(app: FastAPI) -> None:
    app.include_router(router)


__all__ = ["STATES", "contact_listener", "copy_console_reads", "install", "list_inbox", "listen_to_contacts",
           "mark_read", "page_context", "unread_count"]
