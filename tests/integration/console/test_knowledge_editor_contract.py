"""One contract suite for the knowledge editor the console calls (`KnowledgeEditor`: status, upload,
try_question, publish, rollback): the same tests against the console's fake (`FakeKnowledgeEditor`, what the
console's unit tests run on) and the real `MatrixEditor` over `knowledge_matrix.publish`, with real matrix files
in `tmp_path` and the packaged embedding model. The fake passing here is what lets the console's unit tests
stand for the real editor.

Retrieval differs on purpose (the fake matches words, the real one embeds): the suite asks only what both must
agree on, an asked question answered from its entry and an unrelated one not answered. Near-duplicate warnings
need the model and are the real editor's alone (tests/unit/knowledge).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import openpyxl
import pytest

from console.knowledge_editor import (
    DraftHasErrors,
    DraftNotFound,
    KnowledgeEditor,
    MatrixEditor,
    NothingPublished,
    NothingToRollBack,
    StaleDraft,
)
from knowledge_matrix.embedders import Embedder, create_embedder
from knowledge_matrix.errors import EmbedderUnavailableError
from knowledge_matrix.settings import DEFAULT_SETTINGS
from tests.conftest import require_or_skip
from tests.support.console_fakes import FakeKnowledgeEditor
from tests.unit.console.conftest import Clock

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
ROWS = [
    ("horario", "¿Cuál es el horario de atención?|¿A qué hora abren?", "Abrimos de 9:00 a 19:00."),
    ("envios", "¿Hacen envíos a Galápagos?", "Sí: enviamos a todo el Ecuador."),
    ("pagos", "¿Aceptan tarjeta de crédito?", "Aceptamos Visa y Mastercard."),
]
GOOD = ("id,preguntas,respuesta\n" + "".join(f"{i},{q},{a}\n" for i, q, a in ROWS)).encode()
OTHER = b"id,preguntas,respuesta\ndevoluciones,\xc2\xbfPuedo devolver un producto?,Tiene 30 d\xc3\xadas.\n"
WITH_ERRORS = b"id,preguntas,respuesta\nx,hola,\n"
UNRELATED = "¿Cuál es la capital de Mongolia?"


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    try:
        return create_embedder(DEFAULT_SETTINGS.embedder)
    except EmbedderUnavailableError as exc:
        require_or_skip(False, f"the packaged embedding model ({exc})")
        raise


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture(params=["fake", "real"])
def editor(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[KnowledgeEditor]:
    if request.param == "fake":
        yield FakeKnowledgeEditor(clock)
    else:
        yield MatrixEditor(tmp_path, clock, embedder=request.getfixturevalue("embedder"))


def xlsx(rows: list[tuple[str, str, str]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["id", "preguntas", "respuesta"])
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# --- uploading -----------------------------------------------------------------------------------------------


def test_nothing_yet(editor: KnowledgeEditor) -> None:
    status = editor.status()
    assert (status.live, status.versions, status.drafts) == (None, (), ())
    tried = editor.try_question("¿A qué hora abren?", None)
    assert (tried.question, tried.draft, tried.live) == ("¿A qué hora abren?", None, None)


@pytest.mark.parametrize(("filename", "data"), [("matriz.csv", GOOD), ("matriz.xlsx", xlsx(ROWS))])
def test_a_valid_upload_is_a_draft_that_can_be_published(editor: KnowledgeEditor, filename: str,
                                                          data: bytes) -> None:
    draft = editor.upload(filename, data, "eva")
    assert re.fullmatch(r"[0-9a-f]{12}", draft.id)
    assert (draft.filename, draft.uploaded_by, draft.uploaded_at, draft.ok, draft.entry_count) == (
        filename, "eva", T0, True, 3)
    assert draft.issues == ()
    assert draft.summary == "La matriz es válida: 3 entrada(s) lista(s) para publicar."
    assert [d.id for d in editor.status().drafts] == [draft.id]
    assert editor.status().live is None, "an upload never changes what the bot answers"


def test_an_upload_with_errors_is_kept_as_a_draft_with_the_report(editor: KnowledgeEditor) -> None:
    draft = editor.upload("m.csv", WITH_ERRORS, "eva")
    assert (draft.ok, draft.entry_count) == (False, 0)
    assert [(i.severity, i.code, i.row, i.column, i.column_label) for i in draft.issues] == [
        ("error", "missing_answer", 2, "answer", "respuesta"), ("error", "no_entries", None, None, None)]
    assert draft.summary.startswith("Errores (2): hay que corregirlos para publicar la matriz.")
    assert "fila 2, columna «respuesta»: falta la respuesta." in draft.summary
    assert [d.id for d in editor.status().drafts] == [draft.id]


@pytest.mark.parametrize(("filename", "data", "says"), [
    ("m.csv", b"\x00\x01\x02basura", "caracteres nulos"),
    ("m.csv", b"", "vacío"),
    ("m.xlsx", b"esto no es un libro", "no es un Excel .xlsx válido"),
    ("m.xls", GOOD, ".xls (Excel 97-2003) no se admite"),
    ("m.pdf", GOOD, "formato no admitido"),
    ("matriz", GOOD, "formato no admitido"),
])
def test_a_file_that_cannot_be_read_is_one_error_in_the_report(
    editor: KnowledgeEditor, filename: str, data: bytes, says: str
) -> None:
    draft = editor.upload(filename, data, "eva")
    assert (draft.ok, draft.entry_count) == (False, 0)
    [issue] = draft.issues
    assert (issue.severity, issue.code, issue.row, issue.column) == ("error", "unreadable_file", None, None)
    assert says in issue.message
    assert draft.summary.startswith("Errores (1): hay que corregirlos para publicar la matriz.")
    with pytest.raises(DraftHasErrors):
        editor.publish(draft.id, "eva")


@pytest.mark.parametrize(("sent", "kept"), [
    ("C:\\Users\\eva\\Escritorio\\matriz.csv", "matriz.csv"),
    ("../../etc/matriz.csv", "matriz.csv"),
    ("", "matriz.csv"),
])
def test_the_file_name_kept_is_the_name_without_folders(editor: KnowledgeEditor, sent: str, kept: str) -> None:
    assert editor.upload(sent, GOOD, "eva").filename == kept


def test_the_status_lists_the_five_newest_drafts_newest_first(editor: KnowledgeEditor, clock: Clock) -> None:
    ids = []
    for _ in range(7):
        ids.append(editor.upload("m.csv", GOOD, "eva").id)
        clock.advance(minutes=1)
    assert [d.id for d in editor.status().drafts] == ids[::-1][:5]


# --- trying ----------------------------------------------------------------------------------------------------


def test_a_draft_answers_its_own_questions_and_not_others(editor: KnowledgeEditor) -> None:
    draft = editor.upload("m.csv", GOOD, "eva")
    asked = editor.try_question("¿A qué hora abren?", draft.id)
    assert asked.live is None and asked.draft is not None
    assert (asked.draft.outcome, asked.draft.entry_id, asked.draft.text) == (
        "answer", "horario", "Abrimos de 9:00 a 19:00.")
    unrelated = editor.try_question(UNRELATED, draft.id)
    assert unrelated.draft is not None and unrelated.draft.outcome != "answer"


@pytest.mark.parametrize("draft_id", [None, ""])
def test_no_draft_id_tries_the_live_version_only(editor: KnowledgeEditor, draft_id: str | None) -> None:
    editor.upload("m.csv", GOOD, "eva")
    assert editor.try_question("¿A qué hora abren?", draft_id).draft is None


@pytest.mark.parametrize("draft_id", ["nope", "0123456789ab", "../knowledge"])
def test_an_unknown_draft_cannot_be_tried_or_published(editor: KnowledgeEditor, draft_id: str) -> None:
    with pytest.raises(DraftNotFound):
        editor.try_question("hola", draft_id)
    with pytest.raises(DraftNotFound):
        editor.publish(draft_id, "eva")


def test_a_draft_with_errors_answers_nothing_and_says_why(editor: KnowledgeEditor) -> None:
    draft = editor.upload("m.csv", WITH_ERRORS, "eva")
    tried = editor.try_question("hola", draft.id)
    assert tried.draft is not None
    assert (tried.draft.outcome, tried.draft.text) == ("none", "El borrador tiene errores: corríjalos para probarlo.")


# --- publishing and rolling back -------------------------------------------------------------------------------


def test_publishing_makes_a_numbered_live_version_with_the_editor_s_file_name(
    editor: KnowledgeEditor, clock: Clock
) -> None:
    first = editor.upload("horarios.csv", GOOD, "eva")
    second = editor.upload("devoluciones.csv", OTHER, "eva")
    clock.advance(minutes=1)
    one = editor.publish(first.id, "eva")
    assert (one.id, one.published_at, one.published_by, one.entry_count, one.filename, one.live) == (
        "0001", T0 + timedelta(minutes=1), "eva", 3, "horarios.csv", True)
    clock.advance(minutes=1)
    two = editor.publish(second.id, "leo")
    assert (two.id, two.published_by, two.entry_count, two.filename, two.live) == (
        "0002", "leo", 1, "devoluciones.csv", True)
    status = editor.status()
    assert status.live == two
    assert [(v.id, v.filename, v.live) for v in status.versions] == [
        ("0002", "devoluciones.csv", True), ("0001", "horarios.csv", False)]
    live = editor.try_question("¿Puedo devolver un producto?", None).live
    assert live is not None and (live.outcome, live.entry_id) == ("answer", "devoluciones")


def test_a_draft_with_errors_is_never_published(editor: KnowledgeEditor) -> None:
    good = editor.upload("m.csv", GOOD, "eva")
    editor.publish(good.id, "eva")
    bad = editor.upload("m.csv", WITH_ERRORS, "eva")
    with pytest.raises(DraftHasErrors) as refused:
        editor.publish(bad.id, "eva")
    assert "corríjalos" in refused.value.message_es
    status = editor.status()
    assert status.live is not None and status.live.id == "0001" and len(status.versions) == 1


def test_the_same_draft_published_twice_is_two_versions(editor: KnowledgeEditor) -> None:
    draft = editor.upload("m.csv", GOOD, "eva")
    assert [editor.publish(draft.id, "eva").id for _ in range(2)] == ["0001", "0002"]


def test_a_rollback_goes_back_one_publication_at_a_time(editor: KnowledgeEditor, clock: Clock) -> None:
    with pytest.raises(NothingToRollBack):
        editor.rollback("eva")
    first = editor.upload("horarios.csv", GOOD, "eva")
    second = editor.upload("devoluciones.csv", OTHER, "eva")
    editor.publish(first.id, "eva")
    with pytest.raises(NothingToRollBack):
        editor.rollback("eva")  # the first version has nothing before it
    editor.publish(second.id, "eva")
    clock.advance(minutes=5)
    back = editor.rollback("leo")
    assert (back.id, back.filename, back.live, back.entry_count) == ("0001", "horarios.csv", True, 3)
    status = editor.status()
    assert status.live == back
    assert [(v.id, v.filename, v.live) for v in status.versions] == [
        ("0002", "devoluciones.csv", False), ("0001", "horarios.csv", True)]
    live = editor.try_question("¿A qué hora abren?", None).live
    assert live is not None and live.entry_id == "horario"
    with pytest.raises(NothingToRollBack):
        editor.rollback("leo")


def test_going_to_a_named_version_then_rolling_back_returns_to_the_one_before_it(editor: KnowledgeEditor) -> None:
    drafts = [editor.upload(f"m{n}.csv", GOOD, "eva") for n in range(3)]
    for draft in drafts:
        editor.publish(draft.id, "eva")
    chosen = editor.rollback("eva", "0001")
    assert (chosen.id, chosen.filename, chosen.live) == ("0001", "m0.csv", True)
    same = editor.rollback("eva", "0001")
    assert same == chosen, "going to the live version changes nothing"
    back = editor.rollback("eva")
    assert (back.id, back.filename) == ("0003", "m2.csv")
    assert editor.status().live == back


@pytest.mark.parametrize("version_id", ["0009", "zzz", "../0001"])
def test_an_unknown_version_cannot_be_made_live(editor: KnowledgeEditor, version_id: str) -> None:
    draft = editor.upload("m.csv", GOOD, "eva")
    editor.publish(draft.id, "eva")
    with pytest.raises(NothingToRollBack) as refused:
        editor.rollback("eva", version_id)
    assert refused.value.message_es
    live = editor.status().live
    assert live is not None and live.id == "0001"


@pytest.mark.parametrize(("filename", "data"), [("matriz.csv", GOOD), ("matriz.xlsx", xlsx(ROWS))])
def test_the_live_version_s_file_is_the_one_published(editor: KnowledgeEditor, filename: str, data: bytes) -> None:
    with pytest.raises(NothingPublished):
        editor.live_source()
    first = editor.upload(filename, data, "eva")
    editor.publish(first.id, "eva")
    assert editor.live_source() == (filename, data)
    second = editor.upload("devoluciones.csv", OTHER, "eva")
    editor.publish(second.id, "eva")
    assert editor.live_source() == ("devoluciones.csv", OTHER)
    editor.rollback("eva")
    assert editor.live_source() == (filename, data), "a rollback makes the older file the live one again"


def test_an_upload_older_than_the_live_version_needs_a_confirmation(editor: KnowledgeEditor) -> None:
    first = editor.upload("horarios.csv", GOOD, "eva")
    before_anything = editor.upload("devoluciones.csv", OTHER, "eva")
    assert first.base_version is None and first.to_dict()["base_version"] is None
    editor.publish(first.id, "eva")
    editor.publish(before_anything.id, "eva")  # uploaded before anything was live: a copy of nothing
    old_copy = editor.upload("horarios.csv", GOOD, "leo")
    assert old_copy.base_version == "0002"
    editor.publish(editor.upload("otra.csv", GOOD, "eva").id, "eva")
    with pytest.raises(StaleDraft) as refused:
        editor.publish(old_copy.id, "leo")
    assert (refused.value.reason_code, refused.value.can_confirm) == ("stale_draft", True)
    assert refused.value.details() == {"base_version": "0002", "live_version": "0003", "can_confirm": True}
    assert "La matriz publicada cambió desde que se subió «horarios.csv»" in refused.value.message_es
    live = editor.status().live
    assert live is not None and live.id == "0003"
    assert editor.publish(old_copy.id, "leo", confirm_stale=True).id == "0004"
    assert editor.publish(old_copy.id, "leo").id == "0005", "once published it is as current as its version"
