"""The Spanish words of a report's codes: how a question was handled, a send's final status and purpose. A send's
reason and Meta's error codes are worded by the broadcasts' one table (`broadcasts.report.reason_es`), and the
pause reasons by the console's (`console.parts.PAUSE_REASONS_ES`, handed to `Reports` by the app): one wording per
code across the console."""

from __future__ import annotations

from collections.abc import Mapping

from broadcasts.model import RecipientState
from broadcasts.report import STATE_ES

# answers.model.Handling → the report's words (as «Preguntas sin respuesta» describes the misses).
HANDLING_ES: Mapping[str, str] = {
    "matrix": "Respondida con la Matriz de Conocimientos",
    "selected": "Respondida al elegir una opción de «¿Quisiste decir…?»",
    "gpt": "Respondida por el asistente (GPT)",
    "did_you_mean": "Se ofreció «¿Quisiste decir…?» y no eligieron ninguna opción",
    "no_answer": "Sin respuesta (sin coincidencia, o el asistente no encontró la respuesta)",
    "handoff": "Pasada a una persona",
}
HANDLING_ORDER = ("matrix", "selected", "gpt", "did_you_mean", "no_answer", "handoff")
ANSWERED_WITHOUT_PERSON = frozenset({"matrix", "selected", "gpt"})

# outbox.model.Status (final ones) → words; those of broadcasts.report.STATE_ES where the states are the same.
SEND_STATUS_ES: Mapping[str, str] = {
    **{state.value: STATE_ES[state] for state in (RecipientState.SENT, RecipientState.BLOCKED, RecipientState.FAILED,
                                                  RecipientState.CANCELLED)},
    "dead": f"{STATE_ES[RecipientState.FAILED]} (se agotaron los reintentos)",
}
SEND_STATUS_ORDER = ("sent", "blocked", "failed", "dead", "cancelled")

# outbox.model.Purpose → words.
PURPOSE_ES: Mapping[str, str] = {
    "reply": "Respuesta en la conversación",
    "follow_up": "Mensaje posterior (seguimiento, transmisión o respuesta de un agente)",
    "private_reply": "Respuesta privada a un comentario",
    "public_reply": "Respuesta pública a un comentario",
}


def label(words: Mapping[str, str], code: str | None, none: str = "") -> str:
    """The words of `code`, the code itself when it has none (a code newer than this table), `none` for None."""
    if code is None or code == "":
        return none
    return words.get(code, code)
