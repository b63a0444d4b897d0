"""Spanish text normalization shared by lexical scoring, header matching and duplicate checks.

People write to a fan page the way they text: no accents, `q` for `que`, `xq` for `porque`,
repeated letters, typos. Folding and light stemming make those match the editor's wording;
character n-grams (in `lexical.py`) absorb what is left of the typos.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache

import snowballstemmer

_TOKEN = re.compile(r"[a-z0-9]+")
_REPEATS = re.compile(r"(.)\1{2,}")

# Chat shorthand seen in Ecuadorian Messenger traffic, mapped to the written word.
CHAT_SHORTHAND: dict[str, str] = {
    "q": "que",
    "k": "que",
    "ke": "que",
    "xq": "porque",
    "pq": "porque",
    "porq": "porque",
    "x": "por",
    "d": "de",
    "tb": "tambien",
    "tmb": "tambien",
    "pls": "por favor",
    "porfa": "por favor",
    "msj": "mensaje",
    "msjs": "mensajes",
    "info": "informacion",
    "fb": "facebook",
    "face": "facebook",
    "insta": "instagram",
    "ig": "instagram",
    "wsp": "whatsapp",
    "whatsap": "whatsapp",
    "watsap": "whatsapp",
    "wasap": "whatsapp",
    "bot": "chatbot",
    "dnd": "donde",
    "hrs": "horas",
    "hr": "hora",
}

SPANISH_STOPWORDS: frozenset[str] = frozenset(
    """
    a al algo algun alguna alguno algunos ante antes como con contra cual cuales de del desde donde dos el
    ella ellas ellos en entre era es esa ese eso esta estan estas este esto estos fue ha hay la las le les lo
    los mas me mi mis muy nos o os otra otro para pero por que quien se sea ser si sin sobre son su sus
    te tu tus u un una uno unos y ya yo usted ustedes ustd uds ud
    hola buenas buenos dias tardes noches gracias favor porfavor
    puedo puede pueden quiero quisiera necesito tengo tiene tienen hago hacer
    """.split()  # noqa: SIM905 - a word list reads better as text
)


def fold(text: str) -> str:
    """Lowercase and strip accents (`Categoría` → `categoria`); `ñ` becomes `n`."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def fold_word(word: str) -> str:
    """One word folded (`fold`) with letter runs collapsed: `Holaaa` → `hola`, `Contraseña` → `contrasena`."""
    return _REPEATS.sub(r"\1", fold(word))


def raw_tokens(text: str) -> list[str]:
    """Folded word tokens with chat shorthand expanded and letter runs (`holaaa`) collapsed."""
    tokens: list[str] = []
    for token in _TOKEN.findall(fold(text)):
        token = _REPEATS.sub(r"\1", token)
        tokens.extend(CHAT_SHORTHAND.get(token, token).split())
    return tokens


def stem(token: str) -> str:
    """A light Spanish stem: drop plurals and keep at most six letters of long words.

    Prefix truncation is crude but robust to conjugation (`conecto`, `conectar`, `conectamos`)
    and costs nothing; character n-grams cover the cases it misses.
    """
    if token.isdigit() or len(token) <= 3:
        return token
    if token.endswith("ces") and len(token) > 5:
        token = token[:-3] + "z"
    elif token.endswith("es") and len(token) > 4 and token[-3] in "rlndzj":
        token = token[:-2]
    elif token.endswith("s") and len(token) > 4:
        token = token[:-1]
    return token[:6]


def content_terms(text: str) -> list[str]:
    """Stemmed tokens without Spanish stopwords: what a question is about."""
    return [stem(token) for token in raw_tokens(text) if token not in SPANISH_STOPWORDS]


_STEMMERS = threading.local()


@lru_cache(maxsize=65536)
def snowball_stem(token: str) -> str:
    """Spanish Snowball stem of a folded token (`exportacion`, `exportar` → `export`); one stemmer per thread,
    as a Snowball stemmer keeps state while it works."""
    stemmer = getattr(_STEMMERS, "spanish", None)
    if stemmer is None:
        stemmer = _STEMMERS.spanish = snowballstemmer.stemmer("spanish")
    return token if token.isdigit() else str(stemmer.stemWord(token))


def snowball_terms(text: str) -> list[str]:
    """`content_terms` with Snowball stems instead of the six-letter prefix."""
    return [snowball_stem(token) for token in raw_tokens(text) if token not in SPANISH_STOPWORDS]


def char_ngrams(text: str, sizes: tuple[int, ...] = (3, 4)) -> list[str]:
    """Character n-grams inside each content word, with word-boundary marks, for typo tolerance."""
    grams: list[str] = []
    for token in raw_tokens(text):
        if token in SPANISH_STOPWORDS:
            continue
        padded = f"<{token}>"
        for size in sizes:
            if len(padded) < size:
                continue
            grams.extend(padded[i : i + size] for i in range(len(padded) - size + 1))
    return grams


def canonical_key(text: str) -> str:
    """The form two questions share when an editor typed the same thing twice."""
    return " ".join(raw_tokens(text))


# Shorthand rewritten before a message is embedded: only true abbreviations, so the model sees
# the word it was trained on (`q` → `que`, `fb` → `facebook`); ordinary words are left alone.
_DENSE_SHORTHAND = {key: value for key, value in CHAT_SHORTHAND.items() if key not in {"bot", "info"}}
_WORD = re.compile(r"\w+", re.UNICODE)


def expand_shorthand(text: str) -> str:
    """`cuanto tengo q pagar x el bot` → `cuanto tengo que pagar por el bot`; the rest unchanged."""
    return _WORD.sub(lambda m: _DENSE_SHORTHAND.get(m.group(0).casefold(), m.group(0)), text)


# Lengths: what the GPT fallback shows the model and what it sends back.


def clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


_SENTENCE_END = re.compile(r"[.!?…](?=\s|$)|\n")


def cut_at_sentence_boundary(text: str, limit: int) -> str | None:
    """`text` if it fits, else its longest prefix within `limit` that ends a sentence, else None."""
    text = text.strip()
    if len(text) <= limit:
        return text
    ends = [match.end() for match in _SENTENCE_END.finditer(text, 0, limit + 1) if match.end() <= limit]
    return text[: ends[-1]].rstrip() if ends else None


def drop_unfinished_sentence(text: str) -> str:
    """Whole sentences only: `"Abrimos a las 9. Los sábados de"` → `"Abrimos a las 9."`."""
    text = text.strip()
    if not text or _SENTENCE_END.fullmatch(text[-1]):
        return text
    ends = [match.end() for match in _SENTENCE_END.finditer(text)]
    return text[: ends[-1]].rstrip() if ends else ""
