"""«Reportes»: what the bot and the team did over a period, for admins (everything) and editors (the knowledge part:
how questions were handled, the entries, the unanswered ones). The report is `reports.service.Reports` at
`app.state.reports` (bot/app.py builds it beside the other services).

Page: `/console/reports`. JSON: `/api/console/reports`; every table as CSV: `/api/console/reports/{table}.csv`;
charts as SVG images: `/api/console/reports/charts/{chart}.svg`. All take `desde` and `hasta` (YYYY-MM-DD, local days
of the business timezone; by default the last 30 days ending today) and `pagina` (one Facebook page; all by default).
A period or page that cannot be reported on is 400 (`report_invalid`, the field named, in Spanish). Agents are
refused; the service token reads everything over the API.

Mounted by `console.routes.install` (`install`); this module does not import it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path as FilePath
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from console.auth import Principal, require_role
from console.parts import ConsoleError, now_of, pages_of
from core.settings import Settings
from handoff.reply_window import duration_es
from reports import charts
from reports.csv_files import filename_of, table_csv
from reports.model import Part, Period, Report, ReportInvalid, ReportsUnavailable
from reports.service import Reports

TEMPLATES = Jinja2Templates(directory=str(FilePath(__file__).parent / "templates"))
API = "/api/console/reports"
PAGE = "/console/reports"
CACHE_SECONDS = 10.0  # the page, its charts and its CSV links ask for the same report at once
CACHE_SIZE = 16

router = APIRouter(tags=["console: reportes"])
ReportPage = Annotated[Principal, Depends(require_role("admin", "editor"))]
ReportReader = Annotated[Principal, Depends(require_role("admin", "editor", service=True))]

Desde = Annotated[str | None, Query(description="Primer día (AAAA-MM-DD, hora local del negocio). Por omisión, 29 "
                                                "días antes de `hasta`.", examples=["2025-03-01"])]
Hasta = Annotated[str | None, Query(description="Último día, incluido (AAAA-MM-DD). Por omisión, hoy.",
                                    examples=["2025-03-31"])]
Pagina = Annotated[str | None, Query(description="El id de una página de Facebook configurada; todas por omisión.")]
MAX_NAME = 40
# Checked by `name_of` (400 `report_invalid`, like every other bad parameter here), not by FastAPI (422).
TableName = Annotated[str, Path(description=f"El nombre de una tabla del reporte (`tables` del JSON), hasta {MAX_NAME} "
                                            "caracteres.")]
ChartName = Annotated[str, Path(description=f"mensajes, sin_persona, atencion, pausas o envios (hasta {MAX_NAME} "
                                            "caracteres).")]

INVALID: dict[int | str, dict[str, Any]] = {
    400: {"description": "Período, página o nombre no válidos (`report_invalid`, con el campo y el motivo en "
                         "español)."}}


class ColumnOut(BaseModel):
    key: str
    label: str


class TableOut(BaseModel):
    name: str
    title: str
    note: str
    columns: list[ColumnOut]
    rows: list[dict[str, Any]] = Field(description="Una fila por objeto, con las claves de `columns`.")


class TrendOut(BaseModel):
    current: float | None = Field(description="% del período (0–100); null sin preguntas.")
    previous: float | None = Field(description="% del período anterior de igual duración.")
    points: float | None = Field(description="Diferencia en puntos porcentuales.")


class HeadlineOut(BaseModel):
    answered_without_person_pct: TrendOut
    handled: int = Field(description="Preguntas atendidas en el período.")


class PeriodOut(BaseModel):
    desde: str
    hasta: str
    pagina: str | None
    timezone: str
    days: int
    since_utc: str
    until_utc: str


class PeriodReportOut(BaseModel):
    period: PeriodOut
    part: str = Field(description="all (administradores) | knowledge (editores)")
    headline: HeadlineOut
    summary: dict[str, Any]
    tables: dict[str, TableOut]
    charts: list[str] = Field(description="Los gráficos de esta parte: /api/console/reports/charts/{nombre}.svg")


def part_of(principal: Principal) -> Part:
    return "knowledge" if principal.role == "editor" else "all"


def name_of(value: str, field: str) -> str:
    """A table's or chart's name as asked for: longer than any of them is a bad parameter (400), not a 422."""
    if len(value) > MAX_NAME:
        raise ReportInvalid(field, f"«{field}» tiene más de {MAX_NAME} caracteres; use un nombre de `tables` o "
                                   "`charts` del reporte.")
    return value


def reports_of(request: Request) -> Reports:
    service: Reports | None = getattr(request.app.state, "reports", None)
    if service is None:
        raise ReportsUnavailable("Los reportes no están disponibles; intente en un momento.")
    return service


def period_of(request: Request, desde: str | None, hasta: str | None, pagina: str | None) -> Period:
    settings: Settings = request.app.state.settings
    try:
        tz = ZoneInfo(settings.business_timezone)
    except (ZoneInfoNotFoundError, ValueError):  # settings check it; a bad one is the deployment's, not the caller's
        tz = ZoneInfo("UTC")
    period = Period.parse(desde, hasta, pagina, today=now_of(request).astimezone(tz).date(), tz=tz)
    if period.page_id is not None and period.page_id not in pages_of(request):
        raise ReportInvalid("pagina", f"La página {period.page_id} no está configurada.")
    return period


async def report_of(request: Request, period: Period, part: Part) -> Report:
    """The report, shared for a few seconds by the requests that ask for the same one (the page's charts and CSVs
    come right after it)."""
    state = request.app.state
    cache: dict[tuple[Any, ...], tuple[float, asyncio.Task[Report]]] | None = getattr(state, "report_cache", None)
    if cache is None:
        cache = state.report_cache = {}
    key = (period, part)
    now = time.monotonic()
    found = cache.get(key)
    if found is None or now - found[0] > CACHE_SECONDS or (found[1].done() and found[1].exception() is not None):
        for old in [k for k, (at, _) in cache.items() if now - at > CACHE_SECONDS]:
            del cache[old]
        while len(cache) >= CACHE_SIZE:
            del cache[next(iter(cache))]
        found = cache[key] = (now, asyncio.ensure_future(reports_of(request).build(period, part)))
    return await asyncio.shield(found[1])


def view(report: Report) -> dict[str, Any]:
    return {**report.to_dict(), "charts": charts.charts_of(report)}


def query_of(period: Period) -> str:
    query = f"desde={period.first_day.isoformat()}&hasta={period.last_day.isoformat()}"
    return query + (f"&pagina={period.page_id}" if period.page_id else "")


def seconds_es(value: Any) -> str:
    """Seconds as the console says a wait («3 min», «2 h 5 min»); empty for none."""
    return duration_es(timedelta(seconds=value)) if isinstance(value, int | float) else ""


# --- routes --------------------------------------------------------------------------------------------------------


@router.get(PAGE, response_class=HTMLResponse, responses=INVALID)
async def reports_page(request: Request, principal: ReportPage, desde: Desde = None, hasta: Hasta = None,
                       pagina: Pagina = None) -> HTMLResponse:
    period = period_of(request, desde, hasta, pagina)
    report = await report_of(request, period, part_of(principal))
    settings: Settings = request.app.state.settings
    return TEMPLATES.TemplateResponse(request, "console/reports.html", {
        "user": principal, "csrf_token": principal.csrf_token, "is_production": settings.is_production,
        "is_demo": settings.is_demo, "report": view(report), "query": query_of(period), "page_ids": pages_of(request),
        "seconds_es": seconds_es, "chart_titles": {name: chart.title for name, chart in charts.CHARTS.items()}})


@router.get(API, response_model=PeriodReportOut, responses=INVALID)
async def get_report(request: Request, principal: ReportReader, desde: Desde = None, hasta: Hasta = None,
                     pagina: Pagina = None) -> Response:
    """The report of the period: the headline (the share of questions answered without a person, with the period
    before's and the difference in points), summary figures and every table (editors: the knowledge part)."""
    period = period_of(request, desde, hasta, pagina)
    # `PeriodReportOut` documents the answer; it is `view`'s dict as JSON, not validated again on every request
    # (a year's report is ~100 KB: the validation cost more than reading the counters).
    # tests/integration/test_reports_api.py checks the answer against the schema.
    return JSONResponse(view(await report_of(request, period, part_of(principal))))


@router.get(API + "/{table}.csv", response_class=Response, responses={
    200: {"content": {"text/csv": {}}, "description": "UTF-8 con BOM, separado por «;», decimales con coma."},
    **INVALID})
async def report_csv(table: TableName, request: Request, principal: ReportReader, desde: Desde = None,
                     hasta: Hasta = None, pagina: Pagina = None) -> Response:
    """One table of the report as CSV (Excel opens it; cells a spreadsheet would run as formulas are escaped)."""
    table = name_of(table, "table")
    period = period_of(request, desde, hasta, pagina)
    report = await report_of(request, period, part_of(principal))
    found = report.tables.get(table)
    if found is None:
        raise ConsoleError("not_found", f"El reporte no tiene una tabla «{table[:40]}».",
                           tables=list(report.tables))
    name = filename_of(found, period.first_day.isoformat(), period.last_day.isoformat())
    return Response(table_csv(found), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get(API + "/charts/{chart}.svg", response_class=Response, responses={
    200: {"content": {"image/svg+xml": {}}, "description": "Un gráfico SVG sin scripts."}, **INVALID})
async def report_chart(chart: ChartName, request: Request, principal: ReportReader, desde: Desde = None,
                       hasta: Hasta = None, pagina: Pagina = None) -> Response:
    """A chart of the report as an SVG image (for an `<img>`)."""
    chart = name_of(chart, "chart")
    period = period_of(request, desde, hasta, pagina)
    report = await report_of(request, period, part_of(principal))
    drawing = charts.draw(report, chart)
    if drawing is None:
        raise ConsoleError("not_found", f"El reporte no tiene un gráfico «{chart[:40]}».",
                           charts=charts.charts_of(report))
    return Response(drawing, media_type="image/svg+xml",
                    headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})


def install(app: FastAPI) -> None:
    """Mount the page and the API (the report is the app's, `app.state.reports`)."""
    app.include_router(router)
