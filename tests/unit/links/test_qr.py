"""QR codes of m.me links: a PNG a phone camera reads back to the exact URL (decoded here with zxing-cpp, the
reader Android's and many apps' scanners are built on), and a standalone SVG."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ElementTree

import pytest
import zxingcpp
from PIL import Image

from links.model import MAX_REF, mme_url
from links.qr import QRFormatUnknown, png_bytes, qr_bytes, svg_bytes

URLS = [
    mme_url("100000000000001", "menu_mesas"),
    mme_url("MiNegocio.EC", "promo=enero-2026.v2"),
    mme_url("100000000000001", "r" * MAX_REF),  # the longest ref we allow still scans
]


def decoded_image(image: Image.Image) -> list[str]:
    return [result.text for result in zxingcpp.read_barcodes(image) if result.format == zxingcpp.BarcodeFormat.QRCode]


def decoded(png: bytes) -> list[str]:
    return decoded_image(Image.open(io.BytesIO(png)))


@pytest.mark.parametrize("url", URLS)
def test_the_png_decodes_to_the_exact_url(url: str) -> None:
    png = png_bytes(url)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert decoded(png) == [url]


def test_the_svg_is_a_standalone_document_with_its_title_escaped() -> None:
    svg = svg_bytes(URLS[0], title="Menú <mesas> & más")
    root = ElementTree.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.find("{http://www.w3.org/2000/svg}title").text == "Menú <mesas> & más"  # type: ignore[union-attr]
    assert root.find("{http://www.w3.org/2000/svg}path") is not None


def svg_modules(svg: bytes) -> tuple[int, list[tuple[int, int]]]:
    """The dark modules segno's SVG draws: its one path of horizontal strokes (`M x y`, `m dx dy`, `h length`,
    y at a module's middle), in module units; and the symbol's width with its quiet zone."""
    root = ElementTree.fromstring(svg)
    path = root.find("{http://www.w3.org/2000/svg}path")
    assert path is not None
    scale = float(re.fullmatch(r"scale\((\d+)\)", path.get("transform", "")).group(1))  # type: ignore[union-attr]
    x = y = 0.0
    dark = []
    for command, numbers in re.findall(r"([MmHh])([-\d.\s]+)", path.get("d", "")):
        values = [float(n) for n in numbers.split()]
        if command == "M":
            x, y = values
        elif command == "m":
            x, y = x + values[0], y + values[1]
        else:
            dark += [(int(x) + i, int(y)) for i in range(int(values[0]))]
            x += values[0]
    return int(float(root.get("width", "0")) / scale), dark


def test_the_svg_draws_a_code_that_decodes_to_the_url() -> None:
    """The SVG's path, painted module by module on a bitmap, scans to the URL."""
    url = URLS[1]
    size, dark = svg_modules(svg_bytes(url))
    pixels = 6
    image = Image.new("L", (size * pixels, size * pixels), 255)
    for x, y in dark:
        image.paste(0, (x * pixels, y * pixels, (x + 1) * pixels, (y + 1) * pixels))
    assert decoded_image(image) == [url]


def test_formats() -> None:
    assert qr_bytes(URLS[0], "png")[1] == "image/png"
    assert qr_bytes(URLS[0], "svg")[1] == "image/svg+xml"
    with pytest.raises(QRFormatUnknown):
        qr_bytes(URLS[0], "gif")
