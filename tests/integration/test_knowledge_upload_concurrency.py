"""An editor's upload over real HTTP: the console keeps answering while it is validated, a second one meanwhile
is refused with 429 in Spanish, and nothing is left behind (issue 8, item 5)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.knowledge_editor import MatrixEditor
from knowledge_matrix.embedders import DelegatingEmbedder, HashingEmbedder
from tests.support.servers import RunningServer, start_asgi, stop_asgi
from tests.unit.console.conftest import USERS, Clock, console_app

MATRIX = (
    "id,preguntas,respuesta\n"
    "horario,¿Cuál es el horario de atención?,Abrimos de 9:00 a 19:00.\n"
    "envios,¿Hacen envíos a Galápagos?,Sí: enviamos a todo el Ecuador.\n"
).encode()


class GatedEmbedder(DelegatingEmbedder):
    """The package's hashing embedder, held at a gate the test opens: a validation that takes as long as the test
    wants, without a model."""

    def __init__(self) -> None:
        super().__init__(HashingEmbedder(64))
        self.entered = threading.Event()
        self.gate = threading.Event()

    def embed(self, texts: Sequence[str], *, role: Any = "query") -> Any:
        self.entered.set()
        assert self.gate.wait(60), "the test never opened the gate"
        return self.inner.embed(texts, role=role)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[RunningServer, GatedEmbedder]]:
    clock = Clock()
    console = console_app(tmp_path, clock)
    embedder = GatedEmbedder()
    console.app.state.knowledge_editor = MatrixEditor(tmp_path, clock, embedder=embedder)  # type: ignore[arg-type]
    running = start_asgi(console.app)
    yield running, embedder
    embedder.gate.set()
    stop_asgi(running)


@pytest.fixture
def opened() -> Iterator[list[httpx.Client]]:
    """The test's HTTP clients, closed at its end (an unclosed socket is an error in this suite)."""
    clients: list[httpx.Client] = []
    yield clients
    for client in clients:
        client.close()


def login(base_url: str, username: str, opened: list[httpx.Client]) -> tuple[httpx.Client, dict[str, str]]:
    client = httpx.Client(base_url=base_url, timeout=30)
    opened.append(client)
    answer = client.post("/api/console/login", json={"username": username, "password": USERS[username][1]})
    assert answer.status_code == 200, answer.text
    return client, {"X-CSRF-Token": answer.json()["csrf_token"]}


def test_the_console_answers_while_a_matrix_is_validated_and_a_second_upload_waits_its_turn(
    served: tuple[RunningServer, GatedEmbedder], tmp_path: Path, opened: list[httpx.Client]
) -> None:
    running, embedder = served
    editor, csrf = login(running.base_url, "editor", opened)
    agent, _ = login(running.base_url, "agente", opened)
    first: dict[str, httpx.Response] = {}

    def upload() -> None:
        first["answer"] = editor.post("/api/console/knowledge/drafts", headers=csrf,
                                      files={"file": ("matriz.csv", MATRIX, "text/csv")})

    uploading = threading.Thread(target=upload)
    uploading.start()
    try:
        assert embedder.entered.wait(30), "the upload never reached the validation"

        # The validation holds a worker thread, not the event loop: other people keep working.
        assert agent.get("/api/console/conversations").status_code == 200, "an agent must not wait for a validation"
        status = editor.get("/api/console/knowledge")
        assert status.status_code == 200, f"the knowledge page must answer during a validation: {status.text}"

        second = editor.post("/api/console/knowledge/drafts", headers=csrf,
                             files={"file": ("otra.csv", MATRIX, "text/csv")})
        assert second.status_code == 429, f"a second validation at once must be refused, not queued: {second.text}"
        error = second.json()["error"]
        assert error["reason_code"] == "knowledge_busy" and "Espere" in error["message"], error
    finally:
        embedder.gate.set()
        uploading.join(60)

    assert first["answer"].status_code == 201, first["answer"].text
    draft = first["answer"].json()["draft"]
    assert draft["ok"] is True and draft["entry_count"] == 2, draft
    kept = sorted(path.name for path in (tmp_path / "knowledge-drafts").iterdir())
    assert kept == [draft["id"]], f"only the accepted draft is on disk, the refused one left nothing: {kept}"

    again = editor.post("/api/console/knowledge/drafts", headers=csrf,
                        files={"file": ("otra.csv", MATRIX, "text/csv")})
    assert again.status_code == 201, f"once the first validation ended, the next one runs: {again.text}"


def test_a_broken_workbook_gets_a_clear_answer_and_leaves_no_draft(
    served: tuple[RunningServer, GatedEmbedder], tmp_path: Path, opened: list[httpx.Client]
) -> None:
    running, embedder = served
    embedder.gate.set()
    editor, csrf = login(running.base_url, "editor", opened)
    broken = b"PK\x03\x04" + b"\x00" * 200  # starts like an XLSX (a zip), is not one
    answer = editor.post("/api/console/knowledge/drafts", headers=csrf,
                         files={"file": ("matriz.xlsx", broken, "application/octet-stream")})
    assert 400 <= answer.status_code < 500 or (answer.status_code == 201 and not answer.json()["draft"]["ok"]), (
        f"a broken workbook gets a report or a clear refusal, never a 5xx: {answer.status_code} {answer.text}"
    )
    drafts = tmp_path / "knowledge-drafts"
    leftovers = [p for p in drafts.iterdir() if not (p / "draft.json").exists()] if drafts.exists() else []
    assert leftovers == [], f"no orphan draft directory: {leftovers}"
