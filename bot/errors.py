"""How a request that ends in an error is answered: one handler, reading one table from reason code to HTTP status.

Every package raises its own errors (`core.errors.DomainError`: a reason code and words, never a status). The app
registers `answer` once for all of them (`install`); it looks the reason code up in `core.errors.HTTP_STATUS`
(the console's login page reads it too) and answers
`{"error": {"reason_code", "message", ...details}}` — Spanish words (`message_es`) under the console, the
error's own elsewhere — or, on a console page, the error page (the login for a 401). Request validation errors get
the same shape under the console and FastAPI's own elsewhere.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from console.routes import CONSOLE_PREFIXES, ConsoleError, error_page
from core.errors import HTTP_STATUS, DomainError, status_of

log = logging.getLogger(__name__)

def _in_console(request: Request) -> bool:
    return request.url.path.startswith(CONSOLE_PREFIXES)


def answer(request: Request, error: DomainError) -> Response:
    """The one answer to a domain error (also used by the request guard, which runs before any handler)."""
    status = status_of(error)
    if error.reason_code not in HTTP_STATUS or status >= 500:
        log.error("request failed", extra={"reason_code": error.reason_code, "error": type(error).__name__,
                                           "path": request.url.path})
    message = error.message_es if _in_console(request) and error.message_es else str(error)
    if _in_console(request) and not request.url.path.startswith("/api/"):
        return error_page(request, status, error.reason_code, message)
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, int(error.retry_after.total_seconds())))
    body = {"error": {"reason_code": error.reason_code, "message": message, **error.details()}}
    return JSONResponse(body, status_code=status, headers=headers)


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return answer(request, exc)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """The console answers in its own shape and in Spanish; the rest of the app keeps FastAPI's."""
    assert isinstance(exc, RequestValidationError)
    if not _in_console(request):
        # FastAPI's shape, with what the client sent made JSON-safe: Python's parser accepts NaN, Infinity and
        # 1e999, which the answer could not carry back (a 500 instead of the 422).
        return JSONResponse({"detail": _json_safe(jsonable_encoder(exc.errors()))}, status_code=422)
    fields = sorted({".".join(str(p) for p in error.get("loc", ())[1:]) or "cuerpo" for error in exc.errors()})
    return answer(request, ConsoleError("invalid_request",
                                        "La solicitud no es válida (revise: " + ", ".join(fields) + ")."))


def _json_safe(value: Any) -> Any:
    """`value` with every non-finite number as its text ("nan", "inf")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def install(app: FastAPI) -> None:
    """Register the handlers, once, on the app."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
