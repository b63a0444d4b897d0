"""What happens to a message while the action server is down: pure decisions and the customer's wording.

Standard library only, so the app's tests (Python 3.11, no Rasa) can import it; `connectors/action_server.py`
does the I/O inside Rasa.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_POLL_SECONDS = 5.0

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
