"""Numbers written in words, in Spanish and English, as digits: `treinta y cinco` → `35`, `thirty-five` → `35`,
`mil quinientos` → `1500`, `two thousand` → `2000`.

The grounding check compares the numbers of a model's reply with those of the entries; a reply that writes
"cinco dólares" must not slip past an entry that says $30 because it used no digits. Pure and table-driven:
a run of number words is read with the usual rules (a smaller value may follow a larger one, `hundred` and
`mil`/`thousand`/`millón`/`million` multiply), and a word that cannot continue the number starts a new one
(`dos y tres` stays two numbers). A lone `un`/`una`/`uno`/`one` is an article unless money follows.

Quantity words are numbers too. Counted ones become digits (`una docena de` → `12`, `dos docenas` → `24`,
`half a dozen` → `6`, `un par de`/`a couple of` → `2`); relative (`el doble`, `la mitad`, `twice`, `half`) and
vague ones (`cientos de`, `decenas`, `thousands of`) have no digits to become, so `quantity_claims` names each
as a claim key (`x2`, `x1/2`, `~100`) that the entries must also make. A counted span of time keeps its unit
(`una quincena` → `15 días`, `a fortnight` → `14 days`), and `durations` reads a number followed by a unit of time
(`2 semanas`, `48 horas`, `3 to 5 days`) as minutes, so "un par de semanas" is not "2 días".
"""

from __future__ import annotations

import re

_UNITS_ES = {"cero": 0, "uno": 1, "un": 1, "una": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6,
             "siete": 7, "ocho": 8, "nueve": 9}
_TEENS_ES = {"diez": 10, "once": 11, "doce": 12, "trece": 13, "catorce": 14, "quince": 15, "dieciséis": 16,
             "dieciseis": 16, "diecisiete": 17, "dieciocho": 18, "diecinueve": 19, "veinte": 20, "veintiuno": 21,
             "veintiún": 21, "veintiun": 21, "veintiuna": 21, "veintidós": 22, "veintidos": 22, "veintitrés": 23,
             "veintitres": 23, "veinticuatro": 24, "veinticinco": 25, "veintiséis": 26, "veintiseis": 26,
             "veintisiete": 27, "veintiocho": 28, "veintinueve": 29}
_TENS_ES = {"treinta": 30, "cuarenta": 40, "cincuenta": 50, "sesenta": 60, "setenta": 70, "ochenta": 80,
            "noventa": 90}
_HUNDREDS_ES = {"cien": 100, "ciento": 100, "doscientos": 200, "doscientas": 200, "trescientos": 300,
                "trescientas": 300, "cuatrocientos": 400, "cuatrocientas": 400, "quinientos": 500, "quinientas": 500,
                "seiscientos": 600, "seiscientas": 600, "setecientos": 700, "setecientas": 700, "ochocientos": 800,
                "ochocientas": 800, "novecientos": 900, "novecientas": 900}
_UNITS_EN = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
             "nine": 9}
_TEENS_EN = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
             "seventeen": 17, "eighteen": 18, "nineteen": 19}
_TENS_EN = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
            "ninety": 90}
SIMPLE: dict[str, int] = {**_UNITS_ES, **_TEENS_ES, **_TENS_ES, **_HUNDREDS_ES, **_UNITS_EN, **_TEENS_EN, **_TENS_EN}
TENS = frozenset(_TENS_ES) | frozenset(_TENS_EN)
PLURAL_SCALES = frozenset({"hundreds", "thousands", "millions", "millones"})  # vague unless a number precedes
SCALES: dict[str, int] = {"mil": 1000, "thousand": 1000, "thousands": 1000, "millón": 1_000_000,
                          "millon": 1_000_000, "millones": 1_000_000, "million": 1_000_000, "millions": 1_000_000}
HUNDRED = "hundred"
CONNECTORS = frozenset({"y", "and"})
ARTICLES = frozenset({"un", "una", "uno", "one"})
ENGLISH_ONLY_AMBIGUOUS = frozenset({"once"})  # "once" is 11 in Spanish, "one time" in English
_MONEY_AFTER = re.compile(r"\s*(d[óo]lar(es)?|dollars?|usd|centavos?|cents?|bucks?)\b", re.IGNORECASE)

_WORDS = sorted([*SIMPLE, *SCALES, HUNDRED, "hundreds"], key=len, reverse=True)
_WORD = "(?:" + "|".join(re.escape(word) for word in _WORDS) + ")"
_RUN = re.compile(rf"(?<!\w){_WORD}(?:(?:[\s-]+(?:(?:y|and)\s+)?){_WORD})*(?!\w)", re.IGNORECASE)
_TOKEN = re.compile(r"[^\s-]+")


def _parse(tokens: list[str]) -> list[tuple[int, int, int]]:
    """Tokens of one run → numbers as (value, first token, last token); connectors are tokens too."""
    numbers: list[tuple[int, int, int]] = []
    total = current = 0
    last_simple: int | None = None  # the last value added since a scale word, to see if the next one fits
    start = -1
    pending_connector = False

    def close(end: int) -> None:
        nonlocal total, current, last_simple, start
        if start >= 0:
            numbers.append((total + current, start, end))
        total = current = 0
        last_simple = None
        start = -1

    previous = -1
    for position, raw in enumerate(tokens):
        word = raw.lower()
        if word in CONNECTORS:
            pending_connector = True
            continue
        if word in SIMPLE:
            value = SIMPLE[word]
            fits = last_simple is None or (
                value < last_simple and (last_simple >= 100 or (last_simple in (20, 30, 40, 50, 60, 70, 80, 90)
                                                                 and value < 10))
            )
            if pending_connector and not (last_simple is not None and last_simple >= 20 and value < 10
                                          and last_simple % 10 == 0 or last_simple is not None and last_simple >= 100):
                fits = False
            if not fits:
                close(previous)
            if start < 0:
                start = position
            current += value
            last_simple = value
        elif word in PLURAL_SCALES and (start < 0 or pending_connector):
            close(previous)  # "hundreds of", "millones de": no count, a vague quantity (`quantity_claims`)
            pending_connector = False
            continue
        elif word in (HUNDRED, "hundreds"):
            if pending_connector:
                close(previous)
            if start < 0:
                start = position
            current = (current or 1) * 100
            last_simple = 100
        else:  # a scale
            if pending_connector:
                close(previous)
            if start < 0:
                start = position
            total += (current or 1) * SCALES[word]
            current = 0
            last_simple = SCALES[word]
        previous = position
        pending_connector = False
    close(previous)
    return numbers


# Counted quantity words: a count (digits, an article, "media"/"half a") before a unit of this size.
_COUNTED_UNITS: dict[str, int] = {"docena": 12, "docenas": 12, "dozen": 12, "dozens": 12, "decena": 10,
                                  "decenas": 10, "centena": 100, "centenas": 100, "centenar": 100,
                                  "centenares": 100, "millar": 1000, "millares": 1000, "quincena": 15,
                                  "quincenas": 15, "fortnight": 14, "fortnights": 14}
# Counted spans of time keep their unit: `una quincena` → `15 días`, `two fortnights` → `28 days`.
_COUNTED_SUFFIX: dict[str, str] = {"quincena": " días", "quincenas": " días", "fortnight": " days",
                                   "fortnights": " days"}
_PAIRS = frozenset({"par", "couple", "pair"})  # only after an article: "a la par", "número par" are not 2
_COUNT_ARTICLES = frozenset({"un", "una", "uno", "a", "an", "one"})
_HALF_ARTICLES = ("media", "medio", "half a", "half an")
_COUNTED = re.compile(
    r"(?<![\w-])(?P<count>\d+|un|una|uno|an?|one|media|medio|half\s+an?)\s+"
    r"(?P<unit>" + "|".join(sorted([*_COUNTED_UNITS, *_PAIRS], key=len, reverse=True)) + r")"
    r"(?P<of>\s+(?:de|of))?(?![\w-])"
    r"|(?<![\w-])(?P<bare>docena|dozen)(?![\w-])",  # "a $5 por docena", "per dozen"
    re.IGNORECASE,
)
# Relative and vague quantities: a claim key each; the entries must make the same claim.
QUANTITY_CLAIMS: dict[str, str] = {
    "doble": "x2", "dobles": "x2", "duplica": "x2", "duplican": "x2", "double": "x2", "doubles": "x2",
    "doubled": "x2", "twice": "x2", "triple": "x3", "triples": "x3", "triplica": "x3", "tripled": "x3",
    "thrice": "x3", "cuádruple": "x4", "cuadruple": "x4", "quadruple": "x4",
    "mitad": "x1/2", "half": "x1/2", "halves": "x1/2",
    "decenas": "~10", "docenas": "~12", "dozens": "~12", "cientos": "~100", "centenares": "~100",
    "hundreds": "~100", "millares": "~1000", "thousands": "~1000", "millones": "~1000000", "millions": "~1000000",
    "miles de": "~1000", "tens of": "~10", "scores of": "~20",  # "miles", "tens", "scores" alone are other words
}
_CLAIM = re.compile(
    r"(?<![\w-])(?:" + "|".join(re.escape(word).replace(r"\ ", r"\s+")
                                for word in sorted(QUANTITY_CLAIMS, key=len, reverse=True)) + r")(?![\w-])",
    re.IGNORECASE,
)


def _counted_to_digits(text: str) -> str:
    """`una docena de` → `12`, `2 docenas` → `24`, `half a dozen` → `6`, `un par de` → `2`."""

    def replace(match: re.Match[str]) -> str:
        if match.group("bare"):
            return str(_COUNTED_UNITS[match.group("bare").lower()])
        count = " ".join(match.group("count").lower().split())
        unit = match.group("unit").lower()
        if unit in _PAIRS:
            value = 2 if count in _COUNT_ARTICLES else None
        elif count.isdigit():
            value = int(count) * _COUNTED_UNITS[unit]
        elif unit.endswith("s"):  # "a decenas de clientes" is Spanish "to tens of", not ten
            value = None
        elif count in _HALF_ARTICLES and _COUNTED_UNITS[unit] % 2 == 0:
            value = _COUNTED_UNITS[unit] // 2
        elif count in _COUNT_ARTICLES:
            value = _COUNTED_UNITS[unit]
        else:
            value = None
        if value is None:
            return match.group()
        if unit in _COUNTED_SUFFIX:  # "una quincena de espera" → "15 días de espera"
            return f"{value}{_COUNTED_SUFFIX[unit]}{match.group('of') or ''}"
        return str(value)

    return _COUNTED.sub(replace, text)


def quantity_claims(text: str) -> tuple[str, frozenset[str]]:
    """The relative and vague quantities of `text` (run `words_to_digits` first) as claim keys, and the text
    without them: `"cuesta el doble"` → `("cuesta el  ", {"x2"})`, `"cientos de clientes"` → `{"~100"}`."""
    keys: set[str] = set()

    def take(match: re.Match[str]) -> str:
        keys.add(QUANTITY_CLAIMS[" ".join(match.group().lower().split())])
        return " "

    return _CLAIM.sub(take, text), frozenset(keys)


def words_to_digits(text: str, *, english: bool = False) -> str:
    """`text` with every number written in words replaced by its digits (see the module docstring)."""

    def replace(match: re.Match[str]) -> str:
        tokens = _TOKEN.findall(match.group())
        numbers = _parse(tokens)
        pieces: list[str] = []
        cursor = 0
        for value, first, last in numbers:
            pieces.extend(tokens[cursor:first])
            words = [token.lower() for token in tokens[first : last + 1]]
            lone_article = len(words) == 1 and words[0] in ARTICLES
            ambiguous = english and len(words) == 1 and words[0] in ENGLISH_ONLY_AMBIGUOUS
            money_follows = bool(_MONEY_AFTER.match(text, match.end())) and last == len(tokens) - 1
            if (lone_article and not money_follows) or ambiguous:
                pieces.extend(tokens[first : last + 1])
            else:
                pieces.append(str(value))
            cursor = last + 1
        pieces.extend(tokens[cursor:])
        return " ".join(pieces)

    return _counted_to_digits(_RUN.sub(replace, text))


# Units of time in minutes: a number right before one (`2 semanas`, `48 h`, `2 a 3 días hábiles`) is a duration.
TIME_UNITS: dict[str, int] = {
    **dict.fromkeys(("minuto", "minutos", "min", "mins", "minute", "minutes"), 1),
    **dict.fromkeys(("hora", "horas", "h", "hr", "hrs", "hour", "hours"), 60),
    **dict.fromkeys(("día", "días", "dia", "dias", "day", "days"), 24 * 60),
    **dict.fromkeys(("semana", "semanas", "week", "weeks"), 7 * 24 * 60),
    **dict.fromkeys(("mes", "meses", "month", "months"), 30 * 24 * 60),
    **dict.fromkeys(("año", "años", "ano", "anos", "year", "years"), 365 * 24 * 60),
}
_AMOUNT_OF_TIME = re.compile(
    r"(?<![\w.,:])(?P<first>\d+(?:[.,]\d+)?)"
    r"(?:\s*(?:a|y|o|-|–|to|or|and)\s*(?P<second>\d+(?:[.,]\d+)?))?"
    r"\s*(?P<unit>" + "|".join(sorted(TIME_UNITS, key=len, reverse=True)) + r")(?![\w-])",
    re.IGNORECASE,
)


def durations(text: str) -> frozenset[tuple[str, int]]:
    """Numbers followed by a unit of time (run `words_to_digits` first), as (number as written, unit in minutes):
    `"2 a 3 días"` → `{("2", 1440), ("3", 1440)}`; times of day (`9:00`) are not durations."""
    found: set[tuple[str, int]] = set()
    for match in _AMOUNT_OF_TIME.finditer(text):
        minutes = TIME_UNITS[match.group("unit").lower()]
        found.update((number, minutes) for number in (match.group("first"), match.group("second")) if number)
    return frozenset(found)
