"""`bot run` starts everything; `bot chat` talks to the running bot through the real webhook path."""

from __future__ import annotations

import argparse
import signal
import sys
import time
import uuid

import httpx

from bot.profile import extra_rasa_ports, unreachable_services
from bot.stack import Ports, StackError, Supervisor, available_cpus, build_stack, cpu_placement, ensure_model
from console.users_cli import add_parser as add_users_parser
from console.users_cli import console_logins_hint
from core.exposure import startup_settings
from core.settings import PROFILES, SANDBOX_PAGE_ID, Settings, load_settings
from links.cli import add_parser as add_links_parser
from sandbox import simulate


def run(args: argparse.Namespace) -> int:
    # `bot run` makes a random action server token when none is set: fine on loopback, useless to a Rasa on
    # another host, so an open ACTION_SERVER_HOST needs the operator's own ACTION_SERVER_TOKEN.
    overrides = {"BOT_PROFILE": args.profile} if getattr(args, "profile", None) else {}
    settings = startup_settings("bot run", overrides=overrides)
    if settings is None:
        return 2
    missing = unreachable_services(settings)  # the scale profile's PostgreSQL, Redis and RabbitMQ
    if missing:
        for problem in missing:
            print(f"error: {problem}", file=sys.stderr)
        print("The scale profile needs PostgreSQL, Redis and RabbitMQ (README, 'The scale profile'); `make run` "
              "without PROFILE runs everything on this machine without them.", file=sys.stderr)
        return 2
    ports = Ports(rasa=settings.rasa_port, actions=settings.action_port, app=settings.app_port,
                  webhook=settings.webhook_port,
                  rasa_extra=extra_rasa_ports(settings.rasa_port, settings.rasa_instances))
    try:  # RASA_CPUS against this machine's CPUs, before a minute of training
        cpu_placement(settings.rasa_cpus, available_cpus(), settings.rasa_instances)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        model = ensure_model()
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    stack = build_stack(ports, settings.data_dir, model, overrides)
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        stack.start(say=lambda line: print(line, flush=True))
        print(
            f"\nReady.\n  Talk to the bot:    {stack.app_url}/sandbox/chat\n"
            f"  Messenger webhook:  {stack.webhook_url}  (the URL to give Meta, behind your HTTPS proxy)\n"
            f"  Sent messages:      {stack.app_url}/sandbox/sent\n"
            f"  Console:            {stack.app_url}/console  {console_logins_hint(settings)}\n"
            f"  Logs:               {stack.log_dir}\n"
            f"  Graph API:          {'the sandbox' if settings.uses_sandbox else settings.graph_api_base}\n"
            f"  Profile:            {profile_summary(settings, stack.rasa_names)}\n"
            "A process that dies is restarted (after 1 s, 2 s, 4 s … up to 60 s). Press Ctrl-C to stop.",
            flush=True,
        )
        Supervisor(stack, say=lambda line: print(line, flush=True)).run(lambda: stopping)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        print("Stopping…", flush=True)
        stack.stop()
    return 0


def profile_summary(settings: Settings, rasa_names: list[str]) -> str:
    if not settings.is_scale:
        return "embedded (SQLite under BOT_DATA_DIR, one Rasa; `make run PROFILE=scale`: PostgreSQL, Redis, RabbitMQ)"
    workers = settings.outbox_workers
    return (f"scale ({len(rasa_names)} Rasa instances on PostgreSQL + Redis, events on RabbitMQ, "
            f"{workers} outbox worker{'s' if workers != 1 else ''}{'' if workers else ' (in the app and Rasa)'})")


def chat(args: argparse.Namespace) -> int:
    """A terminal chat: each line is signed and posted to the webhook; replies come from the sandbox."""
    settings = load_settings()
    webhook = settings.webhook_url
    user = args.user or f"cli-{uuid.uuid4().hex[:8]}"
    seen = len(_replies(settings.app_url, user))
    print(f"Chat as {user} (Ctrl-D to leave). Quick replies show as [n] title; type the number to pick one.")
    choices: list[dict] = []
    for line in sys.stdin:
        text = line.strip()
        if not text:
            continue
        if text.isdigit() and 0 < int(text) <= len(choices):
            choice = choices[int(text) - 1]
            item = simulate.quick_reply(SANDBOX_PAGE_ID, user, choice["title"], choice.get("payload", ""))
        else:
            item = simulate.text_message(SANDBOX_PAGE_ID, user, text)
        raw, headers = simulate.signed_request(simulate.webhook_body(SANDBOX_PAGE_ID, [item]), settings.app_secret)
        status = httpx.post(webhook, content=raw, headers=headers, timeout=10).status_code
        if status != 200:
            print(f"(the webhook answered {status})")
            continue
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:
            replies = _replies(settings.app_url, user)
            if len(replies) > seen and time.monotonic() > deadline - args.wait + 1.5:
                break
            time.sleep(0.3)
        replies = _replies(settings.app_url, user)
        choices = []
        for reply in replies[seen:]:
            message = reply["body"]["message"]
            text = message.get("text") or (message.get("attachment") or {}).get("payload", {}).get("text", "")
            print(f"bot> {text}")
            for quick in message.get("quick_replies") or []:
                choices.append(quick)
                print(f"     [{len(choices)}] {quick.get('title')}")
        seen = len(replies)
    return 0


def _replies(app_url: str, user: str) -> list[dict]:
    sent = httpx.get(f"{app_url}/sandbox/sent", params={"recipient_id": user}, timeout=10).json()
    return [item for item in sent if "message" in item.get("body", {})]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bot")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="train if needed and start Rasa, the action server and the app")
    run_parser.add_argument("--profile", choices=PROFILES,
                            help="embedded (default: one machine, SQLite) or scale (PostgreSQL, Redis, RabbitMQ; "
                                 "BOT_PROFILE)")
    run_parser.set_defaults(func=run)
    add_users_parser(commands)
    add_links_parser(commands)  # m.me links and QR codes (python -m links …)
    chat_parser = commands.add_parser("chat", help="talk to the running bot through the signed webhook")
    chat_parser.add_argument("--user", help="the sender id (PSID) to use")
    chat_parser.add_argument("--wait", type=float, default=6.0, help="seconds to wait for replies")
    chat_parser.set_defaults(func=chat)
    commands.add_parser("train", help="train the Rasa model if the training data changed").set_defaults(
        func=lambda _a: (ensure_model(), 0)[1]
    )
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
