"""«Preguntas sin respuesta»: the editor's loop. What customers asked and the knowledge matrix could not answer (the
answer journal's groups, `answers.service.Answers` at `app.state.answers`), ranked by how many people asked; from a
group the editor adds its wording as a new question of an entry (suggested by similarity) or starts a new entry, which
makes a draft of the knowledge matrix (the live version plus that change, `KnowledgeEditor.draft_with_question` /
`draft_with_entry`) with its usual validation report. Publishing that draft (the knowledge editor's publish, from
this page or the matrix's) marks the group resolved (`resolve_published`); a draft left unpublished leaves it open.
A group that is not a real question (a greeting, spam) is dismissed.

«Sugerencias» (learning from use, `answers.proposals`): the wordings customers used for an entry (a tapped
«¿Quisiste decir…?» candidate, or an agent's reply with the entry from the conversation page's «Responder con una
entrada», journaled here by `journal_agent_answer`) proposed as new questions of it; accepting one makes the same draft
as «Agregar a una entrada» (`draft_with_question`), rejecting hides it, and neither pair comes back. Never applied
silently: only a published draft changes what the bot answers. Agents find the entries to reply with through
`/api/console/entries`.

Pages: `/console/unanswered` (the list, `?status=open|resolved`), `/console/unanswered/{group_id}` and
`/console/unanswered/proposals`. JSON: `/api/console/unanswered...` for editors, admins and the service token (agents
are refused); `/api/console/entries` for agents and admins. The journal's own
refusals (`answers.model.GroupNotFound`, `AnswerInvalid`) are answered here as console refusals; everything else
goes to the app's one error table.

Mounted by `console.routes.install` (`install`); this module does not import it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from answers.model import AnswerInvalid, AnswersError, Group, GroupNotFound, Suggestion
from answers.proposals import Proposal, ProposalNotFound
from console.auth import Principal, require_role
from console.knowledge_editor import KnowledgeEditor, KnowledgeEditorError
from console.parts import MAX_ID, ConsoleError, handoff_of, now_of, pages_of
from core.postgres import DatabaseUnavailable
from core.settings import Settings
from handoff.model import split_conversation_id

if TYPE_CHECKING:
    from answers.service import Answers  # the app's (bot/app.py opens it); only its type is needed here
    from knowledge_matrix.matrix import Entry

log = logging.getLogger(__name__)

TEMPLATES = Jinja2Templates(directory=str(FilePath(__file__).parent / "templates"))
API = "/api/console/unanswered"
PAGES = "/console/unanswered"
LIST_MAX = 100
SUGGESTIONS = 3

STATUS_ES = {"open": "Sin resolver", "resolved": "Resuelta", "dismissed": "Descartada"}
PROPOSAL_STATUS_ES = {"open": "Por revisar", "accepted": "Aceptada", "rejected": "Rechazada"}
SOURCE_ES = {"tapped": "la eligió en «¿Quisiste decir…?»", "agent": "un agente respondió con la entrada"}
ENTRIES_MAX = 50
# «Responder con una entrada»: the customer's question it answers is their latest unanswered one from this long before
# the conversation was paused (the question that handed it over) until the reply.
QUESTION_BEFORE_PAUSE = timedelta(days=1)
ACTION_ES = {"added_question": "se agregó como pregunta de la entrada «{entry}»",
             "new_entry": "se creó la entrada «{entry}»", "dismissed": "se descartó (no es una pregunta)"}

T = TypeVar("T")


def answers_of(request: Request) -> Answers:
    service: Answers | None = getattr(request.app.state, "answers", None)
    if service is None:
        raise ConsoleError("knowledge_unavailable", "Las preguntas sin respuesta no están disponibles; intente en un "
                                                    "momento.")
    return service


def editor_of(request: Request) -> KnowledgeEditor:
    editor: KnowledgeEditor | None = getattr(request.app.state, "knowledge_editor", None)
    if editor is None:
        raise ConsoleError("knowledge_unavailable", "El editor de la matriz de conocimientos no está disponible.")
    return editor


async def _call(request: Request, work: Callable[[Answers], T]) -> T:
    """A call to the answer journal (synchronous: in a thread), its refusals said as the console says them (404 for a
    group that does not exist, 422 naming the field), a database that is down a 503 the editor can retry."""
    answers = answers_of(request)
    try:
        return await run_in_threadpool(work, answers)
    except GroupNotFound as exc:
        raise ConsoleError("not_found", "Ese grupo de preguntas no existe (quizá se unió a otro al reagruparse).",
                           group_id=exc.group_id) from exc
    except ProposalNotFound as exc:
        raise ConsoleError("not_found", "Esa sugerencia no existe.", proposal_id=exc.proposal_id) from exc
    except AnswerInvalid as exc:
        raise ConsoleError("invalid_request", exc.message, field=exc.field) from exc
    except DatabaseUnavailable as exc:
        raise ConsoleError("knowledge_unavailable", "La base de datos de las preguntas sin respuesta no responde; "
                                                    "intente en un momento.") from exc


# --- JSON shapes (the OpenAPI schema documents them) ---------------------------------------------------------------


class ExampleOut(BaseModel):
    question: str
    at: datetime


class GroupOut(BaseModel):
    id: int
    status: str = Field(description="open | resolved | dismissed")
    status_es: str
    wording: str = Field(description="The most typical way it was asked.")
    people: int = Field(description="Distinct people who asked (the list's order).")
    asked: int = Field(description="How many times it was asked.")
    first_at: datetime
    last_at: datetime
    examples: list[ExampleOut] = Field(description="Up to 5 ways it was asked, with when.")
    page_ids: list[str]
    resolved_at: datetime | None
    resolved_by: str | None
    entry_id: str | None = Field(description="The entry it was added to, or the new entry.")
    action: str | None = Field(description="added_question | new_entry | dismissed")
    resolution_es: str = Field(description="How it was resolved, in Spanish (empty while open).")
    returned: int = Field(description="Times it was asked again after it was resolved.")
    returned_es: str = Field(description="«Volvió a preguntarse N veces desde que se resolvió».")
    url: str = Field(description="Its page in the console.")


class GroupListOut(BaseModel):
    groups: list[GroupOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; None on the last one.")


class SuggestionOut(BaseModel):
    entry_id: str
    question: str = Field(description="The entry's first question (how editors know it).")
    matched_question: str = Field(description="The entry's question nearest to the group's wording.")
    score: float


class GroupDetailOut(BaseModel):
    group: GroupOut
    suggestions: list[SuggestionOut] = Field(description="Entries of the live matrix that may answer it, best first.")


class AddToEntryBody(BaseModel):
    entry_id: str = Field(min_length=1, max_length=200, examples=["horario"])
    question: str = Field(min_length=1, max_length=2000, examples=["¿Atienden los feriados?"])


class NewEntryBody(BaseModel):
    entry_id: str = Field(min_length=1, max_length=200, examples=["horario-feriados"])
    questions: list[Annotated[str, Field(max_length=2000)]] = Field(min_length=1, max_length=50,
                                                                    examples=[["¿Atienden los feriados?"]])
    answer: str = Field(min_length=1, max_length=20000, examples=["Sí: los feriados atendemos de 9:00 a 13:00."])


class IssueOut(BaseModel):
    severity: str
    code: str
    message: str
    row: int | None
    column: str | None
    column_label: str | None


class DraftOut(BaseModel):
    id: str = Field(description="Publish it with POST /api/console/knowledge/publish {\"draft_id\": id}.")
    filename: str
    uploaded_by: str
    uploaded_at: datetime
    ok: bool = Field(description="No errors: it can be published.")
    entry_count: int
    error_count: int
    warning_count: int
    issues: list[IssueOut]
    summary: str
    base_version: str | None = Field(default=None, description="The live version it was made on.")
    made_in_console: bool = Field(default=False, description="Made here: at publish, made again on the live version "
                                                             "if that changed since.")


class DraftMadeOut(BaseModel):
    group_id: int
    draft: DraftOut


class DismissedOut(BaseModel):
    group: GroupOut


def returned_es(count: int) -> str:
    if count == 0:
        return "No volvió a preguntarse desde que se resolvió."
    return f"Volvió a preguntarse {count} {'vez' if count == 1 else 'veces'} desde que se resolvió."


def resolution_es(group: Group) -> str:
    if group.status == "open" or group.resolved_action is None:
        return ""
    words = ACTION_ES.get(group.resolved_action, group.resolved_action).format(entry=group.resolved_entry_id or "")
    by = f" por {group.resolved_by}" if group.resolved_by else ""
    when = f" el {group.resolved_at:%Y-%m-%d %H:%M} UTC" if group.resolved_at else ""
    return f"Resuelta{by}{when}: {words}."


def group_view(group: Group) -> GroupOut:
    return GroupOut(
        id=group.id, status=group.status, status_es=STATUS_ES.get(group.status, group.status), wording=group.label,
        people=group.people, asked=group.questions, first_at=group.first_at, last_at=group.last_at,
        examples=[ExampleOut(question=e.question, at=e.at) for e in group.examples], page_ids=list(group.page_ids),
        resolved_at=group.resolved_at, resolved_by=group.resolved_by, entry_id=group.resolved_entry_id,
        action=group.resolved_action, resolution_es=resolution_es(group), returned=group.returned,
        returned_es=returned_es(group.returned) if group.status != "open" else "", url=f"{PAGES}/{group.id}")


def suggestion_view(suggestion: Suggestion) -> SuggestionOut:
    return SuggestionOut(entry_id=suggestion.entry_id, question=suggestion.question,
                         matched_question=suggestion.matched_question, score=round(suggestion.score, 4))


# --- reading -------------------------------------------------------------------------------------------------------


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 9:
        raise ConsoleError("invalid_request", "El cursor no es válido: use el `next_cursor` de la página anterior.",
                           field="cursor")
    return int(cursor)


async def ranked_groups(request: Request, status: str, page_id: str | None, limit: int, cursor: str | None) \
        -> tuple[list[Group], str | None]:
    """One page of the groups with `status`, most people first (of one Facebook page with `page_id`)."""
    start = _offset(cursor)
    await reopen_rolled_back(request)
    found = await _call(request, lambda answers: answers.groups(status, page_id=page_id, limit=limit + 1,
                                                                offset=start))
    return found[:limit], str(start + limit) if len(found) > limit else None


async def group_of(request: Request, group_id: int) -> Group:
    await reopen_rolled_back(request)
    return await _call(request, lambda answers: answers.group(group_id))


async def suggestions_of(request: Request, group_id: int) -> list[Suggestion]:
    """Entries that may answer the group; none when the live matrix cannot be read now (logged): the editor can
    still name an entry or start a new one."""
    try:
        return list(await _call(request, lambda answers: answers.suggest_entries(group_id, k=SUGGESTIONS)))
    except ConsoleError:
        raise
    except Exception as exc:  # the matrix's model or files: the page still shows the group
        log.warning("no entry suggestions for an unanswered group: %s", exc, extra={"group_id": group_id})
        return []


# --- after a publish -----------------------------------------------------------------------------------------------


def reopen_after(answers: Answers, version_id: str | None, now: datetime, **context: Any) -> list[int]:
    """Groups resolved by a version newer than `version_id` (the live one, or the one a publication was built on)
    are open again: the change that resolved them is not in what the bot answers from. Logged, never raised: the
    caller's own work already happened."""
    if not version_id:
        return []
    try:
        reopened = answers.store.reopen_after(version_id, now)
    except (AnswersError, DatabaseUnavailable) as exc:
        log.warning("unanswered groups could not be reopened after a rollback: %s", exc, extra=context)
        return []
    if reopened:
        log.info("unanswered groups reopened: the version that resolved them is not live",
                 extra={"group_ids": reopened, "version": version_id, **context})
    return reopened


async def reopen_rolled_back(request: Request) -> None:
    """Before the groups are read: a rollback (here or with the command line) past the version that resolved a group
    reopens it."""
    answers: Answers | None = getattr(request.app.state, "answers", None)
    editor: KnowledgeEditor | None = getattr(request.app.state, "knowledge_editor", None)
    if answers is None or editor is None:
        return
    try:
        live = (await run_in_threadpool(editor.status)).live
    except KnowledgeEditorError:
        return
    if live is not None:
        await run_in_threadpool(reopen_after, answers, live.id, now_of(request))


async def resolve_published(request: Request, draft_id: str, by: str) -> int | None:
    """After the knowledge editor published `draft_id`: groups resolved by versions newer than the one the draft was
    built on are reopened (it does not have their change); then the group it was made from (if any, and only while
    open) is resolved with the entry, the kind of change and the version. The publish already happened: a journal
    that cannot record it now is logged (the group stays open) rather than answered as an error. The group's id, or
    None (also for a group resolved or dismissed already)."""
    answers: Answers | None = getattr(request.app.state, "answers", None)
    origin_of = getattr(request.app.state.knowledge_editor, "draft_origin", None)
    if answers is None or origin_of is None:  # no journal, or an editor that makes no such drafts (a fake)
        return None
    try:
        origin = await run_in_threadpool(origin_of, draft_id)
    except KnowledgeEditorError:
        return None
    if not origin:
        return None
    now = now_of(request)
    await run_in_threadpool(reopen_after, answers, origin.get("base_version"), now, draft_id=draft_id)
    if not isinstance(origin.get("group_id"), int):
        return None
    group_id, action = int(origin["group_id"]), origin.get("action")
    if action not in ("added_question", "new_entry"):
        return None
    version = origin.get("published_version")
    try:
        resolved = await run_in_threadpool(lambda: answers.store.resolve_open_group(
            group_id, str(origin.get("entry_id") or ""), action, by, now,
            version_id=version if isinstance(version, str) else None))
    except (AnswersError, DatabaseUnavailable) as exc:
        log.warning("a published draft's unanswered group could not be marked resolved: %s", exc,
                    extra={"group_id": group_id, "draft_id": draft_id})
        return None
    if not resolved:
        log.info("a published draft's unanswered group was resolved or dismissed already: left as it is",
                 extra={"group_id": group_id, "draft_id": draft_id, "by": by})
        return None
    log.info("unanswered group resolved", extra={"group_id": group_id, "draft_id": draft_id, "by": by,
                                                 "version": version})
    return group_id


# --- routes --------------------------------------------------------------------------------------------------------

router = APIRouter(tags=["console: preguntas sin respuesta"])

EditorPage = Annotated[Principal, Depends(require_role("admin", "editor"))]
EditorOrService = Annotated[Principal, Depends(require_role("admin", "editor", service=True))]
GroupId = Annotated[int, Path(ge=1, le=MAX_ID)]  # 422 beyond, on SQLite and PostgreSQL alike
StatusFilter = Literal["open", "resolved"]


def _page(request: Request, template: str, principal: Principal, **context: Any) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    return TEMPLATES.TemplateResponse(request, f"console/{template}", {
        "user": principal, "csrf_token": principal.csrf_token, "is_production": settings.is_production,
        "is_demo": settings.is_demo, **context})


@router.get(PAGES, response_class=HTMLResponse)
async def unanswered_page(
    request: Request, principal: EditorPage, status: Annotated[StatusFilter, Query()] = "open",
    page_id: Annotated[str | None, Query(max_length=100)] = None,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:
    page = page_id.strip() if page_id and page_id.strip() else None
    try:
        groups, next_cursor = await ranked_groups(request, status, page, 50, cursor)
        unavailable = None
    except ConsoleError as exc:
        if exc.reason_code != "knowledge_unavailable":
            raise
        groups, next_cursor, unavailable = [], None, exc.message_es
    return _page(request, "unanswered.html", principal, status=status, page_id=page or "",
                 page_ids=pages_of(request), groups=[group_view(g).model_dump(mode="json") for g in groups],
                 next_cursor=next_cursor, paged=bool(cursor), unavailable=unavailable)


@router.get(PAGES + "/{group_id}", response_class=HTMLResponse)
async def unanswered_group_page(group_id: GroupId, request: Request, principal: EditorPage) -> HTMLResponse:
    group = await group_of(request, group_id)
    suggestions = await suggestions_of(request, group_id) if group.status == "open" else []
    return _page(request, "unanswered_group.html", principal, group=group_view(group).model_dump(mode="json"),
                 suggestions=[suggestion_view(s).model_dump(mode="json") for s in suggestions])


@router.get(API, response_model=GroupListOut)
async def list_groups(
    request: Request, principal: EditorOrService, status: Annotated[StatusFilter, Query()] = "open",
    page_id: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=LIST_MAX)] = 50,
    cursor: Annotated[str | None, Query(max_length=20, description="`next_cursor` of the previous page.")] = None,
) -> GroupListOut:
    """The groups of unanswered questions (`open`, or `resolved` with how often each came back), most people first
    (of one Facebook page with `page_id`)."""
    page = page_id.strip() if page_id and page_id.strip() else None
    groups, next_cursor = await ranked_groups(request, status, page, limit, cursor)
    return GroupListOut(groups=[group_view(g) for g in groups], next_cursor=next_cursor)


@router.get(API + "/{group_id}", response_model=GroupDetailOut)
async def get_group(group_id: GroupId, request: Request, principal: EditorOrService) -> GroupDetailOut:
    """A group: its examples and dates, and (while open) the entries of the live matrix that may answer it."""
    group = await group_of(request, group_id)
    suggestions = await suggestions_of(request, group_id) if group.status == "open" else []
    return GroupDetailOut(group=group_view(group), suggestions=[suggestion_view(s) for s in suggestions])


async def _open_group(request: Request, group_id: int) -> Group:
    group = await group_of(request, group_id)
    if group.status != "open":
        state = STATUS_ES.get(group.status, group.status).lower()
        raise ConsoleError("invalid_transition", f"Este grupo ya está {state}: no hay nada más que hacer con él.",
                           status=group.status)
    return group


def _draft_out(group_id: int, draft: Any) -> JSONResponse:
    answer = DraftMadeOut(group_id=group_id, draft=DraftOut.model_validate(draft.to_dict()))
    return JSONResponse(answer.model_dump(mode="json"), status_code=201)


@router.post(API + "/{group_id}/add-to-entry", response_model=DraftMadeOut, status_code=201)
async def add_to_entry(group_id: GroupId, body: AddToEntryBody, request: Request,
                       principal: EditorOrService) -> JSONResponse:
    """A draft of the matrix: the live version with `question` added to entry `entry_id`, and its validation report.
    Publishing it (POST /api/console/knowledge/publish) resolves the group; nothing changes until then."""
    await _open_group(request, group_id)
    entry_id = body.entry_id.strip()
    origin = {"group_id": group_id, "entry_id": entry_id, "action": "added_question"}
    draft = await run_in_threadpool(editor_of(request).draft_with_question, entry_id, body.question,
                                    principal.username, origin=origin)
    log.info("unanswered group drafted", extra={"group_id": group_id, "draft_id": draft.id, "entry_id": entry_id,
                                                "by": principal.username})
    return _draft_out(group_id, draft)


@router.post(API + "/{group_id}/new-entry", response_model=DraftMadeOut, status_code=201)
async def new_entry(group_id: GroupId, body: NewEntryBody, request: Request,
                    principal: EditorOrService) -> JSONResponse:
    """A draft of the matrix: the live version with a new entry (`entry_id`, its `questions`, its `answer`), and its
    validation report. Publishing it resolves the group."""
    await _open_group(request, group_id)
    entry_id = body.entry_id.strip()
    origin = {"group_id": group_id, "entry_id": entry_id, "action": "new_entry"}
    draft = await run_in_threadpool(editor_of(request).draft_with_entry, entry_id, body.questions, body.answer,
                                    principal.username, origin=origin)
    log.info("unanswered group drafted", extra={"group_id": group_id, "draft_id": draft.id, "entry_id": entry_id,
                                                "by": principal.username, "new_entry": True})
    return _draft_out(group_id, draft)


@router.post(API + "/{group_id}/dismiss", response_model=DismissedOut)
async def dismiss(group_id: GroupId, request: Request, principal: EditorOrService) -> DismissedOut:
    """Not a real question (a greeting, spam, a test): the group leaves the list."""
    await _open_group(request, group_id)
    now = now_of(request)
    group = await _call(request, lambda answers: answers.dismiss(group_id, principal.username, now))
    log.info("unanswered group dismissed", extra={"group_id": group_id, "by": principal.username})
    return DismissedOut(group=group_view(group))


# --- «Sugerencias»: learning from use ------------------------------------------------------------------------------
# Mounted before the groups' routes: `/unanswered/proposals` is not a group id.

proposals_router = APIRouter(tags=["console: sugerencias"])
AgentOnly = Annotated[Principal, Depends(require_role("admin", "agent"))]
ProposalId = Annotated[int, Path(ge=1, le=MAX_ID)]
ProposalFilter = Literal["open", "accepted", "rejected"]


class ProposalOut(BaseModel):
    id: int
    wording: str = Field(description="How customers asked (masked as the journal keeps it).")
    entry_id: str
    entry_question: str = Field(description="The entry's first question in the live matrix (how editors know it).")
    status: str = Field(description="open | accepted | rejected")
    status_es: str
    people: int = Field(description="Distinct people who asked this way and got this entry (the list's order).")
    tapped: int = Field(description="Times a customer tapped the entry in «¿Quisiste decir…?» after asking this way.")
    agent: int = Field(description="Times an agent answered this question with the entry.")
    sources: list[str] = Field(description="tapped | agent")
    sources_es: str
    first_at: datetime | None
    last_at: datetime | None
    decided_at: datetime | None
    decided_by: str | None
    draft_id: str | None = Field(description="Accepted: the draft made with the question added.")


class ProposalListOut(BaseModel):
    proposals: list[ProposalOut]


class AcceptBody(BaseModel):
    question: str | None = Field(default=None, min_length=1, max_length=2000,
                                 description="The wording as it is added (corrected); the proposal's when absent.")


AS_PROPOSED = AcceptBody()  # no body: the wording as proposed


class ProposalDraftOut(BaseModel):
    proposal: ProposalOut
    draft: DraftOut


class ProposalDecidedOut(BaseModel):
    proposal: ProposalOut


class EntryOut(BaseModel):
    id: str
    question: str = Field(description="The entry's first question.")
    questions: list[str]
    answer: str = Field(description="What the bot answers: the text the reply box gets.")


class EntriesOut(BaseModel):
    entries: list[EntryOut]


def sources_es(proposal: Proposal) -> str:
    return "; ".join(SOURCE_ES[source] for source in proposal.sources)


def proposal_view(proposal: Proposal) -> ProposalOut:
    return ProposalOut(
        id=proposal.id, wording=proposal.wording, entry_id=proposal.entry_id, entry_question=proposal.entry_question,
        status=proposal.status, status_es=PROPOSAL_STATUS_ES.get(proposal.status, proposal.status),
        people=proposal.people, tapped=proposal.tapped, agent=proposal.agent, sources=list(proposal.sources),
        sources_es=sources_es(proposal), first_at=proposal.first_at, last_at=proposal.last_at,
        decided_at=proposal.decided_at, decided_by=proposal.decided_by, draft_id=proposal.draft_id)


def entry_view(entry: Entry) -> EntryOut:
    return EntryOut(id=entry.id, question=entry.questions[0] if entry.questions else "",
                    questions=list(entry.questions), answer=entry.answer)


async def journal_agent_answer(request: Request, conversation_id: str, entry_id: str, by: str) -> int | None:
    """After an agent's reply with an entry went to the outbox: the customer's latest unanswered question (from a day
    before the conversation was paused until now) is proposed to editors as a question of that entry. The reply went
    already: anything in the way (no journal, no such question, an entry not live, a database down) is logged, never
    raised. The proposal's id, or None."""
    answers: Answers | None = getattr(request.app.state, "answers", None)
    if answers is None:
        return None
    page_id, user_id = split_conversation_id(conversation_id)
    now = now_of(request)
    try:
        conversation = await handoff_of(request).get(conversation_id)
        since = (conversation.paused_at or now) - QUESTION_BEFORE_PAUSE
        proposal = await run_in_threadpool(lambda: answers.agent_answered(
            page_id=page_id, psid=user_id, entry_id=entry_id.strip(), agent=by, since=since, at=now))
    except Exception as exc:  # the reply is sent: a pairing that cannot be journaled now is only lost
        log.warning("an agent's reply with an entry could not be journaled: %s", exc,
                    extra={"conversation_id": conversation_id, "entry_id": entry_id})
        return None
    if proposal is None:
        log.info("an agent replied with an entry; nothing proposed (no unanswered question, an entry not live, or "
                 "the pair decided already)", extra={"conversation_id": conversation_id, "entry_id": entry_id})
        return None
    log.info("an agent's reply with an entry proposed to editors",
             extra={"proposal_id": proposal.id, "entry_id": proposal.entry_id, "by": by})
    return proposal.id


async def _proposal(request: Request, proposal_id: int) -> Proposal:
    return await _call(request, lambda answers: answers.proposal(proposal_id))


def _decided(proposal: Proposal) -> ConsoleError:
    state = PROPOSAL_STATUS_ES.get(proposal.status, proposal.status).lower()
    return ConsoleError("invalid_transition", f"Esta sugerencia ya está {state}.", status=proposal.status)


@proposals_router.get(PAGES + "/proposals", response_class=HTMLResponse)
async def proposals_page(request: Request, principal: EditorPage,
                         status: Annotated[ProposalFilter, Query()] = "open") -> HTMLResponse:
    try:
        found = await _call(request, lambda answers: answers.proposals(status, limit=LIST_MAX))
        unavailable = None
    except ConsoleError as exc:
        if exc.reason_code != "knowledge_unavailable":
            raise
        found, unavailable = [], exc.message_es
    return _page(request, "unanswered_proposals.html", principal, status=status, unavailable=unavailable,
                 proposals=[proposal_view(p).model_dump(mode="json") for p in found])


@proposals_router.get(API + "/proposals", response_model=ProposalListOut)
async def list_proposals(request: Request, principal: EditorOrService,
                         status: Annotated[ProposalFilter, Query()] = "open",
                         limit: Annotated[int, Query(ge=1, le=LIST_MAX)] = 50) -> ProposalListOut:
    """«Sugerencias»: wordings customers used for an entry (a tapped «¿Quisiste decir…?» candidate, an agent's reply
    with the entry), most people first. Open ones only while their entry is live and the wording is not one of its
    questions yet."""
    found = await _call(request, lambda answers: answers.proposals(status, limit=limit))
    return ProposalListOut(proposals=[proposal_view(p) for p in found])


@proposals_router.post(API + "/proposals/{proposal_id}/accept", response_model=ProposalDraftOut, status_code=201)
async def accept_proposal(proposal_id: ProposalId, request: Request, principal: EditorOrService,
                          body: AcceptBody = AS_PROPOSED) -> JSONResponse:
    """A draft of the matrix: the live version with the wording (or `question`, corrected) added to the proposal's
    entry, and its validation report; publish it as any draft. The pair is not proposed again. An accepted proposal
    may be accepted again (another draft: the first was not published); a rejected one may not."""
    proposal = await _proposal(request, proposal_id)
    if proposal.status == "rejected":
        raise _decided(proposal)
    question = (body.question or proposal.wording).strip()
    origin = {"proposal_id": proposal_id, "entry_id": proposal.entry_id, "action": "added_question"}
    draft = await run_in_threadpool(editor_of(request).draft_with_question, proposal.entry_id, question,
                                    principal.username, origin=origin)
    now = now_of(request)
    if not await _call(request, lambda answers: answers.store.accept_proposal(proposal_id, principal.username, now,
                                                                              draft.id)):
        raise _decided(await _proposal(request, proposal_id))
    accepted = await _proposal(request, proposal_id)
    log.info("proposal accepted", extra={"proposal_id": proposal_id, "draft_id": draft.id,
                                         "entry_id": proposal.entry_id, "by": principal.username})
    answer = ProposalDraftOut(proposal=proposal_view(accepted), draft=DraftOut.model_validate(draft.to_dict()))
    return JSONResponse(answer.model_dump(mode="json"), status_code=201)


@proposals_router.post(API + "/proposals/{proposal_id}/reject", response_model=ProposalDecidedOut)
async def reject_proposal(proposal_id: ProposalId, request: Request,
                          principal: EditorOrService) -> ProposalDecidedOut:
    """Not a way of asking for that entry: hidden, and the pair is not proposed again."""
    now = now_of(request)
    if not await _call(request, lambda answers: answers.store.reject_proposal(proposal_id, principal.username, now)):
        raise _decided(await _proposal(request, proposal_id))
    log.info("proposal rejected", extra={"proposal_id": proposal_id, "by": principal.username})
    return ProposalDecidedOut(proposal=proposal_view(await _proposal(request, proposal_id)))


@proposals_router.get("/api/console/entries", response_model=EntriesOut)
async def search_entries(request: Request, principal: AgentOnly,
                         q: Annotated[str, Query(max_length=200)] = "",
                         limit: Annotated[int, Query(ge=1, le=ENTRIES_MAX)] = 10) -> EntriesOut:
    """«Responder con una entrada»: the live matrix's entries holding every word of `q` (in the id, the questions or
    the answer; id and questions first). The page puts the chosen entry's answer in the reply box and sends its id
    with the reply (`entry_id`), which proposes the customer's unanswered question to editors."""
    found = await _call(request, lambda answers: answers.entries_matching(q, limit))
    return EntriesOut(entries=[entry_view(entry) for entry in found])


def install(app: FastAPI) -> None:
    """Mount the pages and the API (the journal is the app's, `app.state.answers`)."""
    app.include_router(proposals_router)
    app.include_router(router)
