"""The knowledge matrix through Messenger against the real stack: signed webhooks in, the Send API sandbox out.

The stack publishes the demo matrix when it starts (`bot/stack.py`). Publishing another matrix with
`python -m knowledge_matrix publish` switches what the running action server answers with, without a
restart; `rollback` switches back. The shared stack is left serving the version it had.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from actions.handoff import HANDOFF_TEXTS
from actions.knowledge import NO_ANSWER_TEXTS, entry_payload
from bot.stack import Stack
from core.settings import ROOT
from handoff.model import PauseReason
from knowledge_matrix.publish import activate, read_pointer
from sandbox import simulate
from tests.support.fake_openai import FAKE_API_KEY, RunningFakeOpenAI, serve_fake_openai
from tests.support.stack import PAGE_ID, Messenger, start_stack

CONNECT_QUESTION = "oe como conecto mi fan page de facebook?"  # informal: no accents, "oe", "fan page"
DEMO_CONNECT_ANSWER = "Para conectar el chatbot a Facebook:"
DEMO_AGENCY_ANSWER = "Para aprobar a Ecuabots como agencia"
NEW_CONNECT_ANSWER = "Versión nueva: para conectar el bot, escríbanos a soporte@ecuabots.com"
UNANSWERABLE = "¿tienen sucursal en Loja con parqueadero para camiones?"

NEW_MATRIX = (
    "id,preguntas,respuesta\n"
    "conectar_facebook,¿Cómo conecto el chatbot a mi página de Facebook? | ¿Qué necesito para poner el bot en mi fan "
    f'page?,"{NEW_CONNECT_ANSWER} con el enlace de su fan page y lo conectamos el mismo día."\n'
    "horario,¿A qué hora atienden? | ¿Cuál es el horario de atención?,Atendemos de lunes a viernes de 8:00 a 17:00.\n"
    "pagos,¿Qué formas de pago aceptan? | ¿Puedo pagar con tarjeta?,Aceptamos transferencia y tarjeta de crédito.\n"
)
INVALID_MATRIX = "id,preguntas,respuesta\nconectar_facebook,¿Cómo conecto el bot?,\n"


def new_user() -> str:
    return f"psid-{uuid.uuid4().hex[:12]}"


def knowledge_cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m knowledge_matrix …` as an operator runs it, on the stack's data directory."""
    return subprocess.run(
        [sys.executable, "-m", "knowledge_matrix", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "BOT_DATA_DIR": str(stack.data_dir)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def ask(messenger: Messenger, text: str, expected_start: str, timeout: float = 60) -> dict[str, Any]:
    """A new user asks `text`; the reply whose text starts with `expected_start`."""
    user = new_user()
    assert messenger.say(user, text).status_code == 200
    return reply_starting(messenger, user, expected_start, timeout)


def reply_starting(messenger: Messenger, user: str, expected_start: str, timeout: float = 60) -> dict[str, Any]:
    def matching() -> list[dict[str, Any]]:
        return [reply for reply in messenger.replies(user) if reply.get("text", "").startswith(expected_start)]

    messenger.wait_for(lambda: bool(matching()), timeout, f"a reply starting {expected_start!r}; got "
                       f"{messenger.texts(user)}")
    return matching()[-1]


@pytest.fixture
def keep_live_version(stack: Stack) -> Iterator[None]:
    """The shared stack serves the same version after the test as before it."""
    before = read_pointer(stack.data_dir)
    yield
    after = read_pointer(stack.data_dir)
    if before is not None and (after is None or after.version != before.version):
        activate(stack.data_dir, before.version, datetime.now(UTC), by="tests")


def test_a_question_in_informal_spanish_gets_the_demo_answer_and_its_quick_replies_work(
    messenger: Messenger,
) -> None:
    user = new_user()
    assert messenger.say(user, CONNECT_QUESTION).status_code == 200
    reply = reply_starting(messenger, user, DEMO_CONNECT_ANSWER)
    options = {option["title"]: option["payload"] for option in reply["quick_replies"]}
    assert options["Aceptar invitación"] == entry_payload("invitacion_agencia")

    tap = simulate.quick_reply(PAGE_ID, user, "Aceptar invitación", options["Aceptar invitación"])
    assert messenger.deliver(simulate.webhook_body(PAGE_ID, [tap])).status_code == 200
    reply_starting(messenger, user, DEMO_AGENCY_ANSWER)


def test_an_unsure_match_asks_which_one_and_the_choice_is_answered(messenger: Messenger) -> None:
    user = new_user()
    # Not one of the matrix's questions, and not sure enough to answer ("quiero pausar el bot" and, with the query
    # adapter, "el bot se puede apagar?" are answered directly).
    assert messenger.say(user, "el bot se puede parar?").status_code == 200
    reply = reply_starting(messenger, user, "¿Quisiste decir…?")
    options = {option["payload"]: option["title"] for option in reply["quick_replies"]}
    assert entry_payload("pausar_chatbot") in options
    assert all(len(title) <= 20 for title in options.values())
    assert options["/request_human"] == "Hablar con un agente"

    payload = entry_payload("pausar_chatbot")
    tap = simulate.quick_reply(PAGE_ID, user, options[payload], payload)
    assert messenger.deliver(simulate.webhook_body(PAGE_ID, [tap])).status_code == 200
    reply_starting(messenger, user, "En el módulo Mensajes, dentro de la conversación, use la opción Pausar")


def test_without_a_gpt_key_an_unknown_question_gets_the_honest_answer_and_the_offer(messenger: Messenger) -> None:
    user = new_user()
    assert messenger.say(user, UNANSWERABLE).status_code == 200
    messenger.wait_for(lambda: any(t in NO_ANSWER_TEXTS for t in messenger.texts(user)), 60, "the honest no-answer")
    reply = next(r for r in messenger.replies(user) if r.get("text") in NO_ANSWER_TEXTS)
    assert [option["payload"] for option in reply["quick_replies"]] == ["/request_human", "/deny"]


def test_publish_switches_the_running_bot_rollback_switches_back_and_an_invalid_matrix_is_refused(
    messenger: Messenger, stack: Stack, tmp_path: Path, keep_live_version: None
) -> None:
    processes = {name: process.pid for name, process in stack.processes.items()}
    ask(messenger, CONNECT_QUESTION, DEMO_CONNECT_ANSWER)
    (tmp_path / "nueva.csv").write_text(NEW_MATRIX, encoding="utf-8")
    (tmp_path / "mala.csv").write_text(INVALID_MATRIX, encoding="utf-8")

    started = time.monotonic()
    published = knowledge_cli(stack, "publish", str(tmp_path / "nueva.csv"), "--by", "tests")
    publish_seconds = time.monotonic() - started
    assert published.returncode == 0, published.stderr
    assert "Publicada la versión" in published.stdout
    ask(messenger, CONNECT_QUESTION, NEW_CONNECT_ANSWER)
    serving_seconds = time.monotonic() - started
    ask(messenger, "a q hora atienden?", "Atendemos de lunes a viernes de 8:00 a 17:00.")

    rolled_back = knowledge_cli(stack, "rollback", "--by", "tests")
    assert rolled_back.returncode == 0, rolled_back.stderr
    ask(messenger, CONNECT_QUESTION, DEMO_CONNECT_ANSWER)

    refused = knowledge_cli(stack, "publish", str(tmp_path / "mala.csv"))
    assert refused.returncode == 1
    assert "fila 2, columna «respuesta»: falta la respuesta." in refused.stderr
    assert "la versión actual sigue respondiendo" in refused.stderr
    ask(messenger, CONNECT_QUESTION, DEMO_CONNECT_ANSWER)

    assert {name: process.pid for name, process in stack.processes.items()} == processes, "nothing restarted"
    assert all(process.poll() is None for process in stack.processes.values())
    print(f"\npublish CLI {publish_seconds:.1f} s; publish until the bot answered from it {serving_seconds:.1f} s")


# --- with the GPT fallback (its own stack, pointed at a local OpenAI-compatible fake) --------------------


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[RunningFakeOpenAI]:
    with serve_fake_openai() as running:
        yield running


@pytest.fixture(scope="module")
def llm_stack(openai_fake: RunningFakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from tests.conftest import require_or_skip
    from tests.support.stack import rasa_available

    require_or_skip(rasa_available(), "the Rasa environment (.venv-rasa; run `make install`)")
    env = {"LLM_API_KEY": FAKE_API_KEY, "LLM_BASE_URL": openai_fake.base_url, "LLM_TIMEOUT_SECONDS": "5"}
    running = start_stack(Path(tmp_path_factory.mktemp("llm-stack")), extra_env=env)
    yield running
    running.stop()


@pytest.fixture
def llm_messenger(llm_stack: Stack) -> Iterator[Messenger]:
    client = Messenger(llm_stack)
    yield client
    client.http.close()


def test_the_gpt_fallback_answers_from_the_matrix_or_hands_off_when_it_declines(
    llm_messenger: Messenger, openai_fake: RunningFakeOpenAI
) -> None:
    support = "Escríbanos a soporte@ecuabots.com y el equipo de soporte le ayudará."
    openai_fake.fake.queue_reply(support)
    answered = new_user()
    assert llm_messenger.say(answered, UNANSWERABLE).status_code == 200
    reply_starting(llm_messenger, answered, support)
    [request] = openai_fake.fake.chat_requests
    assert request.authorized
    prompt = request.messages[-1]["content"]
    assert "soporte@ecuabots.com" in prompt, "the best entries of the live version were the model's context"

    openai_fake.fake.queue_reply("NO_ANSWER")
    declined = new_user()
    assert llm_messenger.say(declined, UNANSWERABLE).status_code == 200
    llm_messenger.wait_for(
        lambda: HANDOFF_TEXTS[PauseReason.LLM_DECLINED] in llm_messenger.texts(declined), 60, "the handoff"
    )
