"""Spelling correction of a message against the matrix's own words.

Customers type `facturacion`, `parqueadro`, `wifii`, `exportr`; the editor wrote `facturación`, `parqueadero`,
`wifi`, `exportar`. A word of the message that the matrix never uses and that is one edit (insert, delete,
substitute, swap) away from a word the matrix does use is replaced by that word, the most frequent when
several are. Only words of five letters or more are touched, so short words (`pago`, `casa`) never become
another entry's word. The vocabulary is rebuilt from the entries when a matrix is loaded (nothing stored).

Lookup is the symmetric-delete method: every vocabulary word is indexed under itself and each of its
one-letter deletions; a message word meets its candidates through its own deletions, so a lookup costs a
few dictionary reads whatever the size of the matrix.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from knowledge_matrix.text import CHAT_SHORTHAND, SPANISH_STOPWORDS, fold_word

MIN_LENGTH = 5
_WORD = re.compile(r"\w+", re.UNICODE)


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def _folded_words(text: str) -> list[str]:
    return [fold_word(match.group(0)) for match in _WORD.finditer(text)]


def _within_one_edit(a: str, b: str) -> bool:
    """Optimal string alignment distance ≤ 1 (one insert, delete, substitution or adjacent swap)."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    shorter, longer = (a, b) if len(a) < len(b) else (b, a)
    return any(longer[:i] + longer[i + 1 :] == shorter for i in range(len(longer)))


@dataclass(frozen=True)
class Vocabulary:
    """The folded words of a matrix with their counts, indexed for one-edit lookups."""

    counts: Counter[str]
    by_delete: dict[str, tuple[str, ...]]

    @classmethod
    def of(cls, texts: Iterable[str]) -> Vocabulary:
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(word for word in _folded_words(text) if not word.isdigit())
        index: dict[str, list[str]] = {}
        for word in counts:
            if len(word) < MIN_LENGTH - 1:
                continue
            for key in _deletes(word) | {word}:
                index.setdefault(key, []).append(word)
        return cls(counts, {key: tuple(sorted(words)) for key, words in index.items()})

    def correction(self, word: str) -> str | None:
        """The matrix word one edit away from `word` (folded), or None when `word` is known, short or has none."""
        if len(word) < MIN_LENGTH or word in self.counts or word.isdigit():
            return None
        if word in SPANISH_STOPWORDS or word in CHAT_SHORTHAND:
            return None
        found: set[str] = set()
        for key in _deletes(word) | {word}:
            found.update(self.by_delete.get(key, ()))
        candidates = [w for w in found if _within_one_edit(word, w)]
        if not candidates:
            return None
        return max(candidates, key=lambda w: (self.counts[w], -abs(len(w) - len(word)), w))

    def correct(self, text: str) -> str:
        """`text` with each unknown word that is one edit from a matrix word replaced by it."""

        def replace(match: re.Match[str]) -> str:
            folded = fold_word(match.group(0))
            return self.correction(folded) or match.group(0)

        return _WORD.sub(replace, text)
