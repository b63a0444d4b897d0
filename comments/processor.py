"""The comment processor: a recorded comment becomes outbox sends (a private reply, maybe a public one), or a recorded
reason why not.

The webhook process journals every `feed` change (comments/journal.py); the app runs one `CommentProcessor` (bot/app.py,
woken every COMMENTS_POLL_SECONDS). A round claims pending comments under a lease (several processors never decide one
comment twice), gathers the facts about each and asks the pure `decide_comment` for a `CommentVerdict`:

- a comment by the page itself → `ignored` (`by_page`; the journal already sets that at ingest);
- no enabled rule of the page matches → `skipped`, `no_rule`. A rule for posts by their text needs the post's
  text, which Meta's comment webhook does not carry: when the journal has none (the post's own feed change never
  arrived: published before the page was subscribed), it is read once from the Graph API (`GET /{post_id}?fields=
  message`, page token, pages_read_engagement) and kept; when it cannot be read, the comment is retried and finally
  `skipped` with `post_text_unavailable` (never a silent `no_rule`);
- the private reply's window is over (older than the policy's 7 days: the outbox policy refuses it) → `skipped` with
  the outbox's reason code (`outside_window`);
- the person already got a reply for this post today, the business's calendar day in BUSINESS_TIMEZONE (page
  setting, on by default) → `already_replied_today`;
- the person's conversation is paused (their PSID known from an earlier private reply) → `conversation_paused`;
- a knowledge-mode rule and no knowledge answer above the threshold → `no_answer`;
- else `replied`: the comment's time is recorded as the private reply's window anchor, the private reply is enqueued
  (Purpose.PRIVATE_REPLY to the comment id, key `private_reply:<page>:<comment>`), and, when the rule has public
  replies, one of them chosen by the comment id (the same comment always gets the same one) as a public reply
  (Purpose.PUBLIC_REPLY, key `public_reply:<page>:<comment>`). The outbox refusing a second private reply to the
  comment (`private_reply_already_sent`) is a `skipped` verdict with that reason.

A comment that cannot be decided (the knowledge lookup raising, a store error, a bug) is held back by its claim for
a growing delay (`retry_delay`) and tried again; each claim counts as one attempt (journal `attempts`), and after
MAX_ATTEMPTS it is `skipped` with `processing_failed` (or `post_text_unavailable`), with an error log. A round counts
only the comments it decided, so the loop sleeps between rounds while nothing can be decided.

The paused check only knows people whose PSID an earlier private reply taught (Meta gives no mapping from a comment's
`from.id` to the Messenger PSID before a private reply is sent): someone an agent already serves in Messenger who
comments for the first time can still get the automated private reply.

`reconcile()` follows the private replies: a SENT one gives the journal the person's PSID (the Send API's
`recipient_id`, kept as `graph_recipient_id`) and its sent time: the conversation that follows knows the comment it
started from (`CommentJournal.origin_of`); a SENT one Meta answered without a recipient is marked so
(`set_psid_unknown`: delivered, PSID never known) and leaves the queue, which is walked with a cursor so replies still
in flight never starve the ones behind them; one the outbox gave up on (blocked, failed, dead, cancelled) turns the
verdict into `skipped` with the outbox's reason, so nothing is silent. Every ANSWER_CHECK_EVERY it also looks at the
replies of the last ANSWER_WINDOW whose person has not written back: when the outbox's record of the person's own
messages (`Outbox.conversation_window`) has one after the reply, the comment's `answered_at` is set: a conversation
started from that rule (`CommentJournal.counts` `started`).

The console words every reason code in Spanish (console/comments.py REASONS_ES): the processor's below, the outbox
policy's (`outside_window`, ...), the outbox store's `private_reply_already_sent`, and the worker's for a reply Meta
refused (`graph_<code>`, `person_unavailable`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from comments.journal import BY_PAGE, IGNORED, REPLIED, SKIPPED, CommentJournal, StoredComment
from comments.rules import PageCommentSettings, ReplyRule, comment_matches, first_match, matches
from core.business_hours import DEFAULT_TIMEZONE, start_of_business_day
from knowledge_matrix.live import LiveKnowledge
from meta.errors import GraphError, UnknownPageError
from meta.graph import GraphClient
from meta.outgoing import split_text
from outbox.model import TERMINAL, NewMessage, NotFound, OutboxInputError, Purpose, SenderKind, Status
from outbox.outbox import Outbox
from outbox.policy import ConversationWindow, Decision

logger = logging.getLogger(__name__)

# Reason codes of the processor's verdicts (the outbox's refusals keep the outbox's codes).
NO_RULE = "no_rule"
ALREADY_REPLIED_TODAY = "already_replied_today"
CONVERSATION_PAUSED = "conversation_paused"
NO_ANSWER = "no_answer"
PRIVATE_REPLY_FAILED = "private_reply_failed"  # the outbox gave up without a reason code of its own
PROCESSING_FAILED = "processing_failed"  # deciding it kept failing (MAX_ATTEMPTS); the log says why
POST_TEXT_UNAVAILABLE = "post_text_unavailable"  # a rule needs the post's text and the Graph API would not give it

# "One reply per person per post per day": the business's calendar day (BUSINESS_TIMEZONE), from its midnight.
# A conversation counts as started from a comment when the person writes to the page within this long of the reply.
ANSWER_WINDOW = timedelta(days=7)
ANSWER_CHECK_EVERY = timedelta(seconds=30)  # how often reconcile looks for people who wrote back
ANSWER_BATCH = 200
CLAIM_LEASE = timedelta(seconds=60)
CLAIM_BATCH = 20
RECONCILE_BATCH = 50
MAX_ATTEMPTS = 5  # claims of one comment before it is skipped (`processing_failed` / `post_text_unavailable`)
FIRST_RETRY_DELAY = timedelta(seconds=30)  # then ×4 each time: 30 s, 2 min, 8 min, 32 min
MAX_RETRY_DELAY = timedelta(hours=1)


def retry_delay(attempts: int) -> timedelta:
    """Pure: how long a comment that failed its `attempts`-th attempt is held back before the next."""
    return min(FIRST_RETRY_DELAY * 4 ** max(0, min(attempts, 10) - 1), MAX_RETRY_DELAY)


class PostTextUnavailable(Exception):
    """A rule needs the post's text, the journal has none and the Graph API did not give it."""


def needs_post_text(rules: list[ReplyRule], comment_text: str, post_id: str | None) -> bool:
    """Pure: whether the first matching rule could depend on the post's text: an enabled rule for posts by their text
    whose comment part matches comes before every enabled rule that matches without it."""
    for rule in sorted(rules, key=lambda r: (r.position, r.id)):
        if not rule.enabled:
            continue
        if rule.posts.mode == "text":
            if comment_matches(rule.comments, comment_text):
                return True
        elif matches(rule, comment_text, post_id, None):
            return False
    return False


# --- the pure decision --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommentFacts:
    """What the processor found out about one comment; `decide_comment` reads nothing else."""

    rule: ReplyRule | None  # the page's first enabled rule that matches (comments.rules.first_match)
    private_reply: Decision | None = None  # the outbox policy on a private reply now (measured from the comment)
    replied_today: bool = False  # the setting is on and this person got a reply for this post today
    paused: bool = False  # the person's conversation is paused (a person answers it)
    knowledge_answer: str | None = None  # a knowledge-mode rule: the answer above the threshold, if any


@dataclass(frozen=True)
class CommentVerdict:
    status: str  # journal REPLIED, SKIPPED or IGNORED
    reason_code: str | None = None
    rule: ReplyRule | None = None
    private_message: Mapping[str, Any] | None = None  # replied: the Send API `message` of the private reply
    public_text: str | None = None  # replied: the public reply under the comment, when the rule has some


def public_reply_for(rule: ReplyRule, comment_id: str) -> str | None:
    """One of the rule's public replies, "at random" but the same for the same comment (seeded by its id), so a
    comment decided twice (a lost lease) gets the same one and tests can tell which."""
    if not rule.public_replies:
        return None
    return random.Random(f"public-reply:{comment_id}").choice(rule.public_replies)


def decide_comment(comment: StoredComment, facts: CommentFacts) -> CommentVerdict:
    """Pure: the verdict on a comment from what was found out about it. The order is the module's list."""
    if comment.is_by_page:
        return CommentVerdict(IGNORED, BY_PAGE)
    rule = facts.rule
    if rule is None:
        return CommentVerdict(SKIPPED, NO_RULE)
    if facts.private_reply is not None and not facts.private_reply.allowed:
        return CommentVerdict(SKIPPED, facts.private_reply.reason_code, rule)
    if facts.replied_today:
        return CommentVerdict(SKIPPED, ALREADY_REPLIED_TODAY, rule)
    if facts.paused:
        return CommentVerdict(SKIPPED, CONVERSATION_PAUSED, rule)
    if rule.reply.mode == "knowledge":
        if not facts.knowledge_answer or not facts.knowledge_answer.strip():
            return CommentVerdict(SKIPPED, NO_ANSWER, rule)
        message: Mapping[str, Any] = {"text": split_text(facts.knowledge_answer.strip())[0]}
    else:
        if rule.reply.message is None:  # parse_rule never lets one through; an edited database might
            return CommentVerdict(SKIPPED, NO_ANSWER, rule)
        message = rule.reply.message
    return CommentVerdict(REPLIED, None, rule, message, public_reply_for(rule, comment.comment_id or ""))


# --- the answers it reads -----------------------------------------------------------------------------------------

# The knowledge answer to a comment's text, or None below the threshold (`min_score`: the page's own, None: the
# matrix's answer threshold).
Answer = Callable[[str, float | None], Awaitable[str | None]]
# Whether the conversation (page id, PSID) is paused.
IsPaused = Callable[[str, str], Awaitable[bool]]


class RulesSource(Protocol):
    """What the processor reads of the rules store (comments.rules_store.RulesStore)."""

    def list_rules(self, page_id: str) -> list[ReplyRule]: ...

    def page_settings(self, page_id: str) -> PageCommentSettings: ...


def knowledge_answerer(live: LiveKnowledge) -> Answer:
    """`Answer` over the live knowledge base, as the console's "try" answers: the best entry's answer when the
    matrix says "answer" (its answer threshold), or, with a page's own `min_score`, when the best hit reaches it."""

    async def answer(text: str, min_score: float | None) -> str | None:
        lookup = await live.lookup(text)
        if lookup is None or not lookup.hits:
            return None
        if min_score is None:
            hit = lookup.verdict.hit if lookup.verdict.kind == "answer" else None
        else:
            hit = lookup.hits[0] if lookup.hits[0].score >= min_score else None
        return hit.entry.answer if hit is not None else None

    return answer


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


async def _never_paused(page_id: str, psid: str) -> bool:
    return False


async def _no_answer(text: str, min_score: float | None) -> str | None:
    return None


# --- the processor ------------------------------------------------------------------------------------------------


class CommentProcessor:
    """Claims pending comments, decides each (`decide_comment`), enqueues the replies, records the verdict."""

    def __init__(
        self,
        journal: CommentJournal,
        rules_store: RulesSource,
        outbox: Outbox,
        answer: Answer = _no_answer,
        is_paused: IsPaused = _never_paused,
        clock: Callable[[], datetime] = _utc_now,
        owner: str | None = None,
        *,
        lease: timedelta = CLAIM_LEASE,
        batch: int = CLAIM_BATCH,
        time_zone: str = DEFAULT_TIMEZONE,
        graph: GraphClient | None = None,
    ) -> None:
        self.journal = journal
        self.rules_store = rules_store
        self.outbox = outbox
        self.answer = answer
        self.is_paused = is_paused
        self.clock = clock
        self.owner = owner or f"comments-{uuid.uuid4().hex[:8]}"
        self.lease = lease
        self.batch = batch
        self.time_zone = time_zone  # the business's (BUSINESS_TIMEZONE): "today" for one reply per person per post
        self.graph = graph  # reads a post's text for rules that need it (None: such posts' texts stay unknown)
        self._psid_after_id = 0
        self._answers_due_at: datetime | None = None
        self._answers_after_id = 0
        self._wake = asyncio.Event()
        self._stopping = False

    # --- one round -------------------------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Claim and decide the pending comments (one batch); how many were decided (a comment that failed is not:
        it is held back, or after MAX_ATTEMPTS skipped, by `_failed`)."""
        claimed = await self.journal.run(self.journal.claim_pending, self.owner, self.clock(), self.lease, self.batch)
        decided = 0
        for comment in claimed:
            try:
                await self.handle(comment)
            except Exception as error:  # one comment must not stop the others
                decided += await self._failed(comment, error)
            else:
                decided += 1
        return decided

    async def _failed(self, comment: StoredComment, error: Exception) -> int:
        """A claimed comment that could not be decided: held back for `retry_delay`, or, on its MAX_ATTEMPTS-th
        attempt, skipped with why (1: it was decided so)."""
        now = self.clock()
        reason = POST_TEXT_UNAVAILABLE if isinstance(error, PostTextUnavailable) else PROCESSING_FAILED
        about = {"feed_change_id": comment.id, "comment_id": comment.comment_id, "page_id": comment.page_id,
                 "attempts": comment.attempts, "reason_code": reason, "error": type(error).__name__}
        if comment.attempts < MAX_ATTEMPTS:
            delay = retry_delay(comment.attempts)
            await self.journal.run(self.journal.hold_back, comment.id, self.owner, now + delay)
            logger.warning("comment not decided: tried again later", exc_info=error,
                           extra={**about, "retry_in_seconds": delay.total_seconds()})
            return 0
        finished = await self.journal.run(self.journal.finish, comment.id, self.owner, SKIPPED, reason, now=now)
        logger.error("comment not decided: given up", exc_info=error, extra=about)
        return 1 if finished else 0

    async def facts_about(self, comment: StoredComment, now: datetime) -> CommentFacts:
        """What `decide_comment` needs; nothing past the first fact that settles it (no rule: nothing else)."""
        if comment.is_by_page:
            return CommentFacts(rule=None)
        rules = await asyncio.to_thread(self.rules_store.list_rules, comment.page_id)
        post_text = None
        if comment.post_id and needs_post_text(rules, comment.message, comment.post_id):
            post_text = await self.post_text(comment, comment.post_id, now)
        rule = first_match(rules, comment.message, comment.post_id, post_text)
        if rule is None:
            return CommentFacts(rule=None)
        probe = NewMessage(comment.page_id, comment.comment_id or "", rule.reply.message or {"text": "?"},
                           sender=SenderKind.BOT, purpose=Purpose.PRIVATE_REPLY)
        decision = self.outbox.decide(probe, ConversationWindow(comment.created_at), now)
        if not decision.allowed:
            return CommentFacts(rule, decision)
        settings = await asyncio.to_thread(self.rules_store.page_settings, comment.page_id)
        replied_today = settings.one_reply_per_person_per_post_per_day and await self.journal.run(
            self.journal.replied_to_person_since, comment.page_id, comment.from_id, comment.post_id,
            start_of_business_day(now, self.time_zone),
        )
        psid = await self.journal.run(self.journal.psid_of, comment.page_id, comment.from_id)
        paused = psid is not None and await self.is_paused(comment.page_id, psid)
        answer = None
        if rule.reply.mode == "knowledge" and not replied_today and not paused:
            answer = await self.answer(comment.message, settings.knowledge_min_score)
        return CommentFacts(rule, decision, replied_today, paused, answer)

    async def post_text(self, comment: StoredComment, post_id: str, now: datetime) -> str:
        """The post's text: the journal's (its own feed change, or read before), Meta's `post` object when it carries
        a message, else read once from the Graph API and kept. PostTextUnavailable when it cannot be read."""
        known = await self.journal.run(self.journal.post_message, comment.page_id, post_id)
        if known is not None:
            return known
        found = comment.post.get("message") if comment.post else None
        if isinstance(found, str):
            return found
        if self.graph is None:
            raise PostTextUnavailable("no Graph API client to read the post's text")
        try:
            post = await self.graph.get_post(comment.page_id, post_id)
        except (GraphError, UnknownPageError) as error:
            raise PostTextUnavailable(f"the Graph API did not give the post's text: {error}") from error
        message = post.get("message")
        text = message if isinstance(message, str) else ""
        await self.journal.run(self.journal.save_post_text, comment.page_id, post_id, text, now)
        return text

    async def handle(self, comment: StoredComment) -> CommentVerdict:
        """Decide one claimed comment, enqueue its replies, record the verdict."""
        now = self.clock()
        verdict = decide_comment(comment, await self.facts_about(comment, now))
        private_id = public_id = None
        if verdict.status == REPLIED and verdict.private_message is not None and comment.comment_id:
            try:
                private_id, public_id = await self._enqueue(comment, verdict)
            except OutboxInputError as refused:  # e.g. a private reply to this comment was queued another way
                verdict = CommentVerdict(SKIPPED, refused.reason_code, verdict.rule)
        rule_id = verdict.rule.id if verdict.rule is not None else None
        finished = await self.journal.run(
            self.journal.finish, comment.id, self.owner, verdict.status, verdict.reason_code, rule_id, private_id,
            public_id, now=now,
        )
        if not finished:
            logger.warning("comment verdict not recorded: the claim was lost", extra={"feed_change_id": comment.id})
        logger.info("comment decided", extra={"feed_change_id": comment.id, "status": verdict.status,
                                              "reason_code": verdict.reason_code, "rule_id": rule_id})
        return verdict

    async def _enqueue(self, comment: StoredComment, verdict: CommentVerdict) -> tuple[int, int | None]:
        page_id, comment_id = comment.page_id, comment.comment_id or ""
        # The private reply's window is measured from the comment (outbox policy: 7 days).
        await self.outbox.record_user_message(page_id, comment_id, comment.created_at)
        private, _ = await self.outbox.enqueue(NewMessage(
            page_id, comment_id, dict(verdict.private_message or {}), sender=SenderKind.BOT,
            purpose=Purpose.PRIVATE_REPLY, idempotency_key=f"private_reply:{page_id}:{comment_id}",
        ))
        if verdict.public_text is None:
            return private.id, None
        public, _ = await self.outbox.enqueue(NewMessage(
            page_id, comment_id, {"text": verdict.public_text}, sender=SenderKind.BOT, purpose=Purpose.PUBLIC_REPLY,
            idempotency_key=f"public_reply:{page_id}:{comment_id}",
        ))
        return private.id, public.id

    # --- after the sends -------------------------------------------------------------------------------------

    async def reconcile(self) -> int:
        """Replied comments whose PSID is not known: take it from their sent private reply, or record why the
        reply never reached the person. How many comments changed."""
        changed = 0
        waiting = await self.journal.run(self.journal.awaiting_psid, RECONCILE_BATCH, self._psid_after_id)
        self._psid_after_id = waiting[-1].id if len(waiting) == RECONCILE_BATCH else 0
        for comment in waiting:
            if comment.private_outbox_id is None:
                continue
            try:
                message = await self.outbox.get(comment.private_outbox_id)
            except NotFound:
                await self.journal.run(self.journal.reply_failed, comment.id, PRIVATE_REPLY_FAILED)
                changed += 1
                continue
            if message.status is Status.SENT and message.graph_recipient_id:
                await self.journal.run(self.journal.set_psid, comment.id, message.graph_recipient_id, message.sent_at)
                changed += 1
            elif message.status is Status.SENT:  # Meta named no recipient: the PSID can never be learnt
                await self.journal.run(self.journal.set_psid_unknown, comment.id, self.clock(), message.sent_at)
                logger.warning("private reply sent without a recipient id: the person's PSID stays unknown",
                               extra={"feed_change_id": comment.id, "outbox_id": message.id})
                changed += 1
            elif message.status in TERMINAL and message.status is not Status.SENT:
                await self.journal.run(self.journal.reply_failed, comment.id,
                                       message.reason_code or PRIVATE_REPLY_FAILED)
                changed += 1
        now = self.clock()
        if self._answers_due_at is None or now >= self._answers_due_at:
            self._answers_due_at = now + ANSWER_CHECK_EVERY
            changed += await self.notice_answers(now)
        return changed

    async def notice_answers(self, now: datetime) -> int:
        """One batch of the private replies of the last ANSWER_WINDOW whose person has not written back: those
        whose person's own last message on the page (the outbox's record) came after the reply get `answered_at`.
        Goes round them all, ANSWER_BATCH at a time. How many were noted."""
        waiting = await self.journal.run(self.journal.awaiting_answer, now - ANSWER_WINDOW, self._answers_after_id,
                                         ANSWER_BATCH)
        self._answers_after_id = waiting[-1].id if len(waiting) == ANSWER_BATCH else 0
        noted = 0
        for comment in waiting:
            replied_at = comment.replied_at
            if comment.psid is None or replied_at is None:
                continue
            window = await self.outbox.conversation_window(comment.page_id, comment.psid)
            wrote_at = window.last_user_message_at
            if wrote_at is not None and wrote_at > replied_at:
                noted += await self.journal.run(self.journal.set_answered, comment.id, wrote_at)
        return noted

    # --- the loop ----------------------------------------------------------------------------------------------

    def kick(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self, poll_seconds: float = 1.0) -> None:
        """Decide and reconcile until `stop()`: at once while there is work, else every `poll_seconds` (or when
        kicked)."""
        while not self._stopping:
            self._wake.clear()
            handled = 0
            try:
                handled = await self.run_once()
                handled += await self.reconcile()
            except Exception:  # a store hiccup must not end the loop
                logger.exception("comment round failed", extra={"owner": self.owner})
            if handled:
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=poll_seconds)

