"""Files and quick replies in an agent's reply.

- `POST /api/console/conversations/{conversation_id}/attachment` (agents): a multipart `file` (+ optional `caption`
  and `idempotency_key`). The request guard refuses a body over `ATTACHMENT_BODY_LIMIT` (413) from its
  Content-Length, before one byte is read; the file's type is read from its bytes (`meta.attachments.sniff`), never
  from its name. The file is kept under `<data_dir>/console_attachments/` by its SHA-256 (the transcript's thumbnail
  or link), uploaded once per page with Meta's Attachment Upload API (`GraphClient.upload_attachment`, reusable: the
  same file again reuses its `attachment_id` for `REUSE_ATTACHMENT_ID_FOR`), then sent through the outbox as the
  agent (`HandoffService.reply_as_agent`: the same window rules as a text reply).
- `GET /api/console/attachments/{file_id}` (agents): a file sent from the console, as the transcript shows it (the
  console's CSP admits images from the app only).
- The JSON reply (`console/routes.py`) takes `attachment: {"url": "https://…", "type": "image"}` and
  `quick_replies: [{"title", "payload"}]` (`UrlAttachmentIn`, `QuickReplyIn`, `url_attachment`, `quick_replies_of`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from hashlib import sha256
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, field_validator
from starlette.concurrency import run_in_threadpool

from console.auth import Principal, authenticator_of, require_role
from console.parts import ConsoleError
from handoff.model import HandoffService, split_conversation_id
from meta.attachments import ACCEPTED_ES, SniffedFile, megabytes, sniff
from meta.errors import GraphError, RateLimitedError, TokenInvalidError, TransientGraphError
from meta.limits import ATTACHMENT_MAX_BYTES, PAYLOAD_MAX_CHARS, QUICK_REPLIES_MAX, QUICK_REPLY_TITLE_MAX_CHARS

log = logging.getLogger(__name__)

# The console's cap on one file: below Meta's 25 MB (ATTACHMENT_MAX_BYTES) so an upload stays quick on a small
# server; Messenger shows larger videos badly on phones anyway.
CONSOLE_ATTACHMENT_MAX_BYTES = 10 * 1024 * 1024
assert CONSOLE_ATTACHMENT_MAX_BYTES <= ATTACHMENT_MAX_BYTES
ATTACHMENT_ENVELOPE_BYTES = 64 * 1024  # boundaries, part headers, the caption and the CSRF field around the file
ATTACHMENT_BODY_LIMIT = CONSOLE_ATTACHMENT_MAX_BYTES + ATTACHMENT_ENVELOPE_BYTES
ATTACHMENT_PATH = re.compile(r"^/api/console/conversations/[^/]+/attachment$")  # the request guard's cap applies
REUSE_ATTACHMENT_ID_FOR = timedelta(days=30)  # Meta's ids last 90 days; an older one is uploaded again
CAPTION_MAX_CHARS = 2000
FILENAME_MAX_CHARS = 120
URL_MAX_CHARS = 2000
FILE_ID = re.compile(r"^[0-9a-f]{64}$")
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,100}$")  # as the text reply's (console/routes.py)
KIND_ES = {"image": "imagen", "video": "video", "audio": "audio", "file": "archivo"}

AGENTS = ("admin", "agent")
Agent = Annotated[Principal, Depends(require_role(*AGENTS))]


# --- request bodies (the JSON reply's new fields) ----------------------------------------------------------------


class QuickReplyIn(BaseModel):
    """A quick reply under the agent's message: a title of at most 20 characters and a payload (the title when
    none is given) of at most 1000, as Meta allows."""

    title: str = Field(min_length=1, max_length=QUICK_REPLY_TITLE_MAX_CHARS)
    payload: str | None = Field(default=None, min_length=1, max_length=PAYLOAD_MAX_CHARS)

    @field_validator("title")
    @classmethod
    def _title_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("el título de una respuesta rápida no puede estar vacío")
        return value.strip()


class UrlAttachmentIn(BaseModel):
    """A file Meta fetches from a public https URL (reusable)."""

    url: str = Field(min_length=9, max_length=URL_MAX_CHARS)
    type: Literal["image", "video", "audio", "file"] = "image"


QuickReplies = Annotated[list[QuickReplyIn], Field(max_length=QUICK_REPLIES_MAX)]


def quick_replies_of(quick_replies: list[QuickReplyIn] | None) -> list[dict[str, Any]]:
    """Messenger's quick replies for the reply's last message."""
    return [{"content_type": "text", "title": reply.title, "payload": reply.payload or reply.title}
            for reply in quick_replies or []]


def url_attachment(attachment: UrlAttachmentIn) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Messenger's attachment, what the transcript shows) for a file by URL; https only, a host, no spaces."""
    url = attachment.url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if (parts is None or parts.scheme != "https" or not parts.hostname or any(c.isspace() for c in url)
            or parts.username or parts.password):
        raise ConsoleError("attachment_invalid",
                           "La dirección del archivo debe ser un enlace https:// público (sin espacios ni usuario).")
    message = {"type": attachment.type, "payload": {"url": url, "is_reusable": True}}
    return message, {"attachment": {"type": attachment.type, "url": url}}


# --- the files sent from the console -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredFile:
    file_id: str
    kind: str
    content_type: str
    filename: str
    size: int


class AttachmentFiles:
    """Files sent from the console, by SHA-256: `<id>` (the bytes) and `<id>.json` (type, name, size and the
    attachment id Meta gave each page). Written to a temporary file and renamed: a reader never sees half."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _meta_path(self, file_id: str) -> Path:
        return self.root / f"{file_id}.json"

    def _read_meta(self, file_id: str) -> dict[str, Any] | None:
        try:
            loaded = json.loads(self._meta_path(file_id).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return loaded if isinstance(loaded, dict) else None

    def _write(self, path: Path, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def save(self, data: bytes, sniffed: SniffedFile, filename: str) -> StoredFile:
        file_id = sha256(data).hexdigest()
        meta = self._read_meta(file_id)
        if meta is None or not (self.root / file_id).exists():
            self._write(self.root / file_id, data)
            meta = {"kind": sniffed.kind, "content_type": sniffed.content_type, "filename": filename,
                    "size": len(data), "uploads": {}}
            self._write(self._meta_path(file_id), json.dumps(meta, ensure_ascii=False).encode("utf-8"))
        return StoredFile(file_id, sniffed.kind, sniffed.content_type, filename, len(data))

    def get(self, file_id: str) -> tuple[StoredFile, bytes] | None:
        if not FILE_ID.match(file_id):
            return None
        meta = self._read_meta(file_id)
        try:
            data = (self.root / file_id).read_bytes()
        except OSError:
            return None
        if meta is None:
            return None
        return StoredFile(file_id, str(meta.get("kind")), str(meta.get("content_type")), str(meta.get("filename")),
                          len(data)), data

    def attachment_id(self, file_id: str, page_id: str, now: datetime) -> str | None:
        """The id Meta gave this page for this file, while it is young enough to reuse."""
        upload = ((self._read_meta(file_id) or {}).get("uploads") or {}).get(page_id)
        if not isinstance(upload, Mapping):
            return None
        try:
            at = datetime.fromisoformat(str(upload.get("at")))
        except ValueError:
            return None
        return str(upload["attachment_id"]) if now - at < REUSE_ATTACHMENT_ID_FOR and upload.get("attachment_id") \
            else None

    def remember_upload(self, file_id: str, page_id: str, attachment_id: str, now: datetime) -> None:
        meta = self._read_meta(file_id)
        if meta is None:
            return
        uploads = meta.setdefault("uploads", {})
        uploads[page_id] = {"attachment_id": attachment_id, "at": now.isoformat()}
        self._write(self._meta_path(file_id), json.dumps(meta, ensure_ascii=False).encode("utf-8"))


def files_of(request: Request) -> AttachmentFiles:
    files: AttachmentFiles | None = getattr(request.app.state, "console_attachments", None)
    if files is None:
        files = AttachmentFiles(Path(request.app.state.settings.data_dir) / "console_attachments")
        request.app.state.console_attachments = files
    return files


def clean_filename(name: str | None, sniffed: SniffedFile) -> str:
    """A name to show and to give Meta: no path, no control characters, the extension the bytes say."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in unicodedata.normalize("NFC", base) if unicodedata.category(c)[0] != "C").strip()
    stem = base.rsplit(".", 1)[0].strip(" .") if "." in base else base.strip(" .")
    stem = stem[:FILENAME_MAX_CHARS] or "archivo"
    return f"{stem}.{sniffed.extension}"


def file_view(stored: StoredFile) -> dict[str, Any]:
    """What the transcript keeps of a file sent (Rasa's bot `data.attachment`)."""
    return {"attachment": {"type": stored.kind, "file_id": stored.file_id, "filename": stored.filename,
                           "content_type": stored.content_type, "size": stored.size,
                           "url": f"/api/console/attachments/{stored.file_id}"}}


def graph_failure(exc: GraphError) -> ConsoleError:
    if isinstance(exc, RateLimitedError):
        return ConsoleError("facebook_rate_limited", "Facebook pidió esperar antes de subir otro archivo; "
                                                     "intente en un momento.")
    if isinstance(exc, TokenInvalidError):
        return ConsoleError("page_token_invalid", "El token de la página ya no es válido; un administrador debe "
                                                  "renovarlo. No se envió nada.")
    if isinstance(exc, TransientGraphError):
        return ConsoleError("facebook_unavailable", "Facebook no respondió al subir el archivo; intente de nuevo. "
                                                    "No se envió nada.")
    return ConsoleError("facebook_refused", f"Facebook no aceptó el archivo ({str(exc)[:200]}). No se envió nada.")


async def upload_to_page(request: Request, page_id: str, file: UploadFile,
                         kinds: frozenset[str] | None = None) -> tuple[StoredFile, str]:
    """A file from the console, checked (size, type read from its bytes, one of `kinds` when given), kept by its
    SHA-256 and uploaded once to the page with the Attachment Upload API: (the stored file, Meta's attachment id).
    The agent's reply and a broadcast's image (console/broadcasts.py) both upload through here."""
    data = await file.read(CONSOLE_ATTACHMENT_MAX_BYTES + 1)
    if len(data) > CONSOLE_ATTACHMENT_MAX_BYTES:
        raise ConsoleError("file_too_large", f"El archivo supera {megabytes(CONSOLE_ATTACHMENT_MAX_BYTES)}.",
                           limit_bytes=CONSOLE_ATTACHMENT_MAX_BYTES)
    if not data:
        raise ConsoleError("empty_file", "El archivo está vacío.")
    sniffed = sniff(data)
    if sniffed is None:
        raise ConsoleError("unsupported_file", f"Ese tipo de archivo no se puede enviar. Se admiten: {ACCEPTED_ES}. "
                                               "El tipo se reconoce por el contenido, no por el nombre.")
    if kinds is not None and sniffed.kind not in kinds:
        wanted = " o ".join(KIND_ES.get(kind, kind) for kind in sorted(kinds))
        raise ConsoleError("unsupported_file", f"Aquí solo se puede subir un archivo de tipo {wanted}; este es "
                                               f"{KIND_ES.get(sniffed.kind, sniffed.kind)}.")
    if page_id not in request.app.state.settings.page_tokens:
        raise ConsoleError("unknown_page", f"La página {page_id} no está configurada.")
    files = files_of(request)
    stored = await run_in_threadpool(files.save, data, sniffed, clean_filename(file.filename, sniffed))
    now = authenticator_of(request).clock()
    attachment_id = await run_in_threadpool(files.attachment_id, stored.file_id, page_id, now)
    if attachment_id is None:
        graph = getattr(request.app.state, "graph", None)
        if graph is None:
            raise ConsoleError("facebook_unavailable", "El envío a Facebook no está disponible; intente en un momento.")
        try:
            attachment_id = await graph.upload_attachment(page_id, sniffed.kind, stored.filename, sniffed.content_type,
                                                          data)
        except GraphError as exc:
            log.warning("attachment upload refused: %s", exc, extra={"page_id": page_id, "kind": sniffed.kind})
            raise graph_failure(exc) from exc
        await run_in_threadpool(files.remember_upload, stored.file_id, page_id, attachment_id, now)
    return stored, attachment_id


# --- routes ------------------------------------------------------------------------------------------------------

router = APIRouter(prefix="/api/console", tags=["console"])


def _handoff(request: Request) -> HandoffService:
    service = getattr(request.app.state, "handoff", None)
    if service is None:
        raise ConsoleError("handoff_unavailable",
                           "El servicio de atención por personas no está disponible; intente en un momento.")
    return service  # type: ignore[no-any-return]


@router.post("/conversations/{conversation_id}/attachment")
async def send_attachment(
    conversation_id: str,
    request: Request,
    principal: Agent,
    file: Annotated[UploadFile, File(description="La imagen o el archivo (se reconoce por su contenido)")],
    caption: Annotated[str, Form(max_length=CAPTION_MAX_CHARS)] = "",
    idempotency_key: Annotated[str | None, Form(pattern=IDEMPOTENCY_KEY.pattern)] = None,
) -> JSONResponse:
    """Send an image or a file to the customer: JPEG, PNG, GIF, WebP, PDF, Word, Excel, MP4, MP3, M4A or OGG, at
    most 10 MB, recognised by its bytes. An optional caption goes first as a text message. Through the outbox as
    the agent, with the same window rules as a text reply (422 with the policy's reason outside them)."""
    service = _handoff(request)
    page_id, _user_id = split_conversation_id(conversation_id)
    key = request.headers.get("idempotency-key") or idempotency_key
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise ConsoleError("invalid_idempotency_key",
                           "La cabecera Idempotency-Key debe tener de 8 a 100 letras, números, «.», «_», «:» o «-».")
    stored, attachment_id = await upload_to_page(request, page_id, file)
    queued = await service.reply_as_agent(
        conversation_id, principal.username, caption.strip(),
        idempotency_key=f"console:{principal.username}:{conversation_id}:{key}" if key else None,
        attachment={"type": stored.kind, "payload": {"attachment_id": attachment_id}},
        shown=file_view(stored),
    )
    repeated = bool(queued.get("repeated"))
    log.info("console attachment queued", extra={"conversation_id": conversation_id, "agent": principal.username,
                                                 "kind": stored.kind, "size": stored.size, "repeated": repeated})
    return JSONResponse({"queued": True, "repeated": repeated, "text": queued.get("text"),
                         "attachment_id": attachment_id, **file_view(stored), "outbox": queued},
                        status_code=200 if repeated else 201)


@router.get("/attachments/{file_id}")
async def get_attachment(file_id: str, request: Request, principal: Agent) -> Response:
    """A file sent from the console: images inline (the transcript's thumbnail), other files as a download."""
    found = await run_in_threadpool(files_of(request).get, file_id)
    if found is None:
        raise ConsoleError("attachment_not_found", "No existe ese archivo.")
    stored, data = found
    disposition = "inline" if stored.kind == "image" else "attachment"
    ascii_name = stored.filename.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return Response(data, media_type=stored.content_type,
                    headers={"Content-Disposition": f'{disposition}; filename="{ascii_name}"',
                             "Cache-Control": "private, max-age=86400"})


def install(app: FastAPI) -> None:
    app.include_router(router)


__all__ = ["ATTACHMENT_BODY_LIMIT", "ATTACHMENT_PATH", "AttachmentFiles", "CONSOLE_ATTACHMENT_MAX_BYTES",
           "QuickReplies", "QuickReplyIn", "UrlAttachmentIn", "clean_filename", "file_view", "install",
           "quick_replies_of", "upload_to_page", "url_attachment"]
