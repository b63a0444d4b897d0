"""What happens to a message while the action server is down: pure decisions, the outage clock and the wording.

Standard library only, so the app's tests (Python 3.11, no Rasa) can import it; `connectors/action_server.py`
gives `ActionServerWatch` its health check (HTTP) inside Rasa.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

MAX_POLL_SECONDS = 5.0
UP_CACHE_SECONDS = 1.0  # a passed health check is trusted this long (a death since shows up in the turn itself)

# What the customer reads when their message could not be answered: honest, no promise of a time.
OUTAGE_TEXT = (
    "Estamos con un problema técnico y por ahora no puedo responder tu mensaje 😕. "
    "Ya lo estamos revisando; por favor escríbenos de nuevo en unos minutos."
)


@dataclass(frozen=True)
class OutageDecision:
    """While the action server is down: wait this long and look again, or give up (wait is None)."""

    wait_seconds: float | None

    @property
    def gives_up(self) -> bool:
        return self.wait_seconds is None


def decide_during_outage(down_for: float, bound: float, polls: int) -> OutageDecision:
    """Pure: poll at 0.5 s, 1 s, 2 s … (at most 5 s) until the outage has lasted `bound` seconds."""
    if down_for >= bound:
        return OutageDecision(None)
    return OutageDecision(min(0.5 * 2 ** min(polls, 30), MAX_POLL_SECONDS, bound - down_for))


class ActionServerWatch:
    """One clock per outage, shared by every message: a message arriving late in a long outage does not wait the
    whole bound again, it gets the honest reply at once. It also remembers which conversations were told about
    the running outage (told once per outage); that memory is dropped when the server is back."""

    def __init__(
        self,
        health: str,
        bound_seconds: float,
        check: Callable[[str], Awaitable[bool]],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.health = health
        self.bound_seconds = bound_seconds
        self._check = check
        self._clock = clock
        self._sleep = sleep
        self.down_since: float | None = None
        self._up_at: float | None = None  # the last health check that passed
        self._told: set[str] = set()  # conversations told about the running outage

    async def wait_until_up(self) -> bool:
        """True when the action server answers its health check; False once the outage outlasted the bound."""
        polls = 0
        while True:
            if self._up_at is not None and self._clock() - self._up_at < UP_CACHE_SECONDS:
                return True
            if await self._check(self.health):
                self._up_at = self._clock()
                if self.down_since is not None:
                    logger.warning("the action server is back after %.0f s", self._clock() - self.down_since)
                self.down_since = None
                self._told.clear()  # a later outage tells everyone again
                return True
            now = self._clock()
            self._up_at = None
            if self.down_since is None:
                self.down_since = now
                logger.error("the action server does not answer at %s; messages wait for it", self.health)
            decision = decide_during_outage(now - self.down_since, self.bound_seconds, polls)
            if decision.wait_seconds is None:
                return False
            polls += 1
            await self._sleep(decision.wait_seconds)

    def seems_up(self) -> bool:
        """Whether the last health check passed recently enough that `wait_until_up` would answer True at once."""
        return self._up_at is not None and self._clock() - self._up_at < UP_CACHE_SECONDS

    def saw_failure(self) -> None:
        """A call failed in a turn: the next message checks the health again instead of trusting the cache."""
        self._up_at = None

    def down_for(self) -> float:
        return 0.0 if self.down_since is None else self._clock() - self.down_since

    def was_told(self, conversation: str) -> bool:
        """Whether this conversation was already told about the running outage (never outside an outage: calls
        failing while the health check passes tell every failed message)."""
        return self.down_since is not None and conversation in self._told

    def note_told(self, conversation: str) -> None:
        if self.down_since is not None:
            self._told.add(conversation)

    @property
    def told_count(self) -> int:
        return len(self._told)
