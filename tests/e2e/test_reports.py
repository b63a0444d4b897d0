"""«Reportes» in a real browser (Debian's Chromium), without Rasa: the app under uvicorn with a small history
written through the stores' own APIs (tests/support/report_history.py). An admin opens «Reportes» from the menu,
picks the period, sees the headline share answered without a person, the charts drawn as images, and downloads a
table as CSV (with its BOM and the figures of the page)."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from bot.app import create_app
from core.settings import Settings
from tests.support.report_history import PERIOD, SHARE, fill
from tests.support.servers import RunningServer, serve_asgi


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("reports-e2e"), comments_poll_seconds=3600.0,
                        handoff_idle_resume_minutes=0, graph_api_base="http://127.0.0.1:9")
    fill(settings)
    with serve_asgi(create_app(settings)) as running:
        yield running


def test_an_admin_reads_the_report_and_downloads_a_table(page: Any, app_server: RunningServer,
                                                         tmp_path: Path) -> None:
    page.goto(app_server.url("/console/login"))
    page.fill("#username", "admin")
    page.fill("#password", "admin-demo")
    page.click("button[type=submit]")
    page.get_by_role("link", name="Reportes").click()
    expect(page).to_have_url(app_server.url("/console/reports"))
    page.fill("#report-desde", PERIOD["desde"])
    page.fill("#report-hasta", PERIOD["hasta"])
    page.get_by_role("button", name="Ver reporte").click()
    expect(page.locator("#headline-share")).to_have_text(SHARE)

    chart = page.locator('img[data-chart="mensajes"]')
    expect(chart).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=chart.element_handle())

    with page.expect_download() as download_info:
        page.locator("#tabla-dias a.csv-link").click()
    download = download_info.value
    assert download.suggested_filename == "reporte-dias-2025-03-01-2025-03-03.csv"
    saved = tmp_path / "dias.csv"
    download.save_as(saved)
    data = saved.read_bytes()
    assert data.startswith(codecs.BOM_UTF8)
    assert "2025-03-01;3;2;2" in data.decode("utf-8-sig")
