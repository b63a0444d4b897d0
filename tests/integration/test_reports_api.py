"""«Reportes» over real HTTP (the app under uvicorn, its lifespan opening the real SQLite stores) with a history
written through the stores' own APIs before the app starts: people writing on three local days (one just before a
Guayaquil midnight, which is the next day in UTC), questions handled each way, two handoffs (one answered and
closed by an agent, one still open), sends sent, blocked and failed with Meta's 551, contacts by campaign. The JSON
and the CSV must equal the figures written; the editor gets the knowledge part only; agents are refused; bad
periods are 400 naming the field, never a 500; charts are SVG images.

Would catch: a day bucketed in UTC, the share counting «¿Quisiste decir…?» without a choice, a followed «¿Quisiste
decir…?» counted as unanswered beside its tap, an episode's wait measured from the wrong moment, a CSV that differs
from the JSON, an agent reaching the report, `hasta=9999-12-31` answered with a 500."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import create_app
from console.reports import PeriodReportOut
from core.settings import DEMO_SERVICE_TOKEN, Settings
from tests.support.console_client import ConsoleSession
from tests.support.report_history import PAGE, PERIOD, fill
from tests.support.servers import RunningServer, serve_asgi

API = "/api/console/reports"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("reports-api"), comments_poll_seconds=3600.0,
                        handoff_idle_resume_minutes=0, graph_api_base="http://127.0.0.1:9")
    fill(settings)
    with serve_asgi(create_app(settings)) as running:
        yield running


@pytest.fixture(scope="module")
def sessions(server: RunningServer) -> Iterator[dict[str, ConsoleSession]]:
    opened = {name: ConsoleSession(server.base_url, name) for name in ("admin", "editor", "agente")}
    yield opened
    for session in opened.values():
        session.close()


def records(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return list(body["tables"][name]["rows"])


def test_the_admins_report_equals_the_history_written(sessions: dict[str, ConsoleSession]) -> None:
    answer = sessions["admin"].get(API, params=PERIOD)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["period"]["timezone"] == "America/Guayaquil" and body["part"] == "all"
    days = [(r["fecha"], r["mensajes"], r["conversaciones"], r["contactos_nuevos"]) for r in records(body, "dias")]
    assert days == [("2025-03-01", 3, 2, 2), ("2025-03-02", 0, 0, 0), ("2025-03-03", 1, 1, 0)]
    # 3 matrix + 1 selected of 7 handled: 57.1 %; the offer the tap followed counts once, as the tap (counted as an
    # offer too, it was 4 of 8, 50 %); the other person's offer, not followed, is a did_you_mean; no questions the 3
    # days before
    assert body["headline"] == {"answered_without_person_pct": {"current": 57.1, "previous": None, "points": None},
                                "handled": 7}
    handling = {r["tipo"]: r["preguntas"] for r in records(body, "atencion")}
    assert handling == {"matrix": 3, "selected": 1, "gpt": 0, "did_you_mean": 1, "no_answer": 1, "handoff": 1}
    assert [(r["entrada"], r["usos"]) for r in records(body, "entradas")] == [("horario", 3), ("precios", 1)]
    summary = body["summary"]
    assert (summary["episodes"], summary["episodes_open"], summary["episodes_closed_without_reply"]) == (2, 1, 0)
    assert (summary["first_reply_p50_seconds"], summary["close_p50_seconds"]) == (120, 1800)
    agents = {r["agente"]: r for r in records(body, "agentes")}
    assert (agents["ana"]["episodios"], agents["ana"]["respondidas"], agents["ana"]["cerradas"]) == (1, 1, 1)
    assert {r["motivo"]: r["episodios"] for r in records(body, "pausas")} == {"user_asked": 1, "bot_failed": 1}
    sends = {(r["estado"], r["codigo_error"]): r["mensajes"] for r in records(body, "envios")}
    assert sends == {("sent", None): 2, ("blocked", None): 1, ("failed", 551): 1}
    assert (summary["sends_sent"], summary["sends_blocked"], summary["sends_failed"]) == (2, 1, 1)
    assert {r["campana"]: r["contactos_nuevos"] for r in records(body, "campanas")} == {"verano": 1,
                                                                                      "(sin campaña)": 1}
    assert set(body["charts"]) == {"mensajes", "sin_persona", "atencion", "pausas", "envios"}


def test_the_json_is_what_the_documented_schema_says(sessions: dict[str, ConsoleSession]) -> None:
    """The route answers `view`'s dict without validating it against `PeriodReportOut` on every request: it must be
    exactly what that model reads and writes back (every field there, nothing else, the same values and order)."""
    for name in ("admin", "editor"):
        answer = sessions[name].get(API, params=PERIOD)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert PeriodReportOut.model_validate(body).model_dump(mode="json") == body
        assert list(body) == list(PeriodReportOut.model_fields)


def test_every_table_downloads_as_the_csv_of_its_json(sessions: dict[str, ConsoleSession]) -> None:
    admin = sessions["admin"]
    body = admin.get(API, params=PERIOD).json()
    for name, found in body["tables"].items():
        answer = admin.get(f"{API}/{name}.csv", params=PERIOD)
        assert answer.status_code == 200, (name, answer.text)
        assert answer.headers["content-type"].startswith("text/csv")
        assert f"reporte-{name}-2025-03-01-2025-03-03.csv" in answer.headers["content-disposition"]
        assert answer.content.startswith(codecs.BOM_UTF8)
        read = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig")), delimiter=";"))
        assert read[0] == [column["label"] for column in found["columns"]]
        assert len(read) - 1 == len(found["rows"]), name
    days = list(csv.reader(io.StringIO(admin.get(f"{API}/dias.csv", params=PERIOD).content.decode("utf-8-sig")),
                           delimiter=";"))
    assert days[1] == ["2025-03-01", "3", "2", "2"]


def test_charts_are_svg_images(sessions: dict[str, ConsoleSession]) -> None:
    answer = sessions["admin"].get(f"{API}/charts/mensajes.svg", params=PERIOD)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/svg+xml"
    assert answer.text.startswith("<svg") and "<script" not in answer.text
    assert sessions["admin"].get(f"{API}/charts/nada.svg", params=PERIOD).status_code == 404


def test_the_editor_gets_the_knowledge_part_and_the_agent_nothing(sessions: dict[str, ConsoleSession],
                                                                  server: RunningServer) -> None:
    editor = sessions["editor"].get(API, params=PERIOD).json()
    assert editor["part"] == "knowledge"
    assert set(editor["tables"]) == {"atencion_por_dia", "atencion", "entradas", "entradas_sin_uso", "sin_respuesta",
                                     "resumen"}
    assert editor["headline"]["handled"] == 7
    assert sessions["editor"].get(f"{API}/agentes.csv", params=PERIOD).status_code == 404
    assert sessions["editor"].get(f"{API}/charts/envios.svg", params=PERIOD).status_code == 404
    assert sessions["editor"].get("/console/reports", params=PERIOD).status_code == 200
    for path in (API, f"{API}/dias.csv", f"{API}/charts/mensajes.svg", "/console/reports"):
        refused = sessions["agente"].get(path, params=PERIOD)
        assert refused.status_code == 403, path
    service = httpx.get(server.url(API), params=PERIOD, headers={"Authorization": f"Bearer {DEMO_SERVICE_TOKEN}"})
    assert service.status_code == 200 and service.json()["part"] == "all"


@pytest.mark.parametrize(("params", "field"), [
    ({"desde": "2025-03-05", "hasta": "2025-03-01"}, "hasta"),
    ({"desde": "01/03/2025"}, "desde"),
    ({"hasta": "9999-12-31"}, "hasta"),
    ({"hasta": "0001-01-05"}, "hasta"),
    ({"desde": "2020-01-01", "hasta": "2025-03-01"}, "hasta"),
    ({"pagina": "999"}, "pagina"),
    ({"pagina": "<script>"}, "pagina"),
    ({"desde": "\x00"}, "desde"),
])
def test_bad_params_are_400_naming_the_field(sessions: dict[str, ConsoleSession], params: dict[str, str],
                                             field: str) -> None:
    for path in (API, f"{API}/dias.csv", f"{API}/charts/mensajes.svg"):
        answer = sessions["admin"].get(path, params=params)
        assert answer.status_code == 400, (path, params, answer.text)
        error = answer.json()["error"]
        assert error["reason_code"] == "report_invalid" and error["field"] == field and error["message"]
    page = sessions["admin"].get("/console/reports", params=params)
    assert page.status_code == 400 and "text/html" in page.headers["content-type"]


def test_a_table_or_chart_name_too_long_is_400_like_any_bad_param(sessions: dict[str, ConsoleSession]) -> None:
    for path, field in ((f"{API}/{'a' * 41}.csv", "table"), (f"{API}/charts/{'a' * 41}.svg", "chart")):
        answer = sessions["admin"].get(path, params=PERIOD)
        assert answer.status_code == 400, (path, answer.status_code, answer.text)
        assert answer.json()["error"]["reason_code"] == "report_invalid" and answer.json()["error"]["field"] == field
    assert sessions["admin"].get(f"{API}/{'a' * 40}.csv", params=PERIOD).status_code == 404


def test_the_headline_and_summary_download_as_the_resumen_csv(sessions: dict[str, ConsoleSession]) -> None:
    answer = sessions["admin"].get(f"{API}/resumen.csv", params=PERIOD)
    assert answer.status_code == 200
    read = {row[0]: row[2] for row in csv.reader(io.StringIO(answer.content.decode("utf-8-sig")), delimiter=";")}
    assert read["answered_without_person_pct"] == "57,1" and read["handled"] == "7"
    assert read["episodes_auto_closed"] == "0" and read["sends_failed"] == "1"


def test_the_page_shows_the_headline_charts_and_csv_links(sessions: dict[str, ConsoleSession]) -> None:
    page = sessions["admin"].get("/console/reports", params=PERIOD)
    assert page.status_code == 200
    assert 'id="headline-share">57.1 %' in page.text
    assert "De 7 preguntas atendidas, el 57.1 % se respondió sin que interviniera una persona" in page.text
    assert '/api/console/reports/charts/mensajes.svg?desde=2025-03-01&amp;hasta=2025-03-03' in page.text
    assert '/api/console/reports/dias.csv?desde=2025-03-01&amp;hasta=2025-03-03' in page.text
    assert ">Reportes</a>" in page.text
    default = sessions["admin"].get(API)
    assert default.status_code == 200 and default.json()["period"]["days"] == 30
    now = datetime.now(timezone.utc) - timedelta(hours=5)
    assert default.json()["period"]["hasta"] in (now.date().isoformat(), (now + timedelta(days=1)).date().isoformat())


QUERY_VALUES = st.one_of(st.text(max_size=24), st.sampled_from(["", "2025-03-01", "2025-02-29", "2024-02-29",
                                                                "0000-01-01", "0001-01-05", "9999-12-31",
                                                                "2025-03-01T00:00", PAGE, "0", "-1",
                                                                "\x00", "２０２５-03-01"]))


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(params=st.dictionaries(st.sampled_from(["desde", "hasta", "pagina"]), QUERY_VALUES, max_size=3),
       path=st.sampled_from([API, f"{API}/atencion.csv", f"{API}/charts/atencion.svg", "/console/reports"]))
def test_any_query_is_a_report_or_a_400_never_a_500(sessions: dict[str, ConsoleSession], params: dict[str, str],
                                                    path: str) -> None:
    clean = {k: v.encode("utf-8", "replace").decode("utf-8") for k, v in params.items()}
    answer = sessions["editor"].get(path, params=clean)
    assert answer.status_code in (200, 400), (path, clean, answer.status_code, answer.text[:300])
    if answer.status_code == 400 and path.startswith("/api/"):
        assert answer.json()["error"]["field"] in ("desde", "hasta", "pagina")
