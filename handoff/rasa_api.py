"""Rasa's HTTP API as the app uses it: append events to a conversation, read its tracker.

`RasaTrackers` is the seam; `HttpRasaTrackers` talks to the Rasa server (`--enable-api`, started by
`bot/rasa_launcher.py` with `--jwt-secret` = `RASA_API_TOKEN`): each call carries `Authorization: Bearer <JWT>`
(HS256, role admin, valid for minutes), never the secret itself nor a query-string token;
`InMemoryRasaTrackers` is the fake with the same semantics for tests (pause/resume/restart/session starts).
Rasa's sender id is the user's PSID.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from handoff.model import RasaUnavailable

JWT_LIFETIME_SECONDS = 300
JWT_USERNAME = "bot-app"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def rasa_jwt(secret: str, now: float, lifetime_seconds: float = JWT_LIFETIME_SECONDS) -> str:
    """An HS256 JWT Rasa's `requires_auth` accepts (sanic-jwt): role `admin` may use every conversation."""
    header = {"alg": "HS256", "typ": "JWT"}
    payload = {"user": {"username": JWT_USERNAME, "role": "admin"}, "iat": int(now), "exp": int(now + lifetime_seconds)}
    signing_input = ".".join(_b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, payload))
    signature = hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


def rasa_auth_headers(secret: str, now: float | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {rasa_jwt(secret, time.time() if now is None else now)}"}


class RasaTrackers(Protocol):
    async def append_events(self, sender_id: str, events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Append events (nothing is sent to the user: no side effects) and return the tracker state."""
        ...

    async def tracker(self, sender_id: str) -> dict[str, Any]:
        """The tracker with every event (`include_events=ALL`)."""
        ...

    async def close(self) -> None: ...


class HttpRasaTrackers:
    def __init__(self, base_url: str, token: str, timeout_seconds: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._http = httpx.AsyncClient(timeout=timeout_seconds)

    def _url(self, sender_id: str, tail: str) -> str:
        return f"{self.base_url}/conversations/{quote(sender_id, safe='')}/{tail}"

    async def _call(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._http.request(method, url, headers=rasa_auth_headers(self._token), **kwargs)
        except httpx.HTTPError as exc:
            raise RasaUnavailable(f"Rasa's HTTP API did not answer ({type(exc).__name__})") from exc
        if response.status_code != 200:
            # Rasa's error bodies name the problem; the token is in a header, never in them.
            raise RasaUnavailable(f"Rasa's HTTP API answered {response.status_code}: {response.text[:300]}")
        body = response.json()
        return body if isinstance(body, dict) else {}

    async def append_events(self, sender_id: str, events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return await self._call(
            "POST", self._url(sender_id, "tracker/events"), json=[dict(e) for e in events],
            params={"include_events": "NONE"},
        )

    async def tracker(self, sender_id: str) -> dict[str, Any]:
        return await self._call("GET", self._url(sender_id, "tracker"), params={"include_events": "ALL"})

    async def close(self) -> None:
        await self._http.aclose()


class InMemoryRasaTrackers:
    """The fake: trackers as event lists; `paused` follows pause/resume/restart/session_started as in Rasa."""

    def __init__(self) -> None:
        self.trackers: dict[str, list[dict[str, Any]]] = {}
        self.fail_with: RasaUnavailable | None = None  # set to make every call fail

    def _state(self, sender_id: str) -> dict[str, Any]:
        paused = False
        for event in self.trackers.get(sender_id, []):
            kind = event.get("event")
            if kind == "pause":
                paused = True
            elif kind in ("resume", "restart", "session_started"):
                paused = False
        return {"sender_id": sender_id, "paused": paused, "events": copy.deepcopy(self.trackers.get(sender_id, []))}

    async def append_events(self, sender_id: str, events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if self.fail_with is not None:
            raise self.fail_with
        self.trackers.setdefault(sender_id, []).extend(copy.deepcopy(dict(e)) for e in events)
        return {**self._state(sender_id), "events": None}

    async def tracker(self, sender_id: str) -> dict[str, Any]:
        if self.fail_with is not None:
            raise self.fail_with
        return self._state(sender_id)

    def is_paused(self, sender_id: str) -> bool:
        return bool(self._state(sender_id)["paused"])

    async def close(self) -> None:
        return None
