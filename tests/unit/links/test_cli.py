"""`python -m links …` on a store in a temporary data directory: the URL printed, the QR files written (the PNG
decodes to it), a link switched off, and bad input said in Spanish with exit status 1."""

from __future__ import annotations

from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from core.settings import SANDBOX_PAGE_ID
from links.cli import main

URL = f"https://m.me/{SANDBOX_PAGE_ID}?ref=menu_mesas"


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BOT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("LINKS_DB_URL", raising=False)
    return tmp_path


def test_create_list_qr_and_switch_off(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["create", "Menú en las mesas", "--ref", "menu_mesas", "--entry", "menu"]) == 0
    assert capsys.readouterr().out.strip() == f"Enlace «Menú en las mesas» creado: {URL}"
    assert main(["qr", "menu_mesas", "--png", str(tmp_path / "menu.png"), "--svg", str(tmp_path / "menu.svg")]) == 0
    assert [r.text for r in zxingcpp.read_barcodes(Image.open(tmp_path / "menu.png"))] == [URL]
    assert (tmp_path / "menu.svg").read_bytes().startswith(b"<?xml")
    assert main(["off", "1"]) == 0
    capsys.readouterr()
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert "menu_mesas" in listed and "entrada «menu» de la matriz" in listed and "(apagado)" in listed


@pytest.mark.parametrize(("argv", "message"), [
    (["create", "Menú", "--ref", "con espacio"], "sin espacios"),
    (["create", "Menú", "--intent", "restart"], "no puede iniciar"),
    (["create", "Menú", "--intent", "menu_typo"], "«menu_typo» no existe en el bot"),
    (["create", "Menú", "--page", "999"], "no está configurada"),
    (["qr", "nada", "--png", "x.png"], "no hay ningún enlace"),
    (["qr", "menu"], "--png ARCHIVO"),
    (["username", SANDBOX_PAGE_ID, "mi negocio"], "nombre de usuario"),
])
def test_bad_input_is_said_in_spanish(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["create", "Menú"]) == 0
    capsys.readouterr()
    assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_a_ref_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["create", "Menú", "--ref", "menu"]) == 0
    assert main(["create", "Otro", "--ref", "menu"]) == 1
    assert "ya tiene un enlace con la ref «menu»" in capsys.readouterr().err
