"""Users, password hashing, sessions and the login limit (`console.auth`, `console.store`)."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.auth import (
    LOGIN_LIMIT,
    Authenticator,
    InvalidCredentials,
    TooManyAttempts,
    UserInputError,
    parse_role,
    throttle_decision,
)
from console.store import ConsoleStore
from core.settings import Settings
from tests.unit.console.conftest import START, Clock, fast_hasher

PASSWORD = "clave-muy-segura-1"


def test_roles_and_their_spanish_names() -> None:
    assert parse_role("agente") == parse_role("agent") == parse_role(" Agent ") == "agent"
    assert parse_role("admin") == "admin" and parse_role("editor") == "editor"
    with pytest.raises(UserInputError, match="rol desconocido"):
        parse_role("supervisor")


def test_the_default_hasher_is_argon2id_and_no_password_is_stored(tmp_path: Path, store: ConsoleStore) -> None:
    auth = Authenticator(store, Settings(data_dir=tmp_path))
    user = auth.add_user("maria", "agent", PASSWORD)
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in (tmp_path / "console.sqlite3").read_bytes().decode("latin-1")


def test_login_creates_a_session_that_logout_ends(auth: Authenticator) -> None:
    auth.add_user("Maria", "agente", PASSWORD, "María Pérez")
    result = auth.login("MARIA", PASSWORD, "10.0.0.1")
    assert (result.principal.username, result.principal.role, result.principal.display_name) == (
        "maria", "agent", "María Pérez")
    assert result.principal.role_label == "agente"
    assert len(result.session_token) >= 40 and len(result.principal.csrf_token) >= 40
    principal = auth.session_principal(result.session_token)
    assert principal is not None and principal.csrf_token == result.principal.csrf_token
    auth.logout(principal)
    assert auth.session_principal(result.session_token) is None


def test_only_the_token_digest_is_stored(auth: Authenticator, tmp_path: Path) -> None:
    auth.add_user("maria", "agent", PASSWORD)
    token = auth.login("maria", PASSWORD, "10.0.0.1").session_token
    assert token not in (tmp_path / "console.sqlite3").read_bytes().decode("latin-1")


def test_sessions_expire(auth: Authenticator, clock: Clock) -> None:
    auth.add_user("maria", "agent", PASSWORD)
    token = auth.login("maria", PASSWORD, "10.0.0.1").session_token
    clock.advance(hours=11, minutes=59)
    assert auth.session_principal(token) is not None
    clock.advance(minutes=2)
    assert auth.session_principal(token) is None


def test_a_new_password_or_disabling_ends_every_session(auth: Authenticator, store: ConsoleStore) -> None:
    auth.add_user("maria", "agent", PASSWORD)
    first = auth.login("maria", PASSWORD, "10.0.0.1").session_token
    auth.set_password("maria", "otra-clave-segura")
    assert auth.session_principal(first) is None
    with pytest.raises(InvalidCredentials):
        auth.login("maria", PASSWORD, "10.0.0.1")
    second = auth.login("maria", "otra-clave-segura", "10.0.0.1").session_token
    store.set_active("maria", False, START)
    assert auth.session_principal(second) is None
    with pytest.raises(InvalidCredentials):
        auth.login("maria", "otra-clave-segura", "10.0.0.1")


def test_wrong_password_and_unknown_user_look_the_same(auth: Authenticator) -> None:
    auth.add_user("maria", "agent", PASSWORD)
    with pytest.raises(InvalidCredentials) as wrong:
        auth.login("maria", "no-es-la-clave", "10.0.0.1")
    with pytest.raises(InvalidCredentials) as unknown:
        auth.login("nadie", "no-es-la-clave", "10.0.0.1")
    assert wrong.value.message_es == unknown.value.message_es == "Usuario o contraseña incorrectos."


def test_five_failures_lock_that_username_from_that_address_for_five_minutes(
    auth: Authenticator, clock: Clock
) -> None:
    auth.add_user("maria", "agent", PASSWORD)
    for _ in range(LOGIN_LIMIT.max_failures):
        with pytest.raises(InvalidCredentials):
            auth.login("maria", "mala", "10.0.0.1")
        clock.advance(seconds=10)
    with pytest.raises(TooManyAttempts) as locked:
        auth.login("maria", PASSWORD, "10.0.0.1")  # even the right password: no more guesses
    assert "Demasiados intentos fallidos" in locked.value.message_es
    assert "Espere 5 minutos" in locked.value.message_es
    assert timedelta(minutes=4) < locked.value.retry_after <= timedelta(minutes=5)
    # Another address, or another username, is not locked.
    assert auth.login("maria", PASSWORD, "10.0.0.2").principal.username == "maria"
    # Once the oldest failure leaves the window, one more try is allowed and succeeds.
    clock.advance(seconds=locked.value.retry_after.total_seconds() + 1)
    assert auth.login("maria", PASSWORD, "10.0.0.1").principal.username == "maria"


def test_a_success_clears_the_failures(auth: Authenticator) -> None:
    auth.add_user("maria", "agent", PASSWORD)
    for _ in range(LOGIN_LIMIT.max_failures - 1):
        with pytest.raises(InvalidCredentials):
            auth.login("maria", "mala", "10.0.0.1")
    auth.login("maria", PASSWORD, "10.0.0.1")
    for _ in range(LOGIN_LIMIT.max_failures - 1):
        with pytest.raises(InvalidCredentials):
            auth.login("maria", "mala", "10.0.0.1")
    auth.login("maria", PASSWORD, "10.0.0.1")


@given(st.lists(st.integers(min_value=0, max_value=900), max_size=12), st.integers(min_value=0, max_value=900))
def test_throttle_decision(failure_seconds: list[int], now_seconds: int) -> None:
    failures = [START + timedelta(seconds=s) for s in failure_seconds]
    now = START + timedelta(seconds=now_seconds)
    decision = throttle_decision(failures, now)
    in_window = [f for f in failures if now - LOGIN_LIMIT.window < f <= now]
    assert decision.allowed == (len(in_window) < LOGIN_LIMIT.max_failures)
    if not decision.allowed:
        assert timedelta(0) < decision.retry_after <= LOGIN_LIMIT.window
        # At `now + retry_after` the same failures no longer block.
        assert throttle_decision(failures, now + decision.retry_after).allowed or any(f > now for f in failures)


def test_user_input_is_checked(auth: Authenticator) -> None:
    with pytest.raises(UserInputError, match="al menos 10"):
        auth.add_user("maria", "agent", "corta")
    with pytest.raises(UserInputError, match="nombre de usuario"):
        auth.add_user("María José", "agent", PASSWORD)
    auth.add_user("maria", "agent", PASSWORD)
    with pytest.raises(UserInputError, match="ya existe"):
        auth.add_user("MARIA", "editor", PASSWORD)


@pytest.mark.parametrize("name", ["system", "System", " bot ", "connector", "rasa", "console", "page_inbox"])
def test_the_names_the_system_acts_under_are_reserved(auth: Authenticator, store: ConsoleStore, name: str) -> None:
    """A person named «system» would have their closes taken for the idle auto-resume's (review 14 #10)."""
    with pytest.raises(UserInputError, match="lo usa el sistema"):
        auth.add_user(name, "admin", PASSWORD)
    assert name.strip().lower() not in [user.username for user in store.users()]
    auth.add_user(f"{name.strip().lower()}2", "agent", PASSWORD)  # a name that only starts so is a name


def test_demo_users_in_development_only(tmp_path: Path, clock: Clock) -> None:
    for environment, expected in (("development", ["admin", "agente", "editor"]), ("test", []), ("production", [])):
        store = ConsoleStore(tmp_path / f"{environment}.sqlite3")
        auth = Authenticator(store, Settings(environment=environment, data_dir=tmp_path), hasher=fast_hasher(),
                             clock=clock)
        assert auth.seed_demo_users() == expected
        assert auth.seed_demo_users() == []  # idempotent
        assert [u.username for u in store.users()] == expected
        store.close()


def test_production_refuses_a_demo_password(tmp_path: Path, clock: Clock) -> None:
    store = ConsoleStore(tmp_path / "console.sqlite3")
    Authenticator(store, Settings(data_dir=tmp_path), hasher=fast_hasher(), clock=clock).seed_demo_users()
    production = Authenticator(store, Settings(environment="production", data_dir=tmp_path), hasher=fast_hasher(),
                               clock=clock)
    with pytest.raises(InvalidCredentials, match="contraseña de demostración"):
        production.login("admin", "admin-demo", "10.0.0.1")
    store.close()


def test_no_password_or_token_reaches_the_logs(auth: Authenticator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    auth.add_user("maria", "agent", PASSWORD)
    with pytest.raises(InvalidCredentials):
        auth.login("maria", "clave-equivocada-123", "10.0.0.1")
    result = auth.login("maria", PASSWORD, "10.0.0.1")
    dumped = " ".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert "console login" in dumped
    for secret in (PASSWORD, "clave-equivocada-123", result.session_token, result.principal.csrf_token):
        assert secret not in dumped


def test_migrations_are_numbered_and_reopening_keeps_the_data(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "console.sqlite3"
    store = ConsoleStore(path)
    sql_dir = Path(__file__).resolve().parents[3] / "console" / "sql" / "sqlite"
    migrations = sorted(migration.name for migration in sql_dir.glob("[0-9]*.sql"))
    assert migrations[:2] == ["001_initial.sql", "002_conversation_reads.sql"]
    assert store.schema_version == len(migrations) == int(migrations[-1][:3])  # every migration applied, numbered
    store.save_snippet("horario", "De 8 a 18", "maria", clock())
    store.close()
    again = ConsoleStore(path)
    assert again.schema_version == len(migrations)
    assert [s.name for s in again.snippets()] == ["horario"]
    assert again.delete_snippet("horario") and not again.delete_snippet("horario")
    again.close()


def test_expired_sessions_and_old_failures_can_be_purged(auth: Authenticator, store: ConsoleStore,
                                                         clock: Clock) -> None:
    auth.add_user("maria", "agent", PASSWORD)
    auth.login("maria", PASSWORD, "10.0.0.1")
    with pytest.raises(InvalidCredentials):
        auth.login("maria", "mala", "10.0.0.2")
    clock.advance(days=1)
    assert store.delete_expired_sessions(clock()) == 1
    # One failure is counted twice: for the username and address, and for the address across usernames.
    assert store.forget_login_failures_before(clock() - timedelta(hours=1)) == 2
    # A login does the same housekeeping.
    auth.login("maria", PASSWORD, "10.0.0.1")
    with pytest.raises(InvalidCredentials):
        auth.login("maria", "mala", "10.0.0.2")
    clock.advance(days=1)
    auth.login("maria", PASSWORD, "10.0.0.1")
    assert store.delete_expired_sessions(clock()) == 0
    assert store.forget_login_failures_before(clock()) == 0
