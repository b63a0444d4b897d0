"""The webhook against a real Rasa: the body cap of the webhook process and of Sanic, and window bookkeeping that
survives a crash (issue 8)."""

from __future__ import annotations

import socket
import sqlite3
import time
import uuid
from contextlib import closing

import pytest

from bot.stack import Stack
from sandbox import simulate
from tests.support.stack import PAGE_ID, Messenger

THIRTY_MB = 30 * 1024 * 1024


# Both servers that take Meta's deliveries: the webhook process (connectors/webhook_server.py, what Meta is given)
# and the Rasa channel's own route (single-process deployments).
SERVERS = pytest.mark.parametrize("server", ["webhook", "rasa"])


def port_of(stack: Stack, server: str) -> int:
    return stack.ports.webhook if server == "webhook" else stack.ports.rasa


@SERVERS
def test_a_30_mb_body_is_refused_before_it_is_read(stack: Stack, server: str) -> None:
    """Sanic used to buffer up to its 100 MB default before the webhook's 1 MiB check: a client declaring 30 MB and
    sending 64 KB got no answer (the server waited for the rest). Now both servers answer 413 at once, body
    unread."""
    port = port_of(stack, server)
    with socket.create_connection(("127.0.0.1", port), timeout=15) as conn:
        head = (
            "POST /webhooks/messenger/webhook HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {THIRTY_MB}\r\n\r\n"
        )
        conn.sendall(head.encode("ascii") + b"[" * 65536)
        answer = conn.recv(4096)  # a timeout here means the server was still reading the 30 MB

    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


@SERVERS
def test_a_chunked_body_over_the_cap_is_cut_off(stack: Stack, server: str) -> None:
    """Without a Content-Length both count as they read: they stop at the cap (1 MiB for the webhook process, 2 MiB
    for Sanic), not at 100 MB."""
    port = port_of(stack, server)
    with socket.create_connection(("127.0.0.1", port), timeout=15) as conn:
        head = (
            "POST /webhooks/messenger/webhook HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        )
        conn.sendall(head.encode("ascii"))
        chunk = b" " * 65536
        sent = 0
        try:
            while sent < THIRTY_MB:
                conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except OSError:  # the server closed the connection after refusing: what we want
            pass
        answer = conn.recv(4096)

    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < THIRTY_MB, "the server stopped reading long before 30 MB"


def _window(stack: Stack, user: str) -> str | None:
    with closing(sqlite3.connect(stack.data_dir / "outbox.sqlite3", timeout=30)) as conn:
        row = conn.execute(
            "SELECT last_user_message_at FROM conversations WHERE page_id = ? AND user_id = ?", (PAGE_ID, user)
        ).fetchone()
    return row[0] if row else None


def _journaled(stack: Stack, user: str) -> list[int]:
    with closing(sqlite3.connect(stack.data_dir / "messenger.sqlite3", timeout=30)) as conn:
        return [
            flag
            for (flag,) in conn.execute(
                "SELECT window_pending FROM inbound_events WHERE user_id = ? AND kind = 'reaction'", (user,)
            )
        ]


def test_a_reactions_window_lost_to_a_crash_is_applied_after_the_restart(stack: Stack, messenger: Messenger) -> None:
    """The outbox store is unavailable (its write lock held) when a reaction arrives, and Rasa is killed before it
    can record the window. Before: the window was recorded after the commit, in memory only, and was lost. Now it is
    journaled with the event in the same commit and the restarted Rasa applies it."""
    user = f"psid-{uuid.uuid4().hex[:12]}"
    reaction = simulate.messaging(
        PAGE_ID, user, reaction={"reaction": "love", "emoji": "\u2764\ufe0f", "action": "react", "mid": "m_x"}
    )
    blocker = sqlite3.connect(stack.data_dir / "outbox.sqlite3", timeout=30, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")  # the outbox store is unavailable for writes
        assert messenger.deliver(simulate.webhook_body(PAGE_ID, [reaction])).status_code == 200
        assert _journaled(stack, user) == [1], "the window is journaled in the same commit as the event"
        stack.stop_process("rasa", kill=True)  # the crash, before the window reached the outbox
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert _window(stack, user) is None, "the window was not recorded before the crash"

    stack.start_rasa()

    deadline = time.monotonic() + 60
    while _window(stack, user) is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _window(stack, user) is not None, "the restarted Rasa applied the journaled window"
    assert _journaled(stack, user) == [0], "and cleared the journal"
