"""One settings object from the environment: safe local defaults, clear refusals in production."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import (
    DEFAULT_GRAPH_API_VERSION,
    DEMO_APP_SECRET,
    DEMO_SERVICE_TOKEN,
    DEMO_VERIFY_TOKEN,
    ROOT,
    SANDBOX_PAGE_ID,
    SANDBOX_PAGE_TOKEN,
    Settings,
    SettingsError,
    load_settings,
    parse_page_tokens,
)

APP_SECRET = "3b1f0c9d8e7a6b5c4d3e2f1a0b9c8d7e"
VERIFY_TOKEN = "verify-token-for-tests-7Qp2xZr9"
SERVICE_TOKEN = "service-token-for-tests-Kd83hFq1-0001"
RASA_TOKEN = "rasa-token-for-tests-Hq83kd9-000000001"
PAGE_TOKEN = "fake-page-token-for-tests-0001"
OTHER_PAGE_TOKEN = "fake-page-token-for-tests-0002"
APP_ID = "1517776481860111"
ACTION_TOKEN = "action-token-for-tests-Zp41mQw8-00000001"
LLM_KEY = "sk-llm-key-for-tests-Rt51nQx0-0000000001"
ANSWERS_KEY = "answers-key-for-tests-Wm62pLs4-00000001"
SECRET_VALUES = (APP_SECRET, VERIFY_TOKEN, SERVICE_TOKEN, RASA_TOKEN, PAGE_TOKEN, OTHER_PAGE_TOKEN, ACTION_TOKEN,
                 LLM_KEY, ANSWERS_KEY)


def production_env(**overrides: str) -> dict[str, str]:
    env = {
        "BOT_ENV": "production",
        "MESSENGER_APP_SECRET": APP_SECRET,
        "MESSENGER_VERIFY_TOKEN": VERIFY_TOKEN,
        "BOT_SERVICE_TOKEN": SERVICE_TOKEN,
        "MESSENGER_APP_ID": APP_ID,
        "MESSENGER_PAGE_ID": "104523456789012",
        "MESSENGER_PAGE_ACCESS_TOKEN": PAGE_TOKEN,
        "RASA_API_TOKEN": RASA_TOKEN,
        "ACTION_SERVER_TOKEN": ACTION_TOKEN,
        "ANSWERS_SECRET": ANSWERS_KEY,
    }
    env.update(overrides)
    return {key: value for key, value in env.items() if value != "<unset>"}


def assert_no_secret_in(message: str) -> None:
    for value in (*SECRET_VALUES, DEMO_APP_SECRET, DEMO_VERIFY_TOKEN, DEMO_SERVICE_TOKEN, SANDBOX_PAGE_TOKEN):
        assert value not in message, value


# --- local defaults -----------------------------------------------------------------------------


def test_empty_environment_gives_safe_local_defaults() -> None:
    settings = load_settings({})

    assert settings.environment == "development" and not settings.is_production
    assert (settings.app_secret, settings.verify_token, settings.service_token) == (
        DEMO_APP_SECRET,
        DEMO_VERIFY_TOKEN,
        DEMO_SERVICE_TOKEN,
    )
    assert settings.app_id == ""
    assert dict(settings.page_tokens) == {SANDBOX_PAGE_ID: SANDBOX_PAGE_TOKEN}
    assert settings.uses_sandbox
    assert settings.app_url == "http://127.0.0.1:8000"
    assert settings.graph_api_base == settings.app_url  # sends go to the sandbox inside the app
    assert settings.graph_api_version == DEFAULT_GRAPH_API_VERSION
    assert settings.graph_timeout_seconds == 10.0
    assert settings.rasa_url == "http://127.0.0.1:5005"
    assert settings.ingest_db_path == ROOT / "var" / "messenger.sqlite3"


def test_load_settings_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("MESSENGER_PAGES", "MESSENGER_PAGE_ACCESS_TOKEN", "GRAPH_API_BASE", "BOT_ENV", "BOT_APP_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MESSENGER_APP_SECRET", APP_SECRET)
    monkeypatch.setenv("BOT_DATA_DIR", str(tmp_path))

    settings = load_settings()

    assert settings.app_secret == APP_SECRET
    assert settings.ingest_db_path == tmp_path / "messenger.sqlite3"


def test_sandbox_graph_base_follows_the_app_url_without_trailing_slash() -> None:
    settings = load_settings({"BOT_APP_URL": "http://10.0.0.5:9000/"})

    assert settings.app_url == "http://10.0.0.5:9000"
    assert settings.graph_api_base == "http://10.0.0.5:9000"


def test_urls_lose_their_trailing_slash() -> None:
    settings = load_settings({"RASA_URL": "http://rasa:5005/", "GRAPH_API_BASE": "http://graph-proxy:8080/"})

    assert settings.rasa_url == "http://rasa:5005"
    assert settings.graph_api_base == "http://graph-proxy:8080"


def test_timeout_is_read_as_seconds() -> None:
    assert load_settings({"GRAPH_API_TIMEOUT_SECONDS": "2.5"}).graph_timeout_seconds == 2.5


def test_non_numeric_timeout_is_a_clear_error() -> None:
    with pytest.raises(SettingsError, match="GRAPH_API_TIMEOUT_SECONDS must be a number"):
        load_settings({"GRAPH_API_TIMEOUT_SECONDS": "ten"})


@pytest.mark.parametrize(("value", "mode"), [
    (None, "unless_busy"), ("", "unless_busy"), ("always", "always"), (" Never ", "never"),
    ("UNLESS_BUSY", "unless_busy"),
])
def test_sender_actions_mode(value: str | None, mode: str) -> None:
    env = {} if value is None else {"MESSENGER_SENDER_ACTIONS": value}
    assert load_settings(env).messenger_sender_actions == mode


@pytest.mark.parametrize("value", ["sometimes", "off", "true", "1", "x" * 200])
def test_an_unknown_sender_actions_mode_is_refused_naming_the_choices(value: str) -> None:
    refusal = "MESSENGER_SENDER_ACTIONS must be one of always, unless_busy, never"
    with pytest.raises(SettingsError, match=refusal) as err:
        load_settings({"MESSENGER_SENDER_ACTIONS": value})
    assert "x" * 41 not in str(err.value), "a long value is cut in the message"


@pytest.mark.parametrize(("value", "mode"), [("rasa", "rasa"), ("process", "process"), (" Process ", "process")])
def test_feeder_mode(value: str, mode: str) -> None:
    assert load_settings({"MESSENGER_FEEDER": value}).messenger_feeder == mode


@pytest.mark.parametrize("value", ["thread", "both", "1", "x" * 200])
def test_an_unknown_feeder_mode_is_refused_naming_the_choices(value: str) -> None:
    with pytest.raises(SettingsError, match="MESSENGER_FEEDER must be one of rasa, process"):
        load_settings({"MESSENGER_FEEDER": value})


# --- pages and tokens ---------------------------------------------------------------------------


def test_messenger_pages_with_commas_spaces_and_new_lines() -> None:
    pages = f"111111111111111:{PAGE_TOKEN}, 222222222222222:{OTHER_PAGE_TOKEN}\n333333333333333:tokenC"

    assert parse_page_tokens(pages) == {
        "111111111111111": PAGE_TOKEN,
        "222222222222222": OTHER_PAGE_TOKEN,
        "333333333333333": "tokenC",
    }


def test_real_pages_send_to_meta() -> None:
    settings = load_settings(production_env(
        MESSENGER_PAGE_ID="<unset>", MESSENGER_PAGE_ACCESS_TOKEN="<unset>",
        MESSENGER_PAGES=f"111111111111111:{PAGE_TOKEN},222222222222222:{OTHER_PAGE_TOKEN}",
    ))

    assert dict(settings.page_tokens) == {"111111111111111": PAGE_TOKEN, "222222222222222": OTHER_PAGE_TOKEN}
    assert not settings.uses_sandbox
    assert settings.graph_api_base == "https://graph.facebook.com"
    assert settings.token_for_page("222222222222222") == OTHER_PAGE_TOKEN
    assert settings.token_for_page(SANDBOX_PAGE_ID) is None


@pytest.mark.parametrize(
    ("pages", "bad_entry"),
    [
        (f"abc:{PAGE_TOKEN}", 1),  # page id not numeric
        (PAGE_TOKEN, 1),  # the token alone, page id forgotten
        ("111111111111111:", 1),  # token missing
        (f"111111111111111:{PAGE_TOKEN},222222222222222", 2),
        (f"111111111111111:{PAGE_TOKEN}\n:{OTHER_PAGE_TOKEN}", 2),  # empty page id
    ],
    ids=["id-not-numeric", "token-without-id", "token-missing", "second-without-colon", "second-with-empty-id"],
)
def test_bad_messenger_pages_entry_is_named_without_its_token(pages: str, bad_entry: int) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"MESSENGER_PAGES": pages})

    message = str(caught.value)
    assert "MESSENGER_PAGES" in message
    assert f"entry {bad_entry} of" in message
    assert "page_id:token" in message
    assert_no_secret_in(message)


def test_single_page_token_needs_the_page_id() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"MESSENGER_PAGE_ACCESS_TOKEN": PAGE_TOKEN})

    assert "MESSENGER_PAGE_ID" in str(caught.value)
    assert_no_secret_in(str(caught.value))


def test_single_page_token_needs_a_numeric_page_id() -> None:
    with pytest.raises(SettingsError, match="MESSENGER_PAGE_ID"):
        load_settings({"MESSENGER_PAGE_ACCESS_TOKEN": PAGE_TOKEN, "MESSENGER_PAGE_ID": "mi-pagina"})


def test_single_page_token_sends_to_meta() -> None:
    settings = load_settings(production_env())

    assert dict(settings.page_tokens) == {"104523456789012": PAGE_TOKEN}
    assert settings.graph_api_base == "https://graph.facebook.com"
    assert not settings.uses_sandbox


def test_single_page_and_messenger_pages_are_combined() -> None:
    settings = load_settings(
        {
            "BOT_ENV": "test",
            "GRAPH_API_BASE": "http://127.0.0.1:9",
            "MESSENGER_PAGES": f"111111111111111:{OTHER_PAGE_TOKEN}",
            "MESSENGER_PAGE_ACCESS_TOKEN": PAGE_TOKEN,
            "MESSENGER_PAGE_ID": "104523456789012",
        }
    )

    assert dict(settings.page_tokens) == {"111111111111111": OTHER_PAGE_TOKEN, "104523456789012": PAGE_TOKEN}


def test_explicit_graph_base_wins_over_the_default() -> None:
    settings = load_settings(
        {"BOT_ENV": "test", "MESSENGER_PAGES": f"111111111111111:{PAGE_TOKEN}", "GRAPH_API_BASE": "http://localhost:1/"}
    )

    assert settings.graph_api_base == "http://localhost:1"


# --- production ---------------------------------------------------------------------------------


def test_production_accepts_a_complete_configuration() -> None:
    settings = load_settings(production_env())

    assert settings.is_production
    assert settings.app_secret == APP_SECRET and settings.app_id == APP_ID
    assert settings.graph_api_base == "https://graph.facebook.com"
    assert not settings.uses_sandbox


def test_production_with_nothing_set_lists_every_problem() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"BOT_ENV": "production"})

    message = str(caught.value)
    assert message.startswith("BOT_ENV=production refuses to start")
    for name in (
        "MESSENGER_APP_SECRET",
        "MESSENGER_VERIFY_TOKEN",
        "BOT_SERVICE_TOKEN",
        "MESSENGER_APP_ID",
        "MESSENGER_PAGE_ACCESS_TOKEN or MESSENGER_PAGES",
    ):
        assert name in message, name
    assert_no_secret_in(message)


@pytest.mark.parametrize(
    ("overrides", "named", "problem_count"),
    [
        ({"MESSENGER_APP_SECRET": "<unset>"}, "MESSENGER_APP_SECRET is the demo value", 1),
        ({"MESSENGER_APP_SECRET": DEMO_APP_SECRET}, "MESSENGER_APP_SECRET is the demo value", 1),
        ({"MESSENGER_VERIFY_TOKEN": "<unset>"}, "MESSENGER_VERIFY_TOKEN is the demo value", 1),
        ({"BOT_SERVICE_TOKEN": "<unset>"}, "BOT_SERVICE_TOKEN is the demo value", 1),
        ({"MESSENGER_APP_ID": "<unset>"}, "MESSENGER_APP_ID is not set", 1),
        ({"MESSENGER_PAGE_ACCESS_TOKEN": "<unset>", "MESSENGER_PAGE_ID": "<unset>"}, "no page token is set", 1),
        (
            {"MESSENGER_PAGE_ACCESS_TOKEN": "<unset>", "MESSENGER_PAGES": f"{SANDBOX_PAGE_ID}:{SANDBOX_PAGE_TOKEN}"},
            "no page token is set",
            1,
        ),
        ({"MESSENGER_APP_ID": "<unset>", "BOT_SERVICE_TOKEN": "<unset>"}, "MESSENGER_APP_ID is not set", 2),
    ],
)
def test_production_names_what_is_wrong_and_never_a_secret(
    overrides: dict[str, str], named: str, problem_count: int
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(production_env(**overrides))

    message = str(caught.value)
    assert named in message
    problems = message.removeprefix("BOT_ENV=production refuses to start: ").split(". See README")[0].split("; ")
    assert len(problems) == problem_count, problems
    assert_no_secret_in(message)


@pytest.mark.parametrize(
    "name", ["MESSENGER_APP_SECRET", "BOT_SERVICE_TOKEN", "RASA_API_TOKEN", "MESSENGER_VERIFY_TOKEN"]
)
@pytest.mark.parametrize("empty", ["", "   "])
def test_production_refuses_an_empty_secret(name: str, empty: str) -> None:
    # Set but empty is not "unset": no demo default fills it in, and an empty secret would match an empty one.
    with pytest.raises(SettingsError) as caught:
        load_settings(production_env(**{name: empty}))

    assert f"{name} is empty" in str(caught.value)
    assert_no_secret_in(str(caught.value))


def test_demo_values_are_fine_outside_production() -> None:
    settings = load_settings({"BOT_ENV": "development"})

    settings.check_production_safe()  # does not raise
    assert settings.uses_sandbox and settings.app_secret == DEMO_APP_SECRET


def test_check_production_safe_on_a_hand_built_settings_object() -> None:
    unsafe = Settings(
        environment="production",
        app_secret=APP_SECRET,
        verify_token=VERIFY_TOKEN,
        service_token=SERVICE_TOKEN,
        rasa_token=RASA_TOKEN,
        action_server_token=ACTION_TOKEN,
        app_id=APP_ID,
    )  # page tokens default to the sandbox

    with pytest.raises(SettingsError, match="no page token is set"):
        unsafe.check_production_safe()


# --- strong secrets in production (issue 8, item 10) -----------------------------------------------


@pytest.mark.parametrize(
    ("name", "short", "minimum"),
    [
        ("MESSENGER_APP_SECRET", "3b1f0c9d8e7a6b5c", 32),
        ("BOT_SERVICE_TOKEN", "service-Kd83hFq1", 32),
        ("RASA_API_TOKEN", "rasa-Hq83kd9", 32),
        ("MESSENGER_VERIFY_TOKEN", "verify-7Qp2", 16),
    ],
)
def test_production_refuses_a_short_secret_without_echoing_it(name: str, short: str, minimum: int) -> None:
    # Old code: any non-empty, non-demo value was accepted.
    with pytest.raises(SettingsError) as caught:
        load_settings(production_env(**{name: short}))

    message = str(caught.value)
    assert f"{name} is shorter than {minimum} characters" in message
    assert short not in message
    assert_no_secret_in(message)


def test_production_refuses_one_value_for_two_secrets() -> None:
    # Old code: the service token could be the Rasa token (a leak of one is a leak of both).
    with pytest.raises(SettingsError) as caught:
        load_settings(production_env(RASA_API_TOKEN=SERVICE_TOKEN))

    message = str(caught.value)
    assert "BOT_SERVICE_TOKEN and RASA_API_TOKEN are the same value" in message
    assert_no_secret_in(message)


def test_production_refuses_a_page_token_reused_as_a_secret() -> None:
    load_settings(production_env(BOT_SERVICE_TOKEN=PAGE_TOKEN + "-and-more-characters"))  # different: fine

    with pytest.raises(SettingsError) as caught:
        load_settings(production_env(MESSENGER_PAGE_ACCESS_TOKEN=SERVICE_TOKEN))
    message = str(caught.value)
    assert "BOT_SERVICE_TOKEN and the page token of 104523456789012 are the same value" in message
    assert_no_secret_in(message)


@pytest.mark.parametrize("base", ["http://graph.facebook.com", "http://10.0.0.7:8080", "graph.facebook.com"])
def test_production_refuses_a_graph_api_without_tls(base: str) -> None:
    # Old code: GRAPH_API_BASE=http://… was accepted, and every send carries a page token.
    with pytest.raises(SettingsError, match="GRAPH_API_BASE must start with https://"):
        load_settings(production_env(GRAPH_API_BASE=base))


def test_production_accepts_https_graph_proxies() -> None:
    assert load_settings(production_env(GRAPH_API_BASE="https://graph-proxy.internal/")).graph_api_base == (
        "https://graph-proxy.internal"
    )


# --- a real page is never run in development (issue 8, item 2) --------------------------------------


@pytest.mark.parametrize(
    "pages",
    [
        {"MESSENGER_PAGE_ACCESS_TOKEN": PAGE_TOKEN, "MESSENGER_PAGE_ID": "104523456789012"},
        {"MESSENGER_PAGES": f"111111111111111:{PAGE_TOKEN}"},
        {"MESSENGER_PAGES": f"{SANDBOX_PAGE_ID}:{SANDBOX_PAGE_TOKEN},111111111111111:{PAGE_TOKEN}"},
    ],
    ids=["single-page", "messenger-pages", "sandbox-plus-a-real-page"],
)
@pytest.mark.parametrize("bot_env", ["<unset>", "development"])
def test_a_real_page_outside_production_refuses_to_start(pages: dict[str, str], bot_env: str) -> None:
    # Old code started in development: demo users admin/admin-demo beside a real page.
    env = {"MESSENGER_APP_SECRET": APP_SECRET, "BOT_SERVICE_TOKEN": SERVICE_TOKEN, **pages}
    if bot_env != "<unset>":
        env["BOT_ENV"] = bot_env
    with pytest.raises(SettingsError) as caught:
        load_settings(env)

    message = str(caught.value)
    assert "set BOT_ENV=production" in message
    assert_no_secret_in(message)


def test_only_the_sandbox_page_in_development_is_the_demo() -> None:
    assert load_settings({}).is_demo
    assert load_settings({"MESSENGER_PAGES": f"{SANDBOX_PAGE_ID}:{SANDBOX_PAGE_TOKEN}"}).is_demo
    assert not load_settings({"BOT_ENV": "test"}).is_demo
    assert not load_settings(production_env()).is_demo
    fake_page = load_settings({"BOT_ENV": "test", "MESSENGER_PAGES": f"111111111111111:{PAGE_TOKEN}",
                               "GRAPH_API_BASE": "http://127.0.0.1:9"})
    assert not fake_page.is_demo and not fake_page.serves_graph_sandbox


# --- the proxies trusted for the client's address (issue 8, item 6) ---------------------------------


def test_forwarded_allow_ips_defaults_to_loopback_and_is_checked() -> None:
    assert load_settings({}).forwarded_allow_ips == "127.0.0.1"
    assert load_settings({"BOT_FORWARDED_ALLOW_IPS": "10.0.0.5, 172.16.0.0/12"}).forwarded_allow_ips == (
        "10.0.0.5,172.16.0.0/12"
    )
    with pytest.raises(SettingsError, match="BOT_FORWARDED_ALLOW_IPS must list IP addresses"):
        load_settings({"BOT_FORWARDED_ALLOW_IPS": "proxy.internal"})


def test_the_launcher_starts_the_app_trusting_only_the_configured_proxies(tmp_path: Path) -> None:
    from bot.stack import Ports, Stack

    stack = Stack(ports=Ports(), data_dir=tmp_path, model=tmp_path / "model.tar.gz",
                  env={"BOT_FORWARDED_ALLOW_IPS": "10.0.0.5"}, log_dir=tmp_path)
    command = stack.command("app")
    assert "--proxy-headers" in command
    assert command[command.index("--forwarded-allow-ips") + 1] == "10.0.0.5"


def test_every_outbox_worker_reads_the_lease_and_refuses_nonsense() -> None:
    """The workers inside Rasa and the app use OUTBOX_LEASE_SECONDS too (the at-least-once window users read
    about in the README), not only `python -m outbox worker`."""
    assert load_settings({}).outbox_lease_seconds == 30.0
    assert load_settings({"OUTBOX_LEASE_SECONDS": "5"}).outbox_lease_seconds == 5.0
    for bad in ("0", "-1", "86400"):
        with pytest.raises(SettingsError, match="OUTBOX_LEASE_SECONDS"):
            load_settings({"OUTBOX_LEASE_SECONDS": bad})


# --- outside production a real page needs a fake Graph API on this machine (issue 8 review, item 1) ---------------


@pytest.mark.parametrize(
    "graph_base", [None, "https://graph.facebook.com", "http://10.0.0.7:8080", "http://127.evil.com",
                   "http://127.0.0.1.nip.io", "http://mock:1"],
)
def test_bot_env_test_with_a_real_page_and_a_graph_api_off_this_machine_refuses(graph_base: str | None) -> None:
    """Old code: `BOT_ENV=test` with a page token started on the published demo secrets and sent to Meta."""
    env = {"BOT_ENV": "test", "MESSENGER_PAGE_ACCESS_TOKEN": PAGE_TOKEN, "MESSENGER_PAGE_ID": "104523456789012"}
    if graph_base:
        env["GRAPH_API_BASE"] = graph_base
    with pytest.raises(SettingsError) as caught:
        load_settings(env)

    message = str(caught.value)
    assert "BOT_ENV=test is for a fake Graph API" in message and "set BOT_ENV=production" in message
    assert_no_secret_in(message)


@pytest.mark.parametrize("graph_base", ["http://127.0.0.1:8123", "http://127.3.4.5:9", "http://[::1]:8123",
                                        "http://localhost:8123"])
def test_bot_env_test_with_a_real_page_against_a_loopback_fake_starts(graph_base: str) -> None:
    settings = load_settings({"BOT_ENV": "test", "MESSENGER_PAGE_ACCESS_TOKEN": PAGE_TOKEN,
                              "MESSENGER_PAGE_ID": "104523456789012", "GRAPH_API_BASE": graph_base})
    assert settings.environment == "test" and settings.has_real_page and not settings.is_demo


def test_bot_env_test_with_only_the_sandbox_page_needs_no_fake() -> None:
    assert not load_settings({"BOT_ENV": "test", "GRAPH_API_BASE": "https://graph.facebook.com"}).has_real_page


def test_development_with_a_real_page_refuses_even_against_a_loopback_fake() -> None:
    with pytest.raises(SettingsError, match="set BOT_ENV=production"):
        load_settings({"MESSENGER_PAGE_ACCESS_TOKEN": PAGE_TOKEN, "MESSENGER_PAGE_ID": "104523456789012",
                       "GRAPH_API_BASE": "http://127.0.0.1:9"})


# --- the action server's token and the LLM's key in production (issue 8 review, item 4) -----------------------


@pytest.mark.parametrize("unset", ["<unset>", "", "  "])
def test_production_requires_an_explicit_action_server_token(unset: str) -> None:
    """Old code: production started without ACTION_SERVER_TOKEN (bot run then made a random one per start)."""
    with pytest.raises(SettingsError) as caught:
        load_settings(production_env(ACTION_SERVER_TOKEN=unset))

    message = str(caught.value)
    assert "ACTION_SERVER_TOKEN is not set" in message and "random one per start" in message
    assert_no_secret_in(message)


def test_production_refuses_a_short_or_reused_action_server_token() -> None:
    with pytest.raises(SettingsError, match="ACTION_SERVER_TOKEN is shorter than 32 characters"):
        load_settings(production_env(ACTION_SERVER_TOKEN="action-Zp41mQw8"))
    with pytest.raises(SettingsError) as caught:
        load_settings(production_env(ACTION_SERVER_TOKEN=RASA_TOKEN))
    assert "RASA_API_TOKEN and ACTION_SERVER_TOKEN are the same value" in str(caught.value)
    assert_no_secret_in(str(caught.value))


@pytest.mark.parametrize("key_name", ["LLM_API_KEY", "OPENAI_API_KEY"])
def test_production_refuses_the_llm_key_reused_as_a_secret(key_name: str) -> None:
    """Old code: the LLM key was not compared with our secrets."""
    load_settings(production_env(**{key_name: LLM_KEY}))  # its own value: fine

    with pytest.raises(SettingsError) as caught:
        load_settings(production_env(**{key_name: SERVICE_TOKEN}))
    message = str(caught.value)
    assert "BOT_SERVICE_TOKEN and LLM_API_KEY are the same value" in message
    assert_no_secret_in(message)


# --- LLM_BASE_URL is checked at start in production (issue 8 review, item 5) ------------------------------------


@pytest.mark.parametrize("url", ["http://api.example.com/v1", "http://127.evil.com/v1", "http://127.0.0.1.nip.io/v1",
                                 "http://10.0.0.8:11434/v1"])
def test_production_refuses_an_llm_base_url_without_tls_off_this_machine(url: str) -> None:
    """Old code: settings did not read LLM_BASE_URL, so production started and only the fallback failed later."""
    with pytest.raises(SettingsError, match="LLM_BASE_URL must start with https://"):
        load_settings(production_env(LLM_BASE_URL=url))


@pytest.mark.parametrize("url", ["https://api.openai.com/v1", "http://127.0.0.1:11434/v1", "http://[::1]:8080/v1",
                                 "http://localhost:8080/v1"])
def test_production_accepts_an_https_or_loopback_llm_base_url(url: str) -> None:
    assert load_settings(production_env(LLM_BASE_URL=url)).llm_base_url == url


# --- the answer journal's own secret and retention (review 14, finding 8) ------------------------------------------


@pytest.mark.parametrize(("overrides", "named"), [
    ({"ANSWERS_SECRET": "<unset>"}, "ANSWERS_SECRET is empty"),
    ({"ANSWERS_SECRET": "corta"}, "ANSWERS_SECRET is shorter than 32 characters"),
    ({"ANSWERS_SECRET": SERVICE_TOKEN}, "BOT_SERVICE_TOKEN and ANSWERS_SECRET are the same value"),
])
def test_production_needs_a_dedicated_answers_secret(overrides: dict[str, str], named: str) -> None:
    """The service token is in every process: as the pseudonyms' key it would let any of them reverse a person_key."""
    with pytest.raises(SettingsError) as caught:
        load_settings(production_env(**overrides))
    assert named in str(caught.value)
    assert_no_secret_in(str(caught.value))


def test_outside_production_the_answers_secret_may_be_empty_and_retention_defaults_to_180_days() -> None:
    settings = load_settings({"BOT_ENV": "development"})
    settings.check_production_safe()
    assert (settings.answers_secret, settings.answers_retention_days) == ("", 180)
    assert load_settings(production_env()).answers_secret == ANSWERS_KEY


@pytest.mark.parametrize("days", ["0", "-5", "2.5", "dias", "4000"])
def test_answers_retention_days_is_a_whole_number_of_days(days: str) -> None:
    with pytest.raises(SettingsError, match="ANSWERS_RETENTION_DAYS"):
        load_settings({"ANSWERS_RETENTION_DAYS": days})
    assert load_settings({"ANSWERS_RETENTION_DAYS": "30"}).answers_retention_days == 30
