"""Ranking and the answer decision: pure functions over scores, no models, no files.

How an entry is scored (measured in bench/knowledge.py; see README_SECTION.md):

1. Each model (block of the joint vector, see `EnsembleEmbedder`) gives the cosine between the
   user's message and every row (one row per way of asking, embedded with the answer).
2. Each model's cosines are standardized against a background sample of the matrix's own rows
   (z = (cos - mean) / std for this query). Raw cosines of different models live on different
   scales (e5 crowds everything into 0.8-0.9, USE spreads 0-1); z-scores make them addable and
   make "how much better than the rest of the matrix" the common unit.
3. The fused score of a row is the weighted mean of its z-scores; an entry takes its best row.
4. The calibrated score is a logistic function of the entry's fused z, its margin over the best
   other entry, its raw cosines and its lead over the best off-topic anchor (`off_topic.py`;
   together they say whether the message is on topic at all): an estimate of the probability
   that this entry is the right answer, fitted on labeled sets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from knowledge_matrix.matrix import Entry

FloatArray = npt.NDArray[np.float32]
VerdictKind = Literal["answer", "ambiguous", "no_match"]

_MIN_STD = 1e-4


@dataclass(frozen=True)
class Calibration:
    """p(correct) = sigmoid(intercept + z·fused + margin·margin + Σ cosine_m·cos_m + off_topic·gap).

    `cosine` has one coefficient per model of the embedder; an empty tuple ignores cosines
    (the generic calibration for models nobody measured). `gap` is the entry's fused score
    minus the best off-topic anchor's (see `off_topic.py`); without anchors the term is left out.
    """

    intercept: float
    z: float
    margin: float
    cosine: tuple[float, ...] = ()
    off_topic: float = 0.0

    def confidence(
        self, fused: float, margin: float, cosines: Sequence[float], off_topic_gap: float | None = None
    ) -> float:
        logit = self.intercept + self.z * fused + self.margin * margin
        if self.cosine and len(self.cosine) == len(cosines):
            logit += sum(c * x for c, x in zip(self.cosine, cosines, strict=True))
        if off_topic_gap is not None:
            logit += self.off_topic * off_topic_gap
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, logit))))

    def to_dict(self) -> dict[str, Any]:
        return {
            "intercept": self.intercept,
            "z": self.z,
            "margin": self.margin,
            "cosine": list(self.cosine),
            "off_topic": self.off_topic,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        return cls(
            intercept=float(data["intercept"]),
            z=float(data["z"]),
            margin=float(data["margin"]),
            cosine=tuple(float(c) for c in data.get("cosine", ())),
            off_topic=float(data.get("off_topic", 0.0)),
        )


@dataclass(frozen=True)
class Thresholds:
    """Calibrated-score cut-offs: answer at or above `answer`, suggest at or above `suggest`."""

    answer: float
    suggest: float
    max_candidates: int = 3

    def __post_init__(self) -> None:
        if not 0.0 <= self.suggest <= self.answer <= 1.0:
            raise ValueError("thresholds must satisfy 0 <= suggest <= answer <= 1")
        if self.max_candidates < 1:
            raise ValueError("max_candidates must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return {"answer": self.answer, "suggest": self.suggest, "max_candidates": self.max_candidates}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Thresholds:
        return cls(
            answer=float(data["answer"]),
            suggest=float(data["suggest"]),
            max_candidates=int(data.get("max_candidates", 3)),
        )


@dataclass(frozen=True)
class Hit:
    """An entry ranked for a message; `score` is the calibrated probability of being right."""

    entry: Entry
    score: float
    fused: float
    margin: float
    matched_question: str
    cosines: tuple[float, ...] = field(default=())
    off_topic_gap: float | None = None

    @property
    def entry_id(self) -> str:
        return self.entry.id


@dataclass(frozen=True)
class Verdict:
    """What the bot does with a message: answer one entry, ask which one, or pass it on."""

    kind: VerdictKind
    hits: tuple[Hit, ...] = ()

    @property
    def hit(self) -> Hit | None:
        """The entry to answer with (kind `answer`), else the best candidate, if any."""
        return self.hits[0] if self.hits else None

    @property
    def candidates(self) -> tuple[Hit, ...]:
        """The entries to offer as "¿Quisiste decir…?" quick replies (kind `ambiguous`)."""
        return self.hits if self.kind == "ambiguous" else ()


def decide(hits: Sequence[Hit], thresholds: Thresholds) -> Verdict:
    """Answer when the best hit clears `answer`; offer up to `max_candidates` hits that clear
    `suggest`; otherwise no match (the caller falls back, e.g. to the GPT answer)."""
    if not hits:
        return Verdict("no_match")
    best = hits[0]
    if best.score >= thresholds.answer:
        return Verdict("answer", (best,))
    candidates = tuple(hit for hit in hits[: thresholds.max_candidates] if hit.score >= thresholds.suggest)
    if candidates:
        return Verdict("ambiguous", candidates)
    return Verdict("no_match")


# --- scoring --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartStats:
    """Per-model mean and spread of this query's cosines against the background rows."""

    mean: FloatArray
    std: FloatArray


def background_stats(background_cosines: FloatArray) -> PartStats:
    """`background_cosines` is (background rows × models); a flat model gets a tiny std, not zero."""
    if background_cosines.shape[0] == 0:
        parts = background_cosines.shape[1]
        return PartStats(np.zeros(parts, dtype=np.float32), np.ones(parts, dtype=np.float32))
    mean = background_cosines.mean(axis=0).astype(np.float32)
    std = np.maximum(background_cosines.std(axis=0), _MIN_STD).astype(np.float32)
    return PartStats(mean, std)


def fused_scores(row_cosines: FloatArray, stats: PartStats, weights: Sequence[float]) -> FloatArray:
    """Weighted mean over models of the standardized cosines, one value per row."""
    weight = np.asarray(weights, dtype=np.float32)
    z = (row_cosines - stats.mean) / stats.std
    return ((z * weight).sum(axis=1) / weight.sum()).astype(np.float32)


def standardized_query(
    vector: FloatArray, blocks: Sequence[tuple[int, int, float]], stats: PartStats
) -> tuple[FloatArray, float]:
    """The query vector whose inner product with a stored row is that row's fused score plus a
    constant, so the vector index ranks rows by the fused score itself.

    `blocks` are (start, stop, share) per model, shares summing to 1; stored rows and `vector`
    carry sqrt(share) on each block (see `EnsembleEmbedder`), so a block's inner product is
    share·cos. Returns the scaled vector and the constant to subtract.
    """
    scaled = vector.astype(np.float32, copy=True)
    offset = 0.0
    for (start, stop, share), mean, std in zip(blocks, stats.mean, stats.std, strict=True):
        scaled[start:stop] /= np.float32(std)
        offset += share * float(mean) / float(std)
    return scaled, offset


@dataclass(frozen=True)
class RankedEntry:
    """An entry's best row and its fused score, before calibration."""

    entry_index: int
    row: int
    fused: float
    cosines: tuple[float, ...]


def rank_entries(
    rows: Sequence[int],
    row_entries: Sequence[int],
    row_fused: FloatArray,
    row_cosines: FloatArray,
) -> list[RankedEntry]:
    """Best row per entry, entries sorted by fused score (ties: lower entry index first)."""
    best: dict[int, int] = {}
    for position, entry_index in enumerate(row_entries):
        current = best.get(entry_index)
        if current is None or row_fused[position] > row_fused[current]:
            best[entry_index] = position
    ranked = [
        RankedEntry(
            entry_index=entry_index,
            row=int(rows[position]),
            fused=float(row_fused[position]),
            cosines=tuple(float(c) for c in row_cosines[position]),
        )
        for entry_index, position in best.items()
    ]
    ranked.sort(key=lambda r: (-r.fused, r.entry_index))
    return ranked


def margins(ranked: Sequence[RankedEntry]) -> list[float]:
    """Each entry's fused score minus the best score of any other entry (the top one's is ≥ 0)."""
    if not ranked:
        return []
    if len(ranked) == 1:
        return [ranked[0].fused]  # nothing competes: the score itself is the lead
    top, second = ranked[0].fused, ranked[1].fused
    return [top - second] + [r.fused - top for r in ranked[1:]]
