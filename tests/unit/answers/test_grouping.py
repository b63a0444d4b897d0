"""Grouping unanswered questions (pure): agglomerative clustering, joining existing groups, the label, and the
pairwise score, on the labelled Spanish set with the deterministic test embedder (the real models:
tests/integration/answers/test_grouping_models.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from answers.grouping import (
    GROUP_THRESHOLDS,
    Centroid,
    assign_groups,
    cluster,
    group_label,
    pairwise_score,
    prepare,
    unit,
    wording_key,
)
from knowledge_matrix.embedders import HashingEmbedder

LABELLED = Path(__file__).resolve().parents[2] / "data" / "answers" / "unanswered_es.csv"


def labelled() -> tuple[list[str], list[str]]:
    with LABELLED.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [row["group"] for row in rows], [row["question"] for row in rows]


def test_the_labelled_set_is_big_enough_and_informal() -> None:
    labels, questions = labelled()
    assert len(questions) >= 60 and len(set(labels)) >= 12
    assert min(labels.count(label) for label in set(labels)) >= 5
    assert any(" q " in f" {q} " or "kiero" in q or "porfa" in q for q in questions), "chat Spanish is in it"


def test_pairwise_score_on_a_known_grouping() -> None:
    labels = ["a", "a", "a", "b", "b"]
    perfect = pairwise_score(labels, [[0, 1, 2], [3, 4]])
    assert (perfect.precision, perfect.recall, perfect.f1, perfect.purity) == (1.0, 1.0, 1.0, 1.0)
    # {0,1} {2,3} {4}: true pairs 4 (01 02 12 34); predicted pairs 2 (01 23), right 1 → p 0.5, r 0.25
    score = pairwise_score(labels, [[0, 1], [2, 3], [4]])
    assert (score.precision, score.recall) == (0.5, 0.25)
    assert abs(score.f1 - 2 * 0.5 * 0.25 / 0.75) < 1e-9
    assert score.purity == 4 / 5 and score.clusters == 3


def test_the_test_embedder_groups_the_labelled_set() -> None:
    labels, questions = labelled()
    vectors = HashingEmbedder(256).embed([prepare(q) for q in questions])
    score = pairwise_score(labels, cluster(vectors, GROUP_THRESHOLDS["hashing:256"]))
    assert score.f1 >= 0.70 and score.purity >= 0.88, score
    lumped = pairwise_score(labels, cluster(vectors, 0.0))
    assert score.f1 > lumped.f1 + 0.3, "the threshold matters: a low one lumps different questions together"


def test_extreme_thresholds_give_singletons_or_one_group() -> None:
    vectors = HashingEmbedder(64).embed(["envio a galapagos", "aceptan tarjeta", "tienen parqueo"])
    assert cluster(vectors, 1.01) == [[0], [1], [2]]
    assert cluster(vectors, -1.01) == [[0, 1, 2]]
    assert cluster(np.zeros((0, 8), dtype=np.float32), 0.5) == []


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=25), st.floats(min_value=-1.0, max_value=1.0), st.integers(0, 2**32 - 1))
def test_clusters_are_a_partition_of_the_rows(count: int, threshold: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    vectors = np.stack([unit(row) for row in rng.standard_normal((count, 8))])
    clusters = cluster(vectors, threshold)
    assert sorted(row for group in clusters for row in group) == list(range(count))
    assert [len(group) for group in clusters] == sorted((len(group) for group in clusters), reverse=True)


def test_grouping_in_two_rounds_is_nearly_as_good_as_in_one() -> None:
    """The app groups every minute: half the set, then the other half joining (or not) the groups of the first."""
    labels, questions = labelled()
    embedder = HashingEmbedder(256)
    threshold = GROUP_THRESHOLDS["hashing:256"]
    first = [i for i in range(len(questions)) if i % 2 == 0]
    second = [i for i in range(len(questions)) if i % 2 == 1]
    vectors = embedder.embed([prepare(q) for q in questions])
    made = assign_groups(vectors[first], [], threshold)
    assert not made.joined and made.new_groups
    existing = [Centroid(number, centre, len(rows)) for number, (rows, centre) in enumerate(made.new_groups)]

    after = assign_groups(vectors[second], existing, threshold)

    members: dict[object, list[int]] = {number: [first[row] for row in rows]
                                        for number, (rows, _) in enumerate(made.new_groups)}
    for group_id, rows in after.joined.items():
        members[group_id].extend(second[row] for row in rows)
    for number, (rows, _) in enumerate(after.new_groups):
        members[("new", number)] = [second[row] for row in rows]
    joined = sum(len(rows) for rows in after.joined.values())
    assert joined >= len(second) // 2, "most repeated questions find their group"
    two_rounds = pairwise_score(labels, list(members.values()))
    one_round = pairwise_score(labels, cluster(vectors, threshold))
    assert two_rounds.f1 >= one_round.f1 - 0.15 and two_rounds.purity >= 0.8, (two_rounds, one_round)
    for group_id in after.joined:
        assert 0.0 < float(np.linalg.norm(after.centroids[group_id])) <= 1.0 + 1e-5, "a mean of unit vectors"


def test_a_batch_unlike_every_group_makes_new_groups() -> None:
    embedder = HashingEmbedder(256)
    old = embedder.embed(["hacen envios a galapagos"])[0]
    batch = embedder.embed(["aceptan tarjeta de credito", "aceptan tarjeta?"])
    result = assign_groups(batch, [Centroid(7, old, 3)], 0.3)
    assert result.joined == {} and [rows for rows, _ in result.new_groups] == [(0, 1)]


def test_the_label_is_the_most_typical_wording() -> None:
    embedder = HashingEmbedder(256)
    questions = ["tienen parqueadero?", "tienen parqueadero para clientes?", "parqueadero"]
    label = group_label(questions, embedder.embed(questions))
    assert label in questions
    assert group_label([], np.zeros((0, 4), dtype=np.float32)) == ""


def test_wordings_that_differ_only_in_case_accents_or_signs_are_one() -> None:
    assert wording_key("¿Tienen PARQUEADERO?") == wording_key("tienen parqueadero") == "tienen parqueadero"
    assert wording_key("envío") == wording_key("envio") != wording_key("envios")
