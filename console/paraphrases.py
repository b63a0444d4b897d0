"""«Formas de preguntar sugeridas»: an editor asks the GPT fallback's chat model for extra ways of asking for the
matrix's entries, reviews them per entry (accept, reject, or all of an entry at once) and makes a draft with the
accepted ones (`KnowledgeEditor.draft_with_questions`: the live matrix plus those questions, with its usual
validation report), which is then published as any draft.

Off without an LLM key (`LLM_API_KEY`): the page says so and nothing is sent. With a key nothing is sent either until
an editor starts a job; a job runs in the app's event loop (`knowledge_matrix.paraphrases.generate`), one at a time,
its progress and its end (a Spanish reason when the server failed) kept in the paraphrase store, which the page
polls. A job whose process stopped is ended as interrupted the next time anyone looks.

Pages: `/console/knowledge/paraphrases`. JSON: `/api/console/knowledge/paraphrases...` for editors, admins and the
service token. Mounted by `console.routes.install` (`install`); this module does not import it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal, Protocol, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from console.auth import Principal, require_role
from console.knowledge_editor import Draft
from console.parts import MAX_ID, ConsoleError, now_of
from core.postgres import DatabaseUnavailable
from core.settings import Settings
from knowledge_matrix.errors import LLMSettingsError
from knowledge_matrix.knowledge_base import KnowledgeBase
from knowledge_matrix.llm.client import OpenAIChatClient
from knowledge_matrix.llm.settings import llm_settings_from
from knowledge_matrix.matrix import Entry
from knowledge_matrix.paraphrase_store import (
    Paraphrase,
    ParaphraseJob,
    ParaphraseStore,
    open_paraphrase_store,
)
from knowledge_matrix.paraphrases import INTERRUPTED_ES, ParaphraseLimits, limits_from, run_job

log = logging.getLogger(__name__)

TEMPLATES = Jinja2Templates(directory=str(FilePath(__file__).parent / "templates"))
API = "/api/console/knowledge/paraphrases"
PAGE = "/console/knowledge/paraphrases"
MAX_ENTRY_IDS = 1000
STATUS_ES = {"running": "En curso", "done": "Terminada", "failed": "Se detuvo"}
OFF_ES = ("Las formas de preguntar sugeridas necesitan un modelo de lenguaje: configure LLM_API_KEY (la misma clave "
          "de la respuesta con GPT). Sin clave no se envía nada a ningún servidor.")
BAD_BASE_URL = {"error_code": "settings", "error_es": "LLM_BASE_URL no es una dirección válida para el modelo (en "
                 "producción debe ser https, o http solo a este mismo equipo)."}

T = TypeVar("T")


class ParaphraseEditor(Protocol):
    """What this page needs of the knowledge editor (`MatrixEditor`)."""

    def knowledge_for(self, draft_id: str | None = None) -> tuple[str, KnowledgeBase]: ...

    def draft_with_questions(self, additions: Sequence[tuple[str, str]], by: str, *,
                             origin: dict[str, Any] | None = None) -> Draft: ...


class ParaphraseService:
    """The store, the one job running and how it is run. `client_for` makes the chat client (the real one by
    default, from the fallback's settings with this job's reply size and timeout)."""

    def __init__(self, store: ParaphraseStore, settings: Settings, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.limits = limits_from(settings)
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return bool(self.settings.llm_api_key.strip())

    def client_for(self, limits: ParaphraseLimits) -> OpenAIChatClient:
        llm = llm_settings_from(self.settings)
        return OpenAIChatClient(replace(llm, max_tokens=limits.reply_tokens, timeout_seconds=limits.timeout_seconds))

    def stale_before(self, now: datetime) -> datetime:
        """A running job not moved for longer than its slowest request (all concurrent ones) belongs to a process
        that stopped."""
        return now - timedelta(seconds=self.limits.timeout_seconds * 2 + 60)

    def end_stale_jobs(self) -> None:
        now = self.clock()
        if self._tasks:
            return  # ours is running in this process: it moves
        self.store.end_stale_jobs(self.stale_before(now), now, INTERRUPTED_ES)

    async def start(self, version: str, knowledge: KnowledgeBase, entries: Sequence[Entry],
                    by: str) -> ParaphraseJob:
        async with self._lock:  # one job at a time in this process, checked and started in one go
            await run_in_threadpool(self.end_stale_jobs)
            running = await run_in_threadpool(self.store.running_job)
            if running is not None:
                raise ConsoleError("paraphrase_job_running", "Ya hay una generación en curso: espere a que termine.",
                                   job_id=running.id)
            total = min(len(entries), self.limits.max_entries)
            job = await run_in_threadpool(self.store.start_job, version, by, total, self.clock())
            task = asyncio.create_task(self.run(job, version, knowledge, entries))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        log.info("paraphrase job started", extra={"job_id": job.id, "version": version, "entries": total, "by": by})
        return job

    async def run(self, job: ParaphraseJob, version: str, knowledge: KnowledgeBase, entries: Sequence[Entry]) -> None:
        try:
            client = self.client_for(self.limits)
        except LLMSettingsError:
            await asyncio.to_thread(self.store.finish_job, job.id, self.clock(), failed=True, **BAD_BASE_URL)
            return
        try:
            await run_job(self.store, job, version, knowledge, entries, client, self.limits, clock=self.clock,
                          model=self.settings.llm_model)
        finally:
            await client.aclose()

    async def wait(self) -> None:
        """Until the running job (if any) ends: for tests and shutdown."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.wait()
        self.store.close()


def service_of(request: Request) -> ParaphraseService:
    service: ParaphraseService | None = getattr(request.app.state, "paraphrases", None)
    if service is None:
        settings: Settings = request.app.state.settings
        try:
            store = open_paraphrase_store(settings.store_url("paraphrases"))
        except DatabaseUnavailable as exc:
            raise ConsoleError("knowledge_unavailable", "La base de datos de las formas de preguntar sugeridas no "
                                                        "responde; intente en un momento.") from exc
        auth = request.app.state.console_auth  # the console's clock (tests move it)
        service = request.app.state.paraphrases = ParaphraseService(store, settings, auth.clock)
    return service


def editor_of(request: Request) -> ParaphraseEditor:
    editor = getattr(request.app.state, "knowledge_editor", None)
    if editor is None or not hasattr(editor, "knowledge_for"):
        raise ConsoleError("knowledge_unavailable", "El editor de la matriz de conocimientos no está disponible.")
    return editor  # type: ignore[no-any-return]


async def _stored(request: Request, work: Callable[[ParaphraseStore], T]) -> T:
    service = service_of(request)
    try:
        return await run_in_threadpool(work, service.store)
    except DatabaseUnavailable as exc:
        raise ConsoleError("knowledge_unavailable", "La base de datos de las formas de preguntar sugeridas no "
                                                    "responde; intente en un momento.") from exc


# --- JSON shapes -------------------------------------------------------------------------------------------------


class JobOut(BaseModel):
    id: int
    matrix_version: str = Field(description="The live version, or draft:<id>, the entries came from.")
    status: str = Field(description="running | done | failed")
    status_es: str
    requested_by: str
    total_entries: int
    done_entries: int
    percent: int
    proposed: int = Field(description="New proposals kept for review.")
    filtered: int = Field(description="Dropped before review, each with its reason.")
    tokens: int = Field(description="Tokens reserved for the requests made (the PARAPHRASES_MAX_TOKENS budget).")
    error_code: str | None
    error_es: str | None = Field(description="Why it stopped, or a note (budget spent, entries left out).")
    created_at: datetime
    finished_at: datetime | None


class ParaphraseOut(BaseModel):
    id: int
    entry_id: str
    text: str
    status: str = Field(description="proposed | accepted | rejected | filtered")
    reason_es: str | None = Field(description="filtered: why.")
    other_entry_id: str | None
    draft_id: str | None = Field(description="accepted: the draft it went into.")
    matrix_version: str


class EntryOut(BaseModel):
    entry_id: str
    proposals: list[ParaphraseOut] = Field(description="Waiting for a decision, or accepted (not yet in a draft).")
    filtered: list[ParaphraseOut] = Field(description="Dropped before review by the latest job, with the reason.")


class OverviewOut(BaseModel):
    enabled: bool
    enabled_es: str
    per_entry: int
    max_entries: int
    job: JobOut | None = Field(description="The latest job.")
    counts: dict[str, int]
    accepted_waiting: int = Field(description="Accepted and not yet in a draft.")
    entries: list[EntryOut]


class JobBody(BaseModel):
    draft_id: str | None = Field(default=None, max_length=40,
                                 description="A draft's entries instead of the live version's.")
    entry_ids: list[Annotated[str, Field(max_length=200)]] | None = Field(
        default=None, max_length=MAX_ENTRY_IDS, description="Only these entries (all by default).")


class DecisionBody(BaseModel):
    status: Literal["accepted", "rejected", "proposed"]


class EntryDecisionBody(BaseModel):
    entry_id: str = Field(min_length=1, max_length=200)
    status: Literal["accepted", "rejected"]


class EntryDecisionOut(BaseModel):
    entry_id: str
    changed: int


class DraftMadeOut(BaseModel):
    draft: dict[str, Any] = Field(description="As POST /api/console/knowledge/drafts answers it; publish it with "
                                              "POST /api/console/knowledge/publish.")
    added: int = Field(description="Accepted proposals put in the draft (one an entry has already is skipped).")
    paraphrase_ids: list[int]


def job_view(job: ParaphraseJob) -> JobOut:
    return JobOut(id=job.id, matrix_version=job.matrix_version, status=job.status,
                  status_es=STATUS_ES.get(job.status, job.status), requested_by=job.requested_by,
                  total_entries=job.total_entries, done_entries=job.done_entries, percent=job.percent,
                  proposed=job.proposed, filtered=job.filtered, tokens=job.tokens, error_code=job.error_code,
                  error_es=job.error_es, created_at=job.created_at, finished_at=job.finished_at)


def paraphrase_view(item: Paraphrase) -> ParaphraseOut:
    return ParaphraseOut(id=item.id, entry_id=item.entry_id, text=item.text, status=item.status,
                         reason_es=item.reason_es, other_entry_id=item.other_entry_id, draft_id=item.draft_id,
                         matrix_version=item.matrix_version)


def overview_of(store: ParaphraseStore, enabled: bool, limits: ParaphraseLimits) -> OverviewOut:
    jobs = store.latest_jobs(1)
    latest = jobs[0] if jobs else None
    waiting = [p for p in store.paraphrases("proposed")]
    accepted = [p for p in store.paraphrases("accepted") if p.draft_id is None]
    filtered = [p for p in store.paraphrases("filtered") if latest is not None and p.job_id == latest.id]
    by_entry: dict[str, EntryOut] = {}
    for item in sorted(waiting + accepted, key=lambda p: (p.entry_id, p.id)):
        by_entry.setdefault(item.entry_id, EntryOut(entry_id=item.entry_id, proposals=[], filtered=[]))
        by_entry[item.entry_id].proposals.append(paraphrase_view(item))
    for item in filtered:
        by_entry.setdefault(item.entry_id, EntryOut(entry_id=item.entry_id, proposals=[], filtered=[]))
        by_entry[item.entry_id].filtered.append(paraphrase_view(item))
    return OverviewOut(enabled=enabled, enabled_es="" if enabled else OFF_ES, per_entry=limits.per_entry,
                       max_entries=limits.max_entries, job=job_view(latest) if latest else None,
                       counts=store.counts(), accepted_waiting=len(accepted),
                       entries=[by_entry[key] for key in sorted(by_entry)])


# --- routes ------------------------------------------------------------------------------------------------------

router = APIRouter(tags=["console: formas de preguntar sugeridas"])

EditorPage = Annotated[Principal, Depends(require_role("admin", "editor"))]
EditorOrService = Annotated[Principal, Depends(require_role("admin", "editor", service=True))]
JobId = Annotated[int, Path(ge=1, le=MAX_ID)]
ParaphraseId = Annotated[int, Path(ge=1, le=MAX_ID)]


async def _overview(request: Request) -> OverviewOut:
    service = service_of(request)
    await run_in_threadpool(service.end_stale_jobs)
    return await _stored(request, lambda store: overview_of(store, service.enabled, service.limits))


@router.get(PAGE, response_class=HTMLResponse)
async def paraphrases_page(request: Request, principal: EditorPage) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    overview = await _overview(request)
    return TEMPLATES.TemplateResponse(request, "console/knowledge_paraphrases.html", {
        "user": principal, "csrf_token": principal.csrf_token, "is_production": settings.is_production,
        "is_demo": settings.is_demo, "overview": overview.model_dump(mode="json")})


@router.get(API, response_model=OverviewOut)
async def get_overview(request: Request, principal: EditorOrService) -> OverviewOut:
    """Whether proposals can be asked for (an LLM key), the latest job, and the proposals per entry: those waiting
    for a decision, the accepted ones not yet in a draft, and what the latest job filtered out (with the reason)."""
    return await _overview(request)


@router.post(API + "/jobs", response_model=JobOut, status_code=202)
async def start_job(body: JobBody, request: Request, principal: EditorOrService) -> JSONResponse:
    """Ask the model for up to PARAPHRASES_PER_ENTRY ways of asking per entry of the live version (or a draft's),
    PARAPHRASES_MAX_ENTRIES at most. Answers at once (202); follow the job with GET …/jobs/{job_id}. 409 without an
    LLM key (nothing is sent) or while another job runs."""
    service = service_of(request)
    if not service.enabled:
        raise ConsoleError("paraphrases_off", OFF_ES)
    draft_id = body.draft_id.strip() if body.draft_id and body.draft_id.strip() else None
    version, knowledge = await run_in_threadpool(editor_of(request).knowledge_for, draft_id)
    entries = list(knowledge.entries)
    if body.entry_ids is not None:
        wanted = {entry_id.strip() for entry_id in body.entry_ids}
        entries = [entry for entry in entries if entry.id in wanted]
    if not entries:
        raise ConsoleError("invalid_request", "Ninguna de esas entradas está en la matriz.", field="entry_ids")
    job = await service.start(version, knowledge, entries, principal.username)
    return JSONResponse(job_view(job).model_dump(mode="json"), status_code=202)


@router.get(API + "/jobs/{job_id}", response_model=JobOut)
async def get_job(job_id: JobId, request: Request, principal: EditorOrService) -> JobOut:
    """A job's progress, and how it ended."""
    await run_in_threadpool(service_of(request).end_stale_jobs)
    job = await _stored(request, lambda store: store.job(job_id))
    if job is None:
        raise ConsoleError("not_found", "Esa generación no existe.", job_id=job_id)
    return job_view(job)


@router.post(API + "/{paraphrase_id}/decision", response_model=ParaphraseOut)
async def decide(paraphrase_id: ParaphraseId, body: DecisionBody, request: Request,
                 principal: EditorOrService) -> ParaphraseOut:
    """Accept or reject one proposal (`proposed` undoes the decision) until it goes into a draft."""
    now = now_of(request)
    changed = await _stored(request, lambda store: store.decide(paraphrase_id, body.status, principal.username, now))
    item = await _stored(request, lambda store: store.paraphrase(paraphrase_id))
    if item is None:
        raise ConsoleError("not_found", "Esa propuesta no existe.", paraphrase_id=paraphrase_id)
    if not changed:
        why = ("se descartó antes de la revisión" if item.status == "filtered"
               else f"ya está en el borrador {item.draft_id}")
        raise ConsoleError("invalid_transition", f"Esa propuesta no se puede cambiar: {why}.",
                           paraphrase_id=paraphrase_id)
    return paraphrase_view(item)


@router.post(API + "/entry-decision", response_model=EntryDecisionOut)
async def decide_entry(body: EntryDecisionBody, request: Request, principal: EditorOrService) -> EntryDecisionOut:
    """Accept or reject every proposal of an entry still waiting for a decision."""
    now = now_of(request)
    entry_id = body.entry_id.strip()
    changed = await _stored(request, lambda store: store.decide_entry(entry_id, body.status, principal.username, now))
    return EntryDecisionOut(entry_id=entry_id, changed=changed)


@router.post(API + "/draft", response_model=DraftMadeOut, status_code=201)
async def make_draft(request: Request, principal: EditorOrService) -> JSONResponse:
    """A draft of the matrix: the live version with every accepted proposal not yet in a draft added to its entry,
    and its validation report. Nothing changes for customers until it is published."""
    accepted = await _stored(request, lambda store: store.accepted_undrafted())
    if not accepted:
        raise ConsoleError("invalid_transition", "No hay propuestas aceptadas para agregar: acepte alguna primero.")
    ids = [item.id for item in accepted]
    editor = editor_of(request)
    draft = await run_in_threadpool(lambda: editor.draft_with_questions(
        [(item.entry_id, item.text) for item in accepted], principal.username,
        origin={"action": "paraphrases", "paraphrase_ids": ids}))
    await _stored(request, lambda store: store.mark_drafted(ids, draft.id))
    log.info("paraphrases drafted", extra={"draft_id": draft.id, "count": len(ids), "by": principal.username})
    answer = DraftMadeOut(draft=draft.to_dict(), added=len(ids), paraphrase_ids=ids)
    return JSONResponse(answer.model_dump(mode="json"), status_code=201)


def install(app: FastAPI) -> None:
    """Mount the page and the API (the store is opened on first use, at `settings.store_url("paraphrases")`)."""
    app.include_router(router)
