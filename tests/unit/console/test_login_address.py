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

from console.auth import (
    ADDRESS_LIMIT,
    LOGIN_LIMIT,
    Authenticator,
    InvalidCredentials,
    LoginClient,
    TooManyAttempts,
    address_key,
    forwarded_client,
    login_client,
)
from console.store import ConsoleStore
from core.settings import SANDBOX_PAGE_ID, SANDBOX_PAGE_TOKEN, Settings
from tests.unit.console.conftest import Clock, fast_hasher

PASSWORD = "clave-muy-segura-1"


LOCAL = "127.0.0.1"  # BOT_FORWARDED_ALLOW_IPS's default: a proxy on the same host


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "trusted", "expected"),
    [
        ("203.0.113.9", None, LOCAL, LoginClient("203.0.113.9", known=True)),  # a public peer is the client
        ("127.0.0.1", None, LOCAL, LoginClient("127.0.0.1", known=False, warning="unnamed")),  # named nobody
        ("10.0.0.5", "", LOCAL, LoginClient("10.0.0.5", known=False, warning="unnamed")),
        # A trusted proxy named a client on its LAN: uvicorn replaced the peer with it.
        ("192.168.1.20", "192.168.1.20", "10.0.0.2", LoginClient("192.168.1.20", known=True)),
        ("192.168.1.20", "198.51.100.7, 192.168.1.20:5000", "10.0.0.2", LoginClient("192.168.1.20", known=True)),
        # The review's case: the proxy (10.0.0.2) is not listed, so uvicorn kept its address; the header it sends
        # does not make that address the client's.
        ("10.0.0.2", "203.0.113.9", LOCAL, LoginClient("10.0.0.2", known=False, warning="untrusted_proxy")),
        ("192.168.1.20", "203.0.113.9", LOCAL, LoginClient("192.168.1.20", known=False, warning="untrusted_proxy")),
        # Listed, but uvicorn runs without --proxy-headers: still the proxy's address.
        ("127.0.0.1", "203.0.113.9", LOCAL, LoginClient("127.0.0.1", known=False, warning="proxy_itself")),
        ("10.0.0.2", None, "10.0.0.0/24", LoginClient("10.0.0.2", known=False, warning="unnamed")),
        # A stranger's own public address: a header it sends cannot dodge the limit.
        ("203.0.113.9", "10.1.1.1", LOCAL, LoginClient("203.0.113.9", known=True, warning="ignored_forwarded_for")),
        # BOT_FORWARDED_ALLOW_IPS=*: uvicorn always takes the first entry.
        ("10.1.1.1", "10.1.1.1, 10.0.0.2", "*", LoginClient("10.1.1.1", known=True)),
        ("10.0.0.2", None, "*", LoginClient("10.0.0.2", known=False, warning="unnamed")),
        ("2001:db8:1:2:aaaa::1", None, LOCAL, LoginClient("2001:db8:1:2::/64", known=True)),
        ("fd00::5", "[fd00::5]:443", "fd00::1", LoginClient("fd00::/64", known=True)),
        ("::ffff:203.0.113.9", None, LOCAL, LoginClient("203.0.113.9", known=True)),
        ("testclient", None, LOCAL, LoginClient("testclient", known=False, warning="not_an_address")),
    ],
)
def test_login_client_says_whether_the_address_is_the_clients(peer: str, forwarded_for: str | None, trusted: str,
                                                               expected: LoginClient) -> None:
    """Old code: any X-Forwarded-For made a private peer "known", trusted or not (`10.0.0.2` with a header from an
    unlisted proxy was limited across usernames: every client behind it locked out together)."""
    assert login_client(peer, forwarded_for, trusted) == expected


@pytest.mark.parametrize(
    ("forwarded_for", "trusted", "client"),
    [
        ("203.0.113.9", LOCAL, "203.0.113.9"),
        ("198.51.100.1, 203.0.113.9", LOCAL, "203.0.113.9"),  # the last entry no trusted proxy added
        ("203.0.113.9, 10.0.0.3", "10.0.0.0/24", "203.0.113.9"),  # 10.0.0.3 is a trusted hop
        ("10.0.0.4, 10.0.0.3", "10.0.0.0/24", "10.0.0.4"),  # every hop trusted: the first
        ("198.51.100.1, 203.0.113.9", "*", "198.51.100.1"),
    ],
)
def test_forwarded_client_takes_the_entry_uvicorn_takes(forwarded_for: str, trusted: str, client: str) -> None:
    assert forwarded_client(forwarded_for, trusted) == client


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
    proxy = login_client("10.0.0.2", None, LOCAL)
    caplog.set_level(logging.WARNING, logger="console.auth")
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


def test_a_proxy_that_is_not_trusted_does_not_lock_out_everyone_despite_its_header(
    store: ConsoleStore, clock: Clock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The review's case: nginx on 10.0.0.2 sends X-Forwarded-For but BOT_FORWARDED_ALLOW_IPS is the default, so
    uvicorn keeps 10.0.0.2 as the peer. Old code counted it as the client's address because the header was there:
    20 failures by one stranger locked out every user behind the proxy, with no warning."""
    auth = authenticator(store, clock, tmp_path)
    auth.add_user("maria", "agent", PASSWORD)
    caplog.set_level(logging.WARNING, logger="console.auth")
    for number in range(ADDRESS_LIMIT.max_failures + 5):
        with pytest.raises(InvalidCredentials):
            auth.login(f"usuario{number}", "no-es-la-clave",
                       login_client("10.0.0.2", f"203.0.113.{number}", auth.settings.forwarded_allow_ips))
    maria = login_client("10.0.0.2", "198.51.100.4", auth.settings.forwarded_allow_ips)
    assert auth.login("maria", PASSWORD, maria).principal.username == "maria"
    warnings = [r.getMessage() for r in caplog.records if "BOT_FORWARDED_ALLOW_IPS (127.0.0.1)" in r.getMessage()]
    assert len(warnings) == 1 and "10.0.0.2" in warnings[0], warnings


def test_with_x_forwarded_for_the_limit_across_usernames_holds(store: ConsoleStore, clock: Clock,
                                                                tmp_path: Path) -> None:
    auth = authenticator(store, clock, tmp_path)
    client = login_client("192.168.1.20", "192.168.1.20", "10.0.0.2")  # a LAN client named by a trusted proxy
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
            auth.login(f"usuario{number}", "no-es-la-clave",
                       login_client(f"2001:db8:1:2::{number + 1:x}", None, LOCAL))
    with pytest.raises(TooManyAttempts, match="desde esta dirección"):
        auth.login("otro", "no-es-la-clave", login_client("2001:db8:1:2::ffff", None, LOCAL))
    # Another /64 is another client.
    with pytest.raises(InvalidCredentials):
        auth.login("otro", "no-es-la-clave", login_client("2001:db8:1:3::1", None, LOCAL))


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
