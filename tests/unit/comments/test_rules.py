"""Reply rules for comments ("Respuestas privadas"), pure: Spanish-aware matching and the checks of a rule's body.

Would catch: accents, case, punctuation or emoji making "Precio?" miss a "precio" rule; typo tolerance reaching
short words ("caro" answering "cara"); phrases matched as loose words; a disabled or later rule winning; a body that
crashes instead of a RuleInvalid with a Spanish message; a fixed reply Meta would refuse being accepted.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comments.rules import (
    CommentMatch,
    PostScope,
    ReplyContent,
    ReplyRule,
    RuleInvalid,
    first_match,
    matches,
    normalize,
    parse_rule,
    parse_settings,
    within_one_typo,
)

PAGE = "100000000000001"


def rule(keywords: tuple[str, ...] = (), *, rule_id: int = 1, position: int = 1, enabled: bool = True,
         posts: PostScope | None = None) -> ReplyRule:
    return ReplyRule(
        page_id=PAGE, name=f"regla {rule_id}", id=rule_id, position=position, enabled=enabled,
        posts=posts or PostScope(),
        comments=CommentMatch("keywords", keywords) if keywords else CommentMatch("any"),
        reply=ReplyContent("fixed", {"text": "Hola, te escribimos por interno."}),
    )


def body(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "page_id": PAGE,
        "name": "Precio",
        "comments": {"mode": "keywords", "keywords": ["precio", "cuánto cuesta"]},
        "reply": {"mode": "fixed", "message": {"text": "¡Hola! Te enviamos los precios por aquí."}},
        "public_replies": ["¡Te escribimos por interno! 📩"],
    }
    base.update(overrides)
    return base


# --- normalization and matching ---------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("Precio?", "precio"),
    ("PRECIO!!", "precio"),
    ("precío", "precio"),
    ("💰precio💰", "precio"),
    ("preciooooo", "precio"),
    ("¿Cuánto   cuesta?", "cuanto cuesta"),
    ("Información, por favor 🙏", "informacion por favor"),
    ("Año 2024 ñandú", "ano 2024 nandu"),
    ("100 dólares", "100 dolares"),  # digits are never squeezed
    ("", ""),
])
def test_normalize_ignores_case_accents_punctuation_emoji_and_repeated_letters(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize("comment", [
    "Precio?", "PRECIO!!", "precío", "💰precio", "preciooo por favor", "y el precio??", "Precios", "prcio",
    "¿Cuánto cuesta?", "cuanto cuestaaa 😍", "CUÁNTO CUESTA",
])
def test_keywords_and_phrases_match_how_customers_write(comment: str) -> None:
    assert matches(rule(("precio", "cuánto cuesta")), comment, "1_2")


@pytest.mark.parametrize("comment", [
    "Qué lindo 😍", "pre cio", "cuesta cuanto", "cuanto me cuesta", "apreciamos", "", "🔥🔥🔥",
])
def test_other_comments_do_not_match(comment: str) -> None:
    assert not matches(rule(("precio", "cuánto cuesta")), comment, "1_2")


def test_one_typo_is_tolerated_in_long_words_only() -> None:
    info = rule(("información",))
    for typo in ("imformacion", "infromacion", "informacin", "informaciom", "informaciones"[:-1]):
        assert matches(info, f"quiero {typo}", None), typo
    assert not matches(info, "quiero imformasion", None)  # two typos
    # Short keyword words are never fuzzed: "caro" is not "cara", "info" is not "indo", "mas" is not "mes".
    assert not matches(rule(("caro",)), "qué cara", None)
    assert not matches(rule(("info",)), "indo", None)
    assert not matches(rule(("mas info",)), "mes info", None)
    assert matches(rule(("info",)), "INFO!!!", None)


def test_within_one_typo() -> None:
    assert within_one_typo("precio", "precio")
    assert within_one_typo("precio", "precia")  # changed
    assert within_one_typo("precio", "precios")  # added
    assert within_one_typo("precio", "preio")  # dropped
    assert within_one_typo("precio", "perccio"[:0] + "perico") is False
    assert within_one_typo("precio", "percio")  # swapped neighbours
    assert not within_one_typo("precio", "pericos")


def test_phrases_match_whole_words_in_order_with_typos_per_word() -> None:
    phrase = rule(("me interesa",))
    assert matches(phrase, "Hola!! Me interesaaa 😍", None)
    assert matches(phrase, "me intereza", None)  # "interesa" is long enough for one typo
    assert not matches(phrase, "me", None)
    assert not matches(phrase, "interesa me", None)
    assert not matches(phrase, "mi interesa", None)  # "me" is short: exact


def test_post_scope_by_id_and_by_text() -> None:
    by_id = rule(posts=PostScope("ids", post_ids=("100000000000001_555",)))
    assert matches(by_id, "hola", "100000000000001_555")
    assert matches(rule(posts=PostScope("ids", post_ids=("555",))), "hola", "100000000000001_555")
    assert not matches(by_id, "hola", "100000000000001_556")
    assert not matches(by_id, "hola", None)
    by_text = rule(posts=PostScope("text", post_words=("promoción",)))
    assert matches(by_text, "hola", "1_2", "¡Gran PROMOCION de verano! ☀️")
    assert not matches(by_text, "hola", "1_2", "Nuevos horarios")
    assert not matches(by_text, "hola", "1_2", None)  # the post's text is unknown


def test_first_enabled_match_in_order_wins() -> None:
    general = rule(rule_id=1, position=3)
    price = rule(("precio",), rule_id=2, position=1)
    off = rule(("precio",), rule_id=3, position=0, enabled=False)
    rules = [general, off, price]
    assert first_match(rules, "precio?", None) == price
    assert first_match(rules, "hola", None) == general
    assert first_match([off], "precio", None) is None
    assert first_match([], "precio", None) is None


# --- parse_rule --------------------------------------------------------------------------------------


def test_a_valid_body_becomes_a_rule() -> None:
    parsed = parse_rule(body())
    assert parsed.page_id == PAGE and parsed.name == "Precio" and parsed.enabled
    assert parsed.comments == CommentMatch("keywords", ("precio", "cuánto cuesta"))
    assert parsed.posts == PostScope("all")
    assert parsed.reply.mode == "fixed" and parsed.reply.message == {"text": "¡Hola! Te enviamos los precios por aquí."}
    assert parsed.public_replies == ("¡Te escribimos por interno! 📩",)
    again = parse_rule(parsed.to_dict())  # what the API answers can be sent back
    assert again.comments == parsed.comments and again.reply == parsed.reply


def test_quick_replies_buttons_and_knowledge_replies_are_accepted() -> None:
    quick = {"text": "¿Qué te interesa?", "quick_replies": [
        {"content_type": "text", "title": "Precios", "payload": "/ask_price"}]}
    assert parse_rule(body(reply={"message": quick})).reply.message == quick
    buttons = {"attachment": {"type": "template", "payload": {"template_type": "button", "text": "Mira el menú",
               "buttons": [{"type": "web_url", "title": "Menú", "url": "https://example.com/menu"},
                           {"type": "postback", "title": "Hablar", "payload": "/human"}]}}}
    assert parse_rule(body(reply={"message": buttons})).reply.message == buttons
    assert parse_rule(body(reply={"mode": "knowledge"})).reply == ReplyContent("knowledge", None)


@pytest.mark.parametrize(("overrides", "field", "words"), [
    ({"name": "  "}, "name", "Escriba el nombre"),
    ({"name": "x" * 81}, "name", "máximo es 80"),
    ({"page_id": "abc"}, "page_id", "página"),
    ({"comments": {"mode": "keywords", "keywords": []}}, "comments.keywords", "al menos una palabra"),
    ({"comments": {"mode": "keywords", "keywords": ["ok", "💰!!"]}}, "comments.keywords[1]", "no tiene letras"),
    ({"comments": {"mode": "algunos"}}, "comments.mode", "«any», «keywords»"),
    ({"posts": {"mode": "ids", "post_ids": ["https://facebook.com/x"]}}, "posts.post_ids[0]", "id de Facebook"),
    ({"posts": {"mode": "text"}}, "posts.post_words", "al menos una palabra"),
    ({"reply": {"message": {"text": ""}}}, "reply.message.text", "Escriba el texto"),
    ({"reply": {"message": {"text": "x" * 2001}}}, "reply.message.text", "máximo es 2000"),
    ({"reply": {"message": {"text": "a", "quick_replies": [{"content_type": "text", "title": "Sí"}]}}},
     "reply.message.quick_replies[0].payload", "payload"),
    ({"reply": {"message": {"attachment": {"type": "image", "payload": {"url": "https://x.y/a.png"}}}}},
     "reply.message.attachment", "plantilla de botones"),
    ({"reply": {"message": {"text": "a", "metadata": "x"}}}, "reply.message.metadata", "Campo desconocido"),
    ({"reply": {"mode": "knowledge", "message": {"text": "a"}}}, "reply.message", "matriz"),
    ({"reply": None}, "reply", "mensaje privado"),
    ({"public_replies": ["ok"] * 11}, "public_replies", "máximo es 10"),
    ({"public_replies": [""]}, "public_replies[0]", "Escriba la respuesta pública"),
    ({"enabled": "sí"}, "enabled", "true"),
    ({"color": "rojo"}, "color", "Campo desconocido"),
    # A list or an object as the type: Meta's check hashed it (TypeError, a 500 from the rules API).
    ({"reply": {"message": {"text": "a", "quick_replies": [{"content_type": ["x"], "title": "a"}]}}},
     "reply.message.quick_replies[0].content_type", "«text», «user_phone_number» o «user_email»"),
    ({"reply": {"message": {"text": "a", "quick_replies": [{"content_type": {"a": 1}, "title": "a"}]}}},
     "reply.message.quick_replies[0].content_type", "«text»"),
    # NUL (PostgreSQL refuses it, SQLite keeps it) and lone surrogates (neither stores them): refused where they are.
    ({"name": "Pre\x00cio"}, "name", "caracteres nulos o no válidos"),
    ({"name": "Pre\ud800cio"}, "name", "caracteres nulos o no válidos"),
    ({"comments": {"mode": "keywords", "keywords": ["pre\x00cio"]}}, "comments.keywords[0]", "nulos"),
    ({"reply": {"message": {"text": "ho\x00la"}}}, "reply.message.text", "nulos"),
    ({"public_replies": ["ok", "a\udfff"]}, "public_replies[1]", "nulos"),
])
def test_invalid_bodies_say_which_field_and_why_in_spanish(overrides: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(RuleInvalid) as raised:
        parse_rule(body(**overrides))
    assert raised.value.field == field
    assert words in raised.value.message_es
    assert raised.value.reason_code == "rule_invalid" and raised.value.details() == {"field": field}


def test_a_message_meta_would_refuse_is_refused() -> None:
    too_many = {"text": "a", "quick_replies": [{"content_type": "text", "title": f"o{i}", "payload": f"p{i}"}
                                               for i in range(14)]}
    with pytest.raises(RuleInvalid, match="máximo es 13"):
        parse_rule(body(reply={"message": too_many}))
    bad_button = {"attachment": {"type": "template", "payload": {"template_type": "button", "text": "t",
                  "buttons": [{"type": "phone_number", "title": "Llamar", "payload": "0991234567"}]}}}
    with pytest.raises(RuleInvalid, match="Meta no aceptaría"):
        parse_rule(body(reply={"message": bad_button}))


def test_settings_default_to_one_reply_per_person_and_check_the_score() -> None:
    assert parse_settings({}, PAGE).one_reply_per_person_per_post_per_day is True
    assert parse_settings({"one_reply_per_person_per_post_per_day": False, "knowledge_min_score": 0.7},
                          PAGE).knowledge_min_score == 0.7
    with pytest.raises(RuleInvalid, match="entre 0 y 1"):
        parse_settings({"knowledge_min_score": 3}, PAGE)


# --- properties ------------------------------------------------------------------------------------------

# Any text JSON can carry: NUL and lone surrogates ("\ud800") included.
ANY_TEXT = st.text(max_size=30) | st.text(st.characters(exclude_categories=()), max_size=5)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ANY_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
QUICK = st.lists(st.fixed_dictionaries({"content_type": st.just("text") | JSON, "title": ANY_TEXT,
                                        "payload": ANY_TEXT}), max_size=2)
RULE_KEYS = ["page_id", "name", "enabled", "posts", "comments", "reply", "public_replies", "id", "x"]
PART = st.fixed_dictionaries({}, optional={
    "mode": st.sampled_from(["all", "ids", "text", "any", "keywords", "fixed", "knowledge", "otro"]) | JSON,
    "post_ids": st.lists(st.text(max_size=12) | JSON, max_size=3) | JSON,
    "post_words": st.lists(st.text(max_size=12), max_size=3) | JSON,
    "keywords": st.lists(st.text(max_size=12), max_size=3) | JSON,
    "message": st.fixed_dictionaries({}, optional={"text": st.text(max_size=20) | JSON, "quick_replies": JSON | QUICK,
                                                   "attachment": JSON}) | JSON,
})


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(RULE_KEYS), PART | JSON, max_size=8) | JSON)
def test_any_json_body_is_a_rule_or_a_rule_invalid(value: Any) -> None:
    try:
        parsed = parse_rule(value)
    except RuleInvalid as exc:
        assert exc.field
        assert exc.message_es[:1].isupper() or exc.message_es[:1] in "«¿"
        return
    assert isinstance(parsed, ReplyRule) and parsed.name and parsed.page_id.isdigit()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_normalize_is_idempotent_and_plain(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    assert once == once.strip() and "  " not in once
    assert all(char.isalnum() or char == " " for char in once)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40), st.text(max_size=20), st.text(max_size=20))
def test_a_keyword_always_matches_itself_in_any_dress(keyword: str, before: str, after: str) -> None:
    if not normalize(keyword):
        return
    dressed = f"{before} ¡¡{keyword.upper()}!! 💬 {after}"
    assert matches(rule((keyword,)), dressed, None) or normalize(keyword.upper()) != normalize(keyword)
