"""The `LLMClient` seam: chat completions on an OpenAI-compatible server, and calls within one deadline.

One wall-clock budget covers every attempt and every wait; a retry happens only when it still
fits. HTTP failures become our errors in one place (`classify_status`). The in-memory fake with
the same contract is in `fake.py`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from knowledge_matrix.errors import (
    LLMCallError,
    LLMPermanentError,
    LLMRateLimitedError,
    LLMSettingsError,
    LLMTimeoutError,
    LLMTransientError,
)
from knowledge_matrix.llm.settings import LLMSettings
from knowledge_matrix.text import drop_unfinished_sentence

if TYPE_CHECKING:
    import openai

Message = dict[str, str]  # {"role": ..., "content": ...}

# Retry: a short backoff for 5xx and connection errors; `retry-after` for 429 when it fits.
RETRY_BASE_DELAY_SECONDS = 0.25
RETRY_MAX_DELAY_SECONDS = 1.0
MIN_ATTEMPT_SECONDS = 0.5  # no new attempt with less time than this left


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms` (OpenAI) or `retry-after` (seconds); None if absent or odd."""
    lowered = {name.lower(): value for name, value in headers.items()}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            value = float(lowered[name]) * scale
        except (KeyError, ValueError):
            continue
        if value >= 0 and math.isfinite(value):
            return value
    return None


def classify_status(
    status: int, *, error_code: str | None = None, headers: Mapping[str, str] | None = None
) -> LLMCallError:
    """The one place an HTTP failure of the model server becomes one of our errors."""
    if status == 429:
        if error_code == "insufficient_quota":  # OpenAI: billing, not load; waiting does not help
            return LLMPermanentError("no quota left (HTTP 429 insufficient_quota)", status=status)
        return LLMRateLimitedError("rate limited (HTTP 429)", retry_after_seconds=parse_retry_after(headers or {}))
    if status >= 500 or status in (408, 409):
        return LLMTransientError(f"server error (HTTP {status})", status=status)
    return LLMPermanentError(f"request refused (HTTP {status})", status=status)


class LLMClient(Protocol):
    async def complete(self, messages: Sequence[Message], *, timeout: float) -> str:
        """The assistant's text for `messages`, within `timeout` seconds, or an `LLMCallError`."""
        ...


class OpenAIChatClient:
    """Chat completions on any OpenAI-compatible server through the `openai` package.

    The package's own retries are off (`max_retries=0`): `answer_with_fallback` retries only
    while the overall deadline allows, which the package cannot know about.
    """

    def __init__(self, settings: LLMSettings, *, http_client: Any = None) -> None:
        if not settings.enabled:
            raise LLMSettingsError("LLM_API_KEY (or OPENAI_API_KEY) is not set")
        import openai

        self._settings = settings
        self._openai: openai.AsyncOpenAI = openai.AsyncOpenAI(
            base_url=settings.base_url,
            api_key=settings.api_key,
            timeout=settings.timeout_seconds,
            max_retries=0,
            http_client=http_client,
        )

    async def complete(self, messages: Sequence[Message], *, timeout: float) -> str:
        import openai

        try:
            completion = await self._openai.chat.completions.create(
                model=self._settings.model,
                messages=cast(Any, [dict(message) for message in messages]),
                max_tokens=self._settings.max_tokens,
                temperature=0,
                timeout=timeout,
            )
        except openai.APITimeoutError as exc:
            raise LLMTimeoutError(f"no answer within {timeout:.1f} s") from exc
        except openai.APIConnectionError as exc:
            raise LLMTransientError("connection failed") from exc
        except openai.APIStatusError as exc:
            body = exc.body if isinstance(exc.body, Mapping) else {}
            error = body.get("error") if isinstance(body.get("error"), Mapping) else body
            code = error.get("code") if isinstance(error, Mapping) else None
            raise classify_status(
                exc.status_code, error_code=code if isinstance(code, str) else None, headers=exc.response.headers
            ) from exc
        except (openai.OpenAIError, ValueError) as exc:
            raise LLMPermanentError(f"unusable response ({type(exc).__name__})") from exc
        try:
            choice = completion.choices[0]
            content = choice.message.content or ""
            finish_reason = choice.finish_reason
        except (AttributeError, IndexError, TypeError) as exc:
            raise LLMPermanentError("malformed response (no choices)") from exc
        if not isinstance(content, str):
            raise LLMPermanentError("malformed response (content is not text)")
        if finish_reason == "length":
            return drop_unfinished_sentence(content)  # cut off by max_tokens
        return content

    async def aclose(self) -> None:
        await self._openai.close()

    async def __aenter__(self) -> OpenAIChatClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def make_llm_client(settings: LLMSettings) -> OpenAIChatClient | None:
    """The real client, or None when no key is configured (then nothing is ever sent)."""
    return OpenAIChatClient(settings) if settings.enabled else None


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay_seconds: float = 0.0
    reason: str = ""


def decide_retry(
    error: LLMCallError, *, retries_done: int, max_retries: int, remaining_seconds: float
) -> RetryDecision:
    """Retry a transient failure only if attempts remain and the wait plus one attempt fit the deadline."""
    if not isinstance(error, LLMTransientError):
        return RetryDecision(False, reason="permanent")
    if retries_done >= max_retries:
        return RetryDecision(False, reason="retries_exhausted")
    if isinstance(error, LLMRateLimitedError) and error.retry_after_seconds is not None:
        delay = error.retry_after_seconds
    else:
        delay = min(RETRY_BASE_DELAY_SECONDS * 2**retries_done, RETRY_MAX_DELAY_SECONDS)
    if remaining_seconds - delay < MIN_ATTEMPT_SECONDS:
        return RetryDecision(False, reason="no_time_left")
    return RetryDecision(True, delay_seconds=delay, reason="transient")


@dataclass(frozen=True)
class CompletionOutcome:
    """What the bounded call loop produced: a text or the last error, and how many attempts it took."""

    text: str | None
    error: LLMCallError | None
    attempts: int


async def complete_within_deadline(
    client: LLMClient,
    messages: Sequence[Message],
    *,
    budget_seconds: float,
    max_retries: int,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> CompletionOutcome:
    """Call `client` until it answers, a failure is final, or `budget_seconds` (all in) are spent.

    Each attempt gets the time left, enforced here too (`wait_for`), so a client that ignores
    its `timeout` cannot hold the user past the deadline.
    """
    deadline = clock() + budget_seconds
    attempts = 0
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            return CompletionOutcome(None, LLMTimeoutError("deadline passed before an attempt"), attempts)
        attempts += 1
        try:
            text = await asyncio.wait_for(client.complete(messages, timeout=remaining), timeout=remaining)
            return CompletionOutcome(text, None, attempts)
        except asyncio.TimeoutError:
            error: LLMCallError = LLMTimeoutError(f"no answer within {remaining:.1f} s")
        except LLMCallError as exc:
            error = exc
        decision = decide_retry(
            error, retries_done=attempts - 1, max_retries=max_retries, remaining_seconds=deadline - clock()
        )
        if not decision.retry:
            return CompletionOutcome(None, error, attempts)
        await sleep(decision.delay_seconds)
