"""The action server as the Messenger channel sees it: is it up, and did this turn's action calls reach it?

Rasa 3.6 swallows a failed action call (`MessageProcessor._run_action` logs "Encountered an exception while running
action" and goes on with no events), so a dead action server would end a turn with no reply and nothing to retry.
`ObservedEndpoint` is Rasa's action endpoint that, before re-raising, notes each failed call in the running turn
(`start_turn`/`end_turn`), and bounds each call by `ACTION_TIMEOUT_SECONDS` (Rasa's own is 300 s: a hung action
server would hold a processing slot for 15 min over three attempts); a call that times out is a failed call.
`ActionServerWatch` (connectors/outage.py) polls the action server's `/health` and decides, with one clock for
the whole outage, how long a message may still wait for it (`ACTION_OUTAGE_SECONDS`). Runs inside Rasa (3.10).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any

import aiohttp
from rasa.utils.endpoints import ClientResponseError, EndpointConfig

from connectors.outage import OUTAGE_TEXT, ActionServerWatch

__all__ = ["OUTAGE_TEXT", "ActionServerWatch", "ObservedEndpoint", "end_turn", "observe", "start_turn",
           "watch_action_server"]

logger = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 2.0

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
    """Rasa's action endpoint, noting failed calls (not 400: that is a form's normal rejection) in the turn, each
    call bounded by `timeout_seconds`."""

    timeout_seconds: float = 300.0

    @classmethod
    def wrap(cls, endpoint: EndpointConfig, timeout_seconds: float) -> ObservedEndpoint:
        wrapped = cls(
            url=endpoint.url, params=endpoint.params, headers=endpoint.headers, basic_auth=endpoint.basic_auth,
            token=endpoint.token, token_name=endpoint.token_name, cafile=getattr(endpoint, "cafile", None),
            **endpoint.kwargs,
        )
        wrapped.timeout_seconds = timeout_seconds
        return wrapped

    async def request(self, *args: Any, **kwargs: Any) -> Any:
        body = kwargs.get("json")
        action = body.get("next_action") if isinstance(body, dict) else None
        kwargs["timeout"] = aiohttp.ClientTimeout(total=self.timeout_seconds)  # RemoteAction passes 300 s
        try:
            return await super().request(*args, **kwargs)
        except ClientResponseError as exc:
            if exc.status != 400:
                _note(f"{action}: the action server answered {exc.status}")
            raise
        except asyncio.TimeoutError:
            _note(f"{action}: the action server did not answer within {self.timeout_seconds:g} s")
            raise
        except (aiohttp.ClientError, OSError) as exc:
            _note(f"{action}: the action server did not answer ({type(exc).__name__})")
            raise


def observe(processor: Any, timeout_seconds: float) -> None:
    """Make a processor's action calls observed and bounded (idempotent; a new model brings a new processor)."""
    endpoint = getattr(processor, "action_endpoint", None)
    if isinstance(endpoint, EndpointConfig) and not isinstance(endpoint, ObservedEndpoint):
        processor.action_endpoint = ObservedEndpoint.wrap(endpoint, timeout_seconds)


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


def watch_action_server(webhook_url: str, bound_seconds: float) -> ActionServerWatch:
    return ActionServerWatch(health_url(webhook_url), bound_seconds, probe)
