"""`python -m knowledge_matrix …`: validate, build and evaluate a matrix.

Exit codes: 0 fine, 1 the matrix has errors (nothing built), 2 the command could not run
(file unreadable, model unavailable, bad arguments).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import numpy as np

from knowledge_matrix.embedders import Embedder, create_embedder
from knowledge_matrix.errors import KnowledgeMatrixError
from knowledge_matrix.evaluate import evaluate, read_queries, report, summarize
from knowledge_matrix.knowledge_base import KnowledgeBase
from knowledge_matrix.matrix import Matrix, Sheet, entries_from_sheet, read_sheet
from knowledge_matrix.settings import DEFAULT_SETTINGS, near_duplicate_threshold
from knowledge_matrix.validation import Report, near_duplicate_issues, question_refs, validate_sheet

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_FAILED = 2


def full_report(sheet: Sheet, embedder: Embedder | None) -> Report:
    """Structural checks, plus near-duplicate questions when an embedder is at hand."""
    report_ = validate_sheet(sheet)
    if embedder is None:
        return report_
    refs = question_refs(sheet)
    if len(refs) < 2:
        return report_
    vectors = embedder.embed([ref.text for ref in refs], role="query")
    similarity = np.asarray(vectors @ vectors.T)
    return report_.with_issues(near_duplicate_issues(refs, similarity, near_duplicate_threshold(embedder.name)))


def _validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    sheet = read_sheet(Path(args.file))
    embedder = None if args.no_embeddings else create_embedder(args.embedder)
    result = full_report(sheet, embedder)
    if args.json:
        out.write(json.dumps(result.to_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        out.write(result.render() + "\n")
    return EXIT_OK if result.ok else EXIT_INVALID


def _build(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    sheet = read_sheet(Path(args.file))
    embedder = create_embedder(args.embedder)
    result = full_report(sheet, embedder)
    if not result.ok:
        err.write(result.render() + "\n")
        return EXIT_INVALID
    if result.warnings:
        err.write(result.render() + "\n")
    matrix = Matrix.of(entries_from_sheet(sheet), source_sha256=sheet.source_sha256)
    settings = DEFAULT_SETTINGS.with_changes(embedder=embedder.name)
    knowledge_base = KnowledgeBase.build(matrix, embedder, settings)
    manifest = knowledge_base.save(Path(args.out), now=datetime.now(UTC))
    out.write(
        f"Índice creado en {args.out}: {manifest.entry_count} entradas, {manifest.row_count} preguntas, "
        f"modelo {manifest.model_name} ({manifest.dimension} dimensiones), índice {manifest.index_kind}, "
        f"matriz {manifest.matrix_sha256[:12]}.\n"
    )
    return EXIT_OK


def _eval(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    sheet = read_sheet(Path(args.matrix))
    structural = validate_sheet(sheet)
    if not structural.ok:  # evaluate what can be served, but say what was skipped
        err.write(structural.render() + "\n")
    matrix = Matrix.of(entries_from_sheet(sheet), source_sha256=sheet.source_sha256)
    queries = read_queries(Path(args.queries))
    known = {entry.id for entry in matrix.entries}
    for unknown in sorted({q.expected_id for q in queries if q.expected_id and q.expected_id not in known}):
        err.write(f"aviso: expected_id «{unknown}» no está en la matriz; esas consultas cuentan como fallos\n")
    embedder = create_embedder(args.embedder)
    settings = DEFAULT_SETTINGS.with_changes(embedder=embedder.name)
    knowledge_base = KnowledgeBase.build(matrix, embedder, settings)
    results = evaluate(knowledge_base, queries)
    if args.json:
        out.write(json.dumps(report(results), ensure_ascii=False) + "\n")
        return EXIT_OK
    summary = summarize(results)
    for name, value in summary.to_dict().items():
        out.write(f"{name:24s} {'-' if value is None else f'{value:.3f}'}\n")
    out.write(
        f"{'queries':24s} {len(results)} ({summary.answerable} answerable, {summary.unanswerable} unanswerable)\n"
    )
    return EXIT_OK


Command = Callable[[argparse.Namespace, TextIO, TextIO], int]


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m knowledge_matrix", description="Knowledge matrix tools.")
    commands = root.add_subparsers(dest="command", required=True)

    validate = commands.add_parser("validate", help="check a matrix and print the report in Spanish")
    validate.add_argument("file", help="matrix .csv or .xlsx")
    validate.add_argument("--no-embeddings", action="store_true", help="skip the near-duplicate check (no model)")
    validate.add_argument("--embedder", default=DEFAULT_SETTINGS.embedder)
    validate.add_argument("--json", action="store_true")
    validate.set_defaults(run=_validate)

    build = commands.add_parser("build", help="validate, embed and write the index artifact")
    build.add_argument("file", help="matrix .csv or .xlsx")
    build.add_argument("--out", required=True, help="artifact directory (replaced atomically)")
    build.add_argument("--embedder", default=DEFAULT_SETTINGS.embedder)
    build.set_defaults(run=_build)

    evaluate_ = commands.add_parser("eval", help="rank labeled queries against a matrix and print the metrics")
    evaluate_.add_argument("--matrix", required=True)
    evaluate_.add_argument("--queries", required=True, help="CSV with columns query,expected_id")
    evaluate_.add_argument("--json", action="store_true", help="print one JSON object (results and summary)")
    evaluate_.add_argument("--embedder", default=DEFAULT_SETTINGS.embedder)
    evaluate_.set_defaults(run=_eval)
    return root


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args = parser().parse_args(argv)
    command: Command = args.run
    try:
        return command(args, out, err)
    except KnowledgeMatrixError as exc:
        err.write(f"error: {exc}\n")
        return EXIT_FAILED
