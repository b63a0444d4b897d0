"""The version the bot answers from, switched without a restart when `CURRENT` changes.

Every query stat()s the pointer (microseconds). When it changed, the version it names is loaded
in a worker thread (the event loop keeps serving other users) and then the reference is swapped:
a query that already holds the old version finishes with it, every query that starts after the
swap gets the new one. Models come from the process-wide cache (`shared_embedder`), so a new
version of the same model loads in milliseconds.

A version that cannot be loaded is logged and skipped; the previous one keeps answering until
the pointer changes again. Nothing published yet: `lookup` returns None (the caller offers a
person). `make run` publishes the demo matrix before that happens (see `bot/stack.py`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from knowledge_matrix.embedders import Embedder, shared_embedder
from knowledge_matrix.errors import KnowledgeMatrixError
from knowledge_matrix.knowledge_base import KnowledgeBase
from knowledge_matrix.matrix import Entry
from knowledge_matrix.publish import load_version, pointer_path, read_pointer
from knowledge_matrix.retrieval import Hit, Verdict
from knowledge_matrix.settings import DEFAULT_SETTINGS

logger = logging.getLogger(__name__)

# Hits looked up per message: the "¿Quisiste decir…?" candidates and the GPT fallback's context (5 entries).
LOOKUP_HITS = 5
# The pointer is stat()ed on every query; its content is also re-read this often, in case a replacement kept
# the same inode, size and timestamp (two switches within one timestamp tick).
RECHECK_SECONDS = 2.0

PointerStamp = tuple[int, int, int, int]


@dataclass(frozen=True)
class LiveVersion:
    """One loaded version: hold on to it for the whole query."""

    version: str
    knowledge: KnowledgeBase
    entries_by_id: Mapping[str, Entry] = field(default_factory=dict)

    @classmethod
    def of(cls, version: str, knowledge: KnowledgeBase) -> LiveVersion:
        return cls(version, knowledge, {entry.id: entry for entry in knowledge.entries})


@dataclass(frozen=True)
class Lookup:
    """What the live version makes of a message: the verdict, and the best entries whatever the
    verdict (the GPT fallback answers from them when nothing matched)."""

    version: str
    verdict: Verdict
    hits: tuple[Hit, ...]


def _stamp(path: Path) -> PointerStamp | None:
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return (status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


class LiveKnowledge:
    """The live version of `<data_dir>/knowledge`, for the action server; safe from any thread."""

    def __init__(
        self,
        data_dir: Path,
        *,
        embedder_for: Callable[[str], Embedder] = shared_embedder,
        recheck_seconds: float = RECHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.data_dir = Path(data_dir)
        self._pointer = pointer_path(self.data_dir)
        self._embedder_for = embedder_for
        self._recheck_seconds = recheck_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._current: LiveVersion | None = None
        self._seen: PointerStamp | None = None
        self._checked_at = float("-inf")
        self._failed_version: str | None = None

    # --- the version ------------------------------------------------------------------------------

    def _is_fresh(self) -> bool:
        return _stamp(self._pointer) == self._seen and self._clock() - self._checked_at < self._recheck_seconds

    def refresh(self) -> LiveVersion | None:
        """The live version, loading it first if the pointer changed. Blocks while loading: call it
        from a thread (`current()` does) or at start-up."""
        if self._is_fresh():
            return self._current
        with self._lock:
            if self._is_fresh():  # another thread loaded it while this one waited
                return self._current
            stamp = _stamp(self._pointer)
            self._load_named_version()
            self._seen, self._checked_at = stamp, self._clock()
            return self._current

    def _load_named_version(self) -> None:
        try:
            pointer = read_pointer(self.data_dir)
        except KnowledgeMatrixError as exc:
            logger.error("cannot read the knowledge pointer (%s); version %s keeps answering", exc, self.version,
                         extra={"error": str(exc), "version": self.version})
            return
        if pointer is None or pointer.version == self.version or pointer.version == self._failed_version:
            return
        started = time.perf_counter()
        try:
            knowledge = load_version(self.data_dir, pointer.version, self._embedder_for)
        except KnowledgeMatrixError as exc:
            self._failed_version = pointer.version
            logger.error("cannot load knowledge version %s (%s); version %s keeps answering", pointer.version, exc,
                         self.version, extra={"version": pointer.version, "previous": self.version, "error": str(exc)})
            return
        previous = self.version
        self._current = LiveVersion.of(pointer.version, knowledge)  # one reference assignment: the swap
        self._failed_version = None
        elapsed_ms = round((time.perf_counter() - started) * 1000)
        logger.info("knowledge version %s live (was %s; loaded in %d ms)", pointer.version, previous, elapsed_ms,
                    extra={"version": pointer.version, "previous": previous, "load_ms": elapsed_ms})

    @property
    def version(self) -> str | None:
        current = self._current
        return None if current is None else current.version

    async def current(self) -> LiveVersion | None:
        """The live version; when the pointer changed, loaded in a worker thread first."""
        if self._is_fresh():
            return self._current
        return await asyncio.to_thread(self.refresh)

    # --- what the action asks -----------------------------------------------------------------------

    async def lookup(self, question: str, k: int = LOOKUP_HITS) -> Lookup | None:
        """Search and decide with the live version (in a worker thread); None when nothing is published."""
        live = await self.current()
        if live is None:
            return None
        hits = await asyncio.to_thread(live.knowledge.search, question, k)
        return Lookup(live.version, live.knowledge.decide(hits), tuple(hits))

    async def entry(self, entry_id: str) -> Entry | None:
        """An entry of the live version by id (a quick reply that points to it), or None."""
        live = await self.current()
        return None if live is None else live.entries_by_id.get(entry_id)

    # --- start-up -------------------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Load the live version and run one query, so the first customer does not wait for the models
        (about 2 s). With nothing published yet, the default models are loaded instead."""
        started = time.perf_counter()
        try:
            live = self.refresh()
            if live is not None:
                live.knowledge.search("hola", 1)
            else:
                self._embedder_for(DEFAULT_SETTINGS.embedder).embed(["hola"])
        except KnowledgeMatrixError as exc:
            logger.error("knowledge warm-up failed: %s", exc, extra={"error": str(exc)})
            return
        elapsed_ms = round((time.perf_counter() - started) * 1000)
        logger.info("knowledge warm-up done in %d ms (version %s)", elapsed_ms, self.version,
                    extra={"version": self.version, "warm_up_ms": elapsed_ms})

    def start_warm_up(self) -> threading.Thread:
        """`warm_up` in a daemon thread: the action server answers its health check meanwhile, and a
        query that arrives first waits for the same load instead of starting another."""
        thread = threading.Thread(target=self.warm_up, name="knowledge-warm-up", daemon=True)
        thread.start()
        return thread
