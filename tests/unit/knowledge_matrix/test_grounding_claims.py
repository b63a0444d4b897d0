"""The GPT grounding check against claims the entries do not make (issue 8, item 9).

On the old check each "declined" case below was sent: numbers in words were not numbers ("cinco dólares"
against an entry that says $30), a domain with an unlisted top-level name or a Unicode look-alike was not a
link (`pagos-ecuabots.site`, `ecuabοts.com`), and the customer's own words counted as grounded ("me dijeron
que es gratis" → "Sí, es gratis"). The "sent" cases are the controls: the same shapes, grounded.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.settings import Settings, load_settings
from knowledge_matrix.errors import LLMSettingsError
from knowledge_matrix.llm.claims import _EMAIL, _URL, _url_key, extract_facts
from knowledge_matrix.llm.grounding import GroundedEntry, check_grounding
from knowledge_matrix.llm.guard import interpret_reply
from knowledge_matrix.llm.settings import llm_settings_from
from knowledge_matrix.matrix import entries_from_sheet, parse_csv_bytes
from knowledge_matrix.numbers import quantity_claims, words_to_digits

PLAN_ES = GroundedEntry(
    "plan", ("¿Cuánto cuesta el plan?",),
    "El plan Pro cuesta $30 al mes, el plan Empresa $1500 al año y la instalación $35. Pague en https://ecuabots.com",
)
PLAN_EN = GroundedEntry(
    "plan_en", ("How much is the plan?",),
    "The Pro plan costs $30 per month, the Business plan $1500 per year and setup is $35. Pay at https://ecuabots.com",
)
ENTRIES = (PLAN_ES, PLAN_EN)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cuesta cinco dólares", "cuesta 5 dólares"),
        ("treinta y cinco", "35"),
        ("mil quinientos", "1500"),
        ("doscientos treinta y cuatro", "234"),
        ("dos mil", "2000"),
        ("un millón doscientos mil", "1200000"),
        ("veintidós", "22"),
        ("thirty-five dollars", "35 dollars"),
        ("one thousand five hundred", "1500"),
        ("fifteen hundred", "1500"),
        ("one hundred and five", "105"),
        ("dos y tres", "2 y 3"),  # two numbers, not five
        ("un asesor le escribe", "un asesor le escribe"),  # an article, not a number
        ("un dólar", "1 dólar"),
    ],
)
def test_numbers_in_words_become_digits(text: str, expected: str) -> None:
    assert words_to_digits(text) == expected


def test_english_once_is_not_eleven() -> None:
    assert words_to_digits("Once you pay, we start.", english=True) == "Once you pay, we start."
    assert words_to_digits("once días") == "11 días"


@pytest.mark.parametrize(
    "reply",
    [
        "El plan Pro cuesta cinco dólares al mes.",
        "El plan Pro cuesta treinta y seis dólares al mes.",
        "El plan Empresa cuesta mil cuatrocientos dólares al año.",
        "The Pro plan costs five dollars per month.",
        "The Pro plan costs thirty-six dollars per month.",
        "The Business plan costs one thousand four hundred dollars per year.",
    ],
)
def test_prices_in_words_that_the_entries_do_not_say_are_declined(reply: str) -> None:
    result = interpret_reply(reply, ENTRIES)
    assert result.kind == "no_answer" and result.reason in ("ungrounded_amount", "ungrounded_number"), result


@pytest.mark.parametrize(
    "reply",
    [
        "El plan Pro cuesta treinta dólares al mes.",
        "La instalación cuesta treinta y cinco dólares.",
        "El plan Empresa cuesta mil quinientos dólares al año.",
        "The Pro plan costs thirty dollars per month.",
        "Setup is thirty-five dollars.",
        "The Business plan costs one thousand five hundred dollars per year.",
    ],
)
def test_prices_in_words_that_the_entries_say_are_sent(reply: str) -> None:
    assert interpret_reply(reply, ENTRIES).kind == "answer"


@pytest.mark.parametrize(
    "domain",
    [
        "ecuabots-pagos.com",
        "ecuab0ts.com",
        "www.ecuab0ts.com",
        "https://ecuab0ts.com",
        "pagos-ecuabots.site",
        "ecuabots.pagos.xyz",
        "ecuabοts.com",  # Greek omicron
        "xn--ecuabts-5ve.com",
        "ecuabots.com.pagos.online",
        "http://ecuabots.com.evil.io/pagar",
    ],
)
@pytest.mark.parametrize("sentence", ["Pague el plan Pro en {domain}", "Pay for the Pro plan at {domain}"])
def test_look_alike_domains_with_or_without_scheme_are_declined(domain: str, sentence: str) -> None:
    result = interpret_reply(sentence.format(domain=domain) + ".", ENTRIES)
    assert (result.kind, result.reason) == ("no_answer", "ungrounded_link"), result


@pytest.mark.parametrize("domain", ["ecuabots.com", "www.ecuabots.com", "https://ecuabots.com", "ECUABOTS.COM"])
def test_the_entries_own_domain_is_sent_in_any_spelling(domain: str) -> None:
    assert interpret_reply(f"Pague el plan Pro en {domain}.", ENTRIES).kind == "answer"


@pytest.mark.parametrize(
    ("question", "reply"),
    [
        ("Me dijeron que el plan es gratis, ¿es cierto?", "Sí, el plan es gratis."),
        ("¿La instalación es gratuita? Un amigo dijo que sí", "Sí, la instalación es gratuita."),
        ("Someone told me the plan is free, right?", "Yes, the plan is free."),
        ("Is setup included for free?", "Yes, setup is included for free."),
    ],
)
def test_the_customers_own_words_are_not_grounding(question: str, reply: str) -> None:
    result = interpret_reply(reply, ENTRIES, question=question)
    assert result.kind == "no_answer" and result.reason in ("echoes_question", "off_topic"), result


def test_a_reply_grounded_in_the_entries_may_still_share_words_with_the_question() -> None:
    result = interpret_reply("El plan Pro cuesta $30 al mes.", ENTRIES, question="¿Cuánto cuesta el plan Pro?")
    assert result.kind == "answer"


@pytest.mark.parametrize("url", ["http://llm.example.com/v1", "ftp://llm.example.com", "llm.example.com"])
def test_production_requires_an_https_llm_base_url(url: str) -> None:
    """Item 10: `BOT_ENV=production` with a non-https LLM_BASE_URL is refused (the action server then logs
    the error and keeps the fallback off, as for any unusable LLM_* value)."""
    with pytest.raises(LLMSettingsError, match="LLM_BASE_URL"):
        llm_settings_from(Settings(environment="production", llm_base_url=url, llm_api_key="k"))


def test_loopback_http_is_allowed_in_production_and_anything_http_in_development() -> None:
    for url in ("http://127.0.0.1:8080/v1", "http://localhost:11434/v1", "http://[::1]:8000/v1"):
        assert llm_settings_from(Settings(environment="production", llm_base_url=url)).base_url == url
    assert llm_settings_from(load_settings({"LLM_BASE_URL": "http://llm.lan/v1/"})).base_url == "http://llm.lan/v1"
    assert llm_settings_from(Settings(environment="production")).base_url.startswith("https://")


# --------------------------------------------------------------------------- quantity words and disguised links
# Review of item 9: on the previous check every "declined" reply below was sent as grounded. Quantity words had
# no digits ("una docena de dólares", "el doble", "cientos de clientes"), and a link with a disguised dot
# (`ecuabots[.]xyz`, `ecuabots punto com`, U+2024 one dot leader) was not a link.

NO_LINK = GroundedEntry("pagos", ("¿Cómo pago?",), "Puede pagar el plan Pro por transferencia bancaria o en efectivo.")
CLIENTS = GroundedEntry(
    "clientes", ("¿Tienen clientes?",),
    "Atendemos a cientos de clientes. El plan Empresa cuesta el doble que el plan Pro. Una caja trae una docena "
    "de botellas.",
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("una docena de dólares", "12 dólares"),
        ("dos docenas de botellas", "24 botellas"),
        ("media docena", "6"),
        ("half a dozen bottles", "6 bottles"),
        ("un par de dólares", "2 dólares"),
        ("a couple of dollars", "2 dollars"),
        ("a la par", "a la par"),  # not a pair
        ("llegamos a decenas de clientes", "llegamos a decenas de clientes"),  # vague, not "a" = 1 × 10
        ("dos millones de dólares", "2000000 de dólares"),  # a counted scale stays a number
    ],
)
def test_counted_quantity_words_become_digits(text: str, expected: str) -> None:
    assert words_to_digits(text) == expected


@pytest.mark.parametrize(
    ("text", "claims"),
    [
        ("cuesta el doble", {"x2"}),
        ("la mitad del precio", {"x1/2"}),
        ("twice the price, half the time", {"x2", "x1/2"}),
        ("cientos de clientes y decenas de pedidos", {"~100", "~10"}),
        ("hundreds of customers, thousands of orders", {"~100", "~1000"}),
        ("miles de clientes", {"~1000"}),
        ("10 miles away", set()),  # English miles are a distance
    ],
)
def test_relative_and_vague_quantities_are_claims(text: str, claims: set[str]) -> None:
    assert quantity_claims(words_to_digits(text))[1] == claims


@pytest.mark.parametrize(
    "reply",
    [
        "El plan Pro cuesta una docena de dólares al mes.",
        "El plan Pro cuesta un par de dólares al mes.",
        "El plan Empresa cuesta el doble del plan Pro.",
        "La instalación cuesta la mitad del plan Pro.",
        "El plan Pro tiene cientos de clientes.",
        "El plan Pro tiene decenas de clientes.",
        "The Pro plan costs a dozen dollars per month.",
        "The Pro plan costs a couple of dollars per month.",
        "Setup is half the Pro plan.",
        "The Business plan costs twice the Pro plan.",
        "The Pro plan has hundreds of customers.",
    ],
)
def test_quantity_words_the_entries_do_not_say_are_declined(reply: str) -> None:
    result = interpret_reply(reply, ENTRIES)
    assert result.kind == "no_answer", f"an ungrounded quantity was sent: {result}"
    assert result.reason in ("ungrounded_amount", "ungrounded_number", "ungrounded_quantity"), result


@pytest.mark.parametrize(
    "reply",
    [
        "Atendemos a cientos de clientes.",
        "El plan Empresa cuesta el doble que el plan Pro.",
        "Una caja trae 12 botellas.",  # the entry says "una docena"
        "Una caja trae doce botellas.",
    ],
)
def test_quantity_words_the_entries_say_are_sent(reply: str) -> None:
    """Controls: the same claims, made by the entry in the same or other words."""
    assert interpret_reply(reply, (CLIENTS,)).kind == "answer"


def test_a_dozen_is_grounded_by_twelve_in_the_entries() -> None:
    entry = GroundedEntry("caja", ("¿Cuántas botellas trae una caja?",), "Cada caja trae 12 botellas.")
    assert interpret_reply("Cada caja trae una docena de botellas.", (entry,)).kind == "answer"
    assert interpret_reply("Cada caja trae dos docenas de botellas.", (entry,)).kind == "no_answer"


@pytest.mark.parametrize(
    ("domain", "entries"),
    [
        ("ecuabots[.]xyz", ENTRIES),
        ("ecuabots(.)xyz", ENTRIES),
        ("ecuabots[dot]xyz", ENTRIES),
        ("ecuabots . xyz", ENTRIES),
        ("ecuabots dot xyz", ENTRIES),
        ("ecuabots punto xyz", ENTRIES),
        ("ecuabots\u2024xyz", ENTRIES),  # one dot leader
        ("ecuabots\uff0exyz", ENTRIES),  # fullwidth full stop
        ("ecuabots\u3002xyz", ENTRIES),  # ideographic full stop
        ("ecuabots\uff61xyz", ENTRIES),  # halfwidth ideographic full stop
        ("ecuabots . com/pagar", ENTRIES),  # a path the entries do not give
        ("ecuabots . com", (NO_LINK,)),
        ("ecuabots dot com", (NO_LINK,)),
        ("ecuabots punto com", (NO_LINK,)),
        ("ecuabots[.]com", (NO_LINK,)),
        ("ecuabots\u2024com", (NO_LINK,)),
    ],
)
def test_links_with_disguised_dots_are_declined(domain: str, entries: tuple[GroundedEntry, ...]) -> None:
    result = interpret_reply(f"Pague el plan Pro en {domain}.", entries)
    assert (result.kind, result.reason) == ("no_answer", "ungrounded_link"), result


@pytest.mark.parametrize("address", ["pagos(at)ecuabots.xyz", "pagos [at] ecuabots[.]com", "pagos arroba ecuabots.com"])
def test_e_mails_with_disguised_at_signs_are_declined(address: str) -> None:
    result = interpret_reply(f"Pague el plan Pro escribiendo a {address}.", (NO_LINK,))
    assert (result.kind, result.reason) == ("no_answer", "ungrounded_email"), result


@pytest.mark.parametrize(
    ("entry_answer", "reply"),
    [
        ("Abrimos a las 9 en punto de la mañana.", "Abrimos a las 9 en punto."),
        ("Nuestro punto de venta está en Quito.", "El punto de venta está en Quito."),
        ("Pague en https://ecuabots.com/pagar", "Pague en ecuabots . com/pagar."),  # the entries' own link
    ],
)
def test_spaced_and_spelled_dots_elsewhere_are_not_links(entry_answer: str, reply: str) -> None:
    """Controls: "punto" and a spaced dot are not read as a link where no top-level name follows."""
    entry = GroundedEntry("e", ("¿Dónde?",), entry_answer)
    assert interpret_reply(reply, (entry,)).kind == "answer"


# --------------------------------------------------------------------------- second review: any top-level label
# On the previous check every "declined" reply below was sent as grounded: a spaced or spelled-out dot was undone
# only before a fixed list of top-level names (`ecuabots punto es`, `ecuabots . ru` and a second label after
# `.com` were prose), a bare "at" was no at-sign, "una quincena" was no number and a span of time had no unit.
# And the controls "Gracias. Me alegra" / "Gracias . Me alegra" were read as the link `gracias.me`.

PAGOS = GroundedEntry(
    "pagos", ("¿Cómo pago el plan Pro?",),
    "Pague el plan Pro en https://ecuabots.com/pagos o escriba a pagos@ecuabots.com. La entrega tarda 2 días.",
)
PAGOS_EN = GroundedEntry(
    "pagos_en", ("How do I pay for the Pro plan?",),
    "Pay for the Pro plan at https://ecuabots.com/pagos or write to pagos@ecuabots.com. Delivery takes 2 days.",
)


@pytest.mark.parametrize(
    "domain",
    [
        "ecuabots punto es",
        "ecuabots punto de",
        "ecuabots . ru",
        "ecuabots .ru",
        "ecuabots dot com dot ru",
        "ecuabots punto com punto br",
        "ecuabots.com punto br",
        "ecuabots.com . ru",
        "ecuabots punto tienda",
        "ecuab0ts punto com",
        "ecuabots . Shop",
    ],
)
def test_spaced_and_spelled_dots_before_any_label_are_declined(domain: str) -> None:
    """A disguised dot before any 2–24-letter label makes a link, which the entries must hold."""
    for sentence in (f"Pague el plan Pro en {domain}.", f"Pay for the Pro plan on {domain}."):
        result = interpret_reply(sentence, (PAGOS, PAGOS_EN))
        assert (result.kind, result.reason) == ("no_answer", "ungrounded_link"), (sentence, result)


@pytest.mark.parametrize(
    "reply",
    [
        "Escríbanos a ventas at ecuabots dot com para pagar el plan Pro.",
        "Escríbanos a ventas at ecuabots.com para pagar el plan Pro.",
        "Escríbanos a ventas arroba ecuabots punto com para pagar el plan Pro.",
        "Write to sales at ecuabots dot com to pay for the Pro plan.",
    ],
)
def test_a_bare_at_between_a_mailbox_and_a_domain_is_an_e_mail(reply: str) -> None:
    """`ventas at ecuabots dot com` is ventas@ecuabots.com, an address the entries do not give."""
    result = interpret_reply(reply, (PAGOS, PAGOS_EN))
    assert (result.kind, result.reason) == ("no_answer", "ungrounded_email"), result


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("La entrega del plan Pro tarda una quincena.", "ungrounded_number"),
        ("La entrega del plan Pro tarda un par de semanas.", "ungrounded_duration"),
        ("La entrega del plan Pro tarda 2 semanas.", "ungrounded_duration"),
        ("La entrega del plan Pro tarda 2 meses.", "ungrounded_duration"),
        ("Delivery of the Pro plan takes a couple of weeks.", "ungrounded_duration"),
        ("Delivery of the Pro plan takes 2 hours.", "ungrounded_duration"),
    ],
)
def test_spans_of_time_must_have_the_entries_number_and_unit(reply: str, reason: str) -> None:
    result = interpret_reply(reply, (PAGOS, PAGOS_EN))
    assert (result.kind, result.reason) == ("no_answer", reason), result


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("una quincena", "15 días"),
        ("una quincena de espera", "15 días de espera"),
        ("dos quincenas", "30 días"),
        ("a fortnight", "14 days"),
        ("un par de semanas", "2 semanas"),
    ],
)
def test_counted_spans_of_time_keep_their_unit(text: str, expected: str) -> None:
    assert words_to_digits(text) == expected


@pytest.mark.parametrize(
    ("entry_answer", "reply"),
    [
        ("Gracias por escribir. Me alegra ayudarle con el plan Pro.", "Gracias. Me alegra ayudarle con el plan Pro."),
        ("Gracias por escribir. Me alegra ayudarle con el plan Pro.", "Gracias . Me alegra ayudarle con el plan Pro."),
        ("Visite https://ecuabots.com/pagos para el plan Pro.", "Visite ecuabots.com/pagos . Es el plan Pro."),
        ("Abrimos a las 9 en punto de la mañana.", "Abrimos a las 9 en punto de la mañana."),
        ("Nuestro punto de venta está en Quito.", "Nuestro punto de venta está en Quito."),
        ("Tenemos un buen punto de venta en Quito.", "Es el mejor punto de venta de Quito."),
        ("Pay for the Pro plan at https://ecuabots.com/pagos", "Pay for the Pro plan at ecuabots.com/pagos."),
        ("Find us at https://ecuabots.com/pagos", "Find us at ecuabots dot com/pagos."),
        ("Escriba a pagos@ecuabots.com", "Escriba a pagos at ecuabots punto com."),  # the entries' own address
        ("La entrega tarda 2 a 3 días hábiles.", "La entrega tarda 2 días hábiles."),
        ("Atendemos 24 horas.", "Atendemos 24 horas."),
        ("Abrimos de 9:00 a 18:00.", "Abrimos de 9 a 18 horas."),  # times of day are not spans
        ("Soporte las 24 horas.", "Soporte las 24 h."),  # the same span, another spelling of the unit
    ],
)
def test_prose_dots_and_matching_spans_are_sent(entry_answer: str, reply: str) -> None:
    """Controls: full stops (spaced or not), "en punto", "punto de venta", "at" as a preposition, the entries' own
    link or address however spelled, and a span of time the entries give. The first two were declined as the link
    `gracias.me` on the previous check."""
    entry = GroundedEntry("e", ("¿Qué ofrecen?",), entry_answer)
    result = interpret_reply(reply, (entry,))
    assert result.kind == "answer", result


def test_every_demo_answer_and_each_of_its_sentences_is_grounded_by_its_own_entry() -> None:
    """Control for the wider reading of disguised dots, at-signs and spans of time: every answer of the demo matrix
    (`data/knowledge_matrix.csv`), whole and sentence by sentence, is grounded by its own entry, and reads no link or
    address beyond those it writes plainly. (A guard against false alarms: it passes on the previous check too.)"""
    root = Path(__file__).resolve().parents[3]
    entries = entries_from_sheet(parse_csv_bytes((root / "data" / "knowledge_matrix.csv").read_bytes()))
    assert len(entries) >= 30, "the demo matrix was not read"
    for entry in entries:
        own = (GroundedEntry(entry.id, entry.questions, entry.answer),)
        pieces = [entry.answer] + [
            sentence for sentence in re.split(r"(?<=[.!?])\s+|\n", entry.answer) if len(sentence.split()) >= 4
        ]
        for piece in pieces:
            result = check_grounding(piece, own)
            assert result.grounded, f"{entry.id}: {piece!r} → {result}"
        plain_links = {_url_key(url) for url in _URL.findall(_EMAIL.sub(" ", entry.answer))}
        plain_emails = {email.lower() for email in _EMAIL.findall(entry.answer)}
        facts = extract_facts(entry.answer)
        assert (facts.urls, facts.emails) == (plain_links, plain_emails), entry.id
