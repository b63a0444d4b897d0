"""The messages every benchmark sends: short Spanish texts the model answers without the knowledge matrix, spread
over users so each user's messages are in order and different users' run side by side."""

from __future__ import annotations

TEXTS = ["hola", "gracias", "buenas tardes", "chao", "ok de una", "eres un bot?", "muchas gracias", "no"]


def plan(events: int, users: int, prefix: str) -> list[tuple[str, str]]:
    """(user, text) for `events` messages from `users` users named `<prefix>-<n>`."""
    return [(f"{prefix}-{i % users}", TEXTS[(i // users) % len(TEXTS)]) for i in range(events)]
