"""Who may use the console: users with a role, argon2 password hashes, server-side sessions, CSRF, a login limit.

- Roles: `admin` (everything), `agent` ("agente": conversations, replies, snippets), `editor` (the knowledge
  matrix). Each endpoint names the roles it admits with `require_role(...)`.
- Sessions: a random id in an HttpOnly, SameSite=Lax cookie (`Secure` in production); the database keeps only
  its SHA-256. Each session has a CSRF token, required on every state-changing request (the `X-CSRF-Token`
  header or a `csrf_token` form field).
- Login limits, checked before any password is verified: `LOGIN_LIMIT` failures for one username from one
  address, or `ADDRESS_LIMIT` failures for any usernames from one address, within the window → 429 until the
  oldest of them leaves the window (`throttle_decision`, pure). Each verify is an argon2id hash (64 MiB, ≈0.25 s):
  at most `VERIFY_SLOTS` run at once; a login waits for a slot on the event loop (never in a worker thread) up to
  `VERIFY_WAIT_SECONDS`, then gets 503 with Retry-After.
  The address is the peer uvicorn reports: behind a proxy, start uvicorn with `--proxy-headers
  --forwarded-allow-ips=<the proxy's address>` (`BOT_FORWARDED_ALLOW_IPS`), or every client shares the proxy's.
  So the limit across usernames counts only an address known to be the client's (`login_client`, pure, from
  the peer, the header and `BOT_FORWARDED_ALLOW_IPS`): the client uvicorn took from a trusted proxy's header, or
  a public peer (a header it sent is ignored). A listed proxy's own address, and a loopback or private peer
  without the header or with a header from a proxy that is not trusted, is shared by every client behind it:
  one stranger's failures must not lock out everyone (the per-username limit and the verify cap still hold), and
  a warning naming `BOT_FORWARDED_ALLOW_IPS` is logged once. IPv6 addresses count by their /64.
- Machine clients may use the service token (`Authorization: Bearer …`) on the endpoints that say so; it never
  stands for a person, so it can read and manage the matrix but never write to a customer.

Passwords and tokens are never logged or shown; errors name the username at most.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from console.store import ROLES, ConsoleStore, User, UserExists
from core.errors import DomainError
from core.settings import Settings

log = logging.getLogger(__name__)

ROLE_LABELS_ES = {"admin": "admin", "agent": "agente", "editor": "editor"}
ROLE_ALIASES = {"agente": "agent", "administrador": "admin", "administrator": "admin"}
SERVICE_ROLE = "service"

SESSION_COOKIE = "console_session"
LOGIN_CSRF_COOKIE = "console_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_LIFETIME = timedelta(hours=12)

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,39}$")
# The names the app itself acts under in the handoff's log and messages (the idle auto-resume, the bot, the
# connector, Rasa, the console, the Page inbox): a person may not take one, so a person's actions are never taken
# for the system's (customer satisfaction asks after a person's close, never after the system's).
RESERVED_USERNAMES = frozenset({"system", "bot", "connector", "rasa", "console", "page_inbox"})
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # argon2 takes anything, but a megabyte "password" is a denial of service

# Development only: seeded by `create_app` and printed by `bot run`; production never seeds and refuses them.
DEMO_USERS: tuple[tuple[str, str, str, str], ...] = (
    # username, role, password, display name
    ("admin", "admin", "admin-demo", "Admin (demo)"),
    ("agente", "agent", "agente-demo", "Agente (demo)"),
    ("editor", "editor", "editor-demo", "Editor (demo)"),
)


class AuthError(DomainError):
    """Root of the console's authentication and authorization errors; `message_es` is shown to people."""

    reason_code = "auth_error"

    def __init__(self, message_es: str) -> None:
        super().__init__(message_es)
        self.message_es = message_es


class NotAuthenticated(AuthError):
    reason_code = "not_authenticated"


class InvalidCredentials(AuthError):
    reason_code = "invalid_credentials"


class Forbidden(AuthError):
    reason_code = "forbidden"


class CsrfRejected(AuthError):
    reason_code = "csrf_rejected"


class TooManyAttempts(AuthError):
    reason_code = "too_many_attempts"

    def __init__(self, message_es: str, retry_after: timedelta) -> None:
        super().__init__(message_es)
        self.retry_after = retry_after


class LoginBusy(TooManyAttempts):
    """Every password-verify slot is taken: try again in a second (503 with Retry-After)."""

    reason_code = "login_busy"


class UserInputError(AuthError):
    """A username, role or password that cannot be used (user management)."""

    reason_code = "invalid_user"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


# --- pure parts ----------------------------------------------------------------------------------


def parse_role(value: str) -> str:
    """`agent`, `agente`, `Admin` … → the stored role; anything else is refused."""
    role = ROLE_ALIASES.get(value.strip().lower(), value.strip().lower())
    if role not in ROLES:
        labels = ", ".join(f"{name} ({ROLE_LABELS_ES[name]})" if ROLE_LABELS_ES[name] != name else name
                           for name in ROLES)
        raise UserInputError(f"rol desconocido «{value}»; use uno de: {labels}")
    return role


def normalize_username(value: str) -> str:
    return value.strip().lower()


def check_username(value: str) -> str:
    username = normalize_username(value)
    if not USERNAME_PATTERN.match(username):
        raise UserInputError(
            "el nombre de usuario debe tener de 2 a 40 caracteres: letras minúsculas, números, «.», «_» o «-»"
        )
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserInputError(f"la contraseña debe tener al menos {MIN_PASSWORD_LENGTH} caracteres")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserInputError(f"la contraseña no puede tener más de {MAX_PASSWORD_LENGTH} caracteres")
    return password


@dataclass(frozen=True)
class LoginLimit:
    max_failures: int = 5
    window: timedelta = timedelta(minutes=5)


LOGIN_LIMIT = LoginLimit()
ADDRESS_LIMIT = LoginLimit(max_failures=20)  # any usernames, one address: 50 guessed names are not 50 verifies
VERIFY_SLOTS = 2  # argon2id verifies at once (64 MiB each)
VERIFY_WAIT_SECONDS = 1.0  # how long a login waits for a slot before 503
VERIFY_POLL_SECONDS = 0.02  # how often a waiting login looks for a free slot (on the event loop)
IPV6_CLIENT_PREFIX = 64
# Where a proxy in front of the app usually sits (not `is_private`, which also covers documentation ranges).
PROXY_NETWORKS = tuple(ipaddress.ip_network(net) for net in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "fc00::/7", "fe80::/10",
))


@dataclass(frozen=True)
class ThrottleDecision:
    allowed: bool
    retry_after: timedelta = timedelta(0)
    recent_failures: int = 0

    @property
    def message_es(self) -> str:
        return self.message_for("para este usuario")

    def message_for(self, whose: str) -> str:
        minutes = max(1, -(-int(self.retry_after.total_seconds()) // 60))  # rounded up
        unit = "minuto" if minutes == 1 else "minutos"
        return f"Demasiados intentos fallidos {whose}. Espere {minutes} {unit} antes de volver a intentarlo."


def throttle_decision(failures: Sequence[datetime], now: datetime, limit: LoginLimit = LOGIN_LIMIT) -> ThrottleDecision:
    """May one more login be tried? Refused while `max_failures` failures fall inside the window; the refusal
    lasts until the oldest of the latest `max_failures` leaves it."""
    recent = sorted(at for at in failures if now - limit.window < at <= now)
    if len(recent) < limit.max_failures:
        return ThrottleDecision(True, recent_failures=len(recent))
    oldest_counted = recent[-limit.max_failures]
    return ThrottleDecision(False, retry_after=oldest_counted + limit.window - now, recent_failures=len(recent))


@dataclass(frozen=True)
class LoginClient:
    """Who is logging in, as far as the limits can tell: `address` is the key the limits count under (an IPv6
    address as its /64); `known` is False when it is probably a proxy's address, not the client's; `warning` names
    what the operator should fix (a key of `CLIENT_WARNINGS`, empty when nothing)."""

    address: str
    known: bool = True
    warning: str = ""


# Why a login's address may not be the client's, logged once per reason (each names what to fix).
CLIENT_WARNINGS = {
    "not_an_address": "console logins come from %(peer)s, which is not an IP address: the login limit across "
                      "usernames is off for it (the per-username limit stays)",
    "unnamed": "console logins come from %(peer)s without X-Forwarded-For: probably a proxy that does not name the "
               "client, so the login limit across usernames is off for that address (the per-username limit "
               "stays). Behind a proxy, have it send X-Forwarded-For and list its address in "
               "BOT_FORWARDED_ALLOW_IPS (now %(trusted)s)",
    "proxy_itself": "console logins come from %(peer)s, listed in BOT_FORWARDED_ALLOW_IPS (%(trusted)s), with "
                    "X-Forwarded-For but the address was not replaced by the client's: uvicorn runs without "
                    "--proxy-headers --forwarded-allow-ips=<the same list>, or the client is on the proxy's host. "
                    "The login limit across usernames is off for that address (the per-username limit stays)",
    "untrusted_proxy": "console logins come from %(peer)s with an X-Forwarded-For the app does not trust: that "
                       "address is not in BOT_FORWARDED_ALLOW_IPS (%(trusted)s), or uvicorn was started with "
                       "another --forwarded-allow-ips. Every client behind that proxy shares its address, so the "
                       "login limit across usernames is off for it (the per-username limit stays). List the "
                       "proxy's address in BOT_FORWARDED_ALLOW_IPS",
    "ignored_forwarded_for": "console logins come from %(peer)s with an X-Forwarded-For the app does not trust "
                             "(not in BOT_FORWARDED_ALLOW_IPS, now %(trusted)s): the header is ignored and the login "
                             "limits count %(peer)s itself. If it is your proxy, list its address there",
}


def address_key(host: str) -> str:
    """The address the limits count under: IPv4 as is, IPv6 as its /64 (IPv4-mapped IPv6 as the IPv4)."""
    try:
        parsed = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/{IPV6_CLIENT_PREFIX}", strict=False))
    return str(parsed)


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _is_trusted(host: str, trusted: str) -> bool:
    """Is `host` one of the proxies in `trusted` (BOT_FORWARDED_ALLOW_IPS: addresses, networks or `*`)?"""
    if trusted.strip() == "*":
        return True
    items = [item.strip() for item in trusted.split(",") if item.strip()]
    parsed = _ip(host)
    if parsed is None:
        return host in items
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            continue
    return any(parsed in network for network in networks)


def _forwarded_host(value: str) -> str:
    """The host of one X-Forwarded-For entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:443`."""
    if value.startswith("[") and "]" in value:
        return value[1:value.index("]")]
    if value.count(":") == 1:
        return value.rsplit(":", 1)[0]
    return value


def forwarded_client(forwarded_for: str, trusted: str) -> str:
    """The client uvicorn's `--proxy-headers --forwarded-allow-ips=<trusted>` takes from X-Forwarded-For: the last
    entry that is not a trusted proxy (the first entry when all are, or with `*`)."""
    hosts = [_forwarded_host(item.strip()) for item in forwarded_for.split(",")]
    return next((host for host in reversed(hosts) if not _is_trusted(host, trusted)), hosts[0])


def _same_host(first: str, second: str) -> bool:
    first_ip, second_ip = _ip(first), _ip(second)
    return first == second if first_ip is None or second_ip is None else first_ip == second_ip


def login_client(peer: str, forwarded_for: str | None, trusted: str) -> LoginClient:
    """Is `peer` (what uvicorn reports) the client's own address? `trusted` is BOT_FORWARDED_ALLOW_IPS, the list
    uvicorn is started with. uvicorn replaces the peer with the client named in X-Forwarded-For only when the peer
    is a trusted proxy, and does not say whether it did; so the peer is the client's when:

    - it is the client uvicorn would take from the header (the header came through a trusted proxy), and is not
      itself a listed proxy; or
    - it is a public address that no listed proxy stands for: a stranger's own (a header it sent is ignored, so
      sending one cannot dodge the limit).

    A loopback or private peer otherwise is a proxy shared by every client behind it (no header, or a header from a
    proxy that is not trusted), and so is a listed proxy's own address: the limit across usernames must not count
    it, or one stranger's failures lock out everyone."""
    key = address_key(peer)
    parsed = _ip(peer)
    if parsed is None:
        return LoginClient(key, known=False, warning="not_an_address")
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    header = (forwarded_for or "").strip()
    listed_proxy = _is_trusted(str(parsed), trusted) and trusted.strip() != "*"
    if listed_proxy:
        return LoginClient(key, known=False, warning="proxy_itself" if header else "unnamed")
    if header and _same_host(forwarded_client(header, trusted), str(parsed)):
        return LoginClient(key, known=True)  # uvicorn took it from a trusted proxy's header
    if parsed.is_loopback or any(parsed in network for network in PROXY_NETWORKS):
        return LoginClient(key, known=False, warning="untrusted_proxy" if header else "unnamed")
    return LoginClient(key, known=True, warning="ignored_forwarded_for" if header else "")


def throttle_key(username: str, client_address: str) -> str:
    return f"{normalize_username(username)}|{client_address}"


def address_throttle_key(client_address: str) -> str:
    """Failures of any username from one address ('*' is never a username)."""
    return f"*|{client_address}"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


# --- who is asking -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """A logged-in person (or the service token) as endpoints see it."""

    username: str
    display_name: str
    role: str
    csrf_token: str = ""
    session_digest: str = ""

    @property
    def is_service(self) -> bool:
        return self.role == SERVICE_ROLE

    @property
    def role_label(self) -> str:
        return ROLE_LABELS_ES.get(self.role, self.role)

    def to_dict(self) -> dict[str, str]:
        return {"username": self.username, "display_name": self.display_name, "role": self.role,
                "role_label": self.role_label}


SERVICE_PRINCIPAL = Principal(username="service", display_name="Servicio (token)", role=SERVICE_ROLE)


@dataclass(frozen=True)
class LoginResult:
    principal: Principal
    session_token: str  # goes into the cookie, never anywhere else
    expires_at: datetime


class Authenticator:
    """Users, sessions and the login limit over a `ConsoleStore`. Synchronous: call it from a thread."""

    def __init__(
        self,
        store: ConsoleStore,
        settings: Settings,
        *,
        hasher: PasswordHasher | None = None,
        limit: LoginLimit = LOGIN_LIMIT,
        address_limit: LoginLimit = ADDRESS_LIMIT,
        verify_slots: int = VERIFY_SLOTS,
        verify_wait_seconds: float = VERIFY_WAIT_SECONDS,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.settings = settings
        self.hasher = hasher or PasswordHasher()
        self.limit = limit
        self.address_limit = address_limit
        self.verify_slots = threading.BoundedSemaphore(verify_slots)
        self.verify_wait_seconds = verify_wait_seconds
        self.clock = clock
        self._warned: set[str] = set()  # CLIENT_WARNINGS already logged (each once)
        # Verified when the username is unknown, so a login takes as long whether or not the user exists.
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))

    # users

    def add_user(self, username: str, role: str, password: str, display_name: str | None = None) -> User:
        name = check_username(username)
        if name in RESERVED_USERNAMES:
            raise UserInputError(f"el nombre «{name}» lo usa el sistema; elija otro nombre de usuario")
        stored_role = parse_role(role)
        check_password(password)
        try:
            return self.store.add_user(name, (display_name or name).strip()[:80] or name, stored_role,
                                       self.hasher.hash(password), self.clock())
        except UserExists as exc:
            raise UserInputError(f"el usuario «{name}» ya existe") from exc

    def set_password(self, username: str, password: str) -> None:
        check_password(password)
        self.store.set_password_hash(normalize_username(username), self.hasher.hash(password), self.clock())

    def seed_demo_users(self) -> list[str]:
        """The demo only (development with the sandbox page alone, `Settings.is_demo`): create the demo users that
        are missing. Returns the usernames created."""
        if not self.settings.is_demo:
            return []
        created = []
        for username, role, password, display_name in DEMO_USERS:
            if self.store.find_user(username) is None:
                try:
                    self.add_user(username, role, password, display_name)
                except UserInputError:
                    continue  # another process seeded it first
                created.append(username)
        return created

    # logging in and out

    def login(self, username: str, password: str, client: str | LoginClient) -> LoginResult:
        """Synchronous login (a thread, the CLI, tests): waits for a verify slot by blocking. The app's routes use
        `login_on_event_loop`, which waits without holding a worker thread."""
        self.check_login_limits(username, client)
        if not self.verify_slots.acquire(timeout=self.verify_wait_seconds):
            raise self._busy()
        try:
            return self.login_with_slot(username, password, client)
        finally:
            self.verify_slots.release()

    def check_login_limits(self, username: str, client: str | LoginClient) -> None:
        """The limits alone (reads the store, no verify): a refused login never waits for a slot."""
        who = _as_client(client)
        name = normalize_username(username)
        now = self.clock()
        if who.warning:
            self._warn_once(who)
        if who.known:
            self._check_limit(address_throttle_key(who.address), now, self.address_limit, "desde esta dirección",
                              name, who.address)
        self._check_limit(throttle_key(name, who.address), now, self.limit, "para este usuario", name, who.address)

    def login_with_slot(self, username: str, password: str, client: str | LoginClient) -> LoginResult:
        """The login proper, for a caller that holds one of `verify_slots`: limits again (another attempt may have
        failed meanwhile), one verify, the session."""
        who = _as_client(client)
        self.check_login_limits(username, who)
        now = self.clock()
        name = normalize_username(username)
        key = throttle_key(name, who.address)
        user = self.store.find_user(name) if USERNAME_PATTERN.match(name) else None
        if not self._password_matches(user, password[:MAX_PASSWORD_LENGTH]) or user is None or not user.active:
            self.store.add_login_failure(key, now)
            if who.known:
                self.store.add_login_failure(address_throttle_key(who.address), now)
            log.info("console login failed", extra={"username": name[:40]})
            raise InvalidCredentials("Usuario o contraseña incorrectos.")
        if not self.settings.is_demo and any(
            user.username == demo_name and password == demo_password for demo_name, _, demo_password, _ in DEMO_USERS
        ):
            # Left by an earlier `make run` on the same data directory: published passwords open nothing but the demo.
            raise InvalidCredentials(
                "Esta cuenta usa la contraseña de demostración, que solo se admite en la demostración local. "
                "Cámbiela con «python -m bot users passwd " + user.username + "»."
            )
        if self.hasher.check_needs_rehash(user.password_hash):
            self.store.set_password_hash(user.username, self.hasher.hash(password), now)
        self.store.clear_login_failures(key)
        # Housekeeping rides on logins: expired sessions and failures older than the window go.
        self.store.delete_expired_sessions(now)
        self.store.forget_login_failures_before(now - self.limit.window)
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        expires_at = now + SESSION_LIFETIME
        self.store.add_session(token_digest(token), user.username, csrf, now, expires_at)
        log.info("console login", extra={"username": user.username, "role": user.role})
        principal = Principal(user.username, user.display_name, user.role, csrf, token_digest(token))
        return LoginResult(principal, token, expires_at)

    def _check_limit(self, key: str, now: datetime, limit: LoginLimit, whose: str, name: str, address: str) -> None:
        decision = throttle_decision(self.store.login_failures_since(key, now - limit.window), now, limit)
        if decision.allowed:
            return
        log.warning("console login refused: too many failures",
                    extra={"username": name[:40], "client_address": address, "limit": whose})
        raise TooManyAttempts(decision.message_for(whose), decision.retry_after)

    def _warn_once(self, who: LoginClient) -> None:
        if who.warning in self._warned:
            return
        self._warned.add(who.warning)
        log.warning(CLIENT_WARNINGS[who.warning], {"peer": who.address, "trusted": self.settings.forwarded_allow_ips})

    def _busy(self) -> LoginBusy:
        log.warning("console login refused: every password-verify slot is busy")
        return LoginBusy("Hay demasiados inicios de sesión a la vez. Intente de nuevo en unos segundos.",
                         timedelta(seconds=2))

    async def wait_for_verify_slot(self) -> None:
        """Take a verify slot, waiting on the event loop (a worker thread is never held while waiting); LoginBusy
        after `verify_wait_seconds`. The caller releases `verify_slots`."""
        deadline = time.monotonic() + self.verify_wait_seconds
        while not self.verify_slots.acquire(blocking=False):
            if time.monotonic() >= deadline:
                raise self._busy()
            await asyncio.sleep(VERIFY_POLL_SECONDS)

    def _password_matches(self, user: User | None, password: str) -> bool:
        """One argon2id verify (also for unknown users, so timing does not tell); the caller holds a slot."""
        try:
            return self.hasher.verify(user.password_hash if user else self._dummy_hash, password) and user is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def session_principal(self, session_token: str) -> Principal | None:
        if not session_token or len(session_token) > 200:
            return None
        stored = self.store.session(token_digest(session_token), self.clock())
        if stored is None or not stored.active:
            return None
        return Principal(stored.username, stored.display_name, stored.role, stored.csrf_token, stored.id_sha256)

    def logout(self, principal: Principal) -> None:
        if principal.session_digest:
            self.store.delete_session(principal.session_digest)


# --- FastAPI dependencies ------------------------------------------------------------------------


def authenticator_of(request: Request) -> Authenticator:
    return request.app.state.console_auth  # type: ignore[no-any-return]


def _as_client(client: str | LoginClient) -> LoginClient:
    """A bare address (the CLI, tests) is taken as the client's own."""
    return client if isinstance(client, LoginClient) else LoginClient(address_key(client), known=True)


async def login_on_event_loop(auth: Authenticator, username: str, password: str, client: LoginClient) -> LoginResult:
    """The routes' login: the limits first (a refused login costs no slot), then a verify slot awaited on the event
    loop, then the verify in a worker thread. Forty logins at once hold two threads, not forty, so the rest of the
    console (sessions, the store) keeps its thread pool."""
    await run_in_threadpool(auth.check_login_limits, username, client)
    await auth.wait_for_verify_slot()
    try:
        return await run_in_threadpool(auth.login_with_slot, username, password, client)
    finally:
        auth.verify_slots.release()


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def _csrf_token_sent(request: Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def request_login_client(request: Request) -> LoginClient:
    return login_client(client_address(request), request.headers.get("x-forwarded-for"),
                        request.app.state.settings.forwarded_allow_ips)


Dependency = Callable[[Request], Awaitable[Principal]]


def require_role(*roles: str, service: bool = False) -> Dependency:
    """A dependency admitting a logged-in person with one of `roles` (and the service token if `service`).

    State-changing requests must carry the session's CSRF token. The admitted roles are kept on the
    dependency (`allowed_roles`, `admits_service`) so the route table can be listed and tested.
    """
    allowed = frozenset(roles)
    unknown = allowed - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")

    async def dependency(request: Request) -> Principal:
        bearer = bearer_token(request)
        if bearer is not None and service:
            if not same_secret(bearer, request.app.state.settings.service_token):
                raise NotAuthenticated("El token de servicio no es válido.")
            return SERVICE_PRINCIPAL
        auth = authenticator_of(request)
        token = request.cookies.get(SESSION_COOKIE, "")
        principal = await run_in_threadpool(auth.session_principal, token) if token else None
        if principal is None:
            raise NotAuthenticated("Inicie sesión para continuar.")
        if request.method not in SAFE_METHODS:
            sent = await _csrf_token_sent(request)
            if not sent or not same_secret(sent, principal.csrf_token):
                raise CsrfRejected("La sesión de esta página caducó (falta el token CSRF). Recargue la página.")
        if principal.role not in allowed:
            raise Forbidden(f"Su rol ({principal.role_label}) no tiene permiso para esto.")
        return principal

    dependency.allowed_roles = allowed  # type: ignore[attr-defined]
    dependency.admits_service = service  # type: ignore[attr-defined]
    return dependency


ANY_ROLE = ROLES
