"""The benchmark report's writer: figures in, `REPORT.md` and PNG charts out. No stack, no network.

`bench/report.py` measures and hands this module plain values (a `Machine`, `Section`s); everything here is a
function of them, so the smoke test (tests/integration/test_bench_report.py) checks the writer on synthetic figures
without starting anything. Figures are printed and written, never asserted.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server
import matplotlib.pyplot as plt  # noqa: E402

# Every section the report has, in order (key, title). A section that could not run says why instead of figures.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("webhook", "Webhook latency under a burst (Rasa saturated)"),
    ("end_to_end", "End to end: our channel vs Rasa's REST channel"),
    ("outbox", "Outbox throughput"),
    ("retrieval", "Retrieval latency by matrix size"),
    ("profiles", "Embedded vs scale profile"),
    ("rasa_instances", "1 vs 2 Rasa instances"),
    ("memory", "Memory: resident memory per process"),
    ("soak", "Soak: resident memory at a steady rate"),
    ("reports", "Reports over a year of a busy page"),
)
TITLES = dict(SECTIONS)

ChartKind = Literal["cdf", "bars", "lines"]


@dataclass(frozen=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]


@dataclass(frozen=True)
class Chart:
    """`cdf`: series name -> samples; `bars`: series name -> one value per label (grouped bars);
    `lines`: series name -> y values at `x[name]`."""

    kind: ChartKind
    file: str  # a file name under the report's folder, e.g. "webhook.png"
    title: str
    xlabel: str
    ylabel: str
    series: dict[str, Sequence[float]]
    labels: Sequence[str] = ()
    x: dict[str, Sequence[float]] = field(default_factory=dict)
    log_x: bool = False


@dataclass(frozen=True)
class Section:
    key: str
    what: str = ""  # one or two sentences: what was measured and how
    table: Table | None = None
    chart: Chart | None = None
    notes: Sequence[str] = ()
    not_run: str | None = None  # why this section has no figures

    @property
    def title(self) -> str:
        return TITLES.get(self.key, self.key)


@dataclass(frozen=True)
class Machine:
    """Facts about the machine and the run (ordered label -> value), and the load average around the run."""

    facts: dict[str, str]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] | None = None


# --- figures ---------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank on the sorted values (the other bench scripts' definition)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def latency_summary(values_ms: Sequence[float]) -> dict[str, float]:
    if not values_ms:
        return {name: math.nan for name in ("p50", "p90", "p99", "max", "mean")}
    return {
        "p50": percentile(values_ms, 0.50),
        "p90": percentile(values_ms, 0.90),
        "p99": percentile(values_ms, 0.99),
        "max": max(values_ms),
        "mean": statistics.fmean(values_ms),
    }


def slope_per_minute(seconds: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of `values` against time, per minute (0 with fewer than two samples)."""
    if len(seconds) < 2 or len(set(seconds)) < 2:
        return 0.0
    mean_t, mean_v = statistics.fmean(seconds), statistics.fmean(values)
    covariance = sum((t - mean_t) * (v - mean_v) for t, v in zip(seconds, values, strict=True))
    variance = sum((t - mean_t) ** 2 for t in seconds)
    return covariance / variance * 60.0


def ms(value: float) -> str:
    return "–" if math.isnan(value) else (f"{value:.1f}" if value < 100 else f"{value:.0f}")


def mb(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.1f}"


# --- rendering -------------------------------------------------------------------------------------------------


def markdown_table(table: Table) -> str:
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in table.headers) + " |", "|" + "---|" * len(table.headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.rows]
    return "\n".join(lines)


def draw_chart(chart: Chart, path: Path) -> None:
    figure, axes = plt.subplots(figsize=(7.5, 4.2), dpi=100)
    try:
        if chart.kind == "cdf":
            for name, samples in chart.series.items():
                ordered = sorted(samples)
                if ordered:
                    fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
                    axes.step(ordered, fractions, where="post", label=f"{name} (n={len(ordered)})")
            axes.set_ylim(0, 1.02)
        elif chart.kind == "bars":
            names = list(chart.series)
            width = 0.8 / max(1, len(names))
            for number, name in enumerate(names):
                positions = [i + (number - (len(names) - 1) / 2) * width for i in range(len(chart.labels))]
                axes.bar(positions, list(chart.series[name]), width=width, label=name)
            axes.set_xticks(range(len(chart.labels)), list(chart.labels), rotation=20 if len(chart.labels) > 4 else 0)
        else:
            for name, values in chart.series.items():
                axes.plot(list(chart.x.get(name, range(len(values)))), list(values), marker=".", label=name)
        if chart.log_x:
            axes.set_xscale("log")
        axes.set_title(chart.title)
        axes.set_xlabel(chart.xlabel)
        axes.set_ylabel(chart.ylabel)
        axes.grid(True, alpha=0.3)
        if chart.series:
            axes.legend(fontsize="small")
        figure.tight_layout()
        figure.savefig(path, format="png")
    finally:
        plt.close(figure)


def render_markdown(machine: Machine, sections: Sequence[Section], command: str) -> str:
    """The whole report; sections the caller did not give are listed as not run, so every heading is always there."""
    given = {section.key: section for section in sections}
    load_after = "–" if machine.load_after is None else " / ".join(f"{v:.2f}" for v in machine.load_after)
    out = [
        "# Benchmark report",
        "",
        f"Written by `{command}`. Figures are measured on the machine below, printed and written here, never "
        "asserted by a test. Several processes share the cores: read the load average before and after the run "
        "before comparing two reports.",
        "",
        "## Machine",
        "",
        markdown_table(
            Table(
                ["fact", "value"],
                [
                    *machine.facts.items(),
                    ("load average before (1/5/15 min)", " / ".join(f"{v:.2f}" for v in machine.load_before)),
                    ("load average after (1/5/15 min)", load_after),
                ],
            )
        ),
    ]
    for key, _ in SECTIONS:
        section = given.get(key) or Section(key, not_run="not run: not selected for this run")
        out += ["", f"## {section.title}", ""]
        if section.what:
            out += [section.what, ""]
        if section.not_run:
            reason = section.not_run if section.not_run.startswith("not run") else f"not run: {section.not_run}"
            out += [f"**{reason}**"]
            continue
        if section.table is not None:
            out += [markdown_table(section.table), ""]
        if section.chart is not None:
            out += [f"![{section.chart.title}]({section.chart.file})", ""]
        out += [f"- {note}" for note in section.notes]
    return "\n".join(out).rstrip() + "\n"


def write_report(out_dir: Path, machine: Machine, sections: Sequence[Section], command: str) -> Path:
    """Writes each section's chart and then REPORT.md; returns the report's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for section in sections:
        if section.chart is not None and not section.not_run:
            draw_chart(section.chart, out_dir / section.chart.file)
    report = out_dir / "REPORT.md"
    report.write_text(render_markdown(machine, sections, command), encoding="utf-8")
    return report
