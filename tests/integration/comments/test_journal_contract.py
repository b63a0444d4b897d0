"""One contract suite for the comment journal (comments/journal.py) on its two databases: a real SQLite file and a
PostgreSQL schema of the test's own (`open_comment_journal(url)` picks by URL). Recording with redeliveries, the
status each change starts with, claims under a lease (two owners, an expired lease, only the holder finishes), the
PSID after the reply, "one per person per post per day", the origin of a conversation, paging and counters.
PostgreSQL missing → its half is skipped (failed with REQUIRE_SERVICES=1)."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from comments.journal import (
    IGNORED,
    PENDING,
    RECORDED,
    REPLIED,
    SKIPPED,
    CommentJournal,
    CommentJournalError,
    open_comment_journal,
)
from core.sqlite import SchemaTooNew
from meta.feed import FeedChange, parse_feed_value
from tests.support import meta_payloads as meta
from tests.support.postgres import store_fixture, url_fixture

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
LEASE = timedelta(seconds=30)


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def change(value: dict[str, object]) -> FeedChange:
    return parse_feed_value(value, meta.PAGE_ID)


def comment(number: int, message: str = "¿Precio?", sender: str = meta.COMMENTER_ID,
            post: str = meta.POST_ID) -> FeedChange:
    return change(meta.comment_value(message, comment_id=f"880011223344_{number}", sender=sender, post_id=post))


url = url_fixture("comment_journal")
journal = store_fixture(open_comment_journal)


def test_each_shape_starts_with_its_status_and_reason(journal: CommentJournal) -> None:
    values = [meta.comment_value(), meta.reply_value(), meta.page_comment_value(), meta.edited_value(),
              meta.removed_value(), meta.hidden_value("hide"), meta.visitor_post_value(), meta.reaction_value()]

    ids = journal.record([change(value) for value in values], NOW)

    rows = {row.id: row for row in journal.recent(meta.PAGE_ID, limit=20)}
    assert [(rows[i].status, rows[i].reason_code) for i in ids] == [
        (PENDING, None),
        (PENDING, None),  # a reply is a comment too
        (IGNORED, "by_page"),
        (RECORDED, "comment_edited"),
        (RECORDED, "comment_removed"),
        (RECORDED, "comment_hidden"),
        (RECORDED, "not_a_comment"),
        (RECORDED, "not_a_comment"),
    ]
    reply = rows[ids[1]]
    assert reply.is_reply and reply.parent_id == meta.COMMENT_ID
    assert (reply.from_id, reply.from_name, reply.message) == ("6123456789099999", "Luis Andrade",
                                                                "Yo también quiero saber")
    assert reply.created_at == datetime.fromtimestamp(meta.T0_SECONDS, tz=timezone.utc)
    assert reply.received_at == NOW
    assert reply.change == change(meta.reply_value()), "Meta's value is kept whole"
    assert reply.post is not None and reply.post["status_type"] == "added_photos"


def test_a_redelivery_is_recorded_once_and_a_change_without_time_gets_the_received_time(
    journal: CommentJournal,
) -> None:
    value = meta.comment_value()
    del value["created_time"]
    first = journal.record([change(value), comment(2)], NOW)
    again = journal.record([change(value), comment(2), comment(3)], later(5))

    assert len(first) == 2 and len(again) == 1, "only the new comment"
    assert len(journal.recent(None, limit=10)) == 3
    stored = journal.get(first[0])
    assert stored is not None and stored.created_at == NOW and stored.received_at == NOW


def test_a_nul_in_a_comment_is_stored_without_it_on_both_databases(journal: CommentJournal) -> None:
    """PostgreSQL refuses NUL in text (and jsonb), SQLite keeps it: meta.feed removes it so both keep the same."""
    value = meta.comment_value("hola\x00 ¿precio?")
    value["from"]["name"] = "Ma\x00ría"
    value["x_extra"] = ["\x00"]

    ids = journal.record([change(value)], NOW)

    stored = journal.get(ids[0])
    assert stored is not None and (stored.message, stored.from_name) == ("hola ¿precio?", "María")
    assert stored.change.raw["x_extra"] == [""]
    assert journal.record([change(meta.comment_value("hola ¿precio?"))], later(1)) == [], "the same comment"


def test_claims_are_exclusive_until_the_lease_runs_out(journal: CommentJournal) -> None:
    journal.record([comment(1), comment(2), comment(3), change(meta.edited_value())], NOW)

    mine = journal.claim_pending("processor-a", NOW, LEASE, limit=2)
    theirs = journal.claim_pending("processor-b", NOW, LEASE, limit=10)
    again = journal.claim_pending("processor-a", later(1), LEASE, limit=10)
    after_lease = journal.claim_pending("processor-b", later(31), LEASE, limit=10)

    assert [c.comment_id for c in mine] == ["880011223344_1", "880011223344_2"], "oldest first, up to the limit"
    assert [c.comment_id for c in theirs] == ["880011223344_3"], "never an edit, never another's claim"
    assert {c.claimed_by for c in mine} == {"processor-a"} and mine[0].lease_until == later(30)
    assert [c.attempts for c in mine + after_lease] == [1, 1, 2, 2, 2], "each claim is one attempt"
    assert again == [], "even the holder waits for its lease: a comment that failed is held back, not retried at once"
    assert [c.comment_id for c in after_lease] == ["880011223344_1", "880011223344_2", "880011223344_3"]


def test_only_the_holder_finishes_once(journal: CommentJournal) -> None:
    (stored_id,) = journal.record([comment(1)], NOW)
    (claimed,) = journal.claim_pending("a", NOW, LEASE)
    journal.claim_pending("b", later(40), LEASE)  # a's lease ran out: b holds it now

    assert not journal.finish(claimed.id, "a", REPLIED, rule_id=7, private_outbox_id=11, now=later(41))
    assert journal.finish(claimed.id, "b", SKIPPED, reason_code="no_rule", now=later(42))
    assert not journal.finish(claimed.id, "b", REPLIED, now=later(43)), "decided once"
    stored = journal.get(stored_id)
    assert stored is not None
    assert (stored.status, stored.reason_code, stored.rule_id, stored.handled_at) == (SKIPPED, "no_rule", None,
                                                                                      later(42))
    assert (stored.claimed_by, stored.lease_until) == (None, None)
    assert journal.claim_pending("c", later(100), LEASE) == []
    with pytest.raises(CommentJournalError):
        journal.finish(stored_id, "b", "pending")


def test_two_processors_at_once_never_take_the_same_comment(journal: CommentJournal, url: str) -> None:
    journal.record([comment(n) for n in range(1, 41)], NOW)
    other = open_comment_journal(url)
    try:
        def drain(owner_and_journal: tuple[str, CommentJournal]) -> list[int]:
            owner, store = owner_and_journal
            taken: list[int] = []
            while batch := store.claim_pending(owner, NOW, LEASE, limit=3):
                for stored in batch:
                    assert store.finish(stored.id, owner, SKIPPED, reason_code="no_rule", now=NOW)
                    taken.append(stored.id)
            return taken

        with ThreadPoolExecutor(2) as pool:
            first, second = pool.map(drain, [("a", journal), ("b", other)])
    finally:
        other.close()
    assert sorted(first + second) == sorted(set(first + second)) and len(first + second) == 40


def test_psid_origin_and_one_reply_per_person_per_post(journal: CommentJournal) -> None:
    ids = journal.record([comment(1), comment(2), comment(3, post=f"{meta.PAGE_ID}_777"),
                          comment(4, sender="", message="sin autor")], NOW)
    for stored in journal.claim_pending("p", NOW, LEASE):
        outbox_id = 100 + stored.id if stored.id == ids[0] else None
        status = REPLIED if outbox_id else SKIPPED
        journal.finish(stored.id, "p", status, reason_code=None if outbox_id else "already_replied_today",
                       rule_id="r1", private_outbox_id=outbox_id, public_outbox_id=outbox_id, now=later(10))

    since = later(10) - timedelta(days=1)
    assert journal.replied_to_person_since(meta.PAGE_ID, meta.COMMENTER_ID, meta.POST_ID, since)
    assert not journal.replied_to_person_since(meta.PAGE_ID, meta.COMMENTER_ID, meta.POST_ID, later(11))
    assert not journal.replied_to_person_since(meta.PAGE_ID, meta.COMMENTER_ID, f"{meta.PAGE_ID}_777", since)
    assert not journal.replied_to_person_since(meta.PAGE_ID, "6100000000000001", meta.POST_ID, since)
    assert not journal.replied_to_person_since(meta.PAGE_ID, "", meta.POST_ID, since), "no author, never the same"

    assert [stored.id for stored in journal.awaiting_psid()] == [ids[0]]
    journal.set_psid(ids[0], "7012345678901234")
    assert journal.awaiting_psid() == []
    origin = journal.origin_of(meta.PAGE_ID, "7012345678901234")
    assert origin is not None and (origin.id, origin.message, origin.private_outbox_id) == (ids[0], "¿Precio?",
                                                                                           100 + ids[0])
    assert journal.origin_of(meta.PAGE_ID, "someone-else") is None
    assert journal.origin_of(meta.OTHER_PAGE_ID, "7012345678901234") is None


def test_the_persons_psid_and_a_reply_that_never_reached_them(journal: CommentJournal) -> None:
    """The processor's two reads/writes after a reply: the PSID of a person by their feed id (is their conversation
    paused?), and a private reply the outbox gave up on turning the verdict into skipped with the outbox's reason."""
    ids = journal.record([comment(1), comment(2), comment(3, sender="6100000000000001")], NOW)
    for stored in journal.claim_pending("p", NOW, LEASE):
        journal.finish(stored.id, "p", REPLIED, rule_id="r1", private_outbox_id=100 + stored.id, now=later(1))
    assert journal.psid_of(meta.PAGE_ID, meta.COMMENTER_ID) is None
    journal.set_psid(ids[0], "7012345678901234")

    assert journal.reply_failed(ids[1], "graph_10903")
    assert not journal.reply_failed(ids[0], "graph_10903"), "a reply that reached the person stays replied"
    assert not journal.reply_failed(ids[1], "again"), "once"
    assert journal.psid_of(meta.PAGE_ID, meta.COMMENTER_ID) == "7012345678901234"
    assert journal.psid_of(meta.PAGE_ID, "6100000000000001") is None
    assert journal.psid_of(meta.OTHER_PAGE_ID, meta.COMMENTER_ID) is None
    assert journal.psid_of(meta.PAGE_ID, "") is None
    failed = journal.get(ids[1])
    assert failed is not None and (failed.status, failed.reason_code) == (SKIPPED, "graph_10903")
    assert [stored.id for stored in journal.awaiting_psid()] == [ids[2]]


def test_recent_pages_back_by_id_and_by_page(journal: CommentJournal) -> None:
    ids = journal.record([comment(n) for n in range(1, 6)], NOW)
    journal.record([parse_feed_value(meta.comment_value(comment_id="9_9"), meta.OTHER_PAGE_ID)], NOW)

    first = journal.recent(meta.PAGE_ID, limit=2)
    second = journal.recent(meta.PAGE_ID, limit=2, before_id=first[-1].id)

    assert [s.id for s in first] == [ids[4], ids[3]] and [s.id for s in second] == [ids[2], ids[1]]
    assert len(journal.recent(None, limit=50)) == 6 and len(journal.recent(meta.PAGE_ID, limit=50)) == 5
    assert journal.recent(meta.OTHER_PAGE_ID, limit=5)[0].to_dict()["comment_id"] == "9_9"


def test_post_message_from_the_posts_own_changes(journal: CommentJournal) -> None:
    post_id = f"{meta.PAGE_ID}_990000000001"
    assert journal.post_message(meta.PAGE_ID, post_id) is None
    journal.record([change(meta.visitor_post_value("Promo 2x1 en pizzas", post_id=post_id)), comment(1)], NOW)
    edited = meta.visitor_post_value("Promo 2x1 en pizzas y alitas", post_id=post_id)
    edited["verb"] = "edited"
    journal.record([change(edited)], later(1))

    assert journal.post_message(meta.PAGE_ID, post_id) == "Promo 2x1 en pizzas y alitas"
    assert journal.post_message(meta.OTHER_PAGE_ID, post_id) is None


def test_a_post_text_read_from_the_graph_api_is_kept_but_the_posts_own_changes_win(journal: CommentJournal) -> None:
    post_id = f"{meta.PAGE_ID}_990000000002"
    journal.save_post_text(meta.PAGE_ID, post_id, "Promo de verano", NOW)
    journal.save_post_text(meta.PAGE_ID, f"{meta.PAGE_ID}_990000000003", "", NOW)  # a post without text
    journal.save_post_text(meta.PAGE_ID, post_id, "Promo de verano: 2x1", later(1))  # read again: replaced

    assert journal.post_message(meta.PAGE_ID, post_id) == "Promo de verano: 2x1"
    assert journal.post_message(meta.PAGE_ID, f"{meta.PAGE_ID}_990000000003") == "", "known to have no text"
    assert journal.post_message(meta.OTHER_PAGE_ID, post_id) is None
    edited = meta.visitor_post_value("Promo de invierno", post_id=post_id)
    edited["verb"] = "edited"
    journal.record([change(edited)], later(2))
    assert journal.post_message(meta.PAGE_ID, post_id) == "Promo de invierno"


def test_a_held_back_comment_waits_and_a_reply_without_recipient_leaves_the_psid_queue(
    journal: CommentJournal,
) -> None:
    first, second, third = journal.record([comment(1), comment(2), comment(3)], NOW)
    held = journal.claim_pending("p", NOW, LEASE, limit=1)
    assert journal.hold_back(first, "p", later(300))
    assert not journal.hold_back(first, "q", later(900)), "only the holder"
    assert journal.claim_pending("q", later(299), LEASE, limit=1)[0].id == second
    assert [c.id for c in journal.claim_pending("q", later(300), LEASE)] == [first, third]
    assert [c.attempts for c in held] == [1] and journal.get(first).attempts == 2  # type: ignore[union-attr]

    for stored_id in (first, second, third):
        journal.finish(stored_id, "q", REPLIED, rule_id="r1", private_outbox_id=100 + stored_id, now=later(301))
    assert [c.id for c in journal.awaiting_psid(limit=2)] == [first, second]
    assert [c.id for c in journal.awaiting_psid(limit=2, after_id=second)] == [third], "a cursor pages past"
    assert journal.set_psid_unknown(first, later(302), sent_at=later(301))
    assert not journal.set_psid_unknown(first, later(303)), "once"
    assert [c.id for c in journal.awaiting_psid()] == [second, third]
    unknown = journal.get(first)
    assert unknown is not None and (unknown.psid, unknown.psid_unknown_at, unknown.reply_sent_at) == (
        None, later(302), later(301))
    assert journal.counts(meta.PAGE_ID)["delivered"] == 1, "sent, even if the PSID stays unknown"


def test_counts(journal: CommentJournal) -> None:
    journal.record([comment(1), comment(2), comment(3), comment(4), change(meta.page_comment_value()),
                    change(meta.visitor_post_value())], NOW)
    verdicts = {1: (REPLIED, None, "r1", 11, 12), 2: (REPLIED, None, "r1", 13, None),
                3: (SKIPPED, "no_rule", None, None, None), 4: (SKIPPED, "already_replied_today", "r2", None, None)}
    for stored in journal.claim_pending("p", NOW, LEASE):
        status, reason, rule, private, public = verdicts[int(str(stored.comment_id).rsplit("_", 1)[1])]
        journal.finish(stored.id, "p", status, reason, rule, private, public, now=later(5))
    replied_first = next(s for s in journal.recent(None, 10) if s.comment_id == "880011223344_1")
    journal.set_psid(replied_first.id, "psid-1")
    journal.record([comment(5)], later(3600))

    counts = journal.counts(meta.PAGE_ID)
    assert counts["received"] == 5, "the page's own comment is not received"
    assert counts["by_status"] == {REPLIED: 2, SKIPPED: 2, IGNORED: 1, RECORDED: 1, PENDING: 1}
    assert counts["by_reason"] == {"no_rule": 1, "already_replied_today": 1, "by_page": 1}
    assert counts["by_rule"] == {"r1": {"matched": 2, "private": 2, "public": 1, "delivered": 1, "started": 0},
                                 "r2": {"matched": 1, "private": 0, "public": 0, "delivered": 0, "started": 0}}
    assert (counts["private"], counts["public"], counts["delivered"], counts["started"]) == (2, 1, 1, 0)
    assert journal.set_answered(replied_first.id, later(600))
    assert journal.counts(meta.PAGE_ID)["by_rule"]["r1"]["started"] == 1
    assert journal.counts(meta.PAGE_ID)["started"] == 1
    assert journal.counts(meta.PAGE_ID, since=later(60))["received"] == 1
    assert journal.counts(meta.OTHER_PAGE_ID)["received"] == 0
    assert journal.counts()["received"] == 5


def test_the_journal_survives_a_reopen_and_refuses_a_newer_schema(url: str, tmp_path: Path) -> None:
    first = open_comment_journal(url)
    (stored_id,) = first.record([comment(1)], NOW)
    assert first.schema_version == 4  # 004_rules_by_time
    first.close()
    reopened = open_comment_journal(url)
    try:
        assert reopened.record([comment(1)], later(1)) == []
        assert [c.id for c in reopened.claim_pending("a", NOW, LEASE)] == [stored_id]
    finally:
        reopened.close()
    if url.startswith("sqlite:///"):
        with closing(sqlite3.connect(url[len("sqlite:///"):])) as conn:
            conn.execute("PRAGMA user_version=99")
        with pytest.raises(SchemaTooNew):
            open_comment_journal(url)


async def test_record_async_commits_off_the_event_loop(journal: CommentJournal) -> None:
    fresh = await journal.record_async([comment(1), comment(2)], NOW)
    again = await journal.record_async([comment(2)], NOW)

    assert len(fresh) == 2 and again == []
    assert [s.id for s in await journal.run(journal.claim_pending, "a", NOW, LEASE)] == fresh


def test_conversations_started_after_the_private_reply(journal: CommentJournal) -> None:
    """`awaiting_answer` lists replies that reached the person since a time, in id order after a cursor, until
    `set_answered` notes the person wrote back (once); the reply's time is the outbox's sent time, else the
    verdict's."""
    ids = journal.record([comment(1), comment(2, sender="6100000000000001"), comment(3, sender="6100000000000002")],
                         NOW)
    for stored in journal.claim_pending("p", NOW, LEASE):
        journal.finish(stored.id, "p", REPLIED, rule_id="r1", private_outbox_id=100 + stored.id, now=later(1))
    journal.set_psid(ids[0], "psid-a", later(5))
    journal.set_psid(ids[1], "psid-b")  # no sent time: the verdict's stands for it
    # ids[2]: no PSID yet (the reply not sent): not awaited

    awaited = journal.awaiting_answer(NOW)
    assert [s.id for s in awaited] == ids[:2]
    assert [s.replied_at for s in awaited] == [later(5), later(1)]
    assert [s.id for s in journal.awaiting_answer(NOW, after_id=ids[0])] == [ids[1]]
    assert [s.id for s in journal.awaiting_answer(later(3))] == [ids[0]], "replies before `since` are left"
    assert [s.id for s in journal.awaiting_answer(NOW, limit=1)] == [ids[0]]

    assert journal.set_answered(ids[0], later(60))
    assert not journal.set_answered(ids[0], later(120)), "once"
    answered = journal.get(ids[0])
    assert answered is not None and answered.answered_at == later(60)
    assert answered.to_dict()["answered_at"] == later(60).isoformat()
    assert [s.id for s in journal.awaiting_answer(NOW)] == [ids[1]]
