"""Applying a page's saved profile to Facebook with the Messenger Profile API, and reading what Facebook has.

"Aplicar en Facebook" makes the page's profile what the console shows: one `POST /me/messenger_profile` with the
fields that are set, then one `DELETE` of the managed fields that are not (at most two calls: Meta allows 10 per 10
minutes per page). Every attempt is recorded with Facebook's answers or its error; a refusal becomes a
`ProfileNotApplied` with a reason code and Spanish words, from the Graph client's error hierarchy (meta.errors).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from meta.errors import (
    GraphError,
    PolicyViolationError,
    RateLimitedError,
    TokenInvalidError,
    TransientGraphError,
    UnknownPageError,
)
from meta.messenger_profile import CALLS_PER_TEN_MINUTES, MANAGED_FIELDS
from page_profile.model import MessengerProfile, PageProfileError, parse_profile
from page_profile.store import PageProfileStore, StoredProfile


class ProfileGraph(Protocol):
    """What applying needs of the Graph client (`meta.graph.GraphClient`)."""

    async def set_messenger_profile(self, page_id: str, profile: Mapping[str, Any]) -> dict[str, Any]: ...

    async def get_messenger_profile(self, page_id: str, fields: Sequence[str]) -> dict[str, Any]: ...

    async def delete_messenger_profile_fields(self, page_id: str, fields: Sequence[str]) -> dict[str, Any]: ...


class NothingToApply(PageProfileError):
    reason_code = "nothing_to_apply"

    def __init__(self, page_id: str) -> None:
        super().__init__(f"no profile saved for page {page_id}")
        self.message_es = "Guarde el perfil de la página antes de aplicarlo en Facebook."


class ProfileNotApplied(PageProfileError):
    """Facebook refused the call or did not answer; `graph_error` is what the Graph client raised."""

    def __init__(self, reason_code: str, message_es: str, graph_error: GraphError | None = None,
                 retry_after: timedelta | None = None) -> None:
        super().__init__(message_es)
        self.reason_code = reason_code
        self.message_es = message_es
        self.graph_error = graph_error
        self.retry_after = retry_after

    def details(self) -> dict[str, Any]:
        if self.graph_error is None:
            return {}
        return {"graph_error": error_record(self.graph_error)}


def error_record(error: GraphError) -> dict[str, Any]:
    """What is kept of a Graph error (never a token: the client's errors carry none)."""
    return {"status": error.status, "code": error.code, "subcode": error.subcode, "message": error.message[:500],
            "fbtrace_id": error.fbtrace_id, "kind": type(error).__name__}


def not_applied(error: Exception, page_id: str) -> ProfileNotApplied:
    """The Graph client's error, for the person who pressed "Aplicar en Facebook"."""
    if isinstance(error, UnknownPageError):
        return ProfileNotApplied("unknown_page", f"No hay un token de acceso configurado para la página {page_id} "
                                                 "(PAGE_ACCESS_TOKENS).")
    if not isinstance(error, GraphError):
        raise TypeError(f"not a Graph error: {type(error).__name__}") from error
    if isinstance(error, RateLimitedError):
        wait = error.retry_after_seconds
        return ProfileNotApplied(
            "facebook_rate_limited",
            f"Facebook limita los cambios del perfil a {CALLS_PER_TEN_MINUTES} cada 10 minutos por página. Intente "
            f"de nuevo en {max(1, math.ceil((wait or 600) / 60))} minutos.",
            error, timedelta(seconds=wait) if wait else None)
    if isinstance(error, TokenInvalidError):
        return ProfileNotApplied("page_token_invalid", "Facebook no acepta el token de la página (venció o fue "
                                                       "revocado). Genere uno nuevo y vuelva a intentarlo.", error)
    if isinstance(error, PolicyViolationError):
        return ProfileNotApplied("facebook_refused", "Facebook no permite este cambio: la app necesita el permiso "
                                                     "pages_messaging y usted el rol de administrador de la página. "
                                                     f"Facebook dijo: «{error.message[:300]}»", error)
    if isinstance(error, TransientGraphError):
        return ProfileNotApplied("facebook_unavailable", "Facebook no respondió; intente de nuevo en un momento.",
                                 error)
    return ProfileNotApplied("facebook_refused", f"Facebook rechazó el perfil: «{error.message[:300]}»", error)


async def apply_profile(graph: ProfileGraph, store: PageProfileStore, page_id: str, by: str,
                        now: datetime) -> StoredProfile:
    """Make the page's profile on Facebook the saved one; record the attempt either way."""
    stored = await asyncio.to_thread(store.get, page_id)
    if stored is None:
        raise NothingToApply(page_id)
    profile = parse_profile(stored.profile)  # saved profiles were checked; a stored one that is not fails here
    calls: list[dict[str, Any]] = []
    try:
        await push(graph, page_id, profile, calls)
    except (GraphError, UnknownPageError) as exc:
        refusal = not_applied(exc, page_id)
        answer = {"calls": calls, "error": error_record(exc) if isinstance(exc, GraphError) else
                  {"kind": type(exc).__name__, "message": str(exc)}}
        await asyncio.to_thread(store.record_failure, page_id, answer, by, now)
        raise refusal from exc
    return await asyncio.to_thread(store.record_success, page_id, profile.to_dict(), {"calls": calls}, by, now)


async def push(graph: ProfileGraph, page_id: str, profile: MessengerProfile, calls: list[dict[str, Any]]) -> None:
    """The calls that make Facebook's profile this one; each answer is appended to `calls` as it comes."""
    body = profile.to_dict()
    if body:
        answer = await graph.set_messenger_profile(page_id, body)
        calls.append({"method": "POST", "fields": list(profile.fields_set), "answer": answer})
    unset = profile.fields_unset
    if unset:
        answer = await graph.delete_messenger_profile_fields(page_id, unset)
        calls.append({"method": "DELETE", "fields": list(unset), "answer": answer})


async def live_profile(graph: ProfileGraph, page_id: str) -> dict[str, Any]:
    """The managed fields as Facebook has them now (`{}`: none set)."""
    try:
        answer = await graph.get_messenger_profile(page_id, MANAGED_FIELDS)
    except (GraphError, UnknownPageError) as exc:
        raise not_applied(exc, page_id) from exc
    data = answer.get("data")
    first = data[0] if isinstance(data, list) and data and isinstance(data[0], Mapping) else {}
    return {name: first[name] for name in MANAGED_FIELDS if name in first}
