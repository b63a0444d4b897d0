"""A built matrix ready to answer: entries, embedder, vector index and settings together.

The action server loads one with `KnowledgeBase.load(artifact_dir)` and calls
`search(message)` then `decide(hits)` (or `answer(message)` for both). Building, saving and
loading are the I/O around the pure scoring in `retrieval.py`.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from knowledge_matrix.artifact import (
    FORMAT_VERSION,
    Manifest,
    check_compatible,
    read_manifest,
    utc_timestamp,
    write_artifact,
)
from knowledge_matrix.embedders import Embedder, EmbedderPart, create_embedder, embedder_parts
from knowledge_matrix.errors import ArtifactError, KnowledgeMatrixError
from knowledge_matrix.index import FaissIndex, NumpyIndex, VectorIndex
from knowledge_matrix.lexical import LexicalIndex
from knowledge_matrix.matrix import Entry, Matrix
from knowledge_matrix.off_topic import ANCHORS, anchors_to_keep
from knowledge_matrix.query_adapter import QueryAdapter, load_query_adapter
from knowledge_matrix.retrieval import (
    UNADAPTED_DEPTH,
    Calibration,
    Hit,
    PartStats,
    Unadapted,
    Verdict,
    background_stats,
    best_per_entry,
    decide,
    fused_scores,
    margins,
    message_words,
    model_agreement,
    promote,
    rank_entries,
    reciprocal_rank_fusion,
    rivals,
    standardized_query,
    unadapted_terms,
)
from knowledge_matrix.settings import DEFAULT_SETTINGS, RetrievalSettings
from knowledge_matrix.spelling import Vocabulary
from knowledge_matrix.synonyms import Replacement, SynonymRewriter, rewriter_for
from knowledge_matrix.text import canonical_key, expand_shorthand

FloatMatrix = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

ENTRIES_FILE = "entries.json"
ROWS_FILE = "rows.npy"
BACKGROUND_FILE = "background.npy"
ANCHORS_FILE = "anchors.npy"
FAISS_FILE = "index.faiss"
VECTORS_FILE = "vectors.npy"
LEXICAL_FILE = "lexical.npz"
SYNONYMS_FILE = "synonyms.json"  # what the equivalent words do for these entries (`synonyms.py`)
LEXICAL_BACKGROUND_ROWS = 256
SEARCH_CHUNK = 256  # messages scored together by `search_many`


_SENTENCE = re.compile(r"(?<=[.!?…])\s+|\n+")
MIN_SENTENCE_WORDS = 3


def answer_sentences(answer: str) -> list[str]:
    """The sentences of an answer with at least `MIN_SENTENCE_WORDS` words, in order, without repeats."""
    sentences: list[str] = []
    for part in _SENTENCE.split(answer):
        sentence = " ".join(part.split())
        if len(sentence.split()) >= MIN_SENTENCE_WORDS and sentence not in sentences:
            sentences.append(sentence)
    return sentences


def row_texts(
    entries: Sequence[Entry], fields: str, answer_sentence_rows: bool = False, keyword_rows: bool = False
) -> tuple[list[str], list[int], list[int]]:
    """One row per way of asking; with `question+answer` the answer is embedded along with it, with
    `question|question+answer` each way of asking gets both rows; `answer_sentence_rows` adds a row per
    sentence of the answer (its position is the entry's first question); `keyword_rows` adds, for an entry with
    «palabras clave», a row of them joined by commas, shaped like its question rows (with the answer when they
    have it; its position is the entry's first question, so a hit shows a real question). Returns the texts, the
    entry of each row and the position of its question in the entry."""
    if fields not in ("question", "question+answer", "question|question+answer"):
        raise ValueError(f"unknown passage fields {fields!r}")
    texts: list[str] = []
    owners: list[int] = []
    positions: list[int] = []
    for entry_index, entry in enumerate(entries):
        for position, question in enumerate(entry.questions):
            if fields in ("question", "question|question+answer"):
                texts.append(question)
                owners.append(entry_index)
                positions.append(position)
            if fields in ("question+answer", "question|question+answer"):
                texts.append(f"{question}\n{entry.answer}")
                owners.append(entry_index)
                positions.append(position)
        if answer_sentence_rows:
            for sentence in answer_sentences(entry.answer):
                texts.append(sentence)
                owners.append(entry_index)
                positions.append(0)
        if keyword_rows and entry.keywords:
            keywords = ", ".join(entry.keywords)
            if fields in ("question", "question|question+answer"):
                texts.append(keywords)
                owners.append(entry_index)
                positions.append(0)
            if fields in ("question+answer", "question|question+answer"):
                texts.append(f"{keywords}\n{entry.answer}")
                owners.append(entry_index)
                positions.append(0)
    return texts, owners, positions


def settings_row_texts(entries: Sequence[Entry], settings: RetrievalSettings) -> tuple[list[str], list[int], list[int]]:
    """`row_texts` as `settings` asks for them."""
    return row_texts(
        entries, settings.passage_fields, settings.answer_sentence_rows, settings.keywords in ("row", "both")
    )


def with_keywords(documents: Sequence[str], entries: Sequence[Entry], owners: Sequence[int]) -> list[str]:
    """Each row's lexical document followed by its entry's «palabras clave» (the `lexical` keywords mode)."""
    return [
        f"{document}\n{', '.join(entries[owner].keywords)}" if entries[owner].keywords else document
        for document, owner in zip(documents, owners, strict=True)
    ]


def lexical_documents(texts: Sequence[str]) -> list[str]:
    """The lexical channel's document of each row when it reads questions only: the row's text up to the answer
    (an answer-sentence row keeps its sentence)."""
    return [text.split("\n", 1)[0] for text in texts]


def background_sample(row_count: int, limit: int) -> IntArray:
    """All rows of a small matrix; an evenly spread, deterministic sample of a large one."""
    if row_count <= limit:
        return np.arange(row_count, dtype=np.int64)
    return np.unique(np.linspace(0, row_count - 1, num=limit).round().astype(np.int64))


# A message that is word for word one of the matrix's questions (a customer who copied it, a quick reply or an ice
# breaker whose title is the question) is answered by its entry, whatever the calibration says of the wording.
EXACT_MATCH_SCORE = 0.99


def exact_match_score(is_exact: bool, score: float) -> float:
    return max(score, EXACT_MATCH_SCORE) if is_exact else score


class KnowledgeBase:
    """Entries plus the index over their rows; `search` and `decide` are what the bot calls."""

    def __init__(
        self,
        *,
        entries: Sequence[Entry],
        embedder: Embedder,
        index: VectorIndex,
        row_entries: IntArray,
        background: IntArray,
        settings: RetrievalSettings,
        lexical: LexicalIndex | None = None,
        anchors: FloatMatrix | None = None,
        matrix_sha256: str = "",
        source_sha256: str = "",
        query_adapter: QueryAdapter | None = None,
        synonyms: SynonymRewriter | None = None,
    ) -> None:
        """`query_adapter`: the adapter to use instead of the one `settings` names (a benchmark's held-out one).
        `synonyms`: what the lexicon `settings` names does for these entries, as stored with a version; worked out
        from the lexicon when None."""
        if index.size != len(row_entries):
            raise ArtifactError(f"the index has {index.size} rows but {len(row_entries)} row owners")
        if index.dimension != embedder.dimension:
            raise ArtifactError(f"the index has dimension {index.dimension}, the embedder {embedder.dimension}")
        self._entries = tuple(entries)
        self._embedder = embedder
        self._index = index
        self._row_entries = np.asarray(row_entries, dtype=np.int64)
        self._background = np.asarray(background, dtype=np.int64)
        self._background_vectors = index.vectors(self._background.tolist())
        self._parts: tuple[EmbedderPart, ...] = embedder_parts(embedder)
        if query_adapter is None and settings.query_adapter:
            query_adapter = load_query_adapter(settings.query_adapter)
        # An adapter with no matrix for this embedder's models changes nothing: the version says it uses none.
        self._adapter = query_adapter if query_adapter is not None and query_adapter.applies_to(self._parts) else None
        settings = settings.with_query_adapter(self._adapter.name if self._adapter is not None else "")
        self._settings = settings
        self._lexical = lexical
        self._anchors = (
            np.zeros((0, embedder.dimension), dtype=np.float32) if anchors is None else np.asarray(anchors, np.float32)
        )
        self._calibration: Calibration = settings.calibration_for(embedder.name)
        self._matrix_sha256 = matrix_sha256
        self._source_sha256 = source_sha256
        _, owners, positions = settings_row_texts(self._entries, settings)
        if owners != self._row_entries.tolist():
            raise ArtifactError("the rows of the index do not match the entries and settings")
        self._row_question_position = positions
        self._rows_by_entry: list[list[int]] = [[] for _ in self._entries]
        for row, owner in enumerate(owners):
            self._rows_by_entry[owner].append(row)
        # The lexical score's spread is estimated on fewer rows than the models' (its cost is per row).
        self._lexical_background = self._background[background_sample(len(self._background), LEXICAL_BACKGROUND_ROWS)]
        # A message that is one of the matrix's own questions (case, accents, punctuation aside) reaches its entry.
        # A question only one entry holds (two entries with the same question are the validation report's
        # duplicates: neither is "the" answer).
        holders: dict[str, set[int]] = {}
        for entry_index, entry in enumerate(self._entries):
            for question in entry.questions:
                holders.setdefault(canonical_key(question), set()).add(entry_index)
        self._question_owner: dict[str, int] = {key: min(found) for key, found in holders.items() if len(found) == 1}
        self._vocabulary = Vocabulary.of(self._matrix_texts()) if settings.spelling_correction else None
        if not settings.synonyms:
            self._synonyms = None
        elif synonyms is not None:
            if synonyms.name != settings.synonyms:
                raise ArtifactError(f"the stored equivalent words are lexicon {synonyms.name!r}, the settings name "
                                    f"{settings.synonyms!r}")
            self._synonyms = synonyms
        else:
            self._synonyms = rewriter_for(settings.synonyms, self._matrix_texts())
        self._row_hubness: FloatMatrix | None = None
        self._anchor_hubness: FloatMatrix | None = None
        if settings.hubness_weight > 0:
            self._row_hubness = self._hubness(self._index.vectors(list(range(self._index.size))), self._row_entries)
            self._anchor_hubness = self._hubness(self._anchors, None)

    def _matrix_texts(self) -> list[str]:
        """Every text of the matrix a word can come from: questions, answers and (when read) keywords."""
        keywords = self._settings.keywords != "off"
        return [
            text
            for entry in self._entries
            for text in (*entry.questions, entry.answer, *(entry.keywords if keywords else ()))
        ]

    # --- building and files -----------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        matrix: Matrix,
        embedder: Embedder,
        settings: RetrievalSettings = DEFAULT_SETTINGS,
        *,
        in_memory_index: bool = False,
        query_adapter: QueryAdapter | None = None,
    ) -> KnowledgeBase:
        """Embed every enabled entry's rows and index them. `in_memory_index` uses the numpy fake; `query_adapter`
        replaces the one `settings` names (see `__init__`)."""
        entries = matrix.enabled_entries
        if not entries:
            raise KnowledgeMatrixError("la matriz no tiene entradas activas")
        texts, owners, _ = settings_row_texts(entries, settings)
        vectors = embedder.embed(texts, role="passage")
        index: VectorIndex
        if in_memory_index:
            index = NumpyIndex(vectors)
        else:
            index = FaissIndex.build(vectors, exact_max_rows=settings.exact_max_rows)
        lexical = None
        if settings.lexical_weight > 0:
            documents = texts if settings.lexical_text == "row" else lexical_documents(texts)
            if settings.keywords in ("lexical", "both"):
                documents = with_keywords(documents, entries, owners)
            lexical = LexicalIndex.build(documents, stemmer=settings.lexical_stemmer)
        anchors = None
        if settings.off_topic_anchors:
            anchor_vectors = embedder.embed(ANCHORS, role="passage")
            anchors = anchor_vectors[anchors_to_keep(anchor_vectors, vectors)]
        return cls(
            entries=entries,
            embedder=embedder,
            index=index,
            row_entries=np.asarray(owners, dtype=np.int64),
            background=background_sample(len(texts), settings.background_rows),
            settings=settings,
            lexical=lexical,
            anchors=anchors,
            matrix_sha256=matrix.sha256,
            source_sha256=matrix.source_sha256,
            query_adapter=query_adapter,
        )

    def manifest(self, now: datetime) -> Manifest:
        return Manifest(
            format_version=FORMAT_VERSION,
            matrix_sha256=self._matrix_sha256,
            source_sha256=self._source_sha256,
            model_name=self._embedder.name,
            dimension=self._embedder.dimension,
            created_at=utc_timestamp(now),
            entry_count=len(self._entries),
            row_count=self._index.size,
            index_kind=self._index.kind,
            # The calibration as resolved for this embedder, so the version answers the same after an upgrade that
            # changes `CALIBRATIONS` (its thresholds are in the manifest too).
            settings=self._settings.with_changes(calibration=self._calibration).to_dict(),
        )

    def save(self, directory: Path, *, now: datetime) -> Manifest:
        """Write the artifact directory atomically (see `artifact.py`) and return its manifest."""
        manifest = self.manifest(now)
        entries_json = json.dumps([e.to_dict() for e in self._entries], ensure_ascii=False, indent=1)
        files = {
            ENTRIES_FILE: lambda path: path.write_text(entries_json + "\n", encoding="utf-8"),
            ROWS_FILE: lambda path: np.save(path, self._row_entries),
            BACKGROUND_FILE: lambda path: np.save(path, self._background),
            ANCHORS_FILE: lambda path: np.save(path, self._anchors),
            (VECTORS_FILE if self._index.kind == "numpy" else FAISS_FILE): self._index.save,
        }
        if self._lexical is not None:
            files[LEXICAL_FILE] = self._lexical.save
        if self._synonyms is not None:
            synonyms_json = json.dumps(self._synonyms.to_dict(), ensure_ascii=False)
            files[SYNONYMS_FILE] = lambda path: path.write_text(synonyms_json + "\n", encoding="utf-8")
        write_artifact(directory, manifest, files)
        return manifest

    @classmethod
    def load(cls, directory: Path, embedder: Embedder | None = None) -> KnowledgeBase:
        """Open an artifact; without `embedder`, the one its manifest names is created.

        Raises `RebuildRequiredError` when the artifact was built for another model, dimension
        or format version, and `ArtifactError` when files are missing or unreadable.
        """
        manifest = read_manifest(directory)
        if embedder is None:
            check_compatible(manifest, manifest.model_name, manifest.dimension)
            embedder = create_embedder(manifest.model_name)
        check_compatible(manifest, embedder.name, embedder.dimension)
        try:
            settings = RetrievalSettings.from_dict(manifest.settings)
            entries = [Entry.from_dict(item) for item in json.loads((directory / ENTRIES_FILE).read_text("utf-8"))]
            row_entries = np.load(directory / ROWS_FILE)
            background = np.load(directory / BACKGROUND_FILE)
            index: VectorIndex
            if manifest.index_kind == "numpy":
                index = NumpyIndex.load(directory / VECTORS_FILE)
            elif manifest.index_kind in ("flat", "hnsw"):
                index = FaissIndex.load(directory / FAISS_FILE, manifest.index_kind)  # type: ignore[arg-type]
            else:
                raise ArtifactError(f"unknown index kind {manifest.index_kind!r}")
            lexical = LexicalIndex.load(directory / LEXICAL_FILE) if settings.lexical_weight > 0 else None
            anchors = np.load(directory / ANCHORS_FILE)
            synonyms = (
                SynonymRewriter.from_dict(json.loads((directory / SYNONYMS_FILE).read_text("utf-8")))
                if settings.synonyms
                else None
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"artifact {directory} is incomplete or corrupt: {exc}") from exc
        if len(entries) != manifest.entry_count:
            raise ArtifactError(f"manifest says {manifest.entry_count} entries, {ENTRIES_FILE} has {len(entries)}")
        return cls(
            entries=entries,
            embedder=embedder,
            index=index,
            row_entries=row_entries,
            background=background,
            settings=settings,
            lexical=lexical,
            anchors=anchors,
            matrix_sha256=manifest.matrix_sha256,
            source_sha256=manifest.source_sha256,
            synonyms=synonyms,
        )

    # --- answering --------------------------------------------------------------------------------

    @property
    def entries(self) -> tuple[Entry, ...]:
        return self._entries

    @property
    def settings(self) -> RetrievalSettings:
        return self._settings

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    @property
    def off_topic_anchor_count(self) -> int:
        """Anchors kept for this matrix (those close to its own content were dropped)."""
        return len(self._anchors)

    @property
    def index_kind(self) -> str:
        return self._index.kind

    @property
    def matrix_sha256(self) -> str:
        return self._matrix_sha256

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The `k` best entries for a message, best first, each with its calibrated score. With a query adapter the
        message is ranked twice: unadapted (what the calibration's agreement terms read), then adapted (the hits)."""
        (prepared,) = self._prepared([query])
        vector = self._embedder.embed([prepared], role="query")[0]
        if self._adapter is None:
            return self._hits(prepared, vector, k)
        plain = unadapted_ranking(self._hits(prepared, vector, UNADAPTED_DEPTH))
        return self._hits(prepared, self._adapter.adapt(vector, self._parts)[0], k, plain)

    def search_many(self, queries: Sequence[str], k: int = 5) -> list[list[Hit]]:
        """`search` for several messages (evaluation, the confusable-entries check, benchmarks): one embedding
        call, then `SEARCH_CHUNK` messages at a time with the index search and the lexical channel batched
        (`_hits_many`): each gets the hits `search` gives it alone, an order of magnitude faster."""
        if not queries:
            return []
        prepared = self._prepared(queries)
        vectors = np.asarray(self._embedder.embed(prepared, role="query"), dtype=np.float32)
        hits: list[list[Hit]] = []
        for start in range(0, len(prepared), SEARCH_CHUNK):
            chunk, chunk_vectors = prepared[start : start + SEARCH_CHUNK], vectors[start : start + SEARCH_CHUNK]
            if self._adapter is None:
                hits.extend(self._hits_many(chunk, chunk_vectors, k))
                continue
            plain = [unadapted_ranking(found) for found in self._hits_many(chunk, chunk_vectors, UNADAPTED_DEPTH)]
            hits.extend(self._hits_many(chunk, self._adapter.adapt(chunk_vectors, self._parts), k, plain))
        return hits

    def equivalent_words(self, query: str) -> list[Replacement]:
        """The message's words this matrix reads as its own equivalents (`synonyms.py`; none without a lexicon), as
        `search` sees the message (chat shorthand expanded)."""
        if self._synonyms is None:
            return []
        return self._synonyms.replacements(self._expanded(query))

    def _expanded(self, query: str) -> str:
        """The message in composed Unicode (`ñ` one character, as the matrix's words are read), shorthand expanded."""
        query = unicodedata.normalize("NFC", query)
        return expand_shorthand(query) if self._settings.expand_shorthand else query

    def _prepared(self, queries: Sequence[str]) -> list[str]:
        prepared = [self._expanded(q) for q in queries]
        if self._synonyms is not None:
            prepared = [self._synonyms.rewrite(q) for q in prepared]
        if self._vocabulary is not None:
            prepared = [self._vocabulary.correct(q) for q in prepared]
        return prepared

    def decide(self, hits: Sequence[Hit]) -> Verdict:
        return decide(hits, self._settings.thresholds)

    def answer(self, query: str) -> Verdict:
        """`decide(search(query))`: answer, ambiguous (up to 3 candidates) or no_match."""
        return self.decide(self.search(query, k=max(3, self._settings.thresholds.max_candidates)))

    # --- scoring ----------------------------------------------------------------------------------

    def _part_cosines(self, vectors: FloatMatrix, query: FloatMatrix) -> FloatMatrix:
        """(rows × models) cosines: each block's inner product divided by its share."""
        columns = [
            (vectors[:, part.start : part.stop] @ query[part.start : part.stop]) / np.float32(part.weight)
            for part in self._parts
        ]
        return np.stack(columns, axis=1).astype(np.float32) if columns else np.zeros((len(vectors), 0), np.float32)

    def _hubness(self, vectors: FloatMatrix, owners: IntArray | None, neighbours: int = 10) -> FloatMatrix:
        """(rows × models) mean cosine of each vector to its `neighbours` nearest background rows of other
        entries: how much of a hub it is (CSLS), in each model's own cosine scale."""
        out = np.zeros((len(vectors), len(self._parts)), dtype=np.float32)
        if len(vectors) == 0 or len(self._background) == 0:
            return out
        background_owners = self._row_entries[self._background]
        for start in range(0, len(vectors), 4096):
            block = vectors[start : start + 4096]
            for column, part in enumerate(self._parts):
                sims = (block[:, part.start : part.stop] @ self._background_vectors[:, part.start : part.stop].T) / (
                    np.float32(part.weight)
                )
                if owners is not None:
                    sims[owners[start : start + len(block), None] == background_owners[None, :]] = -1.0
                count = min(neighbours, sims.shape[1])
                top = -np.sort(-sims, axis=1)[:, :count]
                out[start : start + len(block), column] = top.mean(axis=1)
        return out

    def _candidate_rows(self, query: str, found: IntArray) -> tuple[list[int], int | None]:
        """Every row of every entry among the index's `found` rows and of the entry whose question the message is
        word for word (its index, or None)."""
        exact = self._question_owner.get(canonical_key(query))
        candidate_entries = {int(self._row_entries[row]) for row in found.tolist() if row >= 0}
        if exact is not None:
            candidate_entries.add(exact)
        # Every row of every candidate entry, scored exactly.
        return [row for owner in sorted(candidate_entries) for row in self._rows_by_entry[owner]], exact

    def _wanted_rows(self, k: int) -> int:
        return min(max(self._settings.candidate_rows, 4 * (k + 1)), self._index.size)

    def _query_stats(self, vector: FloatMatrix) -> PartStats:
        """Each model's mean and spread of the message's cosines to the background rows: a matrix-vector product
        per model (0.2 ms) even in a batch, where one matrix product would change the last bits of every score."""
        background_cosines = self._part_cosines(self._background_vectors, vector)
        if self._row_hubness is not None:
            hub_weight = np.float32(self._settings.hubness_weight)
            background_cosines = background_cosines - hub_weight * self._row_hubness[self._background]
        return background_stats(background_cosines)

    def _scaled_query(self, vector: FloatMatrix, stats: PartStats) -> FloatMatrix:
        """FAISS ranks rows by the fused score itself (up to a constant), so its candidates are the best."""
        return standardized_query(vector, [(p.start, p.stop, p.weight) for p in self._parts], stats)[0]

    def _hits(self, query: str, vector: FloatMatrix, k: int, plain: UnadaptedRanking | None = None) -> list[Hit]:
        """One message scored on its own (the bot's path); `plain`: its unadapted ranking when `vector` is adapted."""
        stats = self._query_stats(vector)
        _, found = self._index.search(self._scaled_query(vector, stats).reshape(1, -1), self._wanted_rows(k))
        rows, exact = self._candidate_rows(query, found[0])
        lexical_rows = lexical_background = None
        if self._lexical is not None:
            # The lexical channel re-ranks the models' candidates: scored on them and on the background only,
            # so its cost does not grow with the matrix.
            lexical_rows = self._lexical.scores_of(query, np.asarray(rows, dtype=np.int64))
            if self._settings.lexical_fusion == "zscore":
                lexical_background = self._lexical.scores_of(query, self._lexical_background)
        return self._ranked_hits(k, vector, stats, rows, exact, lexical_rows, lexical_background,
                                 words=message_words(query), unknown=self._unknown_share(query), plain=plain)

    def _unknown_share(self, query: str) -> float:
        """The share of the message's words no row of the matrix has (0 without a lexical index)."""
        return 0.0 if self._lexical is None else self._lexical.unknown_share(query)

    def _hits_many(
        self, queries: Sequence[str], vectors: FloatMatrix, k: int, plain: Sequence[UnadaptedRanking] | None = None
    ) -> list[list[Hit]]:
        """`_hits` for each message, with the index search and the lexical channel batched (one index call,
        the lexical scores of every message's rows in a few array operations): the same numbers as `_hits`."""
        stats = [self._query_stats(vector) for vector in vectors]
        scaled = np.stack([self._scaled_query(vector, s) for vector, s in zip(vectors, stats, strict=True)])
        _, found = self._index.search(scaled, self._wanted_rows(k))
        candidates = [self._candidate_rows(query, rows) for query, rows in zip(queries, found, strict=True)]
        lexical: list[tuple[FloatMatrix | None, FloatMatrix | None]] = [(None, None)] * len(queries)
        if self._lexical is not None:
            zscore = self._settings.lexical_fusion == "zscore"
            docs = [
                np.concatenate([np.asarray(rows, dtype=np.int64), self._lexical_background])
                if zscore
                else np.asarray(rows, dtype=np.int64)
                for rows, _ in candidates
            ]
            scores = self._lexical.scores_of_many(queries, docs)
            lexical = [
                (score[: len(rows)], score[len(rows) :] if zscore else None)
                for score, (rows, _) in zip(scores, candidates, strict=True)
            ]
        return [
            self._ranked_hits(k, vectors[number], stats[number], rows, exact, *lexical[number],
                              words=message_words(queries[number]), unknown=self._unknown_share(queries[number]),
                              plain=None if plain is None else plain[number])
            for number, (rows, exact) in enumerate(candidates)
        ]

    def _ranked_hits(
        self,
        k: int,
        vector: FloatMatrix,
        stats: PartStats,
        rows: list[int],
        exact: int | None,
        lexical_rows: FloatMatrix | None,
        lexical_background: FloatMatrix | None,
        words: int = 0,
        unknown: float = 0.0,
        plain: UnadaptedRanking | None = None,
    ) -> list[Hit]:
        """The best `k` entries of a message of `words` words (a share `unknown` of them never used by the matrix)
        from its candidate rows, given the lexical channel's scores of those rows and of the lexical background
        (None without the channel; no background with rank fusion), and its unadapted ranking when the vector is
        adapted (`plain`)."""
        weights = [part.weight for part in self._parts]
        hub_weight = np.float32(self._settings.hubness_weight)
        cosines = self._part_cosines(self._index.vectors(rows), vector)
        adjusted = cosines if self._row_hubness is None else cosines - hub_weight * self._row_hubness[rows]
        fused = fused_scores(adjusted, stats, weights)
        row_owners = [int(self._row_entries[r]) for r in rows]
        # The hits are the first `k` entries; the best two (margins, rivals) are among the first three once the
        # exact entry is promoted, so only those and the exact entry are built (rank fusion ranks them all).
        shortlist = max(k, 2) + 1
        if lexical_rows is None:
            ranked = rank_entries(rows, row_owners, fused, cosines, limit=shortlist, keep=exact)
        elif lexical_background is not None:
            lexical_std = max(float(lexical_background.std()), 1e-4)
            lexical_z = (lexical_rows - float(lexical_background.mean())) / lexical_std
            weight = self._settings.lexical_weight
            fused = ((fused * sum(weights) + weight * lexical_z) / (sum(weights) + weight)).astype(np.float32)
            ranked = rank_entries(rows, row_owners, fused, cosines, limit=shortlist, keep=exact)
        else:
            ranked = reciprocal_rank_fusion(
                rank_entries(rows, row_owners, fused, cosines),
                best_per_entry(row_owners, lexical_rows),
                self._settings.lexical_weight,
                self._settings.rrf_k,
            )
        if exact is not None:
            ranked = promote(ranked, exact)
        if self._settings.model_agreement:
            # at least the best two: the best one's rival is the second (`rivals`), whatever `k`
            shown = max(k, 2)
            ranked = [*model_agreement(ranked[:shown], row_owners, adjusted, stats), *ranked[shown:]]
        leads = margins(ranked)
        opponents = rivals(ranked, words, unknown)
        off_topic = None
        if len(self._anchors):
            anchor_cosines = self._part_cosines(self._anchors, vector)
            if self._anchor_hubness is not None:
                anchor_cosines = anchor_cosines - hub_weight * self._anchor_hubness
            off_topic = float(fused_scores(anchor_cosines, stats, weights).max())
        agreements: list[Unadapted | None] = [
            None if plain is None else unadapted_terms(self._entries[item.entry_index].id, *plain)
            for item in ranked[:k]
        ]
        return [
            Hit(
                entry=self._entries[item.entry_index],
                score=exact_match_score(
                    item.entry_index == exact,
                    self._calibration.confidence(
                        item.fused,
                        lead,
                        item.cosines,
                        None if off_topic is None else item.fused - off_topic,
                        item.agreement if self._settings.model_agreement else None,
                        rival,
                        unadapted,
                    ),
                ),
                fused=item.fused,
                margin=lead,
                matched_question=self._entries[item.entry_index].questions[self._row_question_position[item.row]],
                cosines=item.cosines,
                off_topic_gap=None if off_topic is None else item.fused - off_topic,
                agreement=item.agreement if self._settings.model_agreement else None,
                rival=rival,
                unadapted=unadapted,
            )
            for item, lead, rival, unadapted in zip(ranked[:k], leads[:k], opponents[:k], agreements, strict=True)
        ]


UnadaptedRanking = tuple[list[str], float]  # the entries' ids, best first, and the best entry's fused score


def unadapted_ranking(hits: Sequence[Hit]) -> UnadaptedRanking:
    return [hit.entry_id for hit in hits], hits[0].fused if hits else 0.0
