"""`FakeLLMClient`: the `LLMClient` contract in memory, scripted, for tests and local runs without a key."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from knowledge_matrix.errors import LLMCallError, LLMTimeoutError
from knowledge_matrix.llm.client import Message
from knowledge_matrix.llm.prompt import NO_ANSWER


@dataclass(frozen=True)
class ScriptedReply:
    """One scripted outcome of `FakeLLMClient.complete`: wait `delay_seconds`, then reply or raise."""

    text: str = ""
    error: LLMCallError | None = None
    delay_seconds: float = 0.0


@dataclass(frozen=True)
class FakeCall:
    messages: tuple[Message, ...]
    timeout: float


class FakeLLMClient:
    """In memory, same contract as `OpenAIChatClient`: a delay longer than `timeout` is an
    `LLMTimeoutError` raised after `timeout` seconds; scripted errors are raised as given.
    Once the script runs out, every call gets `default` (a text or a function of the messages)."""

    def __init__(
        self,
        script: Iterable[str | LLMCallError | ScriptedReply] = (),
        *,
        default: str | Callable[[Sequence[Message]], str] = NO_ANSWER,
    ) -> None:
        self._script: deque[ScriptedReply] = deque(self._as_reply(item) for item in script)
        self._default = default
        self.calls: list[FakeCall] = []

    @staticmethod
    def _as_reply(item: str | LLMCallError | ScriptedReply) -> ScriptedReply:
        if isinstance(item, ScriptedReply):
            return item
        if isinstance(item, LLMCallError):
            return ScriptedReply(error=item)
        return ScriptedReply(text=item)

    def push(self, *items: str | LLMCallError | ScriptedReply) -> None:
        self._script.extend(self._as_reply(item) for item in items)

    @property
    def pending(self) -> int:
        return len(self._script)

    async def complete(self, messages: Sequence[Message], *, timeout: float) -> str:
        self.calls.append(FakeCall(tuple(dict(message) for message in messages), timeout))
        if self._script:
            reply = self._script.popleft()
        elif callable(self._default):
            reply = ScriptedReply(text=self._default(messages))
        else:
            reply = ScriptedReply(text=self._default)
        if reply.delay_seconds > timeout:
            await asyncio.sleep(max(timeout, 0.0))
            raise LLMTimeoutError(f"no answer within {timeout:.1f} s")
        if reply.delay_seconds > 0:
            await asyncio.sleep(reply.delay_seconds)
        if reply.error is not None:
            raise reply.error
        return reply.text
