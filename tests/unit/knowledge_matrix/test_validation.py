from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from knowledge_matrix.matrix import parse_csv_bytes, sheet_from_table
from knowledge_matrix.validation import (
    MESSENGER,
    QuestionRef,
    near_duplicate_issues,
    question_refs,
    validate_sheet,
)


def _report(csv_text: str):  # type: ignore[no-untyped-def]
    return validate_sheet(parse_csv_bytes(csv_text.encode("utf-8")))


def _issue(report, code: str):  # type: ignore[no-untyped-def]
    matches = [issue for issue in report.issues if issue.code == code]
    assert matches, f"no {code} in {report.codes()}"
    return matches[0]


def test_valid_matrix_has_no_issues() -> None:
    report = _report("id,questions,answer\nhorario,¿A qué hora abren?,De 8 a 18.\n")
    assert report.ok and report.issues == () and report.entry_count == 1
    assert "La matriz es válida: 1 entrada" in report.render()


def test_missing_required_column_names_it_in_spanish() -> None:
    report = _report("id,pregunta\nhorario,¿A qué hora abren?\n")
    issue = _issue(report, "missing_column")
    assert issue.row == 1 and "«respuesta»" in issue.message
    assert not report.ok


def test_missing_id_question_and_answer_point_at_row_and_column() -> None:
    report = _report("id,questions,answer\n,¿A qué hora?,De 8 a 18.\nprecio,,49 USD\ncierre,¿Cierran?,\n")
    missing_id = _issue(report, "missing_id")
    assert (missing_id.row, missing_id.column) == (2, "id")
    assert _issue(report, "missing_questions").row == 3
    missing_answer = _issue(report, "missing_answer")
    assert missing_answer.row == 4
    assert missing_answer.render() == "fila 4, columna «respuesta»: falta la respuesta."
    assert report.entry_count == 0
    assert "no_entries" in report.codes()


def test_duplicate_ids_are_case_insensitive_and_name_the_first_row() -> None:
    report = _report("id,questions,answer\nhorario,¿A qué hora?,A las 8.\nHorario,¿Cuándo abren?,A las 8.\n")
    issue = _issue(report, "duplicate_id")
    assert issue.row == 3 and "fila 2" in issue.message


def test_answer_over_messenger_limit() -> None:
    long_answer = "a" * (MESSENGER.text + 1)
    report = _report(f"id,questions,answer\nlargo,¿Algo?,{long_answer}\n")
    issue = _issue(report, "answer_too_long")
    assert f"{MESSENGER.text + 1} caracteres" in issue.message and str(MESSENGER.text) in issue.message
    assert _report(f"id,questions,answer\njusto,¿Algo?,{'a' * MESSENGER.text}\n").ok


def test_button_template_text_limit_and_button_rules() -> None:
    answer = "b" * 700
    report = _report(
        "id,questions,answer,buttons\n"
        f"x,¿Algo?,{answer},Uno => https://a.ec | Dos | Tres | Cuatro\n"
        "y,¿Otro?,Corto.,Un título demasiado largo para botón => https://b.ec\n"
        "z,¿Más?,Corto.,Mal enlace => https://\n"
        "w,¿Web?,Corto.,Sitio => www.ejemplo.ec\n"
    )
    assert any(i.code == "invalid_url" and i.row == 5 and "https://" in i.message for i in report.issues)
    assert {"answer_too_long_for_buttons", "too_many_buttons", "button_title_too_long", "invalid_url"} <= set(
        report.codes()
    )


def test_quick_reply_limits() -> None:
    replies = " | ".join(f"Opción {n}" for n in range(14))
    report = _report(
        f'id,questions,answer,quick_replies\nx,¿Algo?,Sí.,"{replies}"\ny,¿Otro?,No.,Una opción larguísima de verdad\n'
    )
    assert _issue(report, "too_many_quick_replies").message.startswith("hay 14 respuestas rápidas")
    assert _issue(report, "quick_reply_title_too_long").row == 3


def test_links_to_other_entries_must_exist() -> None:
    report = _report("id,questions,answer,quick_replies\na,¿A?,A.,Ir a B => #b | Ir a C => #c\nb,¿B?,B.,\n")
    (issue,) = [i for i in report.issues if i.code == "unknown_entry_link"]
    assert "«c»" in issue.message and issue.row == 2


def test_invalid_urls_enabled_values_and_empty_rows() -> None:
    report = _report(
        "id,questions,answer,link,image,enabled\na,¿A?,A.,www.sin-esquema.ec,,tal vez\n,,,,,\nb,¿B?,B.,,,\n"
    )
    assert _issue(report, "invalid_url").column == "link"
    assert "«sí» o «no»" in _issue(report, "invalid_enabled").message
    empty = _issue(report, "empty_row")
    assert empty.severity == "warning" and empty.row == 3


def test_same_question_in_two_entries_is_an_error_within_one_a_warning() -> None:
    report = _report("id,questions,answer\na,¿Cuál es el horario? | cual es el HORARIO,A.\nb,Cuál es el horario,B.\n")
    across = _issue(report, "duplicate_question")
    assert across.severity == "error" and across.row == 3 and "«a» (fila 2)" in across.message
    assert _issue(report, "repeated_question_in_entry").severity == "warning"


def test_unknown_and_duplicate_columns() -> None:
    report = _report("id,questions,answer,Notas,Respuesta\na,¿A?,A.,x,y\n")
    assert _issue(report, "unknown_column").severity == "warning"
    assert _issue(report, "duplicate_column").severity == "error"


def test_render_separates_errors_and_warnings_and_says_nothing_is_published() -> None:
    text = _report("id,questions,answer\n,¿A?,A.\n,,\nb,¿B?,B.\n").render()
    assert text.startswith("Errores (1)")
    assert "Advertencias (1)" in text
    assert "NO se publicará" in text and "la versión actual sigue respondiendo" in text


def test_near_duplicates_across_entries_warn_once_per_pair() -> None:
    refs = [
        QuestionRef("a", 2, "¿A qué hora abren?"),
        QuestionRef("a", 2, "horario"),
        QuestionRef("b", 3, "¿a que hora abren?"),
    ]
    pairs = [(0, 1, 0.5), (0, 2, 0.97), (1, 2, 0.93)]
    (issue,) = near_duplicate_issues(refs, pairs, threshold=0.9)
    assert issue.severity == "warning" and issue.row == 3
    assert "«a», fila 2" in issue.message and "0.97" in issue.message
    assert near_duplicate_issues(refs, pairs, threshold=0.99) == []


def test_question_refs_skip_rows_without_id() -> None:
    sheet = parse_csv_bytes(b"id,questions,answer\na,uno | dos,A.\n,tres,B.\n")
    assert [(r.entry_id, r.text) for r in question_refs(sheet)] == [("a", "uno"), ("a", "dos")]


cells = st.one_of(st.none(), st.text(max_size=40), st.integers(), st.booleans(), st.floats(allow_nan=False))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(cells, min_size=0, max_size=6), max_size=8))
def test_validation_never_crashes_and_every_row_issue_has_a_real_row(rows: list[list[object]]) -> None:
    sheet = sheet_from_table([["id", "preguntas", "respuesta", "botones", "activo", "enlace"], *rows])
    report = validate_sheet(sheet)
    numbers = {row.number for row in sheet.rows} | {1}
    for issue in report.issues:
        assert issue.message
        assert issue.row is None or issue.row in numbers
    assert report.ok == (report.error_count == 0)
