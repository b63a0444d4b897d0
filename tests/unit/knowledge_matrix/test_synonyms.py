"""Equivalent words (`synonyms.py`): a customer's word the matrix never uses, replaced by the one it does use."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knowledge_matrix import synonyms as synonyms_module
from knowledge_matrix.embedders import HashingEmbedder
from knowledge_matrix.errors import ArtifactError
from knowledge_matrix.knowledge_base import KnowledgeBase
from knowledge_matrix.matrix import Entry, Matrix
from knowledge_matrix.retrieval import Thresholds
from knowledge_matrix.settings import DEFAULT_SETTINGS, RetrievalSettings
from knowledge_matrix.synonyms import LexiconError, SynonymRewriter, load_lexicon, parse_lexicon, rewriter_for

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
LEXICON = parse_lexicon(
    "test",
    """
    # cuentas
    contraseña | clave | password
    cancelar | anular | dar de baja
    factura | recibo | comprobante
    descargar | bajar
    """,
)


def rewriter(*texts: str) -> SynonymRewriter:
    return SynonymRewriter.of(LEXICON, texts)


def test_a_word_the_matrix_does_not_use_becomes_the_one_it_does():
    matrix = rewriter("¿Cómo cambio mi contraseña?", "Entra a Ajustes y elige Contraseña.")
    assert matrix.rewrite("olvide mi clave del face") == "olvide mi contraseña del face"
    assert [(r.old, r.new) for r in matrix.replacements("me das el password?")] == [("password", "contraseña")]


def test_inflected_forms_match_by_stem_and_the_matrix_spelling_is_used():
    matrix = rewriter("¿Puedo cancelar un pedido?", "Sí, puedes cancelarlo desde la app.")
    assert matrix.rewrite("Anulé mi pedido, me devuelven?") == "cancelar mi pedido, me devuelven?"
    assert matrix.rewrite("quiero ANULAR") == "quiero cancelar"


def test_a_phrase_is_matched_whole_and_longest_first():
    matrix = rewriter("¿Cómo cancelo mi plan?")
    assert matrix.rewrite("quiero dar de baja el plan") == "quiero cancelo el plan"
    # «bajar» (download) is another group's term: the matrix uses neither of its members, so it stays
    assert matrix.rewrite("como bajo la app") == "como bajo la app"


def test_a_word_the_matrix_uses_is_never_touched():
    matrix = rewriter("¿Cómo descargo mi factura?", "Tu recibo llega por correo.")
    # «recibo» is used by the matrix (in an answer): kept even though «factura» is used more
    assert matrix.rewrite("donde veo mi recibo") == "donde veo mi recibo"
    assert matrix.rewrite("donde puedo bajar mi comprobante") == "donde puedo descargo mi factura"


def test_common_words_that_share_a_stem_with_a_term_are_left_alone():
    """A wrong replacement answers another question: nouns match by their form (singular or plural), verbs by a stem
    of four letters or more, and a stopword alone never matches."""
    shipped = SynonymRewriter.of(load_lexicon("es-equivalencias"), [
        "¿Cuánto demora la entrega?", "¿Tienen forros para celular?", "¿Qué hago si hay una avería?",
        "¿Cómo descargo la app?", "¿Atiende un médico?", "¿Aceptan débito automático?", "¿Dónde veo mi factura?",
    ])
    for message in ("Buenas tardes, cuándo recibo mi pedido?", "hacen entregas a casa?", "en caso de daño",
                    "me dan garantía?", "la velocidad está muy baja", "precio bajo", "abren a las doce?",
                    "entrega a domicilio"):
        assert shipped.rewrite(message) == message
    assert shipped.rewrite("Mis comprobantes") == "Mis factura"  # a plural, and the matrix's lower case


def test_the_matrix_usual_form_is_inserted_in_lower_case_unless_it_is_always_capitalised():
    matrix = rewriter("Factura electrónica al instante.", "Le enviamos la factura por correo.", "Factura anual")
    assert matrix.rewrite("el comprobante?") == "el factura?"
    names = SynonymRewriter.of(parse_lexicon("t", "whatsapp | wasap"), ["Escríbanos por WhatsApp", "WhatsApp: 099"])
    assert names.rewrite("tienen wasap?") == "tienen WhatsApp?"


def test_the_member_the_matrix_uses_most_wins():
    matrix = rewriter("factura electrónica", "¿Dónde está mi factura?", "comprobante de pago")
    assert matrix.rewrite("y el recibo?") == "y el factura?"


def test_a_matrix_using_no_member_leaves_the_message_as_it_is():
    matrix = rewriter("¿Cuál es el horario?", "Abrimos de 9 a 18.")
    message = "olvidé la clave, quiero anular y bajar el recibo"
    assert matrix.rewrite(message) == message
    assert matrix.replacements(message) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("contraseña | clave\nclave | pin", "matched like «clave» (line 1)"),
        ("contraseña | contraseñas", "two terms or more"),  # the same term once stemmed
        ("reservas | cita\nreserva | turno", "matched like «reservas» (line 1)"),
        ("anular | cancelar\nanularse | borrar", "matched like «anular» (line 1)"),  # verbs by their stem
        ("contraseña", "two terms or more"),
        ("contraseña | | clave", "an empty term"),
        ("dar de baja al plan | cancelar", "more than 3 words"),
        ("de | cancelar", "only stopwords"),
    ],
)
def test_a_malformed_lexicon_names_the_line(text: str, problem: str):
    with pytest.raises(LexiconError, match="line") as raised:
        parse_lexicon("bad", text)
    assert problem in str(raised.value)
    assert isinstance(raised.value, ArtifactError)


def test_the_shipped_lexicon_loads_and_a_missing_or_bad_name_is_a_clear_error():
    shipped = load_lexicon("es-equivalencias")
    assert len(shipped.groups) >= 200
    assert all(len(group) >= 2 for group in shipped.groups)
    with pytest.raises(LexiconError, match="not shipped"):
        load_lexicon("no-such-lexicon")
    with pytest.raises(LexiconError, match="invalid lexicon name"):
        load_lexicon("../settings")
    assert rewriter_for("", ["texto"]) is None


WORDS = st.sampled_from(["clave", "Clave", "contraseña", "anulo", "dar", "de", "baja", "recibo", "hola", "mi", "el"])


@settings(max_examples=200, deadline=None)
@given(st.lists(WORDS, max_size=8), st.sampled_from([" ", ", ", "  ", "? "]))
def test_rewriting_changes_only_the_terms_it_names(words: list[str], separator: str):
    matrix = rewriter("¿Cómo cambio mi contraseña?", "Para cancelar escribe a soporte.")
    message = separator.join(words)
    replaced = matrix.replacements(message)
    # In order, not overlapping, each a term the matrix does not use, each becoming one it does.
    assert all(a.end <= b.start for a, b in zip(replaced, replaced[1:], strict=False))
    assert all(message[r.start : r.end] == r.old for r in replaced)
    assert all(r.old.casefold() not in ("contraseña", "cancelar") for r in replaced)
    assert all(r.new in ("contraseña", "cancelar") for r in replaced)
    # Everything between the replacements is the message's own text.
    expected, position = [], 0
    for r in replaced:
        expected += [message[position : r.start], r.new]
        position = r.end
    rewritten = matrix.rewrite(message)
    assert rewritten == "".join(expected) + message[position:]
    assert matrix.rewrite(rewritten) == rewritten  # the matrix's own words are never rewritten again


# --- in the knowledge base ----------------------------------------------------------------------------------------

ENTRIES = (
    Entry("acceso", ("¿Cómo cambio mi contraseña?",), "En Ajustes, elija Contraseña y escriba la nueva."),
    Entry("horario", ("¿Cuál es el horario de atención?",), "De lunes a viernes de 8 a 18."),
    Entry("pedidos", ("¿Puedo cancelar un pedido?",), "Sí, hasta una hora después de hacerlo."),
)
KB_SETTINGS = DEFAULT_SETTINGS.with_changes(
    embedder="hashing:64", query_adapter="", synonyms="es-equivalencias", thresholds=Thresholds(answer=0.6, suggest=0.2)
)


def test_the_knowledge_base_searches_the_message_as_the_matrix_words_it(tmp_path: Path):
    matrix = Matrix.of(ENTRIES)
    without = KB_SETTINGS.with_changes(synonyms="")
    plain = KnowledgeBase.build(matrix, HashingEmbedder(64), without, in_memory_index=True)
    knowledge = KnowledgeBase.build(matrix, HashingEmbedder(64), KB_SETTINGS, in_memory_index=True)
    message = "olvide mi clave"
    assert [(r.old, r.new) for r in knowledge.equivalent_words(message)] == [("clave", "contraseña")]
    assert plain.equivalent_words(message) == []
    rewritten = knowledge.search("olvide mi contraseña")
    found = knowledge.search(message)
    # The same hits, to the bit, as the message written with the matrix's word; without the lexicon they differ.
    assert [(h.entry_id, h.score) for h in found] == [(h.entry_id, h.score) for h in rewritten]
    assert [(h.entry_id, h.score) for h in plain.search(message)] != [(h.entry_id, h.score) for h in found]
    assert found[0].entry_id == "acceso"
    assert [h[0].entry_id for h in knowledge.search_many([message, "quiero anular mi pedido"])] == ["acceso", "pedidos"]
    # Chat shorthand is expanded first, as the search does: «q» is not a word the lexicon is asked about.
    assert [(r.old, r.new) for r in knowledge.equivalent_words("q paso con mi clave")] == [("clave", "contraseña")]
    # The version keeps the lexicon it was built with; a manifest from before it reads as none.
    knowledge.save(tmp_path / "version", now=NOW)
    loaded = KnowledgeBase.load(tmp_path / "version", HashingEmbedder(64))
    assert loaded.settings.synonyms == "es-equivalencias"
    assert [(h.entry_id, h.score) for h in loaded.search(message)] == [(h.entry_id, h.score) for h in found]
    written = KB_SETTINGS.to_dict()
    assert RetrievalSettings.from_dict({k: v for k, v in written.items() if k != "synonyms"}).synonyms == ""
    assert RetrievalSettings.from_dict({**written, "synonyms": None}).synonyms == ""


def test_a_word_the_editor_puts_in_the_keywords_is_kept_as_the_customer_wrote_it():
    """An editor who disagrees with a replacement writes the customer's word in the entry's «palabras clave»."""
    entries = (*ENTRIES[1:], Entry("acceso", ENTRIES[0].questions, ENTRIES[0].answer, keywords=("clave wifi",)))
    knowledge = KnowledgeBase.build(Matrix.of(entries), HashingEmbedder(64), KB_SETTINGS, in_memory_index=True)
    assert knowledge.equivalent_words("olvide mi clave") == []


def test_a_version_naming_a_lexicon_this_release_does_not_ship_is_refused():
    with pytest.raises(ArtifactError, match="not shipped"):
        KnowledgeBase.build(Matrix.of(ENTRIES), HashingEmbedder(64), KB_SETTINGS.with_changes(synonyms="es-otro"),
                            in_memory_index=True)


def test_a_version_keeps_the_table_it_was_built_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Loading reads the stored table, not the lexicon: a later release's lexicon does not change an old version's
    answers, and a damaged table is a clear artifact error."""
    knowledge = KnowledgeBase.build(Matrix.of(ENTRIES), HashingEmbedder(64), KB_SETTINGS, in_memory_index=True)
    knowledge.save(tmp_path / "version", now=NOW)
    monkeypatch.setattr(synonyms_module, "LEXICON_DIR", tmp_path / "no-lexicons-here")
    synonyms_module.load_lexicon.cache_clear()
    try:
        loaded = KnowledgeBase.load(tmp_path / "version", HashingEmbedder(64))
        assert [(r.old, r.new) for r in loaded.equivalent_words("quiero anular")] == [("anular", "cancelar")]
        stored = tmp_path / "version" / "synonyms.json"
        for damaged in ('{"lexicon": "x", "terms": [[["clav"], 3]]}', '{"terms": []}', "[1, 2]", "{"):
            stored.write_text(damaged, encoding="utf-8")
            with pytest.raises(ArtifactError):
                KnowledgeBase.load(tmp_path / "version", HashingEmbedder(64))
        stored.unlink()
        with pytest.raises(ArtifactError):
            KnowledgeBase.load(tmp_path / "version", HashingEmbedder(64))
    finally:
        synonyms_module.load_lexicon.cache_clear()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_message_is_rewritten_without_error_and_only_where_it_says(message: str):
    matrix = SynonymRewriter.of(load_lexicon("es-equivalencias"), ["¿Cómo cambio mi contraseña?", "Factura y envío"])
    replaced = matrix.replacements(message)
    expected, position = [], 0
    for r in replaced:
        assert message[r.start : r.end] == r.old and r.start >= position
        expected += [message[position : r.start], r.new]
        position = r.end
    assert matrix.rewrite(message) == "".join(expected) + message[position:]
