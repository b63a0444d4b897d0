"""The answer journal's `latest_handling` (issue 14, CSAT after the bot resolved a conversation): how a person's
latest question on a page since a time was handled, read by their pseudonym (`person_key`) on answers_by_person. On
a real SQLite file and a PostgreSQL schema of the test's own (PostgreSQL missing → skipped, failed with
REQUIRE_SERVICES=1).

Would catch: the oldest question read instead of the latest, another person's or another page's question, a question
before `since`, a tie at one time read in insertion order the wrong way, the service keying the person otherwise than
`record_question` does."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from answers.model import AnswerRecord, Handling
from answers.service import Answers
from answers.store import AnswersStore, open_answers_store
from tests.support.postgres import store_fixture, url_fixture

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=timezone.utc)
PAGE, OTHER_PAGE = "100000000000001", "100000000000002"

url = url_fixture("answers")
store = store_fixture(open_answers_store)


def later(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


def record(store: AnswersStore, handling: Handling, at: datetime, person_key: str = "k1",
           page_id: str = PAGE) -> None:
    store.record(AnswerRecord(page_id=page_id, person_key=person_key, question="q", handling=handling, at=at))


def test_the_latest_question_of_the_person_on_the_page_since_a_time(store: AnswersStore) -> None:
    record(store, Handling.NO_ANSWER, later(0))
    record(store, Handling.MATRIX, later(5))
    record(store, Handling.HANDOFF, later(10), person_key="k2")
    record(store, Handling.NO_ANSWER, later(20), page_id=OTHER_PAGE)

    assert store.latest_handling(PAGE, "k1", NOW) is Handling.MATRIX
    assert store.latest_handling(PAGE, "k2", NOW) is Handling.HANDOFF
    assert store.latest_handling(OTHER_PAGE, "k1", NOW) is Handling.NO_ANSWER
    assert store.latest_handling(PAGE, "k1", later(5)) is Handling.MATRIX, "since is inclusive"
    assert store.latest_handling(PAGE, "k1", later(6)) is None
    assert store.latest_handling(PAGE, "k3", NOW) is None


def test_two_questions_at_one_time_read_the_one_journaled_last(store: AnswersStore) -> None:
    record(store, Handling.DID_YOU_MEAN, later(1))
    record(store, Handling.SELECTED, later(1))
    assert store.latest_handling(PAGE, "k1", NOW) is Handling.SELECTED


def test_the_service_reads_by_the_same_pseudonym_it_journals_with(store: AnswersStore) -> None:
    answers = Answers(store, secret="s3cret")
    answers.record_question(page_id=PAGE, psid="2000000000000001", question="¿precio?", handling=Handling.GPT,
                            at=later(1))
    assert answers.latest_handling(PAGE, "2000000000000001", NOW) is Handling.GPT
    assert answers.latest_handling(PAGE, "2000000000000002", NOW) is None
    assert Answers(store, secret="other").latest_handling(PAGE, "2000000000000001", NOW) is None
