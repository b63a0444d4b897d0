"""Meta's checks on a Messenger Profile API body (`POST /me/messenger_profile`), as pure functions.

One check, two voices: `profile_problem(body, has_get_started)` returns the first `ProfileProblem` (the param's
path as Meta names it, the rule broken, the limit); the Graph sandbox answers it as Meta's error (`to_graph_error`:
code 100 naming the param), the console in Spanish (`page_profile.model`). So what the console accepts, the sandbox
accepts, and the other way round.

From Meta's Messenger Profile API reference (developers.facebook.com/docs/messenger-platform/reference/
messenger-profile-api and its get-started-button, greeting, ice-breakers and persistent-menu pages):
- `get_started`: `{"payload": "..."}`, payload up to 1000 characters.
- `greeting`: `[{"locale": "default", "text": "..."}]`, text up to 160 characters, the `default` locale required;
  `{{user_first_name}}`, `{{user_last_name}}` and `{{user_full_name}}` are personalised by Messenger.
- `ice_breakers`: at most 4 questions. The localized format (since 2022, recommended):
  `[{"call_to_actions": [{"question", "payload"}], "locale": "default"}]`, the `default` locale required; the old
  flat format (`[{"question", "payload"}]`) is still accepted, never both in one request.
- `persistent_menu`: `[{"locale": "default", "composer_input_disabled": false, "call_to_actions": [...]}]`, the
  `default` locale required, at most 20 items of type `web_url` or `postback` (`nested` is gone), title up to 30,
  payload up to 1000, `call_to_actions` required when the composer is disabled; a Get Started button is required
  ("(#100) You must set a Get Started button if you also wish to use persistent menu.", subcode 2018145).
- POST replaces only the fields it names; DELETE takes `{"fields": [...]}`; GET takes `?fields=a,b` and answers
  `{"data": [{...the fields set...}]}`. POST and DELETE answer `{"result": "success"}`.
- 10 calls per 10 minutes per page (not enforced here; the console says so).

Where Meta's exact wording is known it is used; the rest follows the Graph API's phrasing for parameter errors.
Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from meta.limits import PAYLOAD_MAX_CHARS
from meta.validate import INVALID_PARAMETER, GraphErrorSpec

GREETING_TEXT_MAX_CHARS = 160
GET_STARTED_PAYLOAD_MAX_CHARS = PAYLOAD_MAX_CHARS
ICE_BREAKERS_MAX = 4
ICE_BREAKER_PAYLOAD_MAX_CHARS = PAYLOAD_MAX_CHARS
MENU_ITEMS_MAX = 20
MENU_ITEM_TITLE_MAX_CHARS = 30
MENU_PAYLOAD_MAX_CHARS = PAYLOAD_MAX_CHARS
WHITELISTED_DOMAINS_MAX = 50
GREETING_PLACEHOLDERS = ("{{user_first_name}}", "{{user_last_name}}", "{{user_full_name}}")
DEFAULT_LOCALE = "default"
CALLS_PER_TEN_MINUTES = 10

# The profile's fields (what GET and DELETE may name). The console manages the first four.
MANAGED_FIELDS = ("get_started", "greeting", "ice_breakers", "persistent_menu")
PROFILE_FIELDS = (*MANAGED_FIELDS, "whitelisted_domains", "account_linking_url", "commands")
# Keys a POST body may carry besides the fields.
REQUEST_KEYS = frozenset({*PROFILE_FIELDS, "platform", "access_token"})

MENU_ITEM_TYPES = frozenset({"web_url", "postback"})
WEBVIEW_HEIGHT_RATIOS = frozenset({"compact", "tall", "full"})
GREETING_KEYS = frozenset({"locale", "text"})
GET_STARTED_KEYS = frozenset({"payload"})
ICE_BREAKER_LOCALE_KEYS = frozenset({"locale", "call_to_actions"})
ICE_BREAKER_KEYS = frozenset({"question", "payload"})
MENU_KEYS = frozenset({"locale", "composer_input_disabled", "disabled_surfaces", "call_to_actions"})
MENU_ITEM_KEYS = frozenset(
    {"type", "title", "url", "payload", "webview_height_ratio", "messenger_extensions", "fallback_url",
     "webview_share_button"}
)
SUBCODE_GET_STARTED_REQUIRED = 2018145
LOCALE_PATTERN = re.compile(r"^[a-z]{2}_[A-Z]{2}$")  # Meta's locales: es_LA, es_ES, en_US, pt_BR, ...


@dataclass(frozen=True)
class ProfileProblem:
    """The first thing Meta would refuse: `path` as Meta names the param (`greeting[0][text]`), `rule` one of RULES,
    `limit` the number not to exceed, `actual` what was given (a length or a count), `value` the offending value
    (a locale, unknown keys), `allowed` the choices."""

    path: str
    rule: str
    limit: int | None = None
    actual: int | None = None
    value: str = ""
    allowed: tuple[str, ...] = ()
    subcode: int | None = None


# Meta's wording per rule (`{path}`, `{limit}`, `{value}`, `{allowed}` filled in).
RULES: Mapping[str, str] = {
    "required": "The parameter {path} is required",
    "not_string": "Param {path} must be a non-empty UTF-8 encoded string",
    "not_boolean": "Param {path} must be a boolean",
    "too_long": "Length of param {path} must be less than or equal to {limit}",
    "not_array": "param {path} must be an array.",
    "too_few": "param {path} must be non-empty.",
    "too_many": "param {path} has too many elements. Maximum allowed: {limit}.",
    "not_object": "param {path} must be an object.",
    "invalid_keys": 'Invalid keys "{value}" were found in param "{path}".',
    "not_one_of": "Param {path} must be one of {{{allowed}}}",
    "invalid_url": "{path} should represent a valid URL",
    "invalid_locale": "Param {path} must be a supported locale, got \"{value}\"",
    "duplicate_locale": "param {path} has more than one entry for the locale \"{value}\".",
    "default_locale_missing": "param {path} must have an entry with the locale \"default\".",
    "mixed_formats": "param {path} must use either the localized format or the old one, not both.",
    "get_started_required": "You must set a Get Started button if you also wish to use persistent menu.",
    "nothing_to_set": "Requires one of the params: {allowed}",
}


def to_graph_error(problem: ProfileProblem) -> GraphErrorSpec:
    """Meta's answer to the problem: HTTP 400, code 100, the param named."""
    message = RULES[problem.rule].format(
        path=problem.path, limit=problem.limit, value=problem.value, allowed=", ".join(problem.allowed)
    )
    return GraphErrorSpec(f"(#{INVALID_PARAMETER}) {message}", INVALID_PARAMETER, error_subcode=problem.subcode)


def profile_problem(body: Any, *, has_get_started: bool = False) -> ProfileProblem | None:
    """The first problem Meta would report for this POST body, or None. `has_get_started`: the page's profile
    already has a Get Started button (a persistent menu needs one, in this body or already set)."""
    if not isinstance(body, Mapping):
        return ProfileProblem("messenger_profile", "not_object")
    unknown = [str(key) for key in body if key not in REQUEST_KEYS]
    if unknown:
        return ProfileProblem("messenger_profile", "invalid_keys", value=_shown(", ".join(unknown), 200))
    if not any(field in body for field in PROFILE_FIELDS):
        return ProfileProblem("messenger_profile", "nothing_to_set", allowed=PROFILE_FIELDS)
    checks = (
        ("get_started", _check_get_started),
        ("greeting", _check_greeting),
        ("ice_breakers", _check_ice_breakers),
        ("persistent_menu", _check_persistent_menu),
        ("whitelisted_domains", _check_whitelisted_domains),
        ("account_linking_url", _check_account_linking_url),
        ("commands", _check_commands),
    )
    for field, check in checks:
        if field in body:
            problem = check(body[field])
            if problem is not None:
                return problem
    if "persistent_menu" in body and not (has_get_started or "get_started" in body):
        return ProfileProblem("persistent_menu", "get_started_required", subcode=SUBCODE_GET_STARTED_REQUIRED)
    return None


def fields_problem(fields: Any, path: str = "fields") -> ProfileProblem | None:
    """The `fields` of a GET or DELETE: a non-empty list of the profile's field names."""
    if not _is_array(fields):
        return ProfileProblem(path, "not_array") if fields is not None else ProfileProblem(path, "required")
    if not fields:
        return ProfileProblem(path, "too_few")
    for index, field in enumerate(fields):
        if field not in PROFILE_FIELDS:
            return ProfileProblem(f"{path}[{index}]", "not_one_of", value=_shown(field, 80), allowed=PROFILE_FIELDS)
    return None


def is_https_url(value: Any) -> bool:
    return _is_url(value, ("https",))


# --- the fields -----------------------------------------------------------------------------------


def _check_get_started(value: Any) -> ProfileProblem | None:
    if not isinstance(value, Mapping):
        return ProfileProblem("get_started", "not_object")
    return _check_keys("get_started", value, GET_STARTED_KEYS) or _check_text(
        "get_started[payload]", value.get("payload"), GET_STARTED_PAYLOAD_MAX_CHARS
    )


def _check_greeting(value: Any) -> ProfileProblem | None:
    problem = _check_list("greeting", value, None)
    if problem:
        return problem
    for index, item in enumerate(value):
        path = f"greeting[{index}]"
        if not isinstance(item, Mapping):
            return ProfileProblem(path, "not_object")
        problem = (
            _check_keys(path, item, GREETING_KEYS)
            or _check_locale(f"{path}[locale]", item.get("locale"))
            or _check_text(f"{path}[text]", item.get("text"), GREETING_TEXT_MAX_CHARS)
        )
        if problem:
            return problem
    return _check_locales("greeting", value)


def _check_ice_breakers(value: Any) -> ProfileProblem | None:
    problem = _check_list("ice_breakers", value, None)
    if problem:
        return problem
    localized = [isinstance(item, Mapping) and bool(ICE_BREAKER_LOCALE_KEYS & set(item)) for item in value]
    if all(localized):
        for index, item in enumerate(value):
            path = f"ice_breakers[{index}]"
            problem = (
                _check_keys(path, item, ICE_BREAKER_LOCALE_KEYS)
                or _check_locale(f"{path}[locale]", item.get("locale"))
                or _check_questions(f"{path}[call_to_actions]", item.get("call_to_actions"))
            )
            if problem:
                return problem
        return _check_locales("ice_breakers", value)
    if any(localized):
        return ProfileProblem("ice_breakers", "mixed_formats")
    return _check_questions("ice_breakers", value)


def _check_questions(path: str, value: Any) -> ProfileProblem | None:
    problem = _check_list(path, value, ICE_BREAKERS_MAX)
    if problem:
        return problem
    for index, item in enumerate(value):
        item_path = f"{path}[{index}]"
        if not isinstance(item, Mapping):
            return ProfileProblem(item_path, "not_object")
        problem = (
            _check_keys(item_path, item, ICE_BREAKER_KEYS)
            or _check_text(f"{item_path}[question]", item.get("question"), None)
            or _check_text(f"{item_path}[payload]", item.get("payload"), ICE_BREAKER_PAYLOAD_MAX_CHARS)
        )
        if problem:
            return problem
    return None


def _check_persistent_menu(value: Any) -> ProfileProblem | None:
    problem = _check_list("persistent_menu", value, None)
    if problem:
        return problem
    for index, menu in enumerate(value):
        path = f"persistent_menu[{index}]"
        if not isinstance(menu, Mapping):
            return ProfileProblem(path, "not_object")
        problem = _check_keys(path, menu, MENU_KEYS) or _check_locale(f"{path}[locale]", menu.get("locale"))
        if problem:
            return problem
        disabled = menu.get("composer_input_disabled", False)
        if not isinstance(disabled, bool):
            return ProfileProblem(f"{path}[composer_input_disabled]", "not_boolean")
        items = menu.get("call_to_actions")
        if items is None:
            if disabled:
                return ProfileProblem(f"{path}[call_to_actions]", "required")
            continue
        problem = _check_list(f"{path}[call_to_actions]", items, MENU_ITEMS_MAX) or _first_problem(
            _check_menu_item(f"{path}[call_to_actions][{i}]", item) for i, item in enumerate(items)
        )
        if problem:
            return problem
    return _check_locales("persistent_menu", value)


def _check_menu_item(path: str, item: Any) -> ProfileProblem | None:
    if not isinstance(item, Mapping):
        return ProfileProblem(path, "not_object")
    problem = _check_keys(path, item, MENU_ITEM_KEYS)
    if problem:
        return problem
    kind = item.get("type")
    if kind is None:
        return ProfileProblem(f"{path}[type]", "required")
    if kind not in MENU_ITEM_TYPES:
        return ProfileProblem(f"{path}[type]", "not_one_of", value=_shown(kind, 80),
                              allowed=tuple(sorted(MENU_ITEM_TYPES)))
    problem = _check_text(f"{path}[title]", item.get("title"), MENU_ITEM_TITLE_MAX_CHARS)
    if problem:
        return problem
    if kind == "postback":
        problem = _check_text(f"{path}[payload]", item.get("payload"), MENU_PAYLOAD_MAX_CHARS)
    else:
        url = item.get("url")
        if url is None:
            return ProfileProblem(f"{path}[url]", "required")
        if not _is_url(url, ("http", "https")):
            return ProfileProblem(f"{path}[url]", "invalid_url")
    if problem:
        return problem
    ratio = item.get("webview_height_ratio")
    if ratio is not None and ratio not in WEBVIEW_HEIGHT_RATIOS:
        return ProfileProblem(f"{path}[webview_height_ratio]", "not_one_of", value=_shown(ratio, 80),
                              allowed=tuple(sorted(WEBVIEW_HEIGHT_RATIOS)))
    return None


def _check_whitelisted_domains(value: Any) -> ProfileProblem | None:
    problem = _check_list("whitelisted_domains", value, WHITELISTED_DOMAINS_MAX)
    if problem:
        return problem
    for index, domain in enumerate(value):
        if not is_https_url(domain):
            return ProfileProblem(f"whitelisted_domains[{index}]", "invalid_url")
    return None


def _check_account_linking_url(value: Any) -> ProfileProblem | None:
    return None if is_https_url(value) else ProfileProblem("account_linking_url", "invalid_url")


def _check_commands(value: Any) -> ProfileProblem | None:
    return _check_list("commands", value, None)


# --- the pieces -----------------------------------------------------------------------------------


def _check_list(path: str, value: Any, most: int | None) -> ProfileProblem | None:
    if not _is_array(value):
        return ProfileProblem(path, "not_array")
    if not value:
        return ProfileProblem(path, "too_few")
    if most is not None and len(value) > most:
        return ProfileProblem(path, "too_many", limit=most, actual=len(value))
    return None


def _check_keys(path: str, value: Mapping[str, Any], allowed: frozenset[str]) -> ProfileProblem | None:
    unknown = [str(key) for key in value if key not in allowed]
    return ProfileProblem(path, "invalid_keys", value=_shown(", ".join(unknown), 200)) if unknown else None


def _check_text(path: str, value: Any, most: int | None) -> ProfileProblem | None:
    if value is None:
        return ProfileProblem(path, "required")
    if not isinstance(value, str) or not value.strip() or not _is_utf8(value):
        return ProfileProblem(path, "not_string")
    if most is not None and len(value) > most:
        return ProfileProblem(path, "too_long", limit=most, actual=len(value))
    return None


def _check_locale(path: str, value: Any) -> ProfileProblem | None:
    if value is None:
        return ProfileProblem(path, "required")
    if not isinstance(value, str) or not (value == DEFAULT_LOCALE or LOCALE_PATTERN.match(value)):
        return ProfileProblem(path, "invalid_locale", value=_shown(value, 40))
    return None


def _check_locales(path: str, items: Sequence[Mapping[str, Any]]) -> ProfileProblem | None:
    seen: set[str] = set()
    for item in items:
        locale = item["locale"]
        if locale in seen:
            return ProfileProblem(path, "duplicate_locale", value=locale)
        seen.add(locale)
    if DEFAULT_LOCALE not in seen:
        return ProfileProblem(path, "default_locale_missing")
    return None


def _is_url(value: Any, schemes: tuple[str, ...]) -> bool:
    if not isinstance(value, str) or not value or any(char.isspace() for char in value) or not _is_utf8(value):
        return False
    try:
        parts = urlsplit(value)
        return parts.scheme in schemes and bool(parts.hostname)
    except ValueError:
        return False


def _is_utf8(value: str) -> bool:
    """False for a lone surrogate (JSON's "\\ud800") or a NUL: not text Meta (or PostgreSQL's jsonb) takes."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


def _shown(value: Any, most: int) -> str:
    """A value quoted in a message: cut short, anything that is not UTF-8 replaced."""
    return str(value)[:most].encode("utf-8", "replace").decode("utf-8")


def _is_array(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _first_problem(problems: Any) -> ProfileProblem | None:
    for problem in problems:
        if problem is not None:
            return problem
    return None
