"""The page's Messenger profile as the console edits it, checked as Meta checks it, refused in Spanish.

`parse_profile(body)` takes the profile in Meta's own shape (what `POST /me/messenger_profile` takes, limited to
the four fields the console manages) and returns a `MessengerProfile`, or raises `ProfileInvalid(field, message_es)`:
`field` is the param's path as Meta names it (`greeting[0][text]`), the message says in Spanish which part of the
page's profile is wrong and how. Meta's own rules come from `meta.messenger_profile` (the Graph sandbox refuses
with the same checks); the console adds three of its own, stricter than Meta: menu links must be https, greeting
placeholders must be one of Messenger's three (a typo would show the braces to the customer), and an ice breaker
question has at most 80 characters (Messenger cuts longer ones on phones).

An empty profile is valid: applying it removes the four fields from the page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import DomainError
from meta.limits import PAYLOAD_MAX_CHARS
from meta.messenger_profile import (
    DEFAULT_LOCALE,
    GREETING_PLACEHOLDERS,
    GREETING_TEXT_MAX_CHARS,
    ICE_BREAKERS_MAX,
    MANAGED_FIELDS,
    MENU_ITEM_TITLE_MAX_CHARS,
    MENU_ITEMS_MAX,
    ProfileProblem,
    is_https_url,
    profile_problem,
)

ICE_BREAKER_QUESTION_MAX_CHARS = 80
DEFAULT_GET_STARTED_PAYLOAD = "/greet"  # Rasa's intent greet: the welcome (domain.yml)
_PLACEHOLDER = re.compile(r"\{\{[^{}]*\}\}")

__all__ = [
    "DEFAULT_GET_STARTED_PAYLOAD",
    "GREETING_TEXT_MAX_CHARS",
    "ICE_BREAKERS_MAX",
    "ICE_BREAKER_QUESTION_MAX_CHARS",
    "MENU_ITEMS_MAX",
    "MENU_ITEM_TITLE_MAX_CHARS",
    "PAYLOAD_MAX_CHARS",
    "Greeting",
    "IceBreaker",
    "IceBreakers",
    "Menu",
    "MenuItem",
    "MessengerProfile",
    "ProfileInvalid",
    "default_profile",
    "parse_profile",
    "spanish_message",
]


class PageProfileError(DomainError):
    """Root of this package's errors."""

    reason_code = "page_profile_error"


class ProfileInvalid(PageProfileError):
    """A profile Meta (or the console) would refuse: `field` names the param, `message_es` says why."""

    reason_code = "invalid_profile"

    def __init__(self, field: str, message_es: str) -> None:
        super().__init__(message_es)
        self.field = field
        self.message_es = message_es

    def details(self) -> dict[str, Any]:
        return {"field": self.field}


@dataclass(frozen=True)
class Greeting:
    locale: str
    text: str


@dataclass(frozen=True)
class IceBreaker:
    question: str
    payload: str


@dataclass(frozen=True)
class IceBreakers:
    locale: str
    questions: tuple[IceBreaker, ...]


@dataclass(frozen=True)
class MenuItem:
    type: str  # "postback" | "web_url"
    title: str
    payload: str | None = None
    url: str | None = None
    webview_height_ratio: str | None = None

    def to_dict(self) -> dict[str, Any]:
        item: dict[str, Any] = {"type": self.type, "title": self.title}
        if self.type == "postback":
            item["payload"] = self.payload
        else:
            item["url"] = self.url
            if self.webview_height_ratio:
                item["webview_height_ratio"] = self.webview_height_ratio
        return item


@dataclass(frozen=True)
class Menu:
    locale: str
    items: tuple[MenuItem, ...] = ()
    composer_input_disabled: bool = False


@dataclass(frozen=True)
class MessengerProfile:
    """The four fields the console manages; an empty tuple (or None) is a field the page should not have."""

    get_started_payload: str | None = None
    greetings: tuple[Greeting, ...] = ()
    ice_breakers: tuple[IceBreakers, ...] = ()
    menus: tuple[Menu, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Meta's shape (the body of `POST /me/messenger_profile`), only the fields that are set, the default
        locale first."""
        body: dict[str, Any] = {}
        if self.get_started_payload is not None:
            body["get_started"] = {"payload": self.get_started_payload}
        if self.greetings:
            body["greeting"] = [{"locale": g.locale, "text": g.text} for g in _default_first(self.greetings)]
        if self.ice_breakers:
            body["ice_breakers"] = [
                {"call_to_actions": [{"question": q.question, "payload": q.payload} for q in group.questions],
                 "locale": group.locale}
                for group in _default_first(self.ice_breakers)
            ]
        if self.menus:
            menus = []
            for menu in _default_first(self.menus):
                entry: dict[str, Any] = {"locale": menu.locale, "composer_input_disabled": menu.composer_input_disabled}
                if menu.items:
                    entry["call_to_actions"] = [item.to_dict() for item in menu.items]
                menus.append(entry)
            body["persistent_menu"] = menus
        return body

    @property
    def fields_set(self) -> tuple[str, ...]:
        present = self.to_dict()
        return tuple(name for name in MANAGED_FIELDS if name in present)

    @property
    def fields_unset(self) -> tuple[str, ...]:
        present = self.to_dict()
        return tuple(name for name in MANAGED_FIELDS if name not in present)


def default_profile() -> MessengerProfile:
    """What a page starts from in the console: the Get Started button opens the welcome, a greeting with the
    customer's first name. Ice breakers and menu are left to the business."""
    return MessengerProfile(
        get_started_payload=DEFAULT_GET_STARTED_PAYLOAD,
        greetings=(Greeting(DEFAULT_LOCALE, "¡Hola {{user_first_name}}! Escríbanos: le respondemos al instante."),),
    )


def _default_first(items: tuple[Any, ...]) -> list[Any]:
    return sorted(items, key=lambda item: item.locale != DEFAULT_LOCALE)


# --- parsing and checking -------------------------------------------------------------------------


def parse_profile(body: Any) -> MessengerProfile:
    """The profile from Meta's shape, or `ProfileInvalid` (first problem only, like Meta)."""
    if not isinstance(body, Mapping):
        raise ProfileInvalid("profile", "Perfil: debe ser un objeto JSON con get_started, greeting, ice_breakers "
                                        "o persistent_menu.")
    unknown = [str(key).encode("utf-8", "replace").decode("utf-8") for key in body if key not in MANAGED_FIELDS]
    if unknown:
        raise ProfileInvalid(unknown[0][:80], f"Perfil: «{unknown[0][:40]}» no es parte del perfil que edita la "
                                              "consola; use get_started, greeting, ice_breakers o persistent_menu.")
    fields = {key: value for key, value in body.items() if value is not None}
    if fields:
        problem = profile_problem(fields) or _console_problem(fields)
        if problem is not None:
            raise ProfileInvalid(problem.path, spanish_message(problem, fields))
    return _build(fields)


def _console_problem(body: Mapping[str, Any]) -> ProfileProblem | None:
    """The console's own rules, once Meta's have passed (so the shapes are known good)."""
    for index, greeting in enumerate(body.get("greeting") or ()):
        for placeholder in _PLACEHOLDER.findall(greeting["text"]):
            if placeholder not in GREETING_PLACEHOLDERS:
                return ProfileProblem(f"greeting[{index}][text]", "unknown_placeholder", value=placeholder[:40])
    ice_breakers = body.get("ice_breakers") or ()
    if ice_breakers and "call_to_actions" not in ice_breakers[0]:
        return ProfileProblem("ice_breakers", "old_format")
    for index, group in enumerate(ice_breakers):
        for number, question in enumerate(group["call_to_actions"]):
            text = question["question"]
            if len(text) > ICE_BREAKER_QUESTION_MAX_CHARS:
                return ProfileProblem(f"ice_breakers[{index}][call_to_actions][{number}][question]", "too_long",
                                      limit=ICE_BREAKER_QUESTION_MAX_CHARS, actual=len(text))
    for index, menu in enumerate(body.get("persistent_menu") or ()):
        for number, item in enumerate(menu.get("call_to_actions") or ()):
            if item["type"] == "web_url" and not is_https_url(item["url"]):
                return ProfileProblem(f"persistent_menu[{index}][call_to_actions][{number}][url]", "not_https")
    return None


def _build(body: Mapping[str, Any]) -> MessengerProfile:
    get_started = body.get("get_started")
    return MessengerProfile(
        get_started_payload=get_started["payload"] if get_started else None,
        greetings=tuple(Greeting(g["locale"], g["text"]) for g in body.get("greeting") or ()),
        ice_breakers=tuple(
            IceBreakers(group["locale"], tuple(IceBreaker(q["question"], q["payload"])
                                               for q in group["call_to_actions"]))
            for group in body.get("ice_breakers") or ()
        ),
        menus=tuple(
            Menu(
                menu["locale"],
                tuple(MenuItem(item["type"], item["title"], item.get("payload"), item.get("url"),
                               item.get("webview_height_ratio")) for item in menu.get("call_to_actions") or ()),
                bool(menu.get("composer_input_disabled", False)),
            )
            for menu in body.get("persistent_menu") or ()
        ),
    )


# --- Spanish ----------------------------------------------------------------------------------------

# What is wrong, per rule (`{limit}`, `{actual}`, `{value}`, `{allowed}` filled in); the field's name goes first.
RULES_ES: Mapping[str, str] = {
    "required": "falta y es obligatorio.",
    "not_string": "escriba un texto; no puede quedar vacío.",
    "not_boolean": "debe ser verdadero o falso.",
    "too_long": "tiene {actual} caracteres; Messenger admite hasta {limit}.",
    "not_array": "debe ser una lista.",
    "too_few": "la lista está vacía; agregue al menos uno o quite el campo.",
    "too_many": "tiene {actual}; Messenger admite hasta {limit}.",
    "not_object": "debe ser un objeto JSON.",
    "invalid_keys": "tiene campos que Messenger no conoce: {value}.",
    "not_one_of": "«{value}» no sirve; use uno de: {allowed}.",
    "invalid_url": "no es un enlace válido (https://…).",
    "not_https": "el enlace debe empezar con https:// (Messenger abre los enlaces dentro de la app).",
    "invalid_locale": "«{value}» no es un idioma de Messenger; use default, es_LA, es_ES, en_US…",
    "duplicate_locale": "el idioma «{value}» está dos veces.",
    "default_locale_missing": "falta la versión «default» (predeterminada), la que Messenger muestra cuando no hay "
                              "una para el idioma de la persona.",
    "mixed_formats": "mezcla el formato con idiomas (locale) y el antiguo; use solo el formato con idiomas.",
    "old_format": "use el formato actual de Meta: grupos con «locale» y «call_to_actions».",
    "get_started_required": "Messenger solo muestra el menú si la página tiene el botón «Empezar»; escriba su "
                            "payload.",
    "unknown_placeholder": "«{value}» no existe; use {{{{user_first_name}}}}, {{{{user_last_name}}}} o "
                           "{{{{user_full_name}}}}.",
    "nothing_to_set": "el perfil está vacío.",
}

_PARTS_ES: Mapping[str, str] = {
    "get_started": "Botón «Empezar»",
    "greeting": "Saludo",
    "ice_breakers": "Preguntas frecuentes",
    "persistent_menu": "Menú persistente",
    "payload": "payload",
    "text": "texto",
    "locale": "idioma",
    "question": "pregunta",
    "title": "título",
    "url": "enlace",
    "type": "tipo",
    "composer_input_disabled": "desactivar la escritura",
    "webview_height_ratio": "alto de la ventana",
    "call_to_actions": "opciones",
    "profile": "Perfil",
    "messenger_profile": "Perfil",
}


def spanish_message(problem: ProfileProblem, body: Mapping[str, Any] | None = None) -> str:
    """`<the field, named for people>: <what is wrong>.`"""
    wording = RULES_ES.get(problem.rule, "no es válido.")
    detail = wording.format(limit=problem.limit, actual=problem.actual, value=problem.value,
                            allowed=", ".join(problem.allowed))
    return f"{field_label(problem.path, body or {})}: {detail}"


def field_label(path: str, body: Mapping[str, Any]) -> str:
    """`greeting[1][text]` → `Saludo (en_US) › texto`; `ice_breakers[0][call_to_actions][2][question]` →
    `Preguntas frecuentes (predeterminado) › pregunta 3 › pregunta`."""
    parts = re.findall(r"[^\[\]]+", path)
    if not parts:
        return "Perfil"
    label = _PARTS_ES.get(parts[0], parts[0][:40])
    node: Any = body.get(parts[0]) if isinstance(body, Mapping) else None
    for index, part in enumerate(parts[1:], start=1):
        parent = parts[index - 1]
        if part.isdigit():
            position = int(part)
            child = node[position] if isinstance(node, list) and position < len(node) else None
            if parent == "call_to_actions" or parts[0] == "ice_breakers" and index == 1 and not _has_locale(child):
                noun = "pregunta" if parts[0] == "ice_breakers" else "opción"
                label += f" › {noun} {position + 1}"
            else:
                label += f" ({_locale_label(child, position)})"
            node = child
        else:
            if part == "call_to_actions" and index == len(parts) - 1:
                label += " › preguntas" if parts[0] == "ice_breakers" else " › opciones"
            elif part != "call_to_actions":
                label += f" › {_PARTS_ES.get(part, part[:40])}"
            node = node.get(part) if isinstance(node, Mapping) else None
    return label


def _has_locale(node: Any) -> bool:
    return isinstance(node, Mapping) and "locale" in node


def _locale_label(node: Any, position: int) -> str:
    locale = node.get("locale") if isinstance(node, Mapping) else None
    if locale == DEFAULT_LOCALE:
        return "predeterminado"
    if isinstance(locale, str) and locale:
        return locale[:20]
    return f"n.º {position + 1}"
