"""The checkable claims of a text: e-mails, links, phone numbers, amounts, numbers, spans of time, quantities.

`grounding.py` compares a reply's claims with the entries'. Links and e-mails are read after
their disguises are undone (`ecuabots[.]xyz`, `ventas at ecuabots dot com`, look-alike dots),
and numbers in words count as digits (`numbers.py`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from knowledge_matrix.numbers import durations, quantity_claims, words_to_digits
from knowledge_matrix.text import SPANISH_STOPWORDS, fold, raw_tokens

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(
    r"(?:https?://|www\.)[^\s<>\"')\]]+|\b(?:[a-z0-9-]+\.)+(?:com|ec|net|org|info|shop|store|app|io|co|me|link|ly)"
    r"(?![\w-]|\.[\w-])(?:/[^\s<>\"')\]]*)?"
    # Any other domain-looking name, Unicode look-alikes and punycode included (`ecuab0ts.site`, `ecuabοts.com`,
    # `xn--ecuabts-…`): a label of 3+ characters, dots, a 2-24 letter top-level label.
    r"|(?<![\w@.-])(?:[\w-]+\.)*[\w-]*[^\W_]{3,}[\w-]*\.(?:[\w-]+\.)*(?:xn--[a-z0-9-]+|[^\W\d_]{2,24})(?![\w-])"
    r"(?:/[^\s<>\"')\]]*)?",
    re.IGNORECASE,
)
_PHONE = re.compile(r"\+?\d[\d \-().]{5,}\d")
_AMOUNT = re.compile(
    r"(?:US\$|\$|USD ?)\s?(\d+(?:[.,]\d+)*)|(\d+(?:[.,]\d+)*)\s?(?:dólares|dolares|dollars|usd|ctvs|centavos)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Disguised dots and at-signs, undone before links and e-mails are read: `ecuabots[.]xyz`, `ecuabots(dot)xyz`,
# `ecuabots . ru`, `ecuabots punto es`, `ecuabots dot com dot ru`, `ecuabots․xyz` (one dot leader) and other dots
# a browser or a reader takes for a full stop; `ventas at ecuabots dot com`, `pagos arroba ecuabots.com`.
# Bracketed dots and dot look-alikes are always dots. A spelled-out or spaced dot between two labels is a dot when
# the left label looks like a domain label (`_is_domain_dot`): it continues a domain, or it is not a common
# Spanish/English word, so "a las 9 en punto de la mañana", "nuestro punto de venta" and "Gracias . Me alegra"
# stay sentences.
DOT_LOOK_ALIKES = "\u2024\uff0e\u3002\uff61\ufe52\u00b7\u2027\u2219\u22c5\u06d4\u0701\u0702\u2e3c\ua4f8\u30fb\uff65"
# Generic top-level names; any two-letter label also counts as a (country) top-level name.
GENERIC_TLDS = _word_set(
    "com net org info biz xyz site online shop store app io co me link ly top club live pro tech dev ai gob edu"
    " click page web win vip icu tienda website space fun cloud digital email help"
)
_DISGUISED_DOT = re.compile(
    r"\s*[\[({<]\s*(?:\.|dot|punto)\s*[\])}>]\s*"  # [.]  (.)  {dot}  [punto]
    rf"|[{DOT_LOOK_ALIKES}]",
    re.IGNORECASE,
)
_SPACED_DOT = re.compile(
    r"(?<![\w-])(?P<left>[\w-]+)"
    r"(?:(?P<spelled>\s+(?:dot|punto)\s+)|(?P<spaced>\s+\.\s*)|(?P<trailing>\.\s+))"
    r"(?=(?P<right>[^\W\d_]{2,24})(?![\w-]))",
    re.IGNORECASE,
)
_DISGUISED_AT = re.compile(
    r"\s*[\[({<]\s*(?:@|at|arroba)\s*[\])}>]\s*"  # [at]  (@)  {arroba}
    r"|(?<=[\w.])\s+arroba\s+(?=\w)"
    # `ventas at ecuabots.com`, `ventas at ecuabots dot com`: a bare "at" before a domain, plain or disguised
    r"|(?<![\w.+-])(?P<local>[\w.+-]+)\s+at\s+"
    r"(?=(?P<domain>[\w-]+(?:(?:\s*\.\s*|\s+(?:dot|punto)\s+)[\w-]+)+))",
    re.IGNORECASE,
)
# Words that precede "punto", "dot", a spaced full stop or "at" in ordinary prose, folded: never a domain label
# or a mailbox. The shared stopwords and the filler words below join them.
_PROSE_WORDS = _word_set(
    """
    buen buena mejor peor cierto cierta mismo misma ultimo ultima primer primero primera segundo segunda tercer
    tercero cada mal gran medio justo exacto exactamente ningun nuestro nuestra vuestro su sus mi tu hasta etc
    the a an and or in on at of to is are be our your my this that each every one any some per polka
    pay paid us me him her them online available store shop order orders located find found visit reach contact
    call email mail write book buy sign log register here there site website page form link portal checkout
    anytime directly only now today open opens closed look see start starts begin begins arrive arrives
    """
)


def _is_common_word(word: str) -> bool:
    folded = fold(word)
    return (
        folded in _PROSE_WORDS
        or folded in SPANISH_STOPWORDS
        or folded in _FILLER_WORDS
        or folded in _SPANISH_MARKERS
        or folded in _ENGLISH_MARKERS
    )


def _is_domain_dot(kind: str, left: str, right: str, chained: bool) -> bool:
    """Is "<left> <dot> <right>" a disguised domain? `kind`: `spelled` (dot, punto), `spaced` (`x . y`, `x .y`)
    or `trailing` (`x. y`, also an ordinary full stop); `chained`: `left` already ends a dotted name."""
    if not re.search(r"[^\W\d_]", left) or (not chained and _is_common_word(left)):
        return False
    tld_like = len(right) == 2 or right.lower() in GENERIC_TLDS
    if kind == "trailing":  # "Gracias. Me alegra", "Abrimos el lunes. los sábados" are sentences
        return right.islower() and tld_like
    # "Visite ecuabots.com . Me alegra": a capital after a spaced full stop starts a sentence, unless it is `Com`.
    return not (kind == "spaced" and right[:1].isupper() and right.lower() not in GENERIC_TLDS)


def _undo_spaced_dots(text: str) -> str:
    undone_at = -1  # where the right label of the last undone dot starts: a chain (`ecuabots dot com dot ru`)
    # (a label right after an at-sign is a domain label too: `ventas@tienda punto com`)

    def replace(match: re.Match[str]) -> str:
        nonlocal undone_at
        start = match.start()
        chained = start == undone_at or bool(re.search(r"(?:[\w-]\.|@)$", text[:start]))
        kind = next(name for name in ("spelled", "spaced", "trailing") if match.group(name))
        if not _is_domain_dot(kind, match.group("left"), match.group("right"), chained):
            return match.group()
        undone_at = match.end()
        return match.group("left") + "."

    return _SPACED_DOT.sub(replace, text)


def _is_disguised_at(local: str, domain: str, *, english: bool) -> bool:
    """`<local> at <domain>` is an e-mail address unless `local` is a common word ("pay at", "us at"). In English,
    where "at" is a preposition ("the Pro plan at ecuabots.com"), only when the domain's dots are spelled out too."""
    if _is_common_word(local):
        return False
    return not english or not re.fullmatch(r"[\w-]+(?:\.[\w-]+)+", domain)


_LIST_MARKER = re.compile(r"^\s*\d{1,2}[.)]\s+", re.MULTILINE)  # "1. Transferencia" is not a claimed number


# Words that say nothing about the business, on top of the shared Spanish stopwords.
_FILLER_WORDS = _word_set(
    """
    tambien nuestro nuestra nuestros nuestras todo toda todos todas cada claro estamos tenemos contamos ofrecemos
    puedes podemos quieres necesitas cualquier ningun ninguna siempre nunca ahora entonces aqui alli solo solamente
    mismo misma estos estas esas esos aquel cual cuales donde cuando como porque pues dentro fuera bien gusto
    saludos gracias ayudarte ayudar informacion consultar consulta pregunta respuesta this that these those with
    from have your yours there their what which about would could should please thanks hello also into than then
    them they were will just only some more most very here when where does dont cant
    puede puedo pueden podria quiero quiere quieren hacen hace hacer tiene tienen tener dijeron dicen dijo
    """
)
_SPANISH_MARKERS = _word_set("el la los las de del que en y por para con una un es son se nuestro tenemos")
_ENGLISH_MARKERS = _word_set("the and of to is are we you our your for with in it can from at on")


@dataclass(frozen=True)
class Facts:
    """The checkable claims of a text: e-mails, links, phone numbers (last 8 digits), amounts of
    money (`$9`, `9 dólares`), and other numbers; `plain_numbers` are those that are not times."""

    emails: frozenset[str]
    urls: frozenset[str]
    phones: frozenset[str]
    amounts: frozenset[str]
    numbers: frozenset[str]
    plain_numbers: frozenset[str]
    rest: str  # the text without them, for the word check
    quantities: frozenset[str] = frozenset()  # relative and vague quantities: `x2` (el doble), `~100` (cientos)
    durations: frozenset[tuple[str, int]] = frozenset()  # (number, its unit of time in minutes): `2 semanas`


def _url_key(url: str) -> str:
    """`https://www.Tienda.ec/x` → `tienda.ec/x`; a Unicode host in its punycode form, so a look-alike
    (`ecuabοts.com` with a Greek omicron) and its `xn--` spelling are the same name, and neither is ours."""
    key = re.sub(r"^(https?://)?(www\.)?", "", url.lower()).rstrip("/.,;:!?")
    host, slash, path = key.partition("/")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            host = "invalid:" + host
    return host + slash + path


def url_is_known(url: str, known_urls: Iterable[str]) -> bool:
    """The same link, or a shorter form of one in the entries (`tienda.com` for `tienda.com/catalogo`)."""
    return any(known == url or known.startswith(url + "/") for known in known_urls)


def _number_key(token: str) -> str:
    """`25`, `25.00`, `$25,00` → `25`; `1.500,00` and `1500` → `1500`; `09:00` → `9`."""
    groups = re.split(r"[.,:]", token)
    while len(groups) > 1 and set(groups[-1]) <= {"0"}:
        groups.pop()
    return str(int("".join(groups)))


def undisguise(text: str, *, english: bool = False) -> str:
    """`ecuabots[.]xyz`, `ecuabots punto com`, `pagos(at)ecuabots․xyz`, `ventas at ecuabots dot com` → plain dots
    and at-signs (see `_is_domain_dot` and `_is_disguised_at` for when a spaced or spelled-out one is one)."""

    def undo_at(match: re.Match[str]) -> str:
        local = match.group("local")
        if local is None:
            return "@"
        return local + "@" if _is_disguised_at(local, match.group("domain"), english=english) else match.group()

    return _undo_spaced_dots(_DISGUISED_AT.sub(undo_at, _DISGUISED_DOT.sub(".", text)))


def extract_facts(text: str, *, english: bool = False) -> Facts:
    """The claims of `text`, whose numbers in words are already digits (`facts_of`); `english`: the text reads as
    English (a bare "at" is then a preposition unless the dots are spelled out too)."""
    rest = _LIST_MARKER.sub(" ", undisguise(text, english=english))
    emails = frozenset(match.lower() for match in _EMAIL.findall(rest))
    rest = _EMAIL.sub(" ", rest)
    urls = frozenset(_url_key(match) for match in _URL.findall(rest))
    rest = _URL.sub(" ", rest)
    phones: set[str] = set()

    def take_phone(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group())
        if len(digits) < 7:
            return match.group()
        phones.add(digits[-8:])
        return " "

    rest = _PHONE.sub(take_phone, rest)
    amounts = frozenset(_number_key(prefixed or suffixed) for prefixed, suffixed in _AMOUNT.findall(rest))
    rest = _AMOUNT.sub(" ", rest)
    spans = frozenset((_number_key(number), minutes) for number, minutes in durations(rest))
    tokens = _NUMBER.findall(rest)
    numbers = frozenset(_number_key(token) for token in tokens)
    plain_numbers = frozenset(_number_key(token) for token in tokens if ":" not in token)
    rest, quantities = quantity_claims(_NUMBER.sub(" ", rest))
    return Facts(emails, urls, frozenset(phones), amounts, numbers, plain_numbers, rest, quantities, spans)


def content_stems(text: str) -> set[str]:
    """Four-letter prefixes of the words that carry meaning: crude, but `envío`, `envíos` and
    `enviamos` meet, which is what a check of "did this come from the entries" needs."""
    return {
        token[:4]
        for token in raw_tokens(text)
        if token.isalpha() and len(token) >= 4 and token not in SPANISH_STOPWORDS and token not in _FILLER_WORDS
    }


def guess_language(text: str) -> str | None:
    tokens = raw_tokens(text)
    spanish = sum(token in _SPANISH_MARKERS for token in tokens)
    english = sum(token in _ENGLISH_MARKERS for token in tokens)
    if max(spanish, english) < 2 or spanish == english:
        return None
    if spanish >= 2 * english:
        return "es"
    if english >= 2 * spanish:
        return "en"
    return None


def facts_of(text: str) -> Facts:
    """The claims of `text`, its numbers in words as digits first, so "cinco dólares" is checked like "$5"."""
    english = guess_language(text) == "en"
    return extract_facts(words_to_digits(text, english=english), english=english)
