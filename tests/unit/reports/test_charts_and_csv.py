"""A report's charts and CSV files: hostile labels (a campaign ref or rule name someone typed) reach the SVG escaped
and the SVG parses as XML without any script, link or external reference; the CSV has the BOM, `;`, the Spanish
header, decimals with a comma and cells a spreadsheet would run as formulas escaped.

Would catch: a label written into the SVG as markup (`<script>` in an image the console shows), a `"` breaking out of
an attribute, `=HYPERLINK(...)` reaching Excel as a formula, a CSV without its BOM (Excel then misreads «ñ»)."""

from __future__ import annotations

import codecs
import csv
import io
import xml.etree.ElementTree as ElementTree
from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from reports.charts import bar_chart, line_chart, nice_top
from reports.csv_files import table_csv
from reports.model import Cell, table

HOSTILE = ['<script>alert(1)</script>', '"><image href="https://evil.example/x.png"/>', "a & b", "'; onload='x",
           "\u202eevil", "=HYPERLINK(\"http://x\")"]
SVG = "{http://www.w3.org/2000/svg}"


def assert_safe_svg(drawing: str) -> ElementTree.Element:
    root = ElementTree.fromstring(drawing)  # well-formed
    assert root.tag == SVG + "svg"
    tags = {element.tag.removeprefix(SVG) for element in root.iter()}
    assert tags <= {"svg", "title", "rect", "text", "line", "polyline", "circle"}, tags
    for element in root.iter():
        for name, value in element.attrib.items():
            assert not name.lower().startswith("on"), name
            assert "href" not in name.lower(), name
            assert "javascript:" not in value.lower()
    assert "<script" not in drawing.lower()
    return root


def texts(root: ElementTree.Element) -> list[str]:
    return [element.text or "" for element in root.iter() if element.tag in (SVG + "text", SVG + "title")]


def test_hostile_labels_are_text_in_a_bar_chart() -> None:
    root = assert_safe_svg(bar_chart("Campañas <b>", [(label, i + 1) for i, label in enumerate(HOSTILE)]))
    shown = texts(root)
    assert "Campañas <b>" in shown  # the title as the text it is
    assert any(text.startswith("<script>alert(1)") for text in shown)
    assert root.get("aria-label") == "Campañas <b>"


def test_hostile_series_names_and_days_are_text_in_a_line_chart() -> None:
    days = [date(2025, 3, d).isoformat() for d in range(1, 6)]
    root = assert_safe_svg(line_chart('Mensajes "por" día', days, [(HOSTILE[0], [1, 2, None, 4, 5]),
                                                                   (HOSTILE[1], [0, 0, 0, 0, 0])]))
    assert HOSTILE[0] in texts(root)


@given(labels=st.lists(st.text(max_size=30).filter(lambda t: all(c.isprintable() for c in t)), max_size=6),
       title=st.text(max_size=30).filter(lambda t: all(c.isprintable() for c in t)))
def test_any_printable_text_makes_a_safe_svg(labels: list[str], title: str) -> None:
    assert_safe_svg(bar_chart(title, [(label, float(i)) for i, label in enumerate(labels)]))
    assert_safe_svg(line_chart(title, ["2025-01-01", "2025-01-02"], [(label, [1.0, None]) for label in labels]))


@given(labels=st.lists(st.text(max_size=30), max_size=6), title=st.text(max_size=30))
def test_any_text_even_control_characters_makes_a_well_formed_svg(labels: list[str], title: str) -> None:
    assert_safe_svg(bar_chart(title, [(label, float(i)) for i, label in enumerate(labels)]))
    assert_safe_svg(line_chart(title, ["2025-01-01"], [(label, [1.0]) for label in labels]))


def test_a_control_character_is_dropped_not_written() -> None:
    root = assert_safe_svg(bar_chart("Regla\x01 uno", [("camp\x00aña\x1f", 1.0), ("\ud800x\uffff", 2.0)]))
    assert "Regla uno" in texts(root) and "campaña" in texts(root) and "x" in texts(root)


def test_an_empty_chart_says_so_and_a_single_day_is_a_point() -> None:
    assert "Sin datos en el período." in bar_chart("Vacío", [])
    assert "<circle" in line_chart("Un día", ["2025-01-01"], [("x", [3])])


def test_the_axis_top_is_a_round_number_at_least_the_largest_value() -> None:
    assert [nice_top(v) for v in (0, 0.3, 1, 7, 10, 11, 99, 101, 4_999, 5_001)] == [
        1, 0.5, 1, 10, 10, 20, 100, 200, 5_000, 10_000]


def test_a_table_as_csv_opens_in_excel_safely() -> None:
    rows: list[list[Cell]] = [["=1+1", 3, 87.5, None], ["+57 99", 0, 0.0, "Ñandú; «comillas»"],
                              ["@SUM(A1)", 1, None, "-2"]]
    data = table_csv(table("campanas", "Campañas", [("campana", "Campaña"), ("n", "Contactos"), ("pct", "%"),
                                                   ("nota", "Nota")], rows))
    assert data.startswith(codecs.BOM_UTF8)
    text = data.decode("utf-8-sig")
    assert "\r\n" in text
    read = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert read[0] == ["Campaña", "Contactos", "%", "Nota"]
    assert read[1] == ["'=1+1", "3", "87,5", ""]
    assert read[2] == ["'+57 99", "0", "0,0", "Ñandú; «comillas»"]
    assert read[3] == ["'@SUM(A1)", "1", "", "'-2"]
