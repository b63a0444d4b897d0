"""Closed by default: a server reachable from another host needs a shared token (standard library only)."""

from __future__ import annotations

import ipaddress

from bot.settings import SettingsError


class ExposureError(SettingsError):
    """A server would be reachable from other hosts without a token."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost may resolve anywhere
        return False


def check_action_server_exposure(host: str, token: str) -> None:
    if not is_loopback(host) and not token.strip():
        raise ExposureError(
            f"ACTION_SERVER_HOST={host} makes the action server reachable from other hosts; set ACTION_SERVER_TOKEN "
            "(a long random string, the same for Rasa and the action server) or keep the default 127.0.0.1"
        )
