"""Closed by default: the checks a process makes on its settings before it serves anything (standard library only).

The action server is reachable from other hosts only with a shared token; Rasa sends that token from
`endpoints.yml` (`${ACTION_SERVER_TOKEN}`), so outside `bot run` (which makes a random one per start) both Rasa
and the action server need the same `ACTION_SERVER_TOKEN`, and each says so clearly when it is missing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import TextIO

from core.hosts import is_loopback_host
from core.settings import Settings, SettingsError, load_settings, secret_problems


class ExposureError(SettingsError):
    """A server would be reachable without a token, or a process lacks the token it must send or require."""


MISSING_TOKEN = (
    "ACTION_SERVER_TOKEN is not set. Rasa sends it to the action server (endpoints.yml) and the action server "
    "refuses calls without it, so both processes need the same value: a long random string, e.g. from "
    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`. (`bot run` makes one per start.)"
)


def check_action_server_exposure(host: str, token: str) -> None:
    if not is_loopback_host(host) and not token.strip():
        raise ExposureError(
            f"ACTION_SERVER_HOST={host} makes the action server reachable from other hosts; set ACTION_SERVER_TOKEN "
            "(a long random string, the same for Rasa and the action server) or keep the default 127.0.0.1"
        )


def check_action_server_token(token: str) -> None:
    if not token.strip():
        raise ExposureError(MISSING_TOKEN)


def check_webhook_exposure(host: str, app_secret: str, verify_token: str) -> None:
    """The webhook process (connectors/webhook_server.py) is what Meta reaches, so it may listen beyond loopback, but
    only with secrets of our own: the demo ones are published, and anyone could sign deliveries with them."""
    if is_loopback_host(host):
        return
    problems = [problem for problem in secret_problems({"MESSENGER_APP_SECRET": app_secret,
                                                        "MESSENGER_VERIFY_TOKEN": verify_token})
                if "same value" not in problem]
    if problems:
        raise ExposureError(
            f"WEBHOOK_HOST={host} makes the webhook reachable from other hosts, but " + "; ".join(problems)
            + ": set your Meta app's secret and your own verify token, or keep the default 127.0.0.1"
        )


def _webhook_exposure(settings: Settings) -> None:
    check_webhook_exposure(settings.webhook_host, settings.app_secret, settings.verify_token)


def _exposure(settings: Settings) -> None:
    check_action_server_exposure(settings.action_server_host, settings.action_server_token)


def _token(settings: Settings) -> None:
    check_action_server_token(settings.action_server_token)


# What each process checks before it starts. `bot run` makes a token when none is set, which only a loopback
# action server can use; a process started on its own (a process manager) must be given the token.
STARTUP_CHECKS: Mapping[str, tuple[Callable[[Settings], None], ...]] = {
    "bot run": (_exposure, _webhook_exposure),
    "action server": (_exposure, _token),
    "rasa": (_token,),
    "webhook": (_webhook_exposure,),
}


def startup_settings(
    process: str, err: TextIO | None = None, overrides: Mapping[str, str] | None = None
) -> Settings | None:
    """The settings (with a command's `overrides`), checked for `process`; on a problem it prints `error: …` and
    returns None (exit code 2)."""
    try:
        settings = load_settings(overrides=overrides)
        for check in STARTUP_CHECKS[process]:
            check(settings)
    except SettingsError as exc:
        print(f"error: {exc}", file=err or sys.stderr)
        return None
    return settings
