"""m.me links: what a link is, how its parts are checked, and what a referral by it starts.

Pure (no I/O), and Python 3.10 too: the Rasa channel (connectors/messenger.py) turns a link's start into the user's
message with `Start.message_text`, the same function the app uses.

Meta's rules for the `ref` parameter of `https://m.me/<page>?ref=<ref>`: at most 2,083 characters of letters, digits
and `-`, `_`, `=` (Messenger Platform, "m.me Links": referral parameters). We also admit `.` (the design's charset;
Meta's Send to Messenger plugin lists it among its allowed characters) and keep refs to 250 characters, so a printed QR
code stays small enough to scan from a table card. Refs Meta sends us (ads, other tools' links) are recorded as they
come, up to Meta's 2,083 characters (`MAX_INCOMING_REF`).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

REF_PATTERN = re.compile(r"^[A-Za-z0-9_=.-]{1,250}$")
MAX_REF = 250
MAX_INCOMING_REF = 2083  # Meta's limit for a ref parameter
MAX_NAME = 80
INTENT_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_ENTRY_ID = 100
PAGE_ID_PATTERN = re.compile(r"^[0-9]{1,64}$")
# Facebook page usernames: letters, digits and dots, at least 5 characters (50 at most).
PAGE_USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9.]{5,50}$")
# Rasa's conversation controls answer nothing (`/restart` forgets the conversation): never a link's start.
RASA_CONTROL_INTENTS = frozenset({"restart", "back", "session_start"})
ENTRY_INTENT = "ask_knowledge"  # domain.yml: `/ask_knowledge{"entry_id":"…"}` answers that matrix entry
ENTRY_ENTITY = "entry_id"
MME_BASE = "https://m.me/"


class LinksError(Exception):
    """Root of what the links package raises on purpose."""


class LinkInvalid(LinksError, ValueError):
    """A field that cannot be saved: `field` names it, `message_es` says why to the person who typed it."""

    def __init__(self, field: str, message_es: str) -> None:
        super().__init__(f"{field}: {message_es}")
        self.field = field
        self.message_es = message_es


@dataclass(frozen=True)
class Start:
    """What a referral by the link starts: an intent of the bot (`{"intent": "greet"}`) or the answer of a
    knowledge-matrix entry (`{"entry_id": "horario"}`)."""

    intent: str | None = None
    entry_id: str | None = None

    def to_dict(self) -> dict[str, str]:
        return {"intent": self.intent} if self.intent is not None else {"entry_id": self.entry_id or ""}

    def message_text(self) -> str:
        """The user's message to Rasa: `/greet`, or `/ask_knowledge{"entry_id":"horario"}`."""
        if self.intent is not None:
            return f"/{self.intent}"
        return f"/{ENTRY_INTENT}" + json.dumps({ENTRY_ENTITY: self.entry_id}, ensure_ascii=False,
                                               separators=(",", ":"))

    def label_es(self) -> str:
        return f"intención «{self.intent}»" if self.intent is not None else f"entrada «{self.entry_id}» de la matriz"


@dataclass(frozen=True)
class Link:
    id: int
    page_id: str
    name: str
    ref: str
    start: Start | None
    created_at: datetime
    created_by: str
    enabled: bool

    def url(self, page_username: str | None = None) -> str:
        return mme_url(page_username or self.page_id, self.ref)

    def to_dict(self, page_username: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "page_id": self.page_id, "name": self.name, "ref": self.ref,
                "start": self.start.to_dict() if self.start else None, "url": self.url(page_username),
                "created_at": self.created_at.isoformat(), "created_by": self.created_by, "enabled": self.enabled}


@dataclass(frozen=True)
class NewLink:
    """A checked link to create (`parse_new_link`)."""

    page_id: str
    name: str
    ref: str
    start: Start | None


def mme_url(page: str, ref: str) -> str:
    """`https://m.me/<page username or id>?ref=<ref>`: the ref's characters need no escaping in a query."""
    return f"{MME_BASE}{page}?ref={ref}"


# --- checks (each raises LinkInvalid with a Spanish message) ------------------------------------------------------


def _text(body: Mapping[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise LinkInvalid(field, f"«{field}» debe ser un texto.")
    return value


def check_name(value: Any) -> str:
    if not isinstance(value, str):
        raise LinkInvalid("name", "El nombre del enlace debe ser un texto.")
    name = " ".join(value.split())
    if not name:
        raise LinkInvalid("name", "Escriba un nombre para el enlace (por ejemplo «Menú en las mesas»).")
    if len(name) > MAX_NAME:
        raise LinkInvalid("name", f"El nombre tiene {len(name)} caracteres; use como máximo {MAX_NAME}.")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in name):
        raise LinkInvalid("name", "El nombre tiene caracteres invisibles o de control; escríbalo de nuevo.")
    return name


def check_ref(value: Any) -> str:
    if not isinstance(value, str):
        raise LinkInvalid("ref", "La referencia (ref) debe ser un texto.")
    ref = value.strip()
    if not ref:
        raise LinkInvalid("ref", "Escriba una referencia (ref) para el enlace, por ejemplo «menu_mesas».")
    if len(ref) > MAX_REF:
        raise LinkInvalid("ref", f"La referencia tiene {len(ref)} caracteres; use como máximo {MAX_REF}.")
    if not REF_PATTERN.match(ref):
        raise LinkInvalid("ref", "La referencia solo admite letras sin tildes, números y «-», «_», «=» o «.» "
                                 "(sin espacios).")
    return ref


def ref_from_name(name: str) -> str:
    """A ref for a link created without one: the name without accents, lower case, other characters as `_`."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    ref = re.sub(r"_+", "_", re.sub(r"[^a-z0-9_=.-]", "_", folded)).strip("_")[:MAX_REF].strip("_")
    return ref or "enlace"


def check_page_id(value: Any) -> str:
    if not isinstance(value, str) or not PAGE_ID_PATTERN.match(value.strip()):
        raise LinkInvalid("page_id", "El id de la página debe tener solo números.")
    return value.strip()


def check_page_username(value: Any) -> str:
    if not isinstance(value, str) or not PAGE_USERNAME_PATTERN.match(value.strip().lstrip("@")):
        raise LinkInvalid("page_username", "El nombre de usuario de la página tiene de 5 a 50 letras sin tildes, "
                                           "números o puntos (el de facebook.com/<usuario>).")
    return value.strip().lstrip("@")


def parse_start(value: Any) -> Start | None:
    """None, `{}`, `{"intent": "greet"}` or `{"entry_id": "horario"}` (exactly one of the two)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise LinkInvalid("start", "El inicio debe ser {\"intent\": …} o {\"entry_id\": …}.")
    extra = set(value) - {"intent", "entry_id"}
    if extra:
        raise LinkInvalid("start", f"El inicio no admite «{sorted(extra)[0]}»: use «intent» o «entry_id».")
    intent, entry_id = value.get("intent"), value.get("entry_id")
    if intent in (None, "") and entry_id in (None, ""):
        return None
    if intent not in (None, "") and entry_id not in (None, ""):
        raise LinkInvalid("start", "Elija una intención o una entrada de la matriz, no las dos.")
    if intent not in (None, ""):
        if not isinstance(intent, str) or not INTENT_PATTERN.match(intent.strip()):
            raise LinkInvalid("start", "La intención tiene de 1 a 64 letras sin tildes, números o «_» "
                                       "(por ejemplo «greet»).")
        if intent.strip() in RASA_CONTROL_INTENTS or intent.strip() == ENTRY_INTENT:
            raise LinkInvalid("start", f"La intención «{intent.strip()}» no puede iniciar un enlace.")
        return Start(intent=intent.strip())
    if not isinstance(entry_id, str):
        raise LinkInvalid("start", "El id de la entrada de la matriz debe ser un texto.")
    entry = entry_id.strip()
    if len(entry) > MAX_ENTRY_ID or any(ch.isspace() for ch in entry) or not entry.isprintable():
        raise LinkInvalid("start", f"El id de la entrada tiene de 1 a {MAX_ENTRY_ID} caracteres, sin espacios "
                                   "(como en la columna «id» de la matriz).")
    return Start(entry_id=entry)


def check_start_intent(start: Start | None, intents: Collection[str]) -> None:
    """A start's intent must be one of the bot's (domain.yml's `intents`): refused naming it, with the ones a link
    may start."""
    if start is None or start.intent is None or start.intent in intents:
        return
    usable = sorted(set(intents) - RASA_CONTROL_INTENTS - {ENTRY_INTENT})
    raise LinkInvalid("start", f"La intención «{start.intent}» no existe en el bot. Use una de estas: "
                               f"{', '.join(usable[:30]) or '(ninguna)'}.")


def parse_new_link(body: Mapping[str, Any]) -> NewLink:
    """A link to create from a request body: `page_id`, `name`, optional `ref` (made from the name when
    missing) and optional `start`."""
    if not isinstance(body, Mapping):
        raise LinkInvalid("body", "Envíe un objeto JSON con «name», «ref», «page_id» y «start».")
    extra = set(body) - {"page_id", "name", "ref", "start"}
    if extra:
        raise LinkInvalid(sorted(extra)[0], f"Campo desconocido «{sorted(extra)[0]}».")
    name = check_name(body.get("name"))
    ref_text = _text(body, "ref")
    ref = check_ref(ref_text) if ref_text not in (None, "") else ref_from_name(name)
    return NewLink(page_id=check_page_id(body.get("page_id")), name=name, ref=ref, start=parse_start(body.get("start")))


# --- referrals (what Meta sends) --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Referral:
    """One referral as the channel reports it: the event's key (once per delivery), who, which ref and from where
    (`source`: SHORTLINK for m.me links and QR codes, ADS for ads, …; `via`: the standalone `referral` item, a Get
    Started `postback`, or a `message` from an ad)."""

    event_key: str
    page_id: str
    psid: str
    ref: str
    source: str
    via: str
    ad_id: str | None
    at: datetime


VIA = ("referral", "postback", "message")
