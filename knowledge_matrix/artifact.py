"""The built index on disk: a directory with a manifest, written atomically.

```
manifest.json   format version, matrix hash, model name and dimension, created_at, counts, settings
entries.json    the entries as served (answers, quick replies, buttons …)
rows.npy        entry index of every vector row
background.npy  the rows each query is standardized against
index.faiss     the FAISS index (or vectors.npy for the in-memory index)
lexical.npz     only when lexical scoring is enabled
```

A manifest whose model, dimension or format differs from what the reader runs with means the
vectors are meaningless to it: `RebuildRequiredError`, never a silent wrong answer.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from knowledge_matrix.errors import ArtifactError, RebuildRequiredError

FORMAT_VERSION = 2  # 2: lexical channel with its stemmer, model agreement, answer margin (issue 15)
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Manifest:
    format_version: int
    matrix_sha256: str
    source_sha256: str
    model_name: str
    dimension: int
    created_at: str
    entry_count: int
    row_count: int
    index_kind: str
    settings: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "matrix_sha256": self.matrix_sha256,
            "source_sha256": self.source_sha256,
            "model_name": self.model_name,
            "dimension": self.dimension,
            "created_at": self.created_at,
            "entry_count": self.entry_count,
            "row_count": self.row_count,
            "index_kind": self.index_kind,
            "settings": dict(self.settings),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        try:
            return cls(
                format_version=int(data["format_version"]),
                matrix_sha256=str(data["matrix_sha256"]),
                source_sha256=str(data.get("source_sha256", "")),
                model_name=str(data["model_name"]),
                dimension=int(data["dimension"]),
                created_at=str(data["created_at"]),
                entry_count=int(data["entry_count"]),
                row_count=int(data["row_count"]),
                index_kind=str(data["index_kind"]),
                settings=dict(data.get("settings", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"manifest is incomplete: {exc}") from exc


def utc_timestamp(now: datetime) -> str:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.isoformat()


def check_compatible(manifest: Manifest, model_name: str, dimension: int) -> None:
    """Raise `RebuildRequiredError` unless the artifact was built for this format, model and dimension."""
    if manifest.format_version != FORMAT_VERSION:
        raise RebuildRequiredError(
            f"artifact format {manifest.format_version}, this code reads format {FORMAT_VERSION}: rebuild the index"
        )
    if manifest.model_name != model_name:
        raise RebuildRequiredError(
            f"artifact built with model {manifest.model_name!r}, running with {model_name!r}: rebuild the index"
        )
    if manifest.dimension != dimension:
        raise RebuildRequiredError(
            f"artifact has dimension {manifest.dimension}, the model gives {dimension}: rebuild the index"
        )


def read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ArtifactError(f"no {MANIFEST} in {directory}: not a built index") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"cannot read {path}: {exc}") from exc
    return Manifest.from_dict(data)


FileWriter = Callable[[Path], None]


def write_artifact(directory: Path, manifest: Manifest, files: Mapping[str, FileWriter]) -> None:
    """Write every file into a staging directory beside `directory`, then swap it in.

    A reader sees the old complete artifact or the new complete one, never a half-written
    one; the manifest is written last, so a staging directory without it is never valid.
    """
    directory = directory.resolve()
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.parent / f".{directory.name}.staging-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        for name, write in files.items():
            write(staging / name)
        (staging / MANIFEST).write_text(
            json.dumps(manifest.to_dict(), ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        _fsync_directory(staging)
        if directory.exists():
            retired = directory.parent / f".{directory.name}.retired-{uuid.uuid4().hex[:12]}"
            os.replace(directory, retired)
            os.replace(staging, directory)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, directory)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _fsync_directory(directory: Path) -> None:
    for path in directory.iterdir():
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
