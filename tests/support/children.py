"""A stand-in child for a stack's process (bot/stack.py `Stack._spawn`): it starts a thread once it runs, says `up`
in its log and waits, so what the stack set on it (niceness, CPUs) can be read back from every thread in /proc."""

from __future__ import annotations

import sys
import time

from bot.stack import Stack

CHILD = (
    "import threading, time; threading.Thread(target=time.sleep, args=(60,)).start(); print('up', flush=True); "
    "time.sleep(60)"
)


def started(stack: Stack, name: str) -> int:
    """Spawn the stand-in as `name` and return its pid once it is up (its thread started)."""
    stack._spawn(name, [sys.executable, "-c", CHILD])
    pid = stack.processes[name].pid
    deadline = time.monotonic() + 30
    while "up" not in (stack.log_dir / f"{name}.log").read_text():
        assert stack.processes[name].poll() is None, f"{name} exited"
        assert time.monotonic() < deadline, f"{name} did not start"
        time.sleep(0.05)
    return pid
