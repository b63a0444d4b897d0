"""The Graph API client: one transport seam, errors mapped in one place."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.settings import DEFAULT_GRAPH_API_VERSION
from meta.attachments import upload_problem
from meta.errors import (
    GraphError,
    PermanentGraphError,
    TransientGraphError,
    UnknownPageError,
    classify_graph_error,
)
from meta.feed import is_object_id

logger = logging.getLogger(__name__)

# The User Profile API's fields every app may ask for once the page may read profiles (locale needs more review at
# Meta; a field the app may not read fails the whole call, so callers ask only for what they use).
USER_PROFILE_FIELDS = ("first_name", "last_name", "profile_pic")
# A PSID as it may appear in a Graph path: Meta's are digits; the sandbox's are letters, digits and `-`. Never `_`
# (`<digits>_<digits>` is a post or comment id), `/`, `?`, `.`.
PSID_IN_PATH = re.compile(r"(?!me$)[A-Za-z0-9-]{1,64}")


@dataclass(frozen=True)
class FilePart:
    """A file in a multipart request (the Attachment Upload API's `filedata`)."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class GraphRequest:
    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    json_body: Mapping[str, Any] | None = None
    # multipart/form-data instead of JSON: text fields (structured ones as JSON strings, as Meta reads them) + files
    form: Mapping[str, str] | None = None
    files: Mapping[str, FilePart] | None = None


@dataclass(frozen=True)
class GraphResponse:
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


class GraphTransport(Protocol):
    async def send(self, request: GraphRequest) -> GraphResponse: ...

    async def close(self) -> None: ...


class AiohttpTransport:
    """Async HTTP to the Graph API (or the sandbox), one pooled session per process."""

    def __init__(self, base_url: str, timeout_seconds: float = 10.0) -> None:
        # Loaded here, not on the first send: the import takes ~0.3 s, and on a worker's first send it stalled the
        # event loop, so the sends due meanwhile went out together (a burst at a rate-limited page).
        import aiohttp  # noqa: F401

        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self._session: Any = None

    async def _get_session(self) -> Any:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
                connector=aiohttp.TCPConnector(limit=64),
            )
        return self._session

    async def send(self, request: GraphRequest) -> GraphResponse:
        import aiohttp

        session = await self._get_session()
        payload: dict[str, Any] = {"json": request.json_body}
        if request.form is not None or request.files:
            form = aiohttp.FormData()
            for name, value in (request.form or {}).items():
                form.add_field(name, value)
            for name, part in (request.files or {}).items():
                form.add_field(name, part.data, filename=part.filename, content_type=part.content_type)
            payload = {"data": form}
        try:
            async with session.request(
                request.method, self.base_url + request.path, params=dict(request.params), **payload
            ) as response:
                text = await response.text()
                try:
                    body: Any = json.loads(text) if text else None
                except ValueError:
                    body = text
                return GraphResponse(response.status, body, dict(response.headers))
        except asyncio.TimeoutError as exc:
            raise TransientGraphError(f"timed out after {self.timeout_seconds} s", status=0) from exc
        except aiohttp.ClientError as exc:
            raise TransientGraphError(f"connection failed: {type(exc).__name__}", status=0) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class GraphClient:
    """Send API calls for every configured page; raises a `GraphError` subclass on failure.

    It gets what it needs from the settings (`GRAPH_API_BASE`, `GRAPH_API_VERSION`, the page tokens,
    `GRAPH_API_TIMEOUT_SECONDS`), not the settings themselves; `transport` replaces the HTTP calls (tests)."""

    def __init__(
        self,
        page_tokens: Mapping[str, str],
        *,
        base_url: str = "https://graph.facebook.com",
        version: str = DEFAULT_GRAPH_API_VERSION,
        timeout_seconds: float = 10.0,
        transport: GraphTransport | None = None,
    ) -> None:
        self.page_tokens = dict(page_tokens)
        self.version = version
        self.transport = transport or AiohttpTransport(base_url, timeout_seconds)

    def _token(self, page_id: str) -> str:
        token = self.page_tokens.get(page_id)
        if not token:
            raise UnknownPageError(f"no access token configured for page {page_id}")
        return token

    async def _post(self, page_id: str, edge: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._call("POST", page_id, f"/{self.version}/{page_id}/{edge}", body)

    async def _call(
        self,
        method: str,
        page_id: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        *,
        form: Mapping[str, str] | None = None,
        files: Mapping[str, FilePart] | None = None,
    ) -> dict[str, Any]:
        """One Graph call with the page's token; a `GraphError` subclass on failure."""
        request = GraphRequest(
            method, path, params={**(params or {}), "access_token": self._token(page_id)}, json_body=body,
            form=form, files=files,
        )
        response = await self.transport.send(request)
        error = classify_graph_error(response.status, response.body, response.headers)
        if error is not None:
            raise error
        return response.body if isinstance(response.body, dict) else {}

    async def send_message(self, page_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._post(page_id, "messages", body)

    async def upload_attachment(
        self, page_id: str, kind: str, filename: str, content_type: str, data: bytes
    ) -> str:
        """Meta's Attachment Upload API: POST /{version}/me/message_attachments, multipart with
        `message={"attachment":{"type":kind,"payload":{"is_reusable":true}}}` and the file as `filedata`. Meta answers
        `{"attachment_id": "..."}`, an id this page may send (`payload.attachment_id`) for 90 days. A type Meta does
        not know, an empty file or one over 25 MB is refused before any call (PermanentGraphError); a file whose
        bytes are not its type is Meta's "(#100) Upload attachment failure" (PermanentGraphError too)."""
        problem = upload_problem(kind, data)
        if problem is not None:
            raise PermanentGraphError(f"attachment not uploaded: {problem}")
        message = {"attachment": {"type": kind, "payload": {"is_reusable": True}}}
        answer = await self._call(
            "POST", page_id, f"/{self.version}/me/message_attachments",
            form={"message": json.dumps(message, separators=(",", ":"))},
            files={"filedata": FilePart(filename or f"archivo.{kind}", content_type, data)},
        )
        attachment_id = answer.get("attachment_id")
        if not isinstance(attachment_id, (str, int)) or isinstance(attachment_id, bool) or not str(attachment_id):
            raise PermanentGraphError("the Attachment Upload API answered without an attachment_id")
        return str(attachment_id)

    async def reply_to_comment(self, page_id: str, comment_id: str, text: str) -> dict[str, Any]:
        """The page's public reply under a comment: POST /{comment_id}/comments with `message` (the page token needs
        pages_manage_engagement). Meta answers `{"id": <the new comment's id>}`. A comment id that is not Meta's
        shape (digits joined by `_`) is refused before any call: it goes into the path with the page's token."""
        if not is_object_id(comment_id):
            raise PermanentGraphError(f"not a Graph API comment id: {comment_id[:40]!r}")
        return await self._call("POST", page_id, f"/{self.version}/{comment_id}/comments", {"message": text})

    async def get_post(self, page_id: str, post_id: str, fields: Sequence[str] = ("message",)) -> dict[str, Any]:
        """A post of the page: GET /{post_id}?fields=message with the page token (needs pages_read_engagement).
        Meta answers `{"id": ..., "message": ...}`; a post without text has no `message`."""
        if not is_object_id(post_id):
            raise PermanentGraphError(f"not a Graph API post id: {post_id[:40]!r}")
        return await self._call("GET", page_id, f"/{self.version}/{post_id}", params={"fields": ",".join(fields)})

    async def get_page(self, page_id: str, fields: Sequence[str] = ("name",)) -> dict[str, Any]:
        """The page itself: GET /{page_id}?fields=name with its own token (Meta answers `{"id", "name"}`)."""
        if not PSID_IN_PATH.fullmatch(page_id):
            raise PermanentGraphError(f"not a page id: {page_id[:40]!r}")
        return await self._call("GET", page_id, f"/{self.version}/{page_id}", params={"fields": ",".join(fields)})

    async def get_user_profile(
        self, page_id: str, psid: str, fields: Sequence[str] = USER_PROFILE_FIELDS
    ) -> dict[str, Any]:
        """A person's profile by their PSID (Meta's User Profile API): GET /{psid}?fields=... with the page token.
        Meta answers `{"id", "first_name", ...}` with the fields it may give; without the permission (Business Asset
        User Profile Access) "(#100) Insufficient permission to access user profile" (subcode 2018247), for an account
        made with a phone number "(#100) No profile available for this user" (2018218): PermanentGraphError. A PSID
        that is not letters, digits and `-` is refused before any request (it goes into the path with the token)."""
        if not PSID_IN_PATH.fullmatch(psid):
            raise PermanentGraphError(f"not a page-scoped id: {psid[:40]!r}")
        return await self._call("GET", page_id, f"/{self.version}/{psid}", params={"fields": ",".join(fields)})

    async def pass_thread_control(
        self, page_id: str, user_id: str, target_app_id: str, metadata: str | None = None
    ) -> dict[str, Any]:
        """Handover protocol: give the thread to another app (the Page inbox is 263902037430900)."""
        body: dict[str, Any] = {"recipient": {"id": user_id}, "target_app_id": int(target_app_id)}
        if metadata:
            body["metadata"] = metadata[:1000]
        return await self._post(page_id, "pass_thread_control", body)

    async def take_thread_control(self, page_id: str, user_id: str, metadata: str | None = None) -> dict[str, Any]:
        """Handover protocol: the primary receiver (this app) takes the thread back."""
        body: dict[str, Any] = {"recipient": {"id": user_id}}
        if metadata:
            body["metadata"] = metadata[:1000]
        return await self._post(page_id, "take_thread_control", body)

    # The Messenger Profile API (Get Started, greeting, ice breakers, persistent menu): `/me/messenger_profile` with
    # the page's token. POST sets the fields it names, DELETE removes the named fields; both answer
    # {"result": "success"}. GET answers {"data": [{...the fields set...}]} ({"data": []} when none is).

    async def set_messenger_profile(self, page_id: str, profile: Mapping[str, Any]) -> dict[str, Any]:
        return await self._call("POST", page_id, f"/{self.version}/me/messenger_profile", profile)

    async def get_messenger_profile(self, page_id: str, fields: Sequence[str]) -> dict[str, Any]:
        return await self._call(
            "GET", page_id, f"/{self.version}/me/messenger_profile", params={"fields": ",".join(fields)}
        )

    async def delete_messenger_profile_fields(self, page_id: str, fields: Sequence[str]) -> dict[str, Any]:
        return await self._call("DELETE", page_id, f"/{self.version}/me/messenger_profile", {"fields": list(fields)})

    async def close(self) -> None:
        await self.transport.close()


__all__ = [
    "AiohttpTransport", "FilePart", "GraphClient", "GraphError", "GraphRequest", "GraphResponse", "GraphTransport",
]
