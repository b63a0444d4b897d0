from __future__ import annotations

import io
import json
from pathlib import Path

from knowledge_matrix.artifact import read_manifest
from knowledge_matrix.cli import EXIT_FAILED, EXIT_INVALID, EXIT_OK, main

GOOD = (
    "id,preguntas,respuesta\n"
    "horario,¿Cuál es el horario de atención?,De 8 a 18.\n"
    "pago,¿Qué métodos de pago aceptan?,Tarjeta.\n"
)
BAD = "id,preguntas,respuesta\nhorario,¿Cuál es el horario?,\nhorario,¿Abren el domingo?,No.\n"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def test_validate_prints_the_spanish_report_and_fails_on_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text(BAD, encoding="utf-8")
    code, out, _ = run("validate", str(tmp_path / "bad.csv"), "--no-embeddings")
    assert code == EXIT_INVALID
    assert "fila 2, columna «respuesta»: falta la respuesta." in out
    assert "fila 3, columna «id»: el id «horario» ya se usa en la fila 2" in out
    (tmp_path / "good.csv").write_text(GOOD, encoding="utf-8")
    assert run("validate", str(tmp_path / "good.csv"), "--no-embeddings")[0] == EXIT_OK


def test_validate_with_an_embedder_warns_about_near_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text(GOOD + "horario2,¿Cuál es el horario de atención hoy?,Igual.\n", encoding="utf-8")
    code, out, _ = run("validate", str(path), "--embedder", "hashing:512", "--json")
    assert code == EXIT_OK
    codes = [issue["code"] for issue in json.loads(out)["issues"]]
    # The two entries are also confusable once built (confusables.py): a warning of its own, after.
    assert codes[0] == "near_duplicate_question" and set(codes[1:]) <= {"confusable_entries"}


def test_build_writes_an_artifact_and_refuses_an_invalid_matrix(tmp_path: Path) -> None:
    (tmp_path / "good.csv").write_text(GOOD, encoding="utf-8")
    code, out, _ = run("build", str(tmp_path / "good.csv"), "--out", str(tmp_path / "kb"), "--embedder", "hashing:64")
    assert code == EXIT_OK and "2 entradas" in out
    assert read_manifest(tmp_path / "kb").model_name == "hashing:64"
    (tmp_path / "bad.csv").write_text(BAD, encoding="utf-8")
    code, _, err = run("build", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "kb2"), "--embedder", "hashing:64")
    assert code == EXIT_INVALID and "NO se publicará" in err
    assert not (tmp_path / "kb2").exists()


def test_eval_json_contract_with_the_fake_embedder(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text(GOOD, encoding="utf-8")
    (tmp_path / "q.csv").write_text("query,expected_id\nhorario de atención,horario\nfútbol,\n", encoding="utf-8")
    code, out, _ = run(
        "eval",
        "--matrix",
        str(tmp_path / "m.csv"),
        "--queries",
        str(tmp_path / "q.csv"),
        "--json",
        "--embedder",
        "hashing:128",
    )
    assert code == EXIT_OK
    printed = json.loads(out)
    assert [r["expected_id"] for r in printed["results"]] == ["horario", ""]
    assert printed["results"][0]["top_id"] == "horario"
    assert set(printed["summary"]) == {
        "top1",
        "mrr",
        "answered_precision",
        "answered_coverage",
        "unanswerable_rejection",
    }


def test_unreadable_input_exits_2_with_a_message(tmp_path: Path) -> None:
    code, _, err = run("validate", str(tmp_path / "nada.csv"), "--no-embeddings")
    assert code == EXIT_FAILED and "no existe" in err
