"""The console's "Perfil de Messenger" page and API: admins edit the page's Get Started button, greeting, ice
breakers and persistent menu, then apply them to Facebook ("Aplicar en Facebook").

- `GET /console/page-profile`: the page (admins).
- `GET /api/console/page-profile?page_id=`: the saved profile (or the default one), what was applied, Facebook's
  last answer.
- `PUT /api/console/page-profile`: `{"page_id", "profile"}`, the profile in Meta's shape; checked as Meta checks it
  (422 `invalid_profile` with `field` and Spanish words), saved, not applied.
- `POST /api/console/page-profile/apply`: `{"page_id"}`; applies the saved profile with the Messenger Profile API.
- `GET /api/console/page-profile/live?page_id=`: the profile as Facebook has it now.

The API takes the service token too. The store opens on first use (`Settings.store_url("page_profile")`); the Graph
client is the app's (`app.state.graph`), else one of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from console.auth import Principal, require_role
from console.parts import now_of, pages_of, state_store
from core.settings import Settings
from meta.graph import GraphClient
from meta.messenger_profile import (
    CALLS_PER_TEN_MINUTES,
    GET_STARTED_PAYLOAD_MAX_CHARS,
    GREETING_TEXT_MAX_CHARS,
    ICE_BREAKERS_MAX,
    MENU_ITEM_TITLE_MAX_CHARS,
    MENU_ITEMS_MAX,
)
from page_profile.apply import ProfileGraph, apply_profile, live_profile
from page_profile.model import (
    DEFAULT_GET_STARTED_PAYLOAD,
    ICE_BREAKER_QUESTION_MAX_CHARS,
    PAYLOAD_MAX_CHARS,
    PageProfileError,
    default_profile,
    parse_profile,
)
from page_profile.store import PageProfileStore, open_page_profile_store

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
PAGE_ID_PATTERN = r"^[0-9]{1,32}$"
LIMITS = {
    "greeting_text": GREETING_TEXT_MAX_CHARS,
    "get_started_payload": GET_STARTED_PAYLOAD_MAX_CHARS,
    "ice_breakers": ICE_BREAKERS_MAX,
    "ice_breaker_question": ICE_BREAKER_QUESTION_MAX_CHARS,
    "payload": PAYLOAD_MAX_CHARS,
    "menu_items": MENU_ITEMS_MAX,
    "menu_item_title": MENU_ITEM_TITLE_MAX_CHARS,
    "calls_per_ten_minutes": CALLS_PER_TEN_MINUTES,
}


class UnknownPage(PageProfileError):
    reason_code = "unknown_page"

    def __init__(self, page_id: str) -> None:
        super().__init__(f"page {page_id} is not configured")
        self.message_es = f"La página {page_id} no está configurada en este bot (PAGE_ACCESS_TOKENS)."


class PageIdBody(BaseModel):
    page_id: str = Field(pattern=PAGE_ID_PATTERN)


class ProfileBody(BaseModel):
    page_id: str = Field(pattern=PAGE_ID_PATTERN)
    profile: dict[str, Any]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    try:
        yield
    finally:
        store = getattr(app.state, "page_profile_store", None)
        if store is not None:
            store.close()
            app.state.page_profile_store = None
        own = getattr(app.state, "page_profile_graph", None)
        if own is not None:
            await own.close()
            app.state.page_profile_graph = None


pages = APIRouter(prefix="/console", tags=["console pages"], lifespan=_lifespan)
api = APIRouter(prefix="/api/console", tags=["console"])

AdminPage = Annotated[Principal, Depends(require_role("admin"))]
Admin = Annotated[Principal, Depends(require_role("admin", service=True))]


def install(app: FastAPI) -> None:
    """Mount the page and the API (called from `console.routes.install`)."""
    app.include_router(pages)
    app.include_router(api)


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def store_of(request: Request) -> PageProfileStore:
    return state_store(request, "page_profile_store",
                       lambda settings: open_page_profile_store(settings.store_url("page_profile")))


def graph_of(request: Request) -> ProfileGraph:
    state = request.app.state
    shared: ProfileGraph | None = getattr(state, "graph", None)
    if shared is not None:
        return shared
    own: GraphClient | None = getattr(state, "page_profile_graph", None)
    if own is None:
        settings = _settings(request)
        own = GraphClient(settings.page_tokens, base_url=settings.graph_api_base, version=settings.graph_api_version,
                          timeout_seconds=settings.graph_timeout_seconds)
        state.page_profile_graph = own
    return own


def _known_page(request: Request, page_id: str) -> str:
    if page_id not in _settings(request).page_tokens:
        raise UnknownPage(page_id)
    return page_id


async def profile_view(request: Request, page_id: str) -> dict[str, Any]:
    stored = await run_in_threadpool(store_of(request).get, page_id)
    return {
        "page_id": page_id,
        "pages": pages_of(request),
        "saved": stored is not None,
        "profile": stored.profile if stored is not None else default_profile().to_dict(),
        "status": stored.to_dict() if stored is not None else None,
        "limits": LIMITS,
        "default_get_started_payload": DEFAULT_GET_STARTED_PAYLOAD,
    }


# --- the page --------------------------------------------------------------------------------------


@pages.get("/page-profile", response_class=HTMLResponse)
async def page_profile_page(
    request: Request, principal: AdminPage, page_id: Annotated[str | None, Query(pattern=PAGE_ID_PATTERN)] = None
) -> HTMLResponse:
    ids = pages_of(request)
    chosen = _known_page(request, page_id) if page_id else (ids[0] if ids else "")
    view = await profile_view(request, chosen) if chosen else {"pages": [], "page_id": "", "limits": LIMITS}
    settings = _settings(request)
    return TEMPLATES.TemplateResponse(
        request,
        "console/page_profile.html",
        {"user": principal, "csrf_token": principal.csrf_token, "is_production": settings.is_production,
         "is_demo": settings.is_demo, "view": view},
    )


# --- the API ---------------------------------------------------------------------------------------


@api.get("/page-profile")
async def get_page_profile(
    request: Request, principal: Admin, page_id: Annotated[str, Query(pattern=PAGE_ID_PATTERN)]
) -> dict[str, Any]:
    return await profile_view(request, _known_page(request, page_id))


@api.put("/page-profile")
async def save_page_profile(body: ProfileBody, request: Request, principal: Admin) -> dict[str, Any]:
    page_id = _known_page(request, body.page_id)
    profile = parse_profile(body.profile)
    await run_in_threadpool(store_of(request).save, page_id, profile.to_dict(), principal.username, now_of(request))
    return await profile_view(request, page_id)


@api.post("/page-profile/apply")
async def apply_page_profile(body: PageIdBody, request: Request, principal: Admin) -> dict[str, Any]:
    page_id = _known_page(request, body.page_id)
    await apply_profile(graph_of(request), store_of(request), page_id, principal.username, now_of(request))
    return await profile_view(request, page_id)


@api.get("/page-profile/live")
async def get_live_profile(
    request: Request, principal: Admin, page_id: Annotated[str, Query(pattern=PAGE_ID_PATTERN)]
) -> dict[str, Any]:
    page_id = _known_page(request, page_id)
    return {"page_id": page_id, "live": await live_profile(graph_of(request), page_id)}
