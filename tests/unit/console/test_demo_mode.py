"""Demo users, their printed passwords, the sandbox, its chat and the API docs exist only in the demo: development
with the sandbox page as the only page (issue 8, item 2).

On the old code a real page token with `BOT_ENV` unset started the app in development: `admin/admin-demo` was
created, the login page printed the password, and `/docs`, `/openapi.json` and `/sandbox/...` were served.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bot.app import create_app
from console.users_cli import console_logins_hint
from core.settings import Settings, SettingsError, load_settings
from tests.support.console_routes import PAGE, PRODUCTION, app_routes

REAL_PAGE = "104523456789012"
REAL_LOOKING = {
    "MESSENGER_APP_SECRET": PRODUCTION["app_secret"],
    "MESSENGER_VERIFY_TOKEN": PRODUCTION["verify_token"],
    "BOT_SERVICE_TOKEN": PRODUCTION["service_token"],
    "RASA_API_TOKEN": PRODUCTION["rasa_token"],
    "MESSENGER_APP_ID": PRODUCTION["app_id"],
    "MESSENGER_PAGE_ID": REAL_PAGE,
    "MESSENGER_PAGE_ACCESS_TOKEN": "fake-page-token-for-tests-0001",
}
DEMO_ONLY_PATHS = ("/docs", "/redoc", "/openapi.json", "/sandbox/chat", "/sandbox/sent", "/v21.0/me/messages")


def test_a_real_page_with_bot_env_unset_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="set BOT_ENV=production"):
        load_settings({**REAL_LOOKING, "BOT_DATA_DIR": str(tmp_path)})


def test_make_run_without_any_environment_is_still_the_demo(tmp_path: Path) -> None:
    settings = load_settings({"BOT_DATA_DIR": str(tmp_path)})
    app = create_app(settings)
    client = TestClient(app)
    assert settings.is_demo
    assert [u.username for u in app.state.console_auth.store.users()] == ["admin", "agente", "editor"]
    assert "admin-demo" in client.get("/console/login").text
    assert "admin / admin-demo" in console_logins_hint(settings)
    for path in ("/docs", "/openapi.json", "/sandbox/chat"):
        assert client.get(path).status_code == 200, path


@pytest.mark.parametrize(
    "settings",
    [
        # What load_settings builds for a real page when told it is a test (BOT_ENV=test): sends go to Meta.
        pytest.param({"environment": "test", "graph_api_base": "https://graph.facebook.com"}, id="test-env"),
        # The same page handed to create_app directly in development (load_settings would have refused).
        pytest.param({"environment": "development", "graph_api_base": "https://graph.facebook.com"}, id="dev"),
        # Real secrets, a real page and the sandbox page beside it.
        pytest.param({"environment": "development", "graph_api_base": "https://graph.facebook.com",
                      "extra_sandbox_page": True}, id="dev-plus-sandbox-page"),
    ],
)
def test_a_real_page_gets_no_demo_users_no_printed_password_no_docs_no_sandbox(
    tmp_path: Path, settings: dict[str, object]
) -> None:
    pages = {REAL_PAGE: "fake-page-token-for-tests-0001"}
    if settings.pop("extra_sandbox_page", False):
        pages[PAGE] = "sandbox-page-token"
    built = Settings(data_dir=tmp_path, page_tokens=pages, app_secret=PRODUCTION["app_secret"],
                     service_token=PRODUCTION["service_token"], **settings)  # type: ignore[arg-type]
    app = create_app(built)
    client = TestClient(app)

    assert app.state.console_auth.store.users() == [], "demo users were created beside a real page"
    login = client.get("/console/login")
    assert login.status_code == 200
    assert "admin-demo" not in login.text and "demostración" not in login.text
    assert "admin-demo" not in console_logins_hint(built)
    for path in DEMO_ONLY_PATHS:
        assert client.get(path).status_code in (404, 405), path
    assert not {route for route in app_routes(app) if route[1].startswith("/sandbox")}
    assert client.get("/health").json()["sandbox"] is False
