"""`answer_with_fallback`: the thin orchestration the knowledge action calls, around the pure parts.

Never raises a call error and returns within the settings' budget: no call when there is nothing
safe to ask, one bounded prompt, calls within one deadline, the reply through the guard.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from knowledge_matrix.errors import LLMCallError, LLMPermanentError, LLMTimeoutError
from knowledge_matrix.llm.client import LLMClient, complete_within_deadline
from knowledge_matrix.llm.grounding import GroundedEntry, bound_entries
from knowledge_matrix.llm.guard import FallbackAnswer, interpret_reply
from knowledge_matrix.llm.injection import looks_like_injection
from knowledge_matrix.llm.prompt import Turn, build_prompt
from knowledge_matrix.llm.settings import LLMSettings

logger = logging.getLogger(__package__)  # "knowledge_matrix.llm": the name the fallback has always logged under


def failure_reason(error: LLMCallError | None) -> str:
    """`llm_rejected` (wrong key, unknown model, no quota: fix the configuration), `llm_timeout`, or
    `llm_unavailable` (rate limits, 5xx, connection errors that outlasted the retries)."""
    if isinstance(error, LLMPermanentError):
        return "llm_rejected"
    if isinstance(error, LLMTimeoutError):
        return "llm_timeout"
    return "llm_unavailable"


async def answer_with_fallback(
    question: str,
    entries: Sequence[GroundedEntry],
    turns: Sequence[Turn],
    client: LLMClient | None,
    settings: LLMSettings,
    *,
    language_hint: str | None = "es",
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> FallbackAnswer:
    """A short grounded answer, or `no_answer` (offer a person). Never raises `LLMCallError`,
    and returns within `settings.timeout_seconds` plus scheduling noise."""
    started = clock()
    if not settings.enabled or client is None:
        return _finish(FallbackAnswer.no_answer("llm_disabled"), settings, started, clock, attempts=0)
    if not question.strip():
        return _finish(FallbackAnswer.no_answer("empty_question"), settings, started, clock, attempts=0)
    if not entries:
        return _finish(FallbackAnswer.no_answer("no_entries"), settings, started, clock, attempts=0)
    if looks_like_injection(question):
        return _finish(FallbackAnswer.no_answer("injection_suspected"), settings, started, clock, attempts=0)

    shown = bound_entries(entries)
    messages = build_prompt(question, shown, turns, language_hint)
    outcome = await complete_within_deadline(
        client,
        messages,
        budget_seconds=settings.timeout_seconds,
        max_retries=settings.max_retries,
        clock=clock,
        sleep=sleep,
    )
    if outcome.text is None:
        reason = failure_reason(outcome.error)
        logger.warning(
            "LLM call failed: %s",
            reason,
            extra={
                "llm_error": type(outcome.error).__name__,
                "llm_status": getattr(outcome.error, "status", None),
                "llm_attempts": outcome.attempts,
                "llm_model": settings.model,
            },
        )
        return _finish(FallbackAnswer.no_answer(reason), settings, started, clock, outcome.attempts)
    answer = interpret_reply(outcome.text, shown, question=question)
    return _finish(answer, settings, started, clock, outcome.attempts)


def _finish(
    answer: FallbackAnswer, settings: LLMSettings, started: float, clock: Callable[[], float], attempts: int
) -> FallbackAnswer:
    logger.info(
        "LLM fallback %s (%s)",
        answer.kind,
        answer.reason,
        extra={
            "llm_outcome": answer.kind,
            "llm_reason": answer.reason,
            "llm_attempts": attempts,
            "llm_elapsed_ms": round((clock() - started) * 1000),
            "llm_entry_ids": list(answer.used_entry_ids),
            "llm_model": settings.model,
        },
    )
    return answer
