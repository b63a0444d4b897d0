"""The comment rules of a period for the reports (issue 14): per rule, the comments received in the period it
matched, the replies queued, the private replies that reached the person and the conversations that followed. On
a real SQLite file and a PostgreSQL schema of the test's own (PostgreSQL missing → skipped, failed with
REQUIRE_SERVICES=1)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from comments.journal import REPLIED, SKIPPED, CommentJournal, open_comment_journal
from comments.model import RuleCount
from meta.feed import FeedChange, parse_feed_value
from tests.support import meta_payloads as meta
from tests.support.postgres import store_fixture, url_fixture

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
LEASE = timedelta(minutes=5)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)

url = url_fixture("comment_journal")
journal = store_fixture(open_comment_journal)


def comment(number: int, page_id: str = meta.PAGE_ID) -> FeedChange:
    return parse_feed_value(meta.comment_value("¿Precio?", comment_id=f"880011223344_{number}",
                                               sender=meta.COMMENTER_ID, post_id=meta.POST_ID), page_id)


def decide(journal: CommentJournal, at: datetime,
           verdicts: dict[int, tuple[str, str | None, str | None, int | None, int | None]]) -> dict[int, int]:
    """The processor's verdicts (status, reason, rule, private outbox id, public outbox id) by comment number; the
    journal ids by comment number."""
    ids = {}
    for stored in journal.claim_pending("p", at, LEASE):
        number = int(str(stored.comment_id).rsplit("_", 1)[1])
        status, reason, rule, private, public = verdicts[number]
        journal.finish(stored.id, "p", status, reason, rule, private, public, now=at)
        ids[number] = stored.id
    return ids


def test_each_rules_comments_of_a_period(journal: CommentJournal) -> None:
    journal.record([comment(1), comment(2), comment(3), comment(4)], NOW)
    ids = decide(journal, NOW, {1: (REPLIED, None, "r1", 11, 12), 2: (REPLIED, None, "r1", 13, None),
                                3: (SKIPPED, "no_rule", None, None, None),
                                4: (SKIPPED, "already_replied_today", "r2", None, None)})
    journal.set_psid(ids[1], "psid-1", NOW + timedelta(seconds=2))
    journal.set_psid_unknown(ids[2], NOW + timedelta(seconds=3))  # sent, Meta named nobody: it reached the person
    journal.set_answered(ids[1], NOW + timedelta(minutes=10))
    journal.record([comment(5)], NOW + HOUR)
    decide(journal, NOW + HOUR, {5: (REPLIED, None, "r1", 15, None)})
    journal.record([comment(6, page_id=meta.OTHER_PAGE_ID)], NOW)
    decide(journal, NOW, {6: (REPLIED, None, "r3", 16, None)})

    assert journal.rule_counts(meta.PAGE_ID, NOW, NOW + HOUR) == [
        RuleCount("r1", matched=2, replied=2, private=2, public=1, started=1),
        RuleCount("r2", matched=1, replied=0, private=0, public=0, started=0),
    ]
    assert journal.rule_counts(meta.PAGE_ID, NOW + HOUR, NOW + DAY) == [
        RuleCount("r1", matched=1, replied=0, private=1, public=0, started=0)], "since inclusive, until not"
    assert [(c.rule_id, c.matched) for c in journal.rule_counts(None, NOW - DAY, NOW + DAY)] == [
        ("r1", 3), ("r2", 1), ("r3", 1)]
    assert journal.rule_counts(meta.OTHER_PAGE_ID, NOW - DAY, NOW) == []


def test_the_counts_read_the_rules_by_time(url: str, journal: CommentJournal) -> None:
    if not url.startswith("sqlite:///"):
        pytest.skip("SQLite's plan (PostgreSQL plans by its statistics)")
    with journal._db.write() as conn:
        plan = [str(tuple(row)) for row in conn.execute(
            "EXPLAIN QUERY PLAN " + journal._db.queries["rule_counts"],
            {"page_id": None, "since": "2026", "until": "2027"}).fetchall()]
    assert any("feed_changes_rules_by_time" in step for step in plan), plan
