"""A local stand-in for Meta's Send API: same paths, same checks, same error bodies.

The app mounts `router` and keeps one `GraphSandbox` in `app.state.sandbox`. The connector
talks to it exactly as to graph.facebook.com (`GRAPH_API_BASE`), so every reply the bot sends
in development, tests and benchmarks goes through Meta's validation rules
(`meta.validate`) and is recorded for inspection:

- `POST /{version}/{page_id}/messages` (also `/{version}/me/messages`): the Send API.
- `POST /{version}/{page_id}/pass_thread_control` and `/take_thread_control`: the handover protocol.
- `GET|POST|DELETE /{version}/me/messenger_profile`: the page's Messenger profile (Get Started, greeting, ice
  breakers, persistent menu), checked as Meta checks it (`meta.messenger_profile`), kept per page.
- Private replies (`recipient.comment_id`) as Meta answers them: the commenter's PSID as `recipient_id` (for comments
  the sandbox was told about, `register_comment`; else a stable id from the comment id), one per comment
  ("(#10900) Activity already replied to"), none to a comment older than 7 days ("(#10903) This user can't reply to
  this activity").
- `POST /{version}/{comment_id}/comments`: the page's public reply under a comment, recorded like sends.
- `GET /{version}/{post_id}?fields=message`: a post's text, for posts the sandbox was told about (`register_post`,
  `/sandbox/comments` with `post_message`); Meta's "Unsupported get request" error for any other object.
- `GET /{version}/{psid}?fields=first_name,last_name,profile_pic,locale`: Meta's User Profile API, with a name
  made from the PSID (`sandbox_profile`); PSIDs starting with `noperm` get Meta's "(#100) Insufficient permission to
  access user profile" (subcode 2018247), `noprofile` Meta's "No profile available for this user" (2018218).
- `POST /{version}/me/message_attachments`: Meta's Attachment Upload API (multipart `message` + `filedata`, or a
  JSON `payload.url`): the type must match the file's bytes (`meta.attachments.upload_problem`: an image that is
  not one, an empty file or one over 25 MB gets "(#100) Upload attachment failure", subcode 2018047); answers
  `{"attachment_id": "..."}` and records the upload (the file's name, type, size and SHA-256, never its bytes).
  A send whose `attachment_id` this page never uploaded (or uploaded as another type) is refused the same way.
- `GET /sandbox/sent`, `GET /sandbox/requests`, `DELETE /sandbox/sent`: what was sent (`GET /sandbox/sent?after=<seq>
  &wait=<s>`: a long poll, answered once a matching send after `seq` is recorded).
- `POST|GET|DELETE /sandbox/failures`: make the next sends fail as Meta would.
- `POST|GET /sandbox/latency`: answer slower, for benchmarks.
- `POST /sandbox/reset`: all of the above back to empty.

Decisions (who may send, what Meta would answer, which injected failure applies) are pure
functions; `GraphSandbox` only holds state behind one lock, so it is safe from any number of
concurrent requests and threads. It never stores or logs an access token.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import copy
import hashlib
import json
import math
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.convertors import Convertor, register_url_convertor

from core.settings import SettingsError
from meta.attachments import upload_problem
from meta.errors import DEFAULT_SUBCODES, META_ERRORS, SUBCODE_ALIASES, Kind, MetaErrorCode
from meta.limits import MEDIA_ATTACHMENT_TYPES, RECIPIENT_KEYS
from meta.messenger_profile import PROFILE_FIELDS, fields_problem, profile_problem, to_graph_error
from meta.validate import GraphErrorSpec, validate_send_request

TEMPLATES_DIR = Path(__file__).parent / "templates"  # the sandbox chat page (chat.html), served by the app

GRAPH_METHOD_EXCEPTION = "GraphMethodException"
MAX_LATENCY_MS = 60_000


# --- Meta's errors (their codes, wording and statuses: meta.errors.META_ERRORS) ---------------


def graph_error(
    code: int,
    error_subcode: int | None = None,
    *,
    message: str | None = None,
    http_status: int | None = None,
    error_type: str | None = None,
) -> GraphErrorSpec:
    """Meta's error for `code` (and subcode), with Meta's wording unless `message` is given."""
    if error_subcode is None and code in SUBCODE_ALIASES:
        code, error_subcode = SUBCODE_ALIASES[code]
    if error_subcode is None:
        error_subcode = DEFAULT_SUBCODES.get(code)
    known = META_ERRORS.get((code, error_subcode)) or META_ERRORS.get((code, None))
    if known is None:
        known = MetaErrorCode(Kind.PERMANENT, f"(#{code}) Sandbox-injected Graph API error")
    return GraphErrorSpec(
        message=message or known.message,
        code=code,
        error_subcode=error_subcode,
        type=error_type or known.type,
        http_status=http_status or known.http_status,
        is_transient=known.is_transient,
    )


def token_missing_error(is_me: bool) -> GraphErrorSpec:
    if is_me:
        return GraphErrorSpec("An active access token must be used to query information about the current user.", 2500)
    return GraphErrorSpec("An access token is required to request this resource.", 104)


def token_invalid_error() -> GraphErrorSpec:
    return GraphErrorSpec("Invalid OAuth access token - Cannot parse access token", 190)


def unsupported_post_error(object_id: str, method: str = "post") -> GraphErrorSpec:
    """What Meta answers when the token cannot act for the object in the path (another page's token, or an object
    it does not know: "Unsupported get request" for a GET)."""
    return GraphErrorSpec(
        f"Unsupported {method} request. Object with ID '{object_id}' does not exist, cannot be loaded due to missing "
        "permissions, or does not support this operation. Please read the Graph API documentation at "
        "https://developers.facebook.com/docs/graph-api",
        100,
        error_subcode=33,
        type=GRAPH_METHOD_EXCEPTION,
    )


def upload_failure_error(detail: str) -> GraphErrorSpec:
    """Meta's refusal of an attachment it cannot take (a type that does not match the file, a file it does not know:
    subcode 2018047, "Upload attachment failure"). The detail is the sandbox's, to help whoever reads the test."""
    return GraphErrorSpec(f"(#100) Upload attachment failure. ({detail})", 100, error_subcode=2018047)


def unparsable_body_error() -> GraphErrorSpec:
    return GraphErrorSpec("(#100) The request body could not be parsed as JSON", 100)


def error_headers(error: GraphErrorSpec, page_id: str, retry_after_seconds: float | None) -> dict[str, str]:
    """The headers Meta sends with this error: usage headers on rate limits, WWW-Authenticate on tokens."""
    headers: dict[str, str] = {}
    regain_minutes = math.ceil(retry_after_seconds / 60) if retry_after_seconds else 0
    usage: dict[str, Any] = {"call_count": 100, "total_cputime": 100, "total_time": 100}
    if error.code in (4, 17):
        headers["X-App-Usage"] = _compact_json(usage)
    elif error.code == 32:
        headers["X-Page-Usage"] = _compact_json({**usage, "estimated_time_to_regain_access": regain_minutes})
    elif error.code in (613, 80006):
        buc = {"type": "messenger", **usage, "estimated_time_to_regain_access": regain_minutes}
        headers["X-Business-Use-Case-Usage"] = _compact_json({page_id: [buc]})
    elif error.code in (104, 190, 2500):
        reason = "invalid_token" if error.code == 190 else "invalid_request"
        headers["WWW-Authenticate"] = f'OAuth "Facebook Platform" "{reason}" "{error.message}"'
    if retry_after_seconds is not None:
        headers["Retry-After"] = str(math.ceil(retry_after_seconds))
    return headers


def _compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# --- who may send for which page -----------------------------------------------------------


def pages_by_token(page_tokens: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """Each token and the pages it can act for (one, unless a token is shared between pages)."""
    pages: dict[str, list[str]] = {}
    for page_id, token in page_tokens.items():
        pages.setdefault(token, []).append(page_id)
    return {token: tuple(ids) for token, ids in pages.items()}


def authorize(token_pages: Mapping[str, tuple[str, ...]], node: str, token: str | None) -> str | GraphErrorSpec:
    """The page this request acts for, or Meta's error. `node` is the path's page id or "me"."""
    is_me = node == "me"
    if not token:
        return token_missing_error(is_me)
    pages = token_pages.get(token)
    if not pages:
        return token_invalid_error()
    if is_me:
        return pages[0]
    if node not in pages:
        return unsupported_post_error(node)
    return node


def access_token_of(query: Mapping[str, str], authorization: str | None, body: Any) -> str | None:
    """The token from `?access_token=`, `Authorization: Bearer|OAuth`, or the body, like the Graph API."""
    if query.get("access_token"):
        return query["access_token"]
    if authorization:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() in ("bearer", "oauth") and credentials.strip():
            return credentials.strip()
    if isinstance(body, Mapping) and isinstance(body.get("access_token"), str):
        return body["access_token"]
    return None


# --- the request body ----------------------------------------------------------------------


def parse_form_fields(fields: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Form-encoded Graph parameters: structured ones (recipient, message) are JSON strings."""
    body: dict[str, Any] = {}
    for name, value in fields:
        stripped = value.strip()
        if stripped.startswith(("{", "[")):
            try:
                body[name] = json.loads(stripped)
                continue
            except ValueError:
                pass
        body[name] = value
    return body


def parse_body(content_type: str, raw: bytes) -> tuple[Any, GraphErrorSpec | None]:
    """The parsed body of a JSON or `application/x-www-form-urlencoded` request, or Meta's error."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    text = raw.decode("utf-8", errors="replace")
    if media_type == "application/x-www-form-urlencoded":
        return parse_form_fields(parse_qsl(text, keep_blank_values=True)), None
    if not text.strip():
        return {}, None
    try:
        return json.loads(text), None
    except ValueError:
        return text, unparsable_body_error()


def without_token(body: Any) -> Any:
    """The body as recorded: never with an access token in it."""
    if isinstance(body, Mapping) and "access_token" in body:
        return {key: value for key, value in body.items() if key != "access_token"}
    return body


def sandbox_psid(value: str) -> str:
    """A stable page-scoped id for a recipient given as user_ref, post_id, comment_id or token."""
    return str(int(hashlib.sha256(value.encode("utf-8")).hexdigest(), 16))[:16]


def recipient_values(body: Any) -> tuple[str, ...]:
    """Every way the body names its recipient (its id, user_ref, ...), as strings."""
    recipient = body.get("recipient") if isinstance(body, Mapping) else None
    if not isinstance(recipient, Mapping):
        return ()
    return tuple(str(recipient[key]) for key in RECIPIENT_KEYS if recipient.get(key) is not None)


def recipient_id_of(body: Any) -> str | None:
    """The `recipient_id` Meta answers with: the PSID itself, or the one behind a user_ref/post/comment."""
    recipient = body.get("recipient") if isinstance(body, Mapping) else None
    if not isinstance(recipient, Mapping):
        return None
    if recipient.get("id") is not None:
        return str(recipient["id"])
    values = recipient_values(body)
    return sandbox_psid(values[0]) if values else None


# --- attachments ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadedFile:
    """The `filedata` part of an upload as the sandbox received it."""

    filename: str
    content_type: str
    data: bytes


def attachment_ids_of(body: Any) -> list[tuple[str, str]]:
    """The (attachment_id, type) pairs a Send API body uses: a media attachment's, a media template element's."""
    message = body.get("message") if isinstance(body, Mapping) else None
    attachment = message.get("attachment") if isinstance(message, Mapping) else None
    if not isinstance(attachment, Mapping) or not isinstance(attachment.get("payload"), Mapping):
        return []
    payload = attachment["payload"]
    if attachment.get("type") in MEDIA_ATTACHMENT_TYPES and payload.get("attachment_id") is not None:
        return [(str(payload["attachment_id"]), str(attachment["type"]))]
    elements = payload.get("elements") if payload.get("template_type") == "media" else None
    return [(str(element["attachment_id"]), str(element.get("media_type")))
            for element in (elements if isinstance(elements, list) else [])
            if isinstance(element, Mapping) and element.get("attachment_id") is not None]


def upload_request_problem(message: Any, file: UploadedFile | None) -> tuple[str, str | None] | str:
    """The (type, url) an Attachment Upload API request asks for, or why Meta refuses it."""
    attachment = message.get("attachment") if isinstance(message, Mapping) else None
    if not isinstance(attachment, Mapping):
        return "param message[attachment] is required"
    kind = attachment.get("type")
    payload = attachment.get("payload")
    if kind not in MEDIA_ATTACHMENT_TYPES:
        return "param message[attachment][type] must be one of image, audio, video, file"
    if not isinstance(payload, Mapping):
        return "param message[attachment][payload] must be an object"
    url = payload.get("url")
    if file is None and url is None:
        return "a filedata part or payload.url is required"
    if file is not None and url is not None:
        return "only one of filedata and payload.url may be given"
    if url is not None:
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            return "payload.url must be an http(s) URL"
        return str(kind), url
    assert file is not None
    problem = upload_problem(str(kind), file.data)
    return problem if problem is not None else (str(kind), None)


# --- the User Profile API ----------------------------------------------------------------------------------------

SANDBOX_FIRST_NAMES = ("María", "José", "Lucía", "Andrés", "Gabriela", "Carlos", "Valeria", "Luis", "Daniela",
                       "Jorge", "Camila", "Diego")
SANDBOX_LAST_NAMES = ("Zambrano", "Pérez", "Guamán", "Andrade", "Cevallos", "Mora", "Chiriboga", "Vera", "Salazar",
                      "Quishpe", "Ordóñez", "Bravo")
PAGE_NODE_FIELDS = frozenset({"id", "name"})


def sandbox_page_name(page_id: str) -> str:
    """The name the sandbox gives a page (stable, so tests and `make run` see the same one)."""
    return f"Página de prueba …{page_id[-4:]}"


PROFILE_NODE_FIELDS = frozenset({"id", "name", "first_name", "last_name", "profile_pic", "locale", "timezone",
                                 "gender"})
NO_PERMISSION_PREFIX = "noperm"  # PSIDs the sandbox refuses as Meta does without the profile permission
NO_PROFILE_PREFIX = "noprofile"  # PSIDs of a Messenger account made with a phone number: no profile


def sandbox_profile(psid: str) -> dict[str, Any]:
    """The profile the sandbox serves for a PSID: a Spanish name chosen by the PSID's digest (always the same for one
    PSID), a picture URL that points nowhere real, and Latin American Spanish."""
    digest = hashlib.sha256(psid.encode("utf-8")).digest()
    first, last = SANDBOX_FIRST_NAMES[digest[0] % len(SANDBOX_FIRST_NAMES)], \
        SANDBOX_LAST_NAMES[digest[1] % len(SANDBOX_LAST_NAMES)]
    return {"id": psid, "name": f"{first} {last}", "first_name": first, "last_name": last,
            "profile_pic": f"https://sandbox.invalid/profile_pic/{psid}.jpg", "locale": "es_LA", "timezone": -5,
            "gender": "female" if digest[2] % 2 else "male"}


def no_profile_permission_error() -> GraphErrorSpec:
    """Meta's answer when the app or page may not read this person's profile (no Business Asset User Profile
    Access, or the person never opted in)."""
    return GraphErrorSpec("(#100) Insufficient permission to access user profile.", 100, error_subcode=2018247)


def no_profile_error() -> GraphErrorSpec:
    """Meta's answer for a Messenger account made with a phone number (Meta, User Profile API: "Profile
    Unavailable")."""
    return GraphErrorSpec("(#100) No profile available for this user.", 100, error_subcode=2018218)


def nonexisting_field_error(name: str) -> GraphErrorSpec:
    return GraphErrorSpec(f"(#100) Tried accessing nonexisting field ({name}) on node type (MessengerPageScopedID)",
                          100)


# --- comments: private replies and public replies ------------------------------------------------------------------

PRIVATE_REPLY_DAYS = 7  # Meta: "within 7 days from when the post or comment was created"


@dataclass(frozen=True)
class SandboxComment:
    """A comment the sandbox was told about (`/sandbox/comments` simulated it): whose it is and when it was made."""

    page_id: str
    author_psid: str
    created_at: datetime


def comment_id_of(body: Any) -> str | None:
    """The comment a Send API body answers privately (`recipient.comment_id`), if it is a private reply."""
    recipient = body.get("recipient") if isinstance(body, Mapping) else None
    if not isinstance(recipient, Mapping) or recipient.get("comment_id") is None:
        return None
    return str(recipient["comment_id"])


def already_replied_error() -> GraphErrorSpec:
    return GraphErrorSpec("(#10900) Activity already replied to", 10900)


def cannot_reply_error() -> GraphErrorSpec:
    """Meta's answer to a private reply it does not allow: a comment older than 7 days (or a commenter who cannot be
    messaged)."""
    return GraphErrorSpec("(#10903) This user can't reply to this activity", 10903, error_subcode=1893049)


def private_reply_error(
    comment: SandboxComment | None, already_replied: bool, now: datetime
) -> GraphErrorSpec | None:
    """Pure: Meta's refusal of a private reply to this comment now, or None."""
    if already_replied:
        return already_replied_error()
    if comment is not None and now - comment.created_at > timedelta(days=PRIVATE_REPLY_DAYS):
        return cannot_reply_error()
    return None


def comment_reply_error(body: Any) -> GraphErrorSpec | None:
    """Meta's check of a public reply's body: a non-empty `message`."""
    message = body.get("message") if isinstance(body, Mapping) else None
    if not isinstance(message, str) or not message.strip():
        return GraphErrorSpec("(#100) Missing message or attachment", 100)
    return None


def thread_control_error(body: Any, passing: bool) -> GraphErrorSpec | None:
    """Meta's checks on a handover call: a recipient id, and for a pass the numeric id of the target app."""
    recipient = body.get("recipient") if isinstance(body, Mapping) else None
    if not isinstance(recipient, Mapping) or not str(recipient.get("id") or "").strip():
        return GraphErrorSpec("(#100) The parameter recipient is required", 100)
    if passing and not str(body.get("target_app_id") or "").strip().isdigit():
        return GraphErrorSpec("(#100) param target_app_id must be a valid app ID", 100)
    return None


# --- injected failures ---------------------------------------------------------------------


@dataclass(frozen=True)
class FailureRule:
    """The next `remaining` sends that match fail with `error`."""

    error: GraphErrorSpec
    remaining: int = 1
    retry_after_seconds: float | None = None
    recipient_id: str | None = None
    page_id: str | None = None

    def matches(self, page_id: str, recipients: tuple[str, ...]) -> bool:
        if self.page_id is not None and self.page_id != page_id:
            return False
        return self.recipient_id is None or self.recipient_id in recipients

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.error.code,
            "error_subcode": self.error.error_subcode,
            "http_status": self.error.http_status,
            "message": self.error.message,
            "type": self.error.type,
            "count": self.remaining,
            "retry_after_seconds": self.retry_after_seconds,
            "recipient_id": self.recipient_id,
            "page_id": self.page_id,
        }


def take_failure(
    rules: tuple[FailureRule, ...], page_id: str, recipients: tuple[str, ...]
) -> tuple[FailureRule | None, tuple[FailureRule, ...]]:
    """The first rule matching this send, and the rules left once it is used up by one."""
    for index, rule in enumerate(rules):
        if rule.matches(page_id, recipients):
            left = replace(rule, remaining=rule.remaining - 1)
            rest = rules[:index] + ((left,) if left.remaining > 0 else ()) + rules[index + 1 :]
            return rule, rest
    return None, rules


# --- the state -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SandboxAnswer:
    status: int
    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _new_fbtrace_id() -> str:
    return secrets.token_urlsafe(8)


def _new_message_id() -> str:
    return "m_" + secrets.token_urlsafe(32)


class GraphSandbox:
    """In-memory Send API: records every request, answers as Meta would. Safe across threads and tasks."""

    def __init__(
        self, page_tokens: Mapping[str, str], *, production: bool = False, clock: Callable[[], datetime] = _utc_now
    ) -> None:
        """`page_tokens` are the pages it answers for (a token acts for its own page only); `production` is
        `Settings.is_production`, refused."""
        if production:
            raise SettingsError("the Graph API sandbox must never run with BOT_ENV=production")
        self._token_pages = pages_by_token(page_tokens)
        self._clock = clock
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = []
        self._failures: tuple[FailureRule, ...] = ()
        self._next_seq = 1
        self._latency_ms = 0
        self._comments: dict[str, SandboxComment] = {}  # comment id -> its page, author and time (simulated ones)
        self._privately_replied: set[str] = set()  # comment ids that got their one private reply
        self._posts: dict[str, tuple[str, str]] = {}  # post id -> (its page, its text): simulated posts
        self._profiles: dict[str, dict[str, Any]] = {}  # page id -> its Messenger profile's fields
        self._attachments: dict[str, tuple[str, str]] = {}  # attachment id -> (its page, its type)
        # `wait_for_records` callers: each (its loop, its event), set from whichever thread records a request.
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    # The Send API.

    def handle_send(
        self,
        *,
        version: str,
        node: str,
        path: str,
        token: str | None,
        body: Any,
        body_error: GraphErrorSpec | None = None,
    ) -> SandboxAnswer:
        """Answer one `POST /{version}/{node}/messages` and record it, accepted or not."""
        authorized = authorize(self._token_pages, node, token)
        page_id = authorized if isinstance(authorized, str) else node
        with self._lock:
            retry_after: float | None = None
            error = authorized if isinstance(authorized, GraphErrorSpec) else body_error or validate_send_request(body)
            if error is None:
                error = self._unknown_attachment(page_id, body)
            comment_id = comment_id_of(body) if error is None else None
            if comment_id is not None:
                comment = self._comments.get(comment_id)
                error = private_reply_error(comment, comment_id in self._privately_replied, self._clock())
            if error is None:
                rule, self._failures = take_failure(self._failures, page_id, recipient_values(body))
                if rule is not None:
                    error, retry_after = rule.error, rule.retry_after_seconds
            if error is not None:
                answer = SandboxAnswer(
                    error.http_status, error.to_body(_new_fbtrace_id()), error_headers(error, page_id, retry_after)
                )
            else:
                known = self._comments.get(comment_id) if comment_id is not None else None
                result: dict[str, Any] = {"recipient_id": known.author_psid if known else recipient_id_of(body)}
                if body.get("message") is not None:
                    result["message_id"] = _new_message_id()
                answer = SandboxAnswer(200, result)
                if comment_id is not None:
                    self._privately_replied.add(comment_id)
            self._record(version, page_id, path, body, answer)
        return answer

    def _unknown_attachment(self, page_id: str, body: Any) -> GraphErrorSpec | None:
        """An `attachment_id` this page never uploaded (or uploaded as another type): Meta cannot send it."""
        for attachment_id, kind in attachment_ids_of(body):
            known = self._attachments.get(attachment_id)
            if known is None or known[0] != page_id:
                return upload_failure_error(f"attachment_id {attachment_id[:40]} is not one of this page's uploads")
            if known[1] != kind:
                return upload_failure_error(f"attachment_id {attachment_id[:40]} was uploaded as {known[1]}")
        return None

    def handle_attachment_upload(
        self,
        *,
        version: str,
        node: str,
        path: str,
        token: str | None,
        body: Any,
        file: UploadedFile | None,
        body_error: GraphErrorSpec | None = None,
    ) -> SandboxAnswer:
        """Answer `POST /{version}/{node}/message_attachments` as Meta does and record it (without the file's bytes)."""
        authorized = authorize(self._token_pages, node, token)
        page_id = authorized if isinstance(authorized, str) else node
        message = body.get("message") if isinstance(body, Mapping) else None
        asked = upload_request_problem(message, file)
        recorded: dict[str, Any] = {"message": copy.deepcopy(message)}
        if file is not None:
            recorded["filedata"] = {"filename": file.filename, "content_type": file.content_type,
                                    "size": len(file.data), "sha256": hashlib.sha256(file.data).hexdigest()}
        with self._lock:
            error = authorized if isinstance(authorized, GraphErrorSpec) else body_error
            if error is None and isinstance(asked, str):
                error = upload_failure_error(asked)
            if error is not None:
                answer = SandboxAnswer(error.http_status, error.to_body(_new_fbtrace_id()))
            else:
                assert isinstance(asked, tuple)
                attachment_id = str(10**15 + secrets.randbelow(9 * 10**15))
                self._attachments[attachment_id] = (page_id, asked[0])
                answer = SandboxAnswer(200, {"attachment_id": attachment_id})
            self._record(version, page_id, path, recorded, answer)
        return answer

    def register_comment(self, comment_id: str, page_id: str, author_psid: str, created_at: datetime) -> None:
        """A comment the sandbox simulated: a private reply to it reaches `author_psid` (the PSID the sandbox chat
        talks as), and only within 7 days of `created_at`."""
        with self._lock:
            self._comments[comment_id] = SandboxComment(page_id, author_psid, created_at.astimezone(timezone.utc))

    def register_post(self, post_id: str, page_id: str, message: str) -> None:
        """A post the sandbox simulated: `GET /{post_id}?fields=message` answers its text to the page's token."""
        with self._lock:
            self._posts[post_id] = (page_id, message)

    def handle_get_post(self, *, post_id: str, token: str | None, fields: str | None) -> SandboxAnswer:
        """Answer `GET /{version}/{post_id}?fields=...` as Meta does: `{"id", "message"}` (no `message` for a post
        without text) to the token of the post's page; "Unsupported get request" (code 100, subcode 33) for a post
        it does not know or another page's token."""
        with self._lock:
            known = self._posts.get(post_id)
        page_id = known[0] if known is not None else "me"
        authorized = authorize(self._token_pages, page_id, token)
        if isinstance(authorized, GraphErrorSpec):  # no token, a bad one, or another page's
            error = unsupported_post_error(post_id, "get") if authorized.code == 100 else authorized
            return SandboxAnswer(error.http_status, error.to_body(_new_fbtrace_id()),
                                 error_headers(error, page_id, None))
        if known is None:
            error = unsupported_post_error(post_id, "get")
            return SandboxAnswer(error.http_status, error.to_body(_new_fbtrace_id()))
        wanted = {name.strip() for name in (fields or "").split(",") if name.strip()}
        body: dict[str, Any] = {"id": post_id}
        if "message" in wanted and known[1]:
            body["message"] = known[1]
        return SandboxAnswer(200, body)

    def handle_get_page(self, *, page_id: str, token: str | None, fields: str | None) -> SandboxAnswer:
        """Answer `GET /{version}/{page_id}?fields=name` as Meta does for a page: `{"id", "name"}` to a token of
        that page (the sandbox's pages are called "Página de prueba …<last 4 digits>"); Meta's errors for no token,
        a bad one, and a field the sandbox does not serve."""
        authorized = authorize(self._token_pages, page_id, token)
        error = authorized if isinstance(authorized, GraphErrorSpec) else None
        wanted = [name.strip() for name in (fields or "name").split(",") if name.strip()]
        if error is None:
            unknown = next((name for name in wanted if name not in PAGE_NODE_FIELDS), None)
            if unknown is not None:
                error = nonexisting_field_error(unknown[:80])
        if error is not None:
            return SandboxAnswer(error.http_status, error.to_body(_new_fbtrace_id()),
                                 error_headers(error, page_id, None))
        page = {"id": page_id, "name": sandbox_page_name(page_id)}
        return SandboxAnswer(200, {"id": page_id, **{name: page[name] for name in wanted}})

    def handle_user_profile(self, *, psid: str, token: str | None, fields: str | None) -> SandboxAnswer:
        """Answer `GET /{version}/{psid}?fields=...` as Meta's User Profile API does: the fields asked for (default
        first_name, last_name, profile_pic, id) to a page's token; Meta's errors for no token (104), a bad one
        (190), a field the node does not have, and the `noperm…`/`noprofile…` PSIDs. A numeric id the sandbox knows
        as a post is a post (`handle_get_post`)."""
        with self._lock:
            is_post = psid in self._posts
        if is_post:
            return self.handle_get_post(post_id=psid, token=token, fields=fields)
        if any(psid in pages for pages in self._token_pages.values()):
            return self.handle_get_page(page_id=psid, token=token, fields=fields)
        authorized = authorize(self._token_pages, "me", token)
        error = authorized if isinstance(authorized, GraphErrorSpec) else None
        wanted = [name.strip() for name in (fields or "first_name,last_name,profile_pic").split(",") if name.strip()]
        if error is None:
            unknown = next((name for name in wanted if name not in PROFILE_NODE_FIELDS), None)
            if unknown is not None:
                error = nonexisting_field_error(unknown[:80])
            elif psid.startswith(NO_PERMISSION_PREFIX):
                error = no_profile_permission_error()
            elif psid.startswith(NO_PROFILE_PREFIX):
                error = no_profile_error()
        if error is not None:
            page_id = authorized if isinstance(authorized, str) else "me"
            return SandboxAnswer(error.http_status, error.to_body(_new_fbtrace_id()),
                                 error_headers(error, page_id, None))
        profile = sandbox_profile(psid)
        return SandboxAnswer(200, {"id": psid, **{name: profile[name] for name in wanted}})

    def handle_comment_reply(
        self,
        *,
        version: str,
        comment_id: str,
        path: str,
        token: str | None,
        body: Any,
        body_error: GraphErrorSpec | None = None,
    ) -> SandboxAnswer:
        """Answer `POST /{version}/{comment_id}/comments` (the page's public reply) and record it: `{"id": ...}`, the
        new comment's id. The token must be the page's that has the comment, when the sandbox knows the comment."""
        with self._lock:
            known = self._comments.get(comment_id)
            node = known.page_id if known is not None else "me"
            authorized = authorize(self._token_pages, node, token)
            if isinstance(authorized, GraphErrorSpec) and known is not None and authorized.code == 100:
                authorized = unsupported_post_error(comment_id)
            page_id = authorized if isinstance(authorized, str) else node
            error = authorized if isinstance(authorized, GraphErrorSpec) else body_error or comment_reply_error(body)
            retry_after: float | None = None
            if error is None:
                rule, self._failures = take_failure(self._failures, page_id, (comment_id,))
                if rule is not None:
                    error, retry_after = rule.error, rule.retry_after_seconds
            if error is not None:
                answer = SandboxAnswer(
                    error.http_status, error.to_body(_new_fbtrace_id()), error_headers(error, page_id, retry_after)
                )
            else:
                post_part = comment_id.split("_", 1)[0]
                answer = SandboxAnswer(200, {"id": f"{post_part}_{secrets.randbelow(10**15)}"})
            self._record(version, page_id, path, body, answer)
        return answer

    def handle_thread_control(
        self,
        *,
        version: str,
        node: str,
        path: str,
        token: str | None,
        body: Any,
        body_error: GraphErrorSpec | None = None,
    ) -> SandboxAnswer:
        """Answer `POST /{version}/{node}/pass_thread_control` or `/take_thread_control`, recorded like sends."""
        authorized = authorize(self._token_pages, node, token)
        page_id = authorized if isinstance(authorized, str) else node
        with self._lock:
            error = authorized if isinstance(authorized, GraphErrorSpec) else body_error
            error = error or thread_control_error(body, passing=path.endswith("/pass_thread_control"))
            if error is not None:
                answer = SandboxAnswer(error.http_status, error.to_body(_new_fbtrace_id()))
            else:
                answer = SandboxAnswer(200, {"success": True})
            self._record(version, page_id, path, body, answer)
        return answer

    def handle_messenger_profile(
        self,
        *,
        method: str,
        version: str,
        node: str,
        path: str,
        token: str | None,
        body: Any,
        fields: Any = None,
        body_error: GraphErrorSpec | None = None,
    ) -> SandboxAnswer:
        """Answer `GET|POST|DELETE /{version}/{node}/messenger_profile` as Meta does, recorded like sends. POST sets
        the fields it names; DELETE removes `fields`; GET answers `{"data": [{...the `fields` set...}]}`."""
        authorized = authorize(self._token_pages, node, token)
        page_id = authorized if isinstance(authorized, str) else node
        with self._lock:
            profile = self._profiles.setdefault(page_id, {}) if isinstance(authorized, str) else {}
            error = authorized if isinstance(authorized, GraphErrorSpec) else body_error
            result: dict[str, Any] = {"result": "success"}
            if error is None and method == "POST":
                problem = profile_problem(body, has_get_started="get_started" in profile)
                error = to_graph_error(problem) if problem else None
                if error is None:
                    profile.update({name: copy.deepcopy(body[name]) for name in PROFILE_FIELDS if name in body})
            elif error is None:
                problem = fields_problem(fields)
                error = to_graph_error(problem) if problem else None
                if error is None and method == "DELETE":
                    for name in fields:
                        profile.pop(name, None)
                elif error is None:
                    found = {name: copy.deepcopy(profile[name]) for name in fields if name in profile}
                    result = {"data": [found] if found else []}
            if error is not None:
                answer = SandboxAnswer(error.http_status, error.to_body(_new_fbtrace_id()))
            else:
                answer = SandboxAnswer(200, result)
            recorded = body if method == "POST" else {"fields": fields}
            self._record(version, page_id, path, recorded, answer, method=method)
        return answer

    def messenger_profile(self, page_id: str) -> dict[str, Any]:
        """The page's Messenger profile as the sandbox keeps it (tests)."""
        with self._lock:
            return copy.deepcopy(self._profiles.get(page_id, {}))

    def _record(
        self, version: str, page_id: str, path: str, body: Any, answer: SandboxAnswer, method: str = "POST"
    ) -> None:
        record = {
            "seq": self._next_seq,
            "method": method,
            "received_at": self._clock().astimezone(timezone.utc).isoformat(timespec="microseconds"),
            "page_id": page_id,
            "version": version,
            "path": path,
            "recipient_id": answer.body.get("recipient_id") or recipient_id_of(body),
            "accepted": answer.status == 200,
            "status": answer.status,
            "body": copy.deepcopy(without_token(body)),
            "response": copy.deepcopy(answer.body),
        }
        self._next_seq += 1
        self._records.append(record)
        waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # its loop closed meanwhile: nobody waits there any more
                loop.call_soon_threadsafe(event.set)

    # What was sent.

    def requests(
        self, *, recipient_id: str | None = None, page_id: str | None = None, after_seq: int | None = None
    ) -> list[dict[str, Any]]:
        """Every recorded request, accepted or rejected, oldest first. `after_seq` skips to it by bisection (records
        are appended in `seq` order): a follower asking for what is new costs what is new, not the whole history."""
        with self._lock:
            start = 0 if after_seq is None else bisect.bisect_right(self._records, after_seq, key=_seq_of)
            records = self._records[start:]
        return [copy.deepcopy(record) for record in records if _matches(record, recipient_id, page_id, after_seq)]

    def sent(
        self, *, recipient_id: str | None = None, page_id: str | None = None, after_seq: int | None = None
    ) -> list[dict[str, Any]]:
        """The accepted requests only, oldest first."""
        return [
            record
            for record in self.requests(recipient_id=recipient_id, page_id=page_id, after_seq=after_seq)
            if record["accepted"]
        ]

    def last_seq(self) -> int:
        """The `seq` of the latest recorded request (0: none since the last clear)."""
        with self._lock:
            return self._latest_seq()

    def _latest_seq(self) -> int:  # under `_lock`
        return self._records[-1]["seq"] if self._records else 0

    async def wait_for_records(self, after_seq: int, timeout: float) -> bool:
        """Wait until a request with `seq` above `after_seq` is recorded, at most `timeout` seconds (a long poll: a
        follower asks again at once, and a quiet sandbox answers nothing until something happens). True when there
        is one."""
        event = asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        with self._lock:
            if self._latest_seq() > after_seq:
                return True
            self._waiters.append(waiter)
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        return self.last_seq() > after_seq

    def clear_records(self) -> int:
        """Forget every recorded request; `seq` keeps counting up."""
        with self._lock:
            cleared = len(self._records)
            self._records = []
        return cleared

    # Injected failures and latency.

    def add_failure(self, rule: FailureRule) -> None:
        if rule.remaining < 1:
            raise ValueError("a failure rule must apply to at least one send")
        with self._lock:
            self._failures = self._failures + (rule,)

    def pending_failures(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.to_dict() for rule in self._failures]

    def clear_failures(self) -> int:
        with self._lock:
            cleared = len(self._failures)
            self._failures = ()
        return cleared

    @property
    def latency_ms(self) -> int:
        return self._latency_ms

    def set_latency_ms(self, ms: int) -> None:
        if not 0 <= ms <= MAX_LATENCY_MS:
            raise ValueError(f"latency must be between 0 and {MAX_LATENCY_MS} ms")
        self._latency_ms = ms

    def reset(self) -> None:
        self.clear_records()
        with self._lock:
            self._comments, self._privately_replied, self._posts = {}, set(), {}
            self._attachments = {}
        with self._lock:
            self._profiles = {}
        self.clear_failures()
        self.set_latency_ms(0)


def _seq_of(record: Mapping[str, Any]) -> int:
    return int(record["seq"])


def _matches(record: Mapping[str, Any], recipient_id: str | None, page_id: str | None, after_seq: int | None) -> bool:
    if page_id is not None and record["page_id"] != page_id:
        return False
    if after_seq is not None and record["seq"] <= after_seq:
        return False
    if recipient_id is None:
        return True
    return recipient_id == record["recipient_id"] or recipient_id in recipient_values(record["body"])


# --- HTTP ----------------------------------------------------------------------------------


class TextSegment(Convertor[str]):
    """A path segment kept as its text; a subclass says which text by its `regex`."""

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


class GraphVersionConvertor(TextSegment):
    """Only `v21.0`-like segments reach the Send API route; other paths stay free for the app."""

    regex = r"v[0-9]+\.[0-9]+"


class GraphNodeConvertor(TextSegment):
    """A numeric page id or `me`."""

    regex = r"me|[0-9]+"


class GraphObjectConvertor(TextSegment):
    """A Graph object id: a number, or Meta's compound ids (`<post>_<comment>`)."""

    regex = r"[0-9]+(?:_[0-9]+)+|[0-9]+"


class GraphPsidConvertor(TextSegment):
    """A PSID: letters, digits and `-` (Meta's are digits; the sandbox chat's are names like `ana-4`), never `me` and
    never with `_` (`<digits>_<digits>` is a post id: `get_post`)."""

    regex = r"(?!me$)[A-Za-z0-9-]{1,64}"


register_url_convertor("graph_version", GraphVersionConvertor())
register_url_convertor("graph_psid", GraphPsidConvertor())
register_url_convertor("graph_object", GraphObjectConvertor())
register_url_convertor("graph_node", GraphNodeConvertor())

router = APIRouter()


def _sandbox(request: Request) -> GraphSandbox:
    return request.app.state.sandbox


def _json(answer: SandboxAnswer) -> JSONResponse:
    return JSONResponse(answer.body, status_code=answer.status, headers=dict(answer.headers))


@router.post("/{version:graph_version}/{node:graph_node}/messages", include_in_schema=False)
async def send_api(request: Request, version: str, node: str) -> JSONResponse:
    """Meta's Send API: `POST /{version}/{page_id}/messages` and `POST /{version}/me/messages`."""
    sandbox = _sandbox(request)
    if sandbox.latency_ms:
        await asyncio.sleep(sandbox.latency_ms / 1000)
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() == "multipart/form-data":
        async with request.form() as form:  # closed: its spooled files are released
            body: Any = parse_form_fields(
                (name, value) for name, value in form.multi_items() if isinstance(value, str)
            )
        body_error = None
    else:
        body, body_error = parse_body(content_type, await request.body())
    token = access_token_of(request.query_params, request.headers.get("authorization"), body)
    answer = sandbox.handle_send(
        version=version, node=node, path=request.url.path, token=token, body=body, body_error=body_error
    )
    return _json(answer)


@router.post("/{version:graph_version}/{node:graph_node}/message_attachments", include_in_schema=False)
async def attachment_upload(request: Request, version: str, node: str) -> JSONResponse:
    """Meta's Attachment Upload API: multipart `message` (JSON) + `filedata`, or JSON with `payload.url`."""
    sandbox = _sandbox(request)
    content_type = request.headers.get("content-type", "")
    file: UploadedFile | None = None
    body_error: GraphErrorSpec | None = None
    if content_type.split(";", 1)[0].strip().lower() == "multipart/form-data":
        async with request.form() as form:  # closed: its spooled files are released
            body: Any = parse_form_fields(
                (name, value) for name, value in form.multi_items() if isinstance(value, str)
            )
            part = form.get("filedata")
            if part is not None and not isinstance(part, str):
                file = UploadedFile(part.filename or "", part.content_type or "", await part.read())
    else:
        body, body_error = parse_body(content_type, await request.body())
    token = access_token_of(request.query_params, request.headers.get("authorization"), body)
    answer = sandbox.handle_attachment_upload(
        version=version, node=node, path=request.url.path, token=token, body=body, file=file, body_error=body_error
    )
    return _json(answer)


@router.post("/{version:graph_version}/{node:graph_node}/pass_thread_control", include_in_schema=False)
@router.post("/{version:graph_version}/{node:graph_node}/take_thread_control", include_in_schema=False)
async def thread_control(request: Request, version: str, node: str) -> JSONResponse:
    """Meta's handover protocol: `{"success": true}`, or Meta's error for a missing token, recipient or app id."""
    body, body_error = parse_body(request.headers.get("content-type", ""), await request.body())
    token = access_token_of(request.query_params, request.headers.get("authorization"), body)
    answer = _sandbox(request).handle_thread_control(
        version=version, node=node, path=request.url.path, token=token, body=body, body_error=body_error
    )
    return _json(answer)


def profile_fields_of(value: Any) -> Any:
    """`fields` as a GET or DELETE gives it: a JSON array, a comma-separated string, or a list already."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError:
                return value
        return [name.strip() for name in text.split(",") if name.strip()] if text else None
    return value


@router.get("/{version:graph_version}/{node:graph_node}/messenger_profile", include_in_schema=False)
@router.post("/{version:graph_version}/{node:graph_node}/messenger_profile", include_in_schema=False)
@router.delete("/{version:graph_version}/{node:graph_node}/messenger_profile", include_in_schema=False)
async def messenger_profile(request: Request, version: str, node: str) -> JSONResponse:
    """Meta's Messenger Profile API: set (POST), read (GET `?fields=`) and delete (DELETE `{"fields": [...]}`)
    the page's Get Started button, greeting, ice breakers and persistent menu."""
    body, body_error = parse_body(request.headers.get("content-type", ""), await request.body())
    token = access_token_of(request.query_params, request.headers.get("authorization"), body)
    fields = request.query_params.get("fields")
    if fields is None and isinstance(body, Mapping):
        fields = body.get("fields")
    answer = _sandbox(request).handle_messenger_profile(
        method=request.method, version=version, node=node, path=request.url.path, token=token,
        body=without_token(body), fields=profile_fields_of(fields), body_error=body_error,
    )
    return _json(answer)


@router.get("/{version:graph_version}/{psid:graph_psid}", include_in_schema=False)
async def user_profile(request: Request, version: str, psid: str) -> JSONResponse:
    """Meta's User Profile API: `GET /{version}/{psid}?fields=first_name,last_name,profile_pic,locale`."""
    token = access_token_of(request.query_params, request.headers.get("authorization"), None)
    return _json(_sandbox(request).handle_user_profile(psid=psid, token=token,
                                                       fields=request.query_params.get("fields")))


@router.get("/{version:graph_version}/{post_id:graph_object}", include_in_schema=False)
async def get_post(request: Request, version: str, post_id: str) -> JSONResponse:
    """Meta's `GET /{version}/{post_id}?fields=message`: a post's text (the comment processor's rules by post text)."""
    token = access_token_of(request.query_params, request.headers.get("authorization"), None)
    return _json(_sandbox(request).handle_get_post(post_id=post_id, token=token,
                                                   fields=request.query_params.get("fields")))


@router.post("/{version:graph_version}/{comment_id:graph_object}/comments", include_in_schema=False)
async def comment_reply(request: Request, version: str, comment_id: str) -> JSONResponse:
    """Meta's `POST /{version}/{comment_id}/comments`: the page's public reply under a comment."""
    body, body_error = parse_body(request.headers.get("content-type", ""), await request.body())
    token = access_token_of(request.query_params, request.headers.get("authorization"), body)
    answer = _sandbox(request).handle_comment_reply(
        version=version, comment_id=comment_id, path=request.url.path, token=token, body=without_token(body),
        body_error=body_error,
    )
    return _json(answer)


class FailureIn(BaseModel):
    code: int
    error_subcode: int | None = None
    http_status: int | None = Field(default=None, ge=400, le=599)
    message: str | None = None
    type: str | None = None
    count: int = Field(default=1, ge=1, le=100_000)
    retry_after_seconds: float | None = Field(default=None, ge=0)
    recipient_id: str | None = None
    page_id: str | None = None

    def to_rule(self) -> FailureRule:
        error = graph_error(
            self.code, self.error_subcode, message=self.message, http_status=self.http_status, error_type=self.type
        )
        return FailureRule(error, self.count, self.retry_after_seconds, self.recipient_id, self.page_id)


class LatencyIn(BaseModel):
    ms: int = Field(ge=0, le=MAX_LATENCY_MS)


MAX_WAIT_SECONDS = 30.0


@router.get("/sandbox/sent")
async def list_sent(
    request: Request,
    recipient_id: str | None = None,
    page_id: str | None = None,
    after: int | None = None,
    wait: float | None = Query(None, ge=0, le=MAX_WAIT_SECONDS, allow_inf_nan=False),
) -> list[dict[str, Any]]:
    """Accepted Send API requests, oldest first, each with its full request body. With `after` and `wait` (seconds),
    a long poll: the answer waits until an accepted request after `after` that matches the filters is recorded, at
    most `wait` (then it is empty). Other requests recorded meanwhile (rejected ones, other recipients) do not end
    the wait: the caller could not move `after` past them, and would ask again at once."""
    sandbox = _sandbox(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (wait or 0.0)
    while True:
        latest = sandbox.last_seq()  # read first: a send recorded after it is either listed below or ends the wait
        records = sandbox.sent(recipient_id=recipient_id, page_id=page_id, after_seq=after)
        remaining = deadline - loop.time()
        if records or after is None or remaining <= 0:
            return records
        await sandbox.wait_for_records(max(after, latest), remaining)


@router.get("/sandbox/requests")
async def list_requests(
    request: Request, recipient_id: str | None = None, page_id: str | None = None, after: int | None = None
) -> list[dict[str, Any]]:
    """Every Send API request, rejected ones included, oldest first."""
    return _sandbox(request).requests(recipient_id=recipient_id, page_id=page_id, after_seq=after)


@router.delete("/sandbox/sent")
async def clear_sent(request: Request) -> dict[str, int]:
    """Forget every recorded request (accepted and rejected)."""
    return {"cleared": _sandbox(request).clear_records()}


@router.post("/sandbox/failures")
async def add_failure(request: Request, failure: FailureIn) -> dict[str, Any]:
    rule = failure.to_rule()
    sandbox = _sandbox(request)
    sandbox.add_failure(rule)
    return {"added": rule.to_dict(), "pending": sandbox.pending_failures()}


@router.get("/sandbox/failures")
async def list_failures(request: Request) -> list[dict[str, Any]]:
    return _sandbox(request).pending_failures()


@router.delete("/sandbox/failures")
async def clear_failures(request: Request) -> dict[str, int]:
    return {"cleared": _sandbox(request).clear_failures()}


@router.post("/sandbox/latency")
async def set_latency(request: Request, latency: LatencyIn) -> dict[str, int]:
    _sandbox(request).set_latency_ms(latency.ms)
    return {"ms": latency.ms}


@router.get("/sandbox/latency")
async def get_latency(request: Request) -> dict[str, int]:
    return {"ms": _sandbox(request).latency_ms}


@router.post("/sandbox/reset")
async def reset(request: Request) -> dict[str, str]:
    _sandbox(request).reset()
    return {"status": "reset"}


__all__ = [
    "FailureRule",
    "GraphSandbox",
    "SandboxAnswer",
    "UploadedFile",
    "attachment_ids_of",
    "authorize",
    "error_headers",
    "graph_error",
    "parse_body",
    "recipient_id_of",
    "router",
    "sandbox_psid",
    "take_failure",
    "upload_failure_error",
]
