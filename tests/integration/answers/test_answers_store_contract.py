"""One contract suite for the answer journal on its two databases: a real SQLite file and a PostgreSQL schema of the
test's own (`open_answers_store(url)` picks by URL), through the `Answers` façade with the deterministic test
embedder. PostgreSQL missing → its half is skipped (failed with REQUIRE_SERVICES=1)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from answers.model import AnswerInvalid, AnswerRecord, GroupNotFound, Handling
from answers.service import Answers
from answers.store import AnswersStore, NewGroup, open_answers_store
from knowledge_matrix.embedders import HashingEmbedder
from tests.support.postgres import store_fixture, url_fixture

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=timezone.utc)
PAGE, OTHER_PAGE = "100000000000001", "100000000000002"
DAY_BEFORE, DAY_AFTER = NOW - timedelta(days=1), NOW + timedelta(days=1)


def later(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


url = url_fixture("answers")
store = store_fixture(open_answers_store)


@pytest.fixture
def answers(store: AnswersStore) -> Answers:
    return Answers(store, embedder=HashingEmbedder(256), secret="contract")


def miss(answers: Answers, psid: str, question: str, at: datetime, page: str = PAGE,
         handling: Handling = Handling.NO_ANSWER) -> int:
    return answers.record_question(page_id=page, psid=psid, question=question, handling=handling, at=at,
                                   reason="no_match" if handling is Handling.NO_ANSWER else None)


def test_the_journal_counts_every_handling_and_the_entries_used(answers: Answers) -> None:
    answers.record_question(page_id=PAGE, psid="1", question="horario?", handling=Handling.MATRIX, at=NOW,
                            entry_id="horario", score=0.91, matrix_version="0003")
    answers.record_question(page_id=PAGE, psid="2", question="horarios", handling=Handling.MATRIX, at=later(1),
                            entry_id="horario", score=0.8)
    answers.record_question(page_id=OTHER_PAGE, psid="3", question="", handling=Handling.SELECTED, at=later(2),
                            entry_id="pagos")
    answers.record_question(page_id=PAGE, psid="4", question="cuanto?", handling=Handling.GPT, at=later(3))
    miss(answers, "5", "tienen parqueo?", later(4))
    miss(answers, "6", "hay parqueadero", later(5), handling=Handling.HANDOFF)

    counts = answers.counts_by_handling(None, DAY_BEFORE, DAY_AFTER)
    assert counts == {"matrix": 2, "selected": 1, "did_you_mean": 0, "gpt": 1, "no_answer": 1, "handoff": 1}
    assert answers.counts_by_handling(PAGE, DAY_BEFORE, DAY_AFTER)["selected"] == 0
    assert answers.counts_by_handling(None, later(3), DAY_AFTER)["matrix"] == 0, "since is inclusive, until not"
    assert answers.entry_use(None, DAY_BEFORE, DAY_AFTER) == {"horario": 2, "pagos": 1}
    assert answers.entry_use(OTHER_PAGE, DAY_BEFORE, DAY_AFTER) == {"pagos": 1}
    unanswered = answers.unanswered(PAGE, DAY_BEFORE, DAY_AFTER)
    assert [(q.question, q.handling, q.at) for q in unanswered] == [
        ("tienen parqueo?", Handling.NO_ANSWER, later(4)), ("hay parqueadero", Handling.HANDOFF, later(5))]
    assert unanswered[0].person_key == answers.person_key(PAGE, "5") and unanswered[0].person_key != "5"


def test_did_you_mean_is_a_miss_only_when_nobody_taps_within_ten_minutes(answers: Answers, store: AnswersStore) -> None:
    miss(answers, "1", "el envio cuanto es", NOW, handling=Handling.DID_YOU_MEAN)
    answers.record_question(page_id=PAGE, psid="1", question="", handling=Handling.SELECTED, at=later(9),
                            entry_id="envios")
    miss(answers, "2", "y la garantia", NOW, handling=Handling.DID_YOU_MEAN)
    answers.record_question(page_id=PAGE, psid="2", question="", handling=Handling.SELECTED, at=later(11),
                            entry_id="garantia")  # too late: the offer was not followed
    miss(answers, "3", "tienen local", later(20), handling=Handling.DID_YOU_MEAN)  # its 10 minutes not over yet
    answers.record_question(page_id=OTHER_PAGE, psid="3", question="", handling=Handling.SELECTED, at=later(21),
                            entry_id="local")  # another page: another person

    settled = [q.question for q in answers.unanswered(None, DAY_BEFORE, later(25))]
    assert settled == ["y la garantia"]
    assert [q.question for q in answers.unanswered(None, DAY_BEFORE, later(31))] == ["y la garantia", "tienen local"]
    assert [q.question for q in store.ungrouped(later(25))] == ["y la garantia"]


def test_regroup_groups_by_meaning_ranks_by_people_and_keeps_five_examples(answers: Answers) -> None:
    for number, question in enumerate(["tienen parqueadero?", "tienen parqueadero", "¿Tienen parqueadero?",
                                       "hay parqueadero para clientes", "tienen parqueadero para carros",
                                       "tienen parqueadero gratis", "parqueadero tienen?"]):
        miss(answers, f"p{number % 4}", question, later(number))
    for number, question in enumerate(["aceptan tarjeta de credito?", "aceptan tarjeta de credito"]):
        miss(answers, f"t{number}", question, later(10 + number))
    miss(answers, "t0", "aceptan tarjeta de credito", later(12), page=OTHER_PAGE)

    result = answers.regroup(later(30))

    assert (result.grouped, result.joined, result.embedder) == (10, 0, "hashing:256")
    groups = answers.groups("open")
    parking, cards = groups[0], groups[1]
    assert (parking.people, parking.questions, cards.people, cards.questions) == (4, 7, 3, 3)
    assert "parqueadero" in parking.label and "tarjeta" in cards.label
    assert len(parking.examples) == 5, "five distinct wordings at most"
    assert parking.examples[0].question.lower().strip("¿?") == "tienen parqueadero", "the most asked wording first"
    assert (parking.first_at, parking.last_at) == (NOW, later(6))
    assert cards.page_ids == (PAGE, OTHER_PAGE)
    assert [g.id for g in answers.groups("open", page_id=OTHER_PAGE)] == [cards.id]
    assert answers.groups("open", page_id=OTHER_PAGE)[0].questions == 1, "counted over the page asked for"
    assert answers.regroup(later(31)).grouped == 0, "a question is grouped once"
    assert [g.id for g in answers.groups("open", limit=1, offset=1)] == [cards.id]


def test_a_resolved_group_counts_what_comes_back(answers: Answers) -> None:
    miss(answers, "1", "hacen envios a galapagos", NOW)
    miss(answers, "2", "hacen envios a galapagos?", later(1))
    answers.regroup(later(2))
    [group] = answers.groups("open")
    with pytest.raises(AnswerInvalid):
        answers.resolve(group.id, "envios", "published", "editora", later(3))  # type: ignore[arg-type]

    resolved = answers.resolve(group.id, "envios", "added_question", "editora", later(3))

    assert (resolved.status, resolved.resolved_entry_id, resolved.resolved_by, resolved.resolved_action,
            resolved.resolved_at, resolved.returned) == ("resolved", "envios", "editora", "added_question",
                                                          later(3), 0)
    assert answers.groups("open") == [] and [g.id for g in answers.groups("resolved")] == [group.id]
    miss(answers, "3", "hacen envios a galapagos", later(60))
    result = answers.regroup(later(61))
    assert (result.joined, result.created) == (1, 0), "a question asked again joins its resolved group"
    assert answers.returned_after(group.id) == 1
    assert answers.group(group.id).returned == 1 and answers.group(group.id).people == 3
    assert answers.groups("open") == []


def test_a_dismissed_group_leaves_the_list_and_unknown_groups_are_refused(answers: Answers) -> None:
    miss(answers, "1", "hola buenas", NOW)
    answers.regroup(later(1))
    [group] = answers.groups("open")
    dismissed = answers.dismiss(group.id, "editora", later(2))
    assert (dismissed.status, dismissed.resolved_action, dismissed.returned) == ("dismissed", "dismissed", 0)
    assert answers.groups("open") == [] and [g.id for g in answers.groups("all")] == [group.id]
    assert answers.returned_after(group.id) == 0
    with pytest.raises(GroupNotFound):
        answers.group(999_999)
    with pytest.raises(GroupNotFound):
        answers.resolve(999_999, "x", "new_entry", "editora", NOW)
    with pytest.raises(GroupNotFound):
        answers.returned_after(999_999)
    with pytest.raises(AnswerInvalid):
        answers.groups("abiertos")


def test_save_groups_is_one_transaction_and_keeps_the_mean_vector(store: AnswersStore) -> None:
    record = AnswerRecord(PAGE, "k1", "tienen parqueo", Handling.NO_ANSWER, NOW)
    first, second = store.record(record), store.record(record)
    mean = np.array([0.6, 0.0, 0.0, 0.0], dtype=np.float32)
    [group_id] = store.save_groups([NewGroup("tienen parqueo", (first,), mean)], {}, {}, "hashing:4", NOW)
    store.save_groups([], {group_id: (second,)}, {group_id: mean * 0.5}, "hashing:4", later(1))
    [centroid] = store.centroids()
    assert (centroid.group_id, centroid.embedder, centroid.size) == (group_id, "hashing:4", 2)
    assert centroid.vector is not None and np.allclose(centroid.vector, mean * 0.5)
    assert store.group_wording(group_id) == ["tienen parqueo"]
    assert store.ungrouped(later(30)) == []


def test_the_reports_count_open_groups_over_the_period_only(store: AnswersStore) -> None:
    """open_groups_asked: people and times in [since, until) only (not the group's whole history), open groups only,
    one page or all, most people first, at most `limit` (review 21, finding 4)."""
    def ask(person: str, at: datetime, page: str = PAGE) -> int:
        return store.record(AnswerRecord(page, person, "tienen parqueo", Handling.NO_ANSWER, at))

    mean = np.array([0.6, 0.0, 0.0, 0.0], dtype=np.float32)
    march = [ask("k1", NOW), ask("k2", later(10)), ask("k1", later(20)), ask("k3", later(30), OTHER_PAGE)]
    june = [ask(f"j{n}", NOW + timedelta(days=90)) for n in range(5)]  # asked again later, by more people
    horario = [ask("k9", later(40))]
    gone = [ask("k8", later(50))]
    parking, hours, dismissed = store.save_groups(
        [NewGroup("tienen parqueo", (*march, *june), mean), NewGroup("horario feriados", tuple(horario), mean),
         NewGroup("spam", tuple(gone), mean)], {}, {}, "hashing:4", later(60))
    store.resolve_group(dismissed, None, "dismissed", "editora", later(61))
    period = (NOW, NOW + timedelta(days=1))
    found = store.open_groups_asked(None, *period, 20)
    assert [(g.id, g.label, g.people, g.questions, g.last_at) for g in found] == [
        (parking, "tienen parqueo", 3, 4, later(30)), (hours, "horario feriados", 1, 1, later(40))]
    assert [(g.id, g.people, g.questions, g.last_at) for g in store.open_groups_asked(PAGE, *period, 20)] == [
        (parking, 2, 3, later(20)), (hours, 1, 1, later(40))]
    assert [g.id for g in store.open_groups_asked(None, *period, 1)] == [parking]
    assert store.open_groups_asked(None, NOW - timedelta(days=1), NOW, 20) == []  # until is exclusive
    assert [(g.people, g.questions) for g in store.open_groups_asked(None, NOW + timedelta(days=80),
                                                                      NOW + timedelta(days=100), 20)] == [(5, 5)]


# --- retention (review 14, finding 8) -----------------------------------------------------------------------------


def test_prune_deletes_whole_days_past_the_retention_and_keeps_their_counts(answers: Answers,
                                                                             store: AnswersStore) -> None:
    old = NOW - timedelta(days=200)
    answers.record_question(page_id=PAGE, psid="1", question="horario?", handling=Handling.MATRIX, at=old,
                            entry_id="horario", score=0.9)
    answers.record_question(page_id=PAGE, psid="2", question="horario", handling=Handling.MATRIX,
                            at=old + timedelta(hours=3), entry_id="horario", score=0.8)
    answers.record_question(page_id=OTHER_PAGE, psid="3", question="", handling=Handling.SELECTED,
                            at=old + timedelta(days=1), entry_id="pagos")
    miss(answers, "4", "mi cel 0991234567, tienen parqueo?", old + timedelta(days=2))
    edge = NOW - timedelta(days=180)  # the day the retention starts in: kept whole
    miss(answers, "5", "hay parqueadero?", edge)
    miss(answers, "6", "tienen parqueo?", later(1))
    answers.retention = timedelta(days=180)
    everything = (NOW - timedelta(days=400), DAY_AFTER)
    before = answers.counts_by_handling(None, *everything), answers.entry_use(None, *everything)

    assert answers.prune(NOW) == 4
    assert answers.prune(NOW) == 0, "nothing left to prune"
    assert [q.question for q in answers.unanswered(None, *everything)] == ["hay parqueadero?", "tienen parqueo?"]
    assert (answers.counts_by_handling(None, *everything), answers.entry_use(None, *everything)) == before, \
        "the counts by handling and by entry outlive the questions"
    assert answers.counts_by_handling(PAGE, *everything)["selected"] == 0
    assert answers.entry_use(OTHER_PAGE, *everything) == {"pagos": 1}
    first_day = old.replace(hour=0, minute=0, second=0, microsecond=0)
    assert answers.counts_by_handling(PAGE, first_day, first_day + timedelta(days=1))["matrix"] == 2
    assert answers.counts_by_handling(None, first_day + timedelta(days=1), DAY_AFTER)["matrix"] == 0


def test_prune_works_a_bounded_number_of_days_per_call(store: AnswersStore) -> None:
    for day in range(5):
        store.record(AnswerRecord(page_id=PAGE, person_key="k", question="q", handling=Handling.GPT,
                                  at=NOW - timedelta(days=300 + day)))
    assert store.prune(NOW - timedelta(days=100), max_days=2) == 2
    assert store.prune(NOW - timedelta(days=100), max_days=10) == 3


def test_regroup_prunes_first_and_groups_only_what_is_kept(answers: Answers) -> None:
    answers.retention = timedelta(days=30)
    miss(answers, "1", "tienen parqueadero?", NOW - timedelta(days=40))
    miss(answers, "2", "hay parqueadero?", NOW - timedelta(hours=1))
    result = answers.regroup(NOW)
    assert (result.pruned, result.grouped) == (1, 1)
    [group] = answers.groups("open")
    assert (group.questions, group.people) == (1, 1)


def test_on_postgresql_each_statement_has_a_short_timeout(url: str, store: AnswersStore) -> None:
    if not url.startswith("postgresql"):
        pytest.skip("SQLite has no statement timeout (its writes wait at most busy_timeout)")
    rows = store._db.read("oldest_answer", {})  # a connection made through the store's URL
    assert rows == [{"at": None}]
    with store._db.write() as session:
        assert session.execute("SHOW statement_timeout").fetchone()["statement_timeout"] == "5s"
