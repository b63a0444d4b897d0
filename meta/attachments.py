"""What a file is, read from its bytes: the files an agent may send on Messenger, and Meta's attachment limits.

Meta's Attachment Upload API (`POST /{version}/me/message_attachments`, multipart `message` + `filedata`) and the
Send API's uploads take an `image`, `audio`, `video` or `file` of at most 25 MB; the declared type must match the
file (Meta answers "(#100) Upload attachment failure" when it does not). The file's name and the browser's
Content-Type are never trusted: `sniff` reads the first bytes (and, for Office files, the zip's table of contents).

Pure functions, standard library only; the console (what an agent may send) and the Graph sandbox (what Meta
accepts) both use them, so they never disagree.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

from meta.limits import ATTACHMENT_MAX_BYTES, MEDIA_ATTACHMENT_TYPES

MEDIA_KINDS = tuple(sorted(MEDIA_ATTACHMENT_TYPES))  # Messenger's attachment types for a file


@dataclass(frozen=True)
class SniffedFile:
    """A file recognised by its bytes: Messenger's attachment type, its MIME type, the usual extension and how the
    console names it in Spanish."""

    kind: str  # "image" | "audio" | "video" | "file"
    content_type: str
    extension: str
    label_es: str


JPEG = SniffedFile("image", "image/jpeg", "jpg", "imagen JPEG")
PNG = SniffedFile("image", "image/png", "png", "imagen PNG")
GIF = SniffedFile("image", "image/gif", "gif", "imagen GIF")
WEBP = SniffedFile("image", "image/webp", "webp", "imagen WebP")
PDF = SniffedFile("file", "application/pdf", "pdf", "documento PDF")
DOCX = SniffedFile("file", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx",
                   "documento de Word")
XLSX = SniffedFile("file", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx",
                   "hoja de Excel")
MP4 = SniffedFile("video", "video/mp4", "mp4", "video MP4")
M4A = SniffedFile("audio", "audio/mp4", "m4a", "audio M4A")
MP3 = SniffedFile("audio", "audio/mpeg", "mp3", "audio MP3")
OGG = SniffedFile("audio", "audio/ogg", "ogg", "audio OGG")

ACCEPTED: tuple[SniffedFile, ...] = (JPEG, PNG, GIF, WEBP, PDF, DOCX, XLSX, MP4, M4A, MP3, OGG)
ACCEPTED_ES = "imágenes JPEG, PNG, GIF o WebP; PDF; Word (.docx); Excel (.xlsx); video MP4; audio MP3, M4A u OGG"

SNIFF_BYTES = 64  # enough for every signature below (zip contents are read from the whole file)
ZIP_MAX_ENTRIES = 10_000  # an Office file lists a few dozen; more is not one


def sniff(data: bytes) -> SniffedFile | None:
    """The accepted file type these bytes are, or None (an executable, a script, a zip that is not Word or Excel,
    an empty or truncated file, anything else)."""
    head = data[:SNIFF_BYTES]
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"OggS"):
        return OGG
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return M4A if head[8:12] in (b"M4A ", b"M4B ") else MP4
    if head.startswith(b"ID3") or _is_mpeg_audio_frame(head):
        return MP3
    if head.startswith(b"PK\x03\x04"):
        return _office_file(data)
    return None


def _is_mpeg_audio_frame(head: bytes) -> bool:
    """An MPEG audio frame header (an MP3 without an ID3 tag): 11 sync bits, a valid version, layer and bitrate."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    bitrate = head[2] >> 4
    return version != 0b01 and layer != 0b00 and bitrate not in (0b0000, 0b1111)


def _office_file(data: bytes) -> SniffedFile | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if len(infos) > ZIP_MAX_ENTRIES:
                return None
            names = {info.filename for info in infos}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        return None
    if "[Content_Types].xml" not in names:
        return None
    if "word/document.xml" in names:
        return DOCX
    if "xl/workbook.xml" in names:
        return XLSX
    return None


def upload_problem(kind: str, data: bytes) -> str | None:
    """Why Meta would refuse `data` uploaded as `kind` (None: it would take it): a type it does not know, an empty
    or too large file, or an image/audio/video whose bytes are not one."""
    if kind not in MEDIA_KINDS:
        return f"type must be one of {', '.join(MEDIA_KINDS)}"
    if not data:
        return "the file is empty"
    if len(data) > ATTACHMENT_MAX_BYTES:
        return f"the file is {len(data)} bytes; the limit is {ATTACHMENT_MAX_BYTES}"
    if kind == "file":
        return None
    found = sniff(data)
    if found is None or found.kind != kind:
        return f"the file is not {'an' if kind in ('image', 'audio') else 'a'} {kind}"
    return None


def megabytes(size: int) -> str:
    """A size as the console writes it: «10 MB», «2,5 MB»."""
    value = size / (1024 * 1024)
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    return text.replace(".", ",") + " MB"
