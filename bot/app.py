"""The app on port 8000: the Graph API sandbox, the sandbox chat, and (later) the console and APIs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import httpx
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from answers.service import Answers, open_answers
from bot import errors, internal_api
from bot.request_guard import Guard, RequestGuard
from broadcasts.service import Broadcasts, broadcast_rate
from broadcasts.store import open_broadcasts_store
from comments.journal import open_comment_journal
from comments.processor import CommentProcessor, knowledge_answerer
from comments.rules_store import open_rules_store
from console import routes as console
from console.auth import RESERVED_USERNAMES, NotAuthenticated
from console.parts import PAUSE_REASONS_ES
from console.rasa_events import RasaEventFeed, paused_check
from contacts.store import open_contacts_store
from contacts.sync import ContactSync
from core.settings import DEMO_APP_SECRET, SANDBOX_PAGE_ID, Settings, load_settings
from csat.model import question_id_of
from csat.resolved import BotSurveys
from csat.service import Csat
from csat.store import open_csat_store
from handoff.model import Close, conversation_id_of
from handoff.rasa_api import HttpRasaTrackers
from handoff.service import AUTO_RESUME_REASON, Handoff, open_handoff_store
from knowledge_matrix.live import LiveKnowledge
from links.store import LinksStore
from meta.graph import GraphClient
from outbox import api as outbox_api
from outbox.outbox import WAKE_FILE_NAME, open_outbox
from reports.service import Reports
from reports.sources import live_entries, rule_names
from sandbox import graph as sandbox
from sandbox import simulate

TEMPLATES = Jinja2Templates(directory=str(sandbox.TEMPLATES_DIR))


class ChatInput(BaseModel):
    user_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    kind: Literal["text", "quick_reply", "postback"] = "text"
    text: str = Field(default="", max_length=2000)
    payload: str = Field(default="", max_length=1000)
    page_id: str = SANDBOX_PAGE_ID


class FeedbackInput(BaseModel):
    """The person answers the customer feedback template (the sandbox signs it as Meta's `messaging_feedback`)."""

    user_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    score: int = Field(ge=1, le=5)
    text: str | None = Field(default=None, max_length=400)
    question_id: str | None = Field(default=None, max_length=80, pattern=r"^[A-Za-z0-9_]+$")  # None: their newest
    page_id: str = SANDBOX_PAGE_ID


class CommentInput(BaseModel):
    """A comment someone writes under one of the page's posts (the sandbox signs it as Meta's `feed` webhook)."""

    user_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")  # whose (the chat's PSID)
    from_name: str = Field(default="Cliente de prueba", min_length=1, max_length=100)
    text: str = Field(min_length=1, max_length=8000)
    post_id: str | None = Field(default=None, pattern=r"^[0-9]{1,30}_[0-9]{1,30}$")  # None: a new post
    parent_id: str | None = Field(default=None, pattern=r"^[0-9]{1,30}_[0-9]{1,30}$")  # a reply to this comment
    # The comment's age (Meta's 7-day private-reply limit).
    days_ago: float = Field(default=0.0, ge=0.0, le=60.0, allow_inf_nan=False)
    page_id: str = SANDBOX_PAGE_ID
    post_message: str | None = Field(default=None, max_length=8000)  # the post's text (the Graph sandbox answers it)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The app's outbox worker sends what the API queues (agent replies, follow-ups) and retries.
        client = GraphClient(settings.page_tokens, base_url=settings.graph_api_base, version=settings.graph_api_version,
                             timeout_seconds=settings.graph_timeout_seconds)
        outbox = open_outbox(settings.outbox_store_url, client, policy_file=settings.outbox_policy_file,
                             retired_tags_until=settings.outbox_retired_tags_until,
                             page_rate=settings.outbox_page_rate, lease_seconds=settings.outbox_lease_seconds,
                             poll_seconds=settings.outbox_poll_seconds)
        app.state.outbox = outbox
        app.state.graph = client  # the console's "Aplicar en Facebook" (page profile) calls the Graph API with it
        # It also sends Rasa's replies (found within OUTBOX_POLL_SECONDS), unless Rasa runs its own (OUTBOX_IN_RASA).
        if settings.runs_outbox_in_process:  # else standalone workers send (OUTBOX_WORKERS, `python -m outbox worker`)
            outbox.start(wake_path=settings.data_dir / WAKE_FILE_NAME)  # the Rasa channel pings it after an enqueue
        # Human handoff: the console and the internal API use app.state.handoff.
        handoff_store = open_handoff_store(settings.handoff_store_url)
        rasa = HttpRasaTrackers(settings.rasa_url, settings.rasa_token)
        app.state.handoff = Handoff(handoff_store, rasa, outbox, page_tokens=settings.page_tokens,
                                    idle_resume_minutes=settings.handoff_idle_resume_minutes,
                                    handover_to_page_inbox=settings.handover_to_page_inbox, graph=client)
        auto_resume = asyncio.create_task(app.state.handoff.run_auto_resume())
        # Comments on the page's posts (comments/processor.py): each one the webhook process journaled becomes outbox
        # sends (a private reply, maybe a public one) or a recorded reason why not; knowledge answers come from the
        # live version, as the console's "try" answers; a paused conversation is left to its agent.
        comment_journal = app.state.comment_journal = open_comment_journal(settings.store_url("comment_journal"))
        comment_rules = app.state.comment_rules = open_rules_store(settings.store_url("comments"))
        live_knowledge = LiveKnowledge(settings.data_dir)  # the published matrix (comments, unanswered questions)
        app.state.comments = CommentProcessor(comment_journal, comment_rules, outbox,
                                              answer=knowledge_answerer(live_knowledge),
                                              is_paused=paused_check(app.state.handoff.find),
                                              time_zone=settings.business_timezone, graph=client)
        comment_task = asyncio.create_task(app.state.comments.run(settings.comments_poll_seconds))
        # Contacts (contacts/sync.py): everyone who writes becomes a contact (app.state.contacts, the console's too),
        # with the campaign they came by (the links store's first referral) and their profile from the Graph API.
        contacts_store = open_contacts_store(settings.store_url("contacts"), outbox.reply_windows())
        app.state.contacts = contacts_store
        app.state.contact_sync = ContactSync(contacts_store, outbox, client, campaign_of=_campaign_of(app))
        contacts_task = asyncio.create_task(app.state.contact_sync.run(settings.contacts_sync_seconds))
        # Broadcasts ("Transmisiones", broadcasts/service.py): the console composes them; this runner starts the due
        # ones, plans their recipients through the outbox's policy (never faster than the outbox's own page rate)
        # and refreshes their reports.
        broadcasts_store = open_broadcasts_store(settings.store_url("broadcasts"))
        app.state.broadcasts = Broadcasts(broadcasts_store, contacts_store, outbox, app.state.handoff,
                                          page_rate=broadcast_rate(settings.broadcast_page_rate, outbox.page_rate))
        broadcasts_task = asyncio.create_task(app.state.broadcasts.run(settings.broadcasts_poll_seconds))
        # Customer satisfaction (csat/): a close by a person, after someone of the team wrote to the customer, asks
        # for a rating of the last one who wrote (not twice in 24 hours) through the outbox; the answers arrive
        # from the ingest journal (POST /internal/csat/answer).
        csat_store = open_csat_store(settings.store_url("csat"))
        app.state.csat = Csat(csat_store, outbox, mode=settings.csat_mode, privacy_url=settings.csat_privacy_url)
        csat_task = asyncio.create_task(_ask_after_closes(app.state.handoff, app.state.csat))
        # «Preguntas sin respuesta» (answers/service.py): the action server journals how each question was handled;
        # this task groups the new misses every ANSWERS_GROUP_SECONDS with the live matrix's own embedder, and the
        # console lists the groups and suggests entries from the live matrix.
        app.state.answers = open_answers(settings, knowledge=live_knowledge)
        regroup_task = asyncio.create_task(_regroup_answers(app.state.answers, settings.answers_group_seconds))
        # Customer satisfaction, again: from the handoff's durable log, the closes the listener above missed (a restart
        # between a close and its ask), and with CSAT_AFTER_BOT_MINUTES the conversations the bot resolved on its own
        # (csat/resolved.py: their latest question answered, per the answer journal): at start, then every minute.
        bot_surveys = BotSurveys(app.state.csat, app.state.handoff, app.state.answers,
                                 after_minutes=settings.csat_after_bot_minutes, conversation_id_of=conversation_id_of)
        csat_catch_up = asyncio.create_task(_catch_up_closes(app.state.handoff, app.state.csat, bot_surveys))
        # «Reportes» (reports/service.py): a period's counters, as the stores above keep them at write time.
        app.state.reports = Reports(
            outbox=outbox, handoff=app.state.handoff, answers=app.state.answers.store, csat=csat_store,
            contacts=contacts_store, comments=comment_journal, broadcasts=app.state.broadcasts,
            entries=live_entries(settings.data_dir), rule_names=rule_names(comment_rules),
            pause_reasons_es={reason.value: words for reason, words in PAUSE_REASONS_ES.items()},
            standard_window=outbox.reply_windows().standard, reserved_names=RESERVED_USERNAMES)
        # The scale profile: Rasa's event broker feeds the console's live view (user and bot messages, pauses).
        app.state.rasa_events = _rasa_event_feed(settings, app.state.handoff)
        if app.state.rasa_events is not None:
            app.state.rasa_events.start()
        try:
            yield
        finally:
            if app.state.rasa_events is not None:
                await app.state.rasa_events.stop()
            auto_resume.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await auto_resume
            app.state.comments.stop()
            await comment_task
            app.state.contact_sync.stop()
            await contacts_task
            for task in (csat_task, csat_catch_up):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            regroup_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await regroup_task
            broadcasts_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await broadcasts_task
            await outbox.stop()
            await rasa.close()
            app.state.broadcasts.close()  # its store threads, before the stores they use
            app.state.csat.close()
            handoff_store.close()
            comment_journal.close()
            comment_rules.close()
            contacts_store.close()
            broadcasts_store.close()
            csat_store.close()
            app.state.answers.close()
            if getattr(app.state, "paraphrases", None) is not None:  # opened by the console on first use
                await app.state.paraphrases.close()  # a running paraphrase job is cancelled (it ends interrupted)
            await client.close()
            outbox.close()

    docs = settings.is_demo  # the API docs describe every endpoint: the demo only, like the sandbox chat
    app = FastAPI(
        title="Ecuabots Messenger", version="0.1.0", lifespan=lifespan, docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None, openapi_url="/openapi.json" if docs else None,
    )
    app.state.settings = settings
    # Inside the console's security headers (added later, so outside): body limits, credentials before bodies.
    app.add_middleware(RequestGuard, fastapi_app=app, service_token_dependency=outbox_api.require_service_token,
                       unauthenticated=_unauthenticated)
    if settings.serves_graph_sandbox:
        # The Graph API sandbox answers the app's own sends: never in production, never beside Meta's Graph API.
        # Its routes come first: every reply and sender action is one of its requests, and FastAPI tries the
        # routes in order (its paths, a `v21.0`-like first segment or /sandbox/sent, requests, failures, latency and
        # reset, are no other route's; the demo chat's /sandbox/chat… and /sandbox/comments are other paths).
        app.state.sandbox = sandbox.GraphSandbox(settings.page_tokens, production=settings.is_production)
        app.include_router(sandbox.router)
    app.include_router(outbox_api.router)
    app.include_router(internal_api.router)
    app.include_router(internal_api.referrals_router)  # m.me links, QR codes, ads (connectors/referrals.py)
    app.include_router(internal_api.csat_router)  # ratings from the ingest journal (connectors/messenger.py)
    console.install(app, settings)  # pages under /console, JSON under /api/console (login required)
    errors.install(app)  # every error of every package, answered from one table

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "sandbox": settings.serves_graph_sandbox}

    if settings.is_demo and settings.app_secret == DEMO_APP_SECRET:
        # The chat injects signed webhook events: the demo only, and never signed with a real app secret.
        _add_sandbox_chat(app, settings)
    return app


def _campaign_of(app: FastAPI) -> Callable[[str, str], str | None]:
    """The campaign a person first came by, for their contact: the ref of their first referral in the links store
    (`console.links` opens it as app.state.links_store), or "ad:<id>" for an ad; None without one."""

    def campaign_of(page_id: str, psid: str) -> str | None:
        store: LinksStore | None = getattr(app.state, "links_store", None)
        referrals = store.conversation_referrals(page_id, psid, limit=1) if store is not None else []
        if not referrals:
            return None
        first = referrals[0]
        return f"ad:{first.ad_id}" if first.ad_id else first.ref

    return campaign_of


async def _ask_after_closes(handoff: Handoff, csat: Csat) -> None:
    """A close by a person (a resume, not the idle auto-resume: known by its reason) may ask the person to rate the
    agent who last wrote to them (csat/, `Csat.ask_for_close`: the same rule as the catch-up). Listens to the
    handoff's live events, in this process: the console and the internal API close conversations here."""
    async for event in handoff.subscribe():
        by = event.data.get("by") if event.kind == "resumed" else None
        conversation = event.data.get("conversation") or {}
        if not by or event.data.get("reason") == AUTO_RESUME_REASON or not conversation.get("page_id"):
            continue
        close = Close(event.conversation_id, str(conversation["page_id"]), str(conversation["user_id"]), str(by),
                      event.at)
        try:
            await csat.ask_for_close(close, handoff.agent_of_close)
        except Exception:  # the outbox or the store failed: this close is not asked, the next ones are
            logging.getLogger(__name__).exception("asking for a rating failed",
                                                  extra={"conversation_id": event.conversation_id})


# Closes older than this are not asked after a restart: a survey hours after the conversation would surprise.
CSAT_CATCH_UP = timedelta(hours=1)
CSAT_CATCH_UP_SECONDS = 60.0


async def _catch_up_closes(handoff: Handoff, csat: Csat, bot_surveys: BotSurveys | None = None,
                           every_seconds: float = CSAT_CATCH_UP_SECONDS) -> None:
    """Ask for the closes of the last hour that have no ask yet (the live listener missed them: a restart between
    the close and the ask, or the ask failed), by the live listener's rule; an ask already made is left alone (one
    per close). Then, when CSAT_AFTER_BOT_MINUTES is set, for the conversations the bot resolved on its own
    (`BotSurveys.catch_up`: one ask per last message of the person)."""
    while True:
        now = datetime.now(timezone.utc)
        try:
            await csat.catch_up(await handoff.closes_since(now - CSAT_CATCH_UP), handoff.agent_of_close, now)
        except Exception:  # the store or the outbox is down: the next round tries again
            logging.getLogger(__name__).exception("catching up on closes without a satisfaction ask failed")
        if bot_surveys is not None and bot_surveys.is_on:
            try:
                await bot_surveys.catch_up(now)
            except Exception:  # as above: the next round tries again
                logging.getLogger(__name__).exception("asking after the conversations the bot resolved failed")
        await asyncio.sleep(every_seconds)


async def _regroup_answers(answers: Answers, every_seconds: float) -> None:
    """Group the unanswered questions journaled since the last round (in a thread: it embeds), then wait; a round
    that fails (the journal's database away, the model not loadable) is logged and the next one tries again."""
    while True:
        try:
            await asyncio.to_thread(answers.regroup, datetime.now(timezone.utc))
        except Exception as exc:
            logging.getLogger(__name__).warning("grouping the unanswered questions failed: %s", exc,
                                                extra={"error": type(exc).__name__})
        await asyncio.sleep(every_seconds)


def _rasa_event_feed(settings: Settings, handoff: Handoff) -> RasaEventFeed | None:
    if not settings.is_scale:
        return None
    return RasaEventFeed(settings.rabbitmq_url, settings.rasa_events_exchange, settings.rasa_events_queue,
                         handoff.events.publish, paused_check(handoff.find), list(settings.page_tokens))


def _unauthenticated(request: Request, guard: Guard) -> Response:
    """The answer the route's own dependency would give, before the body is read."""
    if guard.service_only:
        return errors.answer(request, outbox_api.ServiceTokenRequired())
    return errors.answer(request, NotAuthenticated("Inicie sesión para continuar."))


def _add_sandbox_chat(app: FastAPI, settings: Settings) -> None:
    webhook_url = settings.webhook_url  # the webhook process, as Meta's deliveries

    async def deliver(body: dict[str, Any]) -> int:
        """Sign `body` as Meta would and post it to the webhook process (the real path); its HTTP status."""
        raw, headers = simulate.signed_request(body, settings.app_secret)
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                answer = await client.post(webhook_url, content=raw, headers=headers)
        except httpx.HTTPError as exc:
            raise HTTPException(502, f"El webhook en {webhook_url} no respondió ({type(exc).__name__}).") from exc
        return answer.status_code

    @app.get("/sandbox/chat", response_class=HTMLResponse)
    async def chat_page(request: Request) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(request, "chat.html", {"page_id": SANDBOX_PAGE_ID})

    @app.post("/sandbox/chat/send")
    async def chat_send(message: ChatInput) -> dict[str, Any]:
        """Sign the message as Meta would and deliver it to the Rasa webhook: the real path."""
        if message.kind == "text":
            if not message.text.strip():
                raise HTTPException(422, "text is empty")
            item = simulate.text_message(message.page_id, message.user_id, message.text)
        elif message.kind == "quick_reply":
            item = simulate.quick_reply(message.page_id, message.user_id, message.text, message.payload)
        else:
            item = simulate.postback(message.page_id, message.user_id, message.text, message.payload)
        status = await deliver(simulate.webhook_body(message.page_id, [item]))
        content = item.get("message") or item.get("postback") or {}
        return {"webhook_status": status, "mid": content.get("mid")}

    @app.post("/sandbox/feedback")
    async def feedback_send(answer: FeedbackInput) -> dict[str, Any]:
        """The person submits the customer feedback template: signed as Meta's `messaging_feedback` webhook and
        delivered to the webhook process (the real path: journal, connector, the app's ratings). Without a question
        id it answers the person's newest open question."""
        question_id = answer.question_id
        if question_id is None:
            ask = await app.state.csat.latest_open(answer.page_id, answer.user_id)
            if ask is None:
                raise HTTPException(404, "Esta persona no tiene una encuesta de satisfacción pendiente.")
            question_id = question_id_of(ask.id)
        item = simulate.feedback(answer.page_id, answer.user_id, question_id, answer.score, answer.text)
        status = await deliver(simulate.webhook_body(answer.page_id, [item]))
        return {"webhook_status": status, "question_id": question_id}

    @app.post("/sandbox/comments")
    async def comment_send(comment: CommentInput) -> dict[str, Any]:
        """A comment under one of the page's posts, signed as Meta's `feed` webhook and delivered to the webhook
        process (the real path: journal, processor, outbox). The sandbox's Graph API learns whose comment it is, so
        the private reply reaches `user_id`, the PSID the sandbox chat talks as."""
        if not comment.text.strip():
            raise HTTPException(422, "El comentario está vacío.")
        created = datetime.now(timezone.utc) - timedelta(days=comment.days_ago)
        post_id = comment.post_id or simulate.new_post_id(comment.page_id)
        change = simulate.comment(comment.page_id, comment.user_id, comment.from_name, post_id, comment.text,
                                  parent_id=comment.parent_id, created_time=int(created.timestamp()))
        comment_id = str(change["value"]["comment_id"])
        graph = getattr(app.state, "sandbox", None)
        if graph is not None:
            graph.register_comment(comment_id, comment.page_id, comment.user_id, created)
            if comment.post_message is not None:
                graph.register_post(post_id, comment.page_id, comment.post_message)
        status = await deliver(simulate.feed_body(comment.page_id, [change]))
        return {"webhook_status": status, "comment_id": comment_id, "post_id": post_id}
