"""Validating a 50,000-row matrix: time and peak memory, each case in its own process.

    .venv/bin/python bench/spreadsheets.py            # 50,000 rows, cheap embedder, FAISS near-duplicates
    .venv/bin/python bench/spreadsheets.py --rows 30000 --format xlsx

Prints one JSON line per case with the peak RSS (`ru_maxrss` of the child process) and the
wall-clock time. Nothing is asserted on time; the point is that memory stays bounded (the old
N×N similarity matrix needed ~3.6 GB for 30,000 questions). The embedder is `SeededRandomEmbedder`
(one hash per text, the package's cheap fake behind its `Embedder` interface): real models cost minutes of CPU
for 50,000 questions and measure the model, not the check.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from knowledge_matrix.embedders import SeededRandomEmbedder  # noqa: E402


def word(number: int) -> str:
    """Distinct letters-only words per number: digits do not tell questions apart for the validator, and
    its stemmer keeps six letters, so each base-20 digit is its own three-letter word (vowel = position)."""
    words = []
    position = 0
    while True:
        number, remainder = divmod(number, 20)
        words.append("bcdfghjklmnprstvxyzq"[remainder] + "aeiou"[position] + "x")
        position += 1
        if number == 0:
            return " ".join(words)


def write_matrix(path: Path, rows: int, near_duplicates: int = 10, questions_per_row: int = 2) -> None:
    """`rows` entries; the last `near_duplicates` entries ask a question of an earlier entry with another case
    and spacing (not an exact duplicate for the validator, identical vectors for the fake embedder, so each
    must come back as a near-duplicate warning)."""
    table = [["id", "preguntas", "respuesta"]]
    for number in range(rows):
        source = number - rows // 2 if number >= rows - near_duplicates else number
        first = f"¿Precio de {word(source)}?"
        if source != number:
            first = f"¿Cuál es el precio de {word(source)}?"
        questions = [first, *(f"{word(number)} forma {word(extra)}" for extra in range(1, questions_per_row))]
        table.append([f"e{number}", " | ".join(questions), f"Cuesta ${number % 500}."])
    if path.suffix == ".xlsx":
        from openpyxl import Workbook

        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet()
        for line in table:
            sheet.append(line)
        workbook.save(path)
    else:
        import csv

        with path.open("w", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerows(table)


def run_case(path: Path, dimension: int) -> dict[str, object]:
    from knowledge_matrix.publish import check_matrix

    started = time.perf_counter()
    report, _sheet = check_matrix(path, SeededRandomEmbedder(dimension))
    elapsed = time.perf_counter() - started
    near = [issue for issue in report.issues if issue.code == "near_duplicate_question"]
    return {
        "file": path.name,
        "bytes": path.stat().st_size,
        "entries": report.entry_count,
        "errors": report.error_count,
        "near_duplicate_warnings": len(near),
        "seconds": round(elapsed, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def measure_in_subprocess(path: Path, dimension: int = 64) -> dict[str, object]:
    """Run one validation in a fresh interpreter, so its peak RSS is its own."""
    output = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(path), "--dimension", str(dimension)],
        check=True, capture_output=True, text=True, cwd=ROOT,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--format", choices=("csv", "xlsx", "both"), default="both")
    parser.add_argument("--dimension", type=int, default=64, help="of the fake embedder (64: HNSW at 50,000 rows)")
    parser.add_argument("--questions-per-row", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_case(Path(args.child), args.dimension)))
        return 0
    import tempfile

    formats = ("csv", "xlsx") if args.format == "both" else (args.format,)
    with tempfile.TemporaryDirectory() as directory:
        for suffix in formats:
            path = Path(directory) / f"matriz_{args.rows}.{suffix}"
            write_matrix(path, args.rows, questions_per_row=args.questions_per_row)
            print(json.dumps(measure_in_subprocess(path, args.dimension)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
