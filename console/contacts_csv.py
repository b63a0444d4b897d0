"""Contacts as a spreadsheet, for admins (and the service token): `GET /api/console/contacts/export.csv` streams every
contact (or one page's) as Excel opens it; `POST /api/console/contacts/import` reads a CSV (multipart `file`) and adds
names, tags and fields. A file with errors imports nothing and answers 422 with the errors by row, unless
`?partial=1` (then the valid rows are imported and the answer lists the rows left out).

The file format is contacts/csv_io.py's; the store is the console's contacts part (console/contacts.py).
Mounted by `console.routes.install` (`install`); this module does not import it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from console.auth import Principal, require_role
from console.contacts import checked, contacts_of
from console.parts import ConsoleError, now_of
from contacts.csv_io import (
    MAX_IMPORT_BYTES,
    MAX_REPORTED_ERRORS,
    CsvRefused,
    ImportPlan,
    ImportRow,
    RowError,
    export_csv,
    field_keys_of,
    import_csv,
    merge_errors,
)
from contacts.model import check_page_id
from contacts.store import ContactsStore, ImportRowInvalid
from core.postgres import DatabaseUnavailable
from core.settings import Settings

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/console/contacts", tags=["console"])
AdminOrService = Annotated[Principal, Depends(require_role("admin", service=True))]
PageFilter = Annotated[str | None, Query(max_length=64, description="Solo los contactos de esta página.")]

UNAVAILABLE = "La base de datos de los contactos no responde; intente en un momento."


class RowErrorOut(BaseModel):
    row: int
    field: str | None
    message: str


class ImportOut(BaseModel):
    created: int
    updated: int
    skipped_rows: int  # rows with errors, left out (only with ?partial=1)
    errors: list[RowErrorOut]
    errors_total: int
    message: str


def _page(page_id: str | None) -> str | None:
    return checked(check_page_id, page_id.strip()) if page_id and page_id.strip() else None


@router.get("/export.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}, "description": "UTF-8 con BOM, separado por «;»."}})
async def export_contacts(request: Request, principal: AdminOrService, page_id: PageFilter = None) -> StreamingResponse:
    """Every contact (or one page's) as CSV: page_id;psid;nombre;apellido;etiquetas;primer_contacto;ultimo_mensaje;
    campana;campo:<clave>… Cells a spreadsheet would run as formulas start with `'` (the import removes it)."""
    page = _page(page_id)
    store = contacts_of(request)
    try:  # a first pass for the field columns; a database that is down is a 503 before the download starts
        keys = await run_in_threadpool(lambda: field_keys_of(store.export_rows(page)))
    except DatabaseUnavailable as exc:
        raise ConsoleError("contacts_unavailable", UNAVAILABLE) from exc
    filename = f"contactos-{now_of(request).date().isoformat()}.csv"
    log.info("contacts exported", extra={"by": principal.username, "page_id": page})
    return StreamingResponse(_streamed(store, page, keys), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                      "Cache-Control": "no-store"})


def _streamed(store: ContactsStore, page: str | None, keys: list[str]) -> Iterator[bytes]:
    """Pieces of the file, read from the store as they are sent (Starlette runs this iterator in a thread)."""
    try:
        yield from export_csv(store.export_rows(page), keys)
    except DatabaseUnavailable:
        log.error("the contact store stopped answering during an export", extra={"page_id": page})
        raise


def default_page(settings: Settings, page_id: str | None) -> tuple[str | None, frozenset[str]]:
    """The page for rows without page_id (the one asked for, else the only configured page) and the pages a row may
    name."""
    pages = frozenset(settings.page_tokens)
    page = _page(page_id)
    if page is not None and page not in pages:
        raise ConsoleError("contacts_import_invalid", f"La página {page} no está configurada.", field="page_id")
    if page is None and len(pages) == 1:
        page = next(iter(pages))
    return page, pages


@router.post("/import", response_model=ImportOut)
async def import_contacts(request: Request, principal: AdminOrService, file: Annotated[UploadFile, File()],
                          partial: Annotated[bool, Query(description="1: importa las filas válidas aunque otras "
                                                                     "tengan errores.")] = False,
                          page_id: Annotated[str | None, Query(max_length=64, description="La página de las filas "
                                                               "sin page_id (por omisión, la única configurada).")]
                          = None) -> ImportOut:
    """Import contacts from a CSV (UTF-8 or Windows-1252, `;` or `,`, as Excel saves it; the export's columns,
    `psid` required): names, tags and `campo:<clave>` fields are added to the contacts (created when new)."""
    data = await file.read(MAX_IMPORT_BYTES + 1)
    page, pages = default_page(request.app.state.settings, page_id)
    plan: ImportPlan = await run_in_threadpool(import_csv, data, page, pages=pages)  # CsvRefused: 413 or 422
    store = contacts_of(request)
    try:
        rows, merge = await run_in_threadpool(check_with_store, store, plan.rows)
    except DatabaseUnavailable as exc:
        raise ConsoleError("contacts_unavailable", UNAVAILABLE) from exc
    errors = sorted([*plan.errors, *merge], key=lambda error: error.row)
    error_rows = len({error.row for error in errors})
    if errors and not partial:
        raise ConsoleError("contacts_import_invalid",
                           f"El archivo tiene {_count(len(errors), 'error', 'errores')} en "
                           f"{_count(error_rows, 'fila')}: no se importó ningún "
                           "contacto. Corríjalos y vuelva a importarlo, o importe solo las filas válidas (partial=1).",
                           errors=[error.to_dict() for error in errors[:MAX_REPORTED_ERRORS]],
                           errors_total=len(errors), created=0, updated=0)
    try:
        created, updated, refused = await run_in_threadpool(apply_plan, store, rows, now_of(request), partial)
    except DatabaseUnavailable as exc:
        raise ConsoleError("contacts_unavailable", UNAVAILABLE) from exc
    if refused and not partial:  # the store refused a row the check passed (the contact changed meanwhile)
        raise ConsoleError("contacts_import_invalid",
                           f"{refused[0].message} No se importó ningún contacto. Corríjala y vuelva a importar el "
                           "archivo, o importe solo las filas válidas (partial=1).",
                           errors=[error.to_dict() for error in refused], errors_total=len(refused), created=0,
                           updated=0)
    errors = sorted([*errors, *refused], key=lambda error: error.row)
    skipped = len({error.row for error in errors})
    log.info("contacts imported", extra={"by": principal.username, "created": created, "updated": updated,
                                         "skipped_rows": skipped})
    message = (f"Se {_count(created + updated, 'importó', 'importaron')} {_count(created + updated, 'contacto')} "
               f"({_count(created, 'nuevo')}, {updated} actualizados).")
    if skipped:
        message += f" Se {_count(skipped, 'omitió', 'omitieron')} {_count(skipped, 'fila')} con errores."
    return ImportOut(created=created, updated=updated, skipped_rows=skipped, errors_total=len(errors),
                     errors=[RowErrorOut(**error.to_dict()) for error in errors[:MAX_REPORTED_ERRORS]],
                     message=message)


def _count(count: int, one: str, many: str | None = None) -> str:
    """"1 fila", "2 filas"; a verb ("importó"/"importaron") without the number."""
    word = one if count == 1 else (many or one + "s")
    return word if one.endswith("ó") else f"{count} {word}"


def check_with_store(store: ContactsStore, rows: list[ImportRow]) -> tuple[list[ImportRow], list[RowError]]:
    """The rows the store will take with the contacts it has, and the errors of the others (`merge_errors`)."""
    kept: list[ImportRow] = []
    errors: list[RowError] = []
    for row in rows:
        refused = merge_errors(row, store.get(row.page_id, row.psid))
        errors.extend(refused)
        if not refused:
            kept.append(row)
    return kept, errors


def apply_plan(store: ContactsStore, rows: list[ImportRow], now: datetime, partial: bool = False) \
        -> tuple[int, int, list[RowError]]:
    """Write the rows in one transaction, all or nothing (`ContactsStore.import_contacts`): (created, updated, rows
    the store refused — e.g. more than 50 tags with the ones the contact gained since the check). A refused row
    writes nothing: (0, 0, [its error]); with `partial` the batch is written again without it."""
    refused: list[RowError] = []
    while True:
        try:
            created, updated = store.import_contacts(rows, now)
            return created, updated, refused
        except ImportRowInvalid as exc:
            row = rows[exc.index]
            refused.append(RowError(row.row, None, f"Fila {row.row}: {exc.message_es}"))
            if not partial:
                return 0, 0, refused
            rows = rows[:exc.index] + rows[exc.index + 1:]


def install(app: FastAPI) -> None:
    app.include_router(router)


__all__ = ["CsvRefused", "install", "router"]
