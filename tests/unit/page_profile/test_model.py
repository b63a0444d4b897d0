"""The page's Messenger profile as the console checks it (page_profile.model over meta.messenger_profile).

Would catch: a limit off by one (greeting 160, ice breakers 4, menu 20, title 30, payloads 1000), a profile without
the default locale or with a menu but no Get Started button accepted, an http menu link or a misspelt placeholder let
through, a refusal that does not name its field or is not in Spanish, and any input that ends in something else than
`ProfileInvalid` (the API would answer 500)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meta.messenger_profile import profile_problem
from page_profile.model import (
    DEFAULT_GET_STARTED_PAYLOAD,
    MessengerProfile,
    ProfileInvalid,
    default_profile,
    parse_profile,
)


def full_profile() -> dict[str, Any]:
    return {
        "get_started": {"payload": "/greet"},
        "greeting": [{"locale": "default", "text": "¡Hola {{user_first_name}}!"},
                     {"locale": "en_US", "text": "Hi {{user_full_name}}!"}],
        "ice_breakers": [{"call_to_actions": [{"question": f"¿Pregunta {n}?", "payload": f"/ask_{n}"}
                                              for n in range(4)], "locale": "default"}],
        "persistent_menu": [{"locale": "default", "composer_input_disabled": False, "call_to_actions": [
            {"type": "postback", "title": "Menú", "payload": '/ask_knowledge{"entry_id":"menu"}'},
            {"type": "web_url", "title": "Nuestra web", "url": "https://ejemplo.ec/", "webview_height_ratio": "full"},
        ]}],
    }


def refusal(body: Any) -> ProfileInvalid:
    with pytest.raises(ProfileInvalid) as caught:
        parse_profile(body)
    return caught.value


def test_a_full_profile_round_trips_in_metas_shape() -> None:
    body = full_profile()
    profile = parse_profile(body)
    assert profile.get_started_payload == "/greet"
    assert [g.locale for g in profile.greetings] == ["default", "en_US"]
    assert len(profile.ice_breakers[0].questions) == 4
    assert profile.to_dict() == body
    assert parse_profile(profile.to_dict()) == profile
    assert profile.fields_set == ("get_started", "greeting", "ice_breakers", "persistent_menu")
    assert profile.fields_unset == ()


def test_the_default_locale_comes_first_and_an_empty_profile_unsets_everything() -> None:
    body = {"greeting": [{"locale": "es_ES", "text": "Hola"}, {"locale": "default", "text": "Hola a todos"}]}
    assert [g["locale"] for g in parse_profile(body).to_dict()["greeting"]] == ["default", "es_ES"]
    empty = parse_profile({})
    assert empty == MessengerProfile() and empty.to_dict() == {}
    assert empty.fields_unset == ("get_started", "greeting", "ice_breakers", "persistent_menu")
    assert parse_profile({"greeting": None}).fields_set == ()


def test_the_default_profile_starts_the_welcome_and_is_valid() -> None:
    profile = default_profile()
    assert profile.get_started_payload == DEFAULT_GET_STARTED_PAYLOAD == "/greet"
    assert "{{user_first_name}}" in profile.greetings[0].text
    assert parse_profile(profile.to_dict()) == profile


LIMITS = [
    # (body, field, words in the Spanish message)
    ({"greeting": [{"locale": "default", "text": "x" * 161}]}, "greeting[0][text]", ["Saludo", "161", "160"]),
    ({"get_started": {"payload": "x" * 1001}}, "get_started[payload]", ["Empezar", "1001", "1000"]),
    ({"ice_breakers": [{"locale": "default", "call_to_actions": [{"question": "¿Q?", "payload": "p"}] * 5}]},
     "ice_breakers[0][call_to_actions]", ["Preguntas frecuentes", "5", "4"]),
    ({"ice_breakers": [{"locale": "default", "call_to_actions": [{"question": "q" * 81, "payload": "p"}]}]},
     "ice_breakers[0][call_to_actions][0][question]", ["pregunta 1", "81", "80"]),
    ({"ice_breakers": [{"locale": "default", "call_to_actions": [{"question": "¿Q?", "payload": "p" * 1001}]}]},
     "ice_breakers[0][call_to_actions][0][payload]", ["payload", "1000"]),
    ({"get_started": {"payload": "/greet"}, "persistent_menu": [{"locale": "default", "call_to_actions": [
        {"type": "postback", "title": "t", "payload": "p"}] * 21}]},
     "persistent_menu[0][call_to_actions]", ["Menú persistente", "21", "20"]),
    ({"get_started": {"payload": "/greet"}, "persistent_menu": [{"locale": "default", "call_to_actions": [
        {"type": "postback", "title": "t" * 31, "payload": "p"}]}]},
     "persistent_menu[0][call_to_actions][0][title]", ["opción 1", "título", "31", "30"]),
]


@pytest.mark.parametrize(("body", "field", "words"), LIMITS)
def test_each_limit_is_refused_one_past_it_naming_the_field(body: dict[str, Any], field: str,
                                                            words: list[str]) -> None:
    error = refusal(body)
    assert error.field == field
    for word in words:
        assert word in error.message_es, (word, error.message_es)
    assert error.details() == {"field": field}


def test_each_limit_is_accepted_at_it() -> None:
    parse_profile({"greeting": [{"locale": "default", "text": "x" * 160}], "get_started": {"payload": "x" * 1000},
                   "ice_breakers": [{"locale": "default", "call_to_actions": [
                       {"question": "q" * 80, "payload": "p" * 1000}] * 4}],
                   "persistent_menu": [{"locale": "default", "call_to_actions": [
                       {"type": "postback", "title": "t" * 30, "payload": "p" * 1000}] * 20}]})


RULES = [
    ({"greeting": [{"locale": "es_ES", "text": "Hola"}]}, "greeting", "default"),
    ({"greeting": [{"locale": "default", "text": "a"}, {"locale": "default", "text": "b"}]}, "greeting", "dos veces"),
    ({"greeting": [{"locale": "español", "text": "a"}]}, "greeting[0][locale]", "idioma"),
    ({"greeting": [{"locale": "default", "text": "   "}]}, "greeting[0][text]", "vacío"),
    ({"greeting": [{"locale": "default", "text": "Hola \ud800"}]}, "greeting[0][text]", "texto"),
    ({"get_started": {"payload": "/greet\x00"}}, "get_started[payload]", "texto"),
    ({"greeting": [{"locale": "default", "text": "Hola {{first_name}}"}]}, "greeting[0][text]", "{{first_name}}"),
    ({"persistent_menu": [{"locale": "default", "call_to_actions": [
        {"type": "postback", "title": "Menú", "payload": "/menu"}]}]}, "persistent_menu", "Empezar"),
    ({"get_started": {"payload": "/greet"}, "persistent_menu": [{"locale": "default", "call_to_actions": [
        {"type": "web_url", "title": "Web", "url": "http://ejemplo.ec"}]}]},
     "persistent_menu[0][call_to_actions][0][url]", "https://"),
    ({"get_started": {"payload": "/greet"}, "persistent_menu": [{"locale": "default", "call_to_actions": [
        {"type": "nested", "title": "Más", "call_to_actions": []}]}]},
     "persistent_menu[0][call_to_actions][0]", "no conoce"),
    ({"get_started": {"payload": "/greet"}, "persistent_menu": [{"locale": "default",
                                                                 "composer_input_disabled": True}]},
     "persistent_menu[0][call_to_actions]", "obligatorio"),
    ({"ice_breakers": [{"question": "¿Q?", "payload": "p"}]}, "ice_breakers", "formato actual"),
    ({"whitelisted_domains": ["https://ejemplo.ec"]}, "whitelisted_domains", "no es parte del perfil"),
    (["greeting"], "profile", "objeto"),
]


@pytest.mark.parametrize(("body", "field", "words"), RULES)
def test_metas_rules_and_the_consoles_are_refused_in_spanish(body: Any, field: str, words: str) -> None:
    error = refusal(body)
    assert (error.field, error.reason_code) == (field, "invalid_profile")
    assert words in error.message_es, error.message_es


def test_the_consoles_own_rules_are_stricter_than_metas_never_looser() -> None:
    """What Meta's check refuses the console refuses too; the three console-only rules are the only extras."""
    http_menu = {"get_started": {"payload": "/g"}, "persistent_menu": [{"locale": "default", "call_to_actions": [
        {"type": "web_url", "title": "W", "url": "http://ejemplo.ec"}]}]}
    assert profile_problem(http_menu) is None  # Meta takes http
    refusal(http_menu)  # the console does not


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(
        ["", " ", "default", "es_LA", "postback", "web_url", "https://ejemplo.ec", "/greet", "x" * 170,
         "{{user_first_name}}", "{{x}}", "locale", "text", "payload", "question", "\ud800", "a\x00b"]),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(
        st.sampled_from(["locale", "text", "payload", "question", "call_to_actions", "type", "title", "url",
                         "composer_input_disabled", "webview_height_ratio", "x"]), children, max_size=5),
    max_leaves=25,
)
FIELDS = st.sampled_from(["get_started", "greeting", "ice_breakers", "persistent_menu", "commands"])


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(FIELDS, JSON, max_size=4) | JSON)
def test_any_json_is_a_profile_or_a_spanish_refusal_that_names_its_field(body: Any) -> None:
    try:
        profile = parse_profile(body)
    except ProfileInvalid as error:
        assert error.field and len(error.field) < 200
        assert error.message_es and ":" in error.message_es
        json.dumps(error.details())
        return
    # Accepted: Meta would accept it too, and it survives the round trip.
    assert profile_problem(profile.to_dict()) is None or profile.to_dict() == {}
    assert parse_profile(profile.to_dict()) == profile
