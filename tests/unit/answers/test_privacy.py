"""Masking before a question is stored (review 14, finding 8): e-mail addresses and long numbers go, what the question
is about stays readable. One table of cases; each row is (as written, as kept)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from answers.model import AnswerRecord, Handling, clean_question
from answers.privacy import EMAIL_MASK, NUMBER_MASK, mask_identifiers

CASES = [
    # e-mail addresses
    ("mi correo es ana.perez+1@gmail.com gracias", f"mi correo es {EMAIL_MASK} gracias"),
    ("escribanme a VENTAS_2@tienda-ec.com.ec", f"escribanme a {EMAIL_MASK}"),
    # phone numbers as people write them in Ecuador
    ("mi numero es 0991234567", f"mi numero es {NUMBER_MASK}"),
    ("llamame al 099 123 4567 porfa", f"llamame al {NUMBER_MASK} porfa"),
    ("whatsapp +593 99 123 4567", f"whatsapp {NUMBER_MASK}"),
    ("fijo (02) 234-5678", f"fijo {NUMBER_MASK}"),
    ("al 2345678 en la tarde", f"al {NUMBER_MASK} en la tarde"),
    ("099.123.4567", NUMBER_MASK),
    ("llamar al 0991234567.", f"llamar al {NUMBER_MASK}."),
    # cédula and RUC
    ("mi cedula 1712345678 para la factura", f"mi cedula {NUMBER_MASK} para la factura"),
    ("cédula 171234567-8", f"cédula {NUMBER_MASK}"),
    ("RUC 1712345678001", f"RUC {NUMBER_MASK}"),
    ("factura a 1712345678001, correo a@b.co", f"factura a {NUMBER_MASK}, correo {EMAIL_MASK}"),
    # short numbers stay: they are what the question is about
    ("tienen promo 2x1?", "tienen promo 2x1?"),
    ("cuesta $20 o $25.50?", "cuesta $20 o $25.50?"),
    ("abren el 10 de diciembre?", "abren el 10 de diciembre?"),
    ("hay talla 38?", "hay talla 38?"),
    ("tallas 36 38 40 42", "tallas 36 38 40 42"),
    ("llega entre 2 y 3 días?", "llega entre 2 y 3 días?"),
    ("de 9:00 a 18:00", "de 9:00 a 18:00"),
    ("el 10/12/2025 abren?", "el 10/12/2025 abren?"),
    ("pedido #123456", "pedido #123456"),
    ("cuesta $1.250", "cuesta $1.250"),
    ("", ""),
]


@pytest.mark.parametrize(("written", "kept"), CASES)
def test_identifiers_are_masked_and_short_numbers_stay(written: str, kept: str) -> None:
    assert mask_identifiers(written) == kept


def test_every_stored_question_is_masked() -> None:
    record = AnswerRecord(page_id="1", person_key="k", question="  mi cel\x00 0991234567\n y mi correo x@y.com ",
                          handling=Handling.HANDOFF, at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert record.question == f"mi cel {NUMBER_MASK} y mi correo {EMAIL_MASK}"
    assert clean_question("0" * 600) == NUMBER_MASK, "masked before it is cut: no digits left over"
