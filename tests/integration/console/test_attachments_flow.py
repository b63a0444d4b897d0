"""Files and quick replies in an agent's reply through the real stack: the console's API, the handoff service, the
outbox and its worker, the Graph client's Attachment Upload API and the Send API sandbox (which refuses an
attachment_id it never handed out)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest

from bot.stack import Stack
from tests.integration.test_console_api import ask_for_a_person, new_user
from tests.support.console_client import ConsoleSession
from tests.support.stack import Messenger
from tests.unit.meta.test_attachments import EXE, PNG


@pytest.fixture
def agent(stack: Stack) -> Iterator[ConsoleSession]:
    session = ConsoleSession(stack.app_url, "agente")
    yield session
    session.close()


def uploads(messenger: Messenger, after: int) -> list[dict]:
    requests = messenger.http.get(messenger.stack.app_url + "/sandbox/requests", params={"after": after}).json()
    return [r for r in requests if r["path"].endswith("/message_attachments")]


def last_seq(messenger: Messenger) -> int:
    requests = messenger.http.get(messenger.stack.app_url + "/sandbox/requests").json()
    return requests[-1]["seq"] if requests else 0


def test_an_image_is_uploaded_and_sent_with_its_attachment_id(messenger: Messenger, agent: ConsoleSession) -> None:
    user = new_user()
    conversation_id = ask_for_a_person(messenger, agent, user)
    before = last_seq(messenger)
    image = PNG + user.encode()  # a file of its own: uploaded now, not reused from an earlier run
    answer = agent.post(f"/api/console/conversations/{conversation_id}/attachment",
                        files={"file": ("foto.png", image, "image/png")}, data={"caption": "Así luce"})
    assert answer.status_code == 201, answer.text
    attachment_id = answer.json()["attachment_id"]
    [upload] = uploads(messenger, before)
    assert upload["accepted"] and upload["response"] == {"attachment_id": attachment_id}
    assert upload["body"]["filedata"]["size"] == len(image)

    def sent_image() -> bool:
        return any(item["body"].get("message", {}).get("attachment", {}).get("payload", {}).get("attachment_id")
                   == attachment_id for item in messenger.sent(user))
    messenger.wait_for(sent_image, 30, "the image at the Send API sandbox")
    assert "Así luce" in messenger.texts(user)
    transcript = agent.conversation(conversation_id)["transcript"]
    shown = next(item["data"]["attachment"] for item in transcript if (item.get("data") or {}).get("attachment"))
    assert agent.get(shown["url"]).content == image
    page = agent.get(f"/console/conversations/{conversation_id}")
    assert f'src="{shown["url"]}"' in page.text  # the thumbnail, served by the app (CSP: img-src 'self')

    # The same JSON reply with quick replies reaches the sandbox with them on the text.
    quick = agent.post(f"/api/console/conversations/{conversation_id}/reply",
                       json={"text": "¿Le gusta?", "quick_replies": [{"title": "Sí"}, {"title": "No"}]})
    assert quick.status_code == 201, quick.text
    messenger.wait_for(lambda: "¿Le gusta?" in messenger.texts(user), 30, "the quick replies")
    sent = next(item["body"]["message"] for item in messenger.sent(user)
                if item["body"].get("message", {}).get("text") == "¿Le gusta?")
    assert [reply["title"] for reply in sent["quick_replies"]] == ["Sí", "No"]
    agent.post(f"/api/console/conversations/{conversation_id}/close", json={"note": "Prueba de adjuntos"})


def test_a_program_renamed_jpg_and_a_late_file_are_refused(messenger: Messenger, agent: ConsoleSession) -> None:
    now = datetime.now(timezone.utc)
    conversation_id = ask_for_a_person(messenger, agent, new_user())
    before = last_seq(messenger)
    renamed = agent.post(f"/api/console/conversations/{conversation_id}/attachment",
                         files={"file": ("foto.jpg", EXE, "image/jpeg")})
    assert renamed.status_code == 415 and renamed.json()["error"]["reason_code"] == "unsupported_file"
    assert uploads(messenger, before) == []

    late = ask_for_a_person(messenger, agent, new_user(), at=now - timedelta(days=8))
    refused = agent.post(f"/api/console/conversations/{late}/attachment",
                         files={"file": ("foto.png", PNG + b"late", "image/png")})
    assert refused.status_code == 422 and refused.json()["error"]["reason_code"] == "human_agent_window_expired"
    time.sleep(1)
    assert not any("attachment" in item["body"].get("message", {})
                   for item in messenger.sent(late.split(":", 1)[1]))
    for conversation in (conversation_id, late):
        agent.post(f"/api/console/conversations/{conversation}/close", json={"note": "Prueba de adjuntos"})


def test_a_file_too_big_is_413_before_its_body_is_read(stack: Stack, agent: ConsoleSession) -> None:
    """Content-Length says 20 MB; only the headers are sent: the answer comes without waiting for the body."""
    url = urlsplit(stack.app_url)
    cookies = "; ".join(f"{name}={value}" for name, value in agent.http.cookies.items())
    head = (f"POST /api/console/conversations/100000000000001:u1/attachment HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Cookie: {cookies}\r\nX-CSRF-Token: {agent.csrf}\r\n"
            "Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 20971520\r\n\r\n")
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(head.encode())
        received = b""
        # The head and the body may come in separate packets: read until the body's end (the answer closes the
        # connection, or its JSON ends), never waiting for the 20 MB the request announced.
        while b"body_too_large" not in received and not received.rstrip().endswith(b"}"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    answer = received.decode("utf-8", "replace")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "body_too_large" in answer
