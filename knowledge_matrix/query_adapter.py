"""A query adapter: the customer's message moved towards the way editors write questions, before it is searched.

Customers ask informally («necesito bajar mis clientes en excel»), editors write formal questions («¿Cómo exporto mis
contactos?»), and the gap between the two styles is much the same in every business. An adapter is one square matrix
per model, learnt on other businesses' labelled questions (`bench/query_adapter.py --ship`), applied to the message's
vector only: q' = unit(q + qA) block by block. The rows are never changed, so what compares rows with rows (the
near-duplicate warnings, the grouping of unanswered questions) is not affected; what searches like the bot does
(`KnowledgeBase.search`, `search_many`: the confusable-entries check too) goes through the adapter. The version's
manifest names the adapter it was built with; a version built before adapters existed answers without one.

The shipped adapters live beside this module (`adapters/<name>.npz`, float16, one array per model, named by the
model's spec); a model the adapter has no matrix for is left as it is.
"""

from __future__ import annotations

import functools
import re
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from knowledge_matrix.embedders import EmbedderPart
from knowledge_matrix.errors import ArtifactError

FloatMatrix = npt.NDArray[np.float32]

ADAPTERS_DIR = Path(__file__).resolve().parent / "adapters"
_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}")


@dataclass(frozen=True, eq=False)
class QueryAdapter:
    """`matrices`: model spec (an `EmbedderPart` name) → (d × d) matrix of that model's dimension."""

    name: str
    matrices: Mapping[str, FloatMatrix]

    def applies_to(self, parts: Sequence[EmbedderPart]) -> bool:
        """Whether any model of the embedder has a matrix of its dimension here (otherwise adapting changes nothing)."""
        return any(self._matrix_for(part) is not None for part in parts)

    def _matrix_for(self, part: EmbedderPart) -> FloatMatrix | None:
        matrix = self.matrices.get(part.name)
        if matrix is None or matrix.shape != (part.stop - part.start, part.stop - part.start):
            return None
        return matrix

    def adapt(self, vectors: FloatMatrix, parts: Sequence[EmbedderPart]) -> FloatMatrix:
        """Messages' joint vectors (n × dimension, each block carrying sqrt(its share)) with every block that has a
        matrix replaced by unit(b + bA) · sqrt(share): still a unit vector in that block's scale. Accepts one vector
        (then returns a 1 × dimension matrix)."""
        adapted = np.array(vectors, dtype=np.float32, copy=True, ndmin=2)
        for part in parts:
            matrix = self._matrix_for(part)
            if matrix is None:
                continue
            block = adapted[:, part.start : part.stop]
            # Row by row: a matrix product over a batch would change the last bits, and a message searched in a
            # batch (`search_many`) must get exactly the hits it gets alone.
            moved = np.stack([row + row @ matrix for row in block]) if len(block) else block
            norms = np.linalg.norm(moved, axis=1, keepdims=True)
            norms[norms == 0.0] = 1.0
            adapted[:, part.start : part.stop] = moved / norms * np.float32(np.sqrt(part.weight))
        return adapted


def adapter_path(name: str) -> Path:
    if not _NAME.fullmatch(name):
        raise ArtifactError(f"invalid query adapter name {name!r}")
    return ADAPTERS_DIR / f"{name}.npz"


@functools.lru_cache(maxsize=4)
def load_query_adapter(name: str) -> QueryAdapter:
    """A shipped adapter by name (read once per process). Raises `ArtifactError` when it is not shipped here (a
    manifest written by a newer version) or unreadable."""
    path = adapter_path(name)
    try:
        # The file opened here, so that it is closed when numpy cannot read it either.
        with path.open("rb") as handle, np.load(handle, allow_pickle=False) as stored:
            matrices = {model: np.ascontiguousarray(stored[model], dtype=np.float32) for model in stored.files}
    except FileNotFoundError as exc:
        raise ArtifactError(f"query adapter {name!r} is not available in this version") from exc
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ArtifactError(f"query adapter {name!r} is unreadable: {exc}") from exc
    for model, matrix in matrices.items():
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ArtifactError(f"query adapter {name!r}: the matrix of {model} is not square")
        if not np.isfinite(matrix).all():
            raise ArtifactError(f"query adapter {name!r}: the matrix of {model} has values that are not numbers")
        matrix.setflags(write=False)  # shared by every knowledge base of the process (the loader's cache)
    return QueryAdapter(name, matrices)


def save_query_adapter(path: Path, matrices: Mapping[str, npt.NDArray[np.floating]]) -> None:
    """What `load_query_adapter` reads: one float16 array per model spec."""
    arrays: dict[str, Any] = {model: np.asarray(matrix, dtype=np.float16) for model, matrix in matrices.items()}
    np.savez_compressed(path, **arrays)
