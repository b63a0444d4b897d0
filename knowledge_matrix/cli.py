"""`python -m knowledge_matrix …`: validate, build, evaluate, publish and roll back a matrix.

Exit codes: 0 fine, 1 the matrix has errors (nothing built or published) or there is nothing to
roll back, 2 the command could not run (file unreadable, model unavailable, bad arguments).
`publish`, `rollback` and `versions` work on `<data dir>/knowledge` (`--data-dir`, else
`$BOT_DATA_DIR`, else `var/` in the repository, as the bot's own settings).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from core.settings import data_dir_from_env
from knowledge_matrix.embedders import create_embedder, shared_embedder
from knowledge_matrix.errors import KnowledgeMatrixError
from knowledge_matrix.evaluate import evaluate, read_queries, report, summarize
from knowledge_matrix.knowledge_base import KnowledgeBase
from knowledge_matrix.matrix import Matrix, entries_from_sheet, read_sheet
from knowledge_matrix.paraphrase_cli import add_command as add_paraphrase_command
from knowledge_matrix.publish import (
    NothingToRollBackError,
    activate,
    build_knowledge_base,
    checked_report,
    full_report,
    list_versions,
    outdated_live_source,
    publish,
    read_pointer,
    republish_if_outdated,
    rollback,
)
from knowledge_matrix.settings import DEFAULT_SETTINGS
from knowledge_matrix.validation import validate_sheet

__all__ = ["full_report", "main", "parser"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_FAILED = 2

def data_dir_from(args: argparse.Namespace) -> Path:
    """`--data-dir`, else the bot's own (core/settings.py: $BOT_DATA_DIR, else the repository's var/)."""
    return Path(args.data_dir) if args.data_dir else data_dir_from_env()


def _validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    sheet = read_sheet(Path(args.file))
    embedder = None if args.no_embeddings else create_embedder(args.embedder)
    result, _ = checked_report(sheet, embedder)
    if args.json:
        out.write(json.dumps(result.to_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        out.write(result.render() + "\n")
    return EXIT_OK if result.ok else EXIT_INVALID


def _build(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    sheet = read_sheet(Path(args.file))
    embedder = create_embedder(args.embedder)
    result, built = checked_report(sheet, embedder)
    if not result.ok:
        err.write(result.render() + "\n")
        return EXIT_INVALID
    if result.warnings:
        err.write(result.render() + "\n")
    knowledge_base = built or build_knowledge_base(sheet, embedder)
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


def _publish(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    data_dir = data_dir_from(args)
    if args.if_nothing_published:
        pointer = read_pointer(data_dir)
        if pointer is not None:
            out.write(f"Ya hay una versión publicada ({pointer.version}); no se publica {args.file}.\n")
            return _republish_if_outdated(data_dir, args, out, err)
    result = publish(Path(args.file), data_dir, datetime.now(UTC), by=args.by, embedder=shared_embedder(args.embedder))
    if not result.published or result.version is None:
        err.write(result.report.render() + "\n")
        return EXIT_INVALID
    if result.report.warnings:
        err.write(result.report.render() + "\n")
    version = result.version
    previous = f"; antes respondía la {result.previous_version}" if result.previous_version else ""
    out.write(
        f"Publicada la versión {version.id}: {version.entry_count} entradas, {version.row_count} preguntas, "
        f"modelo {version.model_name}{previous}. El bot responde con ella desde el próximo mensaje.\n"
    )
    return EXIT_OK


def _republish_if_outdated(data_dir: Path, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """An index built by an older version of this code is rebuilt from the live version's own source."""
    if outdated_live_source(data_dir) is None:
        return EXIT_OK
    out.write("La versión publicada usa un índice de una versión anterior: se vuelve a publicar su archivo…\n")
    result = republish_if_outdated(data_dir, datetime.now(UTC), embedder=shared_embedder(args.embedder))
    if result is None or not result.published or result.version is None:
        if result is not None:
            err.write(result.report.render() + "\n")
        return EXIT_INVALID
    out.write(f"Publicada la versión {result.version.id} con el archivo de la {result.previous_version}.\n")
    return EXIT_OK


def _rollback(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    data_dir = data_dir_from(args)
    now = datetime.now(UTC)
    try:
        version = activate(data_dir, args.to, now, by=args.by) if args.to else rollback(data_dir, now, by=args.by)
    except NothingToRollBackError as exc:
        err.write(f"{exc}\n")
        return EXIT_INVALID
    out.write(
        f"El bot responde ahora con la versión {version.id} (publicada {version.published_at} por "
        f"{version.published_by or '?'}, {version.entry_count} entradas, archivo {version.filename}).\n"
    )
    return EXIT_OK


def _versions(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    data_dir = data_dir_from(args)
    pointer = read_pointer(data_dir)
    versions = list_versions(data_dir)
    live = pointer.version if pointer else None
    if args.json:
        payload = {
            "live": live,
            "lineage": list(pointer.lineage) if pointer else [],
            "versions": [{**version.to_dict(), "live": version.id == live} for version in versions],
        }
        out.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
        return EXIT_OK
    if not versions:
        out.write(f"Todavía no se publicó ninguna versión en {data_dir}.\n")
        return EXIT_OK
    for version in reversed(versions):
        mark = "*" if version.id == live else " "
        out.write(
            f"{mark} {version.id}  {version.published_at}  {version.entry_count:4d} entradas  "
            f"{version.filename}  ({version.published_by})\n"
        )
    if pointer and pointer.previous:
        out.write(f"* = en vivo. `rollback` vuelve a la {pointer.previous}.\n")
    else:
        out.write("* = en vivo. No hay una versión anterior a la que volver.\n")
    return EXIT_OK


Command = Callable[[argparse.Namespace, TextIO, TextIO], int]


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m knowledge_matrix", description="Knowledge matrix tools.")
    commands = root.add_subparsers(dest="command", required=True)

    validate = commands.add_parser("validate", help="check a matrix and print the report in Spanish")
    validate.add_argument("file", help="matrix .csv or .xlsx")
    validate.add_argument(
        "--no-embeddings", action="store_true", help="skip the near-duplicate and confusable checks (no model)"
    )
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

    publish_ = commands.add_parser("publish", help="validate, build and make the matrix the live version")
    publish_.add_argument("file", help="matrix .csv or .xlsx")
    publish_.add_argument("--data-dir", help="the bot's data directory (default: $BOT_DATA_DIR or var/)")
    publish_.add_argument("--embedder", default=DEFAULT_SETTINGS.embedder)
    publish_.add_argument("--by", default="cli", help="who publishes (kept with the version)")
    publish_.add_argument(
        "--if-nothing-published", action="store_true",
        help="do nothing when a version is already live (but republish its own file if its index is outdated)"
    )
    publish_.set_defaults(run=_publish)

    upgrade = commands.add_parser(
        "upgrade", help="republish the live version's own file when its index is of an older format (after an upgrade)"
    )
    upgrade.add_argument("--data-dir", help="the bot's data directory (default: $BOT_DATA_DIR or var/)")
    upgrade.add_argument("--embedder", default=DEFAULT_SETTINGS.embedder)
    upgrade.set_defaults(run=lambda args, out, err: _republish_if_outdated(data_dir_from(args), args, out, err))

    rollback_ = commands.add_parser("rollback", help="serve the version that was live before the current one")
    rollback_.add_argument("--to", help="serve this version instead (e.g. 0003)")
    rollback_.add_argument("--data-dir", help="the bot's data directory (default: $BOT_DATA_DIR or var/)")
    rollback_.add_argument("--by", default="cli", help="who rolls back (kept in the history)")
    rollback_.set_defaults(run=_rollback)

    versions_ = commands.add_parser("versions", help="list the published versions, the live one marked with *")
    versions_.add_argument("--data-dir", help="the bot's data directory (default: $BOT_DATA_DIR or var/)")
    versions_.add_argument("--json", action="store_true")
    versions_.set_defaults(run=_versions)

    add_paraphrase_command(commands)  # `paraphrase`: LLM-proposed ways of asking (knowledge_matrix/paraphrase_cli.py)
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
