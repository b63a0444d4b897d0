"""«Transmisiones» over the console's JSON API and pages, through the real app under uvicorn (its broadcast runner
and outbox worker running), with the Graph API sandbox of a second app as Meta: an admin saves a draft to a tag,
edits it, sees the dry run (who gets it and why the others do not), sends it, and reads the report as the runner and
the outbox send (one sent, one failed with Meta's 551, one skipped outside the 24-hour window), downloads the failed
ones as CSV and retries them; a scheduled broadcast is cancelled; bad bodies are 4xx in Spanish naming the field;
agents and editors are refused, the service token admitted; the OpenAPI schema documents every route.

Would catch: a route missing from the schema or reachable by an agent, a draft edited after it was sent, a body
the model refuses answered as a 500 or without its field, the report not reaching "sent", a CSV without its BOM,
an image of the wrong type uploaded to Meta."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from bot.app import create_app
from contacts.store import open_contacts_store
from core.settings import DEMO_SERVICE_TOKEN, SANDBOX_PAGE_ID, Settings
from outbox.store import open_store
from tests.support.console_client import ConsoleSession
from tests.support.servers import RunningServer, serve_asgi

PAGE = SANDBOX_PAGE_ID
API = "/api/console/broadcasts"
TAG = f"Promo {uuid.uuid4().hex[:6]}"
WROTE, LATE, UNAVAILABLE, OTHER = "2001", "2002", "2003", "2004"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cf"
                    "c0f01f0005000201a5f3f1b70000000049454e44ae426082")


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Meta's Graph API: the sandbox of an app of its own."""
    with serve_asgi(create_app(Settings(data_dir=tmp_path_factory.mktemp("graph")))) as server:
        yield server


@pytest.fixture(scope="module")
def app_settings(tmp_path_factory: pytest.TempPathFactory, graph: RunningServer) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("broadcasts-api"), graph_api_base=graph.base_url,
                    comments_poll_seconds=3600.0, broadcasts_poll_seconds=0.1)


def seed(settings: Settings) -> None:
    """Four people: three wrote an hour ago, one three days ago; all but OTHER have the campaign's tag. The outbox
    recorded their messages (its worker checks the window again at send time), the contact store their profiles."""
    now = datetime.now(timezone.utc)
    wrote = {WROTE: now - timedelta(hours=1), LATE: now - timedelta(days=3), UNAVAILABLE: now - timedelta(hours=1),
             OTHER: now - timedelta(hours=1)}
    names = {WROTE: ("Andrés", "Pazmiño"), LATE: ("Lucía", "Ortega"), UNAVAILABLE: ("Rosa", "Quishpe"),
             OTHER: ("Jorge", "Vera")}
    outbox = open_store(settings.outbox_store_url)
    contacts = open_contacts_store(settings.store_url("contacts"))
    try:
        for psid, at in wrote.items():
            outbox.record_user_message(PAGE, psid, at, "hola")
            contacts.upsert_seen(PAGE, psid, at)
            contacts.record_profile(PAGE, psid, *names[psid], None, "es_LA", "fetched", None, now)
            if psid != OTHER:
                contacts.add_tags(PAGE, psid, [TAG], now)
    finally:
        outbox.close()
        contacts.close()


@pytest.fixture(scope="module")
def server(app_settings: Settings) -> Iterator[RunningServer]:
    seed(app_settings)
    with serve_asgi(create_app(app_settings)) as running:
        yield running


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> Iterator[ConsoleSession]:
    session = ConsoleSession(server.base_url, "admin")
    yield session
    session.close()


def draft(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Almuerzo 2×1",
        "content": {"text": "¡Hola! Esta semana el almuerzo es 2×1.",
                    "quick_replies": [{"title": "Quiero", "start": {"intent": "greet"}}, {"title": "No, gracias"}]},
        "audience": {"tags_any": [TAG]},
        "promotional": True,
    }
    body.update(changes)
    return body


def ok(answer: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    return dict(answer.json())


def wait_report(admin: ConsoleSession, broadcast_id: int, done: Any, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    report: dict[str, Any] = {}
    while time.monotonic() < deadline:
        report = ok(admin.get(f"{API}/{broadcast_id}/report"))
        if done(report):
            return report
        time.sleep(0.1)
    raise AssertionError(f"the report did not get there: {report}")


def test_an_admin_drafts_dry_runs_sends_and_reads_the_report(admin: ConsoleSession, graph: RunningServer) -> None:
    created = ok(admin.post(API, json=draft(name="Borrador")), 201)["broadcast"]
    assert (created["status"], created["status_es"], created["editable"], created["page_id"]) == (
        "draft", "Borrador", True, PAGE)
    assert created["content"]["quick_replies"][0] == {"title": "Quiero", "start": {"intent": "greet", "entry_id": None}}
    broadcast_id = created["id"]
    edited = ok(admin.send("PUT", f"{API}/{broadcast_id}", json=draft()))["broadcast"]
    assert edited["name"] == "Almuerzo 2×1" and edited["audience"]["tags_any"] == [TAG]
    assert ok(admin.get(f"{API}/{broadcast_id}"))["broadcast"]["name"] == "Almuerzo 2×1"

    preview = ok(admin.post(f"{API}/{broadcast_id}/dry-run"))
    assert (preview["audience"], preview["will_send"], preview["outside_window"]) == (3, 2, 1)
    assert preview["skipped"] == {"promotional_outside_window": 1}
    assert "24 horas" in preview["reasons_es"]["promotional_outside_window"]
    assert preview["examples"]["promotional_outside_window"] == ["Lucía Ortega"]
    unsaved = ok(admin.post(f"{API}/dry-run", json=draft(promotional=False)))  # another reason, nothing saved
    assert (unsaved["audience"], unsaved["will_send"], unsaved["skipped"]) == (3, 2, {"outside_window": 1})

    failure = {"code": 551, "error_subcode": 1545041, "recipient_id": UNAVAILABLE, "count": 5,
               "message": "This person isn't available right now."}
    assert httpx.post(graph.url("/sandbox/failures"), json=failure).status_code == 200
    sent = ok(admin.post(f"{API}/{broadcast_id}/send", json={"send_at": None}))["broadcast"]
    assert sent["status"] in ("scheduled", "sending", "done") and sent["editable"] is False
    for method in ("PUT", "DELETE"):
        refused = admin.send(method, f"{API}/{broadcast_id}", json=draft() if method == "PUT" else None)
        assert refused.status_code == 409 and refused.json()["error"]["reason_code"] == "broadcast_not_editable"
        assert "borrador" in refused.json()["error"]["message"]
    again = admin.post(f"{API}/{broadcast_id}/send", json={"send_at": None})
    assert again.status_code == 409

    report = wait_report(admin, broadcast_id, lambda r: r["broadcast"]["status"] == "done")
    assert (report["total"], report["sent"], report["queued"]) == (3, 1, 0)
    assert report["skipped"] == {"promotional_outside_window": 1} and report["failed"] == {"code 551": 1}
    assert "no está disponible" in report["reasons_es"]["code 551"]
    texts = [item["body"]["message"].get("text") for item in httpx.get(
        graph.url("/sandbox/sent"), params={"recipient_id": WROTE}).json() if "message" in item["body"]]
    assert "¡Hola! Esta semana el almuerzo es 2×1." in texts
    assert not httpx.get(graph.url("/sandbox/sent"), params={"recipient_id": OTHER}).json()

    csv = admin.get(f"{API}/{broadcast_id}/failed.csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert f"transmision-{broadcast_id}-fallidos.csv" in csv.headers["content-disposition"]
    assert csv.content.startswith(b"\xef\xbb\xbf")
    lines = csv.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("psid;nombre;estado")
    rows = {line.split(";")[0]: line for line in lines[1:]}
    assert set(rows) == {LATE, UNAVAILABLE} and "Lucía Ortega" in rows[LATE] and "551" in rows[UNAVAILABLE]

    retried = ok(admin.post(f"{API}/{broadcast_id}/retry-failed"))
    assert retried["requeued"] + sum(retried["still_refused"].values()) == 1
    assert all(retried["reasons_es"][code] for code in retried["still_refused"])
    finished = admin.post(f"{API}/{broadcast_id}/cancel")
    assert finished.status_code == 409 and finished.json()["error"]["reason_code"] == "broadcast_not_cancellable"

    page = admin.get(f"/console/broadcasts/{broadcast_id}")
    assert page.status_code == 200
    for shown in ("Almuerzo 2×1", "Enviada", 'id="report-sent">1<', "Descargar fallidos (CSV)", "Reintentar fallidos",
                  "no está disponible"):
        assert shown in page.text, shown
    listing = admin.get("/console/broadcasts")
    assert listing.status_code == 200 and "Almuerzo 2×1" in listing.text
    httpx.delete(graph.url("/sandbox/failures"))


def test_a_scheduled_broadcast_is_cancelled_and_drafts_are_listed_page_by_page(admin: ConsoleSession) -> None:
    broadcast_id = ok(admin.post(API, json=draft(name="Para mañana")), 201)["broadcast"]["id"]
    later = (datetime.now(timezone(timedelta(hours=-5))) + timedelta(days=1)).replace(microsecond=0)
    scheduled = ok(admin.post(f"{API}/{broadcast_id}/send", json={"send_at": later.isoformat()}))["broadcast"]
    assert scheduled["status"] == "scheduled"
    assert datetime.fromisoformat(scheduled["send_at"]) == later
    cancelled = ok(admin.post(f"{API}/{broadcast_id}/cancel"))["broadcast"]
    assert (cancelled["status"], cancelled["cancelled_by"]) == ("cancelled", "admin")
    assert "Cancelada" in admin.get(f"/console/broadcasts/{broadcast_id}").text

    drafts = [ok(admin.post(API, json=draft(name=f"Borrador {n}")), 201)["broadcast"]["id"] for n in range(3)]
    seen: list[int] = []
    cursor = None
    while True:
        page = ok(admin.get(API, params={"limit": 2, **({"cursor": cursor} if cursor else {})}))
        assert len(page["broadcasts"]) <= 2
        seen += [b["id"] for b in page["broadcasts"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) and set(drafts) | {broadcast_id} <= set(seen)
    assert seen == sorted(seen, reverse=True)  # newest first
    removed = ok(admin.send("DELETE", f"{API}/{drafts[0]}"))
    assert removed == {"deleted": drafts[0]}
    assert admin.get(f"{API}/{drafts[0]}").status_code == 404
    assert admin.get(f"/console/broadcasts/{drafts[1]}/edit").status_code == 200
    listed = admin.get("/console/broadcasts").text
    assert 'class="local-time"' in listed and "hora de su computador" in listed  # shown in the admin's own time


def test_the_composer_offers_only_the_tags_meta_still_takes(admin: ConsoleSession) -> None:
    page = admin.get("/console/broadcasts/new").text  # by today every update tag is retired
    assert 'id="no-message-tags"' in page and "Meta no permite etiquetas" in page
    for tag in ("ACCOUNT_UPDATE", "CUSTOMER_FEEDBACK", "HUMAN_AGENT"):
        assert f'value="{tag}"' not in page


def test_the_image_is_uploaded_to_the_page_and_only_an_image(admin: ConsoleSession) -> None:
    uploaded = ok(admin.post(f"{API}/images", files={"file": ("promo.png", PNG, "image/png")}), 201)
    assert uploaded["page_id"] == PAGE and uploaded["attachment_id"] and uploaded["filename"] == "promo.png"
    assert admin.get(uploaded["preview_url"]).content == PNG
    with_image = draft(content={"text": "Mire la promoción", "image": {"attachment_id": uploaded["attachment_id"]}})
    created = ok(admin.post(API, json=with_image), 201)["broadcast"]
    assert created["content"]["image"] == {"attachment_id": uploaded["attachment_id"], "url": None}
    refused = admin.post(f"{API}/images", files={"file": ("lista.pdf", b"%PDF-1.4\n%\xe2\xe3\n1 0 obj\n", "image/png")})
    assert refused.status_code == 415 and "imagen" in refused.json()["error"]["message"]


LONG_TITLE = "x" * 21


@pytest.mark.parametrize(("path", "body", "field", "words"), [
    (API, draft(content={}), "content.text", "Escriba un texto"),
    (API, draft(content={"text": "hola", "quick_replies": [{"title": LONG_TITLE}]}),
     "content.quick_replies[0].title", "21 caracteres"),
    (API, draft(content={"text": "hola", "buttons": [{"title": "Ver"}]}), "content.buttons[0]", "https://"),
    (API, draft(content={"text": "hola", "quick_replies": [{"title": "Sí", "start": {"intent": "no_existe_x"}}]}),
     "content.quick_replies[0].start", "no existe en el bot"),
    (API, draft(tag="POST_PURCHASE_UPDATE"), "tag", "promocional"),
    (API, draft(tag="OFERTAS"), "tag", "una de"),
    (API, draft(tag="HUMAN_AGENT", promotional=False), "tag", "persona del equipo"),
    (API, draft(tag="ACCOUNT_UPDATE", promotional=False), "tag", "Meta retiró"),  # retired 2026-04-27
    (API + "/dry-run", draft(tag="CUSTOMER_FEEDBACK", promotional=False), "tag", "no sirve para transmisiones"),
    (API, draft(page_id="999"), "page_id", "no está configurada"),
    (API, draft(name="   "), "name", "Escriba"),
    (API, draft(audience={"tags_any": ["a\nb"]}), "audience.tags_any", "saltos de línea"),
    (API, draft(audience={"last_interaction_after": "ayer"}), "audience.last_interaction_after", "fecha"),
    (API + "/dry-run", draft(content={"text": "x" * 2001}), "content.text", "2000"),
])
def test_bad_drafts_are_a_422_in_spanish_naming_the_field(admin: ConsoleSession, path: str, body: dict[str, Any],
                                                          field: str, words: str) -> None:
    answer = admin.post(path, json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == field, error
    assert words in error["message"], error


def test_bad_requests_are_4xx_never_5xx(admin: ConsoleSession) -> None:
    broadcast_id = ok(admin.post(API, json=draft(name="Para probar")), 201)["broadcast"]["id"]
    naive = admin.post(f"{API}/{broadcast_id}/send", json={"send_at": "2030-01-01T09:00:00"})
    assert naive.status_code == 422 and naive.json()["error"]["field"] == "send_at"
    assert "zona horaria" in naive.json()["error"]["message"]
    past = admin.post(f"{API}/{broadcast_id}/send", json={"send_at": "2020-01-01T09:00:00+00:00"})
    assert past.status_code == 422 and "ya pasó" in past.json()["error"]["message"]
    for far in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"):  # overflowed to a 500 once
        answer = admin.post(f"{API}/{broadcast_id}/send", json={"send_at": far})
        assert answer.status_code == 422 and answer.json()["error"]["field"] == "send_at", answer.text
        assert "años" in answer.json()["error"]["message"]
    cursor = admin.get(API, params={"cursor": "no-es-un-cursor"})
    assert cursor.status_code == 422 and cursor.json()["error"]["field"] == "cursor"
    for body in ({"name": "x", "content": "hola"}, [], {"name": 5, "content": {}}, {"content": {"text": "hola"}},
                 {"name": "x", "content": {"buttons": "no"}}):
        answer = admin.post(API, json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["error"]["message"].startswith("La solicitud no es válida")
    missing = admin.get(f"{API}/999999")
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "No existe la transmisión 999999."
    assert admin.get(f"{API}/0").status_code == 422
    assert admin.get(f"{API}/{2**63}").status_code == 422
    assert admin.get("/console/broadcasts/999999").status_code == 404
    assert admin.post(f"{API}/{broadcast_id}/retry-failed").status_code == 409
    assert admin.post(f"{API}/{broadcast_id}/cancel").status_code == 409


ROUTES = [("GET", API, None), ("POST", API, draft()), ("POST", API + "/dry-run", draft()),
          ("GET", API + "/1", None), ("PUT", API + "/1", draft()), ("DELETE", API + "/1", None),
          ("POST", API + "/1/dry-run", None), ("POST", API + "/1/send", {"send_at": None}),
          ("POST", API + "/1/cancel", None), ("GET", API + "/1/report", None), ("GET", API + "/1/failed.csv", None),
          ("POST", API + "/1/retry-failed", None)]
PAGES = ["/console/broadcasts", "/console/broadcasts/new", "/console/broadcasts/1", "/console/broadcasts/1/edit"]


@pytest.mark.parametrize("username", ["agente", "editor"])
def test_agents_and_editors_are_refused(server: RunningServer, username: str) -> None:
    session = ConsoleSession(server.base_url, username)
    try:
        for method, path, body in ROUTES:
            answer = session.send(method, path, json=body)
            assert answer.status_code == 403, (method, path, answer.text)
            assert answer.json()["error"]["reason_code"] == "forbidden"
        assert session.post(API + "/images", files={"file": ("a.png", PNG, "image/png")}).status_code == 403
        for path in PAGES:
            assert session.get(path).status_code == 403, path
        home = session.get("/console/contacts" if username == "agente" else "/console/knowledge")
        assert home.status_code == 200 and 'href="/console/broadcasts"' not in home.text
    finally:
        session.close()


def test_the_service_token_is_admitted_and_anonymous_callers_are_not(server: RunningServer,
                                                                     admin: ConsoleSession) -> None:
    service = {"Authorization": f"Bearer {DEMO_SERVICE_TOKEN}"}
    with httpx.Client(base_url=server.base_url, timeout=15) as client:
        created = client.post(API, json=draft(name="Desde un programa"), headers=service)
        assert created.status_code == 201, created.text
        assert created.json()["broadcast"]["created_by"]
        broadcast_id = created.json()["broadcast"]["id"]
        assert client.get(f"{API}/{broadcast_id}/report", headers=service).status_code == 200
        assert client.post(f"{API}/{broadcast_id}/dry-run", headers=service).json()["audience"] == 3
        assert client.get(API).status_code == 401
        assert client.post(API, json=draft()).status_code == 401
        assert client.get("/console/broadcasts", follow_redirects=False).status_code == 303
    assert 'href="/console/broadcasts"' in admin.get("/console/contacts").text  # the admin's menu has it


def test_the_openapi_schema_documents_every_route(server: RunningServer) -> None:
    spec = server.server.config.app.openapi()
    paths = spec["paths"]
    for method, path, _ in ROUTES:
        documented = path.replace("/1", "/{broadcast_id}")
        assert method.lower() in paths[documented], (method, documented)
    assert "post" in paths[API + "/images"]
    schemas = spec["components"]["schemas"]
    for name in ("DraftBody", "ContentIn", "AudienceIn", "BroadcastOut", "DryRunOut", "ReportOut", "RetryOut"):
        assert any(schema.split("-")[0] == name for schema in schemas), name  # ContentIn-Input, ContentIn-Output
    create = paths[API]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/DraftBody")
    report = paths[API + "/{broadcast_id}/report"]["get"]["responses"]["200"]["content"]["application/json"]
    assert report["schema"]["$ref"].endswith("/ReportOut")
    assert set(schemas["ReportOut"]["properties"]) >= {"sent", "delivered", "read", "skipped", "failed", "retryable"}
