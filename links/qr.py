"""QR codes of m.me links, as PNG and SVG bytes (segno: pure Python, no network).

Error correction M (15 % of the code may be dirty or covered, e.g. a logo sticker or a worn table card) unless the
URL only fits with less; a quiet zone of 4 modules, as the QR standard asks, so phones find the code on any
background. PNG at 10 pixels per module (about 330 px for a short link: sharp on a flyer); SVG scales freely.
"""

from __future__ import annotations

import io

import segno

PNG_SCALE = 10
SVG_SCALE = 10
BORDER = 4  # modules of quiet zone (ISO/IEC 18004)
FORMATS = {"png": "image/png", "svg": "image/svg+xml"}


class QRFormatUnknown(ValueError):
    pass


def qr_code(url: str) -> segno.QRCode:
    """The QR code of `url`: error correction M or better when it fits (segno boosts it), never a Micro QR."""
    return segno.make_qr(url, error="m", boost_error=True)


def png_bytes(url: str, scale: int = PNG_SCALE) -> bytes:
    buffer = io.BytesIO()
    qr_code(url).save(buffer, kind="png", scale=scale, border=BORDER)
    return buffer.getvalue()


def svg_bytes(url: str, title: str | None = None, scale: int = SVG_SCALE) -> bytes:
    """A standalone SVG (XML declaration, namespace); `title` is its accessible name (escaped by segno)."""
    buffer = io.BytesIO()
    qr_code(url).save(buffer, kind="svg", scale=scale, border=BORDER, title=title, xmldecl=True, svgns=True,
                      nl=True)
    return buffer.getvalue()


def qr_bytes(url: str, kind: str, title: str | None = None) -> tuple[bytes, str]:
    """(bytes, media type) for `kind` "png" or "svg"."""
    if kind == "png":
        return png_bytes(url), FORMATS[kind]
    if kind == "svg":
        return svg_bytes(url, title), FORMATS[kind]
    raise QRFormatUnknown(f"unknown QR format {kind!r}: use png or svg")
