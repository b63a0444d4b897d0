"""Console live-update latency: from a user's message (a signed webhook) to its appearance in an open console.

Starts the real stack on free ports, pauses `--conversations` conversations (each user asks for a person), opens
the inbox in headless Chromium (logged in as the demo agent) and an EventSource-like HTTP listener, then the
users write `--messages` messages each, `--rate` messages per second in all, in random order. For every
message it records when the webhook POST started and

- browser: when the text appeared in the inbox page's DOM (a MutationObserver, wall clock in the page);
- stream: when the server-sent event carrying it reached the HTTP listener.

Prints p50/p99/mean/max of both. Nothing here asserts a duration.

Usage: .venv/bin/python bench/console.py [--conversations 20] [--messages 10] [--rate 10]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from handoff.model import conversation_id_of  # noqa: E402
from sandbox import simulate  # noqa: E402
from tests.support.console_client import ConsoleSession, EventListener  # noqa: E402
from tests.support.stack import PAGE_ID, Messenger, start_stack  # noqa: E402

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]

# Records, in the page, the first time each watched text shows up anywhere in the inbox.
OBSERVER = """
(watched) => {
  window.__seen = {};
  window.__watched = new Set(watched);
  const scan = () => {
    for (const cell of document.querySelectorAll("#inbox-rows .last-message")) {
      const text = cell.textContent;
      if (window.__watched.has(text) && !(text in window.__seen)) window.__seen[text] = Date.now();
    }
  };
  new MutationObserver(scan).observe(document.getElementById("inbox-rows"),
                                     { subtree: true, childList: true, characterData: true });
}
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(name: str, values: list[float], expected: int) -> str:
    if not values:
        return f"{name}: nothing arrived (0/{expected})"
    return (f"{name}: p50 {percentile(values, 0.5):.0f} ms, p99 {percentile(values, 0.99):.0f} ms, "
            f"mean {statistics.fmean(values):.0f} ms, max {max(values):.0f} ms ({len(values)}/{expected} seen)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--messages", type=int, default=10, help="messages per conversation")
    parser.add_argument("--rate", type=float, default=10.0, help="messages per second, all users together")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        sys.exit("Chromium is needed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(Path(tmp))
        messenger = Messenger(stack)
        agent = ConsoleSession(stack.app_url, "agente")
        try:
            users = [f"bench-{n:02d}" for n in range(args.conversations)]
            for user in users:
                assert messenger.say(user, "quiero hablar con una persona").status_code == 200
            wanted = {conversation_id_of(PAGE_ID, user) for user in users}
            messenger.wait_for(lambda: wanted <= {c["id"] for c in agent.conversations()}, 180,
                               f"{len(users)} paused conversations")
            plan = [(user, f"mensaje {n + 1} de {user}") for user in users for n in range(args.messages)]
            random.Random(args.seed).shuffle(plan)

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
                context = browser.new_context()
                page = context.new_page()
                page.goto(f"{stack.app_url}/console/login")
                page.fill("#username", "agente")
                page.fill("#password", "agente-demo")
                page.click("button[type=submit]")
                page.wait_for_selector("#live-status.on", timeout=30_000)
                page.wait_for_function(f"document.querySelectorAll('#inbox-rows tr').length >= {len(users)}")
                page.evaluate(OBSERVER, [text for _, text in plan])
                listener = EventListener(agent).start()

                sent_wall: dict[str, float] = {}
                sent_perf: dict[str, float] = {}
                interval = 1.0 / args.rate
                started = time.perf_counter()
                for number, (user, text) in enumerate(plan):
                    delay = started + number * interval - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    item = simulate.text_message(PAGE_ID, user, text)
                    sent_wall[text] = time.time() * 1000
                    sent_perf[text] = time.perf_counter()
                    assert messenger.deliver(simulate.webhook_body(PAGE_ID, [item])).status_code == 200
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    if page.evaluate("Object.keys(window.__seen).length") >= len(plan):
                        break
                    page.wait_for_timeout(200)
                seen: dict[str, float] = page.evaluate("window.__seen")
                listener.stop()
                browser_ms = [seen[text] - sent_wall[text] for text in sent_wall if text in seen]
                by_text = {e.data.get("text"): e.received_at for e in listener.events if e.kind == "user_message"}
                stream_ms = [(by_text[text] - sent_perf[text]) * 1000 for text in sent_perf if text in by_text]
                context.close()
                browser.close()
        finally:
            agent.close()
            messenger.http.close()
            stack.stop()

    print(f"conversations={args.conversations} messages={len(plan)} rate={args.rate}/s")
    print(summary("user message -> open console page (inbox DOM)", browser_ms, len(plan)))
    print(summary("user message -> server-sent event at an HTTP client", stream_ms, len(plan)))


if __name__ == "__main__":
    main()
