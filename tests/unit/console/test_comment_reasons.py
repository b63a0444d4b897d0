"""Every reason a comment gets no reply is said in Spanish on the "Respuestas privadas" page (console/comments.py).

Would catch: a new reason code of the journal or the processor shown as a bare code ("Sin respuesta (motivo …)")."""

from __future__ import annotations

import pytest

from comments import processor
from comments.journal import RECORD_REASONS
from console.comments import REASONS_ES, counts_view, reason_es

PROCESSOR_CODES = [processor.NO_RULE, processor.ALREADY_REPLIED_TODAY, processor.CONVERSATION_PAUSED,
                   processor.NO_ANSWER, processor.PRIVATE_REPLY_FAILED]


@pytest.mark.parametrize("code", [*RECORD_REASONS, *PROCESSOR_CODES, "outside_window", "private_reply_already_sent",
                                  "person_unavailable"])
def test_known_reasons_have_their_own_words(code: str) -> None:
    words = reason_es(code)
    assert words and "motivo «" not in words and code not in words
    assert code in REASONS_ES


def test_meta_refusals_and_unknown_codes_are_still_said() -> None:
    assert reason_es("graph_10900") == "Meta rechazó el mensaje privado (error 10900)"
    assert reason_es("algo_nuevo") == "Sin respuesta (motivo «algo_nuevo»)"
    assert reason_es(None) is None


def test_the_counters_carry_conversations_started_per_rule_and_for_deleted_rules() -> None:
    """Would catch the "Conversaciones iniciadas" column dropped from the view (a rule with none shows 0)."""
    counts = {"received": 3, "private": 2, "public": 1, "delivered": 2, "started": 1,
              "by_rule": {"1": {"matched": 2, "private": 2, "public": 1, "delivered": 2, "started": 1},
                          "9": {"matched": 1, "private": 0, "public": 0, "delivered": 0, "started": 0}}}
    view = counts_view(counts, {"1": "Precios", "2": "Horarios"})

    assert view["started"] == 1
    assert [(row["name"], row["delivered"], row["started"]) for row in view["rules"]] == [
        ("Precios", 2, 1), ("Horarios", 0, 0), ("Regla 9 (borrada)", 0, 0)]
