"""The «palabras clave» column: read, validated, indexed by each keywords mode, and never shown as a question."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from knowledge_matrix.embedders import DelegatingEmbedder, FloatMatrix, HashingEmbedder, TextRole
from knowledge_matrix.knowledge_base import (
    EXACT_MATCH_SCORE,
    KnowledgeBase,
    settings_row_texts,
    with_keywords,
)
from knowledge_matrix.matrix import Entry, Matrix, canonical_column, entries_from_sheet, parse_csv_bytes
from knowledge_matrix.retrieval import Calibration, Thresholds
from knowledge_matrix.settings import DEFAULT_SETTINGS, RetrievalSettings
from knowledge_matrix.validation import MAX_KEYWORD_CHARS, MAX_KEYWORDS, validate_sheet

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PARKING = Entry(
    "parqueadero",
    ("¿Tienen parqueadero?", "¿Dónde dejo el carro?"),
    "Sí, en el subsuelo del edificio.",
    keywords=("simert", "zona azul", "garaje"),
)
ENTRIES = (
    Entry("horario", ("¿Cuál es el horario de atención?", "¿A qué hora abren?"), "De lunes a viernes de 8 a 18."),
    PARKING,
    Entry("pagos", ("¿Qué métodos de pago aceptan?",), "Tarjeta y transferencia.", keywords=("datafast",)),
    Entry("facebook", ("¿Cómo conecto mi página de Facebook?",), "Acepte la invitación de agencia."),
)
SETTINGS = DEFAULT_SETTINGS.with_changes(
    embedder="hashing:256", thresholds=Thresholds(answer=0.6, suggest=0.2), keywords="off"
)


def _sheet(csv_text: str):  # type: ignore[no-untyped-def]
    return parse_csv_bytes(csv_text.encode("utf-8"))


@pytest.mark.parametrize(
    "header",
    [
        "Palabras clave",
        "palabra clave",
        "Keywords",
        "keyword",
        "Sinónimos",
        "SINONIMO",
        "términos de búsqueda",
        "palabras-clave",
    ],
)
def test_every_alias_of_the_header_is_the_keywords_column(header: str) -> None:
    assert canonical_column(header) == "keywords"


def test_terms_and_searches_columns_are_kept_as_they_were_not_read_as_keywords() -> None:
    """«Términos» (conditions) and «Búsquedas» (a count) were other columns before the keywords column, kept
    unchanged: a matrix that published with them still does, with their cells untouched."""
    sheet = _sheet(
        "id,preguntas,respuesta,Términos,Búsquedas\n"
        f"horario,¿A qué hora abren?,A las 9.,{'Al usar el servicio acepta las condiciones generales ' * 3},125\n"
    )
    assert canonical_column("Términos") is None and canonical_column("Búsquedas") is None
    assert sheet.unknown_headers == ("Términos", "Búsquedas") and not sheet.duplicate_headers
    report = validate_sheet(sheet)
    assert report.ok and report.entry_count == 1
    assert [issue.code for issue in report.warnings] == ["unknown_column", "unknown_column"]
    (entry,) = entries_from_sheet(sheet)
    assert entry.keywords == () and dict(entry.extra)["extra:Búsquedas"] == "125"


def test_two_names_of_the_keywords_column_are_named_both_and_a_repeated_header_once() -> None:
    report = validate_sheet(
        _sheet('id,preguntas,respuesta,Palabras clave,Sinónimos\nhorario,¿Abren?,Sí.,"hora, apertura",abren\n')
    )
    (error,) = report.errors
    assert error.code == "duplicate_column" and error.row == 1
    assert error.message == "las columnas «Palabras clave» y «Sinónimos» son ambas «palabras clave»; deje solo una."
    repeated = validate_sheet(_sheet("id,preguntas,respuesta,Respuestas,Respuesta\na,¿A?,A.,B.,C.\n"))
    assert [issue.message for issue in repeated.errors] == [
        "las columnas «respuesta» y «Respuestas» son ambas «respuesta»; deje solo una.",
        "la columna «Respuesta» está repetida; deje solo una.",
    ]


def test_keywords_are_split_like_tags_trimmed_and_not_repeated() -> None:
    sheet = _sheet(
        "id,preguntas,respuesta,Palabras clave\n"
        'parqueadero,¿Tienen parqueadero?,Sí.,"parqueo,  parking; estacionamiento | zona  azul\nsimert, parqueo,"\n'
        "horario,¿A qué hora abren?,A las 9.,\n"
    )
    assert "keywords" in sheet.columns and not sheet.unknown_headers
    first, second = entries_from_sheet(sheet)
    assert first.keywords == ("parqueo", "parking", "estacionamiento", "zona azul", "simert")
    assert second.keywords == ()
    assert validate_sheet(sheet).ok


def test_too_many_keywords_in_a_row_is_an_error_naming_the_row() -> None:
    many = ", ".join(f"palabra{number}" for number in range(MAX_KEYWORDS + 1))
    report = validate_sheet(
        _sheet(
            f'id,preguntas,respuesta,sinónimos\nhorario,¿A qué hora abren?,A las 9.,"{many}"\npagos,¿Tarjeta?,Sí.,\n'
        )
    )
    assert not report.ok and report.entry_count == 1
    (error,) = report.errors
    assert (error.code, error.row, error.column) == ("too_many_keywords", 2, "keywords")
    assert error.render().startswith("fila 2, columna «palabras clave»: hay 31 palabras clave; el máximo es 30")


def test_a_keyword_too_long_is_an_error_and_a_short_list_is_not() -> None:
    long_keyword = "x" * (MAX_KEYWORD_CHARS + 1)
    report = validate_sheet(
        _sheet(
            "id,preguntas,respuesta,keywords\n"
            f'horario,¿A qué hora abren?,A las 9.,"hora de apertura, {long_keyword}"\n'
            f'pagos,¿Aceptan tarjeta?,Sí.,"{"y" * MAX_KEYWORD_CHARS}"\n'
        )
    )
    assert [(issue.code, issue.row) for issue in report.errors] == [("keyword_too_long", 2)]
    assert f"tiene {MAX_KEYWORD_CHARS + 1} caracteres; el máximo es {MAX_KEYWORD_CHARS}" in report.errors[0].message


def test_a_cell_of_many_long_keywords_gives_one_count_error_and_no_more_length_errors_than_the_limit() -> None:
    many = ", ".join(f"{number:04d}" + "x" * MAX_KEYWORD_CHARS for number in range(1000))
    report = validate_sheet(_sheet(f'id,preguntas,respuesta,keywords\nhorario,¿A qué hora abren?,A las 9.,"{many}"\n'))
    codes = [issue.code for issue in report.errors]
    assert codes.count("too_many_keywords") == 1
    assert codes.count("keyword_too_long") == MAX_KEYWORDS


def test_the_same_keyword_in_two_entries_is_a_warning_with_both_rows() -> None:
    report = validate_sheet(
        _sheet(
            "id,preguntas,respuesta,palabras clave\n"
            'parqueadero,¿Tienen parqueadero?,Sí.,"Parqueo, simert"\n'
            'horario,¿A qué hora abren?,A las 9.,"parqueo, hora"\n'
            'ubicacion,¿Dónde están?,En el centro.,"PARQUEO!, mapa, Hora"\n'
            'pagos,¿Aceptan tarjeta?,Sí.,"tarjeta, débito"\n'
        )
    )
    assert report.ok and report.entry_count == 4
    warnings = [issue for issue in report.warnings if issue.code == "repeated_keyword"]
    assert [(issue.row, issue.column) for issue in warnings] == [(3, "keywords"), (4, "keywords")]
    assert warnings[0].message == (
        "la palabra clave «Parqueo» está en las filas 2, 3 y 4: el bot no sabrá por ella cuál responder. "
        "Déjela en una sola fila."
    )
    assert "«hora» está en las filas 3 y 4" in warnings[1].message


def test_the_same_keyword_twice_in_one_row_is_not_a_warning() -> None:
    report = validate_sheet(_sheet('id,preguntas,respuesta,keywords\nhorario,¿Abren?,Sí.,"hora, Hora, HORA"\n'))
    assert report.ok and not report.warnings


@pytest.mark.parametrize(
    ("mode", "fields", "extra"),
    [
        ("off", "question+answer", []),
        ("lexical", "question+answer", []),
        ("row", "question+answer", ["simert, zona azul, garaje\nSí, en el subsuelo del edificio."]),
        ("both", "question+answer", ["simert, zona azul, garaje\nSí, en el subsuelo del edificio."]),
        ("row", "question", ["simert, zona azul, garaje"]),
        (
            "both",
            "question|question+answer",
            ["simert, zona azul, garaje", "simert, zona azul, garaje\nSí, en el subsuelo del edificio."],
        ),
    ],
)
def test_keyword_rows_by_mode(mode: str, fields: str, extra: list[str]) -> None:
    settings = SETTINGS.with_changes(keywords=mode, passage_fields=fields)
    plain, plain_owners, _ = settings_row_texts(ENTRIES[:2], SETTINGS.with_changes(passage_fields=fields))
    texts, owners, positions = settings_row_texts(ENTRIES[:2], settings)
    assert texts == plain + extra  # the keyword rows come after the entry's question rows (it is the last one)
    assert owners == plain_owners + [1] * len(extra)
    assert positions[len(plain) :] == [0] * len(extra)
    # An entry without keywords gets no keyword row.
    assert settings_row_texts(ENTRIES[:1], settings) == settings_row_texts(
        ENTRIES[:1], SETTINGS.with_changes(passage_fields=fields)
    )


def test_lexical_documents_gain_their_entrys_keywords() -> None:
    documents = with_keywords(["a", "b", "c"], ENTRIES[:2], [0, 1, 1])
    assert documents == ["a", "b\nsimert, zona azul, garaje", "c\nsimert, zona azul, garaje"]


@pytest.mark.parametrize("mode", ["lexical", "row", "both"])
def test_an_entry_found_only_by_its_keyword(mode: str) -> None:
    query = "por la zona azul"  # "zona" and "azul" are in no question or answer of the matrix
    assert not any(w in text.lower() for e in ENTRIES for text in (*e.questions, e.answer) for w in ("zona", "azul"))
    ignored = KnowledgeBase.build(Matrix.of(ENTRIES), HashingEmbedder(256), SETTINGS, in_memory_index=True)
    assert ignored.search(query, 3)[0].entry_id != "parqueadero"
    built = KnowledgeBase.build(
        Matrix.of(ENTRIES), HashingEmbedder(256), SETTINGS.with_changes(keywords=mode), in_memory_index=True
    )
    hit = built.search(query, 3)[0]
    assert hit.entry_id == "parqueadero"
    assert hit.matched_question in PARKING.questions  # a real question, never the keyword row
    if mode != "lexical":  # found by the keyword row, which points to the entry's first question
        assert hit.matched_question == "¿Tienen parqueadero?"


def test_a_message_equal_to_a_keyword_is_not_an_exact_match() -> None:
    # A calibration under which only the exact-match rule can reach EXACT_MATCH_SCORE.
    low = Calibration(intercept=-8.0, z=0.1, margin=0.0)
    built = KnowledgeBase.build(
        Matrix.of(ENTRIES),
        HashingEmbedder(256),
        SETTINGS.with_changes(keywords="both", calibration=low),
        in_memory_index=True,
    )
    assert built.search("¿Dónde dejo el carro?", 1)[0].score >= EXACT_MATCH_SCORE  # a question: the rule fires
    keyword_hit = built.search("zona azul", 1)[0]
    assert keyword_hit.entry_id == "parqueadero" and keyword_hit.score < 0.5


def test_save_and_load_with_keywords(tmp_path: Path) -> None:
    settings = SETTINGS.with_changes(keywords="both", lexical_text="question")
    built = KnowledgeBase.build(Matrix.of(ENTRIES), HashingEmbedder(64), settings, in_memory_index=True)
    built.save(tmp_path / "kb", now=NOW)
    saved = json.loads((tmp_path / "kb" / "entries.json").read_text("utf-8"))
    assert saved[1]["keywords"] == ["simert", "zona azul", "garaje"]
    loaded = KnowledgeBase.load(tmp_path / "kb")
    assert loaded.settings.keywords == "both" and loaded.entries == built.entries
    assert loaded.search("zona azul", 3) == built.search("zona azul", 3)


def test_the_bot_uses_keywords_by_default_and_a_matrix_without_them_is_indexed_as_before() -> None:
    assert DEFAULT_SETTINGS.keywords == "both"
    plain = [entry for entry in ENTRIES if not entry.keywords]
    assert settings_row_texts(plain, DEFAULT_SETTINGS) == settings_row_texts(
        plain, DEFAULT_SETTINGS.with_changes(keywords="off")
    )


def test_old_entries_and_manifests_without_keywords_read_the_same() -> None:
    old = {"id": "horario", "questions": ["¿Abren?"], "answer": "Sí.", "row": 2}
    assert Entry.from_dict(old).keywords == ()
    assert Entry.from_dict({**old, "keywords": None}).keywords == ()
    with pytest.raises(ValueError, match="keywords must be a list"):
        Entry.from_dict({**old, "keywords": "zona azul"})  # not ("z", "o", "n", "a", …)
    assert Entry.from_dict(PARKING.to_dict()) == PARKING
    settings = DEFAULT_SETTINGS.to_dict()
    del settings["keywords"]
    assert RetrievalSettings.from_dict(settings).keywords == "off"
    assert RetrievalSettings.from_dict(SETTINGS.with_changes(keywords="row").to_dict()).keywords == "row"
    with pytest.raises(ValueError, match="keywords"):
        RetrievalSettings.from_dict({**settings, "keywords": "sometimes"})


def test_a_matrix_without_keywords_hashes_as_before_the_column() -> None:
    plain = [entry for entry in ENTRIES if not entry.keywords]
    before = [{k: v for k, v in e.to_dict().items() if k not in ("row", "keywords")} for e in plain]
    payload = json.dumps(before, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    assert Matrix.of(plain).sha256 == hashlib.sha256(payload.encode("utf-8")).hexdigest()
    changed = [Entry(e.id, e.questions, e.answer, keywords=()) if e.id == "parqueadero" else e for e in ENTRIES]
    assert Matrix.of(changed).sha256 != Matrix.of(ENTRIES).sha256  # keywords are content


class RecordingEmbedder(DelegatingEmbedder):
    """The hashing fake, keeping the messages it is asked to embed (after shorthand and spelling correction)."""

    def __init__(self) -> None:
        super().__init__(HashingEmbedder(256))
        self.queries: list[str] = []

    def embed(self, texts: Sequence[str], *, role: TextRole = "query") -> FloatMatrix:
        if role == "query":
            self.queries.extend(texts)
        return self.inner.embed(texts, role=role)


@pytest.mark.parametrize(("mode", "corrected"), [("off", "pago en simerr"), ("both", "pago en simert")])
def test_spelling_correction_knows_the_keywords_only_when_they_are_used(mode: str, corrected: str) -> None:
    embedder = RecordingEmbedder()
    settings = SETTINGS.with_changes(keywords=mode, spelling_correction=True)
    KnowledgeBase.build(Matrix.of(ENTRIES), embedder, settings, in_memory_index=True).search("pago en simerr", 3)
    assert embedder.queries == [corrected]
