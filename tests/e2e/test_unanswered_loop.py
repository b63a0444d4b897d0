"""The editor's loop in a real browser (Debian's Chromium) against the whole stack (Rasa, the action server, the
app, the webhook process) of its own, grouping every second: a customer asks through the signed webhook what the
demo matrix cannot answer and gets the honest no-answer; the question appears in «Preguntas sin respuesta»; the
editor opens it, adds it to the first suggested entry in one step, reads the validation report and publishes; the
group shows as resolved, and the same question from another customer is then answered from the matrix with that
entry's answer.

Would catch: a miss the action server does not journal (or the app never groups), a suggestion button that makes no
draft, a publish that does not reach the running bot or does not resolve the group."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from actions.knowledge import NO_ANSWER_TEXTS
from bot.stack import DEMO_MATRIX, Stack
from knowledge_matrix.matrix import entries_from_sheet, read_sheet
from tests.conftest import require_or_skip
from tests.support.stack import Messenger, rasa_available, start_stack

QUESTION = "¿tienen sucursal en Loja con parqueadero para camiones?"
LIVE_TIMEOUT = 60_000
BUILD_TIMEOUT = 300_000  # a draft and a publish embed the whole demo matrix with the real models (2 shared cores)


@pytest.fixture(scope="module")
def loop_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own: it groups every second, and the matrix this test publishes serves no other test."""
    require_or_skip(rasa_available(), "the Rasa environment (.venv-rasa; run `make install`)")
    running = start_stack(Path(tmp_path_factory.mktemp("unanswered-stack")), extra_env={"ANSWERS_GROUP_SECONDS": "1"})
    yield running
    running.stop()


def test_a_miss_is_added_to_a_suggested_entry_published_and_then_answered(page: Any, loop_stack: Stack) -> None:
    stack = loop_stack
    messenger = Messenger(stack)
    answers = {entry.id: entry.answer for entry in entries_from_sheet(read_sheet(DEMO_MATRIX))}
    asked_first, asked_again = f"psid-{uuid.uuid4().hex[:12]}", f"psid-{uuid.uuid4().hex[:12]}"
    try:
        assert messenger.say(asked_first, QUESTION).status_code == 200
        messenger.wait_for(lambda: any(t in NO_ANSWER_TEXTS for t in messenger.texts(asked_first)), 90,
                           "the honest no-answer")

        page.goto(f"{stack.app_url}/console/login")
        page.fill("#username", "editor")
        page.fill("#password", "editor-demo")
        page.click("button[type=submit]")
        page.get_by_role("link", name="Preguntas sin respuesta").click()
        expect(page).to_have_url(f"{stack.app_url}/console/unanswered")
        row_link = page.locator("a.group-wording", has_text=QUESTION)
        for _ in range(60):  # grouped within a second or two: reload until it is listed
            if row_link.count():
                break
            page.wait_for_timeout(500)
            page.reload()
        expect(row_link).to_be_visible()
        expect(page.locator("tr", has=row_link).locator("td.people")).to_have_text("1")
        row_link.click()

        expect(page.locator("#group-wording")).to_have_text(QUESTION)
        expect(page.locator("#group-status")).to_have_text("Sin resolver")
        suggestion = page.locator("#suggestions li").first
        expect(suggestion).to_be_visible()
        entry_id = suggestion.get_attribute("data-entry-id")
        assert entry_id in answers
        suggestion.locator("button.add-to-entry").click()  # the one step
        expect(page.locator("#report-summary")).to_contain_text("Borrador listo", timeout=BUILD_TIMEOUT)
        expect(page.locator("#report-summary")).to_contain_text(f"«{entry_id}»")
        page.get_by_role("button", name="Publicar este borrador").click()
        expect(page.locator("#toast")).to_contain_text("Matriz publicada", timeout=BUILD_TIMEOUT)
        expect(page.locator("#group-status")).to_have_text("Resuelta", timeout=LIVE_TIMEOUT)
        expect(page.locator("#group-resolution")).to_contain_text(f"se agregó como pregunta de la entrada «{entry_id}»")
        expect(page.locator("#group-resolution")).to_contain_text("No volvió a preguntarse desde que se resolvió.")

        page.get_by_role("link", name="« Preguntas sin respuesta", exact=True).click()
        expect(page).to_have_url(f"{stack.app_url}/console/unanswered?status=resolved")
        expect(page.locator("a.group-wording", has_text=QUESTION)).to_be_visible()

        expected = answers[entry_id][:40]
        assert messenger.say(asked_again, QUESTION).status_code == 200
        messenger.wait_for(lambda: any(t.startswith(expected) for t in messenger.texts(asked_again)), 90,
                           f"the answer of «{entry_id}»; got {messenger.texts(asked_again)}")
        assert not any(t in NO_ANSWER_TEXTS for t in messenger.texts(asked_again))
    finally:
        messenger.http.close()
