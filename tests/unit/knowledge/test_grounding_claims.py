"""The GPT grounding check against claims the entries do not make (issue 8, item 9).

On the old check each "declined" case below was sent: numbers in words were not numbers ("cinco dólares"
against an entry that says $30), a domain with an unlisted top-level name or a Unicode look-alike was not a
link (`pagos-ecuabots.site`, `ecuabοts.com`), and the customer's own words counted as grounded ("me dijeron
que es gratis" → "Sí, es gratis"). The "sent" cases are the controls: the same shapes, grounded.
"""

from __future__ import annotations

import pytest

from knowledge_matrix.llm import GroundedEntry, LLMSettingsError, interpret_reply, load_llm_settings
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
        load_llm_settings({"BOT_ENV": "production", "LLM_BASE_URL": url, "LLM_API_KEY": "k"})


def test_loopback_http_is_allowed_in_production_and_anything_http_in_development() -> None:
    for url in ("http://127.0.0.1:8080/v1", "http://localhost:11434/v1", "http://[::1]:8000/v1"):
        assert load_llm_settings({"BOT_ENV": "production", "LLM_BASE_URL": url}).base_url == url.rstrip("/")
    assert load_llm_settings({"LLM_BASE_URL": "http://llm.lan/v1"}).base_url == "http://llm.lan/v1"
    assert load_llm_settings({"BOT_ENV": "production"}).base_url.startswith("https://")


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
