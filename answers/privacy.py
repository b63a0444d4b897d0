"""What of a customer's question the journal must not keep: obvious personal identifiers, masked before a question is
stored (`mask_identifiers`, applied by `answers.model.clean_question`).

- e-mail addresses → «[correo]»;
- phone numbers, cédulas, RUCs and any other run of 7 or more digits (spaces, dashes, dots or brackets between the
  digit groups, a leading +) → «[número]».

Short numbers stay readable, since they are what a question is about: "2x1", "$20", "10 de diciembre", "talla 38",
"entre 2 y 3 días", "de 9:00 a 18:00". A run of small groups ("tallas 36 38 40 42") is kept too: a phone number has a
group of 3 or more digits. Names are not recognised: the README says so.
"""

from __future__ import annotations

import re

EMAIL_MASK = "[correo]"
NUMBER_MASK = "[número]"
MIN_IDENTIFIER_DIGITS = 7  # Ecuador: landlines 7 digits, mobiles 10, cédula 10, RUC 13
MIN_PHONE_GROUP = 3  # "099 123 4567", "(02) 234-5678": a phone always has a group this long

_EMAIL = re.compile(r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+")
# Digit groups joined by one or two separators (space, dash, dot) and optionally bracketed: one candidate per run.
_DIGIT_RUN = re.compile(r"\+?\(?\d+\)?(?:[ .\-]{1,2}\(?\d+\)?)*")
_DIGITS = re.compile(r"\d+")


def _number(match: re.Match[str]) -> str:
    groups = _DIGITS.findall(match.group(0))
    digits = sum(len(group) for group in groups)
    longest = max(len(group) for group in groups)
    if digits >= MIN_IDENTIFIER_DIGITS and (longest >= MIN_PHONE_GROUP or len(groups) == 1):
        return NUMBER_MASK
    return match.group(0)


def mask_identifiers(text: str) -> str:
    """The text with e-mail addresses and long numbers (phones, cédulas, RUCs) masked; everything else as written."""
    return _DIGIT_RUN.sub(_number, _EMAIL.sub(EMAIL_MASK, text))


__all__ = ["EMAIL_MASK", "NUMBER_MASK", "mask_identifiers"]
