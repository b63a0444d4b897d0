"""The benchmark report's writer (bench/report.py section builders, bench/reporting.py) on synthetic figures:
every section is in REPORT.md with its table, each chart is a PNG that opens, a section that could not run says why.
No stack and no timing: the real figures come from `make bench`."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import pytest
from PIL import Image

from bench import report
from bench.endtoend import ChannelRun
from bench.reporting import (
    SECTIONS,
    Machine,
    Section,
    latency_summary,
    render_markdown,
    slope_per_minute,
    write_report,
)

MACHINE = Machine({"CPU": "test CPU: 2 logical cores", "git commit": "abc1234"}, (0.5, 0.4, 0.3), (1.5, 1.0, 0.6))


def run(latencies: list[float], elapsed: float) -> ChannelRun:
    return ChannelRun(latencies, elapsed, len(latencies))


def synthetic_sections() -> list[Section]:
    burst = {
        "webhook_latencies_ms": [1.0 + i / 10 for i in range(200)],
        "accept_all_s": 0.8,
        "end_to_end_s": 31.0,
        "messages_per_s": 6.5,
        "saturated_latencies_ms": [0.5 + i / 20 for i in range(1000)],
        "saturated_rate": 200.0,
        "saturated_s": 5.02,
        "backlog_after_saturated_phase": 1400,
    }
    soak = report.SoakResult(
        minutes=1.0,
        rate=5.0,
        posted=300,
        replies=310,
        samples={"app": [(0.0, 100.0), (30.0, 101.0), (60.0, 102.0)], "rasa": [(0.0, 900.0), (60.0, 900.0)]},
        webhook_latencies_ms=[2.0, 3.0, 4.0],
    )
    return [
        report.webhook_section(burst, 200, 20, 20),
        report.end_to_end_section([(run([80.0, 90.0, 120.0], 10.0), run([95.0, 100.0, 140.0], 11.0))], 20),
        report.outbox_section(
            [("sqlite", 1, 400.0), ("sqlite", 2, 650.0), ("postgresql", 1, 300.0)], {"sqlite": (0.4, 2.1)}, 200, 20
        ),
        report.retrieval_section(
            [
                {
                    "size": 100,
                    "index": "flat",
                    "p50_ms": 4.0,
                    "p99_ms": 9.0,
                    "build_s": 0.1,
                    "save_s": 0.01,
                    "load_s": 0.02,
                },
                {
                    "size": 10_000,
                    "index": "hnsw",
                    "p50_ms": 5.0,
                    "p99_ms": 12.0,
                    "build_s": 2.0,
                    "save_s": 0.2,
                    "load_s": 0.3,
                },
            ],
            50,
        ),
        report.compare_section(
            "profiles",
            {"embedded": run([100.0], 5.0), "scale, 1 Rasa": run([130.0], 6.0)},
            "",
            "profiles.png",
            "p",
            {"embedded": {"app": 90.0, "rasa": 850.0}, "scale, 1 Rasa": {"app": 95.0, "rasa": 880.0, "outbox-1": 60.0}},
        ),
        report.not_run("rasa_instances", "the scale profile needs RabbitMQ (127.0.0.1:5672)"),
        report.memory_section({"app": 120.0, "rasa": 850.0}, {"app": 130.0, "rasa": 900.0}),
        report.soak_section(soak, 10.0),
    ]


def test_every_section_has_its_heading_table_and_an_openable_chart(tmp_path: Path) -> None:
    path = write_report(tmp_path, MACHINE, synthetic_sections(), "bench/report.py --quick")
    text = path.read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    assert headings == ["Machine", *(title for _, title in SECTIONS)]
    charts = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(charts) == sorted(
        ["webhook.png", "end_to_end.png", "outbox.png", "retrieval.png", "profiles.png", "memory.png", "soak.png"]
    )
    for name in charts:
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG"
            assert image.size[0] > 300 and image.size[1] > 200
    assert "**not run: the scale profile needs RabbitMQ (127.0.0.1:5672)**" in text
    assert not (tmp_path / "rasa_instances.png").exists()
    assert "| test CPU: 2 logical cores |" in text
    assert "0.50 / 0.40 / 0.30" in text and "1.50 / 1.00 / 0.60" in text


def test_the_tables_carry_the_figures(tmp_path: Path) -> None:
    text = write_report(tmp_path, MACHINE, synthetic_sections(), "x").read_text(encoding="utf-8")
    # webhook: 1.0 … 20.9 ms → p50 11.0 (nearest rank), max 20.9
    assert "| burst, 20 in flight | 11.0 | 18.9 | 20.7 | 20.9 |" in text
    # the open loop while Rasa is saturated: 0.50 … 50.45 ms → p50 25.5 (nearest rank), p99 50.0
    assert "| open loop 200/s, Rasa saturated (1400 waiting after) | 25.5 | 45.5 | 50.0 | 50.5 |" in text
    # end to end: REST 0.3 msg/s over 10 s, ours 3 over 11 s → time per message ratio 1.100
    assert "ours / REST: **1.100** (+10.0%" in text
    assert "| sqlite | 2 | 650.0 | 0.40 | 2.10 |" in text
    assert "| postgresql | 1 | 300.0 | – | – |" in text
    assert "| 10,000 | hnsw | 5.0 | 12.0 |" in text
    assert "| all | 970 | 1030 | +60 |" in text
    assert "| app | 100 | 102 | 102 | +2.00 |" in text
    assert "| rasa | 900 | 900 | 900 | +0.00 |" in text
    assert "scale, 1 Rasa: 0.83× the msg/s of embedded" in text
    assert "scale, 1 Rasa, resident memory after the run: 1035 MiB in all (app 95, rasa 880, outbox-1 60)" in text


def test_end_to_end_rounds_are_pooled_and_each_ratio_is_listed(tmp_path: Path) -> None:
    """Two rounds of 3 messages: REST 10 s and 10 s, ours 11 s and 13 s → rounds 1.100 and 1.300, pooled 24/20."""
    section = report.end_to_end_section(
        [(run([80.0, 90.0, 120.0], 10.0), run([95.0, 100.0, 140.0], 11.0)),
         (run([70.0, 85.0, 100.0], 10.0), run([90.0, 110.0, 150.0], 13.0))],
        20,
    )
    text = write_report(tmp_path, MACHINE, [section], "x").read_text(encoding="utf-8")
    assert "ours / REST: **1.200** (+20.0%" in text
    assert "each round's ratio: 1.100, 1.300" in text
    # the table pools the rounds: ours 6 messages over 24 s, its slowest latency the second round's
    assert re.search(r"^\| our channel \| 0\.25 \|.*\| 150 \| 6 \|$", text, flags=re.MULTILINE), text


def test_a_section_left_out_is_listed_as_not_run() -> None:
    text = render_markdown(MACHINE, [], "x")
    for _, title in SECTIONS:
        assert f"## {title}\n\n**not run: not selected for this run**" in text


def test_slope_and_summary() -> None:
    assert slope_per_minute([0, 60, 120], [10, 12, 14]) == pytest.approx(2.0)
    assert slope_per_minute([0], [10]) == 0.0
    summary = latency_summary([float(v) for v in range(1, 101)])
    assert (summary["p50"], summary["p90"], summary["p99"], summary["max"]) == (51.0, 90.0, 99.0, 100.0)
    assert math.isnan(latency_summary([])["p99"])


def test_progress_prints_the_first_tick_and_a_line_per_tenth_when_not_a_terminal() -> None:
    stream = io.StringIO()
    tick = report.Progress(stream).bar("soak samples", 20)
    for _ in range(20):
        tick()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11  # the first tick, then one line per tenth
    assert lines[-1].endswith("20/20")


def test_unknown_section_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        report.main(["--only", "webhook,nonsense"])
    assert "unknown sections: nonsense" in capsys.readouterr().err
