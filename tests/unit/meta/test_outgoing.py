"""Rasa responses become Messenger messages within Meta's limits, losing nothing and saying what changed."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meta import limits
from meta.errors import MessengerError
from meta.outgoing import (
    CONTINUATION_TEXT,
    Outgoing,
    OutgoingMessageError,
    build_messages,
    mark_seen_action,
    split_text,
    typing_action,
)
from meta.validate import validate_send_request

PSID = "1"

# --- helpers -------------------------------------------------------------------------------


def send_request(message: dict[str, Any]) -> dict[str, Any]:
    return {"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": message}


def assert_meta_accepts(outgoing: Outgoing) -> None:
    for message in outgoing.messages:
        error = validate_send_request(send_request(message))
        assert error is None, f"{error}: {message}"


def assert_within_limits(message: dict[str, Any]) -> None:
    """Our own reading of the limits, independent of the validator."""
    if "text" in message:
        assert message["text"].strip()
        assert len(message["text"]) <= limits.TEXT_MAX_CHARS
    replies = message.get("quick_replies", [])
    assert len(replies) <= limits.QUICK_REPLIES_MAX
    for reply in replies:
        if reply["content_type"] == "text":
            assert 0 < len(reply["title"]) <= limits.QUICK_REPLY_TITLE_MAX_CHARS
            assert 0 < len(reply["payload"]) <= limits.PAYLOAD_MAX_CHARS
    payload = message.get("attachment", {}).get("payload", {})
    if payload.get("template_type") == "button":
        assert 0 < len(payload["text"]) <= limits.BUTTON_TEMPLATE_TEXT_MAX_CHARS
        assert 1 <= len(payload["buttons"]) <= limits.BUTTONS_MAX
        for button in payload["buttons"]:
            assert_button_within_limits(button)
    if payload.get("template_type") == "generic":
        assert 1 <= len(payload["elements"]) <= limits.GENERIC_ELEMENTS_MAX
        for element in payload["elements"]:
            assert 0 < len(element["title"]) <= limits.ELEMENT_TITLE_MAX_CHARS
            assert len(element.get("subtitle", "")) <= limits.ELEMENT_SUBTITLE_MAX_CHARS
            assert len(element.get("buttons", [])) <= limits.BUTTONS_MAX
            for button in element.get("buttons", []):
                assert_button_within_limits(button)


def assert_button_within_limits(button: dict[str, Any]) -> None:
    assert button["type"] in ("postback", "web_url", "phone_number")
    assert 0 < len(button["title"]) <= limits.BUTTON_TITLE_MAX_CHARS
    if button["type"] != "web_url":
        assert 0 < len(button["payload"]) <= limits.PAYLOAD_MAX_CHARS


def buttons_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    payload = message.get("attachment", {}).get("payload", {})
    if payload.get("template_type") == "button":
        return list(payload["buttons"])
    if payload.get("template_type") == "generic":
        return [button for element in payload["elements"] for button in element.get("buttons", [])]
    return []


def all_buttons(outgoing: Outgoing) -> list[dict[str, Any]]:
    return [button for message in outgoing.messages for button in buttons_of(message)]


def template(message: dict[str, Any]) -> dict[str, Any]:
    payload = message["attachment"]["payload"]
    assert message["attachment"]["type"] == "template"
    return payload


def non_space(text: str) -> str:
    return "".join(text.split())


def paragraph(seed: str, size: int) -> str:
    """Realistic Spanish filler of exactly `size` characters, ending with a full stop."""
    sentence = (
        f"{seed} El horario de atención es de lunes a viernes, de 9h00 a 18h00, y los sábados hasta el mediodía. "
    )
    body = (sentence * (size // len(sentence) + 1))[: size - 1].rstrip()
    return body + "." * (size - len(body))


# --- sender actions ------------------------------------------------------------------------


def test_sender_actions_are_send_api_bodies() -> None:
    assert typing_action(True) == {"sender_action": "typing_on"}
    assert typing_action(False) == {"sender_action": "typing_off"}
    assert mark_seen_action() == {"sender_action": "mark_seen"}
    for body in (typing_action(True), typing_action(False), mark_seen_action()):
        assert validate_send_request({"recipient": {"id": PSID}, **body}) is None


# --- split_text ----------------------------------------------------------------------------


def test_empty_text_has_no_pieces() -> None:
    assert split_text("") == []


def test_text_within_the_limit_is_one_piece() -> None:
    text = "¡Qué gusto saludarte! 👋 ¿En qué te puedo ayudar?"
    assert split_text(text) == [text]
    assert split_text("x" * 2000) == ["x" * 2000]


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        split_text("hola", 0)


def test_paragraph_break_is_preferred_and_stays_with_the_first_piece() -> None:
    first, second = paragraph("Primero.", 1200), paragraph("Segundo.", 1200)
    text = f"{first}\n\n{second}"
    assert split_text(text) == [f"{first}\n\n", second]


def test_several_paragraphs_fill_each_piece_as_far_as_possible() -> None:
    parts = [paragraph(f"Parte {number}.", 700) for number in range(4)]
    text = "\n\n".join(parts)
    pieces = split_text(text)
    assert pieces == [f"{parts[0]}\n\n{parts[1]}\n\n", f"{parts[2]}\n\n{parts[3]}"]


def test_line_break_is_used_when_there_is_no_blank_line() -> None:
    text = "1. Arroz con menestra\n2. Encebollado\n3. Bolón de verde"
    assert split_text(text, 40) == ["1. Arroz con menestra\n2. Encebollado\n", "3. Bolón de verde"]


def test_blank_line_wins_over_a_later_line_break() -> None:
    text = "Menú:\n\nArroz con menestra\nEncebollado"
    assert split_text(text, 35) == ["Menú:\n\n", "Arroz con menestra\nEncebollado"]


def test_sentence_end_is_used_when_there_is_no_line_break() -> None:
    text = "Abrimos a las nueve. Cerramos a las seis de la tarde"
    assert split_text(text, 40) == ["Abrimos a las nueve. ", "Cerramos a las seis de la tarde"]


def test_inverted_marks_open_a_sentence() -> None:
    assert split_text("¿Vienes mañana? ¡Genial, te esperamos!", 30) == ["¿Vienes mañana? ", "¡Genial, te esperamos!"]
    assert split_text("¡Hola!¿Qué tal?", 10) == ["¡Hola!", "¿Qué tal?"]


def test_ellipsis_ends_a_sentence() -> None:
    assert split_text("Déjame revisar… Ya está listo tu pedido", 30) == ["Déjame revisar… ", "Ya está listo tu pedido"]


def test_word_boundary_is_used_when_there_is_no_sentence_end() -> None:
    text = "uno dos tres cuatro cinco seis siete ocho"
    pieces = split_text(text, 16)
    assert pieces == ["uno dos tres ", "cuatro cinco ", "seis siete ocho"]


def test_a_word_longer_than_the_limit_is_cut_hard() -> None:
    url = "https://tienda.example.ec/" + "a" * 60
    pieces = split_text(url, 25)
    assert "".join(pieces) == url
    assert [len(piece) for piece in pieces] == [25, 25, 25, 11]


def test_no_break_space_is_not_a_break() -> None:
    text = "Total: 25\u00a0USD ahora mismo"
    assert split_text(text, 12) == ["Total: ", "25\u00a0USD ", "ahora mismo"]


@pytest.mark.parametrize(
    "cluster",
    [
        "e\u0301",  # e + combining acute
        "👍🏽",  # thumbs up + skin tone
        "👨\u200d👩\u200d👧",  # family, ZWJ sequence
        "🇪🇨",  # flag: two regional indicators
        "1\ufe0f\u20e3",  # keycap
        "\r\n",
        "\ud83d\ude00",  # a surrogate pair that reached us undecoded
    ],
)
def test_user_perceived_characters_are_not_split(cluster: str) -> None:
    text = cluster * 7
    for limit in range(len(cluster), len(text)):
        pieces = split_text(text, limit)
        assert "".join(pieces) == text
        assert all(len(piece) % len(cluster) == 0 for piece in pieces), (limit, pieces)


def test_a_cluster_longer_than_the_limit_is_cut_anyway() -> None:
    zalgo = "a" + "\u0301" * 9
    pieces = split_text(zalgo, 4)
    assert "".join(pieces) == zalgo
    assert all(0 < len(piece) <= 4 for piece in pieces)


def test_trailing_whitespace_does_not_become_its_own_piece() -> None:
    text = "x" * 10 + "\n\n"
    pieces = split_text(text, 10)
    assert "".join(pieces) == text
    assert not any(piece.isspace() for piece in pieces)


@pytest.mark.parametrize("spaces", [9, 10, 18])
def test_a_long_space_run_is_shared_by_its_neighbours(spaces: int) -> None:
    text = "a" + " " * spaces + "b"
    pieces = split_text(text, 10)
    assert "".join(pieces) == text
    assert len(pieces) == 2
    assert not any(piece.isspace() for piece in pieces)


def test_a_space_run_no_piece_can_share_is_left_alone() -> None:
    # Documented limit: 19 spaces between two words need a middle piece of spaces only.
    text = "a" + " " * 19 + "b"
    pieces = split_text(text, 10)
    assert "".join(pieces) == text
    assert [piece.isspace() for piece in pieces] == [False, True, False]


def test_whitespace_only_text_keeps_the_join() -> None:
    # Documented: nothing can avoid whitespace-only pieces here; build_messages never sends them.
    text = "\n" * 45
    pieces = split_text(text, 20)
    assert "".join(pieces) == text
    assert all(0 < len(piece) <= 20 for piece in pieces)


TRICKY_ALPHABET = st.sampled_from(
    list("abcñáéíóúüÑ ¿¡?!.…,\n\t\r-")
    + ["\u00a0", "e\u0301", "👍", "👍🏽", "👨\u200d👩\u200d👧", "🇪🇨", "\u2029", "\u200d", "\U0001f600"]
)
TRICKY_TEXT = st.lists(TRICKY_ALPHABET, max_size=300).map("".join)
ANY_TEXT = st.one_of(
    TRICKY_TEXT,
    st.text(max_size=300),
    st.text(alphabet="\n", max_size=80),
    st.text(alphabet="aá", min_size=1, max_size=200),
    st.text(alphabet=" \n\t", max_size=80),
)


@given(text=ANY_TEXT, limit=st.integers(min_value=1, max_value=60))
@settings(max_examples=500, deadline=None)
def test_split_text_never_loses_or_reorders_a_character(text: str, limit: int) -> None:
    pieces = split_text(text, limit)
    assert "".join(pieces) == text
    assert all(0 < len(piece) <= limit for piece in pieces)
    assert (pieces == []) == (text == "")


def longest_whitespace_run(text: str) -> int:
    return max((len(run) for run in re.findall(r"\s+", text)), default=0)


CLUSTERS = ["a", "ñ", "á", " ", "\n", ".", "¿", "e\u0301", "👍🏽", "👨\u200d👩\u200d👧", "🇪🇨", "\r\n", "\ud83d\ude00"]


@given(clusters=st.lists(st.sampled_from(CLUSTERS), max_size=200), limit=st.integers(min_value=1, max_value=60))
@settings(max_examples=500, deadline=None)
def test_no_whitespace_only_piece_when_whitespace_runs_are_short(clusters: list[str], limit: int) -> None:
    text = "".join(clusters)
    longest_cluster = max((len(cluster) for cluster in clusters), default=0)
    if not text.strip() or 2 * longest_whitespace_run(text) + longest_cluster > limit:
        return
    pieces = split_text(text, limit)
    assert not any(piece.isspace() for piece in pieces), pieces


@given(clusters=st.lists(st.sampled_from(CLUSTERS), max_size=200), limit=st.integers(min_value=5, max_value=50))
@settings(max_examples=300, deadline=None)
def test_split_text_cuts_only_between_user_perceived_characters(clusters: list[str], limit: int) -> None:
    boundaries = {0}
    position = 0
    for cluster in clusters:
        position += len(cluster)
        boundaries.add(position)
    pieces = split_text("".join(clusters), limit)
    cut = 0
    for piece in pieces:
        cut += len(piece)
        assert cut in boundaries


WORDS = st.sampled_from(
    ["hola", "señor", "ñandú", "¿qué", "tal?", "¡bien!", "fin.", "😀", "👍🏽", "\n", "\n\n", "a" * 300, "🇪🇨", "…"]
)
# Up to tens of thousands of characters: several Messenger messages' worth.
LONG_TEXT = st.builds(lambda words, repeat: " ".join(words * repeat), st.lists(WORDS, min_size=1), st.integers(5, 80))


@given(text=LONG_TEXT)
@settings(max_examples=100, deadline=None)
def test_split_text_at_the_real_limit(text: str) -> None:
    pieces = split_text(text)
    assert "".join(pieces) == text
    assert all(0 < len(piece) <= limits.TEXT_MAX_CHARS for piece in pieces)


# --- build_messages: text and quick replies ------------------------------------------------


def test_short_text_is_one_message_without_warnings() -> None:
    outgoing = build_messages({"text": "¡Buenas! Cuéntame, ¿en qué te ayudo?"})
    assert outgoing == Outgoing(messages=({"text": "¡Buenas! Cuéntame, ¿en qué te ayudo?"},), warnings=())


def test_outgoing_is_frozen() -> None:
    outgoing = build_messages({"text": "hola"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        outgoing.messages = ()  # type: ignore[misc]


def test_rasa_metadata_keys_are_ignored() -> None:
    response = {
        "text": "Hola",
        "recipient_id": "24863291170007543",
        "template_name": "utter_greet",
        "utter_action": "utter_greet",
        "response_ids": ["abc"],
        "id": "abc",
        "buttons": [],
        "quick_replies": None,
        "image": None,
        "elements": [],
        "custom": None,
        "attachment": None,
    }
    assert build_messages(response) == Outgoing(messages=({"text": "Hola"},))


def test_domain_quick_replies_become_messenger_quick_replies() -> None:
    response = {
        "text": "Sí, soy un asistente virtual automático de esta página 🤖. Si prefieres, te comunico con una persona.",
        "quick_replies": [
            {"title": "Hablar con un agente", "payload": "/request_human"},
            {"title": "No, gracias", "payload": "/deny"},
        ],
    }
    outgoing = build_messages(response)
    assert outgoing.messages == (
        {
            "text": response["text"],
            "quick_replies": [
                {"content_type": "text", "title": "Hablar con un agente", "payload": "/request_human"},
                {"content_type": "text", "title": "No, gracias", "payload": "/deny"},
            ],
        },
    )
    assert outgoing.warnings == ()
    assert_meta_accepts(outgoing)


def test_long_text_is_split_and_quick_replies_go_on_the_last_chunk() -> None:
    text = "\n\n".join(paragraph(f"Párrafo {number}.", 1400) for number in range(3))
    outgoing = build_messages({"text": text, "quick_replies": [{"title": "Gracias", "payload": "/thanks"}]})
    assert len(outgoing.messages) == 3
    assert [("quick_replies" in message) for message in outgoing.messages] == [False, False, True]
    assert non_space("".join(message["text"] for message in outgoing.messages)) == non_space(text)
    assert all(len(message["text"]) <= limits.TEXT_MAX_CHARS for message in outgoing.messages)
    assert any("split" in warning or "sent as 3 messages" in warning for warning in outgoing.warnings)
    assert_meta_accepts(outgoing)


def test_one_character_over_the_limit_makes_two_messages() -> None:
    text = paragraph("Sin saltos de línea.", limits.TEXT_MAX_CHARS + 1)
    outgoing = build_messages({"text": text})
    assert len(outgoing.messages) == 2
    assert all(len(message["text"]) <= limits.TEXT_MAX_CHARS for message in outgoing.messages)
    assert outgoing.messages[0]["text"].endswith(".")  # cut after a sentence, not inside a word
    assert_meta_accepts(outgoing)


def test_whitespace_at_the_edges_is_not_sent() -> None:
    outgoing = build_messages({"text": "\n\n  Hola  \n"})
    assert outgoing.messages == ({"text": "Hola"},)


def test_blank_text_sends_nothing() -> None:
    assert build_messages({"text": " \n "}).messages == ()


def test_text_must_be_a_string() -> None:
    with pytest.raises(OutgoingMessageError) as caught:
        build_messages({"text": 42})
    assert caught.value.field == "text"


def test_long_quick_reply_title_is_shortened_with_its_payload_kept() -> None:
    outgoing = build_messages(
        {
            "text": "¿Te comunico?",
            "quick_replies": [{"title": "Hablar con una persona del equipo", "payload": "/request_human"}],
        }
    )
    (reply,) = outgoing.messages[0]["quick_replies"]
    assert reply == {"content_type": "text", "title": "Hablar con una…", "payload": "/request_human"}
    assert len(outgoing.warnings) == 1
    assert "quick_replies[0].title" in outgoing.warnings[0]
    assert_meta_accepts(outgoing)


def test_a_title_without_spaces_is_cut_at_the_limit() -> None:
    outgoing = build_messages({"text": "?", "quick_replies": [{"title": "Supercalifragilístico", "payload": "/x"}]})
    assert outgoing.messages[0]["quick_replies"][0]["title"] == "Supercalifragilísti…"


def test_more_than_13_quick_replies_become_postback_buttons_in_order() -> None:
    provinces = [f"Provincia {number}" for number in range(1, 17)]
    replies = [{"title": name, "payload": f'/inform{{"provincia": {number}}}'} for number, name in enumerate(provinces)]
    response = {"text": "¿Desde qué provincia nos escribes?", "quick_replies": replies}
    outgoing = build_messages(response)
    assert all("quick_replies" not in message for message in outgoing.messages)
    templates = [template(message) for message in outgoing.messages]
    assert [len(payload["buttons"]) for payload in templates] == [3, 3, 3, 3, 3, 1]
    assert templates[0]["text"] == "¿Desde qué provincia nos escribes?"
    assert all(payload["text"] == CONTINUATION_TEXT for payload in templates[1:])
    buttons = all_buttons(outgoing)
    assert [button["title"] for button in buttons] == provinces
    assert [button["payload"] for button in buttons] == [reply["payload"] for reply in replies]
    assert all(button["type"] == "postback" for button in buttons)
    assert any("16 options exceed 13" in warning for warning in outgoing.warnings)
    assert_meta_accepts(outgoing)


def test_exactly_13_quick_replies_stay_quick_replies() -> None:
    replies = [{"title": f"Opción {number}", "payload": f"/opcion_{number}"} for number in range(13)]
    outgoing = build_messages({"text": "Elige una opción", "quick_replies": replies})
    assert len(outgoing.messages) == 1
    assert len(outgoing.messages[0]["quick_replies"]) == 13
    assert outgoing.warnings == ()


def test_email_and_phone_quick_replies_stay_quick_replies_on_overflow() -> None:
    replies = [{"title": f"Opción {number}", "payload": f"/opcion_{number}"} for number in range(14)]
    replies.append({"content_type": "user_email"})
    outgoing = build_messages({"text": "Elige una opción", "quick_replies": replies})
    assert len(all_buttons(outgoing)) == 14
    assert outgoing.messages[-1]["quick_replies"] == [{"content_type": "user_email"}]
    assert_meta_accepts(outgoing)


def test_quick_reply_without_payload_is_rejected_with_its_field() -> None:
    with pytest.raises(OutgoingMessageError, match=r"quick_replies\[1\]\.payload"):
        build_messages({"text": "?", "quick_replies": [{"title": "Sí", "payload": "/affirm"}, {"title": "No"}]})


def test_quick_replies_need_something_to_go_with() -> None:
    with pytest.raises(OutgoingMessageError) as caught:
        build_messages({"quick_replies": [{"title": "Sí", "payload": "/affirm"}]})
    assert caught.value.field == "quick_replies"


def test_quick_replies_go_on_the_last_message_so_they_stay_visible() -> None:
    outgoing = build_messages(
        {
            "text": "Mira nuestro local:",
            "image": "https://cdn.example.ec/local.jpg",
            "quick_replies": [{"title": "¿Dónde queda?", "payload": "/ask_location"}],
        }
    )
    assert "quick_replies" not in outgoing.messages[0]
    assert outgoing.messages[-1]["attachment"]["type"] == "image"
    assert outgoing.messages[-1]["quick_replies"][0]["payload"] == "/ask_location"
    assert_meta_accepts(outgoing)


# --- build_messages: buttons ----------------------------------------------------------------


def test_rasa_buttons_become_a_button_template() -> None:
    response = {
        "text": "¿Cómo prefieres continuar?",
        "buttons": [
            {"title": "Hablar con alguien", "payload": "/request_human"},
            {"title": "Ver catálogo", "url": "https://tienda.example.ec/catalogo"},
            {"title": "Llamar", "type": "phone_number", "payload": "+593991234567"},
        ],
    }
    outgoing = build_messages(response)
    assert outgoing.messages == (
        {
            "attachment": {
                "type": "template",
                "payload": {
                    "template_type": "button",
                    "text": "¿Cómo prefieres continuar?",
                    "buttons": [
                        {"type": "postback", "title": "Hablar con alguien", "payload": "/request_human"},
                        {"type": "web_url", "title": "Ver catálogo", "url": "https://tienda.example.ec/catalogo"},
                        {"type": "phone_number", "title": "Llamar", "payload": "+593991234567"},
                    ],
                },
            }
        },
    )
    assert outgoing.warnings == ()
    assert_meta_accepts(outgoing)


def test_typed_buttons_keep_their_web_view_options() -> None:
    button = {
        "type": "web_url",
        "title": "Reservar",
        "url": "https://reservas.example.ec",
        "webview_height_ratio": "tall",
        "messenger_extensions": False,
    }
    outgoing = build_messages({"text": "Reserva aquí", "buttons": [button]})
    assert all_buttons(outgoing) == [button]
    assert_meta_accepts(outgoing)


def test_more_than_3_buttons_are_kept_in_continuation_templates() -> None:
    # Rasa 3.6 drops all of them here and sends only the text.
    titles = ["Horarios", "Ubicación", "Precios", "Promociones", "Envíos", "Hablar con alguien", "Otra cosa"]
    response = {
        "text": "¿Sobre qué quieres saber?",
        "buttons": [{"title": t, "payload": f"/{i}"} for i, t in enumerate(titles)],
    }
    outgoing = build_messages(response)
    templates = [template(message) for message in outgoing.messages]
    assert [payload["text"] for payload in templates] == [
        "¿Sobre qué quieres saber?",
        CONTINUATION_TEXT,
        CONTINUATION_TEXT,
    ]
    assert [len(payload["buttons"]) for payload in templates] == [3, 3, 1]
    assert [button["title"] for button in all_buttons(outgoing)] == titles
    assert any("7 buttons sent as 3 button templates" in warning for warning in outgoing.warnings)
    assert_meta_accepts(outgoing)


def test_continuation_text_can_be_chosen() -> None:
    buttons = [{"title": str(number), "payload": f"/n{number}"} for number in range(4)]
    outgoing = build_messages({"text": "Elige", "buttons": buttons}, continuation_text="More options:")
    assert template(outgoing.messages[1])["text"] == "More options:"
    with pytest.raises(ValueError):
        build_messages({"text": "Elige", "buttons": buttons}, continuation_text=" ")


def test_text_over_640_goes_first_and_the_template_carries_the_last_part() -> None:
    text = paragraph("Te cuento.", 1500) + "\n\n¿Quieres que te comunique con una persona?"
    outgoing = build_messages({"text": text, "buttons": [{"title": "Sí, por favor", "payload": "/request_human"}]})
    *leading, last = outgoing.messages
    assert leading and all("text" in message for message in leading)
    assert template(last)["text"] == "¿Quieres que te comunique con una persona?"
    assert non_space("".join(m["text"] for m in leading) + template(last)["text"]) == non_space(text)
    assert any("640" in warning for warning in outgoing.warnings)
    assert_meta_accepts(outgoing)


def test_the_template_carries_as_many_closing_paragraphs_as_fit() -> None:
    closing = "Tenemos envíos a todo el país.\n\n¿Te comunico con alguien del equipo?"
    text = paragraph("Te cuento.", 1500) + "\n\n" + closing
    outgoing = build_messages({"text": text, "buttons": [{"title": "Sí", "payload": "/request_human"}]})
    assert template(outgoing.messages[-1])["text"] == closing


def test_very_long_text_with_buttons_uses_full_text_messages_first() -> None:
    text = " ".join(paragraph(f"Parte {number}.", 900) for number in range(6))
    outgoing = build_messages({"text": text, "buttons": [{"title": "Listo", "payload": "/affirm"}]})
    for message in outgoing.messages:
        assert_within_limits(message)
    assert non_space("".join(m.get("text") or template(m)["text"] for m in outgoing.messages)) == non_space(text)
    assert_meta_accepts(outgoing)


def test_rasa_intent_payload_is_kept_as_the_postback_payload() -> None:
    payload = '/inform{"producto": "camiseta", "talla": "M"}'
    outgoing = build_messages({"text": "¿Confirmas?", "buttons": [{"title": "Confirmar", "payload": payload}]})
    assert all_buttons(outgoing) == [{"type": "postback", "title": "Confirmar", "payload": payload}]


def test_long_button_title_is_shortened_and_reported() -> None:
    outgoing = build_messages(
        {"text": "¿Algo más?", "buttons": [{"title": "Quiero hablar con una persona", "payload": "/request_human"}]}
    )
    assert all_buttons(outgoing) == [{"type": "postback", "title": "Quiero hablar con…", "payload": "/request_human"}]
    assert outgoing.warnings and "buttons[0].title" in outgoing.warnings[0]


def test_phone_number_separators_are_removed_and_reported() -> None:
    outgoing = build_messages(
        {"text": "Llámanos", "buttons": [{"title": "Llamar", "type": "phone_number", "payload": "+593 (99) 123-4567"}]}
    )
    assert all_buttons(outgoing)[0]["payload"] == "+593991234567"
    assert any("buttons[0].payload" in warning for warning in outgoing.warnings)
    assert_meta_accepts(outgoing)


def test_structured_payload_is_sent_as_json_and_reported() -> None:
    outgoing = build_messages({"text": "?", "buttons": [{"title": "Sí", "payload": {"intent": "affirm"}}]})
    assert all_buttons(outgoing)[0]["payload"] == '{"intent":"affirm"}'
    assert any("JSON" in warning for warning in outgoing.warnings)


def test_keys_messenger_rejects_are_dropped_and_reported() -> None:
    outgoing = build_messages({"text": "?", "buttons": [{"title": "Sí", "payload": "/affirm", "color": "red"}]})
    assert all_buttons(outgoing) == [{"type": "postback", "title": "Sí", "payload": "/affirm"}]
    assert any("color" in warning for warning in outgoing.warnings)


@pytest.mark.parametrize(
    ("response", "field"),
    [
        ({"text": "?", "buttons": [{"payload": "/affirm"}]}, "buttons[0].title"),
        ({"text": "?", "buttons": [{"title": "  ", "payload": "/affirm"}]}, "buttons[0].title"),
        ({"text": "?", "buttons": [{"title": "Sí"}]}, "buttons[0].payload"),
        ({"text": "?", "buttons": [{"title": "Sí", "payload": "/" + "x" * 1000}]}, "buttons[0].payload"),
        ({"text": "?", "quick_replies": [{"title": "Sí", "payload": "x" * 1001}]}, "quick_replies[0].payload"),
        (
            {"text": "?", "buttons": [{"title": "Llamar", "type": "phone_number", "payload": "0991234567"}]},
            "buttons[0].payload",
        ),
        ({"text": "?", "buttons": [{"title": "Web", "type": "web_url"}]}, "buttons[0].url"),
        ({"text": "?", "buttons": [{"title": "Web", "url": "javascript:alert(1)"}]}, "buttons[0].url"),
        ({"text": "?", "buttons": [{"title": "Juego", "type": "game_play"}]}, "buttons[0].type"),
        ({"text": "?", "buttons": {"title": "Sí"}}, "buttons"),
        ({"text": "?", "buttons": ["Sí"]}, "buttons[0]"),
        ({"buttons": [{"title": "Sí", "payload": "/affirm"}]}, "text"),
        (
            {"text": "?", "quick_replies": [{"title": "Ubicación", "content_type": "location"}]},
            "quick_replies[0].content_type",
        ),
        ({"image": "not a url"}, "image"),
        ({"attachment": {"url": "https://x.example.ec/a.pdf"}}, "attachment"),
        ({"elements": [{"title": "Solo título"}]}, "elements[0]"),
        ({"elements": [{"subtitle": "Sin título"}]}, "elements[0].title"),
        ({"elements": [{"title": "Camiseta", "buttons": [{"title": "Ver"}]}]}, "elements[0].buttons[0].payload"),
        (
            {"elements": [{"title": "Camiseta", "default_action": {"type": "postback"}}]},
            "elements[0].default_action.type",
        ),
    ],
)
def test_unrepresentable_input_names_the_field(response: dict[str, Any], field: str) -> None:
    with pytest.raises(OutgoingMessageError) as caught:
        build_messages(response)
    assert caught.value.field == field
    assert str(caught.value).startswith(field)


def test_outgoing_message_error_belongs_to_the_package_and_is_a_value_error() -> None:
    error = OutgoingMessageError("buttons[0].title", "is required")
    assert isinstance(error, ValueError)
    assert isinstance(error, MessengerError)


# --- build_messages: elements ---------------------------------------------------------------


def product(number: int, buttons: int = 1) -> dict[str, Any]:
    return {
        "title": f"Camiseta modelo {number}",
        "subtitle": "Algodón 100 %, tallas S a XL",
        "image_url": f"https://cdn.example.ec/camisetas/{number}.jpg",
        "buttons": [{"title": f"Opción {index}", "payload": f"/comprar_{number}_{index}"} for index in range(buttons)],
    }


def test_elements_become_a_generic_template() -> None:
    outgoing = build_messages({"elements": [product(1), product(2)]})
    (message,) = outgoing.messages
    payload = template(message)
    assert payload["template_type"] == "generic"
    assert [element["title"] for element in payload["elements"]] == ["Camiseta modelo 1", "Camiseta modelo 2"]
    assert payload["elements"][0]["buttons"] == [{"type": "postback", "title": "Opción 0", "payload": "/comprar_1_0"}]
    assert outgoing.warnings == ()
    assert_meta_accepts(outgoing)


def test_more_than_10_elements_become_several_carousels_in_order() -> None:
    outgoing = build_messages({"elements": [product(number) for number in range(23)]})
    payloads = [template(message) for message in outgoing.messages]
    assert [len(payload["elements"]) for payload in payloads] == [10, 10, 3]
    titles = [element["title"] for payload in payloads for element in payload["elements"]]
    assert titles == [f"Camiseta modelo {number}" for number in range(23)]
    assert any("23 elements sent as 3 generic templates" in warning for warning in outgoing.warnings)
    assert_meta_accepts(outgoing)


def test_an_elements_buttons_past_3_follow_its_carousel() -> None:
    outgoing = build_messages({"elements": [product(1, buttons=5), product(2, buttons=2)]})
    carousel, extra = outgoing.messages
    assert [len(element["buttons"]) for element in template(carousel)["elements"]] == [3, 2]
    assert template(extra)["template_type"] == "button"
    assert template(extra)["text"] == "Camiseta modelo 1"
    assert [button["payload"] for button in template(extra)["buttons"]] == ["/comprar_1_3", "/comprar_1_4"]
    assert any("elements[0].buttons" in warning for warning in outgoing.warnings)
    assert_meta_accepts(outgoing)


def test_long_element_title_and_subtitle_are_shortened() -> None:
    element = {
        "title": "Camiseta oficial de la selección, edición especial del campeonato, temporada 2024-2025",
        "subtitle": "Tela transpirable de secado rápido, disponible en todas las tallas, envío gratis a todo el país",
        "buttons": [{"title": "Comprar", "payload": "/buy"}],
    }
    outgoing = build_messages({"elements": [element]})
    (shown,) = template(outgoing.messages[0])["elements"]
    assert len(shown["title"]) <= limits.ELEMENT_TITLE_MAX_CHARS and shown["title"].endswith("…")
    assert len(shown["subtitle"]) <= limits.ELEMENT_SUBTITLE_MAX_CHARS and shown["subtitle"].endswith("…")
    assert {"elements[0].title", "elements[0].subtitle"} <= {warning.split(":")[0] for warning in outgoing.warnings}
    assert_meta_accepts(outgoing)


def test_rasa_shaped_element_is_normalized() -> None:
    element = {
        "title": "Encebollado",
        "subtitle": "El clásico",
        "image": "https://cdn.example.ec/encebollado.jpg",
        "default_action": {"url": "https://menu.example.ec/encebollado"},
        "buttons": [{"title": "Pedir", "payload": "/order"}, {"title": "Ver", "url": "https://menu.example.ec"}],
    }
    (message,) = build_messages({"elements": [element]}).messages
    assert template(message)["elements"] == [
        {
            "title": "Encebollado",
            "subtitle": "El clásico",
            "image_url": "https://cdn.example.ec/encebollado.jpg",
            "default_action": {"type": "web_url", "url": "https://menu.example.ec/encebollado"},
            "buttons": [
                {"type": "postback", "title": "Pedir", "payload": "/order"},
                {"type": "web_url", "title": "Ver", "url": "https://menu.example.ec"},
            ],
        }
    ]


# --- build_messages: media, attachments, custom, order -------------------------------------


def test_image_is_a_reusable_image_attachment() -> None:
    outgoing = build_messages({"image": "https://cdn.example.ec/promo.png"})
    assert outgoing.messages == (
        {"attachment": {"type": "image", "payload": {"url": "https://cdn.example.ec/promo.png", "is_reusable": True}}},
    )
    assert_meta_accepts(outgoing)


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://cdn.example.ec/menu.pdf", "file"),
        ("https://cdn.example.ec/video.MP4?v=2", "video"),
        ("https://cdn.example.ec/saludo.mp3", "audio"),
        ("https://cdn.example.ec/foto.jpeg", "image"),
        ("https://cdn.example.ec/descarga", "file"),
    ],
)
def test_attachment_url_becomes_a_media_attachment(url: str, kind: str) -> None:
    (message,) = build_messages({"attachment": url}).messages
    assert message == {"attachment": {"type": kind, "payload": {"url": url, "is_reusable": True}}}


def test_attachment_dict_passes_through() -> None:
    attachment = {"type": "file", "payload": {"attachment_id": "1857777774821032"}}
    outgoing = build_messages({"attachment": attachment})
    assert outgoing.messages == ({"attachment": attachment},)
    assert outgoing.messages[0]["attachment"] is not attachment
    assert_meta_accepts(outgoing)


def test_custom_message_passes_through_unchanged() -> None:
    custom = {
        "attachment": {
            "type": "template",
            "payload": {
                "template_type": "media",
                "elements": [{"media_type": "video", "url": "https://www.facebook.com/pagina/videos/1234567890"}],
            },
        }
    }
    outgoing = build_messages({"custom": custom})
    assert outgoing.messages == (custom,)
    assert outgoing.warnings == ()
    assert_meta_accepts(outgoing)


def test_custom_send_api_body_and_lists_are_unwrapped() -> None:
    first = {"text": "Primero"}
    second = {"text": "Segundo", "quick_replies": [{"content_type": "user_email"}]}
    outgoing = build_messages({"custom": [{"recipient": {"id": "9"}, "message": first}, second]})
    assert outgoing.messages == (first, second)


def test_custom_that_is_not_a_message_is_reported_not_sent() -> None:
    outgoing = build_messages({"text": "Te paso con alguien", "custom": {"handoff": "human"}})
    assert outgoing.messages == ({"text": "Te paso con alguien"},)
    assert outgoing.warnings == ("custom: not a Messenger message (no text or attachment: handoff); not sent",)


def test_messages_follow_rasas_order() -> None:
    response = {
        "elements": [product(1)],
        "attachment": "https://cdn.example.ec/menu.pdf",
        "image": "https://cdn.example.ec/promo.png",
        "custom": {"text": "Personalizado"},
        "text": "Hola",
    }
    outgoing = build_messages(response)
    kinds = [message.get("text") or message["attachment"]["type"] for message in outgoing.messages]
    assert kinds == ["Hola", "Personalizado", "image", "file", "template"]
    assert_meta_accepts(outgoing)


def test_quick_replies_before_a_passed_through_message_are_reported() -> None:
    outgoing = build_messages(
        {"text": "Hola", "custom": {"text": "Personalizado"}, "quick_replies": [{"title": "Ok", "payload": "/ok"}]}
    )
    assert "quick_replies" in outgoing.messages[0]
    assert outgoing.messages[1] == {"text": "Personalizado"}
    assert any("dismiss" in warning for warning in outgoing.warnings)


def test_input_is_not_modified() -> None:
    response = {"text": "x" * 3000, "buttons": [{"title": "Uno", "payload": "/uno"}] * 5, "elements": [product(1, 5)]}
    snapshot = repr(response)
    build_messages(response)
    assert repr(response) == snapshot


# --- build_messages: properties ------------------------------------------------------------

TITLE = st.text(min_size=1, max_size=30).filter(str.strip)
PAYLOAD = st.text(min_size=1, max_size=60).map(lambda text: "/" + text)
URL = st.sampled_from(["https://example.ec", "https://cdn.example.ec/a.jpg", "http://tienda.example.ec/x?y=1"])
POSTBACK = st.fixed_dictionaries({"title": TITLE, "payload": PAYLOAD})
WEB_URL = st.fixed_dictionaries({"title": TITLE, "url": URL})
PHONE = st.fixed_dictionaries(
    {"title": TITLE, "type": st.just("phone_number"), "payload": st.from_regex(r"\+[1-9][0-9]{6,12}", fullmatch=True)}
)
BUTTON = st.one_of(POSTBACK, WEB_URL, PHONE)
ELEMENT = st.fixed_dictionaries(
    {"title": TITLE, "buttons": st.lists(BUTTON, min_size=1, max_size=6)},
    optional={"subtitle": st.text(max_size=100), "image_url": URL},
)
RESPONSE = st.fixed_dictionaries(
    {},
    optional={
        "text": st.one_of(st.none(), TRICKY_TEXT, LONG_TEXT, LONG_TEXT),
        "quick_replies": st.one_of(st.lists(POSTBACK, max_size=4), st.lists(POSTBACK, min_size=12, max_size=18)),
        "buttons": st.one_of(st.just([]), st.lists(BUTTON, max_size=8)),
        "image": st.one_of(st.none(), URL),
        "elements": st.one_of(st.lists(ELEMENT, max_size=3), st.lists(ELEMENT, min_size=9, max_size=13)),
        "template_name": st.just("utter_algo"),
    },
)


def expected_error(response: dict[str, Any]) -> str | None:
    """The field build_messages must complain about for a generated response, if any."""
    has_text = bool((response.get("text") or "").strip())
    too_many_replies = len(response.get("quick_replies") or []) > limits.QUICK_REPLIES_MAX
    if (response.get("buttons") or too_many_replies) and not has_text:
        return "text"
    if response.get("quick_replies") and not (has_text or response.get("image") or response.get("elements")):
        return "quick_replies"
    return None


def response_payloads(response: dict[str, Any]) -> Iterator[str]:
    buttons = [*(response.get("buttons") or []), *(response.get("quick_replies") or [])]
    buttons += [button for element in response.get("elements") or [] for button in element["buttons"]]
    for button in buttons:
        yield button.get("url") or button["payload"]


def output_payloads(outgoing: Outgoing) -> Iterator[str]:
    for message in outgoing.messages:
        for button in buttons_of(message):
            yield button.get("url") or button["payload"]
        for reply in message.get("quick_replies", []):
            yield reply["payload"]


@given(response=RESPONSE)
@settings(max_examples=300, deadline=None)
def test_built_messages_always_fit_the_limits_and_lose_nothing(response: dict[str, Any]) -> None:
    field = expected_error(response)
    if field is not None:
        with pytest.raises(OutgoingMessageError) as caught:
            build_messages(response)
        assert caught.value.field == field
        return
    outgoing = build_messages(response)
    for message in outgoing.messages:
        assert_within_limits(message)
    assert_meta_accepts(outgoing)
    assert Counter(output_payloads(outgoing)) == Counter(response_payloads(response))
    text = response.get("text") or ""
    if text.strip():
        # The text comes first: as text messages, then (with buttons) as the first template's text.
        carried = []
        for message in outgoing.messages:
            if "text" not in message:
                if response.get("buttons") or len(response.get("quick_replies") or []) > limits.QUICK_REPLIES_MAX:
                    carried.append(template(message)["text"])
                break
            carried.append(message["text"])
        assert non_space("".join(carried)) == non_space(text)
