"""Where our channel spends Rasa's time that the REST channel does not: two py-spy profiles, compared per message.

`bench/endtoend.py --profile DIR` writes DIR/rest.txt and DIR/ours.txt (py-spy's collapsed stacks of the Rasa
process, one phase each, the same number of messages). This prints, per message, the milliseconds of Rasa's time
spent in each function (inclusive: with what it calls), ours minus REST, largest first, and the totals. Only Rasa's
event loop thread unless `--all-threads`: every turn's Python work runs there, one at a time.

Usage: .venv/bin/python bench/profile_diff.py DIR --messages 300 [--rate 200] [--top 30]
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

FRAME_LINE = re.compile(r":\d+\)$")


def frame_key(frame: str) -> str:
    """'handle (rasa/core/agent.py:123)' -> 'handle (rasa/core/agent.py)': one function, whichever line."""
    return FRAME_LINE.sub(")", frame.strip())


MAIN_THREAD = "(bot/rasa_launcher.py"  # the frame at the root of Rasa's event loop thread


def inclusive_samples(path: Path, main_thread: bool = False) -> tuple[collections.Counter[str], int]:
    """Samples per function, each counted once per stack it is on, and all samples. `main_thread`: only the stacks
    of Rasa's event loop (every turn's Python work runs there; thread pools run beside it)."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit() or (main_thread and MAIN_THREAD not in stack):
            continue
        samples = int(number)
        total += samples
        for key in {frame_key(frame) for frame in stack.split(";")}:
            counts[key] += samples
    return counts, total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", type=Path)
    parser.add_argument("--messages", type=int, required=True, help="messages per phase (bench/endtoend.py --events)")
    parser.add_argument("--rate", type=int, default=200, help="py-spy's samples per second")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--all-threads", action="store_true", help="every thread, not only Rasa's event loop")
    args = parser.parse_args()
    per_message = 1000.0 / args.rate / args.messages  # ms of one sample, spread over the messages
    main_thread = not args.all_threads
    rest, rest_total = inclusive_samples(args.directory / "rest.txt", main_thread)
    ours, ours_total = inclusive_samples(args.directory / "ours.txt", main_thread)
    print(f"Rasa's sampled time per message: REST {rest_total * per_message:.1f} ms, "
          f"ours {ours_total * per_message:.1f} ms (+{(ours_total - rest_total) * per_message:.1f} ms)")
    rows = sorted(set(rest) | set(ours), key=lambda key: ours[key] - rest[key], reverse=True)
    print(f"{'ours':>8} {'REST':>8} {'diff':>8}  function (ms per message, inclusive)")
    for key in rows[: args.top]:
        print(f"{ours[key] * per_message:8.2f} {rest[key] * per_message:8.2f} "
              f"{(ours[key] - rest[key]) * per_message:+8.2f}  {key[:150]}")


if __name__ == "__main__":
    main()
