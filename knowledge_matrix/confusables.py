"""Entries the bot is likely to confuse, found with the built index, and the words that would tell them apart.

After a matrix is built, each entry's own ways of asking are searched against its index with the bot's own
`KnowledgeBase.search_many`: when another entry comes close to the entry's own score (its fused score at least
`CONFUSABLE_RATIO` of the entry's) or above it, a customer who words that question a little differently may get the
other answer. The report warns about the closest pairs (at most `MAX_CONFUSABLE_WARNINGS`) and suggests, for each
side, the words of its questions and answer that the other entry never uses («importar» vs «exportar»).

Bounded work: at most `QUESTIONS_PER_ENTRY` questions per entry (past `PROBE_BUDGET` questions only the first of
each), each asking for its `NEIGHBOURS` nearest entries; never all pairs. Embedding the questions again was most of
the cost, and the near-duplicate check had already embedded every one of them the same way: the check runs both
with one `QueryVectorMemo` (`publish.checked_report`), so each question is embedded once and this check only scores,
with `search_many`'s batched scoring (the index search and the lexical channel for 256 questions at a time; the same
hits as one `search` each, bit for bit on the nine labelled sets). Measured with `bench/confusables.py` (synthetic
matrices, one question per entry, loaded 2-core box): 100 entries 0.3 s, 1,000 entries 2.2 s (was 18-42 s),
10,000 entries 39 s (was 8-11 minutes, about half the build); 10,000 entries of three questions (HNSW index) 94 s.

Calibrated on the dev and held-out sets (tests/data/knowledge/{dev,heldout_*}): an entry's questions only (its
answer's first sentence was tried as well and added noise: a generic first sentence ranks unrelated entries above
its own), a ratio of 0.55 and the five nearest entries. Only a fraction of real confusions is predictable from the
matrix alone (many come from a customer's own wording), so the warnings are few and about pairs that are close.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from knowledge_matrix.embedders import DelegatingEmbedder, Embedder, FloatMatrix, TextRole
from knowledge_matrix.knowledge_base import KnowledgeBase
from knowledge_matrix.matrix import Entry
from knowledge_matrix.report import Issue
from knowledge_matrix.retrieval import Hit
from knowledge_matrix.text import SPANISH_STOPWORDS, fold, stem

NEIGHBOURS = 5
CONFUSABLE_RATIO = 0.55
QUESTIONS_PER_ENTRY = 3
PROBE_BUDGET = 3000
SEARCH_BATCH = 256
MAX_CONFUSABLE_WARNINGS = 10
DISTINCTIVE_TERMS = 3
QUESTION_WEIGHT = 2.0  # a word of the questions says more about what customers ask than one of the answer

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


class QueryVectorMemo(DelegatingEmbedder):
    """An embedder that remembers the vectors of the texts it embeds as queries, while one matrix is checked.

    The near-duplicate check embeds every question of the matrix as a query; the confusable check searches the same
    questions with `KnowledgeBase.search_many`, which embeds them again through the knowledge base's embedder. With
    this memo as the embedder of both (and of the build), each question is embedded once. `release()` forgets the
    vectors and leaves a plain pass-through: the knowledge base built with it keeps it as its embedder, and must not
    keep a growing memo of every message it is later asked."""

    def __init__(self, embedder: Embedder) -> None:
        super().__init__(embedder)
        self._vectors: dict[str, FloatMatrix] | None = {}

    @property
    def remembered(self) -> int:
        return 0 if self._vectors is None else len(self._vectors)

    def embed(self, texts: Sequence[str], *, role: TextRole = "query") -> FloatMatrix:
        vectors = self._vectors
        if role != "query" or vectors is None:
            return self.inner.embed(texts, role=role)
        missing = list(dict.fromkeys(text for text in texts if text not in vectors))
        if missing:
            vectors.update(zip(missing, self.inner.embed(missing, role=role), strict=True))
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([vectors[text] for text in texts]).astype(np.float32, copy=False)

    def release(self) -> None:
        self._vectors = None


@dataclass(frozen=True)
class Probe:
    """One question of `entry` searched against the index."""

    entry: Entry
    question: str


@dataclass(frozen=True)
class ConfusablePair:
    """Two entries one of whose questions finds the other close: `closeness` is the rival's fused score over the
    asking entry's own (≥ 1: the rival ranks at or above it, the bot would answer the other entry)."""

    asking: Entry
    rival: Entry
    question: str
    closeness: float

    @property
    def key(self) -> tuple[str, str]:
        return (min(self.asking.id, self.rival.id), max(self.asking.id, self.rival.id))


def probes_of(
    entries: Sequence[Entry], per_entry: int = QUESTIONS_PER_ENTRY, budget: int = PROBE_BUDGET
) -> list[Probe]:
    """Every entry's first question; then second and third ones while the total stays within `budget`."""
    probes = [Probe(entry, entry.questions[0]) for entry in entries if entry.questions]
    for position in range(1, per_entry):
        more = [Probe(entry, entry.questions[position]) for entry in entries if len(entry.questions) > position]
        if len(probes) + len(more) > budget:
            break
        probes.extend(more)
    return probes


def closeness(own: Hit | None, rival: Hit, rival_above: bool) -> float:
    """How close `rival` comes to the asking entry's own hit (`own`, None when it is not among the neighbours)."""
    if own is None or rival_above:
        return max(1.0, rival.fused / own.fused) if own is not None and own.fused > 0 else 1.0
    if own.fused <= 0:
        return 0.0  # both weak: nothing to confuse
    return rival.fused / own.fused


def confusable_pairs(
    probes: Sequence[Probe], hits: Sequence[Sequence[Hit]], ratio: float = CONFUSABLE_RATIO
) -> list[ConfusablePair]:
    """For each pair of entries, its closest probe at or above `ratio`; closest pairs first (ties: by row)."""
    best: dict[tuple[str, str], ConfusablePair] = {}
    for probe, ranked in zip(probes, hits, strict=True):
        position = next((i for i, hit in enumerate(ranked) if hit.entry_id == probe.entry.id), None)
        own = ranked[position] if position is not None else None
        for i, hit in enumerate(ranked):
            if hit.entry_id == probe.entry.id:
                continue
            value = closeness(own, hit, position is None or i < position)
            if value < ratio:
                continue
            pair = ConfusablePair(probe.entry, hit.entry, probe.question, value)
            current = best.get(pair.key)
            if current is None or value > current.closeness:
                best[pair.key] = pair
    return sorted(best.values(), key=lambda p: (-p.closeness, min(p.asking.row, p.rival.row), p.key))


def find_confusable_pairs(
    knowledge_base: KnowledgeBase,
    *,
    neighbours: int = NEIGHBOURS,
    ratio: float = CONFUSABLE_RATIO,
    per_entry: int = QUESTIONS_PER_ENTRY,
    budget: int = PROBE_BUDGET,
    progress: Callable[[int, int], None] | None = None,
) -> list[ConfusablePair]:
    """Search each entry's questions (bounded, see `probes_of`) against the built index, in batches; `progress`
    hears (questions searched, questions in all) after each batch."""
    entries = knowledge_base.entries
    if len(entries) < 2:
        return []
    probes = probes_of(entries, per_entry, budget)
    k = min(neighbours + 1, len(entries))
    hits: list[list[Hit]] = []
    for start in range(0, len(probes), SEARCH_BATCH):
        hits.extend(knowledge_base.search_many([p.question for p in probes[start : start + SEARCH_BATCH]], k))
        if progress is not None:
            progress(len(hits), len(probes))
    return confusable_pairs(probes, hits, ratio)


# --- the words that tell two entries apart ----------------------------------------------------------------


@dataclass(frozen=True)
class EntryWords:
    """An entry's content words by stem: weight (questions count double) and the form the editor wrote most."""

    weights: dict[str, float]
    forms: dict[str, str]


def _content_words(text: str) -> list[tuple[str, str]]:
    """(stem, word as written) of each word of `text` that says something (no stopwords, no short words)."""
    found = []
    for word in _WORD.findall(text.lower()):
        folded = fold(word)
        if len(folded) >= 3 and folded not in SPANISH_STOPWORDS:
            found.append((stem(folded), word))
    return found


def entry_words(entry: Entry) -> EntryWords:
    """The questions' words (double), the answer's and the «palabras clave»' (the search reads all three)."""
    weights: dict[str, float] = defaultdict(float)
    forms: dict[str, Counter[str]] = defaultdict(Counter)
    texts = [(question, QUESTION_WEIGHT) for question in entry.questions] + [(entry.answer, 1.0)]
    texts += [(keyword, 1.0) for keyword in entry.keywords]
    for text, weight in texts:
        for root, word in _content_words(text):
            weights[root] += weight
            forms[root][word] += 1
    return EntryWords(dict(weights), {root: counts.most_common(1)[0][0] for root, counts in forms.items()})


def shared_keywords(entry: Entry, other: EntryWords, limit: int = DISTINCTIVE_TERMS) -> list[str]:
    """`entry`'s «palabras clave» whose every word `other` uses too: a keyword that draws the other entry's
    questions to `entry` (and that the editor may remove)."""
    shared = []
    for keyword in entry.keywords:
        roots = [root for root, _ in _content_words(keyword)]
        if roots and all(root in other.weights for root in roots):
            shared.append(keyword)
    return shared[:limit]


def document_frequency(words: Iterable[EntryWords]) -> Counter[str]:
    """In how many entries each stem appears (rare words tell entries apart best)."""
    frequency: Counter[str] = Counter()
    for item in words:
        frequency.update(item.weights.keys())
    return frequency


def distinctive_terms(
    own: EntryWords, other: EntryWords, frequency: Counter[str], entry_count: int, limit: int = DISTINCTIVE_TERMS
) -> list[str]:
    """The words of `own` that `other` never uses, most telling first: weight × rarity in the matrix."""
    scored = [
        (weight * math.log(1.0 + entry_count / max(1, frequency[root])), own.forms[root])
        for root, weight in own.weights.items()
        if root not in other.weights
    ]
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [form for _, form in scored[:limit]]


# --- the report -----------------------------------------------------------------------------------------------


def _quoted(words: Sequence[str]) -> str:
    return ", ".join(f"«{word}»" for word in words)


def _advice(entry: Entry, words: Sequence[str]) -> str:
    if words:
        return f"en las de «{entry.id}», palabras como {_quoted(words)}"
    return f"«{entry.id}» no tiene palabras propias: agregue formas de preguntar o palabras clave que usen sus clientes"


def _removal(entry: Entry, other: Entry, keywords: Sequence[str]) -> str:
    if not keywords:
        return ""
    which = "la palabra clave" if len(keywords) == 1 else "las palabras clave"
    return f"; o quite de «{entry.id}» {which} {_quoted(keywords)}, que también dice «{other.id}»"


def pair_message(
    pair: ConfusablePair,
    first: Entry,
    second: Entry,
    first_words: list[str],
    second_words: list[str],
    first_shared: Sequence[str] = (),
    second_shared: Sequence[str] = (),
) -> str:
    """What the editor reads about a pair (`first` is the one on the earlier row); `first_shared` are the keywords
    of `first` made of the words of `second` (`shared_keywords`), and the other way round."""
    verdict = (
        f"el bot responde con «{pair.rival.id}»"
        if pair.closeness >= 1.0
        else f"el bot encuentra «{pair.rival.id}» casi tan cerca como «{pair.asking.id}»"
    )
    return (
        f"la entrada «{second.id}» se puede confundir con «{first.id}» (fila {first.row}): con «{pair.question}» "
        f"(de «{pair.asking.id}») {verdict}, y una pregunta dicha con otras palabras puede recibir la respuesta "
        f"equivocada. Para distinguirlas, use en las preguntas o palabras clave de «{second.id}» "
        + (f"palabras como {_quoted(second_words)}" if second_words else "palabras propias del tema")
        + "; "
        + _advice(first, first_words)
        + _removal(second, first, second_shared)
        + _removal(first, second, first_shared)
        + "."
    )


def confusable_issues(
    knowledge_base: KnowledgeBase,
    *,
    max_warnings: int = MAX_CONFUSABLE_WARNINGS,
    ratio: float = CONFUSABLE_RATIO,
    budget: int = PROBE_BUDGET,
    progress: Callable[[int, int], None] | None = None,
) -> list[Issue]:
    """Warnings (never errors) about the closest confusable pairs of a built matrix, then one line saying how many
    more there are."""
    pairs = find_confusable_pairs(knowledge_base, ratio=ratio, budget=budget, progress=progress)
    if not pairs:
        return []
    entries = knowledge_base.entries
    words = {entry.id: entry_words(entry) for entry in entries}
    frequency = document_frequency(words.values())
    issues = []
    for pair in pairs[:max_warnings]:
        first, second = sorted((pair.asking, pair.rival), key=lambda entry: (entry.row, entry.id))
        first_words = distinctive_terms(words[first.id], words[second.id], frequency, len(entries))
        second_words = distinctive_terms(words[second.id], words[first.id], frequency, len(entries))
        issues.append(
            Issue(
                "warning",
                "confusable_entries",
                pair_message(
                    pair,
                    first,
                    second,
                    first_words,
                    second_words,
                    shared_keywords(first, words[second.id]),
                    shared_keywords(second, words[first.id]),
                ),
                second.row or None,
                "questions",
            )
        )
    if len(pairs) > max_warnings:
        issues.append(
            Issue(
                "warning",
                "confusable_entries",
                f"hay {len(pairs) - max_warnings} pares de entradas más que el bot podría confundir; "
                "distinga las anteriores y vuelva a subir el archivo para verlos.",
            )
        )
    return issues
