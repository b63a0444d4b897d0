"""What the console's unit tests read off the fakes besides the services' own answers (`sent`, `closing_notes`,
`drafts`, `versions`). Whether the fakes behave as the real services is the contract suites' job:
tests/integration/console/test_handoff_contract.py and test_knowledge_editor_contract.py."""

from __future__ import annotations

from datetime import timedelta

from handoff.model import PauseReason, conversation_id_of
from tests.support.console_fakes import FakeHandoff, FakeKnowledgeEditor
from tests.unit.console.conftest import PAGE, Clock


async def test_sent_holds_each_new_reply_as_the_outbox_sends_it_and_closing_notes_the_kept_note(clock: Clock) -> None:
    handoff = FakeHandoff(clock)
    handoff.add_user_message(PAGE, "u1", "hola", at=clock() - timedelta(days=2))
    await handoff.pause(PAGE, "u1", PauseReason.USER_ASKED, "bot")
    conversation_id = conversation_id_of(PAGE, "u1")
    answer = await handoff.reply_as_agent(conversation_id, "maria", "Hola", idempotency_key="k-1")
    await handoff.reply_as_agent(conversation_id, "maria", "Hola", idempotency_key="k-1")  # a repeat: not sent again
    assert handoff.sent == [{"recipient_id": "u1", "text": "Hola", "sender_name": "maria",
                             "messaging_type": answer["decision"]["messaging_type"], "tag": "HUMAN_AGENT"}]
    await handoff.resume(conversation_id, "maria", " Resuelto ")
    assert handoff.closing_notes == {conversation_id: "Resuelto"}


def test_drafts_and_versions_are_what_the_editor_holds(clock: Clock) -> None:
    editor = FakeKnowledgeEditor(clock)
    draft = editor.upload("m.csv", b"id,preguntas,respuesta\nhorario,horario de atencion,De 8 a 18\n", "ed")
    assert list(editor.drafts) == [draft.id] and editor.versions == []
    version = editor.publish(draft.id, "ed")
    assert [v.id for v, _entries in editor.versions] == [version.id]
