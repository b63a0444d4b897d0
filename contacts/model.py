"""What a contact is: one person on one page, with the profile Meta gave us (or why not), when they first and last
wrote, the campaign they came by, and what the business adds (tags, free fields, notes).

Pure: no I/O. Every check raises `ContactInvalid(field, message_es)` with a Spanish sentence naming the field, from
one table of limits. Tags are compared case- and accent-insensitively ("Cliente VIP" = "cliente vip" =
"CLIENTE víp"): `tag_key` is the comparison form, the stored tag keeps how it was first written. The 24-hour and
HUMAN_AGENT windows are read from the outbox's policy (rules RESPONSE and HUMAN_AGENT), never hard-coded here.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from core.errors import DomainError, FieldInvalid
from meta.errors import GraphError, RateLimitedError, TokenInvalidError, TransientGraphError
from outbox.policy import Policy, ReplyWindows
from outbox.policy_file import load_policy

# --- limits (one table: what is checked, and the Spanish wording of each refusal) ----------------------------------

MAX_TAG = 40
MAX_TAGS = 50
MAX_FIELD_KEY = 40
MAX_FIELD_VALUE = 500
MAX_FIELDS = 50
MAX_NOTE = 5000
MAX_NAME = 200
MAX_AUTHOR = 200
FIELD_KEY_PATTERN = re.compile(r"^[a-z0-9_]{1,40}$")
PAGE_ID_PATTERN = re.compile(r"^[0-9]{1,64}$")
# Meta's PSIDs are digits; the sandbox and tests also use letters and `-` (never `_`, `/`, `?`, `.`: a PSID goes into a
# Graph path, and `<digits>_<digits>` is a post id there).
PSID_PATTERN = re.compile(r"^[A-Za-z0-9-]{1,64}$")
MAX_CAMPAIGN = 2100  # an m.me ref is at most 2,083 characters (Meta), plus "ad:" for an ad id

# Profile states: what we know of the person's Graph profile.
PENDING = "pending"  # not asked yet (or asked again after a failure)
FETCHED = "fetched"
NO_PERMISSION = "no_permission"  # Meta refused: the page or app may not read it (or this person has none)
UNAVAILABLE = "unavailable"  # Meta or the network failed: asked again later (backoff)
PROFILE_STATUSES = frozenset({PENDING, FETCHED, NO_PERMISSION, UNAVAILABLE})

# Retrying a profile: `unavailable` backs off from 30 s, doubling, up to 6 h; `no_permission` is asked again once a
# day (a page's permission or the person's consent can come later: Meta grants the profile once they reply).
RETRY_FIRST = timedelta(seconds=30)
RETRY_MAX = timedelta(hours=6)
NO_PERMISSION_RETRY = timedelta(days=1)
# A fetched profile is read again after this long: Meta's `profile_pic` URLs expire (signed, for days), and names
# change now and then.
PROFILE_REFRESH = timedelta(days=7)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SPACES = re.compile(r"\s+")


class ContactsError(DomainError):
    """Root of what the contacts package raises on purpose."""

    reason_code = "contacts_error"


class ContactInvalid(ContactsError, FieldInvalid):
    """A value that cannot be saved: `field` names it (`tags`, `fields.ciudad`, `note`), `message_es` says why."""

    reason_code = "contact_invalid"


class ContactNotFound(ContactsError, LookupError):
    reason_code = "contact_not_found"

    def __init__(self, page_id: str, psid: str) -> None:
        super().__init__(f"no contact {page_id}:{psid}")
        self.page_id = page_id
        self.psid = psid
        self.message_es = f"No existe el contacto {psid} en la página {page_id}."


# --- checks ----------------------------------------------------------------------------------------------------


def _text(value: Any, field_name: str, what: str) -> str:
    if not isinstance(value, str):
        raise ContactInvalid(field_name, f"{what} debe ser texto.")
    if "\x00" in value:
        raise ContactInvalid(field_name, f"{what} no puede contener el carácter nulo (NUL).")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ContactInvalid(field_name, f"{what} contiene caracteres que no son texto válido.") from exc
    return value


def check_page_id(page_id: Any) -> str:
    if not isinstance(page_id, str) or not PAGE_ID_PATTERN.match(page_id):
        raise ContactInvalid("page_id", "El id de la página debe tener solo dígitos (hasta 64).")
    return page_id


def check_psid(psid: Any) -> str:
    if not isinstance(psid, str) or not PSID_PATTERN.match(psid):
        raise ContactInvalid("psid", "El PSID debe tener de 1 a 64 letras, dígitos o guiones.")
    return psid


def fold(text: str) -> str:
    """The comparison form of a text: no accents, case folded, spaces collapsed ("  Cliente  VÍP " → "cliente vip").
    Tags, names and searches compare by it."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(char for char in decomposed if not unicodedata.combining(char))
    return _SPACES.sub(" ", bare.casefold()).strip()


def check_tag(tag: Any, field_name: str = "tags") -> str:
    """A tag as it is stored: trimmed, inner spaces collapsed, 1–40 characters, no control characters."""
    text = _text(tag, field_name, "La etiqueta")
    if _CONTROL.search(text):
        raise ContactInvalid(field_name, "La etiqueta no puede contener saltos de línea ni caracteres de control.")
    text = _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()
    if not text:
        raise ContactInvalid(field_name, "La etiqueta no puede estar vacía.")
    if len(text) > MAX_TAG:
        raise ContactInvalid(field_name, f"La etiqueta «{text[:20]}…» tiene más de {MAX_TAG} caracteres.")
    return text


def tag_key(tag: str) -> str:
    """How tags compare: case- and accent-insensitive."""
    return fold(tag)


def check_tags(tags: Iterable[Any], field_name: str = "tags") -> tuple[str, ...]:
    """Tags checked, one per key (the first spelling wins), in the order given."""
    if isinstance(tags, (str, bytes)) or not isinstance(tags, Iterable):
        raise ContactInvalid(field_name, "Las etiquetas deben ser una lista de textos.")
    seen: dict[str, str] = {}
    for tag in tags:
        checked = check_tag(tag, field_name)
        seen.setdefault(tag_key(checked), checked)
        if len(seen) > MAX_TAGS:
            raise ContactInvalid(field_name, f"Un contacto tiene como máximo {MAX_TAGS} etiquetas.")
    return tuple(seen.values())


def check_field_key(key: Any) -> str:
    if not isinstance(key, str) or not FIELD_KEY_PATTERN.match(key):
        shown = key[:40] if isinstance(key, str) else type(key).__name__
        raise ContactInvalid(f"fields.{shown}", "El nombre de un campo usa de 1 a 40 letras minúsculas sin tildes, "
                                                "dígitos o _ (por ejemplo ciudad, pedido).")
    return key


def check_field_value(key: str, value: Any) -> str | None:
    """A field's value; None (or an empty text) deletes the field."""
    if value is None:
        return None
    text = _text(value, f"fields.{key}", f"El valor del campo {key}")
    if len(text) > MAX_FIELD_VALUE:
        raise ContactInvalid(f"fields.{key}", f"El valor del campo {key} tiene más de {MAX_FIELD_VALUE} caracteres.")
    return text if text.strip() else None


def check_fields(fields: Any) -> dict[str, str | None]:
    """Field changes: key → new value, None to delete."""
    if not isinstance(fields, Mapping):
        raise ContactInvalid("fields", "Los campos deben ser un objeto {\"nombre\": \"valor\"}.")
    if len(fields) > MAX_FIELDS:
        raise ContactInvalid("fields", f"Un contacto tiene como máximo {MAX_FIELDS} campos.")
    return {check_field_key(key): check_field_value(key, value) for key, value in fields.items()}


def check_note(text: Any) -> str:
    note = _text(text, "note", "La nota")
    if not note.strip():
        raise ContactInvalid("note", "La nota no puede estar vacía.")
    if len(note) > MAX_NOTE:
        raise ContactInvalid("note", f"La nota tiene más de {MAX_NOTE} caracteres.")
    return note


def check_author(author: Any) -> str:
    text = _text(author, "author", "El autor")
    if not text.strip() or len(text) > MAX_AUTHOR:
        raise ContactInvalid("author", f"El autor debe tener de 1 a {MAX_AUTHOR} caracteres.")
    return text


def check_name(value: Any, field_name: str) -> str | None:
    """A first or last name (from Meta or an import): None or blank is no name."""
    if value is None:
        return None
    what = "El nombre" if field_name == "first_name" else "El apellido"
    text = _SPACES.sub(" ", _text(value, field_name, what)).strip()
    if _CONTROL.search(text):
        raise ContactInvalid(field_name, f"{what} no puede contener caracteres de control.")
    if len(text) > MAX_NAME:
        raise ContactInvalid(field_name, f"{what} tiene más de {MAX_NAME} caracteres.")
    return text or None


def check_campaign(value: Any) -> str | None:
    if value is None:
        return None
    text = _text(value, "campaign", "La campaña")
    if not text or len(text) > MAX_CAMPAIGN or _CONTROL.search(text):
        raise ContactInvalid("campaign", f"La campaña debe tener de 1 a {MAX_CAMPAIGN} caracteres sin control.")
    return text


# --- the windows (from the outbox's policy) ---------------------------------------------------------------------


@lru_cache(maxsize=1)
def _shipped_policy() -> Policy:
    return load_policy()


def window_durations(policy: Policy | ReplyWindows | None = None) -> tuple[timedelta, timedelta]:
    """(standard window, HUMAN_AGENT window) measured from the person's last own message: the `window_to` of the
    policy's RESPONSE and HUMAN_AGENT rules (the shipped outbox/policy.yml unless a policy or its windows are
    given: the app passes `Outbox.reply_windows()`)."""
    windows = policy if isinstance(policy, ReplyWindows) else (policy or _shipped_policy()).reply_windows()
    return windows.standard, windows.human_agent


# --- values ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contact:
    page_id: str
    psid: str
    first_seen_at: datetime
    first_name: str | None = None
    last_name: str | None = None
    profile_pic: str | None = None  # Meta's URL; it expires
    locale: str | None = None
    profile_status: str = PENDING
    profile_reason: str | None = None  # Spanish: why there is no profile (no_permission, unavailable)
    profile_fetched_at: datetime | None = None
    last_user_message_at: datetime | None = None
    campaign: str | None = None  # the m.me ref, or "ad:<id>", they first came by
    tags: tuple[str, ...] = ()
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    notes_count: int = 0
    profile_attempts: int = 0  # failed profile fetches since the last success
    updated_at: datetime | None = None
    last_text: str | None = None  # the text of their last message (first 500 characters); None: not text, or never
    message_count: int = 0  # how many messages they wrote on this page (the outbox's count)
    read_at: datetime | None = None  # when an agent last opened the conversation (None: never)
    read_message_count: int | None = None  # message_count then (None: unknown)

    @property
    def key(self) -> tuple[str, str]:
        return (self.page_id, self.psid)

    @property
    def display_name(self) -> str:
        """"Nombre Apellido", else "Sin nombre (PSID …1234)"."""
        name = " ".join(part for part in (self.first_name, self.last_name) if part)
        return name or f"Sin nombre (PSID …{self.psid[-4:]})"

    def standard_window_left(self, now: datetime, policy: Policy | ReplyWindows | None = None) -> timedelta | None:
        """Time left of the 24-hour window (a normal reply, promotional content allowed); None when closed."""
        return self._left(now, window_durations(policy)[0])

    def human_agent_left(self, now: datetime, policy: Policy | ReplyWindows | None = None) -> timedelta | None:
        """Time left for a person to answer (the standard window, then HUMAN_AGENT); None when even that ended."""
        return self._left(now, window_durations(policy)[1])

    @property
    def is_unread(self) -> bool:
        """The person wrote after an agent last opened the conversation (or nobody ever opened it)."""
        return self.last_user_message_at is not None and (self.read_at is None
                                                          or self.last_user_message_at > self.read_at)

    def _left(self, now: datetime, span: timedelta) -> timedelta | None:
        if self.last_user_message_at is None:
            return None
        left = self.last_user_message_at + span - now
        return left if left > timedelta(0) else None

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "page_id": self.page_id, "psid": self.psid, "display_name": self.display_name,
            "first_name": self.first_name, "last_name": self.last_name, "profile_pic": self.profile_pic,
            "locale": self.locale, "profile_status": self.profile_status, "profile_reason": self.profile_reason,
            "profile_fetched_at": _iso(self.profile_fetched_at), "first_seen_at": _iso(self.first_seen_at),
            "last_user_message_at": _iso(self.last_user_message_at), "campaign": self.campaign,
            "tags": list(self.tags), "fields": dict(self.fields), "notes_count": self.notes_count,
            "last_text": self.last_text, "message_count": self.message_count,
        }
        if now is not None:
            standard, human = self.standard_window_left(now), self.human_agent_left(now)
            data["standard_window_seconds_left"] = int(standard.total_seconds()) if standard else None
            data["human_agent_seconds_left"] = int(human.total_seconds()) if human else None
        return data


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class Note:
    id: int
    page_id: str
    psid: str
    text: str
    author: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "page_id": self.page_id, "psid": self.psid, "text": self.text, "author": self.author,
                "created_at": self.created_at.isoformat()}


MAX_PAGE_LIMIT = 200


@dataclass(frozen=True)
class ContactQuery:
    """A search: all filters together (AND). `text` matches a name, the PSID, a tag, a field value or the person's
    last message, ignoring case and accents; `window_open_at` (now) keeps only contacts whose 24-hour window is open
    then; `after` is the `next_cursor` of the previous page."""

    page_id: str | None = None
    text: str | None = None
    tag: str | None = None
    campaign: str | None = None
    window_open_at: datetime | None = None
    limit: int = 50
    after: str | None = None

    def __post_init__(self) -> None:
        if self.page_id is not None:
            check_page_id(self.page_id)
        if self.text is not None:
            _text(self.text, "q", "La búsqueda")
            if len(self.text) > 200:
                raise ContactInvalid("q", "La búsqueda tiene más de 200 caracteres.")
        if self.tag is not None:
            check_tag(self.tag, "tag")
        if self.campaign is not None:
            check_campaign(self.campaign)
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or not 1 <= self.limit <= MAX_PAGE_LIMIT:
            raise ContactInvalid("limit", f"El límite debe estar entre 1 y {MAX_PAGE_LIMIT}.")
        if self.after is not None:
            _text(self.after, "cursor", "El cursor")


@dataclass(frozen=True)
class ContactPage:
    contacts: list[Contact]
    next_cursor: str | None
    total: int
    unread: int = 0  # the inbox's: conversations of `total` with messages no agent has seen (`Contact.is_unread`)


# --- profiles ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileOutcome:
    """What a profile fetch ended in: the state to record and, when not fetched, why (Spanish)."""

    status: str
    reason: str | None = None


# Meta's answers of the User Profile API that mean "not for this page / this person" (never better on a retry soon):
# (#100) Insufficient permission to access user profile (subcode 2018247); No profile available for this user
# (2018218: an account made with a phone number); No matching user found (2018001); Unsupported get request (33:
# the object does not exist for this token or permissions are missing); (#10) / (#200) permission errors.
_NO_PROFILE_REASONS: Mapping[tuple[int | None, int | None], str] = {
    (100, 2018247): "La página no tiene permiso para leer el perfil (Meta pide el acceso «Business Asset User Profile "
                    "Access» y pages_messaging).",
    (100, 2018218): "Meta no ofrece el perfil de esta persona (cuenta de Messenger creada con un número de teléfono).",
    (100, 2018001): "Meta no encuentra a esta persona para esta página (quizás bloqueó la página o borró su cuenta).",
    (100, 33): "Meta no deja leer este perfil con el token de la página (falta permiso o la persona ya no existe).",
}
_PERMISSION_CODES = frozenset({10, 200, 230})
_NO_PERMISSION_DEFAULT = "La página no tiene permiso para leer el perfil (pages_messaging)."


def profile_outcome(error: GraphError) -> ProfileOutcome:
    """How a failed profile fetch is recorded: `no_permission` (with why) when Meta refuses this page or person,
    `unavailable` (retried with backoff) when Meta, the network or the page's token failed."""
    if isinstance(error, TokenInvalidError):
        return ProfileOutcome(UNAVAILABLE, "El token de la página no es válido; se reintentará cuando se renueve.")
    if isinstance(error, (RateLimitedError, TransientGraphError)):
        return ProfileOutcome(UNAVAILABLE, "Meta no respondió; se reintentará más tarde.")
    reason = _NO_PROFILE_REASONS.get((error.code, error.subcode))
    if reason is not None:
        return ProfileOutcome(NO_PERMISSION, reason)
    if error.code in _PERMISSION_CODES:
        return ProfileOutcome(NO_PERMISSION, _NO_PERMISSION_DEFAULT)
    return ProfileOutcome(UNAVAILABLE, f"Meta rechazó la consulta del perfil (código {error.code}); se reintentará.")


# Refusals that are the app's or the page's, not the person's: every contact of the page gets the same answer.
_PAGE_WIDE_REFUSALS = frozenset({(100, 2018247)})


def is_page_wide_refusal(error: GraphError) -> bool:
    """Meta refuses every profile of this page (the app lacks the permission), not just this person's: the sync then
    asks that page once a day instead of once a day per contact."""
    if isinstance(error, (TokenInvalidError, TransientGraphError)):
        return False
    return (error.code, error.subcode) in _PAGE_WIDE_REFUSALS or error.code in _PERMISSION_CODES


def next_profile_attempt(status: str, attempts: int, now: datetime) -> datetime | None:
    """When to ask for a profile again after recording `status` with `attempts` failures so far (this one
    included): a week after a success (the picture's URL expires), daily after a refusal, 30 s doubling up to 6 h
    after an outage."""
    if status == FETCHED:
        return now + PROFILE_REFRESH
    if status == PENDING:
        return now
    if status == NO_PERMISSION:
        return now + NO_PERMISSION_RETRY
    delay = RETRY_FIRST * (2 ** max(0, min(attempts - 1, 20)))
    return now + min(delay, RETRY_MAX)


def profile_from_graph(body: Mapping[str, Any]) -> dict[str, str | None]:
    """The fields we keep from a User Profile API answer, each checked (a value that is not text is dropped: Meta's
    answer is not trusted to be well formed)."""
    kept: dict[str, str | None] = {}
    for name in ("first_name", "last_name"):
        try:
            kept[name] = check_name(body.get(name), name)
        except ContactInvalid:
            kept[name] = None
    pic = body.get("profile_pic")
    kept["profile_pic"] = pic if isinstance(pic, str) and pic.startswith("https://") and len(pic) <= 4000 else None
    locale = body.get("locale")
    kept["locale"] = locale if isinstance(locale, str) and re.fullmatch(r"[A-Za-z]{2,3}(_[A-Za-z]{2})?", locale) \
        else None
    return kept


def search_text(contact: Contact) -> str:
    """What a text search looks in, folded: the names, the PSID, the tags, the field values and the last message's
    text (one line each, so a search never matches across two of them)."""
    parts = [contact.first_name or "", contact.last_name or "",
             " ".join(part for part in (contact.first_name, contact.last_name) if part), contact.psid,
             *contact.tags, *contact.fields.values(), contact.last_text or ""]
    return "\n".join(fold(part) for part in parts if part)


# --- audiences (who a broadcast goes to) --------------------------------------------------------------------------

MAX_AUDIENCE_TAGS = 50
_AUDIENCE_KEYS = frozenset({"page_id", "tags_any", "tags_none", "fields", "campaign", "last_interaction_after",
                            "last_interaction_before"})


def _audience_tags(data: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = data.get(name)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ContactInvalid(name, "Las etiquetas deben ser una lista de textos.")
    if len(value) > MAX_AUDIENCE_TAGS:
        raise ContactInvalid(name, f"Una audiencia usa como máximo {MAX_AUDIENCE_TAGS} etiquetas por condición.")
    seen: dict[str, str] = {}
    for tag in value:
        checked = check_tag(tag, name)
        seen.setdefault(tag_key(checked), checked)
    return tuple(seen.values())


def _audience_fields(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ContactInvalid("fields", "Los campos deben ser un objeto {\"nombre\": \"valor\"}.")
    if len(value) > MAX_FIELDS:
        raise ContactInvalid("fields", f"Una audiencia usa como máximo {MAX_FIELDS} campos.")
    fields: dict[str, str] = {}
    for key, wanted in value.items():
        checked_key = check_field_key(key)
        text = check_field_value(checked_key, wanted)
        if text is None:
            raise ContactInvalid(f"fields.{checked_key}", f"Indique el valor que debe tener el campo {checked_key}.")
        fields[checked_key] = text
    return fields


# The years a time given by a person may name: a date outside them is a typo (and the first or last day of
# datetime's range cannot even be moved to UTC: 0001-01-01T00:00:00+14:00 is before year 1).
FIRST_YEAR, LAST_YEAR = 2000, 2100


def aware_time(value: Any, name: str, what: str) -> datetime:
    """A time someone typed (ISO 8601 text with its zone, or an aware datetime) as aware UTC, or ContactInvalid(name,
    Spanish) naming the field: not ISO 8601, no zone, or outside the years 2000–2100 (also the dates that overflow
    when moved to UTC)."""
    example = "(2026-11-30T15:00:00+00:00)"
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and len(value) <= 40:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
        except ValueError as exc:
            raise ContactInvalid(name, f"{what} debe tener el formato ISO 8601 {example}.") from exc
    else:
        raise ContactInvalid(name, f"{what} debe ser un texto ISO 8601 {example}.")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ContactInvalid(name, f"{what} debe indicar la zona horaria (por ejemplo +00:00 o Z).")
    try:
        utc = parsed.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not FIRST_YEAR <= utc.year <= LAST_YEAR:
        raise ContactInvalid(name, f"{what} debe estar entre los años {FIRST_YEAR} y {LAST_YEAR}.")
    return utc


def _audience_time(value: Any, name: str) -> datetime | None:
    return aware_time(value, name, "La fecha de la última interacción") if value is not None else None


@dataclass(frozen=True)
class Audience:
    """Who a broadcast goes to: the contacts of one page matching every condition (AND), whether they wrote or
    not (a contact imported by CSV never wrote; the broadcast decides what to do with them). Tags and field values
    compare ignoring case and accents; the last interaction is `last_user_message_at` (after: >=, before: <)."""

    page_id: str
    tags_any: tuple[str, ...] = ()  # has at least one (empty: no condition)
    tags_none: tuple[str, ...] = ()  # has none of them
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # key → value
    campaign: str | None = None
    last_interaction_after: datetime | None = None  # last_user_message_at >= this
    last_interaction_before: datetime | None = None  # last_user_message_at < this

    def __post_init__(self) -> None:
        check_page_id(self.page_id)
        for name in ("last_interaction_after", "last_interaction_before"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
                raise ContactInvalid(name, "La fecha de la última interacción debe indicar la zona horaria.")
        if (self.last_interaction_after is not None and self.last_interaction_before is not None
                and self.last_interaction_after >= self.last_interaction_before):
            raise ContactInvalid("last_interaction_before", "La última interacción «antes de» debe ser posterior a "
                                                            "la de «después de».")
        if not isinstance(self.fields, MappingProxyType):
            object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))

    @classmethod
    def from_dict(cls, data: Any) -> Audience:
        """An audience from a JSON body; ContactInvalid(field, Spanish message) for anything else."""
        if not isinstance(data, Mapping):
            raise ContactInvalid("audience", "La audiencia debe ser un objeto JSON.")
        unknown = sorted(str(key)[:40] for key in data if key not in _AUDIENCE_KEYS)
        if unknown:
            field_name = unknown[0] if FIELD_KEY_PATTERN.match(unknown[0]) else "audience"
            raise ContactInvalid(field_name, f"La audiencia no admite «{unknown[0]}»; use page_id, tags_any, "
                                             "tags_none, fields, campaign, last_interaction_after o "
                                             "last_interaction_before.")
        return cls(
            page_id=check_page_id(data.get("page_id")),
            tags_any=_audience_tags(data, "tags_any"),
            tags_none=_audience_tags(data, "tags_none"),
            fields=MappingProxyType(_audience_fields(data.get("fields"))),
            campaign=check_campaign(data.get("campaign")),
            last_interaction_after=_audience_time(data.get("last_interaction_after"), "last_interaction_after"),
            last_interaction_before=_audience_time(data.get("last_interaction_before"), "last_interaction_before"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"page_id": self.page_id, "tags_any": list(self.tags_any), "tags_none": list(self.tags_none),
                "fields": dict(self.fields), "campaign": self.campaign,
                "last_interaction_after": _iso(self.last_interaction_after),
                "last_interaction_before": _iso(self.last_interaction_before)}


@dataclass(frozen=True)
class AudiencePage:
    """One page of an audience, by the contacts' internal id (oldest first)."""

    contacts: list[Contact]
    next_after: int | None  # pass back as `after`; None: the end
