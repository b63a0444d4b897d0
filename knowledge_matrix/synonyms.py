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

A word the matrix uses is never touched, so an editor's own vocabulary always wins, and a matrix that uses none of
a group's members sees the message unchanged. Terms match by Snowball stems (`anulé`, `anulo`, `anular`), phrases
word by word, the longest first. What the lexicon does for a matrix is worked out when a version is built and stored
with it (`synonyms.json`).

Lexicon format: UTF-8, one group per line, terms separated by ` | `, `#` comments. A term belongs to one group.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knowledge_matrix.errors import ArtifactError
from knowledge_matrix.text import SPANISH_STOPWORDS, fold, snowball_stem

LEXICON_DIR = Path(__file__).resolve().parent / "lexicon"
MAX_TERM_WORDS = 3
_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}")
_WORD = re.compile(r"\w+", re.UNICODE)
_REPEATS = re.compile(r"(.)\1{2,}")

Stems = tuple[str, ...]


def _stems(text: str) -> Stems:
    return tuple(span.stem for span in _spans(text))


@dataclass(frozen=True)
class Lexicon:
    """Groups of interchangeable terms, each term as its stems."""

    name: str
    groups: tuple[tuple[Stems, ...], ...]

    @functools.cached_property
    def group_of(self) -> dict[Stems, int]:
        return {term: number for number, group in enumerate(self.groups) for term in group}

    @functools.cached_property
    def longest(self) -> int:
        return max((len(term) for term in self.group_of), default=0)


class LexiconError(ArtifactError):
    """A lexicon file that cannot be read: the line and what is wrong with it."""


def parse_lexicon(name: str, text: str) -> Lexicon:
    """The groups of a lexicon file; a clear error naming the line for a malformed one (a term of more than
    `MAX_TERM_WORDS` words, of stopwords only, a group of one term, a term already in another group). Two terms
    with the same stems are the same term: once in a group, an error across groups."""
    groups: list[tuple[Stems, ...]] = []
    seen: dict[Stems, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        terms: list[Stems] = []
        for raw in line.split("|"):
            words = _WORD.findall(raw)
            if not words:
                raise LexiconError(f"lexicon {name}, line {number}: an empty term")
            if len(words) > MAX_TERM_WORDS:
                raise LexiconError(
                    f"lexicon {name}, line {number}: «{raw.strip()}» has more than {MAX_TERM_WORDS} words"
                )
            if all(fold(word) in SPANISH_STOPWORDS for word in words):
                raise LexiconError(f"lexicon {name}, line {number}: «{raw.strip()}» is only stopwords")
            stems = _stems(raw)
            if stems in seen:
                raise LexiconError(
                    f"lexicon {name}, line {number}: «{raw.strip()}» is already a term (line {seen[stems]})"
                )
            if stems not in terms:  # «reservar | reserva»: one term once stemmed
                terms.append(stems)
        if len(terms) < 2:
            raise LexiconError(f"lexicon {name}, line {number}: a group needs two terms or more")
        for stems in terms:
            seen[stems] = number
        groups.append(tuple(terms))
    return Lexicon(name, tuple(groups))


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
class _Span:
    start: int  # character offsets in the message
    end: int
    stem: str


def _spans(text: str) -> list[_Span]:
    return [_Span(m.start(), m.end(), _stem(m.group(0))) for m in _WORD.finditer(text)]


def _stem(word: str) -> str:
    return snowball_stem(_REPEATS.sub(r"\1", fold(word)))


@dataclass(frozen=True)
class Replacement:
    """The message's `old` words (characters `start` to `end`) replaced by `new`, as the matrix writes it."""

    start: int
    end: int
    old: str
    new: str


class SynonymRewriter:
    """What a lexicon does for one matrix: for every term of the lexicon, the matrix's own word that replaces it in a
    message, or None (the matrix uses the term itself, or none of its group). Made at build time (`of`) and stored
    with the version (`to_dict`), so a version answers with the table it was built with, whatever the lexicon of a
    later release says, and loading it stems nothing."""

    def __init__(self, name: str, table: Mapping[Stems, str | None]) -> None:
        self._name = name
        self._table = dict(table)
        self._longest = max((len(term) for term in self._table), default=0)
        self._replaces = any(new is not None for new in self._table.values())

    @classmethod
    def of(cls, lexicon: Lexicon, texts: Iterable[str]) -> SynonymRewriter:
        """The table of `lexicon` for a matrix's texts. Words are counted first and each distinct word stemmed once
        (Snowball costs about 0.2 ms a word); only the texts holding a word a phrase starts with are read word by
        word."""
        group_of = lexicon.group_of
        folded = [text.casefold() for text in texts]
        counts: Counter[str] = Counter()
        for text in folded:
            counts.update(_WORD.findall(text))
        stem_of = {word: _stem(word) for word in counts}
        uses: Counter[Stems] = Counter()
        written: dict[Stems, Counter[str]] = {}
        for word, count in counts.items():
            single: Stems = (stem_of[word],)
            if single in group_of:
                uses[single] += count
                written.setdefault(single, Counter())[word] += count
        phrase_starts = {term[0] for term in group_of if len(term) > 1}
        starters = {word for word, stem in stem_of.items() if stem in phrase_starts}
        for text in folded:
            if starters.isdisjoint(_WORD.findall(text)):
                continue
            spans = [(m.start(), m.end(), stem_of[m.group(0)]) for m in _WORD.finditer(text)]
            for first, (start, _, stem) in enumerate(spans):
                if stem not in phrase_starts:
                    continue
                for size in range(2, min(lexicon.longest, len(spans) - first) + 1):
                    stems = tuple(span[2] for span in spans[first : first + size])
                    if stems in group_of:
                        uses[stems] += 1
                        written.setdefault(stems, Counter())[text[start : spans[first + size - 1][1]]] += 1
        table: dict[Stems, str | None] = {}
        for group in lexicon.groups:
            used = [term for term in group if uses[term]]
            # The member the matrix uses most (ties: the lexicon's order), as the matrix writes it most often.
            best = written[max(used, key=lambda term: uses[term])].most_common(1)[0][0] if used else None
            for term in group:
                table[term] = None if uses[term] else best
        return cls(lexicon.name, table)

    @property
    def name(self) -> str:
        return self._name

    def to_dict(self) -> dict[str, Any]:
        return {"lexicon": self._name, "terms": [[list(term), new] for term, new in self._table.items()]}

    @classmethod
    def from_dict(cls, data: Any) -> SynonymRewriter:
        """The stored table; `ArtifactError` for anything else."""
        try:
            name = data["lexicon"]
            table: dict[Stems, str | None] = {}
            for term, new in data["terms"]:
                if not isinstance(new, str | None) or not term or not all(isinstance(w, str) for w in term):
                    raise TypeError(f"bad term {term!r} -> {new!r}")
                table[tuple(term)] = new
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"the stored equivalent words are unreadable: {exc}") from exc
        if not isinstance(name, str):
            raise ArtifactError("the stored equivalent words name no lexicon")
        return cls(name, table)

    def replacements(self, text: str) -> list[Replacement]:
        """Each term of `text` rewritten, in order."""
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
        spans = _spans(text)
        edits: list[tuple[int, int, str]] = []
        index = 0
        while index < len(spans):
            matched = 0
            for size in range(min(self._longest, len(spans) - index), 0, -1):
                stems = tuple(span.stem for span in spans[index : index + size])
                if stems not in self._table:
                    continue
                matched = size
                new = self._table[stems]
                if new is not None:
                    edits.append((spans[index].start, spans[index + size - 1].end, new))
                break
            index += matched or 1
        return edits


def rewriter_for(name: str, texts: Sequence[str]) -> SynonymRewriter | None:
    """The rewriter of lexicon `name` for a matrix's texts ("" for none)."""
    return SynonymRewriter.of(load_lexicon(name), texts) if name else None
