"""The demo matrix tells customers Meta's sending rules as `outbox/policy.yml` encodes them.

On the old matrix these fail: `mensajes_etiqueta`, `difusion` and `transmisiones` said tags are needed
"después de 7 días" (the standard window is 24 hours) and listed the retired event/purchase/account
tags as the approved use cases, without saying they were retired.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from knowledge_matrix.matrix import Entry, entries_from_sheet, read_sheet
from outbox.policy import Policy, load_policy

ROOT = Path(__file__).resolve().parents[2]
MATRICES = sorted((ROOT / "data").glob("*.csv"))
MONTHS_ES = ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
             "noviembre", "diciembre")
TAG_NAME = re.compile(r"\b[A-Z]{3,}(?:_[A-Z]+)+\b")
RETIRED_WORDS = re.compile(r"retirad|retiró|ya no se pueden? usar|dejaron de|obsolet", re.IGNORECASE)
# The Spanish names the old answers used for the retired tags' use cases.
RETIRED_USE_CASES_ES = ("evento confirmado", "eventos confirmados", "posterior a la compra", "posventa",
                        "actualización de cuenta")


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


def _entries(path: Path) -> list[Entry]:
    return list(entries_from_sheet(read_sheet(path)))


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.;:])\s+|\n", text) if s.strip()]


def _rule(policy: Policy, name: str):  # type: ignore[no-untyped-def]
    (rule,) = [rule for rule in policy.rules if rule.name == name]
    return rule


@pytest.mark.parametrize("path", MATRICES, ids=lambda p: p.name)
def test_every_tag_a_matrix_names_exists_and_is_called_retired_iff_the_policy_retires_it(
    path: Path, policy: Policy
) -> None:
    tags = {rule.tag: rule for rule in policy.rules if rule.tag}
    for entry in _entries(path):
        for sentence in _sentences(entry.answer):
            for tag in TAG_NAME.findall(sentence):
                assert tag in tags, f"{entry.id}: {tag} is not a tag of outbox/policy.yml"
                retired = tags[tag].valid_until is not None
                says_retired = bool(RETIRED_WORDS.search(sentence))
                assert says_retired == retired, (
                    f"{entry.id}: «{sentence}» must {'say' if retired else 'not say'} that {tag} is retired"
                )
            if any(name in sentence.lower() for name in RETIRED_USE_CASES_ES):
                assert RETIRED_WORDS.search(sentence), f"{entry.id}: «{sentence}» offers a retired tag as current"


@pytest.mark.parametrize("path", MATRICES, ids=lambda p: p.name)
def test_window_lengths_in_answers_are_the_policys(path: Path, policy: Policy) -> None:
    standard = _rule(policy, "RESPONSE").window_to
    human = _rule(policy, "HUMAN_AGENT").window_to
    assert standard == timedelta(hours=24) and human == timedelta(days=7)  # what the wording below assumes
    for entry in _entries(path):
        for sentence in _sentences(entry.answer):
            for hours in re.findall(r"(\d+)\s*horas", sentence):
                assert timedelta(hours=int(hours)) == standard, f"{entry.id}: «{sentence}»"
            for days in re.findall(r"(\d+)\s*días", sentence):
                # Days are only ever the HUMAN_AGENT limit, and said so: never "tags after 7 days".
                assert timedelta(days=int(days)) == human, f"{entry.id}: «{sentence}»"
                assert "HUMAN_AGENT" in sentence or "persona" in sentence, (
                    f"{entry.id}: «{sentence}» gives a number of days that is not the HUMAN_AGENT limit"
                )


@pytest.mark.parametrize("path", MATRICES, ids=lambda p: p.name)
def test_retirement_dates_and_promotional_content(path: Path, policy: Policy) -> None:
    until = {rule.valid_until for rule in policy.rules if rule.valid_until is not None}
    (date,) = until
    expected = f"{date.day} de {MONTHS_ES[date.month - 1]} de {date.year}"
    entries = {entry.id: entry for entry in _entries(path)}
    for entry in entries.values():
        for match in re.findall(r"\d{1,2} de [a-z]+ de 20\d\d", entry.answer):
            if RETIRED_WORDS.search(entry.answer):
                assert match == expected, f"{entry.id}: retirement date {match}, policy says {expected}"
    tags_entry = entries.get("mensajes_etiqueta")
    if tags_entry is not None:
        assert "promocional" in tags_entry.answer, "the tag entry must say tags never carry promotional content"
        assert "HUMAN_AGENT" in tags_entry.answer
        retired = sorted(rule.tag for rule in policy.rules if rule.tag and rule.valid_until is not None)
        assert all(tag in tags_entry.answer for tag in retired)
