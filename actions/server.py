"""The action server, started as `python -m actions.server --port 5055` (what `bot/stack.py` runs).

rasa-sdk's own `python -m rasa_sdk` listens on every interface (`SANIC_HOST`, default 0.0.0.0), answers any
origin (CORS `*`) and has no authentication: whoever reaches the port can run `action_handoff` for any PSID or
the paid GPT fallback. This launcher serves the same app (`rasa_sdk.endpoint.create_app`) on
`ACTION_SERVER_HOST` (default 127.0.0.1), without CORS, and with `ACTION_SERVER_TOKEN` required as
`Authorization: Bearer <token>` on every route but `/health` (Rasa sends it from `endpoints.yml`). A host other
than loopback without a token refuses to start.
"""

from __future__ import annotations

import argparse
import hmac
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping

from bot.exposure import check_action_server_exposure
from bot.settings import Settings, SettingsError, load_settings

logger = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/health"})  # says "ok" and nothing else; the process supervisor polls it


def is_authorized(path: str, headers: Mapping[str, str], token: str) -> bool:
    """Pure: the token must come as `Authorization: Bearer …` (never a query string, which access logs keep)."""
    if not token or path in OPEN_PATHS:
        return True
    scheme, _, given = (headers.get("authorization") or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def token_guard(token: str) -> Callable[..., Awaitable[object]]:
    from sanic import response

    async def guard(request):  # type: ignore[no-untyped-def]
        if not is_authorized(request.path, request.headers, token):
            logger.warning("action server call refused: missing or wrong token", extra={"path": request.path})
            return response.json({"error": "missing or wrong action server token"}, status=401)
        return None

    return guard


def create_app(settings: Settings, actions_package: str = "actions"):  # type: ignore[no-untyped-def]
    from rasa_sdk.endpoint import create_app as create_sdk_app
    from rasa_sdk.executor import ActionExecutor

    executor = ActionExecutor()
    executor.register_package(actions_package)
    app = create_sdk_app(executor, cors_origins=None)  # no CORS: a web page in a browser must not call it
    app.register_middleware(token_guard(settings.action_server_token), "request")
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m actions.server")
    parser.add_argument("--port", type=int, default=5055)
    parser.add_argument("--actions", default="actions")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_settings()
        check_action_server_exposure(settings.action_server_host, settings.action_server_token)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app = create_app(settings, args.actions)
    logger.info(
        "action server on http://%s:%d (token %s)", settings.action_server_host, args.port,
        "required" if settings.action_server_token else "not set: loopback only",
    )
    app.run(host=settings.action_server_host, port=args.port, workers=1, access_log=False, legacy=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
