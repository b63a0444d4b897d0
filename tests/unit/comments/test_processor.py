"""The comment processor: the pure verdict (`decide_comment`), then the processor over a real SQLite journal and rules
store, the in-memory outbox and a Graph transport that answers as Meta does.

Would catch: a reply to the page's own comment; a comment with no matching rule answered; a private reply past
Meta's 7 days (the outbox policy's window) or a second reply to the same person on the same post within a day;
a bot reply into a conversation an agent holds; a knowledge rule answering below the threshold; a public reply that
changes each time the same comment is decided; the PSID of the person not learnt from the private reply's answer;
a private reply Meta refused staying "replied" silently.
"""

from __future__ import annotations

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
    NO_ANSWER,
    NO_RULE,
    CommentFacts,
    CommentProcessor,
    decide_comment,
    knowledge_answerer,
    public_reply_for,
)
from comments.rules import CommentMatch, PageCommentSettings, ReplyContent, ReplyRule
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
    comment; `refuse` makes private replies fail with that Graph error."""

    def __init__(self) -> None:
        self.requests: list[GraphRequest] = []
        self.refuse: dict[str, Any] | None = None

    async def send(self, request: GraphRequest) -> GraphResponse:
        self.requests.append(request)
        body = dict(request.json_body or {})
        if request.path.endswith("/comments"):
            return GraphResponse(200, {"id": "880011223344_999"})
        if self.refuse is not None:
            return GraphResponse(400, {"error": self.refuse})
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
        self.outbox = Outbox(self.store, GraphClient({PAGE: "token"}, transport=self.transport), POLICY,
                             page_rate=0, clock=lambda: self.now)
        self.paused: set[str] = set()

        async def is_paused(page_id: str, psid: str) -> bool:
            return psid in self.paused

        self.processor = CommentProcessor(self.journal, self.rules, self.outbox, is_paused=is_paused,
                                          clock=lambda: self.now, owner="p1")

    def comment(self, number: int, message: str = "¿Precio?", sender: str = meta.COMMENTER_ID) -> int:
        value = meta.comment_value(message, comment_id=f"880011223344_{number}", sender=sender,
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
