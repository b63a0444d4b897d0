"""Charts of a report as SVG drawn on the server: a line per series over the period's days, or horizontal bars.

The console shows them in `<img>` tags (an image runs no script, and the console's CSP stays as it is). Every text
that reaches the drawing (titles, series names, labels a customer or an admin may have typed, such as a campaign's
ref) is XML-escaped; the drawing holds no script, no link, no external reference.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from reports.model import Cell, Part, Report

WIDTH, HEIGHT = 720, 280
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 40, 48
COLORS = ("#1f6feb", "#2da44e", "#bf8700", "#cf222e", "#8250df", "#57606a")
FONT = 'font-family="sans-serif" font-size="12"'
TITLE_FONT = 'font-family="sans-serif" font-size="14" font-weight="bold"'
MAX_LABEL = 48
NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")  # outside XML 1.0's Char


def text(value: object) -> str:
    """A value as XML character data (and safe inside a double-quoted attribute). Characters XML cannot hold at all
    (C0 controls, lone surrogates) are dropped: one of them would make the whole image unreadable."""
    return escape(NOT_XML.sub("", str(value)), {'"': "&quot;", "'": "&#x27;"})


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def nice_top(value: float) -> float:
    """The axis' top: 1, 2 or 5 times a power of ten, at least `value` (1 for an empty chart)."""
    if value <= 0:
        return 1.0
    step = 10.0 ** math.floor(math.log10(value))
    for factor in (1, 2, 5, 10):
        if factor * step >= value:
            return factor * step
    return 10 * step


def _number(value: float) -> str:
    return f"{value:,.0f}".replace(",", ".") if value >= 10 or value == int(value) else f"{value:.1f}"


def _frame(title: str, body: list[str], height: int = HEIGHT) -> str:
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-label="{text(title)}">',
        f"<title>{text(title)}</title>",
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<text x="{LEFT}" y="22" {TITLE_FONT} fill="#24292f">{text(title)}</text>',
        *body, "</svg>"])


def line_chart(title: str, days: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]],
               unit: str = "") -> str:
    """One line per series over `days` (a gap where a value is None), with the axis from 0 and a legend."""
    values = [v for _, points in series for v in points if v is not None]
    top = nice_top(max(values, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(days) - 1)

    def x(i: int) -> float:
        return LEFT + (i * step if len(days) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h - plot_h * v / top

    body = []
    for tick in range(5):
        value = top * tick / 4
        body.append(f'<line x1="{LEFT}" y1="{y(value):.1f}" x2="{WIDTH - RIGHT}" y2="{y(value):.1f}" '
                    'stroke="#d0d7de" stroke-width="1"/>')
        body.append(f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" {FONT} text-anchor="end" fill="#57606a">'
                    f'{text(_number(value) + unit)}</text>')
    every = max(1, len(days) // 8)
    for i, day in enumerate(days):
        if i % every == 0 or i == len(days) - 1:
            body.append(f'<text x="{x(i):.1f}" y="{HEIGHT - BOTTOM + 16}" {FONT} text-anchor="middle" '
                        f'fill="#57606a">{text(day[5:] if len(day) == 10 else day)}</text>')
    for n, (name, points) in enumerate(series):
        color = COLORS[n % len(COLORS)]
        runs: list[list[str]] = [[]]
        for i, point in enumerate(points):
            if point is None:
                runs.append([])
            else:
                runs[-1].append(f"{x(i):.1f},{y(point):.1f}")
        for run in runs:
            if len(run) > 1:
                body.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(run)}"/>')
            elif run:
                cx, cy = run[0].split(",")
                body.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{color}"/>')
        legend_x = LEFT + n * 200
        body.append(f'<rect x="{legend_x}" y="{HEIGHT - 18}" width="12" height="12" fill="{color}"/>')
        body.append(f'<text x="{legend_x + 16}" y="{HEIGHT - 8}" {FONT} fill="#24292f">{text(_short(name))}</text>')
    return _frame(title, body)


def bar_chart(title: str, bars: Sequence[tuple[str, float]], unit: str = "") -> str:
    """Horizontal bars, one per label, longest scale from 0, the value written after each."""
    row_h = 26
    height = TOP + max(1, len(bars)) * row_h + 16
    label_w = 300
    plot_w = WIDTH - label_w - RIGHT - 60
    top = nice_top(max((value for _, value in bars), default=0))
    body = []
    if not bars:
        body.append(f'<text x="{LEFT}" y="{TOP + 16}" {FONT} fill="#57606a">Sin datos en el período.</text>')
    for i, (name, value) in enumerate(bars):
        y = TOP + i * row_h
        width = plot_w * value / top
        body.append(f'<text x="{label_w - 8}" y="{y + 16}" {FONT} text-anchor="end" fill="#24292f">'
                    f'{text(_short(name))}</text>')
        body.append(f'<rect x="{label_w}" y="{y + 4}" width="{width:.1f}" height="{row_h - 8}" '
                    f'fill="{COLORS[i % len(COLORS)]}"/>')
        body.append(f'<text x="{label_w + width + 6:.1f}" y="{y + 16}" {FONT} fill="#24292f">'
                    f'{text(_number(value) + unit)}</text>')
    return _frame(title, body, height)


# --- a report's charts ---------------------------------------------------------------------------------------------


def _column(report: Report, table_name: str, key: str) -> list[Cell]:
    found = report.tables[table_name]
    index = [c.key for c in found.columns].index(key)
    return [row[index] for row in found.rows]


def _numbers(cells: Sequence[Cell]) -> list[float | None]:
    return [float(c) if isinstance(c, int | float) else None for c in cells]


def _bars(report: Report, table_name: str, label_key: str, value_key: str) -> list[tuple[str, float]]:
    labels, values = _column(report, table_name, label_key), _column(report, table_name, value_key)
    return [(str(name), float(value)) for name, value in zip(labels, values, strict=True)
            if isinstance(value, int | float) and value > 0]


def _traffic(report: Report) -> str:
    days = [str(d) for d in _column(report, "dias", "fecha")]
    return line_chart("Mensajes y conversaciones por día", days, [
        ("Mensajes de clientes", _numbers(_column(report, "dias", "mensajes"))),
        ("Conversaciones", _numbers(_column(report, "dias", "conversaciones"))),
        ("Contactos nuevos", _numbers(_column(report, "dias", "contactos_nuevos")))])


def _without_person(report: Report) -> str:
    days = [str(d) for d in _column(report, "atencion_por_dia", "fecha")]
    return line_chart("% de preguntas respondidas sin una persona, por día", days, [
        ("Respondidas sin una persona", _numbers(_column(report, "atencion_por_dia", "sin_persona_pct")))], unit=" %")


def _handling(report: Report) -> str:
    return bar_chart("Cómo se atendió cada pregunta", _bars(report, "atencion", "atencion", "preguntas"))


def _pauses(report: Report) -> str:
    return bar_chart("Conversaciones pasadas a una persona, por motivo", _bars(report, "pausas", "motivo_es",
                                                                                "episodios"))


def _sends(report: Report) -> str:
    totals: dict[str, float] = {}
    for name, value in _bars(report, "envios", "estado_es", "mensajes"):
        totals[name] = totals.get(name, 0) + value
    return bar_chart("Mensajes enviados por resultado", list(totals.items()))


@dataclass(frozen=True)
class Chart:
    title: str
    table: str  # the table it draws (a part without the table has no such chart)
    draw: Callable[[Report], str]


CHARTS: Mapping[str, Chart] = {
    "mensajes": Chart("Mensajes y conversaciones por día", "dias", _traffic),
    "sin_persona": Chart("% respondidas sin una persona", "atencion_por_dia", _without_person),
    "atencion": Chart("Cómo se atendió cada pregunta", "atencion", _handling),
    "pausas": Chart("Conversaciones pasadas a una persona", "pausas", _pauses),
    "envios": Chart("Mensajes enviados por resultado", "envios", _sends),
}


def charts_of(report: Report) -> list[str]:
    """The names of the charts `report` can draw (its part's)."""
    return [name for name, chart in CHARTS.items() if chart.table in report.tables]


def draw(report: Report, name: str) -> str | None:
    """The chart `name` of `report` as SVG, or None when there is no such chart in its part."""
    chart = CHARTS.get(name)
    if chart is None or chart.table not in report.tables:
        return None
    return chart.draw(report)


PARTS_OF_CHARTS: Mapping[Part, tuple[str, ...]] = {
    "all": tuple(CHARTS), "knowledge": ("sin_persona", "atencion")}
