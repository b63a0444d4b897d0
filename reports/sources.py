"""Small readers the app hands to `Reports`: the live matrix's entries (id and first question, read by
`knowledge_matrix.publish.version_entries` without loading the index or model) and comment rules' names."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from comments.rules_store import RuleNotFound, RulesStore
from knowledge_matrix.errors import KnowledgeMatrixError
from knowledge_matrix.publish import read_pointer, version_entries

log = logging.getLogger(__name__)


def live_entries(data_dir: Path) -> Callable[[], Sequence[tuple[str, str]]]:
    """A reader of the live version's entries as (id, first question) (`knowledge_matrix.publish.version_entries`),
    read again only when the live version changes; [] while nothing is published. A pointer or a version that cannot
    be read is logged and reads as [] rather than failing the whole report."""
    lock = threading.Lock()
    cached: dict[str, Sequence[tuple[str, str]]] = {}

    def read() -> Sequence[tuple[str, str]]:
        try:
            pointer = read_pointer(data_dir)
        except (KnowledgeMatrixError, OSError, ValueError) as exc:
            log.warning("reports: the live knowledge pointer cannot be read: %s", exc)
            return []
        if pointer is None:
            return []
        with lock:
            if pointer.version in cached:
                return cached[pointer.version]
            try:
                entries = version_entries(data_dir, pointer.version).entries
            except KnowledgeMatrixError as exc:
                log.warning(
                    "reports: the entries of the live version cannot be read: %s",
                    exc,
                    extra={"version": pointer.version},
                )
                return []
            cached.clear()
            cached[pointer.version] = entries
            return entries

    return read


def rule_names(rules: RulesStore) -> Callable[[Sequence[str]], Mapping[str, str]]:
    """Names of comment rules by id (a rule deleted since is left out: the report says «Regla N»)."""

    def names(ids: Sequence[str]) -> Mapping[str, str]:
        found: dict[str, str] = {}
        for rule_id in sorted(set(ids)):
            if not rule_id.isascii() or not rule_id.isdigit() or len(rule_id) > 18:
                continue
            try:
                found[rule_id] = rules.get_rule(int(rule_id)).name
            except RuleNotFound:
                continue
        return found

    return names
