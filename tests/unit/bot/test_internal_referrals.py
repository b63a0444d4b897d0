"""`POST /internal/referrals` in-process (the app, not entered: its links store over SQLite in a temporary directory).

Would catch: a time UTC cannot hold (year 9999 behind UTC, year 1 ahead) answered with a 500 (OverflowError when
stored), and text with NUL accepted by SQLite but refused by PostgreSQL (a 500 on one database only)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bot.app import create_app
from core.settings import SANDBOX_PAGE_ID, Settings

AUTH = {"Authorization": "Bearer dev-token"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("referrals"), service_token="dev-token"))
    http = TestClient(app)  # not entered: the lifespan (outbox worker, comment processor) does not run
    yield http
    http.close()


def referral(**fields: Any) -> dict[str, Any]:
    return {"event_key": "ingest:1", "page_id": SANDBOX_PAGE_ID, "user_id": "6123456789012345", "ref": "menu_mesas",
            "source": "SHORTLINK", "via": "referral", "at": "2026-03-02T15:00:00Z", **fields}


@pytest.mark.parametrize("at", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+01:00"])
def test_a_time_utc_cannot_hold_is_a_422(client: TestClient, at: str) -> None:
    answer = client.post("/internal/referrals", json=referral(at=at, event_key=f"ingest:{at}"), headers=AUTH)

    assert answer.status_code == 422, answer.text


@pytest.mark.parametrize("field", ["event_key", "user_id", "ref", "source", "ad_id"])
def test_text_with_nul_is_a_422_on_every_database(client: TestClient, field: str) -> None:
    answer = client.post("/internal/referrals", json=referral(**{field: "a\x00b"}), headers=AUTH)

    assert answer.status_code == 422, answer.text


def test_a_referral_at_the_end_of_year_9999_utc_is_recorded(client: TestClient) -> None:
    answer = client.post("/internal/referrals", json=referral(at="9999-12-31T23:59:59+00:00", event_key="ingest:end"),
                         headers=AUTH)

    assert answer.status_code == 200 and answer.json()["recorded"] is True, answer.text
