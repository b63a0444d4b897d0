"""Starts Rasa (`rasa run …`) with the HTTP API's secret read from the environment, never from the command line.

`python -m bot.rasa_launcher --model … --port 5005 …` (in `.venv-rasa`) takes every argument of `rasa run` but
`--auth-token`/`--jwt-secret`; it adds `--jwt-secret $RASA_API_TOKEN` in-process, so the secret is not in
`/proc/<pid>/cmdline` nor `ps`. Rasa then accepts only `Authorization: Bearer <JWT signed with it>` (HS256, see
`handoff/rasa_api.py`): no token in query strings, so none in access logs. Standard library only (Python 3.10).
"""

from __future__ import annotations

import os
import sys

from bot.profile import prepare_tracker_schema, rasa_endpoints_env
from core.exposure import startup_settings
from core.settings import SettingsError

REFUSED_ARGUMENTS = ("--auth-token", "--jwt-secret", "--jwt-private-key", "-t")


def rasa_argv(arguments: list[str], secret: str) -> list[str]:
    """Pure: the argv `rasa` sees in-process."""
    given = [a for a in arguments if a.split("=", 1)[0] in REFUSED_ARGUMENTS]
    if given:
        raise SettingsError(f"{', '.join(given)}: the launcher sets Rasa's API secret from RASA_API_TOKEN itself")
    if not secret.strip():
        raise SettingsError("RASA_API_TOKEN is empty: Rasa's HTTP API would be open")
    return ["rasa", "run", *arguments, "--jwt-secret", secret, "--jwt-method", "HS256"]


def main(arguments: list[str] | None = None) -> int:
    settings = startup_settings("rasa")  # endpoints.yml sends ACTION_SERVER_TOKEN: say so if it is missing
    if settings is None:
        return 2
    # endpoints-scale.yml reads Redis, RabbitMQ and the tracker's URL in parts: the settings are the one source, so a
    # host's unit (deploy/) sets REDIS_URL, RABBITMQ_URL, BOT_DATABASE_URL … like every other process.
    os.environ.update(rasa_endpoints_env(settings))
    prepare_tracker_schema(settings)  # Rasa creates its table, not the schema its URL names
    try:
        sys.argv = rasa_argv(list(sys.argv[1:] if arguments is None else arguments), settings.rasa_token)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from rasa.__main__ import main as rasa_main

    rasa_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
