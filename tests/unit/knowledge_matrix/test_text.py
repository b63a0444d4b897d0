from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from knowledge_matrix.text import (
    canonical_key,
    char_ngrams,
    content_terms,
    expand_shorthand,
    fold,
    raw_tokens,
    snowball_terms,
    stem,
)


def test_fold_strips_accents_and_case() -> None:
    assert fold("Categoría ÁÉÍÓÚ Ñandú") == "categoria aeiou nandu"


def test_raw_tokens_expand_chat_shorthand_and_collapse_repeats() -> None:
    assert raw_tokens("xq no me responden q pasaaa") == ["porque", "no", "me", "responden", "que", "pasa"]


def test_stem_joins_plural_and_conjugated_forms() -> None:
    assert stem("contactos") == stem("contacto")
    assert stem("conectar") == stem("conectamos") == stem("conecto")[:6]
    assert stem("ciudades") == stem("ciudad")


def test_content_terms_drop_stopwords() -> None:
    assert content_terms("¿Cómo puedo pagar la factura?") == ["pagar", "factur"]


def test_snowball_terms_fold_and_stem_like_a_spanish_reader() -> None:
    assert snowball_terms("¿Puedo EXPORTAR la exportación de mis clienteees?") == ["export", "export", "client"]
    assert snowball_terms("facturas factura facturación") == ["factur"] * 3


def test_char_ngrams_are_marked_at_word_boundaries() -> None:
    grams = char_ngrams("pago")
    assert "<pa" in grams and "go>" in grams and "<pag" in grams


def test_expand_shorthand_keeps_other_words_untouched() -> None:
    assert expand_shorthand("cuanto tengo q pagar x el Bot, porfa") == "cuanto tengo que pagar por el Bot, por favor"


def test_canonical_key_ignores_accents_punctuation_and_case() -> None:
    assert canonical_key("¿Cuál es el HORARIO?") == canonical_key("cual es el horario")


@given(st.text(max_size=200))
def test_normalization_never_fails_and_is_idempotent(text: str) -> None:
    assert fold(fold(text)) == fold(text)
    assert canonical_key(canonical_key(text)) == canonical_key(text)
    assert all(gram for gram in char_ngrams(text))
