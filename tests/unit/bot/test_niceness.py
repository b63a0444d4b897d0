"""RASA_NICENESS: `bot run` starts every process but the webhook at a lower CPU priority, every thread of it, so the
webhook's 200s win the cores from Rasa's turns (issue 11). Real children, their niceness read back from /proc."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.stack import UNNICED, Ports, Stack, build_stack
from core.settings import SettingsError, load_settings
from tests.support.children import started

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc (Linux)")


def thread_niceness(pid: int) -> list[int]:
    """The niceness of every thread of a process (field 19 of /proc/<pid>/task/<tid>/stat)."""
    values = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        stat = (task / "stat").read_text()
        values.append(int(stat[stat.rindex(")") + 2 :].split()[16]))
    return values


def autogroup_niceness(pid: int) -> int | None:
    """The niceness of the process's session group under autogroup scheduling ("/autogroup-12 nice 7"); None
    without autogroup in this kernel."""
    path = Path(f"/proc/{pid}/autogroup")
    return int(path.read_text().split()[-1]) if path.exists() else None


@pytest.fixture
def stack(tmp_path: Path):
    built = build_stack(Ports(), tmp_path, Path("models"), {"RASA_NICENESS": "7"})
    yield built
    for name in list(built.processes):
        built.stop_process(name, kill=True)


def test_every_process_but_the_webhook_runs_nicer_with_all_its_threads(stack: Stack) -> None:
    own = os.getpriority(os.PRIO_PROCESS, 0)
    expected = min(19, own + 7)
    assert stack.niceness == 7
    for name in ("rasa", "actions", "app", "outbox-1"):
        pid = started(stack, name)
        niceness = thread_niceness(pid)
        assert len(niceness) >= 2, name  # the main thread and the one it started
        assert set(niceness) == {expected}, name
        # Each child leads a session of its own: under autogroup scheduling its group is what competes with the
        # webhook's, so the group is nicer too.
        assert autogroup_niceness(pid) in (None, expected), name
    assert "webhook" in UNNICED
    webhook = started(stack, "webhook")
    assert set(thread_niceness(webhook)) == {own}
    assert autogroup_niceness(webhook) in (None, 0)


def test_a_niceness_of_zero_changes_nothing(tmp_path: Path) -> None:
    stack = build_stack(Ports(), tmp_path, Path("models"), {"RASA_NICENESS": "0"})
    try:
        pid = started(stack, "rasa")
        assert set(thread_niceness(pid)) == {os.getpriority(os.PRIO_PROCESS, 0)}
    finally:
        stack.stop_process("rasa", kill=True)


@pytest.mark.parametrize("value", ["-5", "20", "2.5", "mucho"])
def test_a_niceness_out_of_range_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="RASA_NICENESS"):
        load_settings({"RASA_NICENESS": value})


def test_the_deploy_files_put_every_process_but_the_webhook_below_it() -> None:
    """systemd: Nice= ranks threads within a group and CPUWeight= weighs the service's cgroup against the webhook's
    (default 100); compose: cpu_shares against the webhook's default 1024."""
    import yaml

    from core.settings import ROOT

    systemd = ROOT / "deploy" / "systemd"
    for path in sorted(systemd.glob("*.service")):
        keys = dict(line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if line[:1].isalpha())
        if path.name == "ecuabots-webhook.service":
            assert "Nice" not in keys and "CPUWeight" not in keys
        else:
            assert int(keys["Nice"]) > 0, path.name
            assert 1 <= int(keys["CPUWeight"]) < 100, path.name
    services = yaml.safe_load((ROOT / "deploy" / "compose.yml").read_text(encoding="utf-8"))["services"]
    assert "cpu_shares" not in services["webhook"]
    ours = [name for name, service in services.items() if str(service.get("image", "")).startswith("ecuabots")]
    assert len(ours) >= 5
    for name in ours:
        if name != "webhook":
            assert 2 <= services[name]["cpu_shares"] < 1024, name
