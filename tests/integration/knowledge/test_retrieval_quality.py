"""The default embedder, settings and FAISS on real Spanish sets: the quality the bot ships with."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, replace
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
    """Issue 15's goal, top-1 at least 0.90 (22 of the public dev set's 24 answerable queries). The product once
    asked 0.95 here, which the defaults chosen on this set reached; the defaults chosen by leave-one-set-out over
    nine sets lose «como elimino mi perfil definitivamente» (the lexical channel prefers change_password) and win
    more elsewhere. The floors below guard the rest of its figures."""
    matrix_path, queries_path = dev_files()
    knowledge_base = KnowledgeBase.build(load_matrix(matrix_path), knowledge_embedder)
    summary = summarize(evaluate(knowledge_base, read_queries(queries_path)))
    assert summary.top1 is not None and summary.top1 >= 0.90, summary


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
    assert summary["top1"] >= 0.90


@dataclass(frozen=True)
class Measured:
    """What the defaults measured on one set (`python -m knowledge_matrix eval --json`; README, "Measured"), with
    the number of answerable and unanswerable queries each figure is a share of."""

    answerable: int
    unanswerable: int
    figures: dict[str, float]

    def floor(self, metric: str) -> float:
        """One query under the measured figure: losing any single query fails, noise cannot (the run is
        deterministic). Precision is a share of the answered queries, so one wrong answer more than measured."""
        per_query = {
            "top1": 1 / self.answerable,
            "mrr": 1 / self.answerable,
            "answered_coverage": 1 / self.answerable,
            "answered_precision": 1 / self.answered(),
            "unanswerable_rejection": 1 / self.unanswerable,
        }[metric]
        return self.figures[metric] - per_query - 1e-9

    def answered(self) -> int:
        """Queries answered, answerable or not: what precision is a share of."""
        wrongly = (1 - self.figures["unanswerable_rejection"]) * self.unanswerable
        return round(self.figures["answered_coverage"] * self.answerable + wrongly)


# The defaults (embedders, lexical channel, threshold, calibration) were chosen by leave-one-set-out over these three
# sets and the six blind ones (bench/knowledge.py --heldout), and the shipped calibration and threshold were then
# fitted on all nine: so these figures are in-sample, regression guards, not evidence that the bot answers questions
# nobody tuned for (the README reports the leave-one-set-out figures for that). What they guard: the text
# normalisation, the shorthand expansion, the Snowball lexical channel, both embedders' loading and
# standardisation, the index, the calibration and the decision threshold. Coverage has a floor next to precision and
# rejection because raising the threshold buys precision with coverage: without it, a stricter bot that answers less
# would pass. A change that improves a figure should raise it here (the failure message prints the new summary).
# The query adapter shipped in the defaults was trained on these very questions, so with it the figures are far above
# what an unseen matrix gets (top-1 0.95-0.98 here, 0.879 pooled held out): they guard that the shipped adapter loads,
# applies to both models and is read by its calibration. `UNADAPTED` guards the ranking under it, as before the adapter.
# Both are measured with the equivalent words of the defaults (`synonyms.py`) on.
MEASURED = {
    "dev": Measured(24, 4, {"top1": 0.958333, "mrr": 0.979167, "answered_precision": 1.0,
                            "answered_coverage": 0.875, "unanswerable_rejection": 1.0}),
    "heldout_ecuabots": Measured(108, 25, {"top1": 0.981481, "mrr": 0.990741, "answered_precision": 1.0,
                                           "answered_coverage": 0.925926, "unanswerable_rejection": 1.0}),
    "heldout_tienda": Measured(60, 15, {"top1": 0.95, "mrr": 0.975, "answered_precision": 1.0,
                                        "answered_coverage": 0.883333, "unanswerable_rejection": 1.0}),
}
UNADAPTED_SETTINGS = DEFAULT_SETTINGS.with_query_adapter("")  # with the thresholds chosen without the adapter
UNADAPTED = {
    "dev": Measured(24, 4, {"top1": 0.875, "mrr": 0.9375, "answered_precision": 1.0,
                            "answered_coverage": 0.708333, "unanswerable_rejection": 1.0}),
    "heldout_ecuabots": Measured(108, 25, {"top1": 0.888889, "mrr": 0.920286, "answered_precision": 0.962963,
                                           "answered_coverage": 0.740741, "unanswerable_rejection": 0.96}),
    "heldout_tienda": Measured(60, 15, {"top1": 0.816667, "mrr": 0.896528, "answered_precision": 0.967742,
                                        "answered_coverage": 0.516667, "unanswerable_rejection": 1.0}),
}


def set_files(name: str) -> tuple[Path, Path]:
    return dev_files() if name == "dev" else (HELD_OUT / f"{name}_matrix.csv", HELD_OUT / f"{name}_queries.csv")


@pytest.mark.parametrize(("name", "adapted"), [(name, kind) for name in sorted(MEASURED) for kind in (True, False)])
def test_each_set_stays_within_one_query_of_what_the_defaults_measured(
    knowledge_embedder: Embedder, name: str, adapted: bool
) -> None:
    matrix_path, queries_path = set_files(name)
    queries = read_queries(queries_path)
    measured = (MEASURED if adapted else UNADAPTED)[name]
    assert sum(q.answerable for q in queries) == measured.answerable, "the set changed: measure again"
    settings = DEFAULT_SETTINGS if adapted else UNADAPTED_SETTINGS
    knowledge_base = KnowledgeBase.build(load_matrix(matrix_path), knowledge_embedder, settings)
    assert knowledge_base.settings.query_adapter == settings.query_adapter
    summary = summarize(evaluate(knowledge_base, queries)).to_dict()
    below = {
        metric: (summary[metric], round(measured.floor(metric), 4))
        for metric in measured.figures
        if summary[metric] is None or summary[metric] < measured.floor(metric)
    }
    assert below == {}, f"{name}: figure (floor) {below}; whole summary {summary}"


def test_a_stricter_threshold_is_caught_by_the_coverage_floor(knowledge_embedder: Embedder) -> None:
    """The floors can fail the way they are meant to: the same set answered with a higher threshold keeps its
    ranking (top-1, MRR) and its precision, but loses coverage, and only the coverage floor says so."""
    matrix_path, queries_path = set_files("heldout_ecuabots")
    thresholds = DEFAULT_SETTINGS.thresholds
    strict = replace(DEFAULT_SETTINGS, thresholds=replace(thresholds, answer=min(1.0, thresholds.answer + 0.1)))
    knowledge_base = KnowledgeBase.build(load_matrix(matrix_path), knowledge_embedder, strict)
    summary = summarize(evaluate(knowledge_base, read_queries(queries_path))).to_dict()
    measured = MEASURED["heldout_ecuabots"]
    assert summary["top1"] >= measured.floor("top1")
    assert summary["answered_precision"] >= measured.floor("answered_precision")
    assert summary["answered_coverage"] < measured.floor("answered_coverage"), summary


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
