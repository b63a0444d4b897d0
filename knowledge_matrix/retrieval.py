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
   together they say whether the message is on topic at all), how many models rank it first, and
   what it is up against: the best other entry's cosines and agreement, and how long the message
   is. An estimate of the probability that this entry is the right answer, fitted on labeled sets.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from knowledge_matrix.matrix import Entry

FloatArray = npt.NDArray[np.float32]
VerdictKind = Literal["answer", "ambiguous", "no_match"]

_MIN_STD = 1e-4
WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Calibration:
    """p(correct) = sigmoid(intercept + z·fused + margin·margin + Σ cosine_m·cos_m + off_topic·gap
    + agreement·share).

    `cosine` has one coefficient per model of the embedder; an empty tuple ignores cosines
    (the generic calibration for models nobody measured). `gap` is the entry's fused score
    minus the best off-topic anchor's (see `off_topic.py`); without anchors the term is left out.
    `share` is the share of the models that rank this entry first on their own (`Hit.agreement`):
    two models that agree are right more often than their averaged score says.

    The rival terms weigh what the entry is up against (`Hit.rival`): `words` · log(1 + the message's
    words) (a short message scores high on many entries), `rival_agreement` · the best other entry's
    share, `cosine_lead` · (this entry's cosine − the best other entry's) per model, and
    `unknown_words` · the share of the message's words the matrix never uses. A calibration
    without them (zeros, an empty tuple: every one fitted before they existed) scores as it did.

    With a query adapter (`query_adapter.py`), the agreement terms weigh what the message's own, unadapted
    ranking says of the entry (`Hit.unadapted`): `same_top` · 1 when it ranks the entry first too,
    `reciprocal_rank` · 1/its rank there (0 beyond the first `UNADAPTED_DEPTH`), `unadapted_fused` · that
    ranking's best fused score. Zeros (every calibration fitted without an adapter) leave them out.
    """

    intercept: float
    z: float
    margin: float
    cosine: tuple[float, ...] = ()
    off_topic: float = 0.0
    agreement: float = 0.0
    words: float = 0.0
    rival_agreement: float = 0.0
    cosine_lead: tuple[float, ...] = ()
    unknown_words: float = 0.0
    same_top: float = 0.0
    reciprocal_rank: float = 0.0
    unadapted_fused: float = 0.0

    def confidence(
        self,
        fused: float,
        margin: float,
        cosines: Sequence[float],
        off_topic_gap: float | None = None,
        agreement: float | None = None,
        rival: Rival | None = None,
        unadapted: Unadapted | None = None,
    ) -> float:
        logit = self.intercept + self.z * fused + self.margin * margin
        if self.cosine and len(self.cosine) == len(cosines):
            logit += sum(c * x for c, x in zip(self.cosine, cosines, strict=True))
        if off_topic_gap is not None:
            logit += self.off_topic * off_topic_gap
        if agreement is not None:
            logit += self.agreement * agreement
        if rival is not None:
            logit += self.words * rival.log_words + self.rival_agreement * rival.agreement
            logit += self.unknown_words * rival.unknown_words
            if self.cosine_lead and len(self.cosine_lead) == len(rival.cosine_lead):
                logit += sum(c * x for c, x in zip(self.cosine_lead, rival.cosine_lead, strict=True))
        if unadapted is not None:
            logit += self.same_top * unadapted.same_top + self.reciprocal_rank * unadapted.reciprocal_rank
            logit += self.unadapted_fused * unadapted.best_fused
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, logit))))

    def to_dict(self) -> dict[str, Any]:
        return {
            "intercept": self.intercept,
            "z": self.z,
            "margin": self.margin,
            "cosine": list(self.cosine),
            "off_topic": self.off_topic,
            "agreement": self.agreement,
            "words": self.words,
            "rival_agreement": self.rival_agreement,
            "cosine_lead": list(self.cosine_lead),
            "unknown_words": self.unknown_words,
            "same_top": self.same_top,
            "reciprocal_rank": self.reciprocal_rank,
            "unadapted_fused": self.unadapted_fused,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """What `to_dict` wrote; a manifest written before a term existed reads it as 0 (scored as then)."""
        return cls(
            intercept=float(data["intercept"]),
            z=float(data["z"]),
            margin=float(data["margin"]),
            cosine=tuple(float(c) for c in data.get("cosine", ())),
            off_topic=float(data.get("off_topic", 0.0)),
            agreement=float(data.get("agreement", 0.0)),
            words=float(data.get("words", 0.0)),
            rival_agreement=float(data.get("rival_agreement", 0.0)),
            cosine_lead=tuple(float(c) for c in data.get("cosine_lead", ())),
            unknown_words=float(data.get("unknown_words", 0.0)),
            same_top=float(data.get("same_top", 0.0)),
            reciprocal_rank=float(data.get("reciprocal_rank", 0.0)),
            unadapted_fused=float(data.get("unadapted_fused", 0.0)),
        )


@dataclass(frozen=True)
class Thresholds:
    """Calibrated-score cut-offs: answer at or above `answer`, suggest at or above `suggest`.

    `margin` is the lead (in fused score, `Hit.margin`) the best entry needs over the next one to be
    answered: closer than that, two entries fit the message about as well (import vs export) and the bot
    asks "¿Quisiste decir…?" instead of guessing. 0 turns the check off.
    """

    answer: float
    suggest: float
    max_candidates: int = 3
    margin: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.suggest <= self.answer <= 1.0:
            raise ValueError("thresholds must satisfy 0 <= suggest <= answer <= 1")
        if self.max_candidates < 1:
            raise ValueError("max_candidates must be at least 1")
        if self.margin < 0.0:
            raise ValueError("margin must not be negative")

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "suggest": self.suggest,
            "max_candidates": self.max_candidates,
            "margin": self.margin,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Thresholds:
        return cls(
            answer=float(data["answer"]),
            suggest=float(data["suggest"]),
            max_candidates=int(data.get("max_candidates", 3)),
            margin=float(data.get("margin", 0.0)),
        )


@dataclass(frozen=True)
class Rival:
    """What an entry is up against for one message: the message's length (log(1 + words)), the best other
    entry's agreement share and cosines, as this entry's cosine minus that entry's per model (zeros when no other
    entry competes), and the share of the message's words the matrix never uses (`LexicalIndex.unknown_share`;
    0 without a lexical index)."""

    log_words: float
    agreement: float
    cosine_lead: tuple[float, ...]
    unknown_words: float = 0.0


# How deep the unadapted ranking is read for `Unadapted.reciprocal_rank`.
UNADAPTED_DEPTH = 10


@dataclass(frozen=True)
class Unadapted:
    """What the message's unadapted ranking says of an entry ranked with a query adapter: whether it ranks the entry
    first too, 1/the entry's rank there (0 beyond `UNADAPTED_DEPTH`), and its best entry's fused score."""

    same_top: float
    reciprocal_rank: float
    best_fused: float


def unadapted_terms(entry_id: str, plain_order: Sequence[str], plain_best_fused: float) -> Unadapted:
    """`Unadapted` of an entry given the unadapted ranking's entry ids, best first."""
    order = list(plain_order[:UNADAPTED_DEPTH])
    rank = order.index(entry_id) + 1 if entry_id in order else 0
    return Unadapted(
        same_top=float(bool(order) and order[0] == entry_id),
        reciprocal_rank=1.0 / rank if rank else 0.0,
        best_fused=plain_best_fused,
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
    agreement: float | None = None  # share of the models that rank this entry first on their own
    rival: Rival | None = None
    unadapted: Unadapted | None = None  # with a query adapter: what the unadapted ranking says of the entry

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
    """Answer when the best hit clears `answer` and leads the next one by `margin`; otherwise offer up
    to `max_candidates` hits that clear `suggest` (a best hit that clears `answer` but is too close to
    the next is offered with it, even below `suggest`); otherwise no match (the caller falls back, e.g.
    to the GPT answer)."""
    if not hits:
        return Verdict("no_match")
    best = hits[0]
    if best.score >= thresholds.answer:
        if len(hits) < 2 or best.margin >= thresholds.margin:
            return Verdict("answer", (best,))
        close = tuple(hit for hit in hits[1 : thresholds.max_candidates] if best.fused - hit.fused < thresholds.margin)
        return Verdict("ambiguous", (best, *close))
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
    agreement: float = 0.0


def rank_entries(
    rows: Sequence[int],
    row_entries: Sequence[int],
    row_fused: FloatArray,
    row_cosines: FloatArray,
    limit: int | None = None,
    keep: int | None = None,
) -> list[RankedEntry]:
    """Best row per entry (a tie: the earlier row), entries sorted by fused score (ties: lower entry index first).
    `limit`: only the best `limit` entries, and `keep` too if it is a candidate (the entry a message copies word
    for word, promoted later): a message's hits need the first few, not every candidate entry."""
    if len(row_entries) == 0:
        return []
    owners = np.asarray(row_entries, dtype=np.int64)
    fused = np.asarray(row_fused)
    positions = np.arange(len(owners))
    # Grouped by entry, best row first (equal scores: the earlier row), then the first row of each group.
    order = np.lexsort((positions, -fused, owners))
    grouped = owners[order]
    first = order[np.concatenate(([True], grouped[1:] != grouped[:-1]))]
    # Entries by fused score, then entry index.
    best = first[np.lexsort((owners[first], -fused[first]))]
    chosen = best.tolist() if limit is None else best[:limit].tolist()
    if keep is not None and limit is not None and len(best) > limit:
        kept = [position for position in best[limit:].tolist() if int(owners[position]) == keep]
        chosen.extend(kept)
    return [
        RankedEntry(
            entry_index=int(owners[position]),
            row=int(rows[position]),
            fused=float(fused[position]),
            cosines=tuple(float(c) for c in row_cosines[position]),
        )
        for position in chosen
    ]


def model_agreement(
    ranked: Sequence[RankedEntry], row_entries: Sequence[int], row_cosines: FloatArray, stats: PartStats
) -> list[RankedEntry]:
    """`ranked` with each entry's `agreement`: the share of the models whose own best row belongs to it."""
    if len(row_entries) == 0 or row_cosines.shape[1] == 0:
        return list(ranked)
    z = (row_cosines - stats.mean) / stats.std
    winners = [int(row_entries[int(np.argmax(z[:, column]))]) for column in range(z.shape[1])]
    return [replace(r, agreement=winners.count(r.entry_index) / len(winners)) for r in ranked]


def promote(ranked: Sequence[RankedEntry], entry_index: int) -> list[RankedEntry]:
    """`ranked` with `entry_index` first, the others in their order (the entry whose question the message is)."""
    first = [r for r in ranked if r.entry_index == entry_index]
    return first + [r for r in ranked if r.entry_index != entry_index]


def margins(ranked: Sequence[RankedEntry]) -> list[float]:
    """Each entry's fused score minus the best score of any other entry (the top one's is ≥ 0 when the
    ranking is by fused score; after rank fusion it may be negative)."""
    if not ranked:
        return []
    if len(ranked) == 1:
        return [ranked[0].fused]  # nothing competes: the score itself is the lead
    first, second = best_two(ranked)
    return [r.fused - ranked[second if i == first else first].fused for i, r in enumerate(ranked)]


def best_two(ranked: Sequence[RankedEntry]) -> tuple[int, int]:
    """The positions of the two best fused scores (at least two entries; a tie goes to the earlier one): each entry
    is measured against the best other one, the second for the best, the best for the others."""
    scores = [r.fused for r in ranked]
    first = max(range(len(scores)), key=lambda i: (scores[i], -i))
    second = max((i for i in range(len(scores)) if i != first), key=lambda i: (scores[i], -i))
    return first, second


def rivals(ranked: Sequence[RankedEntry], words: int, unknown_words: float = 0.0) -> list[Rival]:
    """Each entry's `Rival`: the best other entry is the one `margins` measures the lead against (the second best
    for the best, the best for the others)."""
    log_words = math.log1p(max(0, words))
    if len(ranked) < 2:
        return [Rival(log_words, 0.0, tuple(0.0 for _ in r.cosines), unknown_words) for r in ranked]
    first, second = best_two(ranked)
    out = []
    for i, entry in enumerate(ranked):
        other = ranked[second if i == first else first]
        lead = tuple(mine - theirs for mine, theirs in zip(entry.cosines, other.cosines, strict=True))
        out.append(Rival(log_words, other.agreement, lead, unknown_words))
    return out


def message_words(text: str) -> int:
    """The words of a message, as the calibration counts them (runs of letters or digits)."""
    return len(WORD.findall(text))


def best_per_entry(row_entries: Sequence[int], row_scores: FloatArray) -> dict[int, float]:
    """An entry's best row score."""
    best: dict[int, float] = {}
    for entry_index, score in zip(row_entries, row_scores.tolist(), strict=True):
        if score > best.get(entry_index, -math.inf):
            best[entry_index] = score
    return best


def reciprocal_rank_fusion(
    dense: Sequence[RankedEntry], lexical: Mapping[int, float], lexical_weight: float, k: int
) -> list[RankedEntry]:
    """`dense` reordered by 1/(k + dense rank) + lexical_weight/(k + lexical rank): ranks, not scores, so
    neither channel's scale matters. An entry without a lexical match (score 0) gets no lexical share."""
    lexical_order = sorted((i for i, score in lexical.items() if score > 0), key=lambda i: (-lexical[i], i))
    lexical_rank = {entry_index: rank for rank, entry_index in enumerate(lexical_order, start=1)}
    fused: dict[int, float] = {}
    for rank, item in enumerate(dense, start=1):
        fused[item.entry_index] = 1.0 / (k + rank)
        if item.entry_index in lexical_rank:
            fused[item.entry_index] += lexical_weight / (k + lexical_rank[item.entry_index])
    return sorted(dense, key=lambda r: (-fused[r.entry_index], -r.fused, r.entry_index))
