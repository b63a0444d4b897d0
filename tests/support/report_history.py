"""A small history written through the stores' own APIs for the reports' tests (tests/integration/test_reports_api.py,
tests/e2e/test_reports.py): what it writes is in the comments, and the tests assert the report equals it."""

from __future__ import annotations

from datetime import datetime, timezone

from answers.model import AnswerRecord, Handling
from answers.service import open_answers
from contacts.store import open_contacts_store
from core.settings import SANDBOX_PAGE_ID, Settings
from handoff.model import PauseReason
from handoff.service import open_handoff_store
from outbox.model import NewMessage, Outcome, Purpose, Status
from outbox.store import open_store

PAGE = SANDBOX_PAGE_ID
PERIOD = {"desde": "2025-03-01", "hasta": "2025-03-03"}
SHARE = "57.1 %"  # 3 matrix + 1 selected of 7 handled (the offer the selected followed counts once, as the tap)


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=timezone.utc)


def fill(settings: Settings) -> None:
    outbox = open_store(settings.outbox_store_url)
    answers = open_answers(settings)
    handoff = open_handoff_store(settings.handoff_store_url)
    contacts = open_contacts_store(settings.store_url("contacts"))
    try:
        # Messages: day 1 (local) — u1 twice, u2 once at 23:30 local (04:30 UTC on the 2nd); day 3 — u1 again, more
        # than 24 hours later: a new conversation.
        for user, at in (("u1", utc(1, 15)), ("u1", utc(1, 15, 5)), ("u2", utc(2, 4, 30)), ("u1", utc(3, 16))):
            outbox.record_user_message(PAGE, user, at, "hola")
        # Sends: two sent, one blocked by the policy, one failed with Meta's 551.
        for n, outcome in enumerate((
                Outcome(Status.SENT, messaging_type="RESPONSE", graph_message_id="m_1", sent_at=utc(1, 15, 1)),
                Outcome(Status.SENT, messaging_type="RESPONSE", graph_message_id="m_2", sent_at=utc(1, 15, 6)),
                Outcome(Status.FAILED, reason_code="graph_551", reason="No disponible", last_error_code=551,
                        finished_at=utc(2, 15)))):
            message, _ = outbox.enqueue(NewMessage(PAGE, f"s{n}", {"text": "hola"}, purpose=Purpose.REPLY),
                                        utc(1, 15))
            assert message.id in [m.id for m in outbox.claim("w1", utc(1, 15), 30, 100)]
            outbox.complete(message.id, "w1", outcome)
        blocked, _ = outbox.enqueue(NewMessage(PAGE, "s9", {"text": "promo"}, purpose=Purpose.FOLLOW_UP), utc(2, 15))
        assert blocked.id in [m.id for m in outbox.claim("w1", utc(2, 15), 30, 100)]
        outbox.complete(blocked.id, "w1", Outcome(Status.BLOCKED, reason_code="outside_window", reason="fuera",
                                                  finished_at=utc(2, 15)))
        # Questions: day 1 matrix ×3 (horario ×2, precios); day 2 a did_you_mean followed a minute later by a tap
        # (selected: one question, counted once, as selected); day 3 no_answer + handoff, and another person's
        # did_you_mean nobody followed.
        questions = ((Handling.MATRIX, utc(1, 15), "horario"), (Handling.MATRIX, utc(1, 16), "horario"),
                     (Handling.MATRIX, utc(1, 17), "precios"), (Handling.DID_YOU_MEAN, utc(2, 15), None),
                     (Handling.SELECTED, utc(2, 15, 1), "horario"), (Handling.NO_ANSWER, utc(3, 15), None),
                     (Handling.HANDOFF, utc(3, 16), None))
        for handling, at, entry in questions:
            answers.store.record(AnswerRecord(PAGE, "persona", "¿pregunta?", handling, at, entry_id=entry))
        answers.store.record(AnswerRecord(PAGE, "otra persona", "¿pregunta?", Handling.DID_YOU_MEAN, utc(3, 17)))
        # Handoffs: u1 asked for a person, ana answered after 2 minutes and closed after 30; u2 still open.
        handoff.pause(PAGE, "u1", PauseReason.USER_ASKED, "bot", utc(1, 15, 10))
        handoff.record_agent_message(f"{PAGE}:u1", "ana", "Hola, le ayudo", utc(1, 15, 12))
        handoff.resume(f"{PAGE}:u1", "ana", "Consulta resuelta", utc(1, 15, 40))
        handoff.pause(PAGE, "u2", PauseReason.BOT_FAILED, "bot", utc(3, 15))
        # Contacts: u1 by the «verano» link, u2 without a campaign.
        contacts.upsert_seen(PAGE, "u1", utc(1, 15), campaign="verano")
        contacts.upsert_seen(PAGE, "u2", utc(2, 4, 30))
    finally:
        outbox.close()
        answers.close()
        handoff.close()
        contacts.close()
