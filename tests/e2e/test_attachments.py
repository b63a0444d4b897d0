"""In a real browser: an agent attaches an image to a reply; the Graph sandbox receives the upload and the send with
its attachment_id, and the transcript shows the thumbnail (served by the app, allowed by the console's CSP)."""

from __future__ import annotations

import struct
import uuid
import zlib
from typing import Any

from playwright.sync_api import expect

from bot.stack import Stack
from handoff.model import conversation_id_of
from tests.e2e.test_console import LIVE_TIMEOUT, login
from tests.support.stack import PAGE_ID, Messenger


def tiny_png(seed: str) -> bytes:
    """A valid 2×1 PNG whose pixels depend on `seed` (a file of its own each run)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    red, green = uuid.uuid5(uuid.NAMESPACE_URL, seed).bytes[:2]
    pixels = b"\x00" + bytes([red, green, 200, 10, 120, 240])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(pixels)) + chunk(b"IEND", b""))


def test_an_agent_sends_an_image_and_the_sandbox_has_it(page: Any, stack: Stack) -> None:
    messenger = Messenger(stack)
    user = f"e2e-img-{uuid.uuid4().hex[:8]}"
    conversation_id = conversation_id_of(PAGE_ID, user)
    try:
        image = tiny_png(user)
        assert messenger.say(user, "quiero hablar con una persona").status_code == 200
        login(page, stack, "agente", "agente-demo")
        expect(page).to_have_url(f"{stack.app_url}/console/inbox")
        messenger.wait_for(lambda: page.request.get(f"{stack.app_url}/api/console/conversations/{conversation_id}").ok,
                           60, "the paused conversation")
        page.goto(f"{stack.app_url}/console/conversations/{conversation_id}")
        expect(page.locator("#state-badge")).to_have_text("Chatbot en pausa", timeout=LIVE_TIMEOUT)

        page.fill("#reply-text", "Le envío la foto")
        page.set_input_files("#attach-file", files=[{"name": "foto.png", "mimeType": "image/png", "buffer": image}])
        thumb = page.locator(".msg.agent img.thumb").last
        expect(thumb).to_be_visible(timeout=LIVE_TIMEOUT)
        expect(page.locator("#reply-text")).to_have_value("")
        page.wait_for_function("img => img.complete && img.naturalWidth === 2", arg=thumb.element_handle())

        def image_sent() -> list[dict[str, Any]]:
            return [item for item in messenger.sent(user) if "attachment" in item["body"].get("message", {})]
        messenger.wait_for(lambda: bool(image_sent()), 30, "the image at the Send API sandbox")
        attachment_id = image_sent()[0]["body"]["message"]["attachment"]["payload"]["attachment_id"]
        requests = messenger.http.get(f"{stack.app_url}/sandbox/requests").json()
        upload = next(r for r in requests if r["response"].get("attachment_id") == attachment_id)
        assert upload["body"]["filedata"]["size"] == len(image) and upload["body"]["message"]["attachment"]["type"] \
            == "image"
        assert "Le envío la foto" in messenger.texts(user)
        page.fill("#close-note", "Prueba de imagen")
        page.click("#close-button")
        expect(page.locator("#state-badge")).to_have_text("Atiende el chatbot", timeout=LIVE_TIMEOUT)
    finally:
        messenger.http.close()
