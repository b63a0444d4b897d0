"""What to do after a Send API failure: a pure function of the error, the attempts and `now`."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from meta.errors import (
    GraphError,
    PolicyViolationError,
    RateLimitedError,
    RecipientUnavailableError,
    TokenInvalidError,
    TransientGraphError,
)
from outbox.model import Status

BASE_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 300.0


@dataclass(frozen=True)
class RetryDecision:
    status: Status  # PENDING (try again at next_attempt_at), BLOCKED, FAILED or DEAD
    reason_code: str
    reason: str
    next_attempt_at: datetime | None = None
    pause_page: bool = False


def backoff_seconds(attempt: int, jitter: float) -> float:
    """Exponential with jitter in [1, 1.5) × base·2^attempt, capped: never shrinks from one attempt to
    the next whatever the random draws, since base·2^(n+1) ≥ 1.5·base·2^n."""
    if not 0.0 <= jitter < 1.0:
        raise ValueError("jitter must be in [0, 1)")
    return min(MAX_DELAY_SECONDS, BASE_DELAY_SECONDS * 2**attempt * (1 + 0.5 * jitter))


def retry_decision(
    error: GraphError, attempts_done: int, max_attempts: int, now: datetime, rng: random.Random | None = None
) -> RetryDecision:
    """`attempts_done` counts the attempt that just failed."""
    code = f"graph_{error.code}" if error.code is not None else f"http_{error.status}"
    if isinstance(error, TokenInvalidError):
        # Not the message's fault: it waits (pending) until the page's token is fixed.
        return RetryDecision(
            Status.PENDING,
            "token_invalid",
            "El token de la página no es válido; la cola de esta página está en pausa hasta que se renueve.",
            now + timedelta(seconds=MAX_DELAY_SECONDS),
            pause_page=True,
        )
    if isinstance(error, PolicyViolationError):
        return RetryDecision(
            Status.BLOCKED,
            "outside_window",
            "Meta rechazó el envío: está fuera de la ventana de mensajería permitida (" + error.message + ").",
        )
    if isinstance(error, RecipientUnavailableError):
        return RetryDecision(Status.FAILED, "person_unavailable", "Esta persona no está disponible en Messenger.")
    if isinstance(error, TransientGraphError):
        if attempts_done >= max_attempts:
            return RetryDecision(
                Status.DEAD, code, f"Se agotaron los {max_attempts} intentos; último error: {error.message}"
            )
        delay = backoff_seconds(attempts_done - 1, (rng or random).random())
        if isinstance(error, RateLimitedError) and error.retry_after_seconds:
            delay = max(delay, float(error.retry_after_seconds))
        return RetryDecision(
            Status.PENDING, code, f"Error temporal, se reintenta: {error.message}", now + timedelta(seconds=delay)
        )
    return RetryDecision(Status.FAILED, code, f"Meta rechazó el mensaje: {error.message}")
