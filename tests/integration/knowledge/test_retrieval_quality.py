"""The default embedder, settings and FAISS on real Spanish sets: the quality the bot ships with."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from knowledge_matrix.cli import full_report
from knowledge_matrix.embedders import Embedder
from knowledge_matrix.evaluate import evaluate, read_queries, summarize
from knowledge_matrix.knowledge_base import KnowledgeBase
from knowledge_matrix.matrix import Matrix, entries_from_sheet, read_sheet
from knowledge_matrix.settings import DEFAULT_SETTINGS

from .conftest import DEMO_MATRIX, DEV_SET, HELD_OUT, ROOT


def load_matrix(path: Path) -> Matrix:
    return Matrix.of(entries_from_sheet(read_sheet(path)))


def dev_files() -> tuple[Path, Path]:
    matrix, queries = DEV_SET / "dev_matrix.csv", DEV_SET / "dev_queries.csv"
    assert matrix.is_file() and queries.is_file(), f"the public dev set must be in the repository at {DEV_SET}"
    return matrix, queries


@pytest.fixture(scope="module")
def demo(knowledge_embedder: Embedder) -> KnowledgeBase:
    return KnowledgeBase.build(load_matrix(DEMO_MATRIX), knowledge_embedder)


def test_dev_set_top1_meets_the_goal(knowledge_embedder: Embedder) -> None:
    matrix_path, queries_path = dev_files()
    knowledge_base = KnowledgeBase.build(load_matrix(matrix_path), knowledge_embedder)
    summary = summarize(evaluate(knowledge_base, read_queries(queries_path)))
    assert summary.top1 is not None and summary.top1 >= 0.95, summary


def test_eval_command_prints_the_json_contract() -> None:
    """Its duration is measured in bench/knowledge.py, not asserted here."""
    matrix_path, queries_path = dev_files()
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "knowledge_matrix",
            "eval",
            "--matrix",
            str(matrix_path),
            "--queries",
            str(queries_path),
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    printed = json.loads(completed.stdout)
    queries = read_queries(queries_path)
    assert [r["query"] for r in printed["results"]] == [q.query for q in queries]
    for row in printed["results"]:
        assert set(row) == {"query", "expected_id", "top_id", "score", "answered"}
        assert isinstance(row["answered"], bool) and 0.0 <= row["score"] <= 1.0
    summary = printed["summary"]
    assert set(summary) == {"top1", "mrr", "answered_precision", "answered_coverage", "unanswerable_rejection"}
    assert summary["top1"] >= 0.95


# Floors a little under what the defaults measured (README_SECTION.md): a regression fails here.
HELD_OUT_FLOORS = {
    "heldout_ecuabots": {"top1": 0.83, "mrr": 0.88, "answered_precision": 0.85, "unanswerable_rejection": 0.80},
    "heldout_tienda": {"top1": 0.75, "mrr": 0.83, "answered_precision": 0.80, "unanswerable_rejection": 0.80},
}


@pytest.mark.parametrize("name", sorted(HELD_OUT_FLOORS))
def test_held_out_sets_stay_above_their_floors(knowledge_embedder: Embedder, name: str) -> None:
    knowledge_base = KnowledgeBase.build(load_matrix(HELD_OUT / f"{name}_matrix.csv"), knowledge_embedder)
    summary = summarize(evaluate(knowledge_base, read_queries(HELD_OUT / f"{name}_queries.csv"))).to_dict()
    for metric, floor in HELD_OUT_FLOORS[name].items():
        assert summary[metric] >= floor, (metric, summary)


def test_demo_matrix_is_valid_without_near_duplicates(knowledge_embedder: Embedder) -> None:
    report = full_report(read_sheet(DEMO_MATRIX), knowledge_embedder)
    assert report.ok, report.render()
    assert report.warnings == (), report.render()
    assert 30 <= report.entry_count <= 60


def test_demo_matrix_answers_each_of_its_own_questions(demo: KnowledgeBase) -> None:
    questions = [(entry.id, question) for entry in demo.entries for question in entry.questions]
    results = demo.search_many([question for _, question in questions], k=3)
    wrong = [
        (question, hits[0].entry_id)
        for (entry_id, question), hits in zip(questions, results, strict=True)
        if hits[0].entry_id != entry_id
    ]
    assert wrong == []
    undecided = [q for (_, q), hits in zip(questions, results, strict=True) if demo.decide(hits).kind != "answer"]
    assert len(undecided) <= len(questions) // 10, undecided


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("como acepto la invitacion de agencia de ecuabots", "invitacion_agencia"),
        ("cual es el correo de soporte", "soporte"),
        ("puedo mandar promociones con las etiquetas?", "etiquetas_promociones"),
        ("se puede poner el bot en whatsap", "whatsapp"),
        ("como hago para que el bot no conteste y responder yo", "pausar_chatbot"),
    ],
)
def test_demo_matrix_ranks_informal_messages(demo: KnowledgeBase, message: str, expected: str) -> None:
    assert demo.search(message, k=3)[0].entry_id == expected


@pytest.mark.parametrize("message", ["dame una receta de encebollado", "quien gano el partido ayer"])
def test_demo_matrix_does_not_answer_off_topic_messages(demo: KnowledgeBase, message: str) -> None:
    assert demo.answer(message).kind != "answer"


def test_artifact_round_trip_with_faiss_and_the_real_model(
    demo: KnowledgeBase, knowledge_embedder: Embedder, tmp_path: Path
) -> None:
    manifest = demo.save(tmp_path / "kb", now=datetime.now(UTC))
    assert manifest.model_name == DEFAULT_SETTINGS.embedder and manifest.index_kind == "flat"
    loaded = KnowledgeBase.load(tmp_path / "kb", embedder=knowledge_embedder)
    for message in ("cuanto cuesta el servicio", "como conecto facebook"):
        assert loaded.search(message, 3) == demo.search(message, 3)
