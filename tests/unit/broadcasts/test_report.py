"""The report's counts from the store's groups, a Spanish sentence for every reason and Meta error code, and the
failed list as a CSV Excel opens (BOM, `;`) with formula-looking cells escaped."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

from broadcasts.model import Broadcast, BroadcastDraft, BroadcastStatus, FailedRecipient, RecipientState
from broadcasts.report import build_report, failed_csv, reason_es
from broadcasts.store import RecipientCount
from contacts.csv_io import unescape_cell

PAGE = "100000000000001"
NOW = datetime(2026, 11, 30, 15, 0, tzinfo=timezone.utc)


def broadcast() -> Broadcast:
    draft = BroadcastDraft.from_dict({"page_id": PAGE, "name": "B", "content": {"text": "Hola"},
                                      "audience": {"page_id": PAGE}})
    return Broadcast(1, PAGE, "B", draft.content, draft.audience, True, None, BroadcastStatus.DONE, NOW, "ana", NOW,
                     NOW)


def test_the_report_adds_up_the_groups_and_words_every_reason() -> None:
    counts = [RecipientCount(RecipientState.SENT, None, None, 7, 5, 2),
              RecipientCount(RecipientState.SKIPPED, "never_wrote", None, 3, 0, 0),
              RecipientCount(RecipientState.CANCELLED, "conversation_paused", None, 1, 0, 0),
              RecipientCount(RecipientState.BLOCKED, "promotional_outside_window", None, 2, 0, 0),
              RecipientCount(RecipientState.FAILED, "person_unavailable", 551, 4, 0, 0),
              RecipientCount(RecipientState.FAILED, "transient", None, 1, 0, 0),
              RecipientCount(RecipientState.QUEUED, None, None, 6, 0, 0)]
    report = build_report(broadcast(), counts, retryable=1, standard=timedelta(hours=24))
    assert (report.total, report.queued, report.sent, report.delivered, report.read) == (24, 6, 7, 5, 2)
    assert report.skipped == {"never_wrote": 3, "conversation_paused": 1}
    assert report.blocked == {"promotional_outside_window": 2}
    assert report.failed == {"code 551": 4, "transient": 1}
    assert set(report.reasons_es) == {"never_wrote", "conversation_paused", "promotional_outside_window",
                                      "code 551", "transient"}
    assert "24 horas" in report.reasons_es["promotional_outside_window"]
    assert "(código 551)" in report.reasons_es["code 551"]
    assert report.to_dict()["broadcast"]["status_es"] == "Enviada"


def test_every_reason_gets_a_sentence() -> None:
    assert "Nunca escribieron" in reason_es("never_wrote")
    assert "12 horas" in reason_es("outside_window", timedelta(hours=12))
    assert "Meta" in reason_es("tag_retired")
    assert reason_es("algo_nuevo") == "No se pudo enviar (algo_nuevo)."
    assert "código 190" in reason_es(None, error_code=190) and "token" in reason_es(None, error_code=190)
    assert "código 424242" in reason_es(None, error_code=424242)


def test_the_failed_csv_opens_in_excel_and_escapes_formulas() -> None:
    rows = [FailedRecipient("u1", "=SUMA(A1)", RecipientState.FAILED, "person_unavailable", "Meta: «no»; ya", 551),
            FailedRecipient("u2", "José Ñúñez", RecipientState.SKIPPED, "never_wrote", "+1 nunca", None)]
    data = failed_csv(rows)
    assert data.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))
    assert table[0] == ["psid", "nombre", "estado", "motivo", "explicacion", "codigo_error"]
    assert table[1][:3] == ["u1", "'=SUMA(A1)", "fallido"] and table[1][5] == "551"
    assert unescape_cell(table[1][1]) == "=SUMA(A1)" and table[1][4] == "Meta: «no»; ya"
    assert table[2] == ["u2", "José Ñúñez", "omitido", "never_wrote", "'+1 nunca", ""]
