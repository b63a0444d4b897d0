"""The action server, started as `python -m actions.server --port 5055` (what `bot/stack.py` runs).

rasa-sdk's own `python -m rasa_sdk` listens on every interface (`SANIC_HOST`, default 0.0.0.0), answers any
origin (CORS `*`) and has no authentication: whoever reaches the port can run `action_handoff` for any PSID or
the paid GPT fallback. This launcher serves the same app (`rasa_sdk.endpoint.create_app`) on
`ACTION_SERVER_HOST` (default 127.0.0.1), without CORS, and with `ACTION_SERVER_TOKEN` required as
`Authorization: Bearer <token>` on every route but `/health` (Rasa sends it from `endpoints.yml`); it refuses to
start without a token (`bot run` makes one per start; a process manager must set the same one for Rasa).

Bodies: Sanic's own cap (`REQUEST_MAX_SIZE`, 413 before the body is buffered) instead of its 100 MB default, and
the token is checked once the route is known, before the body is read (Sanic's `http.routing.after` signal; a
request middleware would run after the body is buffered). Sanic then drains, unbuffered, at most the cap of a
refused request's body to keep the connection usable.
"""

from __future__ import annotations

import argparse
import hmac
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping

from core.exposure import startup_settings
from core.settings import Settings

logger = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/health"})  # says "ok" and nothing else; the process supervisor polls it
# Rasa posts the whole tracker (every event of the conversation, a few KB per turn) with every call: 8 MiB leaves
# room for conversations of thousands of turns while refusing (413) before buffering what only an attacker sends.
MAX_REQUEST_BYTES = 8 * 1024 * 1024


def is_authorized(path: str, headers: Mapping[str, str], token: str) -> bool:
    """Pure: the token must come as `Authorization: Bearer …` (never a query string, which access logs keep);
    without a token configured nothing but `/health` is open."""
    if path in OPEN_PATHS:
        return True
    if not token:
        return False
    scheme, _, given = (headers.get("authorization") or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def token_guard(token: str) -> Callable[..., Awaitable[None]]:
    """A handler for Sanic's `http.routing.after` signal: it runs before the body is read."""
    from sanic.exceptions import Unauthorized

    async def guard(request, **_context):  # type: ignore[no-untyped-def]
        if not is_authorized(request.path, request.headers, token):
            logger.warning("action server call refused: missing or wrong token", extra={"path": request.path})
            raise Unauthorized("missing or wrong action server token")

    return guard


def create_app(settings: Settings, actions_package: str = "actions"):  # type: ignore[no-untyped-def]
    from rasa_sdk.endpoint import create_app as create_sdk_app
    from rasa_sdk.executor import ActionExecutor
    from sanic.exceptions import SanicException

    executor = ActionExecutor()
    executor.register_package(actions_package)
    app = create_sdk_app(executor, cors_origins=None)  # no CORS: a web page in a browser must not call it
    app.config.REQUEST_MAX_SIZE = MAX_REQUEST_BYTES
    app.signal("http.routing.after")(token_guard(settings.action_server_token))
    app.exception(SanicException)(http_error)
    return app


async def http_error(_request, exception):  # type: ignore[no-untyped-def]
    """Sanic's own refusals (401, 404, 405, 413 …) keep their status: rasa-sdk maps every exception to 500."""
    from sanic import response

    return response.json({"error": str(exception)}, status=getattr(exception, "status_code", 500))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m actions.server")
    parser.add_argument("--port", type=int, default=5055)
    parser.add_argument("--actions", default="actions")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = startup_settings("action server")
    if settings is None:
        return 2
    app = create_app(settings, args.actions)
    logger.info("action server on http://%s:%d (token required)", settings.action_server_host, args.port)
    app.run(host=settings.action_server_host, port=args.port, workers=1, access_log=False, legacy=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
