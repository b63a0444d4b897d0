"""Equivalent words: a customer's word the matrix never uses, replaced by the one it does use.

Customers and editors name the same thing differently: the customer asks for «la clave», the matrix answers about
«la contraseña»; «anulo mi pedido» against «¿Cómo cancelo un pedido?»; «los recibos» against «las facturas». The
packaged models do not know every such pair, and the lexical channel cannot see them. A lexicon of groups of words
and short phrases that customers use interchangeably (`lexicon/<name>.txt`, written from general knowledge of
Ecuadorian and Latin American Spanish, never from the labelled sets the bot is measured on) closes part of that gap:

- a term of the message that no text of the matrix uses (its questions, answers and «palabras clave»),
- whose group has a member the matrix does use,
- is replaced, before the message is embedded and scored, by that member as the matrix writes it (the most
  frequent when several are).

A term the matrix uses is never touched, so an editor's own vocabulary always wins, and a matrix that uses none of
a group's members sees the message unchanged. Matching is deliberately narrow, because a wrong replacement makes the
bot answer another question: a word matches a term by its accent-folded form, singular or plural (`envíos` =
`envío`); a verb (a term ending in -ar, -er, -ir) also by its Snowball stem when the stem has four letters or more
(`anulé`, `anulo` = `anular`), so `casa` is not `case`, `doce` is not `doc` and `bajo` is not `bajar`. A stopword
alone (`tardes`, `buenas`) is never a term, in the message or in the matrix. Phrases match word by word, the longest
first. What the lexicon does for a matrix is worked out when a version is built and stored with it
(`synonyms.json`).

Lexicon format: UTF-8, one group per line, terms separated by ` | `, `#` comments. A term belongs to one group.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knowledge_matrix.errors import ArtifactError
from knowledge_matrix.text import SPANISH_STOPWORDS, fold_word, snowball_stem

LEXICON_DIR = Path(__file__).resolve().parent / "lexicon"
MAX_TERM_WORDS = 3
MIN_VERB_STEM = 4  # a verb matches by its stem only from this length (`anul`, not `baj` or `dan`)
_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}")
_WORD = re.compile(r"\w+", re.UNICODE)
_VERB_ENDINGS = ("ar", "er", "ir", "arse", "erse", "irse")

Key = str  # a term's words as matched: "=envio =gratis", "~anul"


def _singular(folded: str) -> str:
    """`envios` → `envio`, `luces` → `luz`, `canales` → `canal`: the form a noun is matched by."""
    if folded.endswith("ces") and len(folded) > 5:
        return folded[:-3] + "z"
    if folded.endswith("es") and len(folded) > 4 and folded[-3] in "rlndzj":
        return folded[:-2]
    if folded.endswith("s") and len(folded) > 3:
        return folded[:-1]
    return folded


def _word_keys(word: str) -> tuple[str, str]:
    """What a word of a message or of the matrix can match: its singular form, and its stem (for verbs)."""
    folded = fold_word(word)
    return "=" + _singular(folded), "~" + snowball_stem(folded)


def _term_word_keys(word: str) -> tuple[str, ...]:
    """What a word of a lexicon term is matched by: its singular form; a verb's stem too when long enough."""
    folded = fold_word(word)
    keys = ["=" + _singular(folded)]
    if len(folded) >= 5 and folded.endswith(_VERB_ENDINGS):
        stem = snowball_stem(folded)
        if len(stem) >= MIN_VERB_STEM:
            keys.append("~" + stem)
    return tuple(keys)


@dataclass(frozen=True)
class Lexicon:
    """Groups of interchangeable terms: each term (its words as written) and every key it is matched by."""

    name: str
    groups: tuple[tuple[str, ...], ...]
    keys: Mapping[Key, str]  # key → the term it matches

    @functools.cached_property
    def group_of(self) -> dict[str, int]:
        return {term: number for number, group in enumerate(self.groups) for term in group}


class LexiconError(ArtifactError):
    """A lexicon file that cannot be read: the line and what is wrong with it."""


def parse_lexicon(name: str, text: str) -> Lexicon:
    """The groups of a lexicon file; a clear error naming the line for a malformed one (a term of more than
    `MAX_TERM_WORDS` words, of stopwords only, a group of one term, a term matched like a term of another group).
    Two terms of one group matched alike are one term."""
    groups: list[tuple[str, ...]] = []
    keys: dict[Key, str] = {}
    line_of: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        terms: list[str] = []
        for raw in line.split("|"):
            words = _WORD.findall(unicodedata.normalize("NFC", raw))
            where = f"lexicon {name}, line {number}"
            if not words:
                raise LexiconError(f"{where}: an empty term")
            if len(words) > MAX_TERM_WORDS:
                raise LexiconError(f"{where}: «{raw.strip()}» has more than {MAX_TERM_WORDS} words")
            if all(fold_word(word) in SPANISH_STOPWORDS for word in words):
                raise LexiconError(f"{where}: «{raw.strip()}» is only stopwords")
            term = " ".join(fold_word(word) for word in words)
            term_keys = [" ".join(combo) for combo in itertools.product(*(_term_word_keys(w) for w in words))]
            clash = next((keys[key] for key in term_keys if key in keys and keys[key] not in terms), None)
            if clash is not None:
                raise LexiconError(f"{where}: «{raw.strip()}» is matched like «{clash}» (line {line_of[clash]})")
            if any(key in keys for key in term_keys):  # «reservas | reserva»: one term
                continue
            terms.append(term)
            line_of[term] = number
            keys.update((key, term) for key in term_keys)
        if len(terms) < 2:
            raise LexiconError(f"lexicon {name}, line {number}: a group needs two terms or more")
        groups.append(tuple(terms))
    return Lexicon(name, tuple(groups), keys)


@functools.lru_cache(maxsize=8)
def load_lexicon(name: str) -> Lexicon:
    """A shipped lexicon (`lexicon/<name>.txt`), read once per process."""
    if not _NAME.fullmatch(name):
        raise LexiconError(f"invalid lexicon name {name!r}")
    path = LEXICON_DIR / f"{name}.txt"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise LexiconError(f"lexicon {name!r} is not shipped with this release ({path} is missing)") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise LexiconError(f"lexicon {name!r} cannot be read: {exc}") from exc
    return parse_lexicon(name, text)


@dataclass(frozen=True)
class Replacement:
    """The message's `old` words (characters `start` to `end`) replaced by `new`, as the matrix writes it."""

    start: int
    end: int
    old: str
    new: str


WordInfo = tuple[tuple[str, str], bool]  # a word's keys (`_word_keys`), and whether it is a stopword


def _word_info(word: str) -> WordInfo:
    return _word_keys(word), fold_word(word) in SPANISH_STOPWORDS


@dataclass(frozen=True)
class _Terms:
    """Keys to match, with what makes a miss cheap: the keys a term's first word can have, the longest term."""

    keys: Mapping[Key, Any]
    starts: frozenset[str]
    longest: int

    @classmethod
    def of(cls, keys: Mapping[Key, Any]) -> _Terms:
        return cls(keys, frozenset(key.split(" ", 1)[0] for key in keys),
                   max((key.count(" ") + 1 for key in keys), default=0))


def _longest_match(words: Sequence[WordInfo], first: int, terms: _Terms) -> tuple[int, Key]:
    """The longest term starting at word `first`: (its length in words, its key); (0, "") for none. The singular
    form is tried before the stem; a stopword alone is never a term."""
    head = words[first][0]
    if head[0] not in terms.starts and head[1] not in terms.starts:
        return 0, ""
    keys = terms.keys
    for size in range(min(terms.longest, len(words) - first), 0, -1):
        span = words[first : first + size]
        if size == 1 and span[0][1]:
            continue
        for combo in itertools.product(*(word_keys for word_keys, _ in span)):
            key = " ".join(combo)
            if key in keys:
                return size, key
    return 0, ""


def _usual_form(forms: Counter[str]) -> str:
    """How the matrix usually writes a term: its most frequent form, case aside; a form only capitalised at its first
    letter (a sentence's first word: «Envían a todo el país») in lower case, any other kept (`WhatsApp`, `IVA`)."""
    by_lower: Counter[str] = Counter()
    for form, count in forms.items():
        by_lower[form.lower()] += count
    lower = by_lower.most_common(1)[0][0]
    written = max((form for form in forms if form.lower() == lower), key=lambda form: forms[form])
    return lower if written[:1].isupper() and written[1:] == lower[1:] else written


class SynonymRewriter:
    """What a lexicon does for one matrix: for every key of the lexicon, the matrix's own words that replace it in a
    message, or None (the matrix uses the term itself, or none of its group). Made at build time (`of`) and stored
    with the version (`to_dict`), so a version answers with the table it was built with, whatever the lexicon of a
    later release says, and loading it stems nothing."""

    def __init__(self, name: str, table: Mapping[Key, str | None]) -> None:
        self._name = name
        self._table = dict(table)
        self._terms = _Terms.of(self._table)
        self._replaces = any(new is not None for new in self._table.values())

    @classmethod
    def of(cls, lexicon: Lexicon, texts: Iterable[str]) -> SynonymRewriter:
        """The table of `lexicon` for a matrix's texts (questions, answers, keywords); each distinct word is folded
        and stemmed once (Snowball costs about 0.2 ms a word). A word inside a phrase also counts as used alone."""
        normalized = [unicodedata.normalize("NFC", text) for text in texts]
        counts: Counter[str] = Counter()
        for text in normalized:
            counts.update(_WORD.findall(text))
        cache = {word: _word_info(word) for word in counts}
        uses: Counter[str] = Counter()
        written: dict[str, Counter[str]] = {}
        # One word: counted once per distinct word (a stopword is never a term).
        single = {key: term for key, term in lexicon.keys.items() if " " not in key}
        for word, count in counts.items():
            (exact, stem), stopword = cache[word]
            term = None if stopword else single.get(exact) or single.get(stem)
            if term is not None:
                uses[term] += count
                written.setdefault(term, Counter())[word] += count
        # Phrases: only the texts holding a word a phrase can start with are read word by word.
        phrases = _Terms.of({key: term for key, term in lexicon.keys.items() if " " in key})
        starters = {word for word, ((exact, stem), _) in cache.items() if {exact, stem} & phrases.starts}
        for text in normalized:
            tokens = _WORD.findall(text)
            if starters.isdisjoint(tokens):
                continue
            infos = [cache[token] for token in tokens]
            for first, token in enumerate(tokens):
                size, key = _longest_match(infos, first, phrases) if token in starters else (0, "")
                if size:
                    term = lexicon.keys[key]
                    uses[term] += 1
                    written.setdefault(term, Counter())[" ".join(tokens[first : first + size])] += 1
        replacement: dict[int, str] = {}
        for number, group in enumerate(lexicon.groups):
            used = [term for term in group if uses[term]]
            if used:  # the member the matrix uses most (ties: the lexicon's order), as it writes it most often
                replacement[number] = _usual_form(written[max(used, key=lambda term: uses[term])])
        group_of = lexicon.group_of
        table = {
            key: None if uses[term] else replacement.get(group_of[term]) for key, term in lexicon.keys.items()
        }
        return cls(lexicon.name, table)

    @property
    def name(self) -> str:
        return self._name

    def to_dict(self) -> dict[str, Any]:
        return {"lexicon": self._name, "terms": self._table}

    @classmethod
    def from_dict(cls, data: Any) -> SynonymRewriter:
        """The stored table; `ArtifactError` for anything else."""
        if not isinstance(data, dict) or not isinstance(data.get("lexicon"), str):
            raise ArtifactError("the stored equivalent words name no lexicon")
        terms = data.get("terms")
        if not isinstance(terms, dict) or not all(
            isinstance(key, str) and key and (new is None or isinstance(new, str)) for key, new in terms.items()
        ):
            raise ArtifactError("the stored equivalent words are unreadable")
        return cls(data["lexicon"], terms)

    def replacements(self, text: str) -> list[Replacement]:
        """Each term of `text` rewritten, in order (offsets into `text` as given)."""
        return [Replacement(start, end, text[start:end], new) for start, end, new in self._edits(text)]

    def rewrite(self, text: str) -> str:
        """`text` with each term the matrix does not use replaced by its group's member the matrix uses."""
        edits = self._edits(text)
        if not edits:
            return text
        out: list[str] = []
        position = 0
        for start, end, new in edits:
            out.append(text[position:start])
            out.append(new)
            position = end
        out.append(text[position:])
        return "".join(out)

    def _edits(self, text: str) -> list[tuple[int, int, str]]:
        """The longest term at each position (a term the matrix uses is kept and its words skipped)."""
        if not self._replaces:
            return []
        matches = list(_WORD.finditer(text))
        words = [_word_info(match.group(0)) for match in matches]
        edits: list[tuple[int, int, str]] = []
        index = 0
        while index < len(words):
            size, key = _longest_match(words, index, self._terms)
            new = self._table[key] if size else None
            if new is not None:
                edits.append((matches[index].start(), matches[index + size - 1].end(), new))
            index += size or 1
        return edits


def rewriter_for(name: str, texts: Sequence[str]) -> SynonymRewriter | None:
    """The rewriter of lexicon `name` for a matrix's texts ("" for none)."""
    return SynonymRewriter.of(load_lexicon(name), texts) if name else None
