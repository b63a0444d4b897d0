"""Every action test journals its answers into memory, never into the answer journal's file under data/."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pytest

from actions import knowledge
from answers.model import Handling


class MemoryJournal:
    """`AnswerJournal` kept in a list: what the action would have written."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def record_question(
        self, *, page_id: str, psid: str, question: str, handling: Handling, at: datetime,
        entry_id: str | None = None, score: float | None = None, candidates: Sequence[str] = (),
        reason: str | None = None, matrix_version: str | None = None,
    ) -> int:
        self.records.append({"page_id": page_id, "psid": psid, "question": question, "handling": handling,
                             "at": at, "entry_id": entry_id, "score": score, "candidates": tuple(candidates),
                             "reason": reason, "matrix_version": matrix_version})
        return len(self.records)


@pytest.fixture(autouse=True)
def default_journal(monkeypatch: pytest.MonkeyPatch) -> MemoryJournal:
    journal = MemoryJournal()
    monkeypatch.setattr(knowledge, "_default_journal", journal)
    return journal
