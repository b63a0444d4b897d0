"""The console's "Transmisiones" (broadcasts): an admin composes a message (text, image, buttons, quick replies),
picks its audience (tags, fields, campaign, last interaction), sees beforehand who will get it and why the others
will not (the dry run, "Vista previa de envío"), sends it now or schedules it, and reads its report (sent,
delivered, read, skipped by reason, failed by error code), downloads the failed ones as CSV and retries those that
may still be sent.

Pages: `/console/broadcasts` (list), `/console/broadcasts/new` and `/console/broadcasts/{id}/edit` (compose),
`/console/broadcasts/{id}` (report, refreshed while it sends). JSON: `/api/console/broadcasts...` (admins and the
service token; agents and editors are refused), documented by the Pydantic models below. The work is the
broadcasts package's (`broadcasts.service.Broadcasts`, `app.state.broadcasts`, opened and run by bot/app.py): this
module only checks the request, calls it and shapes the answer. Its refusals (`BroadcastInvalid` naming the field,
`BroadcastNotFound`, `BroadcastStateError`) are answered by the app's one error table (core/errors.py).

Mounted by `console.routes.install` (`install`); this module does not import it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from broadcasts.model import BROADCAST_TAGS, STATUS_ES, Broadcast, BroadcastDraft, BroadcastStatus, DryRun, Report
from broadcasts.report import reasons_for
from broadcasts.service import Broadcasts
from console.attachments import upload_to_page
from console.auth import Principal, require_role
from console.contacts import contacts_of
from console.parts import MAX_ID, ConsoleError, now_of, pages_of
from core.postgres import DatabaseUnavailable
from core.settings import Settings
from handoff.reply_window import duration_es
from knowledge_matrix.errors import KnowledgeMatrixError
from knowledge_matrix.publish import live_entries
from links.intents import bot_intents
from links.model import LinkInvalid, Start, check_start_intent

log = logging.getLogger(__name__)

TEMPLATES = Jinja2Templates(directory=str(FilePath(__file__).parent / "templates"))
API = "/api/console/broadcasts"
LIST_MAX = 100

# The message tags an admin may claim for non-promotional content, in the compose page's words.
MESSAGE_TAGS_ES = {
    "CONFIRMED_EVENT_UPDATE": "Actualización de un evento confirmado (CONFIRMED_EVENT_UPDATE)",
    "POST_PURCHASE_UPDATE": "Actualización posterior a la compra (POST_PURCHASE_UPDATE)",
    "ACCOUNT_UPDATE": "Actualización de la cuenta (ACCOUNT_UPDATE)",
    "CUSTOMER_FEEDBACK": "Encuesta de satisfacción (CUSTOMER_FEEDBACK)",
}
assert set(MESSAGE_TAGS_ES) <= BROADCAST_TAGS  # HUMAN_AGENT is a person's reply, never a broadcast
NO_TAG_ES = ("Meta retiró esa etiqueta de mensaje o no sirve para transmisiones: ya no se puede usar. Elija «Sin "
             "etiqueta»: la recibirán quienes escribieron a la página en las últimas 24 horas.")


def broadcasts_of(request: Request) -> Broadcasts:
    service: Broadcasts | None = getattr(request.app.state, "broadcasts", None)
    if service is None:
        raise ConsoleError("broadcasts_unavailable", "Las transmisiones no están disponibles; intente en un momento.")
    return service


async def _call(request: Request, method: str, *args: Any, **kwargs: Any) -> Any:
    """A service call; a database that is down is a 503 the admin can retry (the service's own refusals pass on to
    the app's error table)."""
    try:
        return await getattr(broadcasts_of(request), method)(*args, **kwargs)
    except DatabaseUnavailable as exc:
        raise ConsoleError("broadcasts_unavailable", "La base de datos de las transmisiones no responde; intente en "
                                                     "un momento.") from exc


def usable_tags(request: Request) -> dict[str, str]:
    """The message tags the compose page offers: those the outbox's policy lets a broadcast use today (its
    retirement dates, OUTBOX_RETIRED_TAGS_UNTIL), in the page's words."""
    service: Broadcasts | None = getattr(request.app.state, "broadcasts", None)
    usable = service.usable_tags(now_of(request)) if service is not None else []
    return {tag: words for tag, words in MESSAGE_TAGS_ES.items() if tag in usable}


# --- JSON shapes (the OpenAPI schema documents them) ---------------------------------------------------------------
# The caps below only bound what is read; the broadcasts model checks the values and says what is wrong, in Spanish,
# naming the field (`content.quick_replies[0].title`).


class StartIn(BaseModel):
    """What a tap starts in the chatbot: one of its intents (`{"intent": "menu"}`) or the answer of a knowledge
    matrix entry (`{"entry_id": "horario"}`), as m.me links do."""

    intent: str | None = Field(default=None, max_length=200, examples=["greet"])
    entry_id: str | None = Field(default=None, max_length=200, examples=["horario"])


class ButtonIn(BaseModel):
    """A button under the text (at most 3): opens an https address (`url`) or starts an intent or entry (`start`)."""

    title: str = Field(max_length=200, examples=["Ver el menú"])
    url: str | None = Field(default=None, max_length=2200, examples=["https://example.com/menu"])
    start: StartIn | None = None


class QuickReplyIn(BaseModel):
    """An answer the person can tap (at most 13, titles of at most 20 characters); without `start` the bot reads the
    title as if typed."""

    title: str = Field(max_length=200, examples=["Sí, quiero"])
    start: StartIn | None = None


class ImageIn(BaseModel):
    """The image sent before the text: `attachment_id` from `POST /api/console/broadcasts/images`, or a public
    `url` (https) Meta fetches. One of the two."""

    attachment_id: str | None = Field(default=None, max_length=200)
    url: str | None = Field(default=None, max_length=2200)


class ContentIn(BaseModel):
    """The message: a text (at most 2000 characters; 640 with buttons), an image, or both."""

    text: str | None = Field(default=None, max_length=20000, examples=["¡Hola! Esta semana el almuerzo es 2×1."])
    image: ImageIn | None = None
    buttons: list[ButtonIn] = Field(default_factory=list, max_length=20)
    quick_replies: list[QuickReplyIn] = Field(default_factory=list, max_length=50)


class AudienceIn(BaseModel):
    """Who gets it (every condition together; none: every contact of the page)."""

    tags_any: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list, max_length=200, description="Has at least one of these tags.", examples=[["Cliente VIP"]])
    tags_none: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list, max_length=200, description="Has none of these tags.")
    fields: dict[Annotated[str, Field(max_length=100)], Annotated[str, Field(max_length=2000)]] = Field(
        default_factory=dict, max_length=200, description="Field → value, equal ignoring case and accents.",
        examples=[{"ciudad": "Quito"}])
    campaign: str | None = Field(default=None, max_length=2200, description="The m.me `ref` or `ad:<id>` they "
                                                                            "arrived by.")
    last_interaction_after: str | None = Field(default=None, max_length=100, description="ISO 8601 with time zone: "
                                               "wrote to the page at or after this time.")
    last_interaction_before: str | None = Field(default=None, max_length=100, description="ISO 8601 with time "
                                                "zone: last wrote before this time.")


class DraftBody(BaseModel):
    """A broadcast to save as a draft (or to try in a dry run)."""

    page_id: str | None = Field(default=None, max_length=100,
                                description="The page that sends it (optional when one page is configured).")
    name: str = Field(max_length=2000, description="A name for the list, never shown to customers.",
                      examples=["Promoción de diciembre"])
    content: ContentIn
    audience: AudienceIn = Field(default_factory=AudienceIn)
    promotional: bool = Field(default=True, description="Offers, coupons, discounts: only to people who wrote in the "
                                                        "last 24 hours, never with a message tag.")
    tag: str | None = Field(default=None, max_length=100, description="A message tag for non-promotional content "
                                                                      "outside the 24 hours (the policy decides).")


class SendBody(BaseModel):
    send_at: datetime | None = Field(default=None, description="When to send (ISO 8601 with time zone); null: now.")


class BroadcastOut(BaseModel):
    id: int
    page_id: str
    name: str
    content: ContentIn
    audience: AudienceIn
    promotional: bool
    tag: str | None
    status: str = Field(description="draft | scheduled | sending | done | cancelled")
    status_es: str
    send_at: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cancelled_by: str | None
    editable: bool = Field(description="A draft: it can still be edited, deleted or sent.")
    url: str = Field(description="Its page in the console (the report once sent).")


class BroadcastOneOut(BaseModel):
    broadcast: BroadcastOut


class BroadcastListOut(BaseModel):
    broadcasts: list[BroadcastOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; None on the last one.")


class DeletedOut(BaseModel):
    deleted: int


class DryRunOut(BaseModel):
    audience: int = Field(description="Contacts matching the audience.")
    will_send: int = Field(description="How many would get it now.")
    outside_window: int = Field(description="Matching contacts whose 24-hour window is closed.")
    skipped: dict[str, int] = Field(description="Reason code → how many are left out for it.")
    reasons_es: dict[str, str] = Field(description="Reason code → why, in Spanish.")
    estimated_seconds: float = Field(description="How long sending takes at the page's rate.")
    estimated_es: str
    examples: dict[str, list[str]] = Field(description="Reason code → up to 5 names of people left out for it.")


class ReportOut(BaseModel):
    broadcast: BroadcastOut
    total: int = Field(description="Recipients planned so far (all of them once planning ended).")
    queued: int
    sent: int
    delivered: int
    read: int
    skipped: dict[str, int] = Field(description="Left out when planned, by reason code.")
    blocked: dict[str, int] = Field(description="Refused by the policy at send time, by reason code.")
    failed: dict[str, int] = Field(description="Refused by Meta, by error (`code 551`).")
    retryable: int = Field(description="Failed or blocked ones that may be sent again now.")
    reasons_es: dict[str, str] = Field(description="Every reason code above → why, in Spanish.")
    partial: int = Field(default=0, description="Not all sent but got part of the message (an image without its "
                                               "text); also counted above. A retry sends only the missing parts.")


class RetryOut(BaseModel):
    requeued: int
    still_refused: dict[str, int] = Field(description="Reason code → how many still may not be sent.")
    reasons_es: dict[str, str]


class ImageOut(BaseModel):
    page_id: str
    attachment_id: str = Field(description="Put it in `content.image.attachment_id`.")
    file_id: str
    filename: str
    preview_url: str = Field(description="The image as the console shows it.")


def broadcast_view(broadcast: Broadcast) -> BroadcastOut:
    return BroadcastOut.model_validate({**broadcast.to_dict(), "editable": broadcast.status is BroadcastStatus.DRAFT,
                                        "url": f"/console/broadcasts/{broadcast.id}"})


def dry_run_view(dry_run: DryRun) -> DryRunOut:
    seconds = max(0.0, dry_run.estimated_seconds)
    estimated = "menos de un segundo" if seconds < 1 else duration_es(timedelta(seconds=round(seconds)))
    return DryRunOut(**dry_run.to_dict(), estimated_es=estimated)


def report_view(report: Report) -> ReportOut:
    data = report.to_dict()
    return ReportOut(**{**data, "broadcast": broadcast_view(report.broadcast)})


# --- checks the model cannot make (they need the app's bot and matrix) ---------------------------------------------


def draft_of(request: Request, body: DraftBody) -> BroadcastDraft:
    """The body as the model checks it: the only page when none is named, a configured page, and every start an
    intent of the bot or an entry of the live matrix."""
    data = body.model_dump(mode="json", exclude_unset=True)
    pages = pages_of(request)
    if not data.get("page_id") and len(pages) == 1:
        data["page_id"] = pages[0]
    draft = BroadcastDraft.from_dict(data)
    if draft.page_id not in pages:
        raise ConsoleError("unknown_page", f"La página {draft.page_id[:40]} no está configurada.", field="page_id")
    if draft.tag is not None and draft.tag not in usable_tags(request):
        raise ConsoleError("broadcast_invalid", NO_TAG_ES, field="tag")
    content = draft.content
    starts = [(f"content.buttons[{index}].start", button.start) for index, button in enumerate(content.buttons)]
    starts += [(f"content.quick_replies[{index}].start", reply.start)
               for index, reply in enumerate(content.quick_replies)]
    for field, start in starts:
        if start is not None:
            check_start(request, field, start)
    return draft


def check_start(request: Request, field: str, start: Start) -> None:
    """An intent must be the bot's and an entry the live matrix's; when the domain or the matrix cannot be read,
    the start is kept (logged): the answer then is the bot's usual one."""
    if start.intent is not None:
        intents = bot_intents()
        if intents is not None:
            try:
                check_start_intent(start, intents)
            except LinkInvalid as exc:
                raise ConsoleError("broadcast_invalid", exc.message_es, field=field) from exc
        return
    try:
        live = live_entries(request.app.state.settings.data_dir)
    except KnowledgeMatrixError:
        log.warning("the live knowledge version could not be read to check a broadcast's entry", exc_info=True)
        return
    if live is not None and start.entry_id not in live.ids:
        raise ConsoleError("broadcast_invalid", f"La entrada «{start.entry_id}» no existe en la Matriz de "
                                                f"Conocimientos publicada (versión {live.version}). Revise el id "
                                                "(columna «id» de la matriz).", field=field)


# --- routes --------------------------------------------------------------------------------------------------------

router = APIRouter(tags=["console: transmisiones"])

AdminPage = Annotated[Principal, Depends(require_role("admin"))]
AdminOrService = Annotated[Principal, Depends(require_role("admin", service=True))]
BroadcastId = Annotated[int, Path(ge=1, le=MAX_ID)]  # 422 beyond, on SQLite and PostgreSQL alike
PageFilter = Annotated[str | None, Query(max_length=100)]


def _page(request: Request, template: str, principal: Principal, **context: Any) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    return TEMPLATES.TemplateResponse(request, f"console/{template}", {
        "user": principal, "csrf_token": principal.csrf_token, "is_production": settings.is_production,
        "is_demo": settings.is_demo, **context})


async def _tags(request: Request) -> list[str]:
    """Every contact tag in use (the audience's choices); none when the contact store does not answer."""
    try:
        tags = await run_in_threadpool(contacts_of(request).all_tags, None)
    except DatabaseUnavailable:
        log.warning("the contact store did not answer for the broadcast composer")
        return []
    return [tag for tag, _count in tags]


@router.get("/console/broadcasts", response_class=HTMLResponse)
async def broadcasts_page(request: Request, principal: AdminPage, cursor: Annotated[str | None, Query(
        max_length=200)] = None) -> HTMLResponse:
    found, next_cursor = await _call(request, "list", None, 50, cursor or None)
    return _page(request, "broadcasts.html", principal, next_cursor=next_cursor, paged=bool(cursor),
                 broadcasts=[broadcast_view(b).model_dump(mode="json") for b in found])


async def _composer(request: Request, principal: AdminPage, broadcast: Broadcast | None) -> HTMLResponse:
    return _page(request, "broadcast_compose.html", principal,
                 broadcast=broadcast_view(broadcast).model_dump(mode="json") if broadcast else None,
                 pages=pages_of(request), all_tags=await _tags(request), message_tags=usable_tags(request))


@router.get("/console/broadcasts/new", response_class=HTMLResponse)
async def new_broadcast_page(request: Request, principal: AdminPage) -> HTMLResponse:
    return await _composer(request, principal, None)


@router.get("/console/broadcasts/{broadcast_id}/edit", response_class=HTMLResponse)
async def edit_broadcast_page(broadcast_id: BroadcastId, request: Request, principal: AdminPage) -> Response:
    broadcast: Broadcast = await _call(request, "get", broadcast_id)
    if broadcast.status is not BroadcastStatus.DRAFT:
        return await report_page(broadcast_id, request, principal)
    return await _composer(request, principal, broadcast)


@router.get("/console/broadcasts/{broadcast_id}", response_class=HTMLResponse)
async def report_page(broadcast_id: BroadcastId, request: Request, principal: AdminPage) -> HTMLResponse:
    report: Report = await _call(request, "report", broadcast_id)
    return _page(request, "broadcast_report.html", principal, report=report_view(report).model_dump(mode="json"),
                 statuses_es={status.value: words for status, words in STATUS_ES.items()})


@router.get(API, response_model=BroadcastListOut)
async def list_broadcasts(
    request: Request, principal: AdminOrService, page_id: PageFilter = None,
    limit: Annotated[int, Query(ge=1, le=LIST_MAX)] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page.")] = None,
) -> BroadcastListOut:
    """The broadcasts, newest first, a page at a time (of one page with `page_id`)."""
    page = page_id.strip() if page_id and page_id.strip() else None
    found, next_cursor = await _call(request, "list", page, limit, cursor or None)
    return BroadcastListOut(broadcasts=[broadcast_view(b) for b in found], next_cursor=next_cursor)


@router.post(API, response_model=BroadcastOneOut, status_code=201)
async def create_broadcast(body: DraftBody, request: Request, principal: AdminOrService) -> JSONResponse:
    """Save a draft (nothing is sent until `…/send`)."""
    broadcast: Broadcast = await _call(request, "create", draft_of(request, body), principal.username)
    log.info("broadcast draft created", extra={"broadcast_id": broadcast.id, "by": principal.username})
    return JSONResponse(BroadcastOneOut(broadcast=broadcast_view(broadcast)).model_dump(mode="json"), status_code=201)


@router.post(API + "/dry-run", response_model=DryRunOut)
async def dry_run_body(body: DraftBody, request: Request, principal: AdminOrService) -> DryRunOut:
    """«Vista previa de envío» of a broadcast not saved: who would get it now and why the others would not. Nothing
    is saved or sent."""
    return dry_run_view(await _call(request, "dry_run", draft_of(request, body)))


@router.post(API + "/images", response_model=ImageOut, status_code=201)
async def upload_image(
    request: Request, principal: AdminOrService,
    file: Annotated[UploadFile, File(description="La imagen: JPEG, PNG, GIF o WebP, como máximo 10 MB.")],
    page_id: Annotated[str, Form(max_length=100)] = "",
) -> JSONResponse:
    """Upload the broadcast's image to the page once (Meta's Attachment Upload API, as an agent's file): use the
    answer's `attachment_id` in `content.image`. Nothing is sent."""
    pages = pages_of(request)
    page = page_id.strip() or (pages[0] if len(pages) == 1 else "")
    if page not in pages:
        raise ConsoleError("unknown_page", "Elija una página configurada para la imagen.", field="page_id")
    stored, attachment_id = await upload_to_page(request, page, file, kinds=frozenset({"image"}))
    answer = ImageOut(page_id=page, attachment_id=attachment_id, file_id=stored.file_id, filename=stored.filename,
                      preview_url=f"/api/console/attachments/{stored.file_id}")
    return JSONResponse(answer.model_dump(mode="json"), status_code=201)


@router.get(API + "/{broadcast_id}", response_model=BroadcastOneOut)
async def get_broadcast(broadcast_id: BroadcastId, request: Request, principal: AdminOrService) -> BroadcastOneOut:
    return BroadcastOneOut(broadcast=broadcast_view(await _call(request, "get", broadcast_id)))


@router.put(API + "/{broadcast_id}", response_model=BroadcastOneOut)
async def update_broadcast(broadcast_id: BroadcastId, body: DraftBody, request: Request,
                           principal: AdminOrService) -> BroadcastOneOut:
    """Edit a draft (409 once it was sent or scheduled)."""
    draft = draft_of(request, body)
    broadcast: Broadcast = await _call(request, "update", broadcast_id, draft, principal.username)
    return BroadcastOneOut(broadcast=broadcast_view(broadcast))


@router.delete(API + "/{broadcast_id}", response_model=DeletedOut)
async def delete_broadcast(broadcast_id: BroadcastId, request: Request, principal: AdminOrService) -> DeletedOut:
    """Delete a draft (409 once it was sent or scheduled: cancel it instead)."""
    await _call(request, "delete", broadcast_id)
    log.info("broadcast draft deleted", extra={"broadcast_id": broadcast_id, "by": principal.username})
    return DeletedOut(deleted=broadcast_id)


@router.post(API + "/{broadcast_id}/dry-run", response_model=DryRunOut)
async def dry_run_saved(broadcast_id: BroadcastId, request: Request, principal: AdminOrService) -> DryRunOut:
    """«Vista previa de envío» of a saved broadcast, as it would go now. Nothing is saved or sent."""
    broadcast: Broadcast = await _call(request, "get", broadcast_id)
    return dry_run_view(await _call(request, "dry_run", broadcast.draft))


@router.post(API + "/{broadcast_id}/send", response_model=BroadcastOneOut)
async def send_broadcast(broadcast_id: BroadcastId, body: SendBody, request: Request,
                         principal: AdminOrService) -> BroadcastOneOut:
    """Send a draft now (`{"send_at": null}`) or at a time (`{"send_at": "2025-12-01T09:00:00-05:00"}`). Each
    recipient goes through the outbox and its policy, at the page's rate; 409 when it is no longer a draft."""
    # The service refuses a time without its zone, one past or one too far ahead (422 naming send_at).
    broadcast: Broadcast = await _call(request, "send", broadcast_id, principal.username, body.send_at)
    log.info("broadcast sent", extra={"broadcast_id": broadcast_id, "by": principal.username,
                                      "scheduled": body.send_at is not None})
    return BroadcastOneOut(broadcast=broadcast_view(broadcast))


@router.post(API + "/{broadcast_id}/cancel", response_model=BroadcastOneOut)
async def cancel_broadcast(broadcast_id: BroadcastId, request: Request, principal: AdminOrService) \
        -> BroadcastOneOut:
    """Stop a scheduled or sending broadcast: what has not left yet is not sent (409 when it already ended)."""
    broadcast: Broadcast = await _call(request, "cancel", broadcast_id, principal.username)
    log.info("broadcast cancelled", extra={"broadcast_id": broadcast_id, "by": principal.username})
    return BroadcastOneOut(broadcast=broadcast_view(broadcast))


@router.get(API + "/{broadcast_id}/report", response_model=ReportOut)
async def broadcast_report(broadcast_id: BroadcastId, request: Request, principal: AdminOrService) -> ReportOut:
    """Sent, delivered and read (from Messenger's receipts), skipped by reason, failed by error code."""
    return report_view(await _call(request, "report", broadcast_id))


@router.get(API + "/{broadcast_id}/failed.csv", response_class=Response)
async def failed_csv(broadcast_id: BroadcastId, request: Request, principal: AdminOrService) -> Response:
    """The recipients who did not get it (skipped, blocked, failed) with the reason in Spanish, as a CSV Excel opens
    (UTF-8 with BOM)."""
    service = broadcasts_of(request)
    rows = await _call(request, "failed", broadcast_id)
    data = await run_in_threadpool(service.failed_csv, rows)
    return Response(data, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="transmision-{broadcast_id}-fallidos.csv"'})


@router.post(API + "/{broadcast_id}/retry-failed", response_model=RetryOut)
async def retry_failed(broadcast_id: BroadcastId, request: Request, principal: AdminOrService) -> RetryOut:
    """Send again to the failed and blocked recipients the policy allows now; the others are counted by reason."""
    result = await _call(request, "retry_failed", broadcast_id, principal.username)
    log.info("broadcast retry", extra={"broadcast_id": broadcast_id, "by": principal.username,
                                       "requeued": result.requeued})
    return RetryOut(requeued=result.requeued, still_refused=dict(result.still_refused),
                    reasons_es=reasons_for(result.still_refused, broadcasts_of(request).standard_window))


def install(app: FastAPI) -> None:
    """Mount the pages and the API (the service is the app's, `app.state.broadcasts`)."""
    app.include_router(router)
