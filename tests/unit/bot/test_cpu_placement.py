"""RASA_CPUS: `bot run` gives Rasa's processes CPUs of their own and the other processes the rest, every thread of
each (issue 11: Rasa's turns preempted by the other processes' work on its CPU were 16 % slower). The placement rule
on given CPU sets, the setting's parsing, and real children whose threads' CPUs are read back from /proc."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.stack import CpuPlacement, Ports, StackError, available_cpus, build_stack, cpu_placement
from core.settings import MAX_CPU_ID, SettingsError, format_cpu_list, load_settings, parse_cpu_list
from tests.support.children import started

cpus = parse_cpu_list


@pytest.mark.parametrize(("available", "instances", "rasa", "others"), [
    ("0-1", 1, "0", "1"),
    ("0-3", 1, "0-1", "2-3"),
    ("0-7", 1, "0-3", "4-7"),
    ("0-2", 1, "0", "1-2"),
    ("0-3", 3, "0-2", "3"),  # one CPU each for three instances, one left for the rest
    ("0-3", 6, "0-2", "3"),  # more instances than CPUs: the others still keep one
    ("2,5,9", 1, "2", "5,9"),  # a container's share: the CPUs it is given, not 0…n
])
def test_auto_gives_rasa_half_and_at_least_one_cpu_per_instance_and_always_leaves_one(
    available: str, instances: int, rasa: str, others: str
) -> None:
    placement = cpu_placement("auto", cpus(available), instances)
    assert placement == CpuPlacement(cpus(rasa), cpus(others))
    assert not placement.rasa & placement.others


def test_off_and_a_single_cpu_place_nothing() -> None:
    assert cpu_placement("off", cpus("0-7"), 1) is None
    assert cpu_placement("auto", cpus("3"), 1) is None


def test_a_list_gives_rasa_those_cpus_and_the_others_the_rest_or_says_what_is_wrong() -> None:
    assert cpu_placement("1", cpus("0-3"), 1) == CpuPlacement(cpus("1"), cpus("0,2-3"))
    with pytest.raises(StackError, match=r"names CPU 4-5, which this machine does not give the bot \(it may use "
                                         r"CPU 0-3\)"):
        cpu_placement("0,4-5", cpus("0-3"), 1)
    with pytest.raises(StackError, match="leaves no CPU for the other processes"):
        cpu_placement("0-1", cpus("0-1"), 1)


def test_the_setting_is_off_auto_or_a_cpu_list_kept_normalized() -> None:
    assert load_settings({}).rasa_cpus == "off"
    assert load_settings({"RASA_CPUS": " Auto "}).rasa_cpus == "auto"
    assert load_settings({"RASA_CPUS": "3,0-1,2"}).rasa_cpus == "0-3"
    assert format_cpu_list({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    for bad in ("x", "3-1", "0-99999", "1,,2", "-1", "0;1", "todos"):
        with pytest.raises(SettingsError, match="RASA_CPUS must be off, auto or a list of CPUs"):
            load_settings({"RASA_CPUS": bad})


@settings(max_examples=300, deadline=None)
@given(st.frozensets(st.integers(min_value=0, max_value=MAX_CPU_ID), min_size=1, max_size=64))
def test_any_set_of_cpus_written_as_a_list_reads_back_the_same(cpu_set: frozenset[int]) -> None:
    written = format_cpu_list(cpu_set)
    assert parse_cpu_list(written) == cpu_set
    assert load_settings({"RASA_CPUS": written}).rasa_cpus == written


def test_the_error_shows_what_was_typed_and_digits_are_ascii_only() -> None:
    with pytest.raises(SettingsError, match="not 'Todos'"):
        load_settings({"RASA_CPUS": "Todos"})
    with pytest.raises(SettingsError):
        load_settings({"RASA_CPUS": "\u0661"})  # an Arabic-Indic one is not CPU 1


def thread_cpus(pid: int) -> list[frozenset[int]]:
    """The CPUs each thread of a process may run on (`Cpus_allowed_list` of /proc/<pid>/task/<tid>/status)."""
    allowed = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                allowed.append(parse_cpu_list(line.split(":", 1)[1].strip()))
    return allowed


@pytest.mark.skipif(not Path("/proc/self/task").is_dir() or len(available_cpus()) < 2,
                    reason="reads /proc (Linux), needs two CPUs")
def test_rasa_and_every_thread_it_starts_run_on_its_cpus_and_the_others_on_the_rest(tmp_path: Path) -> None:
    stack = build_stack(Ports(), tmp_path, Path("models"), {"RASA_CPUS": "auto", "RASA_INSTANCES": "1"})
    try:
        assert stack.cpus is not None
        assert stack.cpus.rasa | stack.cpus.others == available_cpus()
        for name in ("rasa", "feeder", "actions", "app", "webhook", "outbox-1"):
            want = stack.cpus.rasa if name == "rasa" else stack.cpus.others
            threads = thread_cpus(started(stack, name))
            assert len(threads) >= 2, name  # the main thread and the one it started after it was placed
            assert set(threads) == {want}, (name, threads)
    finally:
        for name in list(stack.processes):
            stack.stop_process(name, kill=True)


def test_without_rasa_cpus_the_children_keep_every_cpu(tmp_path: Path) -> None:
    stack = build_stack(Ports(), tmp_path, Path("models"), {"RASA_CPUS": "off"})
    try:
        assert stack.cpus is None
        if Path("/proc/self/task").is_dir():
            assert set(thread_cpus(started(stack, "rasa"))) == {available_cpus()}
    finally:
        for name in list(stack.processes):
            stack.stop_process(name, kill=True)


def test_off_linux_a_placement_is_refused_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr("os.sched_setaffinity")
    assert cpu_placement("off", cpus("0-1"), 1) is None
    with pytest.raises(StackError, match="only Linux lets a program do: set RASA_CPUS=off"):
        cpu_placement("auto", cpus("0-1"), 1)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir() or len(available_cpus()) < 2,
                    reason="reads /proc (Linux), needs two CPUs")
def test_a_cpu_gone_since_the_check_starts_the_process_anyway_and_says_where_it_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stack = build_stack(Ports(), tmp_path, Path("models"), {"RASA_CPUS": "auto"})
    gone = max(available_cpus()) + 1  # not a CPU this process may use: the child cannot be placed on it
    stack.cpus = CpuPlacement(frozenset({gone}), available_cpus())
    try:
        with caplog.at_level("WARNING", logger="bot.stack"):
            pid = started(stack, "rasa")
        assert set(thread_cpus(pid)) == {available_cpus()}, "started where it could run"
        assert f"Rasa runs on CPU {format_cpu_list(available_cpus())}, not on CPU {gone} as RASA_CPUS asked" in (
            caplog.text)
    finally:
        for name in list(stack.processes):
            stack.stop_process(name, kill=True)
