from __future__ import annotations

import numpy as np

from knowledge_matrix.embedders import HashingEmbedder, normalize_rows
from knowledge_matrix.knowledge_base import KnowledgeBase
from knowledge_matrix.matrix import Entry, Matrix
from knowledge_matrix.off_topic import ANCHORS, anchors_to_keep
from knowledge_matrix.retrieval import Calibration
from knowledge_matrix.settings import DEFAULT_SETTINGS


def test_anchors_close_to_the_matrix_are_dropped() -> None:
    anchors = normalize_rows(np.eye(3, 4))
    rows = normalize_rows(np.array([[1.0, 0.05, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]))
    assert anchors_to_keep(anchors, rows, drop_cosine=0.9).tolist() == [False, True, True]
    assert anchors_to_keep(anchors, rows[:0]).tolist() == [True, True, True]


def test_anchors_are_spanish_categories_not_empty() -> None:
    assert len(ANCHORS) >= 20 and all(anchor.strip() for anchor in ANCHORS)
    assert len(set(ANCHORS)) == len(ANCHORS)


def test_a_matrix_about_an_anchor_topic_drops_that_anchor() -> None:
    embedder = HashingEmbedder(512)
    recipe_anchor = "Dame una receta de cocina para preparar un plato"
    entries = (
        Entry("receta", (recipe_anchor,), "Encebollado: albacora, yuca y cebolla."),
        Entry("horario", ("¿A qué hora abren?",), "De 8 a 18."),
    )
    settings = DEFAULT_SETTINGS.with_changes(embedder=embedder.name, passage_fields="question")
    with_anchors = KnowledgeBase.build(Matrix.of(entries), embedder, settings, in_memory_index=True)
    without = KnowledgeBase.build(
        Matrix.of(entries), embedder, settings.with_changes(off_topic_anchors=False), in_memory_index=True
    )
    assert with_anchors.off_topic_anchor_count == len(ANCHORS) - 1
    assert without.off_topic_anchor_count == 0
    hit = with_anchors.search("receta de cocina", 1)[0]
    assert hit.entry_id == "receta" and hit.off_topic_gap is not None
    assert without.search("receta de cocina", 1)[0].off_topic_gap is None


def test_a_larger_lead_over_the_anchors_means_more_confidence() -> None:
    calibration = Calibration(intercept=-2.0, z=0.0, margin=1.0, off_topic=0.8)
    assert calibration.confidence(2.0, 1.0, [], off_topic_gap=2.0) > calibration.confidence(2.0, 1.0, [], 0.0)
    assert calibration.confidence(2.0, 1.0, [], None) == calibration.confidence(2.0, 1.0, [], 0.0)
