"""The answer journal's values: the person's keyed hash, the question as kept, the checks."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from answers.model import MAX_QUESTION, AnswerInvalid, AnswerRecord, Handling, clean_question, person_key

AT = datetime(2026, 11, 23, 14, 0, tzinfo=timezone.utc)


def test_person_key_is_a_keyed_hash_of_page_and_psid() -> None:
    key = person_key("secreto", "100", "2000")
    assert len(key) == 16 and int(key, 16) >= 0
    assert key == person_key("secreto", "100", "2000")
    assert key != person_key("otro", "100", "2000"), "another secret, another key"
    assert key != person_key("secreto", "101", "2000") != person_key("secreto", "100", "2001")
    assert "2000" not in key


def test_the_question_loses_control_characters_and_is_cut_at_500() -> None:
    assert clean_question("hola\x00\n  ¿tienen\u200b parqueo?\x7f") == "hola ¿tienen parqueo?"
    assert len(clean_question("a" * 900)) == MAX_QUESTION


@given(st.text(max_size=800))
def test_a_kept_question_never_has_control_characters_or_exceeds_the_limit(text: str) -> None:
    kept = clean_question(text)
    assert len(kept) <= MAX_QUESTION
    assert not any(ord(char) < 32 or 0x7F <= ord(char) <= 0x9F for char in kept)
    assert kept == kept.strip()


def test_a_record_is_cleaned_and_checked() -> None:
    record = AnswerRecord("100", "abc", " ¿horario?\t", "no_answer", AT, candidates=["a", "b"])  # type: ignore[arg-type]
    assert (record.question, record.handling, record.candidates, record.is_miss) == (
        "¿horario?", Handling.NO_ANSWER, ("a", "b"), True)
    assert not AnswerRecord("100", "abc", "x", Handling.DID_YOU_MEAN, AT).is_miss
    with pytest.raises(AnswerInvalid) as naive:
        AnswerRecord("100", "abc", "x", Handling.MATRIX, datetime(2026, 1, 1))
    assert naive.value.field == "at" and "zona horaria" in naive.value.message
    with pytest.raises(AnswerInvalid):
        AnswerRecord("", "abc", "x", Handling.MATRIX, AT)
    with pytest.raises(ValueError):
        AnswerRecord("100", "abc", "x", "answered", AT)  # type: ignore[arg-type]
