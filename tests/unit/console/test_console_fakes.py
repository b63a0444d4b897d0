"""The fakes the console's unit tests use keep the real services' semantics (see tests/support/console_fakes.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from bot.handoff_model import ConversationNotFound, ConversationState, PauseReason, ReplyRefused
from bot.knowledge_editor import DraftHasErrors, NothingToRollBack
from tests.support.console_fakes import FakeHandoff, FakeKnowledgeEditor
from tests.unit.console.conftest import PAGE, Clock


async def test_fake_handoff_pause_reply_resume_and_events(clock: Clock) -> None:
    handoff = FakeHandoff(clock)
    events = handoff.subscribe()
    pending = asyncio.ensure_future(events.__anext__())
    await asyncio.sleep(0)
    handoff.add_user_message(PAGE, "u1", "hola", at=clock() - timedelta(days=2))
    paused = await handoff.pause(PAGE, "u1", PauseReason.USER_ASKED, "bot")
    assert (await pending).kind == "paused"
    assert paused.state is ConversationState.PAUSED
    assert (await handoff.pause(PAGE, "u1", PauseReason.BOT_FAILED, "bot")).paused_reason is PauseReason.USER_ASKED
    await handoff.reply_as_agent(paused.id, "maria", "Hola")
    assert handoff.sent[-1]["tag"] == "HUMAN_AGENT"
    clock.advance(days=6)
    with pytest.raises(ReplyRefused) as refused:
        await handoff.reply_as_agent(paused.id, "maria", "¿Sigue ahí?")
    assert refused.value.reason_code == "human_agent_window_expired"
    resumed = await handoff.resume(paused.id, "maria", "Resuelto")
    assert resumed.state is ConversationState.BOT and handoff.closing_notes[paused.id] == "Resuelto"
    assert [c.id for c in await handoff.paused_conversations()] == []
    with pytest.raises(ConversationNotFound):
        await handoff.get(f"{PAGE}:nadie")
    await events.aclose()


def test_fake_knowledge_editor_publish_and_rollback(clock: Clock) -> None:
    editor = FakeKnowledgeEditor(clock)
    bad = editor.upload("m.csv", b"id,preguntas,respuesta\nx,hola,\n", "ed")
    assert not bad.ok and bad.issues[0].row == 2
    with pytest.raises(DraftHasErrors):
        editor.publish(bad.id, "ed")
    with pytest.raises(NothingToRollBack):
        editor.rollback("ed")
    good = editor.upload("m.csv", b"id,preguntas,respuesta\nhorario,horario de atencion,De 8 a 18\n", "ed")
    assert editor.publish(good.id, "ed").id == "v1" and editor.publish(good.id, "ed").id == "v2"
    assert editor.try_question("horario de atencion", None).live == editor.try_question(
        "horario de atencion", good.id).draft
    assert editor.rollback("ed").id == "v1" and editor.status().live.id == "v1"  # type: ignore[union-attr]
