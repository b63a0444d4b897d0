"""Whether a host is this machine (standard library only).

The rule behind "plain http only to a loopback server" for `LLM_BASE_URL`; the app's settings use it too (the
Graph API in test mode, the action server's listening host), so it lives here, below both, with no other import.
"""

from __future__ import annotations

import ipaddress


def is_loopback_host(host: str) -> bool:
    """`localhost` or an address in 127.0.0.0/8 or ::1 — parsed, so `127.evil.com` or `127.0.0.1.nip.io` is not."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost may resolve anywhere
        return False


def client_host(listen_host: str) -> str:
    """Where local clients reach a server listening on `listen_host` (a wildcard is reached on loopback)."""
    return "127.0.0.1" if listen_host in ("0.0.0.0", "::", "") else listen_host
