"""bench/profile_diff.py reads py-spy's collapsed stacks: a function counts once per stack it is on (recursion does not
double it), lines that differ only by line number are one function, and by default only Rasa's event loop thread counts.
bench/endtoend.py reads a process's CPU time from /proc, and counts fsyncs per file from strace's output."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.endtoend import cpu_seconds, fsync_counts, thread_cpu_seconds
from bench.profile_diff import frame_key, inclusive_samples

LOOP = "<module> (bot/rasa_launcher.py:51);serve (sanic/server/runners.py:155)"


def test_a_function_counts_once_per_stack_and_only_the_loop_thread_by_default(tmp_path: Path) -> None:
    profile = tmp_path / "ours.txt"
    profile.write_text(
        f"{LOOP};_process (connectors/messenger.py:257);walk (x.py:1);walk (x.py:2) 7\n"
        f"{LOOP};handle_message (rasa/core/agent.py:418) 5\n"
        "_bootstrap (threading.py:1);run (concurrent/futures/thread.py:58);write (core/sqlite.py:90) 11\n"
        "not a stack line\n",
        encoding="utf-8",
    )
    loop, loop_total = inclusive_samples(profile, main_thread=True)
    assert loop_total == 12
    assert loop["walk (x.py)"] == 7, "recursion is not counted twice"
    assert loop["_process (connectors/messenger.py)"] == 7 and loop["handle_message (rasa/core/agent.py)"] == 5
    assert loop["write (core/sqlite.py)"] == 0

    every, every_total = inclusive_samples(profile)
    assert every_total == 23 and every["write (core/sqlite.py)"] == 11


def test_frame_keys_drop_only_the_line_number() -> None:
    assert frame_key(" send (meta/graph.py:120)") == "send (meta/graph.py)"
    assert frame_key("<module> (bot/rasa_launcher.py:51)") == "<module> (bot/rasa_launcher.py)"


def test_cpu_time_grows_with_work_and_a_gone_process_reads_zero() -> None:
    before = cpu_seconds(os.getpid())
    loop_before = thread_cpu_seconds(os.getpid(), os.getpid())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    assert cpu_seconds(os.getpid()) >= before + 0.1
    assert thread_cpu_seconds(os.getpid(), os.getpid()) >= loop_before + 0.1
    assert cpu_seconds(2**22 + 12345) == 0.0


def test_fsyncs_are_counted_per_call_and_file_once_each_even_when_interrupted(tmp_path: Path) -> None:
    trace = tmp_path / "ours-app.strace"
    trace.write_text(
        "25697 fdatasync(19</tmp/a/outbox.sqlite3-wal>) = 0\n"
        "25697 fdatasync(19</tmp/a/outbox.sqlite3-wal> <unfinished ...>\n"
        "25700 fsync(32</tmp/a/contacts.sqlite3>) = 0\n"
        "25697 <... fdatasync resumed>)          = 0\n"
        "25701 +++ exited with 0 +++\n"
        "25702 fdatasync(7</tmp/b/outbox.sqlite3-wal>) = -1 EIO (Input/output error)\n",
        encoding="utf-8",
    )
    counts = fsync_counts(trace)
    assert counts == {"fdatasync outbox.sqlite3-wal": 3, "fsync contacts.sqlite3": 1}, counts
