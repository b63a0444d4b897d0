"""Contacts CSV export and import through the app (bot.app.create_app in-process: its request guard, roles, error
handler and the real contact store over SQLite in a temporary directory).

Would catch: an export that is not a download named contactos-<date>.csv or that loses accents; an import that
writes the good rows of a bad file (all-or-nothing), or a bad file answered 500 or without its rows' errors; a file
that would take a contact past 50 tags half-imported; ?partial=1 not importing the valid rows; the import route
missing from the request guard's upload cap (a 5 MB file cut at 256 KB); an agent reaching either route."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bot.app import create_app
from bot.request_guard import BODY_LIMITS, MULTIPART_ENVELOPE_BYTES
from console.auth import Authenticator
from contacts.csv_io import MAX_IMPORT_BYTES
from contacts.store import ContactsStore, open_contacts_store
from core.settings import SANDBOX_PAGE_ID, Settings
from tests.unit.console.conftest import Clock, fast_hasher

PAGE = SANDBOX_PAGE_ID
EXPORT = "/api/console/contacts/export.csv"
IMPORT = "/api/console/contacts/import"
TOKEN = {"Authorization": "Bearer csv-test-token"}
NOW = datetime(2026, 3, 2, 23, 30, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    settings = Settings(data_dir=tmp_path_factory.mktemp("contacts-csv"), service_token="csv-test-token")
    app = create_app(settings)  # not entered: no sync or workers; the contact store is opened on first use
    auth = app.state.console_auth
    app.state.console_auth = Authenticator(auth.store, settings, hasher=fast_hasher(), clock=Clock(NOW))
    app.state.console_auth.add_user("ana", "admin", "ana-clave-segura-1")
    app.state.console_auth.add_user("beto", "agent", "beto-clave-segura-1")
    return app


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    http = TestClient(app)
    yield http
    http.close()


@pytest.fixture(scope="module")
def store(app: FastAPI) -> Iterator[ContactsStore]:
    opened = open_contacts_store(app.state.settings.store_url("contacts"))
    yield opened
    opened.close()


def upload(client: TestClient, data: bytes, query: str = "", headers: dict[str, str] | None = None) -> Any:
    return client.post(IMPORT + query, files={"file": ("contactos.csv", data, "text/csv")},
                       headers=TOKEN if headers is None else headers)


def excel(text: str) -> bytes:
    """What Excel writes as «CSV UTF-8»: a BOM, `;`, CRLF."""
    return codecs.BOM_UTF8 + text.replace("\n", "\r\n").encode("utf-8")


def test_import_then_export_then_import_again(client: TestClient, store: ContactsStore) -> None:
    first = upload(client, excel('psid;nombre;apellido;etiquetas;campo:ciudad;campo:pedido\n'
                                 '7001;José;Peña 😀;Cliente VIP, "Pollo, papas";"Quito; centro";=1+1\n'
                                 '7002;Ñusta;;;Cuenca;"2 pollos;\nsin ají"\n'))

    assert first.status_code == 200, first.text
    assert first.json() == {"created": 2, "updated": 0, "skipped_rows": 0, "errors": [], "errors_total": 0,
                            "message": "Se importaron 2 contactos (2 nuevos, 0 actualizados)."}
    jose = store.get(PAGE, "7001")
    assert jose is not None and (jose.first_name, jose.last_name) == ("José", "Peña 😀")
    assert set(jose.tags) == {"Cliente VIP", "Pollo, papas"}
    assert dict(jose.fields) == {"ciudad": "Quito; centro", "pedido": "=1+1"}

    exported = client.get(EXPORT, headers=TOKEN)
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-disposition"] == 'attachment; filename="contactos-2026-03-02.csv"'
    assert exported.headers["content-type"].startswith("text/csv")
    body = exported.content
    assert body.startswith(codecs.BOM_UTF8)
    text = body.decode("utf-8-sig")
    assert text.startswith("page_id;psid;nombre;apellido;etiquetas;primer_contacto;ultimo_mensaje;campana;"
                           "campo:ciudad;campo:pedido\r\n")
    assert f'{PAGE};7001;José;Peña 😀;' in text and "'=1+1" in text and '"2 pollos;\r\nsin ají"' in text

    again = upload(client, body)
    assert again.status_code == 200, again.text
    assert (again.json()["created"], again.json()["updated"]) == (0, 2)
    assert client.get(EXPORT, headers=TOKEN).content == body  # nothing changed: the round trip is exact


def test_a_file_with_errors_imports_nothing_unless_partial(client: TestClient, store: ContactsStore) -> None:
    data = excel("psid;nombre;etiquetas\n7101;Rosa;nueva\n;Sin PSID;x\n7103;Luis;" + "x" * 41 + "\n")

    refused = upload(client, data)

    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["reason_code"] == "contacts_import_invalid"
    assert error["message"].startswith("El archivo tiene 2 errores en 2 filas: no se importó ningún contacto.")
    assert error["errors"] == [
        {"row": 3, "field": "psid", "message": "Fila 3: falta el PSID"},
        {"row": 4, "field": "etiquetas", "message": "Fila 4: la etiqueta «xxxxxxxxxxxxxxxxxxxx…» tiene más de 40 "
                                                    "caracteres"}]
    assert (error["errors_total"], error["created"], error["updated"]) == (2, 0, 0)
    assert store.get(PAGE, "7101") is None

    partial = upload(client, data, "?partial=1")

    assert partial.status_code == 200, partial.text
    answer = partial.json()
    assert (answer["created"], answer["updated"], answer["skipped_rows"], answer["errors_total"]) == (1, 0, 2, 2)
    assert answer["message"] == "Se importó 1 contacto (1 nuevo, 0 actualizados). Se omitieron 2 filas con errores."
    assert [row["row"] for row in answer["errors"]] == [3, 4]
    rosa = store.get(PAGE, "7101")
    assert rosa is not None and rosa.first_name == "Rosa" and rosa.tags == ("nueva",)


def test_what_the_store_would_refuse_is_found_before_writing(client: TestClient, store: ContactsStore) -> None:
    store.upsert_seen(PAGE, "7201", NOW - timedelta(hours=1))
    store.add_tags(PAGE, "7201", [f"t{index}" for index in range(49)], NOW)

    answer = upload(client, excel("psid;nombre;etiquetas\n7202;Nuevo;\n7201;Lleno;a, b\n"))

    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["errors"] == [{
        "row": 3, "field": "etiquetas",
        "message": "Fila 3: el contacto ya tiene 49 etiquetas; con las de esta fila serían 51 y el máximo es 50"}]
    assert store.get(PAGE, "7202") is None
    full = store.get(PAGE, "7201")
    assert full is not None and full.first_name is None and len(full.tags) == 49


@pytest.mark.parametrize(("data", "query", "status", "reason", "words"), [
    (b"PK\x03\x04" + b"\x00" * 100, "", 422, "contacts_csv_invalid", "libro de Excel"),
    (b"nombre;apellido\nAna;Ruiz\n", "", 422, "contacts_csv_invalid", "falta la columna «psid»"),
    (b"psid\n7301\n", "?page_id=999", 422, "contacts_import_invalid", "La página 999 no está configurada."),
    (b"psid\n7301\n", "?page_id=12ab", 422, "contact_invalid", "solo dígitos"),
    (b"psid;" + b"x" * MAX_IMPORT_BYTES, "", 413, "file_too_large", "El archivo supera 5 MB"),
])
def test_files_that_cannot_be_imported(client: TestClient, data: bytes, query: str, status: int, reason: str,
                                       words: str) -> None:
    answer = upload(client, data, query)

    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["reason_code"] == reason and words in answer.json()["error"]["message"]


def test_the_request_guard_admits_a_5_mb_file_and_no_more() -> None:
    assert BODY_LIMITS[IMPORT] == MAX_IMPORT_BYTES + MULTIPART_ENVELOPE_BYTES


def test_a_body_past_the_upload_cap_is_cut_before_it_is_read(client: TestClient) -> None:
    answer = upload(client, b"psid\n" + b"1\n" * ((MAX_IMPORT_BYTES + MULTIPART_ENVELOPE_BYTES) // 2))

    assert answer.status_code == 413 and answer.json()["error"]["reason_code"] == "body_too_large"


def login(client: TestClient, username: str, password: str) -> dict[str, str]:
    answer = client.post("/api/console/login", json={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return {"X-CSRF-Token": answer.json()["csrf_token"]}


def test_admins_only(app: FastAPI) -> None:
    admin, agent, anonymous = TestClient(app), TestClient(app), TestClient(app)
    csrf = login(admin, "ana", "ana-clave-segura-1")
    agent_csrf = login(agent, "beto", "beto-clave-segura-1")

    answers: dict[str, Any] = {
        "admin export": admin.get(EXPORT),
        "admin import": upload(admin, b"psid\n7401\n", headers=csrf),
        "agent export": agent.get(EXPORT),
        "agent import": upload(agent, b"psid\n7402\n", headers=agent_csrf),
        "anonymous import": upload(anonymous, b"psid\n7403\n", headers={}),
    }

    assert {name: answer.status_code for name, answer in answers.items()} == {
        "admin export": 200, "admin import": 200, "agent export": 403, "agent import": 403, "anonymous import": 401}


def test_a_row_the_store_refuses_after_the_check_writes_nothing_unless_partial(store: ContactsStore) -> None:
    """The contact gained tags between the check and the write: the one transaction writes nothing, or with
    ?partial=1 everything but that row."""
    from console.contacts_csv import apply_plan
    from contacts.csv_io import ImportRow

    store.upsert_seen(PAGE, "7401", NOW - timedelta(hours=1))
    store.add_tags(PAGE, "7401", [f"t{index}" for index in range(49)], NOW)
    rows = [ImportRow(2, PAGE, "7402", "Nuevo", None, (), {}),
            ImportRow(3, PAGE, "7401", "Lleno", None, ("a", "b"), {})]

    created, updated, refused = apply_plan(store, rows, NOW)
    assert (created, updated, [error.row for error in refused]) == (0, 0, [3])
    assert "50 etiquetas" in refused[0].message and store.get(PAGE, "7402") is None

    assert apply_plan(store, rows, NOW, partial=True)[:2] == (1, 0)
    full = store.get(PAGE, "7401")
    assert store.get(PAGE, "7402") is not None and full is not None and full.first_name is None
