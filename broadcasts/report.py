"""What a broadcast's report and dry run say to admins: the counts per state, a Spanish sentence per reason (one
table), and the list of who did not receive it as a CSV a spreadsheet opens safely.

Pure: the service reads; this module words and counts.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta

from broadcasts.model import (
    BLOCKED,
    CONVERSATION_PAUSED,
    NEVER_WROTE,
    PARTIALLY_SENT,
    Broadcast,
    FailedRecipient,
    Recipient,
    RecipientState,
    Report,
)
from broadcasts.planner import BROADCAST_CANCELLED, failure_label
from broadcasts.store import RecipientCount
from contacts.csv_io import escape_cell
from meta.errors import Kind, meta_error
from outbox.wording import TEMPLATES

# Reason codes → a sentence about a group of people (the dry run's and the report's). `{window}`: the standard
# window by the outbox's policy ("24 horas").
REASONS_ES: Mapping[str, str] = {
    NEVER_WROTE: "Nunca escribieron a la página (por ejemplo, contactos importados por CSV): Messenger solo permite "
                 "escribir a quien inició la conversación.",
    CONVERSATION_PAUSED: "Su conversación está pausada: una persona del equipo los está atendiendo y la transmisión "
                         "no debe interrumpirla.",
    BLOCKED: "Meta indicó que no se les puede escribir (bloquearon la página o ya no usan Messenger) y no han vuelto "
             "a escribir desde entonces.",
    "promotional_outside_window": "El contenido promocional solo se puede enviar dentro de las {window} siguientes "
                                  "al último mensaje del cliente, nunca con etiqueta; para ellos ese plazo ya pasó.",
    "outside_window": "Pasaron más de {window} desde su último mensaje y la transmisión no lleva una etiqueta de "
                      "mensaje que permita escribirles.",
    "human_agent_window_expired": "Pasaron más de 7 días desde su último mensaje: ya no se les puede escribir.",
    "promotional_with_tag": TEMPLATES["promotional_with_tag"].es.replace(" como {tag}", ""),
    "tag_retired": "Meta retiró la etiqueta de mensaje elegida; ya no se puede usar.",
    "tag_not_in_policy": "La etiqueta de mensaje elegida no está habilitada en la política de envío de esta "
                         "instalación.",
    "human_agent_bot_sender": "La etiqueta HUMAN_AGENT es solo para mensajes escritos por una persona, no para "
                              "transmisiones.",
    BROADCAST_CANCELLED: "La transmisión se canceló antes de que el mensaje saliera.",
    PARTIALLY_SENT: "Recibieron solo una parte del mensaje (por ejemplo, la imagen sin el texto): el resto se canceló "
                    "porque la transmisión se canceló o una persona del equipo tomó la conversación.",
}
PARTIAL_ES = "Recibió solo una parte del mensaje; al reintentar solo se envía lo que falta."

# Meta's error codes a send can fail with → what an admin reads.
ERRORS_ES: Mapping[Kind, str] = {
    Kind.RECIPIENT_UNAVAILABLE: "Meta: esta persona no está disponible en este momento (bloqueó la página o "
                                "desactivó Messenger).",
    Kind.OUTSIDE_WINDOW: "Meta rechazó el mensaje por estar fuera de la ventana de mensajería permitida.",
    Kind.TOKEN_INVALID: "El token de la página no es válido; renuévelo y reintente los fallidos.",
    Kind.RATE_LIMITED: "Meta limitó los envíos de la página; se agotaron los reintentos.",
    Kind.TRANSIENT: "Meta no respondió a tiempo; se agotaron los reintentos.",
    Kind.PERMANENT: "Meta rechazó el mensaje.",
}

FAILED_STATES = (RecipientState.SKIPPED, RecipientState.BLOCKED, RecipientState.FAILED, RecipientState.CANCELLED)
CSV_HEADER = ("psid", "nombre", "estado", "motivo", "explicacion", "codigo_error")
STATE_ES: Mapping[RecipientState, str] = {
    RecipientState.SKIPPED: "omitido", RecipientState.QUEUED: "en cola", RecipientState.SENT: "enviado",
    RecipientState.BLOCKED: "bloqueado por la política", RecipientState.FAILED: "fallido",
    RecipientState.CANCELLED: "cancelado",
}


def window_words(standard: timedelta) -> str:
    hours = standard.total_seconds() / 3600
    return f"{hours:g} horas" if hours != 1 else "1 hora"


def reason_es(code: str | None, standard: timedelta = timedelta(hours=24), error_code: int | None = None) -> str:
    """A Spanish sentence for a reason code (or Meta's error code), for admins."""
    if error_code is not None:
        meta = meta_error(error_code)
        text = ERRORS_ES[meta.kind] if meta is not None else "Meta rechazó el mensaje."
        return f"{text} (código {error_code})"
    if code is None:
        return ""
    sentence = REASONS_ES.get(code)
    if sentence is not None:
        return sentence.format(window=window_words(standard))
    template = TEMPLATES.get(code)
    if template is not None and "{" not in template.es:
        return template.es
    return f"No se pudo enviar ({code})."


def reasons_for(codes: Iterable[str], standard: timedelta) -> dict[str, str]:
    """The sentence of each reason code (and each "code N" failure label)."""
    words: dict[str, str] = {}
    for code in codes:
        if code.startswith("code ") and code[5:].isdigit():
            words[code] = reason_es(None, standard, int(code[5:]))
        else:
            words[code] = reason_es(code, standard)
    return words


def build_report(broadcast: Broadcast, counts: Sequence[RecipientCount], retryable: int,
                 standard: timedelta) -> Report:
    total = queued = sent = delivered = read = partial = 0
    skipped: dict[str, int] = {}
    blocked: dict[str, int] = {}
    failed: dict[str, int] = {}
    for group in counts:
        total += group.recipients
        delivered += group.delivered
        read += group.read
        partial += group.partial
        reason = group.reason_code or "unknown"
        if group.state is RecipientState.QUEUED:
            queued += group.recipients
        elif group.state is RecipientState.SENT:
            sent += group.recipients
        elif group.state in (RecipientState.SKIPPED, RecipientState.CANCELLED):
            skipped[reason] = skipped.get(reason, 0) + group.recipients
        elif group.state is RecipientState.BLOCKED:
            blocked[reason] = blocked.get(reason, 0) + group.recipients
        else:
            label = failure_label(group.error_code, group.reason_code)
            failed[label] = failed.get(label, 0) + group.recipients
    reasons = reasons_for({*skipped, *blocked, *failed}, standard)
    return Report(broadcast=broadcast, total=total, queued=queued, sent=sent, delivered=delivered, read=read,
                  skipped=skipped, blocked=blocked, failed=failed, retryable=retryable, reasons_es=reasons,
                  partial=partial)


def failed_recipient(row: Recipient, standard: timedelta) -> FailedRecipient:
    """A recipient who did not receive it all, worded for the failed list (and whether they got part of it)."""
    partial = bool(row.sent_parts) and row.state is not RecipientState.SENT
    words = reason_es(row.reason_code, standard, row.error_code)
    if partial and row.reason_code != PARTIALLY_SENT:
        words = f"{words} {PARTIAL_ES}".strip()
    return FailedRecipient(row.psid, row.name, row.state, row.reason_code, words, row.error_code, partial)


def failed_csv(rows: Sequence[FailedRecipient]) -> bytes:
    """Who did not receive the broadcast, as Excel opens it: UTF-8 with BOM, `;` separated, cells that a
    spreadsheet would run as formulas escaped."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for row in rows:
        writer.writerow([escape_cell(value) for value in (
            row.psid, row.name, STATE_ES[row.state], row.reason_code or "", row.reason_es,
            str(row.error_code) if row.error_code is not None else "")])
    return ("\ufeff" + out.getvalue()).encode("utf-8")
