"""Builds a month of Messenger conversations through the REAL signed webhook into the sandbox, and writes the figures
it built (JSON), so a report over the same period can be checked against numbers known in advance.

    .venv/bin/python scripts/generate_history.py --app-url http://127.0.0.1:8000 \\
        --webhook-url http://127.0.0.1:5006/webhooks/messenger/webhook --people 60 --days 30 --out var/history.json

The plan is seeded (`--seed`): `--people` people, each with messages at Meta timestamps spread over the past `--days`
days. Each person is one of four kinds:

- asks: an optional «hola», then 1–3 questions taken word for word from the demo matrix (answered from the matrix);
  some come back 25 to 72 hours later with one more question (a second conversation);
- misses: one question the matrix cannot answer (the honest no-answer), sometimes followed by a known question;
- insists: two questions the matrix cannot answer in a row (no-answer, then the handoff, reason bot_failed);
- wants a person: sometimes a known question, then «quiero hablar con un asesor» (handoff, reason user_asked).

Every message is a signed delivery (the app secret) to the webhook, and the next one of that person goes only after it
was handled: the outbox holds one more message to the person (the bot's reply, sent or blocked by the policy), or,
for a handoff, the console shows the conversation paused. Then agents (`--agent user:password`, one or more) take the
handoffs through the console API: assign to themselves, reply (once or twice) when the person's last message is less
than 6 days old (the HUMAN_AGENT window is 7 days; older ones are closed without a reply), and close with a note, or
leave a few open. Finally it waits until the outbox has nothing pending, and writes the figures.

What each store records, and therefore where each figure falls (the report reads the same records):

- messages, conversations and new people (`outbox.record_user_message`): Meta's time of each message, so they are
  spread over the local days of the period (business timezone, `--timezone`); a conversation starts at a person's
  first message and again at a message 24 hours or more after their previous one;
- how each question was handled (the answer journal), handoffs (`handoff_episodes.paused_at`), agents' replies and
  closes, and every send's outcome: the real clock while the script runs, so they fall in the last day(s) of the
  period and are written as totals for the period, not per day;
- sends: the bot's replies to a message older than 24 hours are blocked by the policy (outside_window), as Meta
  would refuse them; the outcomes are not planned (how many messages a reply takes is the bot's business) but read
  back from the outbox API at the end (`sends_observed`), for the report's counters to be checked against the rows.

Progress goes to stderr; the figures to `--out` (and stdout with `--print`).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.settings import (  # noqa: E402
    DEFAULT_BUSINESS_TIMEZONE,
    DEMO_APP_SECRET,
    DEMO_SERVICE_TOKEN,
    SANDBOX_PAGE_ID,
)
from knowledge_matrix.matrix import entries_from_sheet, read_sheet  # noqa: E402
from sandbox import simulate  # noqa: E402

DEMO_MATRIX = ROOT / "data" / "knowledge_matrix.csv"
# Questions the demo matrix cannot answer (checked against the demo stack: each gets the honest no-answer, not a
# "¿Quisiste decir…?" nor a near entry's answer). «¿aceptan pagos con criptomonedas o con bitcoin?» was one until the
# calibration weighed the message's length: a payment question, it is now offered the subscription's entry.
MISSES = (
    "¿tienen sucursal en Loja con parqueadero para camiones?",
    "¿hacen tatuajes pequeños en Guayaquil?",
    "¿venden empanadas de verde los domingos?",
    "¿a qué hora abre la farmacia del centro?",
    "¿tienen habitaciones con vista al mar en Montañita?",
    "¿hacen entregas de flores en Cuenca?",
    "¿el restaurante tiene menú vegano?",
    "¿reparan pantallas de celulares Samsung?",
)
ASK_FOR_A_PERSON = ("quiero hablar con un asesor", "me comunica con un asesor", "quiero hablar con una persona")
GREETING = "hola"
# Entries whose first question the demo stack does not answer from the matrix word for word (checked against it):
# the NLU sends it to a person (asignar_conversacion, soporte) or to "are you a bot?" (nombre_chatbot), or the
# matrix offers "¿Quisiste decir…?" (mensajes_etiqueta). Left out of the known questions.
NOT_ASKED = frozenset({"asignar_conversacion", "soporte", "nombre_chatbot", "mensajes_etiqueta"})
AGENT_REPLY_WITHIN = timedelta(days=6)  # HUMAN_AGENT allows 7 days after the person's last message; a day of margin
RETURN_AFTER = (timedelta(hours=25), timedelta(hours=72))
# The kinds in turn, so that any ten people hold every kind: half ask, a fifth miss, a tenth insist, a fifth want a
# person.
KINDS = ("asks", "misses", "insists", "wants_person", "asks", "asks", "wants_person", "misses", "asks", "asks")
HANDOFF_KINDS = frozenset({"insists", "wants_person"})
RECENT = timedelta(days=5)  # where most handoffs are placed: agents can still reply (HUMAN_AGENT, 7 days)
FINAL = ("sent", "blocked", "failed", "dead", "cancelled")


@dataclass(frozen=True)
class Turn:
    """One customer message: Meta's time, the words, and what the bot is expected to do with it."""

    at: datetime
    text: str
    handling: str | None  # the answer journal's handling ("matrix", "no_answer", "handoff"); None: not journaled
    pauses: bool = False  # the bot hands the conversation to a person after it
    starts_conversation: bool = False


@dataclass(frozen=True)
class Person:
    psid: str
    kind: str
    turns: tuple[Turn, ...]
    handoff_reason: str | None = None
    agent: str | None = None  # who takes the handoff
    replies: int = 0  # the agent's replies
    closes: bool = False


@dataclass(frozen=True)
class Plan:
    now: datetime
    first_day: date
    last_day: date
    timezone: str
    page_id: str
    people: tuple[Person, ...]
    seed: int
    agents: tuple[str, ...] = field(default=())


def known_questions(matrix: Path = DEMO_MATRIX) -> list[tuple[str, str]]:
    """(entry id, its first question) of every entry of the demo matrix, word for word."""
    return [(entry.id, entry.questions[0]) for entry in entries_from_sheet(read_sheet(matrix))
            if entry.questions and entry.id not in NOT_ASKED]


class _Script:
    """One person's messages as they are planned: each a few minutes after the previous one; `come_back` jumps to a
    later visit, whose first message starts a new conversation (24 hours or more after the previous message)."""

    def __init__(self, rng: random.Random, start: datetime) -> None:
        self.rng = rng
        self.clock = start
        self.turns: list[Turn] = []
        self._starts = True

    def say(self, text: str, handling: str | None, pauses: bool = False) -> None:
        self.turns.append(Turn(self.clock, text, handling, pauses, self._starts))
        self._starts = False
        self.clock += timedelta(seconds=self.rng.randint(40, 300))

    def come_back(self, at: datetime) -> None:
        self.clock, self._starts = at, True


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(timezone.utc)


def build_plan(seed: int, people: int, days: int, now: datetime, agents: Sequence[str], page_id: str,
               zone: ZoneInfo, questions: Sequence[tuple[str, str]]) -> Plan:
    """Pure: the same seed, sizes and `now` give the same plan. Every time is before `now`, and after the local
    midnight that starts the period (`days` days before today, local)."""
    rng = random.Random(seed)
    last_day = now.astimezone(zone).date()
    first_day = last_day - timedelta(days=days - 1)
    earliest = local_midnight(first_day, zone) + timedelta(minutes=5)
    latest = now - timedelta(hours=1)
    span = max((latest - earliest).total_seconds(), 60.0)
    run = uuid.UUID(int=rng.getrandbits(128)).hex[:8]
    built: list[Person] = []
    for number in range(people):
        kind = KINDS[number % len(KINDS)]
        start = earliest + timedelta(seconds=rng.uniform(0, span))
        if kind in HANDOFF_KINDS and rng.random() < 0.75:  # most wrote lately; the others wait too long for a reply
            start = max(earliest, latest - RECENT) + timedelta(seconds=rng.uniform(0, RECENT.total_seconds()))
            start = min(start, latest)
        script = _Script(rng, start)
        reason = None
        if kind == "asks":
            if rng.random() < 0.5:
                script.say(GREETING, None)
            for _ in range(rng.randint(1, 3)):
                script.say(rng.choice(questions)[1], "matrix")
            back = script.clock + timedelta(seconds=rng.uniform(*(d.total_seconds() for d in RETURN_AFTER)))
            if rng.random() < 0.3 and back < latest:
                script.come_back(back)
                script.say(rng.choice(questions)[1], "matrix")
        elif kind == "misses":
            script.say(rng.choice(MISSES), "no_answer")
            if rng.random() < 0.5:
                script.say(rng.choice(questions)[1], "matrix")
        elif kind == "insists":
            first_miss, second_miss = rng.sample(MISSES, 2)
            script.say(first_miss, "no_answer")
            script.say(second_miss, "handoff", pauses=True)
            reason = "bot_failed"
        else:
            if rng.random() < 0.5:
                script.say(rng.choice(questions)[1], "matrix")
            script.say(rng.choice(ASK_FOR_A_PERSON), None, pauses=True)
            reason = "user_asked"
        turns = script.turns
        agent, replies, closes = None, 0, False
        if reason is not None and agents:
            agent = agents[number % len(agents)]
            closes = rng.random() < 0.8
            replies = rng.randint(1, 2) if now - turns[-1].at < AGENT_REPLY_WITHIN and rng.random() < 0.85 else 0
        built.append(Person(f"hist-{run}-{number:05d}", kind, tuple(turns), reason, agent, replies, closes))
    return Plan(now, first_day, last_day, str(zone), page_id, tuple(built), seed, tuple(agents))


def expected_figures(plan: Plan) -> dict[str, Any]:
    """What the report over the plan's period must say, from the plan alone (see the module's docstring for which
    figures are per day and which are totals)."""
    zone = ZoneInfo(plan.timezone)
    days: dict[str, Counter[str]] = {
        (plan.first_day + timedelta(days=n)).isoformat(): Counter()
        for n in range((plan.last_day - plan.first_day).days + 1)}
    handled: Counter[str] = Counter()
    handoffs: Counter[str] = Counter()
    agents: dict[str, Counter[str]] = defaultdict(Counter)
    for person in plan.people:
        for index, turn in enumerate(person.turns):
            day = days[turn.at.astimezone(zone).date().isoformat()]
            day["messages"] += 1
            day["conversations"] += turn.starts_conversation
            day["new_people"] += index == 0
            if turn.handling:
                handled[turn.handling] += 1
        if person.handoff_reason:
            handoffs[person.handoff_reason] += 1
            if person.agent:
                board = agents[person.agent]
                board["episodes"] += 1
                board["replies"] += person.replies
                board["replied"] += person.replies > 0
                board["closed"] += person.closes
                board["closed_without_reply"] += person.closes and not person.replies
    episodes = sum(handoffs.values())
    closed = sum(p.closes for p in plan.people if p.handoff_reason)
    answered = handled["matrix"] + handled["selected"] + handled["gpt"]
    total_handled = sum(handled.values())
    return {
        "days": {day: {name: counts[name] for name in ("messages", "conversations", "new_people")}
                 for day, counts in days.items()},
        "totals": {name: sum(counts[name] for counts in days.values())
                   for name in ("messages", "conversations", "new_people")},
        "handled": dict(sorted(handled.items())),
        "answered_without_person": {"answered": answered, "handled": total_handled,
                                    "share": round(answered / total_handled, 4) if total_handled else None},
        "handoffs": dict(sorted(handoffs.items())),
        "episodes": {"total": episodes, "closed": closed, "open": episodes - closed,
                     "replied": sum(1 for p in plan.people if p.replies),
                     "closed_without_reply": sum(1 for p in plan.people if p.closes and not p.replies)},
        "agents": {name: dict(sorted(board.items())) for name, board in sorted(agents.items())},
        "agent_replies": sum(p.replies for p in plan.people),
    }


# --- talking to the stack ------------------------------------------------------------------------------------------


def progress(label: str, done: int, total: int) -> None:
    print(f"\r  {label}: {done:,}/{total:,}", end="" if done < total else "\n", file=sys.stderr, flush=True)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class HistoryError(RuntimeError):
    """The stack did not do what the plan needs (a delivery refused, a message never handled): the figures would
    not be the plan's."""


class Stack:
    """The webhook (signed deliveries), the outbox API (service token), the console API (agents' sessions)."""

    def __init__(self, app_url: str, webhook_url: str, app_secret: str, page_id: str, service_token: str,
                 timeout: float) -> None:
        self.app_url = app_url.rstrip("/")
        self.webhook_url = webhook_url
        self.app_secret = app_secret
        self.page_id = page_id
        self.timeout = timeout
        self.http = httpx.Client(timeout=30, headers={"Authorization": f"Bearer {service_token}"})

    def close(self) -> None:
        self.http.close()

    def deliver(self, psid: str, turn: Turn) -> None:
        item = simulate.text_message(self.page_id, psid, turn.text)
        item["timestamp"] = int(turn.at.timestamp() * 1000)
        body = simulate.webhook_body(self.page_id, [item])
        raw, headers = simulate.signed_request(body, self.app_secret)
        for attempt in range(3):
            try:
                answer = httpx.post(self.webhook_url, content=raw, headers=headers, timeout=30)
            except httpx.TransportError:
                if attempt == 2:
                    raise
                time.sleep(0.5)
                continue
            if answer.status_code != 200:
                raise HistoryError(f"the webhook answered {answer.status_code}: {answer.text[:200]}")
            return

    def outbox_messages(self, **params: Any) -> list[dict[str, Any]]:
        """Every outbox message matching `params` (pages of 1,000, newest first)."""
        found: list[dict[str, Any]] = []
        before: int | None = None
        while True:
            query = {**params, "limit": 1000, **({"before_id": before} if before else {})}
            answer = self.http.get(f"{self.app_url}/api/outbox", params=query)
            answer.raise_for_status()
            page = answer.json()["messages"]
            found.extend(page)
            if len(page) < 1000:
                return found
            before = min(message["id"] for message in page)

    def conversation_state(self, psid: str) -> str | None:
        answer = self.http.get(f"{self.app_url}/api/console/conversations/{self.page_id}:{psid}")
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        return str(answer.json()["conversation"]["state"])

    def wait(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.2)
        raise HistoryError(f"timed out after {self.timeout:.0f} s waiting for {what}")

    def talk(self, person: Person) -> None:
        """Each of the person's messages, the next one only after this one was handled."""
        for turn in person.turns:
            self.deliver_and_wait(person.psid, turn)

    def deliver_and_wait(self, psid: str, turn: Turn) -> None:
        before = self.replies_to(psid)
        self.deliver(psid, turn)
        if turn.pauses:
            self.wait(lambda: self.conversation_state(psid) == "paused", f"the handoff of {psid} after «{turn.text}»")
        else:
            self.wait(lambda: self.replies_to(psid) > before, f"the bot's reply to {psid} after «{turn.text}»")

    def replies_to(self, psid: str) -> int:
        return len(self.outbox_messages(recipient_id=psid, page_id=self.page_id))

    def settle(self, quiet_seconds: float = 3.0) -> None:
        """Until nothing is pending or being sent, and the page's outbox stopped growing for `quiet_seconds` (the
        satisfaction survey after a close is written by a listener, a moment later)."""
        deadline = time.monotonic() + self.timeout
        last_count, quiet_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            messages = self.outbox_messages(page_id=self.page_id)
            busy = any(m["status"] not in FINAL for m in messages)
            if len(messages) != last_count or busy:
                last_count, quiet_since = len(messages), time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_seconds:
                return
            time.sleep(0.5)
        raise HistoryError(f"the outbox was still busy after {self.timeout:.0f} s")


class Agent:
    """One person of the team logged in to the console (cookie + CSRF token)."""

    def __init__(self, app_url: str, username: str, password: str) -> None:
        self.username = username
        self.http = httpx.Client(base_url=app_url.rstrip("/"), timeout=30)
        answer = self.http.post("/api/console/login", json={"username": username, "password": password})
        if answer.status_code != 200:
            raise HistoryError(f"console login of {username} refused: {answer.status_code} {answer.text[:200]}")
        self.csrf = answer.json()["csrf_token"]

    def post(self, path: str, body: dict[str, Any], expect: int = 200) -> dict[str, Any]:
        answer = self.http.post(path, json=body, headers={"X-CSRF-Token": self.csrf})
        if answer.status_code != expect:
            raise HistoryError(f"{self.username}: POST {path} answered {answer.status_code}: {answer.text[:300]}")
        return dict(answer.json())

    def take(self, conversation_id: str, person: Person) -> None:
        base = f"/api/console/conversations/{conversation_id}"
        self.post(f"{base}/assign", {"agent": "me"})
        for number in range(person.replies):
            self.post(f"{base}/reply", {"text": f"Hola, le ayudo con gusto ({number + 1})."}, expect=201)
        if person.closes:
            self.post(f"{base}/close", {"note": "Atendido (historial generado)."})

    def close(self) -> None:
        self.http.close()


def observed_sends(stack: Stack, plan: Plan) -> dict[str, int]:
    """The outbox's final outcome of every message to the plan's people, as "purpose/status/reason_code" → count
    (reason_code empty when none)."""
    people = {person.psid for person in plan.people}
    outcomes: Counter[str] = Counter()
    for message in stack.outbox_messages(page_id=plan.page_id):
        if message["recipient_id"] in people:
            reason = message.get("reason_code") or "" if message["status"] != "sent" else ""
            outcomes[f"{message['purpose']}/{message['status']}/{reason}"] += 1
    return dict(sorted(outcomes.items()))


def run(plan: Plan, stack: Stack, logins: Sequence[tuple[str, str]], concurrency: int) -> dict[str, Any]:
    """Sends the plan through the stack, lets the agents act, waits until everything settled; the figures."""
    ordered = sorted(plan.people, key=lambda p: p.turns[0].at)
    messages = sum(len(p.turns) for p in ordered)
    say(f"Sending {messages} messages of {len(ordered)} people through the webhook ({concurrency} at a time)…")
    done = [0]

    def one(person: Person) -> None:
        stack.talk(person)
        done[0] += len(person.turns)
        progress("messages handled", done[0], messages)

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for future in [pool.submit(one, person) for person in ordered]:
            future.result()
    handoffs = [p for p in ordered if p.handoff_reason and p.agent]
    say(f"Agents take {len(handoffs)} handoffs through the console…")
    agents = {username: Agent(stack.app_url, username, password) for username, password in logins}
    try:
        for number, person in enumerate(handoffs, 1):
            agents[person.agent or ""].take(f"{plan.page_id}:{person.psid}", person)
            progress("handoffs taken", number, len(handoffs))
    finally:
        for agent in agents.values():
            agent.close()
    say("Waiting until the outbox has nothing left to send…")
    stack.settle()
    figures = expected_figures(plan)
    figures["sends_observed"] = observed_sends(stack, plan)
    return figures


def write_figures(plan: Plan, figures: dict[str, Any], out: Path | None, echo: bool) -> str:
    document = {
        "generated_at": plan.now.isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "seed": plan.seed,
        "timezone": plan.timezone,
        "page_id": plan.page_id,
        "period": {"first_day": plan.first_day.isoformat(), "last_day": plan.last_day.isoformat()},
        "people": dict(Counter(p.kind for p in plan.people)),
        "psids": [p.psid for p in plan.people],
        "figures": figures,
    }
    text = json.dumps(document, ensure_ascii=False, indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    if echo:
        print(text)
    return text


def plan_as_json(plan: Plan) -> str:
    """The plan itself (every message with its time), for a reader who wants to see what was sent."""
    return json.dumps(asdict(plan), ensure_ascii=False, indent=1, default=str)


def parse_login(value: str) -> tuple[str, str]:
    username, sep, password = value.partition(":")
    if not sep or not username or not password:
        raise argparse.ArgumentTypeError("use user:password")
    return username, password


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app-url", default="http://127.0.0.1:8000")
    parser.add_argument("--webhook-url", default="http://127.0.0.1:5006/webhooks/messenger/webhook")
    parser.add_argument("--app-secret", default=DEMO_APP_SECRET)
    parser.add_argument("--page-id", default=SANDBOX_PAGE_ID)
    parser.add_argument("--service-token", default=DEMO_SERVICE_TOKEN, help="for the outbox and console APIs")
    parser.add_argument("--agent", action="append", type=parse_login, default=None,
                        help="user:password of a console agent (repeatable; default agente:agente-demo)")
    parser.add_argument("--people", type=int, default=60)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--timezone", default=DEFAULT_BUSINESS_TIMEZONE, help="the business timezone (local days)")
    parser.add_argument("--concurrency", type=int, default=4, help="people talking at the same time")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for each step")
    parser.add_argument("--out", type=Path, default=None, help="write the figures here (JSON)")
    parser.add_argument("--print", action="store_true", help="print the figures to stdout too")
    parser.add_argument("--plan-out", type=Path, default=None, help="write the whole plan here (JSON)")
    args = parser.parse_args(argv)
    if args.days < 1 or args.people < 1:
        parser.error("--days and --people must be 1 or more")
    logins = args.agent or [("agente", "agente-demo")]
    plan = build_plan(args.seed, args.people, args.days, datetime.now(timezone.utc), [u for u, _ in logins],
                      args.page_id, ZoneInfo(args.timezone), known_questions())
    if args.plan_out is not None:
        args.plan_out.write_text(plan_as_json(plan) + "\n", encoding="utf-8")
    stack = Stack(args.app_url, args.webhook_url, args.app_secret, args.page_id, args.service_token, args.timeout)
    started = time.monotonic()
    try:
        figures = run(plan, stack, logins, args.concurrency)
    except HistoryError as exc:
        say(f"error: {exc}")
        return 1
    finally:
        stack.close()
    write_figures(plan, figures, args.out, args.print)
    say(f"Done in {time.monotonic() - started:.0f} s: {figures['totals']['messages']} messages, "
        f"{figures['totals']['conversations']} conversations, {figures['totals']['new_people']} new people, "
        f"handled {figures['handled']}, handoffs {figures['handoffs']}, {figures['agent_replies']} agent replies.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
