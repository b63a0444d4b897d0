"""Custom actions, tested the rasa-sdk way: a Tracker from literals, a CollectingDispatcher."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import ActionExecuted, ConversationPaused, SessionStarted, SlotSet, UserUttered
from rasa_sdk.executor import CollectingDispatcher

from actions import handoff
from actions.handoff import (
    FAILURES_SLOT,
    HANDOFF_TEXTS,
    ActionHandoff,
    HandoffTrigger,
    answered,
    decide_after_no_answer,
    no_answer,
    page_of,
)
from actions.knowledge import (
    NO_ANSWER_TEXTS,
    ActionKnowledgeAnswer,
    Fallback,
    count_previous_runs,
    did_you_mean_message,
    entry_payload,
    fallback_declined,
    recent_turns,
    short_title,
)
from actions.session import AUTOMATION_DISCLOSURE, ActionSessionStart, slots_to_carry_over
from core.settings import Settings, load_settings
from handoff.model import PauseReason
from knowledge_matrix.live import Lookup
from knowledge_matrix.llm.fake import FakeLLMClient, ScriptedReply
from knowledge_matrix.llm.prompt import NO_ANSWER
from knowledge_matrix.llm.settings import LLMSettings
from knowledge_matrix.matrix import Button, Entry, QuickReply
from knowledge_matrix.retrieval import Hit, Verdict

MESSENGER_QUICK_REPLY_TITLE_LIMIT = 20
MESSENGER_TEXT_LIMIT = 2000

DOMAIN: dict[str, Any] = {
    "intents": [],
    "entities": [],
    "slots": {},
    "responses": {},
    "actions": ["action_knowledge_answer", "action_session_start"],
    "forms": {},
    "session_config": {"session_expiration_time": 60, "carry_over_slots_to_new_session": True},
}


class RecordingNotifier:
    """The app's side of a handoff, recorded instead of called over HTTP."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, PauseReason, str]] = []

    async def pause(self, page_id: str, user_id: str, reason: PauseReason, paused_by: str) -> None:
        self.calls.append((page_id, user_id, reason, paused_by))


# Monday 2026-11-23 14:00 UTC is 09:00 in Guayaquil (UTC-5); Saturday 2026-11-28 20:00 UTC is 15:00 there.
MONDAY_MORNING = datetime(2026, 11, 23, 14, 0, tzinfo=timezone.utc)
SATURDAY_AFTERNOON = datetime(2026, 11, 28, 20, 0, tzinfo=timezone.utc)


def handoff_settings(**env: str) -> Settings:
    return load_settings({"BUSINESS_HOURS": "lun-vie 08:00-18:00; sáb 09:00-13:00", **env})


@pytest.fixture
def notifier(monkeypatch: pytest.MonkeyPatch) -> RecordingNotifier:
    """Every handoff in these tests (the knowledge answer's too) tells this fake, never the network."""
    recording = RecordingNotifier()
    trigger = HandoffTrigger(handoff_settings(), recording, clock=lambda: MONDAY_MORNING)
    monkeypatch.setattr(handoff, "_default", trigger)
    return recording


def user_event(text: str, page_id: str = "100000000000001") -> dict[str, Any]:
    """A user event as Rasa sends it to the action server, with the connector's metadata."""
    return {**UserUttered(text, parse_data=user_message(text)), "metadata": {"page_id": page_id, "kind": "message"}}


def user_message(text: str, intent: str = "nlu_fallback") -> dict[str, Any]:
    return {"text": text, "intent": {"name": intent, "confidence": 0.6}, "entities": []}


def make_tracker(
    events: list[dict[str, Any]] | None = None,
    latest_message: dict[str, Any] | None = None,
    slots: dict[str, Any] | None = None,
    paused: bool = False,
) -> Tracker:
    return Tracker(
        sender_id="1234567890",
        slots=slots or {},
        latest_message=latest_message or {},
        events=events or [],
        paused=paused,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


def assert_sendable_on_messenger(message: dict[str, Any]) -> None:
    assert message["text"] and message["text"].strip()
    assert len(message["text"]) <= MESSENGER_TEXT_LIMIT
    for reply in message.get("quick_replies") or []:
        assert 0 < len(reply["title"]) <= MESSENGER_QUICK_REPLY_TITLE_LIMIT, reply
        assert reply["payload"].startswith("/"), reply


# --- action_knowledge_answer -------------------------------------------------------

NO_KEY = Fallback(LLMSettings(), None)
SHIPPING = Entry(
    "envios",
    ("¿Hacen envíos a todo el país?", "¿Envían a provincias?"),
    "Sí, enviamos a todo Ecuador por Servientrega; llega en 2 a 3 días hábiles.",
)
PAYMENTS = Entry("pagos", ("¿Qué formas de pago aceptan?",), "Aceptamos transferencia y tarjeta de crédito.")
HOURS = Entry(
    "horario",
    ("¿Cuál es el horario de atención de la tienda?", "¿A qué hora abren?"),
    "Abrimos de lunes a sábado de 9:00 a 19:00.",
    quick_replies=(QuickReply("Formas de pago", "#pagos"), QuickReply("Agente", "/request_human"),
                   QuickReply("Envíos", "Envíos")),
    link="https://tienda.ec/horario",
    image="https://tienda.ec/local.jpg",
)


def hit(entry: Entry, score: float, matched_question: str | None = None) -> Hit:
    return Hit(entry=entry, score=score, fused=1.0, margin=0.5, matched_question=matched_question or entry.questions[0])


def found(kind: str, *hits: Hit, candidates: int | None = None) -> Lookup:
    chosen = hits[:1] if kind == "answer" else hits[: candidates or 3] if kind == "ambiguous" else ()
    return Lookup("0007", Verdict(kind, chosen), hits)  # type: ignore[arg-type]


class FakeKnowledge:
    """The live matrix's interface, answering from literals; records what was asked."""

    def __init__(self, result: Lookup | None = None, entries: tuple[Entry, ...] = (SHIPPING, PAYMENTS, HOURS)):
        self.result = result
        self.entries = {entry.id: entry for entry in entries}
        self.asked: list[str] = []

    async def lookup(self, question: str) -> Lookup | None:
        self.asked.append(question)
        return self.result

    async def entry(self, entry_id: str) -> Entry | None:
        return self.entries.get(entry_id)


def knowledge_action(result: Lookup | None = None, fallback: Fallback = NO_KEY) -> ActionKnowledgeAnswer:
    return ActionKnowledgeAnswer(knowledge=FakeKnowledge(result), fallback=fallback)


def with_key(client: FakeLLMClient) -> Fallback:
    return Fallback(LLMSettings(api_key="sk-test", timeout_seconds=1.0, max_retries=0), client)


async def test_a_confident_match_gets_the_entry_with_its_link_image_and_quick_replies() -> None:
    dispatcher = CollectingDispatcher()
    knowledge = FakeKnowledge(found("answer", hit(HOURS, 0.93), hit(PAYMENTS, 0.01)))
    tracker = make_tracker(latest_message=user_message("a q hora abren?"), slots={FAILURES_SLOT: 1})

    events = await ActionKnowledgeAnswer(knowledge=knowledge, fallback=NO_KEY).run(dispatcher, tracker, DOMAIN)

    assert knowledge.asked == ["a q hora abren?"]
    assert events == [SlotSet(FAILURES_SLOT, 0)], "an answer starts the count of misses again"
    [message] = dispatcher.messages
    assert message["text"] == "Abrimos de lunes a sábado de 9:00 a 19:00.\n\nhttps://tienda.ec/horario"
    assert message["image"] == "https://tienda.ec/local.jpg"
    assert message["quick_replies"] == [
        {"title": "Formas de pago", "payload": '/ask_knowledge{"entry_id":"pagos"}'},
        {"title": "Agente", "payload": "/request_human"},
        {"title": "Envíos", "payload": "Envíos"},
    ]
    assert message["buttons"] == []


async def test_buttons_become_rasa_buttons_and_an_entry_link_a_payload() -> None:
    entry = Entry(
        "planes", ("¿Qué planes tienen?",), "Tenemos el plan básico y el plan pro.",
        buttons=(Button("Ver planes", url="https://tienda.ec/planes"), Button("Plan pro", payload="#pagos"),
                 Button("Agente", payload="/request_human")),
        link="https://tienda.ec/planes",
    )
    dispatcher = CollectingDispatcher()

    await knowledge_action(found("answer", hit(entry, 0.9))).run(
        dispatcher, make_tracker(latest_message=user_message("planes?")), DOMAIN
    )

    [message] = dispatcher.messages
    assert message["text"] == "Tenemos el plan básico y el plan pro.\n\nhttps://tienda.ec/planes"
    assert message["buttons"] == [
        {"type": "web_url", "title": "Ver planes", "url": "https://tienda.ec/planes"},
        {"type": "postback", "title": "Plan pro", "payload": '/ask_knowledge{"entry_id":"pagos"}'},
        {"type": "postback", "title": "Agente", "payload": "/request_human"},
    ]
    assert "quick_replies" not in message and message["image"] is None


async def test_a_tapped_entry_payload_answers_that_entry_without_searching() -> None:
    payload = entry_payload("pagos")
    knowledge = FakeKnowledge(found("no_match"))
    latest = {**user_message(payload, intent="ask_knowledge"),
              "entities": [{"entity": "entry_id", "value": "pagos", "extractor": "RegexMessageHandler"}]}
    dispatcher = CollectingDispatcher()

    events = await ActionKnowledgeAnswer(knowledge=knowledge, fallback=NO_KEY).run(
        dispatcher, make_tracker(latest_message=latest), DOMAIN
    )

    assert knowledge.asked == []
    assert [m["text"] for m in dispatcher.messages] == [PAYMENTS.answer]
    assert events == []


async def test_a_payload_for_an_entry_the_live_version_lost_is_an_honest_miss() -> None:
    latest = {**user_message(entry_payload("borrada"), intent="ask_knowledge"),
              "entities": [{"entity": "entry_id", "value": "borrada"}]}
    dispatcher = CollectingDispatcher()

    events = await knowledge_action().run(dispatcher, make_tracker(latest_message=latest), DOMAIN)

    assert dispatcher.messages[0]["text"] in NO_ANSWER_TEXTS
    assert events == [SlotSet(FAILURES_SLOT, 1)]


@pytest.mark.parametrize("entry_id", ["pagos", "envío_rápido", 'con "comillas"', "a@b", "x{y}"])
def test_an_entry_payload_is_read_back_by_rasas_regex_interpreter(entry_id: str) -> None:
    """The pattern of rasa 3.6 `YAMLStoryReader._regex_message_pattern` and its JSON entity parsing."""
    payload = entry_payload(entry_id)
    match = re.match(r"^/(?P<intent>[^{@]+)(?P<confidence>@[0-9.]+)?(?P<entities>{.+})?(?P<rest>.*)", payload)
    assert match is not None
    assert (match.group("intent"), match.group("rest")) == ("ask_knowledge", "")
    assert json.loads(match.group("entities")) == {"entry_id": entry_id}


async def test_an_ambiguous_message_asks_which_one_with_up_to_three_quick_replies() -> None:
    pause = Entry("pausar_chatbot", ("¿Cómo pauso el chatbot para atender yo a un cliente?", "¿Cómo apago el bot?"),
                  "Use Pausar el Chatbot.")
    assign = Entry("asignar", ("¿Cómo asigno una conversación a un agente de ventas?",), "Use Asignar.")
    close = Entry("cerrar", ("¿Cómo cierro una conversación terminada?",), "Use Cerrar.")
    hits = (hit(pause, 0.45, pause.questions[0]), hit(assign, 0.3), hit(close, 0.22), hit(SHIPPING, 0.21))
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(latest_message=user_message("como pauso"), slots={FAILURES_SLOT: 1})

    events = await knowledge_action(found("ambiguous", *hits)).run(dispatcher, tracker, DOMAIN)

    assert events == [], "neither an answer nor a miss"
    [message] = dispatcher.messages
    assert message["text"].splitlines() == [
        "¿Quisiste decir…?",
        "• ¿Cómo apago el bot?",
        "• ¿Cómo asigno una conversación a un agente de ventas?",
        "• ¿Cómo cierro una conversación terminada?",
    ]
    assert message["quick_replies"] == [
        {"title": "Cómo apago el bot", "payload": '/ask_knowledge{"entry_id":"pausar_chatbot"}'},
        {"title": "Cómo asigno…", "payload": '/ask_knowledge{"entry_id":"asignar"}'},
        {"title": "Cómo cierro…", "payload": '/ask_knowledge{"entry_id":"cerrar"}'},
        {"title": "Hablar con un agente", "payload": "/request_human"},
    ]
    assert_sendable_on_messenger(message)


@pytest.mark.parametrize(
    ("question", "title"),
    [
        ("¿A qué hora abren?", "A qué hora abren"),
        ("¿Cuánto tiempo tarda la implementación?", "Cuánto tiempo tarda…"),
        ("¿Cómo pauso el chatbot?", "Pauso el chatbot"),
        ("¿Qué son los mensajes de etiqueta?", "Mensajes de etiqueta"),
        ("¿Cómo asigno una conversación a un agente?", "Cómo asigno…"),
        ("Supercalifragilisticoespialidoso", "Supercalifragilisti…"),
        ("¡hola!", "Hola"),
    ],
)
def test_candidate_titles_fit_messenger_and_end_on_a_meaningful_word(question: str, title: str) -> None:
    assert short_title(question) == title
    assert len(short_title(question)) <= MESSENGER_QUICK_REPLY_TITLE_LIMIT


def test_two_candidates_that_shorten_alike_are_numbered() -> None:
    first = Entry("a", ("¿Cómo configuro las respuestas rápidas?",), "A.")
    second = Entry("b", ("¿Cómo configuro las respuestas privadas?",), "B.")
    message = did_you_mean_message([hit(first, 0.4), hit(second, 0.3)])
    titles = [reply["title"] for reply in message["quick_replies"]]
    assert titles[:2] == ["1. Cómo configuro…", "2. Cómo configuro…"]


async def test_no_match_asks_the_gpt_fallback_with_the_best_entries_and_the_conversation() -> None:
    client = FakeLLMClient(["Sí, enviamos a todo Ecuador por Servientrega y llega en 2 a 3 días hábiles."])
    history = [
        SessionStarted(),
        user_event("hola"),
        {"event": "bot", "text": "¡Buenas! Cuéntame, ¿en qué te ayudo?", "timestamp": None},
        user_event("/request_human"),
        user_event("mandan a Loja?"),
    ]
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(history, latest_message=user_message("mandan a Loja?"))

    events = await knowledge_action(found("no_match", hit(SHIPPING, 0.1), hit(PAYMENTS, 0.01)),
                                    with_key(client)).run(dispatcher, tracker, DOMAIN)

    assert [m["text"] for m in dispatcher.messages] == [
        "Sí, enviamos a todo Ecuador por Servientrega y llega en 2 a 3 días hábiles."
    ]
    assert events == []
    [call] = client.calls
    prompt = call.messages[-1]["content"]
    assert SHIPPING.answer in prompt and PAYMENTS.answer in prompt
    assert "¡Buenas! Cuéntame" in prompt and "request_human" not in prompt
    assert "mandan a Loja?" in prompt


async def test_when_the_gpt_fallback_declines_the_conversation_goes_to_a_person_at_once(
    notifier: RecordingNotifier,
) -> None:
    client = FakeLLMClient([NO_ANSWER])
    dispatcher = CollectingDispatcher()
    tracker = make_tracker([user_event("tienen sucursal en Loja?")], latest_message=user_message("tienen sucursal?"))

    events = await knowledge_action(found("no_match", hit(SHIPPING, 0.1)), with_key(client)).run(
        dispatcher, tracker, DOMAIN
    )

    assert len(client.calls) == 1
    assert ConversationPaused() in events
    assert [m["text"] for m in dispatcher.messages] == [HANDOFF_TEXTS[PauseReason.LLM_DECLINED]]
    assert [call[2] for call in notifier.calls] == [PauseReason.LLM_DECLINED]


async def test_an_ungrounded_gpt_answer_is_not_sent() -> None:
    client = FakeLLMClient(["Sí, el envío a Loja cuesta $4.99 y llega mañana."])
    dispatcher = CollectingDispatcher()

    events = await knowledge_action(found("no_match", hit(SHIPPING, 0.1)), with_key(client)).run(
        dispatcher, make_tracker([user_event("envio a loja?")], latest_message=user_message("envio a loja?")), DOMAIN
    )

    assert "4.99" not in " ".join(str(m["text"]) for m in dispatcher.messages)
    assert ConversationPaused() in events, "a reply we cannot trust counts as the fallback declining"


async def test_without_a_key_no_match_goes_straight_to_offering_a_person() -> None:
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(latest_message=user_message("cuanto cuesta el plan"))

    events = await knowledge_action(found("no_match", hit(SHIPPING, 0.1))).run(dispatcher, tracker, DOMAIN)

    assert events == [SlotSet("consecutive_failures", 1)], "one answer not found, counted towards a handoff"
    [message] = dispatcher.messages
    assert_sendable_on_messenger(message)
    assert message["text"] in NO_ANSWER_TEXTS
    assert message["quick_replies"] == [
        {"title": "Hablar con un agente", "payload": "/request_human"},
        {"title": "No, gracias", "payload": "/deny"},
    ]


async def test_a_gpt_fallback_that_times_out_counts_as_one_miss_not_a_handoff() -> None:
    client = FakeLLMClient([ScriptedReply(text="Tarde.", delay_seconds=5.0)])
    dispatcher = CollectingDispatcher()

    events = await knowledge_action(found("no_match", hit(SHIPPING, 0.1)), with_key(client)).run(
        dispatcher, make_tracker(latest_message=user_message("envian a loja?")), DOMAIN
    )

    assert events == [SlotSet(FAILURES_SLOT, 1)]
    assert dispatcher.messages[0]["text"] in NO_ANSWER_TEXTS


async def test_with_nothing_published_the_bot_says_so_honestly() -> None:
    client = FakeLLMClient(["no debería llamarse"])
    dispatcher = CollectingDispatcher()

    events = await knowledge_action(None, with_key(client)).run(
        dispatcher, make_tracker(latest_message=user_message("a que hora abren")), DOMAIN
    )

    assert client.calls == [], "no entries: nothing to ground an answer on"
    assert dispatcher.messages[0]["text"] in NO_ANSWER_TEXTS
    assert events == [SlotSet(FAILURES_SLOT, 1)]


@pytest.mark.parametrize(
    ("reason", "declined"),
    [("sentinel", True), ("ungrounded_amount", True), ("prompt_leak", True), ("llm_disabled", False),
     ("llm_timeout", False), ("injection_suspected", False), ("no_entries", False)],
)
def test_which_fallback_outcomes_count_as_declining(reason: str, declined: bool) -> None:
    assert fallback_declined(reason) is declined


def test_every_no_answer_text_is_honest_and_offers_a_person() -> None:
    for text in NO_ANSWER_TEXTS:
        assert len(text) <= MESSENGER_TEXT_LIMIT
        assert "todavía" in text.lower(), text
        assert "persona" in text.lower(), text
    assert len(set(NO_ANSWER_TEXTS)) == len(NO_ANSWER_TEXTS)


async def test_knowledge_answer_varies_when_asked_again_in_the_same_session() -> None:
    first_turn = [
        SessionStarted(),
        ActionExecuted("action_listen"),
        UserUttered("a que hora abren", parse_data=user_message("a que hora abren")),
    ]
    second_turn = [
        *first_turn,
        ActionExecuted("action_knowledge_answer"),
        ActionExecuted("action_listen"),
        UserUttered("tienen envios", parse_data=user_message("tienen envios")),
    ]
    first, second = CollectingDispatcher(), CollectingDispatcher()

    await knowledge_action().run(first, make_tracker(first_turn, user_message("a que hora abren")), DOMAIN)
    await knowledge_action().run(second, make_tracker(second_turn, user_message("tienen envios")), DOMAIN)

    assert first.messages[0]["text"] != second.messages[0]["text"]


def test_previous_runs_are_counted_only_in_the_current_session() -> None:
    events = [
        ActionExecuted("action_knowledge_answer"),
        ActionExecuted("action_knowledge_answer"),
        SessionStarted(),
        ActionExecuted("action_listen"),
        ActionExecuted("action_knowledge_answer"),
        ActionExecuted("utter_greet"),
    ]

    assert count_previous_runs(events) == 1
    assert count_previous_runs([]) == 0


def test_the_fallback_sees_the_last_turns_of_this_session_without_payloads() -> None:
    events = [
        user_event("mensaje de la sesión anterior"),
        SessionStarted(),
        *[user_event(f"pregunta {n}") for n in range(8)],
        user_event('/ask_knowledge{"entry_id":"pagos"}'),
        {"event": "bot", "text": "Aceptamos tarjeta.", "timestamp": None},
        {"event": "bot", "text": None, "timestamp": None},
    ]
    turns = recent_turns(events, limit=3)
    assert [(turn.role, turn.text) for turn in turns] == [
        ("user", "pregunta 6"), ("user", "pregunta 7"), ("bot", "Aceptamos tarjeta.")
    ]


@pytest.mark.parametrize("text", ["", "   "])
async def test_knowledge_answer_does_not_look_up_an_empty_message(text: str) -> None:
    knowledge = FakeKnowledge(found("answer", hit(HOURS, 0.9)))
    dispatcher = CollectingDispatcher()

    await ActionKnowledgeAnswer(knowledge=knowledge, fallback=NO_KEY).run(
        dispatcher, make_tracker(latest_message=user_message(text)), DOMAIN
    )

    assert knowledge.asked == []
    assert dispatcher.messages[0]["text"] in NO_ANSWER_TEXTS


def test_knowledge_answer_is_registered_under_its_domain_name() -> None:
    assert knowledge_action().name() == "action_knowledge_answer"


# --- action_session_start ----------------------------------------------------------


async def test_session_start_discloses_the_assistant_and_then_listens() -> None:
    dispatcher = CollectingDispatcher()

    events = await ActionSessionStart().run(dispatcher, make_tracker(), DOMAIN)

    assert events[0] == SessionStarted()
    assert events[-1] == ActionExecuted("action_listen")
    assert [m["text"] for m in dispatcher.messages] == [AUTOMATION_DISCLOSURE]
    assert_sendable_on_messenger(dispatcher.messages[0])
    assert "automático" in AUTOMATION_DISCLOSURE
    assert "«agente»" in AUTOMATION_DISCLOSURE


async def test_session_start_carries_over_the_last_value_of_each_slot_in_the_order_set() -> None:
    previous_session = [
        SessionStarted(),
        ActionExecuted("action_listen"),
        SlotSet("customer_name", "Ana"),
        SlotSet("city", "Quito"),
        SlotSet("customer_name", "Ana María"),
    ]
    dispatcher = CollectingDispatcher()

    events = await ActionSessionStart().run(dispatcher, make_tracker(previous_session), DOMAIN)

    assert events == [
        SessionStarted(),
        SlotSet("city", "Quito"),
        SlotSet("customer_name", "Ana María"),
        ActionExecuted("action_listen"),
    ]


async def test_session_start_carries_nothing_over_when_the_domain_says_not_to() -> None:
    domain = {**DOMAIN, "session_config": {"carry_over_slots_to_new_session": False}}
    tracker = make_tracker([SlotSet("city", "Quito")])

    events = await ActionSessionStart().run(CollectingDispatcher(), tracker, domain)

    assert events == [SessionStarted(), ActionExecuted("action_listen")]


def test_slots_from_older_sessions_restarts_and_resets_are_not_carried_over() -> None:
    assert slots_to_carry_over([SlotSet("a", 1), SessionStarted(), SlotSet("b", 2)]) == [SlotSet("b", 2)]
    assert slots_to_carry_over([SlotSet("a", 1), {"event": "restart", "timestamp": None}]) == []
    assert slots_to_carry_over([SlotSet("a", 1), {"event": "reset_slots", "timestamp": None}]) == []


async def test_session_start_ignores_slots_from_a_rewound_turn() -> None:
    events = [
        ActionExecuted("action_listen"),
        UserUttered("hola"),
        SlotSet("city", "Cuenca"),
        {"event": "rewind", "timestamp": None},
    ]

    result = await ActionSessionStart().run(CollectingDispatcher(), make_tracker(events), DOMAIN)

    assert SlotSet("city", "Cuenca") not in result


def test_session_start_overrides_rasas_default_action() -> None:
    assert ActionSessionStart().name() == "action_session_start"


# --- action_handoff ----------------------------------------------------------------


async def test_handoff_says_a_person_will_answer_pauses_and_tells_the_app(notifier: RecordingNotifier) -> None:
    dispatcher = CollectingDispatcher()
    tracker = make_tracker([user_event("quiero hablar con un agente", page_id="222")])

    events = await ActionHandoff().run(dispatcher, tracker, DOMAIN)

    assert events == [ConversationPaused(), ActionExecuted("action_listen")]
    assert [m["text"] for m in dispatcher.messages] == [HANDOFF_TEXTS[PauseReason.USER_ASKED]]
    assert notifier.calls == [("222", "1234567890", PauseReason.USER_ASKED, "bot")]


async def test_outside_business_hours_the_user_also_gets_the_hours() -> None:
    recording = RecordingNotifier()
    trigger = HandoffTrigger(handoff_settings(), recording, clock=lambda: SATURDAY_AFTERNOON)
    dispatcher = CollectingDispatcher()

    events = await ActionHandoff(trigger).run(dispatcher, make_tracker([user_event("agente")]), DOMAIN)

    assert ConversationPaused() in events
    texts = [m["text"] for m in dispatcher.messages]
    assert texts[0] == HANDOFF_TEXTS[PauseReason.USER_ASKED]
    assert texts[1].startswith("Fuera de Horario")
    assert "lunes a viernes de 08:00 a 18:00; sábado de 09:00 a 13:00" in texts[1]
    for message in dispatcher.messages:
        assert_sendable_on_messenger(message)


async def test_the_away_message_is_configurable() -> None:
    settings = handoff_settings(AWAY_MESSAGE="Fuera de Horario. Atendemos {horario}.")
    trigger = HandoffTrigger(settings, RecordingNotifier(), clock=lambda: SATURDAY_AFTERNOON)
    dispatcher = CollectingDispatcher()

    await ActionHandoff(trigger).run(dispatcher, make_tracker([user_event("agente")]), DOMAIN)

    assert dispatcher.messages[1]["text"] == (
        "Fuera de Horario. Atendemos lunes a viernes de 08:00 a 18:00; sábado de 09:00 a 13:00."
    )


async def test_without_business_hours_there_is_never_an_away_message() -> None:
    trigger = HandoffTrigger(load_settings({}), RecordingNotifier(), clock=lambda: SATURDAY_AFTERNOON)
    dispatcher = CollectingDispatcher()

    await ActionHandoff(trigger).run(dispatcher, make_tracker([user_event("agente")]), DOMAIN)

    assert len(dispatcher.messages) == 1


async def test_a_handoff_starts_the_count_of_misses_again(notifier: RecordingNotifier) -> None:
    tracker = make_tracker([user_event("agente")], slots={FAILURES_SLOT: 1})

    events = await ActionHandoff().run(CollectingDispatcher(), tracker, DOMAIN)

    assert events == [SlotSet(FAILURES_SLOT, 0), ConversationPaused(), ActionExecuted("action_listen")]


def test_every_handoff_text_fits_messenger_and_promises_a_person_not_an_instant_answer() -> None:
    for text in HANDOFF_TEXTS.values():
        assert_sendable_on_messenger({"text": text})
        assert "te comunico con una persona del equipo" in text.lower()
        assert "apenas pueda" in text
    assert set(HANDOFF_TEXTS) == {PauseReason.USER_ASKED, PauseReason.BOT_FAILED, PauseReason.LLM_DECLINED}


def test_the_page_comes_from_the_latest_user_message_or_the_only_page() -> None:
    settings = load_settings({})
    tracker = make_tracker([user_event("hola", page_id="111"), user_event("agente", page_id="222")])
    assert page_of(tracker, settings) == "222"
    assert page_of(make_tracker(), settings) == "100000000000001"
    two_pages = load_settings({"BOT_ENV": "test", "MESSENGER_PAGES": "111:tokenA,222:tokenB",
                               "GRAPH_API_BASE": "http://127.0.0.1:9"})
    assert page_of(make_tracker(), two_pages) is None


def test_handoff_is_registered_under_its_domain_name() -> None:
    assert ActionHandoff().name() == "action_handoff"


# --- answers not found in a row ----------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "limit", "declined", "expected"),
    [
        (0, 2, False, (1, False, None)),
        (1, 2, False, (0, True, PauseReason.BOT_FAILED)),
        (0, 1, False, (0, True, PauseReason.BOT_FAILED)),
        (2, 3, False, (0, True, PauseReason.BOT_FAILED)),
        (5, 2, False, (0, True, PauseReason.BOT_FAILED)),
        (0, 2, True, (0, True, PauseReason.LLM_DECLINED)),
    ],
)
def test_when_misses_hand_off(
    previous: int, limit: int, declined: bool, expected: tuple[int, bool, PauseReason | None]
) -> None:
    decision = decide_after_no_answer(previous, limit, declined)
    assert (decision.failures, decision.hand_off, decision.reason) == expected


def test_no_answer_reads_the_count_from_the_slot() -> None:
    assert no_answer(make_tracker(slots={FAILURES_SLOT: None}), max_failures=2).events == [SlotSet(FAILURES_SLOT, 1)]
    assert no_answer(make_tracker(slots={FAILURES_SLOT: 1.0}), max_failures=2).hand_off
    assert no_answer(make_tracker(), llm_declined=True, max_failures=5).reason is PauseReason.LLM_DECLINED
    assert answered(make_tracker(slots={FAILURES_SLOT: 1})) == [SlotSet(FAILURES_SLOT, 0)]
    assert answered(make_tracker(slots={FAILURES_SLOT: 0})) == []


async def test_the_second_miss_in_a_row_hands_off(notifier: RecordingNotifier) -> None:
    """What action_knowledge_answer does with a miss: `no_answer` decides, `handoff_events` hands off."""
    dispatcher = CollectingDispatcher()
    tracker = make_tracker([user_event("tienen envios")], slots={FAILURES_SLOT: 1})

    decision = no_answer(tracker, max_failures=2)
    assert decision.hand_off and decision.reason is PauseReason.BOT_FAILED
    events = await handoff.handoff_events(dispatcher, tracker, decision.reason)

    assert events == [SlotSet(FAILURES_SLOT, 0), ConversationPaused(), ActionExecuted("action_listen")]
    assert [m["text"] for m in dispatcher.messages] == [HANDOFF_TEXTS[PauseReason.BOT_FAILED]]
    assert notifier.calls == [("100000000000001", "1234567890", PauseReason.BOT_FAILED, "bot")]


async def test_a_declined_gpt_answer_hands_off_at_once(notifier: RecordingNotifier) -> None:
    dispatcher = CollectingDispatcher()
    tracker = make_tracker([user_event("cual es la capital de Mongolia")])

    decision = no_answer(tracker, llm_declined=True)
    assert decision.reason is not None
    events = await handoff.handoff_events(dispatcher, tracker, decision.reason)

    assert ConversationPaused() in events
    assert [m["text"] for m in dispatcher.messages] == [HANDOFF_TEXTS[PauseReason.LLM_DECLINED]]
    assert [call[2] for call in notifier.calls] == [PauseReason.LLM_DECLINED]


# --- a new session while a person holds the conversation ---------------------------


async def test_a_session_started_while_paused_stays_paused_and_says_nothing() -> None:
    dispatcher = CollectingDispatcher()
    previous = [SessionStarted(), ActionExecuted("action_listen"), SlotSet("city", "Quito"), ConversationPaused()]

    events = await ActionSessionStart().run(dispatcher, make_tracker(previous, paused=True), DOMAIN)

    assert dispatcher.messages == [], "no disclosure in the middle of a person's conversation"
    assert events == [SessionStarted(), SlotSet("city", "Quito"), ConversationPaused(), ActionExecuted("action_listen")]
