"""The comment processor: the pure verdict (`decide_comment`), then the processor over a real SQLite journal and rules
store, the in-memory outbox and a Graph transport that answers as Meta does.

Would catch: a reply to the page's own comment; a comment with no matching rule answered; a private reply past
Meta's 7 days (the outbox policy's window) or a second reply to the same person on the same post within a day;
a bot reply into a conversation an agent holds; a knowledge rule answering below the threshold; a public reply that
changes each time the same comment is decided; the PSID of the person not learnt from the private reply's answer;
a private reply Meta refused staying "replied" silently; a comment that cannot be decided spinning the loop or staying
pending for ever; replies sent without a recipient blocking the PSID queue; a "post text" rule never matching a post
whose own feed change never arrived.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from comments.journal import IGNORED, REPLIED, SKIPPED, CommentJournal, StoredComment, open_comment_journal
from comments.processor import (
    ALREADY_REPLIED_TODAY,
    CONVERSATION_PAUSED,
    MAX_ATTEMPTS,
    NO_ANSWER,
    NO_RULE,
    POST_TEXT_UNAVAILABLE,
    PROCESSING_FAILED,
    CommentFacts,
    CommentProcessor,
    decide_comment,
    knowledge_answerer,
    needs_post_text,
    public_reply_for,
    retry_delay,
)
from comments.rules import CommentMatch, PageCommentSettings, PostScope, ReplyContent, ReplyRule
from comments.rules_store import RulesStore, open_rules_store
from knowledge_matrix.live import Lookup
from knowledge_matrix.matrix import Entry
from knowledge_matrix.retrieval import Hit, Verdict
from meta.feed import parse_feed_value
from meta.graph import GraphClient, GraphRequest, GraphResponse
from meta.limits import TEXT_MAX_CHARS
from outbox.model import MessageFilter, NewMessage, Purpose, SenderKind, Status
from outbox.outbox import Outbox
from outbox.policy import ConversationWindow, Decision, decide
from outbox.policy_file import load_policy
from outbox.store import InMemoryOutboxStore
from tests.support import meta_payloads as meta

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
PAGE = meta.PAGE_ID
POLICY = load_policy()
FIXED = {"text": "¡Hola! Te escribimos por interno con los precios."}
PUBLIC = ("¡Te escribimos por interno! 📩", "Revisa tus mensajes 😊", "Te enviamos la info por Messenger")


def stored(comment_id: str = "880011223344_1", *, from_id: str = meta.COMMENTER_ID, message: str = "¿Precio?",
           created_at: datetime = NOW - timedelta(minutes=1)) -> StoredComment:
    return StoredComment(
        id=1, dedup_key=f"feed:comment:add:{comment_id}", page_id=PAGE, item="comment", verb="add",
        comment_id=comment_id, post_id=meta.POST_ID, parent_id=meta.POST_ID, from_id=from_id, from_name="María",
        message=message, created_at=created_at, received_at=NOW, raw_json="{}", status="pending",
    )


def rule(mode: str = "fixed", public: tuple[str, ...] = PUBLIC, rule_id: int = 7) -> ReplyRule:
    return ReplyRule(page_id=PAGE, name="Precios", id=rule_id, position=1,
                     comments=CommentMatch("keywords", ("precio",)),
                     reply=ReplyContent(mode, FIXED if mode == "fixed" else None), public_replies=public)


def text_rule(words: tuple[str, ...] = ("promo",), keywords: tuple[str, ...] = ("precio",), rule_id: int = 8,
              position: int = 2) -> ReplyRule:
    """A rule for the posts whose text holds one of `words`."""
    return ReplyRule(page_id=PAGE, name="Promo", id=rule_id, position=position, posts=PostScope("text", (), words),
                     comments=CommentMatch("keywords", keywords), reply=ReplyContent("fixed", FIXED))


def private_reply_now(comment: StoredComment) -> Decision:
    probe = NewMessage(PAGE, comment.comment_id or "", FIXED, sender=SenderKind.BOT, purpose=Purpose.PRIVATE_REPLY)
    return decide(probe, ConversationWindow(comment.created_at), NOW, POLICY)


def facts(comment: StoredComment, found: ReplyRule | None = None, **changes: Any) -> CommentFacts:
    return replace(CommentFacts(found or rule(), private_reply_now(comment)), **changes)


# --- the verdict -----------------------------------------------------------------------------------------------------


def test_a_fixed_rule_replies_privately_and_publicly() -> None:
    comment = stored()

    verdict = decide_comment(comment, facts(comment))

    assert (verdict.status, verdict.reason_code, verdict.private_message) == (REPLIED, None, FIXED)
    assert verdict.rule is not None and verdict.rule.id == 7
    assert verdict.public_text in PUBLIC


def test_the_pages_own_comment_is_never_answered() -> None:
    comment = stored(from_id=PAGE)

    verdict = decide_comment(comment, facts(comment))

    assert (verdict.status, verdict.reason_code, verdict.private_message) == (IGNORED, "by_page", None)


def test_no_matching_rule_is_a_skip_with_its_reason() -> None:
    verdict = decide_comment(stored(), CommentFacts(rule=None))

    assert (verdict.status, verdict.reason_code, verdict.rule) == (SKIPPED, NO_RULE, None)


def test_a_comment_older_than_7_days_gets_the_outbox_policys_reason() -> None:
    week_old = stored(created_at=NOW - timedelta(days=7, seconds=1))
    just_in_time = stored(created_at=NOW - timedelta(days=7))

    old = decide_comment(week_old, facts(week_old))
    fresh = decide_comment(just_in_time, facts(just_in_time))

    assert (old.status, old.reason_code) == (SKIPPED, "outside_window")
    assert fresh.status == REPLIED, "the policy's window includes its end"


def test_one_reply_per_person_per_post_per_day() -> None:
    comment = stored()

    verdict = decide_comment(comment, facts(comment, replied_today=True))

    assert (verdict.status, verdict.reason_code, verdict.private_message) == (SKIPPED, ALREADY_REPLIED_TODAY, None)


def test_a_paused_conversation_is_left_to_its_agent() -> None:
    comment = stored()

    verdict = decide_comment(comment, facts(comment, paused=True))

    assert (verdict.status, verdict.reason_code) == (SKIPPED, CONVERSATION_PAUSED)


def test_the_window_is_said_before_the_other_reasons() -> None:
    old = stored(created_at=NOW - timedelta(days=9))

    verdict = decide_comment(old, facts(old, replied_today=True, paused=True))

    assert verdict.reason_code == "outside_window"


@pytest.mark.parametrize("answer", [None, "", "   "])
def test_a_knowledge_rule_without_an_answer_above_the_threshold_is_a_skip(answer: str | None) -> None:
    comment = stored()

    verdict = decide_comment(comment, facts(comment, rule("knowledge"), knowledge_answer=answer))

    assert (verdict.status, verdict.reason_code) == (SKIPPED, NO_ANSWER)


def test_a_knowledge_rule_sends_the_answer_as_the_private_reply() -> None:
    comment = stored()
    long_answer = "Atendemos de 9 a 18. " * 200  # longer than one Messenger message

    verdict = decide_comment(comment, facts(comment, rule("knowledge", public=()), knowledge_answer="De 9 a 18."))
    long = decide_comment(comment, facts(comment, rule("knowledge", public=()), knowledge_answer=long_answer))

    assert (verdict.status, verdict.private_message, verdict.public_text) == (REPLIED, {"text": "De 9 a 18."}, None)
    assert long.private_message is not None
    assert 0 < len(long.private_message["text"]) <= TEXT_MAX_CHARS


def test_the_public_reply_is_random_but_the_same_for_the_same_comment() -> None:
    chosen = {comment_id: public_reply_for(rule(), comment_id) for comment_id in (f"880011_{n}" for n in range(40))}

    again = {comment_id: public_reply_for(rule(), comment_id) for comment_id in chosen}

    assert again == chosen
    assert set(chosen.values()) == set(PUBLIC), "every public reply gets used across comments"
    assert public_reply_for(rule(public=()), "880011_1") is None


# --- the knowledge answer ------------------------------------------------------------------------------------------


class LiveStub:
    """The live knowledge base's `lookup` with a fixed best hit (what the matrix decided for it)."""

    def __init__(self, score: float, kind: str) -> None:
        entry = Entry(id="horario", questions=("¿a qué hora abren?",), answer="Abrimos de 9 a 18.")
        hit = Hit(entry=entry, score=score, fused=score, margin=0.2, matched_question=entry.questions[0])
        self.result = Lookup("v1", Verdict(kind, (hit,)), (hit,))  # type: ignore[arg-type]

    async def lookup(self, question: str) -> Lookup:
        return self.result


@pytest.mark.parametrize(
    ("score", "kind", "min_score", "expected"),
    [
        (0.91, "answer", None, "Abrimos de 9 a 18."),  # the matrix's own threshold said "answer"
        (0.55, "ambiguous", None, None),  # "¿quisiste decir…?" is no answer to send privately
        (0.30, "no_match", None, None),
        (0.55, "ambiguous", 0.5, "Abrimos de 9 a 18."),  # the page's own, lower threshold
        (0.91, "answer", 0.95, None),  # the page's own, higher threshold
    ],
)
async def test_the_knowledge_answer_only_above_the_threshold(
    score: float, kind: str, min_score: float | None, expected: str | None
) -> None:
    answer = knowledge_answerer(LiveStub(score, kind))  # type: ignore[arg-type]

    assert await answer("a que hora abren", min_score) == expected


# --- the processor over real stores ------------------------------------------------------------------------------


class MetaTransport:
    """Meta's answers: a private reply names the commenter's PSID (`psid-<comment>`), a public reply the new
    comment; `refuse` makes private replies fail with that Graph error, `down` with a 500 (retried later),
    `no_recipient` answers them without `recipient_id`; `GET /{post_id}` answers the post's text from `posts`, else
    Meta's error for an object it cannot load."""

    def __init__(self) -> None:
        self.requests: list[GraphRequest] = []
        self.refuse: dict[str, Any] | None = None
        self.down = False
        self.no_recipient = False
        self.posts: dict[str, str] = {}

    async def send(self, request: GraphRequest) -> GraphResponse:
        self.requests.append(request)
        body = dict(request.json_body or {})
        if request.method == "GET":
            post_id = request.path.rsplit("/", 1)[-1]
            if post_id not in self.posts:
                return GraphResponse(400, {"error": {"message": f"Unsupported get request. Object with ID "
                                                                f"'{post_id}' does not exist", "code": 100,
                                                     "error_subcode": 33, "type": "GraphMethodException"}})
            return GraphResponse(200, {"id": post_id, "message": self.posts[post_id]})
        if request.path.endswith("/comments"):
            return GraphResponse(200, {"id": "880011223344_999"})
        if self.refuse is not None:
            return GraphResponse(400, {"error": self.refuse})
        if self.down:
            return GraphResponse(500, {"error": {"message": "An unexpected error has occurred.", "code": 2,
                                                 "type": "OAuthException"}})
        if self.no_recipient:
            return GraphResponse(200, {"message_id": "m_1"})
        return GraphResponse(200, {"recipient_id": f"psid-{body['recipient']['comment_id']}", "message_id": "m_1"})

    async def close(self) -> None:
        return None


class Parts:
    def __init__(self, tmp_path: Path) -> None:
        self.journal: CommentJournal = open_comment_journal(f"sqlite:///{tmp_path / 'journal.sqlite3'}")
        self.rules: RulesStore = open_rules_store(f"sqlite:///{tmp_path / 'rules.sqlite3'}")
        self.store = InMemoryOutboxStore()
        self.transport = MetaTransport()
        self.now = NOW
        self.graph = GraphClient({PAGE: "token"}, transport=self.transport)
        self.outbox = Outbox(self.store, self.graph, POLICY, page_rate=0, clock=lambda: self.now)
        self.paused: set[str] = set()

        async def is_paused(page_id: str, psid: str) -> bool:
            return psid in self.paused

        self.processor = CommentProcessor(self.journal, self.rules, self.outbox, is_paused=is_paused,
                                          clock=lambda: self.now, owner="p1", graph=self.graph)

    def comment(self, number: int, message: str = "¿Precio?", sender: str = meta.COMMENTER_ID,
                post_id: str = meta.POST_ID) -> int:
        value = meta.comment_value(message, comment_id=f"880011223344_{number}", sender=sender, post_id=post_id,
                                   created_time=int((self.now - timedelta(minutes=1)).timestamp()))
        [new_id] = self.journal.record([parse_feed_value(value, PAGE)], self.now)
        return new_id

    def row(self, change_id: int) -> StoredComment:
        found = self.journal.get(change_id)
        assert found is not None
        return found

    def close(self) -> None:
        self.journal.close()
        self.rules.close()


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    made = Parts(tmp_path)
    made.rules.create_rule(rule(), "admin", NOW)
    yield made
    made.close()


async def test_a_comment_becomes_a_private_and_a_public_reply_and_the_person_is_known(parts: Parts) -> None:
    first = parts.comment(1)

    assert await parts.processor.run_once() == 1
    assert await parts.outbox.run_once() == 1  # one recipient (the comment) at a time: the private reply first
    assert await parts.outbox.run_once() == 1
    assert await parts.processor.reconcile() == 1

    row = parts.row(first)
    assert (row.status, row.reason_code, row.rule_id, row.psid) == (REPLIED, None, "1", "psid-880011223344_1")
    private, public = parts.store.get(row.private_outbox_id or 0), parts.store.get(row.public_outbox_id or 0)
    assert (private.purpose, private.status, private.graph_recipient_id) == (Purpose.PRIVATE_REPLY, Status.SENT,
                                                                             "psid-880011223344_1")
    assert (public.purpose, public.status, public.messaging_type) == (Purpose.PUBLIC_REPLY, Status.SENT, "COMMENT")
    message_call, comment_call = parts.transport.requests
    assert message_call.path.endswith(f"/{PAGE}/messages")
    assert message_call.json_body == {"recipient": {"comment_id": "880011223344_1"}, "messaging_type": "RESPONSE",
                                      "message": FIXED}
    assert comment_call.path.endswith("/880011223344_1/comments")
    assert comment_call.json_body is not None and comment_call.json_body["message"] in PUBLIC
    origin = parts.journal.origin_of(PAGE, "psid-880011223344_1")
    assert origin is not None and origin.id == first


async def test_the_same_person_again_on_the_same_post_within_a_day_gets_nothing(parts: Parts) -> None:
    parts.comment(1)
    await parts.processor.run_once()
    parts.now += timedelta(hours=3)
    second = parts.comment(2, "¿Y el precio del grande?")
    other_person = parts.comment(3, sender="6100000000000077")

    await parts.processor.run_once()

    assert (parts.row(second).status, parts.row(second).reason_code) == (SKIPPED, ALREADY_REPLIED_TODAY)
    assert parts.row(other_person).status == REPLIED
    parts.rules.save_page_settings(PageCommentSettings(PAGE, one_reply_per_person_per_post_per_day=False), "a", NOW)
    third = parts.comment(4)
    await parts.processor.run_once()
    assert parts.row(third).status == REPLIED, "the page switched the limit off"


async def test_a_person_whose_conversation_is_paused_gets_no_new_private_reply(parts: Parts) -> None:
    parts.comment(1)
    await parts.processor.run_once()
    await parts.outbox.run_once()
    await parts.processor.reconcile()
    parts.paused.add("psid-880011223344_1")
    parts.now += timedelta(days=2)  # not "today" any more

    later = parts.comment(2)
    await parts.processor.run_once()

    assert (parts.row(later).status, parts.row(later).reason_code) == (SKIPPED, CONVERSATION_PAUSED)


async def test_a_comment_that_already_has_a_private_reply_is_skipped_with_the_outbox_reason(parts: Parts) -> None:
    change_id = parts.comment(1)
    await parts.outbox.enqueue(NewMessage(PAGE, "880011223344_1", {"text": "a mano"}, sender=SenderKind.HUMAN,
                                          purpose=Purpose.PRIVATE_REPLY, idempotency_key="console:ana:1"))
    await parts.outbox.record_user_message(PAGE, "880011223344_1", NOW)

    await parts.processor.run_once()

    row = parts.row(change_id)
    assert (row.status, row.reason_code, row.private_outbox_id) == (SKIPPED, "private_reply_already_sent", None)
    assert len(parts.store.find(MessageFilter(recipient_id="880011223344_1"))) == 1, "no public reply either"


async def test_a_private_reply_meta_refuses_turns_the_verdict_into_a_skip_with_metas_reason(parts: Parts) -> None:
    change_id = parts.comment(1)
    parts.transport.refuse = {"message": "(#10903) This user can't reply to this activity", "code": 10903,
                              "error_subcode": 1893049, "type": "OAuthException"}
    await parts.processor.run_once()
    await parts.outbox.run_once()

    assert await parts.processor.reconcile() == 1

    row = parts.row(change_id)
    assert (row.status, row.reason_code, row.psid) == (SKIPPED, "graph_10903", None)
    assert parts.journal.awaiting_psid() == []


async def test_a_conversation_starts_when_the_person_writes_after_the_private_reply(parts: Parts) -> None:
    """Would catch: a delivered reply counted as a conversation started, a person's message from before the reply
    counted, a reply older than the 7 days still watched, or a started conversation counted twice."""
    first, earlier_writer = parts.comment(1), parts.comment(2, sender="6100000000000077")
    await parts.processor.run_once()
    while await parts.outbox.run_once():
        pass
    psid, other_psid = "psid-880011223344_1", "psid-880011223344_2"
    await parts.outbox.record_user_message(PAGE, other_psid, NOW - timedelta(days=1))  # wrote before, not after
    assert await parts.processor.reconcile() == 2, "both PSIDs known; nobody wrote back yet"
    assert parts.row(first).reply_sent_at == NOW and parts.row(first).answered_at is None
    assert parts.journal.counts(PAGE)["by_rule"]["1"]["started"] == 0

    wrote_at = NOW + timedelta(minutes=5)
    await parts.outbox.record_user_message(PAGE, psid, wrote_at)
    parts.now = NOW + timedelta(minutes=10)
    assert await parts.processor.reconcile() == 1
    assert await parts.processor.reconcile() == 0, "looked at again only after ANSWER_CHECK_EVERY"

    assert parts.row(first).answered_at == wrote_at and parts.row(earlier_writer).answered_at is None
    counts = parts.journal.counts(PAGE)
    assert (counts["started"], counts["by_rule"]["1"]["started"], counts["by_rule"]["1"]["delivered"]) == (1, 1, 2)
    await parts.outbox.record_user_message(PAGE, other_psid, NOW + timedelta(days=8))
    parts.now = NOW + timedelta(days=8, minutes=1)
    assert await parts.processor.reconcile() == 0, "a reply of more than 7 days ago is not watched any more"


async def test_one_reply_per_person_per_post_is_per_calendar_day_in_the_business_time_zone(parts: Parts) -> None:
    """America/Guayaquil is UTC-5: 23:30 there is 04:30 UTC the next day. Would catch "today" read as the last 24
    hours (the 00:30 comment skipped) or as the UTC day (the 23:50 one replied)."""
    parts.now = datetime(2026, 3, 3, 4, 30, tzinfo=timezone.utc)  # 23:30 on 2 March in Guayaquil
    parts.comment(1)
    await parts.processor.run_once()
    parts.now = datetime(2026, 3, 3, 4, 50, tzinfo=timezone.utc)  # 23:50, the same local day
    same_day = parts.comment(2)
    await parts.processor.run_once()
    parts.now = datetime(2026, 3, 3, 5, 30, tzinfo=timezone.utc)  # 00:30 on 3 March in Guayaquil
    next_day = parts.comment(3)
    await parts.processor.run_once()

    assert (parts.row(same_day).status, parts.row(same_day).reason_code) == (SKIPPED, ALREADY_REPLIED_TODAY)
    assert parts.row(next_day).status == REPLIED


# --- comments that cannot be decided ------------------------------------------------------------------------------


class BrokenRules:
    """A rules store that raises on every read (a broken database, a bug): no comment can be decided."""

    def __init__(self) -> None:
        self.calls = 0

    def list_rules(self, page_id: str) -> list[ReplyRule]:
        self.calls += 1
        raise RuntimeError("the rules store is broken")

    def page_settings(self, page_id: str) -> PageCommentSettings:
        raise RuntimeError("the rules store is broken")


async def give_up_after_max_attempts(parts: Parts, processor: CommentProcessor, change_id: int) -> None:
    """Drive a comment that keeps failing through its attempts: held back in between, decided only at the last."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        assert await processor.run_once() == (1 if attempt == MAX_ATTEMPTS else 0), f"attempt {attempt}"
        if attempt < MAX_ATTEMPTS:
            assert (parts.row(change_id).status, parts.row(change_id).attempts) == ("pending", attempt)
            assert await processor.run_once() == 0, "held back: not taken again at once"
            parts.now += retry_delay(attempt)


async def test_a_comment_that_cannot_be_decided_is_held_back_then_skipped_with_why(
    parts: Parts, caplog: pytest.LogCaptureFixture
) -> None:
    """Would catch the processor re-claiming a failing comment at once (a busy loop, a traceback each time) or
    leaving it pending for ever with no reason."""
    broken = BrokenRules()
    processor = CommentProcessor(parts.journal, broken, parts.outbox, clock=lambda: parts.now, owner="p2")
    change_id = parts.comment(1)

    with caplog.at_level(logging.WARNING, logger="comments.processor"):
        await give_up_after_max_attempts(parts, processor, change_id)

    row = parts.row(change_id)
    assert (row.status, row.reason_code, row.attempts, broken.calls) == (SKIPPED, PROCESSING_FAILED, MAX_ATTEMPTS,
                                                                          MAX_ATTEMPTS)
    [given_up] = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert (given_up.feed_change_id, given_up.attempts, given_up.reason_code, given_up.error) == (  # type: ignore[attr-defined]
        change_id, MAX_ATTEMPTS, PROCESSING_FAILED, "RuntimeError")
    assert await processor.run_once() == 0


async def test_the_loop_sleeps_while_a_comment_cannot_be_decided(parts: Parts) -> None:
    broken = BrokenRules()
    processor = CommentProcessor(parts.journal, broken, parts.outbox, clock=lambda: parts.now, owner="p2")
    parts.comment(1)
    rounds = 0
    run_once = processor.run_once

    async def counted() -> int:
        nonlocal rounds
        rounds += 1
        return await run_once()

    processor.run_once = counted  # type: ignore[method-assign]
    loop = asyncio.create_task(processor.run(poll_seconds=0.05))
    await asyncio.sleep(0.3)
    processor.stop()
    await loop

    assert 1 <= rounds <= 10, f"{rounds} rounds in 0.3 s: the loop must wait between rounds that decide nothing"
    assert broken.calls == 1, "the failed comment waits for its retry delay"


def test_the_retry_delay_grows_and_is_bounded() -> None:
    delays = [retry_delay(attempt) for attempt in range(1, 12)]

    assert delays[0] == timedelta(seconds=30) and delays == sorted(delays)
    assert max(delays) == timedelta(hours=1)


# --- private replies sent without a recipient id ------------------------------------------------------------------


async def test_replies_sent_without_a_recipient_leave_the_psid_queue_and_never_block_later_ones(parts: Parts) -> None:
    """60 private replies Meta answered without `recipient_id` (more than one reconcile batch): they are marked as
    delivered with an unknown PSID, and a later reply still teaches its person's PSID."""
    parts.transport.no_recipient = True
    stuck = [parts.comment(n, sender=f"61000000000{n:05d}") for n in range(1, 61)]
    while await parts.processor.run_once():
        pass
    while await parts.outbox.run_once():
        pass
    parts.transport.no_recipient = False
    last = parts.comment(61, sender="6100000000099999")
    await parts.processor.run_once()
    while await parts.outbox.run_once():
        pass

    await parts.processor.reconcile()
    await parts.processor.reconcile()

    assert parts.row(last).psid == "psid-880011223344_61"
    assert all(parts.row(change_id).psid_unknown_at is not None for change_id in stuck)
    assert all(parts.row(change_id).status == REPLIED for change_id in stuck)
    assert parts.journal.awaiting_psid() == []
    assert parts.journal.counts(PAGE)["delivered"] == 61


async def test_replies_still_in_flight_do_not_starve_the_ones_behind_them(parts: Parts) -> None:
    parts.transport.down = True  # 60 private replies wait for a retry
    waiting = [parts.comment(n, sender=f"61000000000{n:05d}") for n in range(1, 61)]
    while await parts.processor.run_once():
        pass
    while await parts.outbox.run_once():
        pass
    parts.transport.down = False
    last = parts.comment(61, sender="6100000000099999")
    await parts.processor.run_once()
    while await parts.outbox.run_once():
        pass

    await parts.processor.reconcile()
    await parts.processor.reconcile()

    assert parts.row(last).psid == "psid-880011223344_61"
    assert [c.id for c in parts.journal.awaiting_psid(limit=100)] == waiting, "still in flight: still waiting"


# --- rules by the post's text ---------------------------------------------------------------------------------------


def test_a_post_text_is_needed_only_when_a_text_rule_could_be_the_first_match() -> None:
    everything = rule()  # keywords "precio", every post, position 1
    promo = text_rule()  # keywords "precio", posts with "promo", position 2
    first_promo = text_rule(position=0)

    assert not needs_post_text([everything, promo], "¿Precio?", meta.POST_ID), "an earlier rule matches anyway"
    assert needs_post_text([everything, first_promo], "¿Precio?", meta.POST_ID)
    assert not needs_post_text([first_promo], "hola", meta.POST_ID), "its comment part does not match"
    assert not needs_post_text([replace(first_promo, enabled=False)], "¿Precio?", meta.POST_ID)
    assert needs_post_text([promo], "precio", meta.POST_ID)


async def test_a_post_text_rule_reads_the_posts_text_once_from_the_graph_api(parts: Parts) -> None:
    """Meta's comment webhook carries no post text: a post published before the subscription is read with
    GET /{post_id}?fields=message, kept, and the rule matches it."""
    parts.rules.delete_rule(1)
    promo = parts.rules.create_rule(text_rule(), "admin", NOW)
    other_post = f"{PAGE}_990000000777"
    parts.transport.posts = {meta.POST_ID: "¡PROMO de verano! 2x1 en pizzas", other_post: "Horarios de feriado"}
    first, second = parts.comment(1), parts.comment(2, sender="6100000000000077")
    elsewhere = parts.comment(3, sender="6100000000000078", post_id=other_post)

    assert await parts.processor.run_once() == 3

    assert [(parts.row(n).status, parts.row(n).rule_id) for n in (first, second)] == [(REPLIED, str(promo.id))] * 2
    assert (parts.row(elsewhere).status, parts.row(elsewhere).reason_code) == (SKIPPED, NO_RULE)
    reads = [request for request in parts.transport.requests if request.method == "GET"]
    assert [request.path for request in reads] == [f"/v21.0/{meta.POST_ID}", f"/v21.0/{other_post}"]
    assert all(request.params == {"fields": "message", "access_token": "token"} for request in reads)
    assert parts.journal.post_message(PAGE, meta.POST_ID) == "¡PROMO de verano! 2x1 en pizzas"


async def test_a_post_text_that_cannot_be_read_is_retried_then_skipped_with_its_reason(parts: Parts) -> None:
    parts.rules.delete_rule(1)
    parts.rules.create_rule(text_rule(), "admin", NOW)
    change_id = parts.comment(1)  # the Graph API does not know the post: Meta's (#100) error

    await give_up_after_max_attempts(parts, parts.processor, change_id)

    row = parts.row(change_id)
    assert (row.status, row.reason_code) == (SKIPPED, POST_TEXT_UNAVAILABLE), "never a silent no_rule"
    assert len([request for request in parts.transport.requests if request.method == "GET"]) == MAX_ATTEMPTS
    assert parts.journal.post_message(PAGE, meta.POST_ID) is None
