"""The action server as the Messenger channel sees it: is it up, and did this turn's action calls reach it?

Rasa 3.6 swallows a failed action call (`MessageProcessor._run_action` logs "Encountered an exception while running
action" and goes on with no events), so a dead action server would end a turn with no reply and nothing to retry.
`ObservedEndpoint` is Rasa's action endpoint that, before re-raising, notes each failed call in the running turn
(`turn_failures()`); `ActionServerWatch` polls the action server's `/health` and decides, with one clock for the
whole outage, how long a message may still wait for it (`ACTION_OUTAGE_SECONDS`). Runs inside Rasa (Python 3.10).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from rasa.utils.endpoints import ClientResponseError, EndpointConfig

from connectors.outage import OUTAGE_TEXT, decide_during_outage

__all__ = ["OUTAGE_TEXT", "ActionServerWatch", "ObservedEndpoint", "end_turn", "observe", "start_turn"]

logger = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 2.0
UP_CACHE_SECONDS = 1.0

_TURN_FAILURES: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("action_failures", default=None)


def start_turn() -> contextvars.Token:
    """Called in the task that runs a turn: every failed action call of the turn lands in its list."""
    return _TURN_FAILURES.set([])


def end_turn(token: contextvars.Token) -> list[str]:
    failures = list(_TURN_FAILURES.get() or [])
    _TURN_FAILURES.reset(token)
    return failures


def _note(failure: str) -> None:
    failures = _TURN_FAILURES.get()
    if failures is not None:
        failures.append(failure)


class ObservedEndpoint(EndpointConfig):
    """Rasa's action endpoint, noting failed calls (not 400: that is a form's normal rejection) in the turn."""

    @classmethod
    def wrap(cls, endpoint: EndpointConfig) -> ObservedEndpoint:
        return cls(
            url=endpoint.url, params=endpoint.params, headers=endpoint.headers, basic_auth=endpoint.basic_auth,
            token=endpoint.token, token_name=endpoint.token_name, cafile=getattr(endpoint, "cafile", None),
            **endpoint.kwargs,
        )

    async def request(self, *args: Any, **kwargs: Any) -> Any:
        body = kwargs.get("json")
        action = body.get("next_action") if isinstance(body, dict) else None
        try:
            return await super().request(*args, **kwargs)
        except ClientResponseError as exc:
            if exc.status != 400:
                _note(f"{action}: the action server answered {exc.status}")
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            _note(f"{action}: the action server did not answer ({type(exc).__name__})")
            raise


def observe(processor: Any) -> None:
    """Make a processor's action calls observed (idempotent; a new model brings a new processor)."""
    endpoint = getattr(processor, "action_endpoint", None)
    if isinstance(endpoint, EndpointConfig) and not isinstance(endpoint, ObservedEndpoint):
        processor.action_endpoint = ObservedEndpoint.wrap(endpoint)


def health_url(webhook_url: str) -> str:
    base = webhook_url.rstrip("/")
    return (base[: -len("/webhook")] if base.endswith("/webhook") else base) + "/health"


async def probe(url: str, timeout: float = HEALTH_TIMEOUT_SECONDS) -> bool:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(url) as response,
        ):
            return response.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
        return False


class ActionServerWatch:
    """One clock per outage, shared by every message: a message arriving late in a long outage does not wait the
    whole bound again, it gets the honest reply at once."""

    def __init__(
        self,
        health: str,
        bound_seconds: float,
        check: Callable[[str], Awaitable[bool]] = probe,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.health = health
        self.bound_seconds = bound_seconds
        self._check = check
        self._clock = clock
        self.down_since: float | None = None
        self._up_at: float | None = None  # the last health check that passed

    async def wait_until_up(self) -> bool:
        """True when the action server answers its health check; False once the outage outlasted the bound."""
        polls = 0
        while True:
            if self._up_at is not None and self._clock() - self._up_at < UP_CACHE_SECONDS:
                return True  # a death since then shows up in the turn itself (`turn_failures`)
            if await self._check(self.health):
                self._up_at = self._clock()
                if self.down_since is not None:
                    logger.warning("the action server is back after %.0f s", self._clock() - self.down_since)
                self.down_since = None
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
            await asyncio.sleep(decision.wait_seconds)

    def saw_failure(self) -> None:
        """A call failed in a turn: the next message checks the health again instead of trusting the cache."""
        self._up_at = None

    def down_for(self) -> float:
        return 0.0 if self.down_since is None else self._clock() - self.down_since
