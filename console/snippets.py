"""Snippets ("Atajos"): saved replies an agent inserts by typing `/name` in the reply box, and the variables they
(and any reply) may hold: `{nombre}`, `{apellido}`, `{agente}`, `{pagina}` and `{campo.<clave>}`.

Pure: names, checks and expansion. The console stores them (`ConsoleStore`); the page offers them as you
type `/`, and whatever `/name` of a known snippet is still in a reply when it is sent is expanded here, so API
clients get the same behaviour as the page. Variables are filled afterwards (`fill`) with the conversation's
contact and the agent's display name.

Variables: `{nombre}` the contact's first name, `{apellido}` the last name, `{agente}` the agent's display name,
`{pagina}` (or `{página}`) the page's name, `{campo.ciudad}` the contact's free field `ciudad`. Any of them takes a
fallback after `|`, written by whoever writes the snippet: `{nombre|estimado cliente}` gives "estimado cliente" when
the contact has no first name. Without a fallback a missing value is an empty text, and `fill` lists it in `empty`
so the page warns before sending. Something that looks like a variable but is none (`{hola}`, `{ciudad}`) stays as
typed and is listed in `unknown`; saving a snippet that holds one is refused (`check_variables`). Text in braces
that cannot be a variable name (`{ hola }`, `{}`, JSON) is plain text.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
MAX_TEXT = 2000  # one Messenger text message
# `/name` at the start or after whitespace, ending at whitespace, punctuation or the end (not a URL's path).
_REFERENCE = re.compile(r"(?<!\S)/([a-z0-9][a-z0-9_-]{0,31})(?=$|[\s.,;:!?)])", re.IGNORECASE)


class SnippetError(ValueError):
    """A name or text that cannot be saved; the message is for the agent (Spanish). `unknown`: the unknown
    variables when that is why."""

    def __init__(self, message_es: str, unknown: list[str] | None = None) -> None:
        super().__init__(message_es)
        self.unknown = unknown or []


def check_name(name: str) -> str:
    value = name.strip().lstrip("/").lower()
    if not NAME_PATTERN.match(value):
        raise SnippetError(
            "el nombre del atajo debe tener de 1 a 32 caracteres: letras minúsculas sin tildes, números, «_» o «-»"
        )
    return value


def check_text(text: str) -> str:
    value = text.strip()
    if not value:
        raise SnippetError("el texto del atajo está vacío")
    if len(value) > MAX_TEXT:
        raise SnippetError(f"el texto del atajo tiene {len(value)} caracteres; Messenger admite {MAX_TEXT}")
    return value


@dataclass(frozen=True)
class Expansion:
    text: str
    used: tuple[str, ...]  # snippet names replaced, in order


def expand(text: str, snippets: Mapping[str, str]) -> Expansion:
    """Replace every `/name` of a known snippet; unknown names stay as typed."""
    used: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group(1).lower()
        if name not in snippets:
            return match.group(0)
        used.append(name)
        return snippets[name]

    return Expansion(_REFERENCE.sub(replace, text), tuple(used))


# --- variables --------------------------------------------------------------------------------------------

# `{name}` or `{name|fallback}`: a name is a word (letters with or without accents, digits, `_`) and dots; a
# fallback is up to 100 characters without braces or line breaks.
VARIABLE = re.compile(r"\{(\w[\w.]{0,59})(?:\|([^{}\n]{0,100}))?\}")
FIELD_PREFIX = "campo."
FIELD_KEY = re.compile(r"^[a-z0-9_]{1,40}$")  # as contacts.model.FIELD_KEY_PATTERN: a key a contact can hold
NAMES = ("nombre", "apellido", "agente", "pagina")
ALIASES = {"página": "pagina"}
# Names people type for a field without the `campo.` prefix: the refusal suggests `{campo.<name>}`.
VARIABLES_HELP_ES = "{nombre}, {apellido}, {agente}, {pagina} o {campo.<clave>} (por ejemplo {campo.ciudad})"


class ContactLike(Protocol):
    """What `Recipient.of` reads from a contact (contacts.model.Contact)."""

    @property
    def first_name(self) -> str | None: ...

    @property
    def last_name(self) -> str | None: ...

    @property
    def fields(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class Recipient:
    """The values a reply's variables are filled with: the contact's, the agent's and the page's."""

    first_name: str | None = None
    last_name: str | None = None
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    agent: str | None = None
    page_name: str | None = None

    @classmethod
    def of(cls, contact: ContactLike | None, agent: str | None, page_name: str | None = None) -> Recipient:
        if contact is None:
            return cls(agent=agent, page_name=page_name)
        return cls(contact.first_name, contact.last_name, MappingProxyType(dict(contact.fields)), agent, page_name)

    def to_dict(self) -> dict[str, object]:
        return {"nombre": self.first_name, "apellido": self.last_name, "agente": self.agent,
                "pagina": self.page_name, "campos": dict(self.fields)}


# The sample contact the snippets page previews with.
SAMPLE = Recipient("María José", "Ñáñez", MappingProxyType({"ciudad": "Cuenca", "pedido": "A-1024"}),
                   agent="Ana", page_name="Ecuabots Demo")


def sample_for(agent: str) -> Recipient:
    return dataclasses.replace(SAMPLE, agent=agent)


@dataclass(frozen=True)
class Filled:
    text: str
    unknown: tuple[str, ...] = ()  # variables as typed that are none (they stay in the text), in order, once each
    empty: tuple[str, ...] = ()  # variables with no value and no fallback (they became "")

    @property
    def warning_es(self) -> str | None:
        """What the agent should know before sending, in Spanish; None when every variable was filled."""
        parts = []
        if self.unknown:
            one = len(self.unknown) == 1
            parts.append(f"{_listed(self.unknown)} no {'es una variable' if one else 'son variables'} y "
                         f"{'se enviará' if one else 'se enviarán'} tal cual; use {VARIABLES_HELP_ES}.")
        if self.empty:
            one = len(self.empty) == 1
            parts.append(f"{_listed(self.empty)} {'quedó vacía' if one else 'quedaron vacías'} porque no hay ese "
                         "dato; puede escribir un texto de respaldo así: {nombre|estimado cliente}.")
        return " ".join(parts) or None

    def to_dict(self) -> dict[str, object]:
        return {"text": self.text, "unknown": list(self.unknown), "empty": list(self.empty),
                "warning_es": self.warning_es}


def _listed(names: tuple[str, ...]) -> str:
    shown = [f"«{{{name}}}»" for name in names]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " y " + shown[-1]


def variable_name(typed: str) -> str | None:
    """The variable a typed name stands for (`Nombre` → `nombre`, `página` → `pagina`, `campo.ciudad`), or None
    when it is none. Field keys are as the contact stores them (lower case, no accents)."""
    if typed.startswith(FIELD_PREFIX) or typed.lower().startswith(FIELD_PREFIX):
        key = typed[len(FIELD_PREFIX):]
        return FIELD_PREFIX + key if FIELD_KEY.match(key) else None
    name = typed.lower()
    name = ALIASES.get(name, name)
    return name if name in NAMES else None


def _value(name: str, recipient: Recipient) -> str | None:
    if name.startswith(FIELD_PREFIX):
        return recipient.fields.get(name[len(FIELD_PREFIX):])
    return {"nombre": recipient.first_name, "apellido": recipient.last_name, "agente": recipient.agent,
            "pagina": recipient.page_name}[name]


def fill(text: str, recipient: Recipient) -> Filled:
    """Fill every variable of `text` with the recipient's values. Never raises; text outside variables is kept
    as it is; an unknown variable stays as typed (and is listed)."""
    unknown: dict[str, None] = {}
    empty: dict[str, None] = {}

    def replace(match: re.Match[str]) -> str:
        typed, fallback = match.group(1), match.group(2)
        name = variable_name(typed)
        if name is None:
            unknown[typed] = None
            return match.group(0)
        value = (_value(name, recipient) or "").strip()
        if value:
            return value
        if fallback is not None:
            return fallback
        empty[typed] = None
        return ""

    return Filled(VARIABLE.sub(replace, text), tuple(unknown), tuple(empty))


def uses_variables(text: str) -> bool:
    """Whether `text` holds anything variable-shaped (the reply reads the contact only then)."""
    return VARIABLE.search(text) is not None


def check_variables(text: str) -> str:
    """A snippet's text whose every variable is known; else SnippetError naming the unknown ones."""
    unknown = list(dict.fromkeys(m.group(1) for m in VARIABLE.finditer(text) if variable_name(m.group(1)) is None))
    if unknown:
        hints = [f"«{{campo.{name.lower()}}}»" for name in unknown if FIELD_KEY.match(name.lower())
                 and name.lower() not in NAMES]
        hint = f" (¿quiso decir {_or(hints)}?)" if hints else ""
        raise SnippetError(f"variables desconocidas: {', '.join(f'«{{{name}}}»' for name in unknown)}{hint}; "
                           f"use {VARIABLES_HELP_ES}", unknown)
    return text


def _or(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " o " + items[-1]
