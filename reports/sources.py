"""Small readers the app hands to `Reports`: the live matrix's entries (id and first question, from the published
version's `entries.json`, without loading its index or model) and comment rules' names."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from comments.rules_store import RuleNotFound, RulesStore
from knowledge_matrix.errors import KnowledgeMatrixError
from knowledge_matrix.knowledge_base import ENTRIES_FILE
from knowledge_matrix.publish import INDEX_DIR, read_pointer, version_dir

log = logging.getLogger(__name__)


def live_entries(data_dir: Path) -> Callable[[], Sequence[tuple[str, str]]]:
    """A reader of the live version's entries as (id, first question), read again only when the live version
    changes; [] while nothing is published. A version that cannot be read is logged and reads as None (the report
    says the entries are not available) rather than failing the whole report."""
    lock = threading.Lock()
    cached: dict[str, list[tuple[str, str]]] = {}

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
            path = version_dir(data_dir, pointer.version) / INDEX_DIR / ENTRIES_FILE
            try:
                items = json.loads(path.read_text(encoding="utf-8"))
                entries = [(str(item["id"]), str((item.get("questions") or [""])[0])) for item in items]
            except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
                log.warning("reports: the entries of the live version cannot be read: %s", exc,
                            extra={"version": pointer.version})
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
