"""«Formas de preguntar sugeridas» over the console's JSON API, on real parts: the real `openai` client over real HTTP
against the local OpenAI-compatible fake (tests/support/fake_openai.py, answering paraphrase requests from the
entries in the prompt), the knowledge editor over `knowledge_matrix.publish` with the package's deterministic hashing
embedder, and the paraphrase store on SQLite; the command line too.

An editor asks for proposals; the job answers at once and runs in the app's loop; the proposals come back screened
(a question the entry has, another entry's question, an over-long one, one the index sends to another entry: kept
aside with the reason in Spanish); the editor accepts one, rejects one, accepts the rest of an entry, makes a draft
(the live matrix plus the accepted questions, its report) and publishes it: the bot now answers the new wording.
Without a key nothing reaches the server; a wrong key, a 429, a 5xx, a timeout or a reply that is not JSON end the
job with a Spanish reason.

Would catch: a request sent without a key, a job that never ends (or ends silently) when the server fails, a
proposal that duplicates or would steal another entry's question shown for review, a rejected proposal in the draft,
a draft that is not the live matrix plus the accepted questions, two jobs at once.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from console.knowledge_editor import MatrixEditor
from core.settings import Settings
from knowledge_matrix.cli import main
from knowledge_matrix.embedders import HashingEmbedder
from knowledge_matrix.paraphrase_store import open_paraphrase_store
from knowledge_matrix.paraphrases import ParaphraseLimits, route_with
from tests.support.fake_openai import FakeOpenAI, RunningFakeOpenAI, parse_prompt_data, serve_fake_openai
from tests.unit.console.conftest import START, USERS, Clock, console_app

API = "/api/console/knowledge/paraphrases"
KEY = "sk-paraphrase-SECRET-0a1b2c3d4e"
EMBEDDER = HashingEmbedder(256)
MATRIX = ("id,preguntas,respuesta\n"
          "horario,¿A qué hora abren? | ¿Cuál es el horario de atención?,Abrimos de lunes a sábado de 9:00 a 19:00.\n"
          "envios,¿Hacen envíos a Galápagos? | ¿Envían pedidos a provincia?,Sí: enviamos a todo el Ecuador.\n"
          "pagos,¿Aceptan tarjeta de crédito? | ¿Puedo pagar con transferencia?,Aceptamos tarjeta y transferencia.\n")
NEW_WORDING = "oe a q hora abren el local"
BEYOND = "una octava que nadie pidió"
STOLEN = "hacen envios a galapagos o a provincia"  # under «horario», but the index answers it with «envios»
PARAPHRASES = {
    "horario": [NEW_WORDING, "hasta q hora atienden porfa", "¿A qué hora abren?", "¿aceptan tarjeta de crédito?",
                "x" * 300, STOLEN, "  ", BEYOND],  # 6 asked for: the last two are not read
    "envios": ["mandan a galapagos?", "envian a cuenca?"],
    "pagos": ["se puede pagar con tarjeta?"],
}


class ParaphrasingOpenAI(FakeOpenAI):
    """The fake server answering a paraphrase request as a well-behaved model would: the wordings of each entry in
    the prompt's <entries>, as JSON."""

    def _behave(self, messages: Sequence[Mapping[str, Any]]) -> str:
        entries = parse_prompt_data(messages).get("entries") or []
        return json.dumps({"paraphrases": {e["id"]: PARAPHRASES.get(e["id"], []) for e in entries
                                           if isinstance(e, dict)}}, ensure_ascii=False)


@pytest.fixture(scope="module")
def running() -> Iterator[RunningFakeOpenAI]:
    with serve_fake_openai(ParaphrasingOpenAI(api_key=KEY)) as server:
        yield server


@pytest.fixture
def fake(running: RunningFakeOpenAI) -> Iterator[FakeOpenAI]:
    running.fake.reset()
    yield running.fake
    running.fake.reset()


def settings_for(tmp_path: Path, running: RunningFakeOpenAI, **changes: Any) -> Settings:
    fields: dict[str, Any] = {"data_dir": tmp_path, "llm_api_key": KEY, "llm_base_url": running.base_url,
                              "llm_max_retries": 0, "paraphrases_entries_per_request": 2, "paraphrases_per_entry": 6,
                              "paraphrases_timeout_seconds": 5.0, **changes}
    return Settings(**fields)


class Editor:
    """An editor logged in on a client whose event loop lives for the whole test (the job runs in it)."""

    def __init__(self, client: TestClient, csrf: str) -> None:
        self.client = client
        self.csrf = csrf

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.client.get(url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.client.post(url, headers={"X-CSRF-Token": self.csrf}, **kwargs)

    def finished(self, job_id: int) -> dict[str, Any]:
        for _ in range(400):  # the job runs in the app's loop; bounded, not timed
            job = ok(self.get(f"{API}/jobs/{job_id}"))
            if job["status"] != "running":
                return job
            time.sleep(0.025)
        raise AssertionError("the job never ended")


@pytest.fixture
def overrides() -> dict[str, Any]:
    """Settings a test changes (`@pytest.mark.parametrize("overrides", [{...}])`)."""
    return {}


@pytest.fixture
def env(tmp_path: Path, running: RunningFakeOpenAI, overrides: dict[str, Any]) -> Iterator[Editor]:
    settings = settings_for(tmp_path, running, **overrides)
    console = console_app(tmp_path, Clock(START), settings)
    editor = MatrixEditor(tmp_path, console.clock, embedder=EMBEDDER)
    editor.publish(editor.upload("matriz.csv", MATRIX.encode("utf-8"), "editor").id, "editor")
    console.app.state.knowledge_editor = editor
    with TestClient(console.app, follow_redirects=False) as client:
        answer = client.post("/api/console/login", json={"username": "editor", "password": USERS["editor"][1]})
        assert answer.status_code == 200, answer.text
        yield Editor(client, answer.json()["csrf_token"])
        service = getattr(console.app.state, "paraphrases", None)
        if service is not None:
            client.portal.call(service.close)  # type: ignore[union-attr]


def ok(answer: Any, status: int = 200) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    return dict(answer.json())


def refused(answer: Any, status: int, reason: str) -> str:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["reason_code"] == reason
    return str(error["message"])


def test_the_editors_loop(env: Editor, fake: FakeOpenAI, tmp_path: Path) -> None:
    overview = ok(env.get(API))
    assert overview["enabled"] and overview["job"] is None and overview["entries"] == []

    job = ok(env.post(f"{API}/jobs", json={}), 202)
    assert job["status"] == "running" and job["total_entries"] == 3 and job["matrix_version"] == "0001"
    job = env.finished(job["id"])
    assert (job["status"], job["error_es"], job["done_entries"], job["percent"]) == ("done", None, 3, 100)

    requests = fake.chat_requests
    assert len(requests) == 2 and all(r.authorized for r in requests)  # 3 entries, 2 per request
    limits = ParaphraseLimits(entries_per_request=2, per_entry=6)
    assert "hasta 6 formas" in requests[0].messages[0]["content"]
    assert all(r.body["max_tokens"] == limits.reply_tokens and r.body["model"] == "gpt-4o-mini" for r in requests)
    sent = [e["id"] for r in requests for e in r.tagged("entries")]
    assert sorted(sent) == ["envios", "horario", "pagos"]

    entries = {e["entry_id"]: e for e in ok(env.get(API))["entries"]}
    horario = entries["horario"]
    assert [p["text"] for p in horario["proposals"]] == [NEW_WORDING, "hasta q hora atienden porfa"]
    reasons = {p["text"][:40]: p["reason_es"] for p in horario["filtered"]}
    assert reasons["¿A qué hora abren?"] == "La entrada ya tiene esa pregunta."
    assert reasons["¿aceptan tarjeta de crédito?"] == "Ya es una pregunta de la entrada «pagos»."
    assert reasons["x" * 40].startswith("Es demasiado larga")
    assert BEYOND not in json.dumps(entries, ensure_ascii=False)
    assert reasons[STOLEN].startswith("El bot la respondería con la entrada «envios»")
    assert route_with(env_editor_knowledge(tmp_path), [STOLEN]) == ["envios"]
    assert job["proposed"] == sum(len(e["proposals"]) for e in entries.values())

    first, second = horario["proposals"]
    assert ok(env.post(f"{API}/{first['id']}/decision", json={"status": "accepted"}))["status"] == "accepted"
    assert ok(env.post(f"{API}/{second['id']}/decision", json={"status": "rejected"}))["status"] == "rejected"
    assert ok(env.post(f"{API}/entry-decision", json={"entry_id": "envios", "status": "accepted"}))["changed"] == 2
    filtered_id = horario["filtered"][0]["id"]
    assert "descartó" in refused(env.post(f"{API}/{filtered_id}/decision", json={"status": "accepted"}), 409,
                                 "invalid_transition")

    made = ok(env.post(f"{API}/draft"), 201)
    assert made["added"] == 3 and made["draft"]["ok"] and made["draft"]["entry_count"] == 3
    assert ok(env.get(API))["accepted_waiting"] == 0
    refused(env.post(f"{API}/draft"), 409, "invalid_transition")  # nothing accepted left
    assert "borrador" in refused(env.post(f"{API}/{first['id']}/decision", json={"status": "rejected"}), 409,
                                 "invalid_transition")

    published = ok(env.post("/api/console/knowledge/publish", json={"draft_id": made["draft"]["id"]}))
    assert published["version"]["id"] == "0002"
    live = open_source(tmp_path, "0002")
    assert NEW_WORDING in live and "mandan a galapagos?" in live and "hasta q hora atienden" not in live
    tried = MatrixEditor(tmp_path, lambda: START, embedder=EMBEDDER).try_question(NEW_WORDING, None).live
    assert tried is not None and (tried.outcome, tried.entry_id) == ("answer", "horario")

    page = env.get("/console/knowledge/paraphrases")
    assert page.status_code == 200 and "Formas de preguntar sugeridas" in page.text and "job-progress" in page.text


def env_editor_knowledge(tmp_path: Path) -> Any:
    return MatrixEditor(tmp_path, lambda: START, embedder=EMBEDDER).knowledge_for(None)[1]


def open_source(data_dir: Path, version: str) -> str:
    return next((data_dir / "knowledge" / "versions" / version).glob("source.*")).read_text(encoding="utf-8-sig")


@pytest.mark.parametrize("overrides", [{"llm_api_key": ""}])
def test_without_a_key_nothing_is_sent(env: Editor, fake: FakeOpenAI) -> None:
    overview = ok(env.get(API))
    assert not overview["enabled"] and "LLM_API_KEY" in overview["enabled_es"]
    assert "LLM_API_KEY" in refused(env.post(f"{API}/jobs", json={}), 409, "paraphrases_off")
    assert "LLM_API_KEY" in env.get("/console/knowledge/paraphrases").text
    assert fake.requests == []


@pytest.mark.parametrize(("script", "code", "words"), [
    ({"error": 500}, "server_error", "HTTP 500"),
    ({"error": 429}, "rate_limited", "HTTP 429"),
    ({"error": 429, "error_code": "insufficient_quota"}, "no_quota", "saldo"),
    ({"reply": "Claro, aquí van: oe a q hora abren"}, "malformed_reply", "JSON"),
    ({"reply": "{}", "delay_seconds": 2.0}, "timeout", "no respondió a tiempo"),
])
@pytest.mark.parametrize("overrides", [{"paraphrases_timeout_seconds": 1.0, "paraphrases_entries_per_request": 10}])
def test_a_failing_server_ends_the_job_with_a_reason(env: Editor, fake: FakeOpenAI, script: dict[str, Any],
                                                     code: str, words: str) -> None:
    if "error" in script:
        fake.queue_error(script["error"], error_code=script.get("error_code"), retry_after_seconds=0.1)
    else:
        fake.queue_reply(script["reply"], delay_seconds=script.get("delay_seconds", 0.0))
    job = ok(env.post(f"{API}/jobs", json={}), 202)
    if code == "timeout":  # while it waits: one job at a time
        refused(env.post(f"{API}/jobs", json={}), 409, "paraphrase_job_running")
    job = env.finished(job["id"])
    assert (job["status"], job["error_code"], job["proposed"]) == ("failed", code, 0)
    assert words in job["error_es"]
    assert ok(env.get(API))["job"]["error_es"] == job["error_es"]


@pytest.mark.parametrize("overrides", [{"llm_api_key": "sk-wrong-WRONGSECRET-0000"}])
def test_a_wrong_key_is_said_without_echoing_it(env: Editor, fake: FakeOpenAI, caplog: pytest.LogCaptureFixture) \
        -> None:
    job = env.finished(ok(env.post(f"{API}/jobs", json={"entry_ids": ["pagos"]}), 202)["id"])
    assert (job["status"], job["error_code"], job["total_entries"]) == ("failed", "unauthorized", 1)
    assert "HTTP 401" in job["error_es"] and "WRONGSECRET" not in job["error_es"]
    assert "WRONGSECRET" not in caplog.text
    refused(env.post(f"{API}/jobs", json={"entry_ids": ["nada"]}), 422, "invalid_request")


@pytest.mark.parametrize("overrides", [{"paraphrases_max_tokens": 1000, "paraphrases_entries_per_request": 1}])
def test_the_token_budget_stops_the_job_before_it_is_passed(env: Editor, fake: FakeOpenAI) -> None:
    job = env.finished(ok(env.post(f"{API}/jobs", json={}), 202)["id"])
    assert (job["status"], job["error_code"]) == ("done", "token_budget")
    assert job["tokens"] <= 1000 and len(fake.chat_requests) == job["done_entries"] < 3


def test_the_command_line_with_a_progress_bar(tmp_path: Path, running: RunningFakeOpenAI, fake: FakeOpenAI,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    editor = MatrixEditor(tmp_path, lambda: START, embedder=EMBEDDER)
    editor.publish(editor.upload("matriz.csv", MATRIX.encode("utf-8"), "editor").id, "editor")
    store_url = f"sqlite:///{tmp_path / 'paraphrases.sqlite3'}"
    monkeypatch.setenv("LLM_BASE_URL", running.base_url)
    monkeypatch.setenv("PARAPHRASES_PER_ENTRY", "6")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("LLM_API_KEY", raising=False)
    out, err = io.StringIO(), io.StringIO()
    assert main(["paraphrase", "--data-dir", str(tmp_path), "--store-url", store_url], out, err) == 2
    assert "LLM_API_KEY" in err.getvalue() and fake.requests == []

    monkeypatch.setenv("LLM_API_KEY", KEY)
    out, err = io.StringIO(), io.StringIO()
    assert main(["paraphrase", "--data-dir", str(tmp_path), "--store-url", store_url, "--entry", "horario"],
                out, err) == 0
    assert "1 de 1 entradas, 2 propuestas por revisar, 4 descartadas" in out.getvalue()
    assert "Sugerencias" in err.getvalue() and "1/1" in err.getvalue()  # the progress bar
    store = open_paraphrase_store(store_url)
    try:
        assert [p.text for p in store.paraphrases("proposed")] == [NEW_WORDING, "hasta q hora atienden porfa"]
    finally:
        store.close()

    fake.queue_error(401)
    out, err = io.StringIO(), io.StringIO()
    assert main(["paraphrase", "--data-dir", str(tmp_path), "--store-url", store_url, "--no-progress"],
                out, err) == 2
    assert "HTTP" in err.getvalue()
