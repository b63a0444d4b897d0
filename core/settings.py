"""One typed settings object, read from the environment.

Imported by both Python environments (the Rasa 3.10 one and the app's 3.11 one), so it
uses the standard library only.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from core.business_hours import BusinessHours, BusinessHoursError, parse_business_hours
from core.hosts import client_host, is_loopback_host
from core.postgres import SCHEMA_NAME, is_postgres_url, schema_in_url, with_schema

DEMO_APP_SECRET = "demo-app-secret"
DEMO_VERIFY_TOKEN = "demo-verify-token"
DEMO_SERVICE_TOKEN = "demo-service-token"
DEMO_RASA_TOKEN = "demo-rasa-token"
SANDBOX_PAGE_ID = "100000000000001"
SANDBOX_PAGE_TOKEN = "sandbox-page-token"
DEFAULT_GRAPH_API_VERSION = "v21.0"
PAGE_INBOX_APP_ID = "263902037430900"
DEFAULT_BUSINESS_TIMEZONE = "America/Guayaquil"
DEFAULT_AWAY_MESSAGE = (
    "Fuera de Horario 🕘 Nuestro horario de atención es {horario}. "
    "Te responderemos por aquí en cuanto estemos de vuelta."
)
ENVIRONMENTS = frozenset({"development", "test", "production"})
# Production refuses shorter secrets: Meta's app secret is 32 hex characters; our own tokens are random strings
# (`python -c "import secrets; print(secrets.token_urlsafe(32))"` gives 43 characters).
MIN_SECRET_LENGTHS = {
    "MESSENGER_APP_SECRET": 32,
    "MESSENGER_VERIFY_TOKEN": 16,
    "BOT_SERVICE_TOKEN": 32,
    "RASA_API_TOKEN": 32,
    # Rasa → action server. `bot run` makes a random one per start when unset; production needs an explicit one
    # (the same in every process, kept across restarts and hosts).
    "ACTION_SERVER_TOKEN": 32,
}
# Checked for reuse only (a local model may have no key): the same value as one of our secrets leaks both.
REUSE_CHECKED_KEYS = ("LLM_API_KEY", "OPENAI_API_KEY")
DEFAULT_LLM_BASE_URL = "https://api.openai.com/v1"
DEFAULT_LLM_MODEL = "gpt-4o-mini"
PROFILES = ("embedded", "scale")
DEFAULT_SCALE_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"

ROOT = Path(__file__).resolve().parent.parent
# The stores that live in a SQLite file or a PostgreSQL schema: their own URL's field (and variable) and file name.
STORES = {
    "ingest": ("ingest_db_url", "messenger.sqlite3"),
    "handoff": ("handoff_db_url", "handoff.sqlite3"),
    "console": ("console_db_url", "console.sqlite3"),
    "outbox": ("outbox_url", "outbox.sqlite3"),
    "comment_journal": ("comment_journal_db_url", "comment_journal.sqlite3"),  # feed comments (the webhook process)
    "comments": ("comments_db_url", "comments.sqlite3"),  # private-reply rules ("Respuestas privadas")
    "links": ("links_db_url", "links.sqlite3"),  # m.me links, QR codes, referrals
    "page_profile": ("page_profile_db_url", "page_profile.sqlite3"),  # the page's Messenger profile
    "contacts": ("contacts_db_url", "contacts.sqlite3"),  # contacts: profiles, tags, fields, notes
    "broadcasts": ("broadcasts_db_url", "broadcasts.sqlite3"),  # broadcasts ("Transmisiones") and their recipients
    "csat": ("csat_db_url", "csat.sqlite3"),  # customer satisfaction: the ratings asked after a close and answered
    "answers": ("answers_db_url", "answers.sqlite3"),  # the answer journal and the unanswered questions' groups
    "paraphrases": ("paraphrases_db_url", "paraphrases.sqlite3"),  # LLM-proposed ways of asking, for editors to review
}
STORE_URL_VARIABLES = {"ingest_db_url": "INGEST_DB_URL", "handoff_db_url": "HANDOFF_DB_URL",
                       "console_db_url": "CONSOLE_DB_URL", "outbox_url": "OUTBOX_URL",
                       "comment_journal_db_url": "COMMENT_JOURNAL_DB_URL", "comments_db_url": "COMMENTS_DB_URL",
                       "links_db_url": "LINKS_DB_URL", "page_profile_db_url": "PAGE_PROFILE_DB_URL",
                       "contacts_db_url": "CONTACTS_DB_URL", "broadcasts_db_url": "BROADCASTS_DB_URL",
                       "csat_db_url": "CSAT_DB_URL", "answers_db_url": "ANSWERS_DB_URL",
                       "paraphrases_db_url": "PARAPHRASES_DB_URL"}


# `bot run` puts "rasa-2" on RASA_PORT+10, "rasa-3" on +20 … (bot/profile.py extra_rasa_ports; RASA_PORT+1 is the
# webhook's default).
EXTRA_RASA_PORT_STEP = 10

DEFAULT_LLM_TIMEOUT_SECONDS = 4.0  # LLM_TIMEOUT_SECONDS: a fallback answer in all, retries included
ACTION_TIMEOUT_MARGIN_SECONDS = 15.0  # retrieval, the app's calls and Rasa's side of an action call


class SettingsError(ValueError):
    """A setting is missing or unsafe; the message says which and how to fix it."""


@dataclass(frozen=True)
class Settings:
    environment: str = "development"
    app_secret: str = DEMO_APP_SECRET
    verify_token: str = DEMO_VERIFY_TOKEN
    app_id: str = ""
    page_tokens: Mapping[str, str] = field(default_factory=lambda: {SANDBOX_PAGE_ID: SANDBOX_PAGE_TOKEN})
    graph_api_base: str = "http://127.0.0.1:8000"
    graph_api_version: str = DEFAULT_GRAPH_API_VERSION
    data_dir: Path = ROOT / "var"
    rasa_url: str = "http://127.0.0.1:5005"
    action_server_url: str = "http://127.0.0.1:5055/webhook"
    action_server_host: str = "127.0.0.1"  # where the action server listens (ACTION_SERVER_HOST); not loopback: token
    action_server_token: str = ""  # shared token Rasa sends to the action server (ACTION_SERVER_TOKEN)
    action_outage_seconds: float = 60.0  # how long a message waits for a dead action server before the honest reply
    # One action call at most this long (Rasa's own is 300 s); a timeout is a failed call. Default: LLM budget + 15 s.
    action_timeout_seconds: float = DEFAULT_LLM_TIMEOUT_SECONDS + ACTION_TIMEOUT_MARGIN_SECONDS
    app_url: str = "http://127.0.0.1:8000"
    service_token: str = DEMO_SERVICE_TOKEN
    rasa_token: str = DEMO_RASA_TOKEN  # Rasa's HTTP API: JWTs signed with it (handoff/rasa_api.py), for the console
    graph_timeout_seconds: float = 10.0
    outbox_url: str = ""  # sqlite:///path (default: <data_dir>/outbox.sqlite3) or postgresql://…
    # The stores' database (BOT_DATABASE_URL, postgresql://…): each store gets its own schema on it, named
    # <BOT_DATABASE_SCHEMA_PREFIX><store> (bot_ingest, bot_handoff, bot_console, bot_outbox). Empty: SQLite files
    # under data_dir. A store's own URL (INGEST_DB_URL, HANDOFF_DB_URL, CONSOLE_DB_URL, OUTBOX_URL) wins.
    database_url: str = field(default="", repr=False)
    database_schema_prefix: str = "bot_"
    ingest_db_url: str = field(default="", repr=False)
    handoff_db_url: str = field(default="", repr=False)
    console_db_url: str = field(default="", repr=False)
    comment_journal_db_url: str = field(default="", repr=False)
    comments_db_url: str = field(default="", repr=False)
    links_db_url: str = field(default="", repr=False)
    page_profile_db_url: str = field(default="", repr=False)
    contacts_db_url: str = field(default="", repr=False)
    broadcasts_db_url: str = field(default="", repr=False)
    csat_db_url: str = field(default="", repr=False)
    answers_db_url: str = field(default="", repr=False)
    paraphrases_db_url: str = field(default="", repr=False)
    # Sends per second per page (OUTBOX_PAGE_RATE; 0: no limit); None: the sending policy's (outbox/policy.yml
    # send_rates.outbox_per_second, a share of Meta's Send API limit).
    outbox_page_rate: float | None = None
    outbox_lease_seconds: float = 30.0  # a claimed message is another worker's after this (at-least-once window)
    outbox_batch_size: int = 32  # messages a standalone worker (`python -m outbox worker`) claims at once
    # An outbox worker with nothing to do looks for new messages this often (another process's enqueue: Rasa's
    # replies reach the app's or a standalone worker within about this long; a cheap look on SQLite).
    outbox_poll_seconds: float = 0.03
    # OUTBOX_IN_RASA=1: the Rasa channel runs an outbox worker on Rasa's event loop too (embedded profile); by
    # default the app's worker (or the standalone ones) sends Rasa's replies, off Rasa's loop.
    outbox_in_rasa: bool = False
    # The sending policy (outbox/policy_file.py): None is the shipped outbox/policy.yml (OUTBOX_POLICY_FILE), and
    # OUTBOX_RETIRED_TAGS_UNTIL moves the retirement date of the three tags Meta retired in 2026 (None: the file's).
    outbox_policy_file: Path | None = None
    outbox_retired_tags_until: datetime | None = None
    # The app's comment processor (comments/processor.py) looks for new comments this often when idle.
    comments_poll_seconds: float = 1.0
    # The app's contacts sync (contacts/sync.py) looks for people who wrote, and profiles to fetch, this often.
    contacts_sync_seconds: float = 2.0
    # Broadcasts (broadcasts/): each page's recipients are spread at this many sends per second (never above
    # OUTBOX_PAGE_RATE), so replies to people writing now are not held behind a broadcast; the runner looks for
    # due broadcasts and refreshes their report this often.
    broadcast_page_rate: float = 10.0
    broadcasts_poll_seconds: float = 2.0
    # Customer satisfaction (csat/): how a person is asked for a rating after an agent closes the conversation
    # (CSAT_MODE: template = Meta's customer feedback template, quick_replies, off) and the privacy policy the
    # template must link (CSAT_PRIVACY_URL; without it the template cannot be sent: quick replies are used).
    csat_mode: str = "template"
    csat_privacy_url: str = ""
    # ...and, optionally, after the bot resolved a conversation on its own: the person's last question answered and
    # nobody of the team involved, this many minutes after their last message (CSAT_AFTER_BOT_MINUTES; 0: never).
    csat_after_bot_minutes: int = 0
    # The answer journal (answers/): the key of the people's hashes (ANSWERS_SECRET; required in production; empty
    # outside it: the service token), how often the app groups new unanswered questions (ANSWERS_GROUP_SECONDS) and
    # how many days each question is kept (ANSWERS_RETENTION_DAYS; older days are kept as counts only).
    answers_secret: str = field(default="", repr=False)
    answers_group_seconds: float = 60.0
    answers_retention_days: int = 180
    event_retention_days: float = 30.0  # finished webhook events kept this long (connectors/ingest.py)
    # The Rasa channel (connectors/messenger.py): journaled windows re-applied this often; Rasa turns at once.
    messenger_upkeep_seconds: float = 30.0
    messenger_processing_concurrency: int = 8
    # MESSENGER_SENDER_ACTIONS: when a turn begins with mark_seen and typing_on (SENDER_ACTION_MODES).
    messenger_sender_actions: str = "unless_busy"
    # MESSENGER_FEEDER: who claims the journal and drives the turns (FEEDER_MODES): Rasa's process itself (`rasa`),
    # or a feeder process beside each Rasa instance that calls it over HTTP (`process`, connectors/feeder.py), so
    # Rasa's process only runs turns.
    messenger_feeder: str = "process"
    # The feeder (connectors/messenger.py) claims journaled events this often when nothing woke it, and holds a
    # conversation's claim this long between renewals (another Rasa instance takes it over once it expired).
    messenger_feeder_poll_seconds: float = 0.02
    messenger_claim_lease_seconds: float = 30.0
    rasa_instance_id: str = ""  # RASA_INSTANCE_ID: the journal claims' owner; empty: "<hostname>:<pid>"
    # RASA_NICENESS: `bot run` starts every process but the webhook (Rasa, the action server, the app with its
    # outbox worker, standalone outbox workers) this much nicer, so the webhook's 200s win the cores from Rasa's
    # turns (bot/stack.py; deploy/systemd's Nice=). 0: all at the same priority.
    rasa_niceness: int = 0
    # RASA_CPUS: the CPUs `bot run` gives Rasa's processes, the other processes running on the rest (bot/stack.py
    # `cpu_placement`): "off" (the kernel places every process), "auto" (half the CPUs rounded down, raised to one
    # per Rasa instance while one stays for the others) or a list ("0", "0-1", "0,2"). Stored as "off", "auto" or
    # the list written the way Linux writes it.
    rasa_cpus: str = "off"
    # The webhook process (connectors/webhook_server.py): Meta's deliveries; a non-loopback host needs a real secret.
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 5006
    # The profile (BOT_PROFILE): "embedded" runs on one machine with SQLite and Rasa's in-memory lock; "scale" runs
    # Rasa on its SQL tracker store (PostgreSQL), Redis lock store and Pika event broker (RabbitMQ), so several Rasa
    # instances (RASA_INSTANCES) serve the same users, and standalone outbox workers (OUTBOX_WORKERS) send.
    profile: str = "embedded"
    rasa_tracker_db_url: str = field(default="", repr=False)  # scale: postgresql://… (Rasa's SQL tracker store)
    redis_url: str = field(default=DEFAULT_REDIS_URL, repr=False)  # scale: Rasa's lock store
    rasa_lock_key_prefix: str = "ecuabots"  # scale: Redis keys "<prefix>:lock:<sender>" (letters and digits only)
    rabbitmq_url: str = field(default=DEFAULT_RABBITMQ_URL, repr=False)  # scale: Rasa's event broker
    rasa_events_exchange: str = "rasa-exchange"  # scale: the fanout exchange Rasa publishes to
    rasa_events_queue: str = "rasa_events"  # scale: the durable queue bound to it, consumed by the app
    rasa_instances: int = 1  # Rasa processes `bot run` starts (more than 1: scale only)
    outbox_workers: int = 0  # standalone outbox workers `bot run` starts; 0: the app and Rasa run one each
    # `bot run`'s ports (RASA_PORT, ACTION_PORT, APP_PORT).
    rasa_port: int = 5005
    action_port: int = 5055
    app_port: int = 8000
    # Human handoff (handoff/service.py, actions/handoff.py).
    handoff_max_failures: int = 2  # answers not found in a row before the bot hands off
    handoff_idle_resume_minutes: float = 240.0  # a paused conversation idle this long goes back to the bot (0: never)
    business_hours: str = ""  # "lun-vie 08:00-18:00; sáb 09:00-13:00"; empty: no "Fuera de Horario" message
    business_timezone: str = DEFAULT_BUSINESS_TIMEZONE
    away_message: str = DEFAULT_AWAY_MESSAGE  # "{horario}" becomes the business hours in words
    handover_to_page_inbox: bool = False  # Meta's handover protocol: pass the thread to the Page inbox on pause
    # The proxies whose X-Forwarded-For names the client (uvicorn --forwarded-allow-ips): the login limits count
    # per client address, so without it every client behind a proxy on another host shares the proxy's address.
    forwarded_allow_ips: str = "127.0.0.1"
    # The GPT fallback (LLM_*, knowledge_matrix/llm/): its server is checked here too, so an unsafe one stops a
    # production start instead of only the action server's fallback. No key: the fallback never calls out.
    llm_base_url: str = DEFAULT_LLM_BASE_URL
    llm_api_key: str = field(default="", repr=False)  # LLM_API_KEY (or OPENAI_API_KEY); also checked for reuse
    llm_model: str = DEFAULT_LLM_MODEL
    llm_timeout_seconds: float = DEFAULT_LLM_TIMEOUT_SECONDS
    llm_max_retries: int = 1
    llm_max_tokens: int = 300
    # Ways of asking proposed by the same model for editors to review (knowledge_matrix/paraphrases.py): only with
    # the key above, only when an editor asks; each job bounded in entries, tokens, time and parallel requests.
    paraphrases_per_entry: int = 5
    paraphrases_entries_per_request: int = 10
    paraphrases_max_entries: int = 500
    paraphrases_max_tokens: int = 200_000
    paraphrases_timeout_seconds: float = 60.0
    paraphrases_concurrency: int = 2

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def uses_sandbox(self) -> bool:
        return self.page_tokens.get(SANDBOX_PAGE_ID) == SANDBOX_PAGE_TOKEN

    @property
    def is_demo(self) -> bool:
        """Development with the sandbox page as the only page: the one mode with demo users (and their printed
        passwords), the API docs and the sandbox chat. Any other page, or any other mode, has none of them."""
        return self.environment == "development" and dict(self.page_tokens) == {SANDBOX_PAGE_ID: SANDBOX_PAGE_TOKEN}

    @property
    def serves_graph_sandbox(self) -> bool:
        """The app answers the Graph API itself only outside production and only when sends go to it."""
        return not self.is_production and self.graph_api_base == self.app_url

    def secrets_by_name(self) -> dict[str, str]:
        return {
            "MESSENGER_APP_SECRET": self.app_secret,
            "MESSENGER_VERIFY_TOKEN": self.verify_token,
            "BOT_SERVICE_TOKEN": self.service_token,
            "RASA_API_TOKEN": self.rasa_token,
            "ACTION_SERVER_TOKEN": self.action_server_token,
            # The key of the answer journal's pseudonyms: its own, so the service token (in every process) cannot
            # turn a person_key back into a PSID.
            "ANSWERS_SECRET": self.answers_secret,
        }

    def other_keys_by_name(self) -> dict[str, str]:
        """Keys that are not ours to size (the LLM's) but must not be one of our secrets."""
        return {"LLM_API_KEY": self.llm_api_key} if self.llm_api_key.strip() else {}

    @property
    def is_scale(self) -> bool:
        return self.profile == "scale"

    @property
    def rasa_tracker_store_url(self) -> str:
        """Rasa's SQL tracker store (scale): RASA_TRACKER_DB_URL (or its parts), else the schema <prefix>rasa on
        BOT_DATABASE_URL (`bot run` creates it; Rasa creates only its table)."""
        if self.rasa_tracker_db_url:
            return self.rasa_tracker_db_url
        url = with_schema(self.database_url or DEFAULT_SCALE_DATABASE_URL, f"{self.database_schema_prefix}rasa")
        return "postgresql://" + url.split("://", 1)[1]  # SQLAlchemy knows only postgresql://

    @property
    def runs_outbox_in_process(self) -> bool:
        """The app runs an outbox worker unless standalone workers send (OUTBOX_WORKERS)."""
        return self.outbox_workers == 0

    @property
    def rasa_runs_outbox(self) -> bool:
        """The Rasa channel runs an outbox worker of its own only when asked (OUTBOX_IN_RASA) and no standalone
        workers send: by default Rasa's replies are sent by the app's worker, off Rasa's event loop. An in-memory
        outbox (`memory://`) is the process's own, so the channel must send what it queues itself."""
        in_memory = self.outbox_store_url.startswith("memory:")
        return (self.outbox_in_rasa or in_memory) and self.runs_outbox_in_process

    def store_url(self, store: str) -> str:
        """Where a store lives: its own URL, else its schema on BOT_DATABASE_URL, else its SQLite file."""
        own, file_name = STORES[store]
        if getattr(self, own):
            return str(getattr(self, own))
        if self.database_url:
            return with_schema(self.database_url, f"{self.database_schema_prefix}{store}")
        return f"sqlite:///{self.data_dir / file_name}"

    @property
    def outbox_store_url(self) -> str:
        return self.store_url("outbox")

    @property
    def ingest_store_url(self) -> str:
        return self.store_url("ingest")

    @property
    def handoff_store_url(self) -> str:
        return self.store_url("handoff")

    @property
    def console_store_url(self) -> str:
        return self.store_url("console")

    @property
    def webhook_url(self) -> str:
        """Where this machine posts Meta's deliveries: the webhook process (a wildcard host is reached on loopback)."""
        host = client_host(self.webhook_host)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.webhook_port}/webhooks/messenger/webhook"

    @property
    def ingest_db_path(self) -> Path:
        return self.data_dir / "messenger.sqlite3"

    @property
    def handoff_db_path(self) -> Path:
        return self.data_dir / "handoff.sqlite3"

    @property
    def console_db_path(self) -> Path:
        return self.data_dir / "console.sqlite3"

    def business_schedule(self) -> BusinessHours:
        return parse_business_hours(self.business_hours, self.business_timezone)

    def token_for_page(self, page_id: str) -> str | None:
        return self.page_tokens.get(page_id)

    def check_production_safe(self) -> None:
        """Refuse to run in production with a demo, empty, short or reused secret, the sandbox as Graph API, or a
        Graph API reached without TLS. The messages name the setting, never its value."""
        if not self.is_production:
            return
        problems = [*secret_problems(self.secrets_by_name(), self.page_tokens, self.other_keys_by_name())]
        if not self.action_server_token.strip():
            problems[problems.index("ACTION_SERVER_TOKEN is empty")] = (
                "ACTION_SERVER_TOKEN is not set (outside production `bot run` makes a random one per start; in "
                "production set one of at least 32 characters, the same for Rasa and the action server)"
            )
        if self.uses_sandbox:
            problems.append("no page token is set (MESSENGER_PAGE_ACCESS_TOKEN or MESSENGER_PAGES)")
        elif self.graph_api_base.startswith(self.app_url):
            problems.append("GRAPH_API_BASE points at the sandbox")
        elif not self.graph_api_base.startswith("https://"):
            problems.append("GRAPH_API_BASE must start with https:// (page tokens travel with every send)")
        if not self.app_id:
            problems.append("MESSENGER_APP_ID is not set (needed to tell our own echoes from a person's)")
        llm_url = urlsplit(self.llm_base_url)
        if llm_url.scheme != "https" and not is_loopback_host(llm_url.hostname or ""):
            problems.append("LLM_BASE_URL must start with https:// (http only for a loopback server: 127.0.0.1, "
                            "::1 or localhost)")
        if problems:
            raise SettingsError(
                "BOT_ENV=production refuses to start: " + "; ".join(problems) + ". See README, 'A real page'."
            )

    @property
    def has_real_page(self) -> bool:
        return any(page_id != SANDBOX_PAGE_ID or token != SANDBOX_PAGE_TOKEN
                   for page_id, token in self.page_tokens.items())

    def check_real_pages_need_production(self) -> None:
        """Outside production the secrets may be the published demo ones: a page other than the sandbox's is
        allowed only in `BOT_ENV=test` against a fake Graph API on this machine (a loopback `GRAPH_API_BASE`).
        Anything else would answer real customers with public secrets: refuse, and say how to fix it."""
        if self.is_production or not self.has_real_page:
            return
        if self.environment == "test" and is_loopback_host(urlsplit(self.graph_api_base).hostname or ""):
            return
        if self.environment == "test":
            raise SettingsError(
                "BOT_ENV=test is for a fake Graph API on this machine, but GRAPH_API_BASE is not a loopback address "
                "(127.0.0.0/8, ::1 or localhost) and a page token is set: outside production the secrets may be "
                "the published demo ones. For a real page set BOT_ENV=production."
            )
        raise SettingsError(
            "a real page is configured (MESSENGER_PAGE_ACCESS_TOKEN or MESSENGER_PAGES) but BOT_ENV is not "
            "production: set BOT_ENV=production (development mode has demo users with published passwords). "
            "Tests against a fake Graph API on this machine may set BOT_ENV=test with a loopback GRAPH_API_BASE."
        )


DEMO_SECRETS = {
    "MESSENGER_APP_SECRET": DEMO_APP_SECRET,
    "MESSENGER_VERIFY_TOKEN": DEMO_VERIFY_TOKEN,
    "BOT_SERVICE_TOKEN": DEMO_SERVICE_TOKEN,
    "RASA_API_TOKEN": DEMO_RASA_TOKEN,
}


def secret_problems(
    secrets: Mapping[str, str],
    page_tokens: Mapping[str, str] | None = None,
    other_keys: Mapping[str, str] | None = None,
) -> list[str]:
    """What is wrong with these secrets for production (pure): empty, the demo value, too short, or one value
    used for two of them (or for a secret and a page token or another key, e.g. the LLM's). Names only, never
    values."""
    problems = []
    for name, value in secrets.items():
        minimum = MIN_SECRET_LENGTHS.get(name, 32)
        if not value.strip():
            problems.append(f"{name} is empty")
        elif value == DEMO_SECRETS.get(name):
            problems.append(f"{name} is the demo value")
        elif len(value.strip()) < minimum:
            problems.append(f"{name} is shorter than {minimum} characters")
    names_by_value: dict[str, list[str]] = {}
    for name, value in secrets.items():
        if value.strip():
            names_by_value.setdefault(value.strip(), []).append(name)
    for page_id, token in (page_tokens or {}).items():
        if token.strip() in names_by_value:
            names_by_value[token.strip()].append(f"the page token of {page_id}")
    for name, value in (other_keys or {}).items():
        if value.strip() in names_by_value:
            names_by_value[value.strip()].append(name)
    for names in names_by_value.values():
        if len(names) > 1:
            problems.append(f"{' and '.join(names)} are the same value (use a different secret for each)")
    return problems


def parse_page_tokens(pages: str) -> dict[str, str]:
    """`MESSENGER_PAGES="111:tokenA,222:tokenB"` (commas, spaces or new lines between pairs)."""
    tokens: dict[str, str] = {}
    items = [item for item in pages.replace("\n", ",").replace(" ", ",").split(",") if item]
    for number, item in enumerate(items, start=1):
        page_id, sep, token = item.partition(":")
        if not sep or not page_id.strip().isdigit() or not token.strip():
            # Never echo the entry: it may hold a page token (or be one, when the id is missing).
            raise SettingsError(
                f"MESSENGER_PAGES entry {number} of {len(items)} is not 'page_id:token' with a numeric page id"
            )
        tokens[page_id.strip()] = token.strip()
    return tokens


def _number(get: Callable[..., Any], name: str, default: float) -> float:
    raw = get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, not {raw!r}") from exc


def _page_rate(get: Callable[..., Any]) -> float | None:
    """OUTBOX_PAGE_RATE: unset is None (the sending policy's rate), 0 turns the limit off, else sends per second."""
    if get("OUTBOX_PAGE_RATE") in (None, ""):
        return None
    rate = _number(get, "OUTBOX_PAGE_RATE", 0.0)
    if not 0 <= rate < float("inf"):
        raise SettingsError(f"OUTBOX_PAGE_RATE must be 0 (no limit) or a positive number of sends per second, "
                            f"not {get('OUTBOX_PAGE_RATE')!r}")
    return rate


def _action_timeout(get: Callable[..., Any], llm_budget: float) -> float:
    """ACTION_TIMEOUT_SECONDS, by default the GPT fallback's budget (LLM_TIMEOUT_SECONDS) plus a margin; never at
    or under that budget, or every call that reaches the fallback would be cut before its honest answer."""
    timeout = _number(get, "ACTION_TIMEOUT_SECONDS", llm_budget + ACTION_TIMEOUT_MARGIN_SECONDS)
    if not llm_budget < timeout <= 600:
        raise SettingsError(f"ACTION_TIMEOUT_SECONDS must be more than LLM_TIMEOUT_SECONDS ({llm_budget:g}) and at "
                            f"most 600 (seconds an action call may take), not {timeout:g}")
    return timeout


def _bounded(get: Callable[..., Any], name: str, default: float, low: float, high: float, meaning: str) -> float:
    """A number from `low` to `high` (the message says what it means), or `default` when unset."""
    value = _number(get, name, default)
    if math.isnan(value) or not low <= value <= high:
        raise SettingsError(f"{name} must be {low:g} to {high:g} ({meaning}), not {get(name)!r}")
    return value


def _whole(get: Callable[..., Any], name: str, default: int, low: int, high: int, meaning: str) -> int:
    """A whole number from `low` to `high`, or `default` when unset."""
    value = _bounded(get, name, float(default), low, high, meaning)
    if not value.is_integer():
        raise SettingsError(f"{name} must be a whole number ({meaning}), not {get(name)!r}")
    return int(value)


def _moment(get: Callable[..., Any], name: str) -> datetime | None:
    """A date (YYYY-MM-DD, 00:00 UTC) or an ISO time with its zone; None when unset."""
    raw = (get(name) or "").strip()
    if not raw:
        return None
    text = raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or moment.utcoffset() is None:
        raise SettingsError(f"{name} must be a date (YYYY-MM-DD) or an ISO time with its zone, not {raw!r}")
    return moment.astimezone(timezone.utc)


def _flag(get: Callable[..., Any], name: str) -> bool:
    raw = (get(name) or "0").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be 0 or 1, not {raw!r}")


def _address_list(get: Callable[..., Any], name: str, default: str) -> str:
    """Comma-separated IP addresses or networks (`10.0.0.0/8`), or `*` (trust every peer: only when the app's
    port is reachable by the proxy alone)."""
    raw = (get(name) or default).replace(" ", "")
    for item in raw.split(","):
        if item == "*":
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError as exc:
            raise SettingsError(f"{name} must list IP addresses or networks (e.g. 10.0.0.5,10.1.0.0/16), "
                                f"not {item!r}") from exc
    return raw


def data_dir_from_env(env: Mapping[str, str] | None = None) -> Path:
    """BOT_DATA_DIR, else the repository's var/: for a tool that needs the data directory and nothing else (the
    knowledge matrix CLI), without the checks a whole start makes."""
    env = os.environ if env is None else env
    return Path(env.get("BOT_DATA_DIR") or ROOT / "var")


def load_settings(env: Mapping[str, str] | None = None, overrides: Mapping[str, str] | None = None) -> Settings:
    """The settings from `env` (the process's environment by default), with `overrides` (a command's options, e.g.
    `bot run --profile scale`) on top."""
    env = os.environ if env is None else env
    if overrides:
        env = {**env, **overrides}
    get = _with_profile_defaults(env.get)
    page_tokens = _page_tokens(get)
    timeout = _number(get, "GRAPH_API_TIMEOUT_SECONDS", 10.0)
    app_url = get("BOT_APP_URL", "http://127.0.0.1:8000").rstrip("/")
    uses_sandbox = page_tokens == {SANDBOX_PAGE_ID: SANDBOX_PAGE_TOKEN}
    # With only the sandbox page configured, sends go to the sandbox in the app; else to Meta.
    graph_api_base = get("GRAPH_API_BASE") or (app_url if uses_sandbox else "https://graph.facebook.com")
    llm_timeout = _bounded(get, "LLM_TIMEOUT_SECONDS", DEFAULT_LLM_TIMEOUT_SECONDS, 0.5, 30,
                           "seconds a fallback answer may take in all")
    environment = get("BOT_ENV", "development")
    if environment not in ENVIRONMENTS:
        raise SettingsError(f"BOT_ENV must be one of {', '.join(sorted(ENVIRONMENTS))}, not {environment!r}")
    settings = Settings(
        environment=environment,
        app_secret=get("MESSENGER_APP_SECRET", DEMO_APP_SECRET),
        verify_token=get("MESSENGER_VERIFY_TOKEN", DEMO_VERIFY_TOKEN),
        app_id=get("MESSENGER_APP_ID", ""),
        page_tokens=page_tokens,
        graph_api_base=graph_api_base.rstrip("/"),
        graph_api_version=get("GRAPH_API_VERSION", DEFAULT_GRAPH_API_VERSION),
        data_dir=data_dir_from_env(env),
        rasa_url=get("RASA_URL", "http://127.0.0.1:5005").rstrip("/"),
        action_server_url=get("ACTION_SERVER_URL", "http://127.0.0.1:5055/webhook"),
        action_server_host=get("ACTION_SERVER_HOST") or "127.0.0.1",
        action_server_token=get("ACTION_SERVER_TOKEN", ""),
        action_outage_seconds=_number(get, "ACTION_OUTAGE_SECONDS", 60.0),
        action_timeout_seconds=_action_timeout(get, llm_timeout),
        app_url=app_url,
        service_token=get("BOT_SERVICE_TOKEN", DEMO_SERVICE_TOKEN),
        rasa_token=get("RASA_API_TOKEN", DEMO_RASA_TOKEN),
        graph_timeout_seconds=timeout,
        **_store_urls(get),
        outbox_page_rate=_page_rate(get),
        outbox_lease_seconds=_number(get, "OUTBOX_LEASE_SECONDS", 30.0),
        outbox_batch_size=_whole(get, "OUTBOX_BATCH_SIZE", 32, 1, 1000, "messages a worker claims at once"),
        outbox_poll_seconds=_bounded(get, "OUTBOX_POLL_SECONDS", 0.03, 0.005, 60,
                                     "seconds between an idle outbox worker's looks for new messages"),
        outbox_in_rasa=_flag(get, "OUTBOX_IN_RASA"),
        outbox_policy_file=Path(get("OUTBOX_POLICY_FILE", "")) if get("OUTBOX_POLICY_FILE") else None,
        outbox_retired_tags_until=_moment(get, "OUTBOX_RETIRED_TAGS_UNTIL"),
        comments_poll_seconds=_bounded(get, "COMMENTS_POLL_SECONDS", 1.0, 0.01, 3600,
                                       "seconds between the comment processor's looks for new comments"),
        contacts_sync_seconds=_bounded(get, "CONTACTS_SYNC_SECONDS", 2.0, 0.01, 3600,
                                       "seconds between the contacts sync's rounds"),
        broadcast_page_rate=_bounded(get, "BROADCAST_PAGE_RATE", 10.0, 0.01, 1000,
                                     "broadcast sends per second per page"),
        broadcasts_poll_seconds=_bounded(get, "BROADCASTS_POLL_SECONDS", 2.0, 0.01, 3600,
                                         "seconds between the broadcast runner's rounds"),
        csat_mode=_csat_mode(get),
        csat_privacy_url=_csat_privacy_url(get),
        csat_after_bot_minutes=_csat_after_bot_minutes(get),
        answers_secret=get("ANSWERS_SECRET", ""),
        answers_group_seconds=_bounded(get, "ANSWERS_GROUP_SECONDS", 60.0, 1, 86400,
                                       "seconds between the groupings of unanswered questions"),
        answers_retention_days=_whole(get, "ANSWERS_RETENTION_DAYS", 180, 1, 3650,
                                      "days the answer journal keeps each question"),
        event_retention_days=_number(get, "MESSENGER_EVENT_RETENTION_DAYS", 30.0),
        messenger_upkeep_seconds=_bounded(get, "MESSENGER_UPKEEP_SECONDS", 30.0, 0.1, 3600,
                                          "seconds between rounds of the webhook upkeep"),
        messenger_processing_concurrency=_whole(get, "MESSENGER_PROCESSING_CONCURRENCY", 8, 1, 256,
                                                "conversations Rasa works on at once"),
        messenger_sender_actions=_sender_actions(get),
        messenger_feeder=_one_of(get, "MESSENGER_FEEDER", FEEDER_MODES, "process"),
        messenger_feeder_poll_seconds=_bounded(get, "MESSENGER_FEEDER_POLL_SECONDS", 0.02, 0.001, 60,
                                               "seconds between the feeder's looks at the journal"),
        messenger_claim_lease_seconds=_bounded(get, "MESSENGER_CLAIM_LEASE_SECONDS", 30.0, 1, 3600,
                                               "seconds a Rasa instance holds a conversation between renewals"),
        rasa_instance_id=(get("RASA_INSTANCE_ID") or "").strip(),
        rasa_niceness=_whole(get, "RASA_NICENESS", 0, 0, 19, "niceness of every process but the webhook"),
        rasa_cpus=_cpu_spec(get),
        webhook_host=(get("WEBHOOK_HOST") or "").strip() or "127.0.0.1",
        webhook_port=_whole(get, "WEBHOOK_PORT", 5006, 1, 65535, "a TCP port"),
        **_profile(get),
        rasa_port=_whole(get, "RASA_PORT", 5005, 1, 65535, "a TCP port"),
        action_port=_whole(get, "ACTION_PORT", 5055, 1, 65535, "a TCP port"),
        app_port=_whole(get, "APP_PORT", 8000, 1, 65535, "a TCP port"),
        handoff_max_failures=int(_number(get, "HANDOFF_MAX_FAILURES", 2)),
        handoff_idle_resume_minutes=_number(get, "HANDOFF_IDLE_RESUME_MINUTES", 240.0),
        business_hours=get("BUSINESS_HOURS", ""),
        business_timezone=get("BUSINESS_TIMEZONE") or DEFAULT_BUSINESS_TIMEZONE,
        away_message=get("AWAY_MESSAGE") or DEFAULT_AWAY_MESSAGE,
        handover_to_page_inbox=_flag(get, "HANDOVER_TO_PAGE_INBOX"),
        forwarded_allow_ips=_address_list(get, "BOT_FORWARDED_ALLOW_IPS", "127.0.0.1"),
        llm_base_url=(get("LLM_BASE_URL") or "").strip().rstrip("/") or DEFAULT_LLM_BASE_URL,
        llm_api_key=next((get(name, "").strip() for name in REUSE_CHECKED_KEYS if (get(name) or "").strip()), ""),
        llm_model=(get("LLM_MODEL") or "").strip() or DEFAULT_LLM_MODEL,
        llm_timeout_seconds=llm_timeout,
        llm_max_retries=_whole(get, "LLM_MAX_RETRIES", 1, 0, 5, "retries of a failed fallback call"),
        llm_max_tokens=_whole(get, "LLM_MAX_TOKENS", 300, 16, 4096, "the longest fallback answer, in tokens"),
        paraphrases_per_entry=_whole(get, "PARAPHRASES_PER_ENTRY", 5, 1, 10, "ways of asking proposed per entry"),
        paraphrases_entries_per_request=_whole(get, "PARAPHRASES_ENTRIES_PER_REQUEST", 10, 1, 50,
                                               "entries sent to the model in one request"),
        paraphrases_max_entries=_whole(get, "PARAPHRASES_MAX_ENTRIES", 500, 1, 100_000,
                                       "entries one paraphrase job may cover"),
        paraphrases_max_tokens=_whole(get, "PARAPHRASES_MAX_TOKENS", 200_000, 1000, 50_000_000,
                                      "tokens one paraphrase job may spend, prompts and replies"),
        paraphrases_timeout_seconds=_bounded(get, "PARAPHRASES_TIMEOUT_SECONDS", 60.0, 1, 600,
                                             "seconds one paraphrase request may take, retries included"),
        paraphrases_concurrency=_whole(get, "PARAPHRASES_CONCURRENCY", 2, 1, 8,
                                       "paraphrase requests in flight at once"),
    )
    _check_limits(settings)
    settings.check_production_safe()
    settings.check_real_pages_need_production()
    return settings


# The sender actions (mark_seen, typing_on) that begin a turn: "always"; "unless_busy", not while other conversations
# wait for a processing slot (a burst: each costs Rasa's time and two Send API calls against the page's rate, and the
# answers come sooner without them); "never".
SENDER_ACTION_MODES = ("always", "unless_busy", "never")
FEEDER_MODES = ("rasa", "process")


def _one_of(get: Callable[..., Any], name: str, choices: tuple[str, ...], default: str) -> str:
    """A setting that names one of `choices` (case and spaces aside; empty: `default`)."""
    mode = (get(name) or "").strip().lower() or default
    if mode not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, not {mode[:40]!r}")
    return mode


MAX_CPU_ID = 8191  # above any machine's CPU numbers (Linux kernels are built for at most 8,192 CPUs)


def parse_cpu_list(text: str) -> frozenset[int]:
    """A CPU list as Linux writes it ("0", "0-3", "0,2,4-5") -> the CPU numbers; ValueError when it is not one."""
    cpus: set[int] = set()
    for part in text.replace(" ", "").split(","):
        match = re.fullmatch(r"([0-9]{1,4})(?:-([0-9]{1,4}))?", part)
        if match is None:
            raise ValueError(f"{part[:20]!r} is not a CPU number or range")
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if high < low or high > MAX_CPU_ID:
            raise ValueError(f"{part!r} is not a range of CPU numbers from 0 to {MAX_CPU_ID}")
        cpus.update(range(low, high + 1))
    return frozenset(cpus)


def format_cpu_list(cpus: frozenset[int] | set[int]) -> str:
    """The CPU numbers as a list with ranges, the way Linux writes it: {0, 1, 2, 5} -> "0-2,5"."""
    parts: list[str] = []
    for cpu in sorted(cpus):
        if parts and cpu == int(parts[-1].rsplit("-", 1)[-1]) + 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{cpu}"
        else:
            parts.append(str(cpu))
    return ",".join(parts)


def _cpu_spec(get: Callable[..., Any]) -> str:
    """RASA_CPUS: "off" (unset), "auto", or a CPU list, kept normalized ("2,0-1" -> "0-2")."""
    raw = (get("RASA_CPUS") or "").strip()
    if raw.lower() in ("", "off", "auto"):
        return raw.lower() or "off"
    try:
        return format_cpu_list(parse_cpu_list(raw))
    except ValueError as exc:
        raise SettingsError(f"RASA_CPUS must be off, auto or a list of CPUs such as 0 or 0-1 or 0,2 ({exc}), "
                            f"not {raw[:40]!r}") from None


def _sender_actions(get: Callable[..., Any]) -> str:
    return _one_of(get, "MESSENGER_SENDER_ACTIONS", SENDER_ACTION_MODES, "unless_busy")


CSAT_MODES = ("template", "quick_replies", "off")


def _csat_mode(get: Callable[..., Any]) -> str:
    return _one_of(get, "CSAT_MODE", CSAT_MODES, "template")


# CSAT_AFTER_BOT_MINUTES: 0 (off) or this range. Less than 10 minutes asks while the person may still be writing; more
# than 23 hours would leave the question (asked within the hour after) outside the 24-hour window.
CSAT_AFTER_BOT_MINUTES_RANGE = (10, 1380)


def _csat_after_bot_minutes(get: Callable[..., Any]) -> int:
    """Minutes after the person's last message at which a conversation the bot resolved asks for a rating; 0: never."""
    low, high = CSAT_AFTER_BOT_MINUTES_RANGE
    minutes = _number(get, "CSAT_AFTER_BOT_MINUTES", 0.0)
    if not (minutes == 0 or low <= minutes <= high) or not minutes.is_integer():
        raise SettingsError(f"CSAT_AFTER_BOT_MINUTES must be 0 (off) or a whole number from {low} to {high} (minutes "
                            f"after the person's last message), not {get('CSAT_AFTER_BOT_MINUTES')!r}")
    return int(minutes)


def _csat_privacy_url(get: Callable[..., Any]) -> str:
    """The page's privacy policy, which Meta's feedback template must link: an https:// (or http://) URL or nothing."""
    raw = (get("CSAT_PRIVACY_URL") or "").strip()
    if not raw:
        return ""
    try:
        parts = urlsplit(raw)
    except ValueError as exc:
        raise SettingsError("CSAT_PRIVACY_URL is not a valid URL") from exc
    if parts.scheme not in ("https", "http") or not parts.hostname or any(char.isspace() for char in raw):
        raise SettingsError("CSAT_PRIVACY_URL must be an https://host/… URL (the page's privacy policy)")
    return raw


def _service_url(get: Callable[..., Any], name: str, default: str, schemes: tuple[str, ...], what: str) -> str:
    """A service's URL with one of `schemes` and a host; the message never echoes it (it may hold a password)."""
    raw = (get(name) or "").strip() or default
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError as exc:
        raise SettingsError(f"{name} is not a valid URL ({what})") from exc
    if parts.scheme not in schemes or not parts.hostname:
        raise SettingsError(f"{name} must be a {' or '.join(s + '://' for s in schemes)}host… URL ({what})")
    return raw


def _tracker_db_url(get: Callable[..., Any]) -> str:
    """Rasa's SQL tracker store when set: RASA_TRACKER_DB_URL, else RASA_TRACKER_DB_HOST with _PORT, _NAME, _USER
    and _PASSWORD; "" otherwise (`Settings.rasa_tracker_store_url` then takes a schema on BOT_DATABASE_URL)."""
    if not (get("RASA_TRACKER_DB_URL") or "").strip() and (get("RASA_TRACKER_DB_HOST") or "").strip():
        port = _whole(get, "RASA_TRACKER_DB_PORT", 5432, 1, 65535, "a TCP port")
        user = quote((get("RASA_TRACKER_DB_USER") or "").strip() or "postgres", safe="")
        password = get("RASA_TRACKER_DB_PASSWORD") or ""
        login = f"{user}:{quote(password, safe='')}" if password else user
        name = quote((get("RASA_TRACKER_DB_NAME") or "").strip() or "rasa", safe="")
        host = get("RASA_TRACKER_DB_HOST", "").strip()
        return f"postgresql://{login}@{host}:{port}/{name}"
    if not (get("RASA_TRACKER_DB_URL") or "").strip():
        return ""
    url = _service_url(get, "RASA_TRACKER_DB_URL", "", ("postgresql", "postgres"), "Rasa's tracker store")
    return "postgresql://" + url.split("://", 1)[1]  # SQLAlchemy knows only postgresql://


def _with_profile_defaults(get: Callable[..., Any]) -> Callable[..., Any]:
    """The scale profile keeps the stores on PostgreSQL (on this machine unless BOT_DATABASE_URL says where)."""
    if (get("BOT_PROFILE") or "").strip().lower() != "scale":
        return get

    def scaled(name: str, default: Any = None) -> Any:
        value = get(name, default)
        if name == "BOT_DATABASE_URL" and not (value or "").strip():
            return DEFAULT_SCALE_DATABASE_URL
        return value

    return scaled


def _profile(get: Callable[..., Any]) -> dict[str, Any]:
    """BOT_PROFILE and what the scale profile needs (Rasa's tracker store, lock store and event broker, the numbers
    of Rasa instances and outbox workers), checked; in the embedded profile only the numbers matter."""
    profile = (get("BOT_PROFILE") or "").strip().lower() or "embedded"
    if profile not in PROFILES:
        raise SettingsError(f"BOT_PROFILE must be one of {', '.join(PROFILES)}, not {profile!r}")
    scale = profile == "scale"
    instances = _whole(get, "RASA_INSTANCES", 2 if scale else 1, 1, 16, "Rasa processes")
    if instances > 1 and not scale:
        raise SettingsError("RASA_INSTANCES above 1 needs BOT_PROFILE=scale (the instances share the conversations "
                            "through PostgreSQL and Redis; the embedded profile keeps them in one process)")
    fields: dict[str, Any] = {
        "profile": profile,
        "rasa_instances": instances,
        "outbox_workers": _whole(get, "OUTBOX_WORKERS", 2 if scale else 0, 0, 32, "standalone outbox workers"),
    }
    if not scale:
        return fields
    prefix = (get("RASA_LOCK_KEY_PREFIX") or "").strip() or "ecuabots"
    if not prefix.isalnum():
        raise SettingsError(f"RASA_LOCK_KEY_PREFIX must be letters and digits only (Rasa ignores others), "
                            f"not {prefix!r}")
    names: dict[str, str] = {}
    for name, default in (("RASA_EVENTS_EXCHANGE", "rasa-exchange"), ("RASA_EVENTS_QUEUE", "rasa_events")):
        value = (get(name) or "").strip() or default
        if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,200}", value):
            raise SettingsError(f"{name} must be 1 to 200 letters, digits, '_', '.', ':' or '-', not {value!r}")
        names[name] = value
    return {
        **fields,
        "rasa_tracker_db_url": _tracker_db_url(get),
        "redis_url": _service_url(get, "REDIS_URL", DEFAULT_REDIS_URL, ("redis",), "Rasa's lock store"),
        "rasa_lock_key_prefix": prefix,
        "rabbitmq_url": _service_url(get, "RABBITMQ_URL", DEFAULT_RABBITMQ_URL, ("amqp",),
                                     "Rasa's event broker"),
        "rasa_events_exchange": names["RASA_EVENTS_EXCHANGE"],
        "rasa_events_queue": names["RASA_EVENTS_QUEUE"],
    }


def _store_url(get: Callable[..., Any], name: str, schemes: tuple[str, ...]) -> str:
    """A store's URL (`sqlite:///path`, `postgresql://…`; the outbox also `memory://`), or "" when unset. The
    message names the variable, never the value (it may hold a password)."""
    raw = (get(name) or "").strip()
    if not raw:
        return ""
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError as exc:
        raise SettingsError(f"{name} is not a valid URL") from exc
    if parts.scheme not in schemes:
        raise SettingsError(f"{name} must start with {' or '.join(f'{s}://' for s in schemes)}")
    if parts.scheme == "sqlite" and not raw.startswith("sqlite:///") or raw == "sqlite:///":
        raise SettingsError(f"{name} must be sqlite:///relative/path or sqlite:////absolute/path")
    if is_postgres_url(raw):
        schema = schema_in_url(raw)
        if schema is not None and not SCHEMA_NAME.match(schema):
            raise SettingsError(f"{name}: the search_path's schema must be lower-case letters, digits and _")
    return raw


def _store_urls(get: Callable[..., Any]) -> dict[str, Any]:
    """BOT_DATABASE_URL (PostgreSQL, no search_path: each store picks its schema), BOT_DATABASE_SCHEMA_PREFIX and
    the stores' own URLs, checked."""
    database_url = _store_url(get, "BOT_DATABASE_URL", ("postgresql", "postgres"))
    if database_url and schema_in_url(database_url) is not None:
        raise SettingsError("BOT_DATABASE_URL must not set a search_path: each store takes its own schema "
                            "(BOT_DATABASE_SCHEMA_PREFIX + the store's name)")
    prefix = (get("BOT_DATABASE_SCHEMA_PREFIX") or "").strip() or "bot_"
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,40}", prefix):
        raise SettingsError(f"BOT_DATABASE_SCHEMA_PREFIX must be 1 to 41 lower-case letters, digits or _ (not "
                            f"starting with a digit), not {prefix!r}")
    fields: dict[str, Any] = {"database_url": database_url, "database_schema_prefix": prefix}
    for field_name, variable in STORE_URL_VARIABLES.items():
        schemes = ("sqlite", "postgresql", "postgres") + (("memory",) if variable == "OUTBOX_URL" else ())
        fields[field_name] = _store_url(get, variable, schemes)
    return fields


def _page_tokens(get: Callable[..., Any]) -> dict[str, str]:
    """MESSENGER_PAGES and/or MESSENGER_PAGE_ID + MESSENGER_PAGE_ACCESS_TOKEN; the sandbox page when neither."""
    page_tokens: dict[str, str] = {}
    if get("MESSENGER_PAGES"):
        page_tokens.update(parse_page_tokens(get("MESSENGER_PAGES", "")))
    if get("MESSENGER_PAGE_ACCESS_TOKEN"):
        page_id = get("MESSENGER_PAGE_ID", "")
        if not page_id.isdigit():
            raise SettingsError("MESSENGER_PAGE_ACCESS_TOKEN needs MESSENGER_PAGE_ID (the page's numeric id)")
        page_tokens[page_id] = get("MESSENGER_PAGE_ACCESS_TOKEN", "")
    return page_tokens or {SANDBOX_PAGE_ID: SANDBOX_PAGE_TOKEN}


def _check_shared(settings: Settings) -> None:
    """What several processes share must be shareable: the outbox (an in-memory one is each process's own, so
    replies enqueued by one are never sent by another's worker) and the ports (the webhook process must not take a
    port another process of `bot run` binds)."""
    if settings.outbox_store_url == "memory://" and (
        settings.outbox_workers > 0 or settings.rasa_instances > 1 or settings.is_scale
    ):
        raise SettingsError(
            "OUTBOX_URL=memory:// keeps the outbox inside one process, but several processes share it here "
            f"(BOT_PROFILE={settings.profile}, RASA_INSTANCES={settings.rasa_instances}, "
            f"OUTBOX_WORKERS={settings.outbox_workers}): use sqlite:///… or postgresql://…")
    taken = {"RASA_PORT": settings.rasa_port, "APP_PORT": settings.app_port, "ACTION_PORT": settings.action_port}
    for number in range(1, settings.rasa_instances):
        taken[f"RASA_PORT+{EXTRA_RASA_PORT_STEP * number} (rasa-{number + 1})"] = (
            settings.rasa_port + EXTRA_RASA_PORT_STEP * number)
    clashes = [name for name, port in taken.items() if port == settings.webhook_port]
    if clashes:
        raise SettingsError(f"WEBHOOK_PORT={settings.webhook_port} is also {clashes[0]}: give the webhook process "
                            "a port of its own")


def _check_limits(settings: Settings) -> None:
    """The ranges checked on the parsed values (the others are checked while parsing)."""
    if not 0 <= settings.event_retention_days <= 36500:
        raise SettingsError("MESSENGER_EVENT_RETENTION_DAYS must be 0 to 36500 (days finished webhook events are kept)")
    if not 1 <= settings.outbox_lease_seconds <= 3600:
        raise SettingsError("OUTBOX_LEASE_SECONDS must be 1 to 3600 (seconds before a claimed message may be retried)")
    if settings.handoff_max_failures < 1:
        raise SettingsError("HANDOFF_MAX_FAILURES must be 1 or more (answers not found in a row before a handoff)")
    if settings.handoff_idle_resume_minutes < 0:
        raise SettingsError("HANDOFF_IDLE_RESUME_MINUTES must be 0 (never) or more")
    _check_shared(settings)
    try:
        settings.business_schedule()  # a schedule nobody can read must stop the start, not the first handoff
    except BusinessHoursError as exc:
        raise SettingsError(str(exc)) from exc
