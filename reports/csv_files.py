"""A report's table as a CSV file the way the console's other downloads are (contacts, a broadcast's failed ones):
UTF-8 with BOM, `;` separated, CRLF, the Spanish column names as the header, and cells a spreadsheet would run as
formulas escaped with `contacts.csv_io.escape_cell`. Decimals are written with a comma, as a spreadsheet in Spanish
reads them next to `;`."""

from __future__ import annotations

import csv
import io

from contacts.csv_io import escape_cell
from reports.model import Cell, Table

BOM = "\ufeff"
DELIMITER = ";"


def cell_text(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "sí" if value else "no"
    if isinstance(value, float):
        return repr(value).replace(".", ",") if value == value else ""  # NaN never reaches a file
    return escape_cell(str(value))


def table_csv(table: Table) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=DELIMITER, lineterminator="\r\n")
    writer.writerow([escape_cell(column.label) for column in table.columns])
    for row in table.rows:
        writer.writerow([cell_text(value) for value in row])
    return (BOM + out.getvalue()).encode("utf-8")


def filename_of(table: Table, first_day: str, last_day: str) -> str:
    return f"reporte-{table.name}-{first_day}-{last_day}.csv"
