"""A broadcast draft from a JSON body: the Send API messages its content makes (image, then text or a button
template, quick replies on the last; a start's payload is what a link's start sends Rasa), every refusal naming its
field in Spanish, and no body whatever making anything but `BroadcastInvalid`."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcasts.model import BroadcastDraft, BroadcastInvalid, Content
from links.model import Start

PAGE = "100000000000001"


def body(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"page_id": PAGE, "name": "Promo", "content": {"text": "Hola"},
                            "audience": {"tags_any": ["vip"]}}
    data.update(fields)
    return data


def test_the_content_makes_the_image_then_a_button_template_with_the_quick_replies_on_the_last() -> None:
    content = Content.from_dict({
        "text": "¿Qué le apetece?", "image": {"attachment_id": "987"},
        "buttons": [{"title": "Ver carta", "url": "https://example.com/carta"},
                    {"title": "Horario", "start": {"entry_id": "horario"}}],
        "quick_replies": [{"title": "Pedir", "start": {"intent": "pedir"}}, {"title": "Nada"}]})
    image, text = content.messages()
    assert image == {"attachment": {"type": "image", "payload": {"attachment_id": "987"}}}
    assert text["attachment"]["payload"] == {"template_type": "button", "text": "¿Qué le apetece?", "buttons": [
        {"type": "web_url", "url": "https://example.com/carta", "title": "Ver carta"},
        {"type": "postback", "title": "Horario", "payload": Start(entry_id="horario").message_text()}]}
    assert text["quick_replies"] == [{"content_type": "text", "title": "Pedir", "payload": "/pedir"},
                                     {"content_type": "text", "title": "Nada", "payload": "Nada"}]
    assert "quick_replies" not in image
    assert Content.from_dict({"text": "Solo texto"}).messages() == [{"text": "Solo texto"}]
    only_image = Content.from_dict({"image": {"url": "https://example.com/a.png"}, "quick_replies": [{"title": "Sí"}]})
    assert only_image.messages() == [{"attachment": {"type": "image", "payload": {
        "url": "https://example.com/a.png", "is_reusable": True}}, "quick_replies": [
        {"content_type": "text", "title": "Sí", "payload": "Sí"}]}]


def test_a_draft_round_trips_through_its_dict() -> None:
    draft = BroadcastDraft.from_dict(body(promotional=False, tag="ACCOUNT_UPDATE", content={
        "text": "Su pedido salió", "buttons": [{"title": "Seguir", "url": "https://example.com/p/1"}]}))
    assert BroadcastDraft.from_dict(draft.to_dict()) == draft
    assert draft.audience.page_id == PAGE and draft.promotional is False


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"page_id": "abc"}, "page_id", "dígitos"),
    ({"name": "  "}, "name", "Escriba"),
    ({"content": {}}, "content.text", "texto o adjunte una imagen"),
    ({"content": {"text": "x" * 2001}}, "content.text", "2000"),
    ({"content": {"text": "x" * 641, "buttons": [{"title": "a", "url": "https://e.com"}]}}, "content.text", "640"),
    ({"content": {"buttons": [{"title": "a", "url": "https://e.com"}], "image": {"url": "https://e.com/a"}}},
     "content.text", "botones necesitan un texto"),
    ({"content": {"text": "a", "buttons": [{"title": "b", "url": "https://e.com"}] * 4}}, "content.buttons", "3"),
    ({"content": {"text": "a", "buttons": [{"title": "b"}]}}, "content.buttons[0]", "una de las dos"),
    ({"content": {"text": "a", "buttons": [{"title": "b", "url": "http://e.com"}]}}, "content.buttons[0].url",
     "https://"),
    ({"content": {"text": "a", "quick_replies": [{"title": "x" * 21}]}}, "content.quick_replies[0].title", "20"),
    ({"content": {"text": "a", "quick_replies": [{"title": "x"}] * 14}}, "content.quick_replies", "13"),
    ({"content": {"text": "a", "quick_replies": [{"title": "x", "start": {"intent": "restart"}}]}},
     "content.quick_replies[0].start", "restart"),
    ({"content": {"text": "a", "image": {"url": "https://e.com/a", "attachment_id": "1"}}}, "content.image",
     "una de las dos"),
    ({"content": {"text": "a\x00"}}, "content.text", "control"),
    ({"promotional": "sí"}, "promotional", "true o false"),
    ({"tag": "OFERTAS"}, "tag", "ACCOUNT_UPDATE"),
    ({"tag": "HUMAN_AGENT", "promotional": False}, "tag", "persona del equipo"),  # never for a broadcast
    ({"tag": "ACCOUNT_UPDATE"}, "tag", "promocional"),
    ({"audience": {"page_id": "999"}}, "audience.page_id", "misma página"),
    ({"audience": {"tags_any": "vip"}}, "audience.tags_any", ""),
    ({"extra": 1}, "extra", "desconocido"),
])
def test_each_refusal_names_its_field_in_spanish(fields: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(BroadcastInvalid) as refused:
        BroadcastDraft.from_dict(body(**fields))
    assert refused.value.field == field
    assert words in refused.value.message_es
    assert refused.value.reason_code == "broadcast_invalid"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12)
keys = st.sampled_from(["page_id", "name", "content", "audience", "promotional", "tag", "text", "image", "buttons",
                        "quick_replies", "title", "url", "start", "intent", "entry_id", "attachment_id",
                        "tags_any", "fields"])
bodies = st.recursive(json_values, lambda children: st.dictionaries(keys, children, max_size=6), max_leaves=20)


@settings(max_examples=60)
@given(data=bodies, content=st.dictionaries(keys, json_values, max_size=5))
def test_no_body_makes_anything_but_a_field_error(data: Any, content: dict[str, Any]) -> None:
    for candidate in (data, body(content=content), body(audience=data)):
        try:
            draft = BroadcastDraft.from_dict(candidate)
        except BroadcastInvalid as error:
            assert error.field and error.message_es
        else:
            assert BroadcastDraft.from_dict(draft.to_dict()) == draft
            assert draft.content.messages()
