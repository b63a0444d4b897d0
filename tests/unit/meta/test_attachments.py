"""Files read from their bytes (meta/attachments.py), the Graph client's Attachment Upload API and the sandbox's
side of it: the type must match the bytes, 25 MB at most, an id only its page uploaded may be sent."""

from __future__ import annotations

import asyncio
import io
import zipfile

import pytest

from core.settings import SANDBOX_PAGE_ID, SANDBOX_PAGE_TOKEN
from meta.attachments import ATTACHMENT_MAX_BYTES, megabytes, sniff, upload_problem
from meta.errors import PermanentGraphError
from meta.graph import GraphClient
from sandbox.graph import GraphSandbox, UploadedFile, attachment_ids_of
from tests.support.graph_sandbox_transport import SandboxTransport

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 40
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + b"\x00" * 60
OTHER_PAGE, OTHER_TOKEN = "200000000000002", "other-page-token"


def office(*names: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name in names:
            archive.writestr(name, "<x/>")
    return out.getvalue()


@pytest.mark.parametrize(("data", "content_type"), [
    (JPEG, "image/jpeg"), (PNG, "image/png"), (b"GIF89a" + b"\x00" * 20, "image/gif"),
    (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"), (b"%PDF-1.7\n", "application/pdf"),
    (office("[Content_Types].xml", "word/document.xml"),
     "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    (office("[Content_Types].xml", "xl/workbook.xml"),
     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00", "video/mp4"), (b"\x00\x00\x00\x18ftypM4A \x00", "audio/mp4"),
    (b"ID3\x03\x00\x00\x00", "audio/mpeg"), (b"\xff\xfb\x90\x64\x00", "audio/mpeg"), (b"OggS\x00\x02", "audio/ogg"),
])
def test_accepted_files_are_known_by_their_bytes(data: bytes, content_type: str) -> None:
    found = sniff(data)
    assert found is not None and found.content_type == content_type


@pytest.mark.parametrize("data", [
    EXE, b"", b"#!/bin/sh\nrm -rf /\n", b"<html><script>alert(1)</script>", office("a.txt"),
    office("[Content_Types].xml", "ppt/presentation.xml"), b"PK\x03\x04broken", b"\xff\xff\xff\xff",
    b"RIFF\x24\x00\x00\x00WAVEfmt ",
])
def test_other_files_are_not(data: bytes) -> None:
    assert sniff(data) is None


def test_upload_problems_as_meta_sees_them() -> None:
    assert upload_problem("image", PNG) is None
    assert upload_problem("file", EXE) is None  # a "file" is any file to Meta (the console is stricter)
    assert upload_problem("image", EXE) == "the file is not an image"
    assert upload_problem("video", PNG) == "the file is not a video"
    assert upload_problem("sticker", PNG) is not None
    assert upload_problem("image", b"") == "the file is empty"
    too_big = PNG + b"\x00" * (ATTACHMENT_MAX_BYTES - len(PNG) + 1)
    assert "limit" in (upload_problem("image", too_big) or "")
    assert megabytes(10 * 1024 * 1024) == "10 MB" and megabytes(5 * 1024 * 1024 // 2) == "2,5 MB"


def sandbox_and_client() -> tuple[GraphSandbox, GraphClient]:
    tokens = {SANDBOX_PAGE_ID: SANDBOX_PAGE_TOKEN, OTHER_PAGE: OTHER_TOKEN}
    sandbox = GraphSandbox(tokens)
    return sandbox, GraphClient(tokens, transport=SandboxTransport(sandbox))


def send(sandbox: GraphSandbox, token: str, attachment_id: str, kind: str = "image") -> int:
    body = {"recipient": {"id": "u1"}, "messaging_type": "RESPONSE",
            "message": {"attachment": {"type": kind, "payload": {"attachment_id": attachment_id}}}}
    return sandbox.handle_send(version="v21.0", node="me", path="/v21.0/me/messages", token=token, body=body).status


def test_an_upload_answers_an_id_only_its_page_may_send_as_its_type() -> None:
    sandbox, client = sandbox_and_client()
    attachment_id = asyncio.run(client.upload_attachment(SANDBOX_PAGE_ID, "image", "foto.png", "image/png", PNG))
    upload = sandbox.requests()[-1]
    assert upload["path"] == "/v21.0/me/message_attachments" and upload["accepted"]
    assert upload["body"]["message"] == {"attachment": {"type": "image", "payload": {"is_reusable": True}}}
    assert upload["body"]["filedata"]["size"] == len(PNG) and "data" not in upload["body"]["filedata"]
    assert send(sandbox, SANDBOX_PAGE_TOKEN, attachment_id) == 200
    assert send(sandbox, SANDBOX_PAGE_TOKEN, attachment_id, "video") == 400  # uploaded as an image
    assert send(sandbox, OTHER_TOKEN, attachment_id) == 400  # another page's upload
    refused = sandbox.requests()[-1]["response"]["error"]
    assert (refused["code"], refused["error_subcode"]) == (100, 2018047)
    assert send(sandbox, SANDBOX_PAGE_TOKEN, "1234567890123456") == 400  # never uploaded


def test_the_sandbox_refuses_a_type_that_does_not_match_the_bytes_and_a_missing_token() -> None:
    sandbox, _client = sandbox_and_client()
    message = {"message": {"attachment": {"type": "image", "payload": {"is_reusable": True}}}}
    renamed = sandbox.handle_attachment_upload(version="v21.0", node="me", path="/p", token=SANDBOX_PAGE_TOKEN,
                                               body=message, file=UploadedFile("foto.jpg", "image/jpeg", EXE))
    assert renamed.status == 400 and renamed.body["error"]["error_subcode"] == 2018047
    anonymous = sandbox.handle_attachment_upload(version="v21.0", node="me", path="/p", token=None, body=message,
                                                 file=UploadedFile("foto.png", "image/png", PNG))
    assert anonymous.status in (400, 401) and "attachment_id" not in anonymous.body
    payload = {"url": "https://e.ec/a.pdf", "is_reusable": True}
    by_url = sandbox.handle_attachment_upload(
        version="v21.0", node="me", path="/p", token=SANDBOX_PAGE_TOKEN, file=None,
        body={"message": {"attachment": {"type": "file", "payload": payload}}})
    assert by_url.status == 200 and by_url.body["attachment_id"]
    assert [r["accepted"] for r in sandbox.requests()] == [False, False, True]


def test_the_client_refuses_before_calling_what_meta_would_refuse() -> None:
    sandbox, client = sandbox_and_client()
    with pytest.raises(PermanentGraphError):
        asyncio.run(client.upload_attachment(SANDBOX_PAGE_ID, "image", "x.jpg", "image/jpeg", EXE))
    assert sandbox.requests() == []


def test_attachment_ids_of_a_send() -> None:
    assert attachment_ids_of({"message": {"attachment": {"type": "file", "payload": {"attachment_id": 12}}}}) == [
        ("12", "file")]
    template = {"template_type": "media", "elements": [{"media_type": "video", "attachment_id": "9"}]}
    assert attachment_ids_of({"message": {"attachment": {"type": "template", "payload": template}}}) == [("9", "video")]
    assert attachment_ids_of({"message": {"text": "hola"}}) == [] and attachment_ids_of("x") == []
