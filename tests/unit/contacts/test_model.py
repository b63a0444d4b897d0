"""contacts.model: the checks (only ContactInvalid, with a Spanish message naming the field, for any input), tags
compared without case or accents, the windows read from the outbox's policy, Meta's profile answers mapped."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contacts.model import (
    FETCHED,
    NO_PERMISSION,
    PENDING,
    UNAVAILABLE,
    Audience,
    Contact,
    ContactInvalid,
    ContactQuery,
    aware_time,
    check_fields,
    check_note,
    check_tags,
    fold,
    next_profile_attempt,
    profile_from_graph,
    profile_outcome,
    search_text,
    tag_key,
    window_durations,
)
from meta.errors import classify_graph_error
from outbox.policy_file import load_policy

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=timezone.utc)
SPANISH_HINTS = ("etiqueta", "campo", "nota", "valor", "límite", "búsqueda", "cursor", "página", "PSID", "texto",
                 "campaña", "autor", "nombre", "apellido")

ANY_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text() | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=45), inner, max_size=4),
    max_leaves=12)
NASTY_TEXT = st.text() | st.sampled_from(["", " ", "\x00", "a\x00b", "\ud800", "\n", "x" * 41, "x" * 501, "ñ" * 40])


def assert_spanish(error: ContactInvalid) -> None:
    assert error.field and isinstance(error.message_es, str)
    assert any(hint in error.message_es for hint in SPANISH_HINTS), error.message_es


@settings(max_examples=150, deadline=None)
@given(tags=st.lists(NASTY_TEXT, max_size=60) | ANY_VALUE)
def test_any_tags_are_accepted_or_refused_with_contact_invalid_naming_tags(tags: Any) -> None:
    try:
        checked = check_tags(tags)
    except ContactInvalid as refused:
        assert refused.field == "tags"
        assert_spanish(refused)
        return
    assert len(checked) <= 50
    assert len({tag_key(tag) for tag in checked}) == len(checked)
    for tag in checked:
        assert 1 <= len(tag) <= 40 and tag == tag.strip() and "\x00" not in tag


@settings(max_examples=150, deadline=None)
@given(fields=st.dictionaries(NASTY_TEXT, NASTY_TEXT | st.none(), max_size=55) | ANY_VALUE)
def test_any_fields_are_accepted_or_refused_naming_the_field(fields: Any) -> None:
    try:
        checked = check_fields(fields)
    except ContactInvalid as refused:
        assert refused.field == "fields" or refused.field.startswith("fields.")
        assert_spanish(refused)
        return
    for key, value in checked.items():
        assert key.isascii() and 1 <= len(key) <= 40
        assert value is None or (len(value) <= 500 and "\x00" not in value and value.strip())


@settings(max_examples=100, deadline=None)
@given(text=NASTY_TEXT | ANY_VALUE)
def test_any_note_is_accepted_or_refused_naming_note(text: Any) -> None:
    try:
        note = check_note(text)
    except ContactInvalid as refused:
        assert refused.field == "note"
        assert_spanish(refused)
        return
    assert note.strip() and len(note) <= 5000


@settings(max_examples=100, deadline=None)
@given(query=st.fixed_dictionaries({}, optional={
    "page_id": NASTY_TEXT | ANY_VALUE, "text": NASTY_TEXT, "tag": NASTY_TEXT, "campaign": NASTY_TEXT,
    "limit": st.integers(-5, 500) | ANY_VALUE, "after": NASTY_TEXT}))
def test_any_query_is_built_or_refused_with_contact_invalid(query: dict[str, Any]) -> None:
    try:
        ContactQuery(**query)
    except ContactInvalid as refused:
        assert_spanish(refused)


def test_tags_compare_without_case_accents_or_extra_spaces() -> None:
    assert check_tags(["Cliente VIP", "cliente vip", "  CLIENTE   VÍP ", "Envío"]) == ("Cliente VIP", "Envío")
    assert tag_key("Envío Gratis") == tag_key("ENVIO  gratis") == "envio gratis"
    assert fold("Ñandú") == "nandu"
    with pytest.raises(ContactInvalid, match="50"):
        check_tags([f"t{n}" for n in range(51)])
    with pytest.raises(ContactInvalid, match="saltos de línea"):
        check_tags(["a\nb"])
    with pytest.raises(ContactInvalid, match="40"):
        check_tags(["x" * 41])


def test_field_keys_and_deletion() -> None:
    assert check_fields({"ciudad": "Quito", "pedido": None, "nota_2": "  "}) == {
        "ciudad": "Quito", "pedido": None, "nota_2": None}
    with pytest.raises(ContactInvalid) as refused:
        check_fields({"Ciudad": "Quito"})
    assert refused.value.field == "fields.Ciudad" and "minúsculas" in refused.value.message_es
    with pytest.raises(ContactInvalid) as too_long:
        check_fields({"pedido": "x" * 501})
    assert too_long.value.field == "fields.pedido"


def test_windows_come_from_the_policy_not_from_this_module() -> None:
    assert window_durations() == (timedelta(hours=24), timedelta(days=7))
    contact = Contact(page_id="1", psid="1234", first_seen_at=NOW, last_user_message_at=NOW)
    assert contact.standard_window_left(NOW + timedelta(hours=20)) == timedelta(hours=4)
    assert contact.human_agent_left(NOW + timedelta(hours=20)) == timedelta(days=6, hours=4)
    assert contact.standard_window_left(NOW + timedelta(hours=25)) is None
    assert contact.human_agent_left(NOW + timedelta(days=8)) is None
    assert Contact(page_id="1", psid="1234", first_seen_at=NOW).standard_window_left(NOW) is None
    # Another policy (OUTBOX_POLICY_FILE) with a 12 h window is obeyed.
    shipped = load_policy()
    shorter = replace(shipped, rules=tuple(replace(rule, window_to=timedelta(hours=12)) if rule.name == "RESPONSE"
                                           else rule for rule in shipped.rules))
    assert contact.standard_window_left(NOW + timedelta(hours=11), shorter) == timedelta(hours=1)
    data = contact.to_dict(NOW + timedelta(hours=23))
    assert (data["standard_window_seconds_left"], data["display_name"]) == (3600, "Sin nombre (PSID …1234)")


def meta_error(status: int, code: int, subcode: int | None = None, message: str = "x") -> Any:
    body: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if subcode is not None:
        body["error_subcode"] = subcode
    return classify_graph_error(status, {"error": body})


@pytest.mark.parametrize(("status", "code", "subcode", "expected", "words"), [
    (400, 100, 2018247, NO_PERMISSION, "permiso"),
    (400, 100, 2018218, NO_PERMISSION, "teléfono"),
    (400, 100, 2018001, NO_PERMISSION, "bloqueó"),
    (400, 100, 33, NO_PERMISSION, "permiso"),
    (403, 200, None, NO_PERMISSION, "pages_messaging"),
    (400, 190, None, UNAVAILABLE, "token"),
    (500, 2, None, UNAVAILABLE, "Meta no respondió"),
    (403, 4, None, UNAVAILABLE, "Meta no respondió"),
    (400, 100, None, UNAVAILABLE, "código 100"),
])
def test_meta_answers_map_to_a_profile_state_and_a_spanish_reason(
        status: int, code: int, subcode: int | None, expected: str, words: str) -> None:
    outcome = profile_outcome(meta_error(status, code, subcode))
    assert outcome.status == expected and outcome.reason is not None and words in outcome.reason


def test_retry_times() -> None:
    assert next_profile_attempt(FETCHED, 0, NOW) == NOW + timedelta(days=7)  # Meta's picture URLs expire
    assert next_profile_attempt(PENDING, 0, NOW) == NOW
    assert next_profile_attempt(NO_PERMISSION, 1, NOW) == NOW + timedelta(days=1)
    delays = [next_profile_attempt(UNAVAILABLE, n, NOW) - NOW for n in range(1, 30)]  # type: ignore[operator]
    assert delays[:3] == [timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120)]
    assert delays == sorted(delays) and max(delays) == timedelta(hours=6)


def test_a_profile_from_meta_is_kept_only_where_well_formed() -> None:
    assert profile_from_graph({"first_name": " Ana ", "last_name": "Mora", "profile_pic": "https://x/a.jpg",
                               "locale": "es_LA", "gender": "female"}) == {
        "first_name": "Ana", "last_name": "Mora", "profile_pic": "https://x/a.jpg", "locale": "es_LA"}
    assert profile_from_graph({"first_name": 7, "last_name": "a\x00", "profile_pic": "javascript:alert(1)",
                               "locale": "<b>"}) == {
        "first_name": None, "last_name": None, "profile_pic": None, "locale": None}


def test_search_text_never_joins_two_values() -> None:
    contact = Contact(page_id="1", psid="55", first_seen_at=NOW, first_name="José", last_name="Pérez",
                      tags=("VIP",), fields={"ciudad": "Quito"})
    lines = search_text(contact).split("\n")
    assert "jose perez" in lines and "vip" in lines and "quito" in lines and "55" in lines


# --- audiences (a broadcast's who) --------------------------------------------------------------------------------

AUDIENCE_HINTS = (*SPANISH_HINTS, "audiencia", "fecha", "interacción", "Indique")
AUDIENCE_PAGE = "100000000000001"
TIMES = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1),
                     timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=-5))]))
TAG_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(tags_any=st.lists(TAG_TEXT, max_size=5), tags_none=st.lists(TAG_TEXT, max_size=5),
       fields=st.dictionaries(st.from_regex(r"[a-z0-9_]{1,40}", fullmatch=True), TAG_TEXT, max_size=4),
       campaign=st.none() | st.sampled_from(["menu_mesas", "ad:777"]), after=st.none() | TIMES,
       span=st.none() | st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=400)))
def test_an_audience_round_trips_through_json(tags_any: list[str], tags_none: list[str], fields: dict[str, str],
                                              campaign: str | None, after: datetime | None,
                                              span: timedelta | None) -> None:
    body = {"page_id": AUDIENCE_PAGE, "tags_any": tags_any, "tags_none": tags_none, "fields": fields,
            "campaign": campaign, "last_interaction_after": after.isoformat() if after else None,
            "last_interaction_before": (after + span).isoformat() if after and span else None}
    try:
        audience = Audience.from_dict(body)
    except ContactInvalid as refused:  # a blank tag or field value (only spaces) is refused, in Spanish
        assert refused.field in ("tags_any", "tags_none") or refused.field.startswith("fields.")
        assert any(hint in refused.message_es for hint in AUDIENCE_HINTS), refused.message_es
        return
    again = Audience.from_dict(json.loads(json.dumps(audience.to_dict())))
    assert again == audience
    assert audience.last_interaction_after is None or audience.last_interaction_after.tzinfo == timezone.utc
    assert audience.last_interaction_after == after
    assert len({tag_key(tag) for tag in audience.tags_any}) == len(audience.tags_any)


@settings(max_examples=200, deadline=None)
@given(data=ANY_VALUE | st.dictionaries(
    st.sampled_from(["page_id", "tags_any", "tags_none", "fields", "campaign", "last_interaction_after",
                     "last_interaction_before", "otra"]), ANY_VALUE | NASTY_TEXT, max_size=7))
def test_any_json_is_an_audience_or_a_spanish_refusal_naming_the_field(data: Any) -> None:
    try:
        audience = Audience.from_dict(data)
    except ContactInvalid as refused:
        assert refused.field
        assert any(hint in refused.message_es for hint in AUDIENCE_HINTS), refused.message_es
        return
    assert Audience.from_dict(audience.to_dict()) == audience


@pytest.mark.parametrize(("body", "field"), [
    ({"tags_any": ["VIP"]}, "page_id"),
    ({"page_id": AUDIENCE_PAGE, "tags": ["VIP"]}, "tags"),
    ({"page_id": AUDIENCE_PAGE, "tags_any": "VIP"}, "tags_any"),
    ({"page_id": AUDIENCE_PAGE, "fields": {"Ciudad": "Quito"}}, "fields.Ciudad"),
    ({"page_id": AUDIENCE_PAGE, "fields": {"ciudad": " "}}, "fields.ciudad"),
    ({"page_id": AUDIENCE_PAGE, "last_interaction_after": "2026-11-30T15:00:00"}, "last_interaction_after"),
    ({"page_id": AUDIENCE_PAGE, "last_interaction_after": "ayer"}, "last_interaction_after"),
    # out of datetime's range once moved to UTC (an OverflowError, a 500, before) and out of the years 2000–2100
    ({"page_id": AUDIENCE_PAGE, "last_interaction_after": "0001-01-01T00:00:00+14:00"}, "last_interaction_after"),
    ({"page_id": AUDIENCE_PAGE, "last_interaction_before": "9999-12-31T23:59:59-14:00"}, "last_interaction_before"),
    ({"page_id": AUDIENCE_PAGE, "last_interaction_after": "9999-12-31T23:59:59-14:00"}, "last_interaction_after"),
    ({"page_id": AUDIENCE_PAGE, "last_interaction_before": "0001-01-01T00:00:00Z"}, "last_interaction_before"),
    ({"page_id": AUDIENCE_PAGE, "last_interaction_after": "1999-12-31T23:59:59+00:00"}, "last_interaction_after"),
    ({"page_id": AUDIENCE_PAGE, "last_interaction_before": "2101-01-01T00:00:00Z"}, "last_interaction_before"),
    ({"page_id": AUDIENCE_PAGE, "last_interaction_after": "2026-11-30T15:00:00Z",
      "last_interaction_before": "2026-11-30T10:00:00-05:00"}, "last_interaction_before"),
])
def test_a_bad_audience_names_its_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ContactInvalid) as refused:
        Audience.from_dict(body)
    assert refused.value.field == field
    assert any(hint in refused.value.message_es for hint in AUDIENCE_HINTS), refused.value.message_es


OFFSETS = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(lambda minutes: timedelta(minutes=minutes))


@settings(max_examples=300, deadline=None)
@given(at=st.datetimes(), offset=OFFSETS, name=st.sampled_from(["last_interaction_after", "last_interaction_before"]))
def test_any_time_with_any_offset_is_kept_in_utc_or_refused_naming_its_field(at: datetime, offset: timedelta,
                                                                             name: str) -> None:
    text = at.replace(tzinfo=timezone(offset)).isoformat()
    try:
        audience = Audience.from_dict({"page_id": AUDIENCE_PAGE, name: text})
    except ContactInvalid as refused:
        assert refused.field == name
        assert "entre los años 2000 y 2100" in refused.message_es
        return
    kept = getattr(audience, name)
    assert kept.tzinfo == timezone.utc and 2000 <= kept.year <= 2100
    assert kept == datetime.fromisoformat(text)


def test_the_years_a_time_may_name_are_2000_to_2100_in_utc() -> None:
    assert aware_time("2000-01-01T00:00:00Z", "send_at", "La fecha") == datetime(2000, 1, 1, tzinfo=timezone.utc)
    assert aware_time("2100-12-31T18:59:59-05:00", "send_at", "La fecha").year == 2100
    with pytest.raises(ContactInvalid) as refused:
        aware_time("2100-12-31T19:00:00-05:00", "send_at", "La fecha")  # 2101 in UTC
    assert refused.value.field == "send_at"
    with pytest.raises(ContactInvalid):
        aware_time(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))), "send_at", "La fecha")


def test_an_audience_reads_z_times_and_folds_nothing_it_keeps() -> None:
    audience = Audience.from_dict({"page_id": AUDIENCE_PAGE, "tags_any": ["Cliente VIP", "cliente víp"],
                                   "fields": {"ciudad": "Quitó"}, "last_interaction_after": "2026-11-30T15:00:00Z"})
    assert audience.tags_any == ("Cliente VIP",) and dict(audience.fields) == {"ciudad": "Quitó"}
    assert audience.last_interaction_after == NOW
    assert audience.to_dict()["last_interaction_after"] == "2026-11-30T15:00:00+00:00"
    assert Audience(AUDIENCE_PAGE, fields={"ciudad": "Loja"}).fields["ciudad"] == "Loja"


def test_the_last_message_is_searched_and_shown() -> None:
    contact = Contact(page_id=AUDIENCE_PAGE, psid="1001", first_seen_at=NOW, last_text="¿Tienen MESAS?\nPara 4",
                      message_count=3)
    assert "¿tienen mesas? para 4" in search_text(contact).split("\n")
    assert (contact.to_dict()["last_text"], contact.to_dict()["message_count"]) == ("¿Tienen MESAS?\nPara 4", 3)
