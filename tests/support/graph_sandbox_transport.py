"""A Graph client transport answered by a `GraphSandbox` in the same process: the real `GraphClient` (its paths,
its error mapping) against the sandbox's Meta checks, without a server. The Messenger Profile API and the
User Profile API (`GET /{version}/{psid}`), for now."""

from __future__ import annotations

import re
from typing import Any

from meta.graph import GraphRequest, GraphResponse
from sandbox.graph import GraphSandbox, UploadedFile, parse_form_fields, profile_fields_of

PROFILE_PATH = re.compile(r"^/(v[0-9]+\.[0-9]+)/(me|[0-9]+)/messenger_profile$")
UPLOAD_PATH = re.compile(r"^/(v[0-9]+\.[0-9]+)/(me|[0-9]+)/message_attachments$")
USER_PROFILE_PATH = re.compile(r"^/(v[0-9]+\.[0-9]+)/((?!me$)[A-Za-z0-9-]{1,64})$")


class SandboxTransport:
    """`fail_with` (status, body, headers): the next calls get that answer instead (an outage, a refusal)."""

    def __init__(self, sandbox: GraphSandbox) -> None:
        self.sandbox = sandbox
        self.fail_with: tuple[int, dict[str, Any], dict[str, str]] | None = None

    async def send(self, request: GraphRequest) -> GraphResponse:
        if self.fail_with is not None:
            return GraphResponse(*self.fail_with)
        user = USER_PROFILE_PATH.match(request.path)
        if user is not None and request.method == "GET":
            profile = self.sandbox.handle_user_profile(psid=user[2], token=request.params.get("access_token"),
                                                       fields=request.params.get("fields"))
            return GraphResponse(profile.status, profile.body, dict(profile.headers))
        upload = UPLOAD_PATH.match(request.path)
        if upload is not None:  # the Attachment Upload API, multipart as the client sends it
            part = (request.files or {}).get("filedata")
            answer = self.sandbox.handle_attachment_upload(
                version=upload[1], node=upload[2], path=request.path, token=request.params.get("access_token"),
                body=parse_form_fields((request.form or {}).items()) if request.form is not None
                else dict(request.json_body or {}),
                file=UploadedFile(part.filename, part.content_type, part.data) if part is not None else None)
            return GraphResponse(answer.status, answer.body, dict(answer.headers))
        match = PROFILE_PATH.match(request.path)
        if match is None:
            raise NotImplementedError(f"the in-process sandbox transport does not answer {request.path}")
        body: Any = dict(request.json_body or {})
        fields = request.params.get("fields", body.get("fields"))
        answer = self.sandbox.handle_messenger_profile(
            method=request.method, version=match[1], node=match[2], path=request.path,
            token=request.params.get("access_token"), body=body, fields=profile_fields_of(fields))
        return GraphResponse(answer.status, answer.body, dict(answer.headers))

    async def close(self) -> None:
        return None
