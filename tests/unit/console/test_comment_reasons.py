"""Every reason a comment gets no reply is said in Spanish on the "Respuestas privadas" page (console/comments.py).

Would catch: a new reason code of the journal or the processor shown as a bare code ("Sin respuesta (motivo …)")."""

from __future__ import annotations

import pytest

from comments import processor
from comments.journal import RECORD_REASONS
from console.comments import REASONS_ES, reason_es

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
