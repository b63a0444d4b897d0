"""The page's name for the `{pagina}` variable of agents' replies and snippets (console/snippets.py).

Asked of the Graph API once (`GET /{page_id}?fields=name` with the page's token) and kept in the app: a day when
Meta answered, ten minutes when it did not (the variable is then empty and the snippet's fallback is used,
`{pagina|nuestra tienda}`), so a reply never waits on Meta more than once in a while, and never longer than
`LOOKUP_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from fastapi import Request

from meta.errors import GraphError

log = logging.getLogger(__name__)

KEEP_NAME = timedelta(days=1)
KEEP_FAILURE = timedelta(minutes=10)
LOOKUP_SECONDS = 3.0
MAX_NAME = 200


@dataclass(frozen=True)
class _Known:
    name: str | None
    until: datetime


def _known(request: Request) -> dict[str, _Known]:
    cache: dict[str, _Known] | None = getattr(request.app.state, "page_names", None)
    if cache is None:
        cache = request.app.state.page_names = {}
    return cache


async def page_name_of(request: Request, page_id: str, now: datetime | None = None) -> str | None:
    """The page's name, or None when Meta has not told it (no Graph client, no token, Meta down or refusing)."""
    now = now or datetime.now(timezone.utc)
    cache = _known(request)
    known = cache.get(page_id)
    if known is not None and known.until > now:
        return known.name
    graph = getattr(request.app.state, "graph", None)
    name: str | None = None
    if graph is not None:
        try:
            answer = await asyncio.wait_for(graph.get_page(page_id, ("name",)), LOOKUP_SECONDS)
            value = answer.get("name") if isinstance(answer, dict) else None
            name = value.strip()[:MAX_NAME] or None if isinstance(value, str) else None
        except (GraphError, asyncio.TimeoutError, OSError) as exc:
            log.warning("the page's name could not be read; {pagina} stays empty for now",
                        extra={"page_id": page_id, "error": type(exc).__name__})
    cache[page_id] = _Known(name, now + (KEEP_NAME if name else KEEP_FAILURE))
    return name
