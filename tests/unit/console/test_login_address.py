"""Which address the login limits count, and demo passwords outside the demo (issue 8 review, items 1 and 2).

On the old code every client behind a proxy that sent no `X-Forwarded-For` was the proxy's address, so 20 failed
logins by anyone locked the whole console; IPv6 clients counted per address, so one host with a /64 had 2^64 fresh
addresses; and a demo user left in `console.sqlite3` by an earlier `make run` logged in with its published password
in any mode but production.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.auth import (
    ADDRESS_LIMIT,
    LOGIN_LIMIT,
    Authenticator,
    InvalidCredentials,
    LoginClient,
    TooManyAttempts,
    address_key,
    login_client,
)
from bot.console_store import ConsoleStore
from bot.settings import SANDBOX_PAGE_ID, SANDBOX_PAGE_TOKEN, Settings
from tests.unit.console.conftest import Clock, fast_hasher

PASSWORD = "clave-muy-segura-1"


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        ("203.0.113.9", None, LoginClient("203.0.113.9", known=True)),  # a public peer is the client
        ("127.0.0.1", None, LoginClient("127.0.0.1", known=False)),  # a local proxy that named nobody
        ("10.0.0.5", "", LoginClient("10.0.0.5", known=False)),
        ("192.168.1.20", "203.0.113.9", LoginClient("192.168.1.20", known=True)),  # the proxy named a client
        ("2001:db8:1:2:aaaa::1", None, LoginClient("2001:db8:1:2::/64", known=True)),
        ("::ffff:203.0.113.9", None, LoginClient("203.0.113.9", known=True)),
        ("testclient", None, LoginClient("testclient", known=False)),  # not an address at all
    ],
)
def test_login_client_says_whether_the_address_is_the_clients(peer: str, forwarded_for: str | None,
                                                               expected: LoginClient) -> None:
    assert login_client(peer, forwarded_for) == expected


def test_ipv6_addresses_in_one_slash_64_are_one_address() -> None:
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff:ffff:ffff:fffe")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")


def authenticator(store: ConsoleStore, clock: Clock, tmp_path: Path, **settings: object) -> Authenticator:
    auth = Authenticator(store, Settings(data_dir=tmp_path, **settings), hasher=fast_hasher(),  # type: ignore[arg-type]
                         clock=clock)
    return auth


def test_a_proxy_without_x_forwarded_for_does_not_lock_out_everyone(
    store: ConsoleStore, clock: Clock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    auth = authenticator(store, clock, tmp_path)
    auth.add_user("maria", "agent", PASSWORD)
    proxy = login_client("10.0.0.2", None)
    caplog.set_level(logging.WARNING, logger="bot.auth")
    for number in range(ADDRESS_LIMIT.max_failures + 5):
        with pytest.raises(InvalidCredentials):  # never TooManyAttempts: the address is not the client's
            auth.login(f"usuario{number}", "no-es-la-clave", proxy)
    assert auth.login("maria", PASSWORD, proxy).principal.username == "maria"
    warnings = [r.getMessage() for r in caplog.records if "BOT_FORWARDED_ALLOW_IPS" in r.getMessage()]
    assert len(warnings) == 1, "the proxy warning is logged once, not per login"
    # The per-username limit still holds behind that proxy.
    for _ in range(LOGIN_LIMIT.max_failures):
        with pytest.raises(InvalidCredentials):
            auth.login("maria", "no-es-la-clave", proxy)
    with pytest.raises(TooManyAttempts, match="para este usuario"):
        auth.login("maria", PASSWORD, proxy)


def test_with_x_forwarded_for_the_limit_across_usernames_holds(store: ConsoleStore, clock: Clock,
                                                                tmp_path: Path) -> None:
    auth = authenticator(store, clock, tmp_path)
    client = login_client("10.0.0.2", "203.0.113.9")
    for number in range(ADDRESS_LIMIT.max_failures):
        with pytest.raises(InvalidCredentials):
            auth.login(f"usuario{number}", "no-es-la-clave", client)
    with pytest.raises(TooManyAttempts, match="desde esta dirección"):
        auth.login("otro", "no-es-la-clave", client)


def test_one_ipv6_host_cannot_escape_the_limit_by_changing_its_low_bits(store: ConsoleStore, clock: Clock,
                                                                         tmp_path: Path) -> None:
    auth = authenticator(store, clock, tmp_path)
    for number in range(ADDRESS_LIMIT.max_failures):
        with pytest.raises(InvalidCredentials):
            auth.login(f"usuario{number}", "no-es-la-clave", login_client(f"2001:db8:1:2::{number + 1:x}", None))
    with pytest.raises(TooManyAttempts, match="desde esta dirección"):
        auth.login("otro", "no-es-la-clave", login_client("2001:db8:1:2::ffff", None))
    # Another /64 is another client.
    with pytest.raises(InvalidCredentials):
        auth.login("otro", "no-es-la-clave", login_client("2001:db8:1:3::1", None))


# --- demo passwords outside the demo ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"environment": "test"}, id="test"),
        pytest.param({"environment": "development", "page_tokens": {"104523456789012": "fake-page-token-0001"}},
                     id="development-with-a-real-page"),
        pytest.param({"environment": "production"}, id="production"),
    ],
)
def test_demo_users_left_in_the_data_dir_do_not_log_in_outside_the_demo(
    tmp_path: Path, clock: Clock, settings: dict[str, object]
) -> None:
    store = ConsoleStore(tmp_path / "console.sqlite3")
    demo = authenticator(store, clock, tmp_path)  # an earlier `make run` on the same data directory
    assert demo.seed_demo_users() == ["admin", "agente", "editor"]
    assert demo.login("admin", "admin-demo", "10.0.0.1").principal.username == "admin"  # the demo still works

    later = authenticator(store, clock, tmp_path, **settings)
    for username, password in (("admin", "admin-demo"), ("agente", "agente-demo"), ("editor", "editor-demo")):
        with pytest.raises(InvalidCredentials, match="contraseña de demostración"):
            later.login(username, password, "10.0.0.1")
    later.set_password("admin", "una-clave-nueva-segura")
    assert later.login("admin", "una-clave-nueva-segura", "10.0.0.1").principal.username == "admin"
    store.close()


def test_the_demo_with_the_sandbox_page_named_explicitly_still_logs_in(tmp_path: Path, clock: Clock) -> None:
    store = ConsoleStore(tmp_path / "console.sqlite3")
    demo = authenticator(store, clock, tmp_path, page_tokens={SANDBOX_PAGE_ID: SANDBOX_PAGE_TOKEN})
    demo.seed_demo_users()
    assert demo.login("editor", "editor-demo", "10.0.0.1").principal.role == "editor"
    store.close()
