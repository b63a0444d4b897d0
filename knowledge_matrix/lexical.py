"""Lexical scoring: hashed TF-IDF over stemmed words and character n-grams, cosine in [0, 1].

Dense models miss exact product words (`snippets`, `m.me`, `WABA`) and stumble on typos in
short queries; a lexical score catches both. Features are hashed (crc32, stable across
processes) so the index needs no vocabulary and saves as a few numpy arrays. Postings are
stored per feature, so a query touches only the documents that share a feature with it.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from knowledge_matrix.text import char_ngrams, content_terms, snowball_terms

HASH_BITS = 20
BUCKETS = 1 << HASH_BITS

FloatArray = npt.NDArray[np.float32]
Featurizer = Callable[[str], list[str]]
Stemmer = Literal["prefix", "snowball"]
WORD_FEATURES: dict[str, Featurizer] = {"prefix": content_terms, "snowball": snowball_terms}


def _bucket(feature: str) -> int:
    return zlib.crc32(feature.encode("utf-8")) & (BUCKETS - 1)


def _weighted(features: list[str], idf: FloatArray) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """Sublinear tf × idf, L2-normalized, summed per bucket."""
    counts = Counter(_bucket(feature) for feature in features)
    if not counts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    buckets = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
    tf = np.fromiter((1.0 + math.log(c) for c in counts.values()), dtype=np.float32, count=len(counts))
    weights = tf * idf[buckets]
    norm = float(np.linalg.norm(weights))
    if norm == 0.0:
        return buckets, weights
    return buckets, (weights / norm).astype(np.float32)


@dataclass(frozen=True)
class HashedTfidf:
    """One feature family over a fixed list of documents, with postings per hashed feature."""

    doc_count: int
    idf: FloatArray  # (BUCKETS,)
    indptr: npt.NDArray[np.int64]  # (BUCKETS + 1,) postings offsets per bucket
    postings_doc: npt.NDArray[np.int32]
    postings_weight: FloatArray

    @classmethod
    def build(cls, documents: Sequence[str], featurize: Featurizer) -> HashedTfidf:
        features = [featurize(doc) for doc in documents]
        doc_frequency = np.zeros(BUCKETS, dtype=np.int64)
        for doc_features in features:
            for bucket in {_bucket(f) for f in doc_features}:
                doc_frequency[bucket] += 1
        count = len(documents)
        idf = (np.log((count + 1.0) / (doc_frequency + 1.0)) + 1.0).astype(np.float32)
        docs: list[npt.NDArray[np.int32]] = []
        buckets: list[npt.NDArray[np.int64]] = []
        weights: list[FloatArray] = []
        for doc_id, doc_features in enumerate(features):
            doc_buckets, doc_weights = _weighted(doc_features, idf)
            docs.append(np.full(len(doc_buckets), doc_id, dtype=np.int32))
            buckets.append(doc_buckets)
            weights.append(doc_weights)
        all_buckets = np.concatenate(buckets) if buckets else np.zeros(0, dtype=np.int64)
        order = np.argsort(all_buckets, kind="stable")
        indptr = np.zeros(BUCKETS + 1, dtype=np.int64)
        np.cumsum(np.bincount(all_buckets, minlength=BUCKETS), out=indptr[1:])
        return cls(
            doc_count=count,
            idf=idf,
            indptr=indptr,
            postings_doc=(np.concatenate(docs) if docs else np.zeros(0, dtype=np.int32))[order],
            postings_weight=(np.concatenate(weights) if weights else np.zeros(0, dtype=np.float32))[order],
        )

    def scores(self, features: list[str]) -> FloatArray:
        """Cosine between the query features and every document, shape (doc_count,)."""
        query_buckets, query_weights = _weighted(features, self.idf)
        if len(query_buckets) == 0 or self.doc_count == 0:
            return np.zeros(self.doc_count, dtype=np.float32)
        starts = self.indptr[query_buckets]
        ends = self.indptr[query_buckets + 1]
        lengths = ends - starts
        if int(lengths.sum()) == 0:
            return np.zeros(self.doc_count, dtype=np.float32)
        positions = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True) if e > s])
        contributions = self.postings_weight[positions] * np.repeat(query_weights, lengths)
        summed = np.bincount(self.postings_doc[positions], weights=contributions, minlength=self.doc_count)
        return np.clip(summed, 0.0, 1.0).astype(np.float32)

    @cached_property
    def _never_seen_idf(self) -> float:
        """The idf of a feature no document has (the largest): read once, not over a million buckets per message."""
        return float(self.idf.max())

    def unknown_share(self, features: list[str]) -> float:
        """The share of `features` that no document has (their idf is the largest there is); 0 without any."""
        if not features:
            return 0.0
        never_seen = self._never_seen_idf
        buckets = np.fromiter((_bucket(feature) for feature in features), dtype=np.int64, count=len(features))
        return float(np.mean(self.idf[buckets] >= never_seen))

    def scores_of(self, features: list[str], docs: npt.NDArray[np.int64]) -> FloatArray:
        """`scores(features)[docs]`, reading only those documents' features: what a query costs whatever the
        number of documents (a common character n-gram's postings at 100 000 rows are long)."""
        query_buckets, query_weights = _weighted(features, self.idf)
        if len(query_buckets) == 0 or len(docs) == 0:
            return np.zeros(len(docs), dtype=np.float32)
        doc_indptr, doc_buckets, doc_weights = self._by_doc
        starts, ends = doc_indptr[docs], doc_indptr[docs + 1]
        lengths = ends - starts
        if int(lengths.sum()) == 0:
            return np.zeros(len(docs), dtype=np.float32)
        total = int(lengths.sum())
        positions = np.arange(total, dtype=np.int64) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        order = np.argsort(query_buckets)
        sorted_buckets, sorted_weights = query_buckets[order], query_weights[order]
        buckets = doc_buckets[positions]
        found = np.minimum(np.searchsorted(sorted_buckets, buckets), len(sorted_buckets) - 1)
        matched = sorted_buckets[found] == buckets
        contributions = np.where(matched, sorted_weights[found] * doc_weights[positions], 0.0)
        owners = np.repeat(np.arange(len(docs)), lengths)
        summed = np.bincount(owners, weights=contributions, minlength=len(docs))
        return np.clip(summed, 0.0, 1.0).astype(np.float32)

    def scores_of_many(self, features: Sequence[list[str]], docs: Sequence[npt.NDArray[np.int64]]) -> list[FloatArray]:
        """`scores_of(features[i], docs[i])` for every i, with the same numbers: every document's features are
        gathered at once, each query's weights looked up in a table by bucket, one sum per document."""
        doc_indptr, doc_buckets, doc_weights = self._by_doc
        counts = [len(query_docs) for query_docs in docs]
        all_docs = np.concatenate(docs).astype(np.int64) if docs else np.zeros(0, dtype=np.int64)
        starts, ends = doc_indptr[all_docs], doc_indptr[all_docs + 1]
        lengths = ends - starts
        total = int(lengths.sum())
        positions = np.arange(total, dtype=np.int64) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        # Where each query's documents' features begin and end among `positions`.
        pairs_before = np.concatenate([[0], np.cumsum(np.asarray(counts, dtype=np.int64))]).astype(np.int64)
        bounds = np.concatenate([[0], np.cumsum(lengths)])[pairs_before].tolist()
        contributions = np.zeros(total, dtype=np.float32)
        table = np.zeros(BUCKETS, dtype=np.float32)
        for number, query_features in enumerate(features):
            low, high = bounds[number], bounds[number + 1]
            buckets, weights = _weighted(query_features, self.idf)
            if high == low or len(buckets) == 0:
                continue
            table[buckets] = weights
            chosen = positions[low:high]
            contributions[low:high] = table[doc_buckets[chosen]] * doc_weights[chosen]
            table[buckets] = 0.0
        owners = np.repeat(np.arange(len(all_docs)), lengths)
        summed = np.bincount(owners, weights=contributions, minlength=len(all_docs)).astype(np.float64)
        scores = np.clip(summed, 0.0, 1.0).astype(np.float32)
        return np.split(scores, np.cumsum(counts)[:-1]) if counts else []

    @cached_property
    def _by_doc(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], FloatArray]:
        """The postings again, grouped by document: offsets per document, buckets, weights."""
        buckets = np.repeat(np.arange(BUCKETS, dtype=np.int32), self.indptr[1:] - self.indptr[:-1])
        order = np.argsort(self.postings_doc, kind="stable")
        indptr = np.zeros(self.doc_count + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.postings_doc, minlength=self.doc_count), out=indptr[1:])
        return indptr, buckets[order], self.postings_weight[order]

    def to_arrays(self, prefix: str) -> dict[str, npt.NDArray[np.generic]]:
        counts = self.indptr[1:] - self.indptr[:-1]
        used = np.flatnonzero(counts)
        return {
            f"{prefix}_doc_count": np.array([self.doc_count], dtype=np.int64),
            f"{prefix}_used_buckets": used.astype(np.int64),
            f"{prefix}_used_idf": self.idf[used],
            f"{prefix}_default_idf": np.array([math.log(self.doc_count + 1.0) + 1.0], dtype=np.float32),
            f"{prefix}_used_counts": counts[used],
            f"{prefix}_postings_doc": self.postings_doc,
            f"{prefix}_postings_weight": self.postings_weight,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, npt.NDArray[np.generic]], prefix: str) -> HashedTfidf:
        idf = np.full(BUCKETS, float(arrays[f"{prefix}_default_idf"][0]), dtype=np.float32)
        used = arrays[f"{prefix}_used_buckets"].astype(np.int64)
        idf[used] = arrays[f"{prefix}_used_idf"]
        counts = np.zeros(BUCKETS, dtype=np.int64)
        counts[used] = arrays[f"{prefix}_used_counts"]
        indptr = np.zeros(BUCKETS + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(
            doc_count=int(arrays[f"{prefix}_doc_count"][0]),
            idf=idf,
            indptr=indptr,
            postings_doc=arrays[f"{prefix}_postings_doc"].astype(np.int32),
            postings_weight=arrays[f"{prefix}_postings_weight"].astype(np.float32),
        )


@dataclass(frozen=True)
class LexicalIndex:
    """Words (stemmed by `stemmer`) and character n-grams, each a cosine, mixed by `char_weight`."""

    words: HashedTfidf
    chars: HashedTfidf
    char_weight: float = 0.5
    stemmer: Stemmer = "prefix"

    @classmethod
    def build(cls, documents: Sequence[str], char_weight: float = 0.5, stemmer: Stemmer = "prefix") -> LexicalIndex:
        return cls(
            words=HashedTfidf.build(documents, WORD_FEATURES[stemmer]),
            chars=HashedTfidf.build(documents, char_ngrams),
            char_weight=char_weight,
            stemmer=stemmer,
        )

    @property
    def doc_count(self) -> int:
        return self.words.doc_count

    def scores(self, query: str) -> FloatArray:
        word_scores = self.words.scores(WORD_FEATURES[self.stemmer](query))
        char_scores = self.chars.scores(char_ngrams(query))
        mixed = (1.0 - self.char_weight) * word_scores + self.char_weight * char_scores
        return mixed.astype(np.float32)

    def scores_of(self, query: str, docs: npt.NDArray[np.int64]) -> FloatArray:
        """`scores(query)[docs]` at the cost of those documents only."""
        word_scores = self.words.scores_of(WORD_FEATURES[self.stemmer](query), docs)
        char_scores = self.chars.scores_of(char_ngrams(query), docs)
        mixed = (1.0 - self.char_weight) * word_scores + self.char_weight * char_scores
        return mixed.astype(np.float32)

    def unknown_share(self, query: str) -> float:
        """The share of the message's words (stems, stopwords aside) that no row of the matrix has: a message about
        something the matrix never mentions ("¿cuánto cuesta la leche Vita?" to a software company) scores high on
        an entry that shares its template. 0 for a message without such words."""
        return self.words.unknown_share(WORD_FEATURES[self.stemmer](query))

    def scores_of_many(self, queries: Sequence[str], docs: Sequence[npt.NDArray[np.int64]]) -> list[FloatArray]:
        """`scores_of(queries[i], docs[i])` for every i, batched (`HashedTfidf.scores_of_many`), same numbers."""
        word_scores = self.words.scores_of_many([WORD_FEATURES[self.stemmer](query) for query in queries], docs)
        char_scores = self.chars.scores_of_many([char_ngrams(query) for query in queries], docs)
        return [
            ((1.0 - self.char_weight) * words + self.char_weight * chars).astype(np.float32)
            for words, chars in zip(word_scores, char_scores, strict=True)
        ]

    def save(self, path: Path) -> None:
        arrays = {**self.words.to_arrays("words"), **self.chars.to_arrays("chars")}
        arrays["char_weight"] = np.array([self.char_weight], dtype=np.float64)
        arrays["stemmer"] = np.array([self.stemmer])
        with path.open("wb") as handle:
            np.savez(handle, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path) -> LexicalIndex:
        with np.load(path) as data:
            arrays = {name: data[name] for name in data.files}
        stemmer = str(arrays["stemmer"][0]) if "stemmer" in arrays else "prefix"
        if stemmer not in WORD_FEATURES:
            raise ValueError(f"unknown stemmer {stemmer!r}")
        return cls(
            words=HashedTfidf.from_arrays(arrays, "words"),
            chars=HashedTfidf.from_arrays(arrays, "chars"),
            char_weight=float(arrays["char_weight"][0]),
            stemmer=stemmer,  # type: ignore[arg-type]
        )
