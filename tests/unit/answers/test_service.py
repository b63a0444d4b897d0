"""The `Answers` façade over an in-memory SQLite journal: the live matrix's embedder groups, its retrieval suggests
entries, a change of models regroups from the wording."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from answers.model import Handling, person_key
from answers.service import Answers
from answers.store import AnswersStore
from core.settings import load_settings
from knowledge_matrix.embedders import HashingEmbedder
from knowledge_matrix.knowledge_base import KnowledgeBase
from knowledge_matrix.matrix import Entry, Matrix
from knowledge_matrix.retrieval import Thresholds
from knowledge_matrix.settings import DEFAULT_SETTINGS

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=timezone.utc)
PAGE = "100000000000001"
ENTRIES = (
    Entry("envios", ("¿Hacen envíos a todo el país?", "¿Envían a provincias?"), "Enviamos con Servientrega."),
    Entry("pagos", ("¿Qué formas de pago aceptan?", "¿Aceptan tarjeta de crédito?"), "Tarjeta y transferencia."),
    Entry("horario", ("¿A qué hora abren?",), "De 9 a 19."),
)


@dataclass(frozen=True)
class Live:
    version: str
    knowledge: KnowledgeBase


class FakeLive:
    """`LiveKnowledge.refresh()` answering a version built in memory (or nothing published)."""

    def __init__(self, knowledge: KnowledgeBase | None) -> None:
        self.live = Live("0001", knowledge) if knowledge is not None else None

    def refresh(self) -> Live | None:
        return self.live


def built(embedder: HashingEmbedder) -> KnowledgeBase:
    settings = DEFAULT_SETTINGS.with_changes(embedder=embedder.name, thresholds=Thresholds(answer=0.6, suggest=0.2))
    return KnowledgeBase.build(Matrix.of(ENTRIES), embedder, settings, in_memory_index=True)


def ask(answers: Answers, psid: str, question: str, minutes: float = 0) -> None:
    answers.record_question(page_id=PAGE, psid=psid, question=question, handling=Handling.NO_ANSWER,
                            at=NOW + timedelta(minutes=minutes), reason="no_match")


@pytest.fixture
def answers() -> Answers:
    return Answers(AnswersStore(":memory:"), knowledge=FakeLive(built(HashingEmbedder(256))), secret="s")


def test_the_live_matrix_embedder_groups_and_its_retrieval_suggests_entries(answers: Answers) -> None:
    assert answers.embedder().name == "hashing:256"
    ask(answers, "1", "aceptan tarjeta de credito diners?")
    ask(answers, "2", "aceptan tarjeta de credito visa?", 1)
    answers.regroup(NOW + timedelta(minutes=5))
    [group] = answers.groups()
    suggestions = answers.suggest_entries(group.id, k=2)
    assert [s.entry_id for s in suggestions][:1] == ["pagos"]
    assert len(suggestions) <= 2 and suggestions[0].question == "¿Qué formas de pago aceptan?"
    assert suggestions == sorted(suggestions, key=lambda s: -s.score)
    assert suggestions[0].to_dict()["entry_id"] == "pagos"


def test_nothing_published_suggests_nothing_and_groups_with_the_default_models() -> None:
    chosen: list[str] = []

    def embedder_for(spec: str) -> HashingEmbedder:
        chosen.append(spec)
        return HashingEmbedder(128)

    answers = Answers(AnswersStore(":memory:"), knowledge=FakeLive(None), embedder_for=embedder_for)
    ask(answers, "1", "tienen parqueadero?")
    assert answers.regroup(NOW + timedelta(minutes=1)).embedder == "hashing:128"
    assert chosen == [DEFAULT_SETTINGS.embedder]
    assert answers.suggest_entries(answers.groups()[0].id) == []


def test_a_change_of_models_regroups_from_the_wording() -> None:
    store = AnswersStore(":memory:")
    before = Answers(store, embedder=HashingEmbedder(64))
    ask(before, "1", "hacen envios a galapagos")
    before.regroup(NOW + timedelta(minutes=1))
    after = Answers(store, embedder=HashingEmbedder(256))
    ask(after, "2", "hacen envios a galapagos?", 2)

    result = after.regroup(NOW + timedelta(minutes=3))

    assert (result.joined, result.created) == (1, 0), "the old group, embedded again, still takes its question"
    [centroid] = store.centroids()
    assert centroid.embedder == "hashing:256" and centroid.vector is not None and centroid.vector.shape == (256,)


def test_from_settings_opens_the_store_at_its_url_with_the_secret(tmp_path: Path) -> None:
    settings = load_settings({"BOT_DATA_DIR": str(tmp_path), "ANSWERS_SECRET": "clave-propia"})
    answers = Answers.from_settings(settings, embedder=HashingEmbedder(64))
    try:
        assert settings.store_url("answers") == f"sqlite:///{tmp_path / 'answers.sqlite3'}"
        assert answers.person_key(PAGE, "1") != Answers(AnswersStore(":memory:"), secret="otra").person_key(PAGE, "1")
        ask(answers, "1", "hola?")
        assert len(answers.unanswered(None, NOW - timedelta(days=1), NOW + timedelta(days=1))) == 1
    finally:
        answers.close()


def test_outside_production_the_service_token_keys_the_pseudonyms_and_retention_comes_from_settings(
        tmp_path: Path) -> None:
    settings = load_settings({"BOT_DATA_DIR": str(tmp_path), "ANSWERS_RETENTION_DAYS": "30"})
    answers = Answers.from_settings(settings, embedder=HashingEmbedder(64))
    try:
        assert answers.person_key(PAGE, "1") == person_key(settings.service_token, PAGE, "1")
        assert answers.retention == timedelta(days=30)
    finally:
        answers.close()
