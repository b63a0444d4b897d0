"""The real stack (Rasa + action server + app) on free ports, for integration tests."""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from bot.stack import RASA_BIN, SERVED_CREDENTIALS, Ports, Stack, build_stack, ensure_model
from core.settings import DEMO_APP_SECRET, ROOT, SANDBOX_PAGE_ID
from knowledge_matrix.publish import KNOWLEDGE_DIR
from sandbox import simulate

PAGE_ID = SANDBOX_PAGE_ID


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rasa_available() -> bool:
    return RASA_BIN.exists()


# This test process's first stack publishes the demo matrix (`bot run` does, with nothing published): embedding it
# with the real models costs the CPU Rasa's model load needs at the same time. Later stacks start with a copy of
# that first publication (exactly what `knowledge_matrix publish` left, before any test changed it), and the
# publish job finds it already published.
_demo_knowledge: Path | None = None


def _seed_demo_knowledge(data_dir: Path, env: dict[str, str]) -> None:
    target = data_dir / KNOWLEDGE_DIR
    if _demo_knowledge is not None and env.get("BOT_ENV") != "production" and not target.exists():
        shutil.copytree(_demo_knowledge, target)


def _keep_demo_knowledge(data_dir: Path, env: dict[str, str]) -> None:
    """After a first start: keep its publication of the demo matrix, if that is all there is."""
    global _demo_knowledge
    source = data_dir / KNOWLEDGE_DIR
    if _demo_knowledge is not None or env.get("BOT_ENV") == "production" or not (source / "CURRENT").exists():
        return
    history = (source / "history.jsonl").read_text(encoding="utf-8").splitlines()
    if len(history) != 1 or json.loads(history[0]).get("by") != "demo":
        return
    kept = Path(tempfile.mkdtemp(prefix="demo-knowledge-")) / KNOWLEDGE_DIR
    shutil.copytree(source, kept, ignore=shutil.ignore_patterns(".lock"))
    _demo_knowledge = kept


def start_stack(
    data_dir: Path,
    extra_env: dict[str, str] | None = None,
    credentials: str = SERVED_CREDENTIALS,
    profile: str = "embedded",
    rasa_instances: int = 1,
) -> Stack:
    """The whole stack on free ports. `profile="scale"`: `rasa_instances` Rasa processes; `extra_env` then says
    where PostgreSQL, Redis and RabbitMQ are and which names are this test's (tests/support/scale.py)."""
    model = ensure_model()
    ports = Ports(free_port(), free_port(), free_port(), webhook=free_port(),
                  rasa_extra=tuple(free_port() for _ in range(rasa_instances - 1)))
    env = {**(extra_env or {}), "BOT_PROFILE": profile, "RASA_INSTANCES": str(rasa_instances)}
    _seed_demo_knowledge(data_dir, env)
    stack = build_stack(ports, data_dir, model, env, credentials)
    try:
        stack.start()
    except BaseException:
        stack.stop()
        raise
    _keep_demo_knowledge(data_dir, env)
    return stack


def response_texts(name: str) -> set[str]:
    """Every variant of a domain response, to recognise which reply answered which message."""
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    return {variant["text"] for variant in domain["responses"][name] if "text" in variant}


class Messenger:
    """Talks to the stack as Meta does: signed deliveries in, Send API requests out (the sandbox)."""

    def __init__(self, stack: Stack, app_secret: str = DEMO_APP_SECRET) -> None:
        self.stack = stack
        self.app_secret = app_secret
        self.http = httpx.Client(timeout=30)

    def deliver(self, body: dict[str, Any], secret: str | None = None) -> httpx.Response:
        raw, headers = simulate.signed_request(body, secret or self.app_secret)
        return self.deliver_raw(raw, headers)

    def deliver_raw(self, raw: bytes, headers: dict[str, str]) -> httpx.Response:
        try:
            return self.http.post(self.stack.webhook_url, content=raw, headers=headers)
        except httpx.RemoteProtocolError:
            # The keep-alive race: the webhook closes a connection idle for 5 s just as this client reuses it. The
            # request never reached the app; Meta delivers again too (and a redelivery is handled once).
            return self.http.post(self.stack.webhook_url, content=raw, headers=headers)

    def say(self, user_id: str, text: str) -> httpx.Response:
        return self.deliver(simulate.webhook_body(PAGE_ID, [simulate.text_message(PAGE_ID, user_id, text)]))

    def sent(self, user_id: str | None = None) -> list[dict[str, Any]]:
        params = {"recipient_id": user_id} if user_id else {}
        return self.http.get(self.stack.app_url + "/sandbox/sent", params=params).json()

    def replies(self, user_id: str) -> list[dict[str, Any]]:
        """The `message` objects sent to a user, oldest first (sender actions left out)."""
        return [item["body"]["message"] for item in self.sent(user_id) if "message" in item["body"]]

    def texts(self, user_id: str) -> list[str]:
        return [reply.get("text", "") for reply in self.replies(user_id)]

    def wait_for(self, condition: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def wait_for_text(self, user_id: str, expected: set[str], timeout: float = 60) -> list[str]:
        self.wait_for(lambda: any(t in expected for t in self.texts(user_id)), timeout, f"a reply to {user_id}")
        return self.texts(user_id)
