"""Learning from use on the answer journal's two databases (a real SQLite file and a PostgreSQL schema of the test's
own): a tapped «¿Quisiste decir…?» candidate and an agent's reply with an entry propose the customer's wording as a
question of that entry, counted by distinct people; accepted and rejected pairs are remembered and never proposed
again; the uses go with the journal's retention.

Would catch: a tap that proposes the candidate's title instead of what the person wrote, a tap on an entry the offer
did not hold proposing it, a person counted twice, an agent's repeated replies counted as more people, a rejected
pair coming back, uses kept past the retention."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from answers.model import AnswerInvalid, Handling
from answers.proposals import ProposalNotFound
from answers.service import Answers
from answers.store import AnswersStore, open_answers_store
from knowledge_matrix.embedders import HashingEmbedder
from tests.support.postgres import store_fixture, url_fixture

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=timezone.utc)
PAGE, OTHER_PAGE = "100000000000001", "100000000000002"

url = url_fixture("answers")
store = store_fixture(open_answers_store)


def later(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


@pytest.fixture
def answers(store: AnswersStore) -> Answers:
    return Answers(store, embedder=HashingEmbedder(256), secret="contract",
                   retention=timedelta(days=30))


def offer(answers: Answers, psid: str, question: str, at: datetime, candidates: tuple[str, ...] = ("envios", "horario"),
          page: str = PAGE) -> None:
    answers.record_question(page_id=page, psid=psid, question=question, handling=Handling.DID_YOU_MEAN, at=at,
                            candidates=candidates, score=0.6)


def tap(answers: Answers, psid: str, entry_id: str, at: datetime, page: str = PAGE) -> None:
    # The selected row holds the candidate's title as tapped, not the person's own words.
    answers.record_question(page_id=page, psid=psid, question="¿Hacen envíos a provincia?",
                            handling=Handling.SELECTED, at=at, entry_id=entry_id)


def miss(answers: Answers, psid: str, question: str, at: datetime, handling: Handling = Handling.HANDOFF) -> None:
    answers.record_question(page_id=PAGE, psid=psid, question=question, handling=handling, at=at, reason="no_match")


def test_a_tapped_candidate_proposes_what_the_person_wrote_counted_by_people(answers: Answers,
                                                                            store: AnswersStore) -> None:
    offer(answers, "1", "mandan a galapagos?", NOW)
    tap(answers, "1", "envios", later(2))
    offer(answers, "2", "¿Mandan a Galápagos?", later(5))  # the same wording, folded
    tap(answers, "2", "envios", later(6))
    offer(answers, "1", "mandan a galapagos", later(30))  # the same person again: one person
    tap(answers, "1", "envios", later(31))
    offer(answers, "3", "mandan a galapagos?", later(40), page=OTHER_PAGE)  # another page: another person
    tap(answers, "3", "envios", later(41), page=OTHER_PAGE)

    [proposal] = store.proposals("open")
    assert (proposal.wording, proposal.entry_id, proposal.status) == ("mandan a galapagos?", "envios", "open")
    assert (proposal.people, proposal.tapped, proposal.agent, proposal.sources) == (3, 4, 0, ("tapped",))
    assert (proposal.first_at, proposal.last_at) == (later(2), later(41))
    assert store.proposal(proposal.id) == proposal


def test_only_a_tap_on_one_of_the_offers_candidates_within_ten_minutes_proposes(answers: Answers,
                                                                               store: AnswersStore) -> None:
    offer(answers, "1", "cuanto cuesta el envio", NOW, candidates=("envios", "pagos"))
    offer(answers, "1", "y a que hora abren", later(1), candidates=("horario", "local"))
    tap(answers, "1", "horario", later(2))  # follows both offers; only the second held «horario»
    offer(answers, "2", "tienen garantia", later(10), candidates=("garantia",))
    tap(answers, "2", "garantia", later(21))  # too late
    offer(answers, "3", "", later(30), candidates=("horario",))  # nothing written (a payload): nothing to propose
    tap(answers, "3", "horario", later(31))
    offer(answers, "4", "mi cel es 0991234567 me llaman?", later(40), candidates=("contacto",))
    tap(answers, "4", "contacto", later(41))

    proposed = {(p.wording, p.entry_id) for p in store.proposals("open")}
    assert proposed == {("y a que hora abren", "horario"), ("mi cel es [número] me llaman?", "contacto")}


def test_an_agents_reply_proposes_the_persons_last_unanswered_question_once(answers: Answers,
                                                                           store: AnswersStore) -> None:
    miss(answers, "1", "tienen local en cuenca", NOW, Handling.NO_ANSWER)
    miss(answers, "1", "quiero hablar con alguien sobre el local de cuenca", later(1))
    key = answers.person_key(PAGE, "1")

    made = store.agent_answered(PAGE, key, "local", "ana", since=NOW - timedelta(hours=1), at=later(5))
    again = store.agent_answered(PAGE, key, "local", "luis", since=NOW - timedelta(hours=1), at=later(6))

    assert made is not None and again is not None and made.id == again.id
    assert (again.wording, again.entry_id, again.people, again.agent, again.tapped, again.sources) == (
        "quiero hablar con alguien sobre el local de cuenca", "local", 1, 1, 0, ("agent",))
    assert store.agent_answered(PAGE, key, "local", "ana", since=later(2), at=later(7)) is None, "none since"
    assert store.agent_answered(PAGE, answers.person_key(PAGE, "9"), "local", "ana", since=NOW,
                                at=later(7)) is None, "another person"
    with pytest.raises(AnswerInvalid):
        store.agent_answered(PAGE, key, " ", "ana", since=NOW, at=later(7))
    # A person who tapped a candidate and whose question an agent answered with the same entry: one person, two uses.
    offer(answers, "2", "tienen local en cuenca", later(10), candidates=("local",))
    tap(answers, "2", "local", later(11))
    miss(answers, "3", "tienen local en cuenca", later(12))
    store.agent_answered(PAGE, answers.person_key(PAGE, "3"), "local", "ana", since=later(10), at=later(13))
    cuenca = next(p for p in store.proposals("open") if p.wording == "tienen local en cuenca")
    assert (cuenca.people, cuenca.tapped, cuenca.agent, cuenca.sources) == (2, 1, 1, ("tapped", "agent"))


def test_accepted_and_rejected_pairs_are_remembered(answers: Answers, store: AnswersStore) -> None:
    offer(answers, "1", "hacen delivery", NOW, candidates=("envios",))
    tap(answers, "1", "envios", later(1))
    offer(answers, "1", "aceptan deuna", later(20), candidates=("pagos",))
    tap(answers, "1", "pagos", later(21))
    delivery, deuna = sorted(store.proposals("open"), key=lambda p: p.wording)

    assert store.reject_proposal(deuna.id, "editora", later(30))
    assert not store.reject_proposal(deuna.id, "editora", later(31)), "decided already"
    assert not store.accept_proposal(deuna.id, "editora", later(31), "d-1"), "a rejected one stays rejected"
    assert store.accept_proposal(delivery.id, "editora", later(32), "d-2")
    assert store.accept_proposal(delivery.id, "editor", later(33), "d-3"), "its draft was not published: again"
    assert not store.reject_proposal(delivery.id, "editora", later(34))
    with pytest.raises(ProposalNotFound):
        store.reject_proposal(999_999, "editora", later(34))
    with pytest.raises(ProposalNotFound):
        store.proposal(999_999)

    offer(answers, "2", "Aceptan DEUNA?", later(40), candidates=("pagos",))  # the rejected pair again
    tap(answers, "2", "pagos", later(41))
    offer(answers, "2", "hacen delivery", later(60), candidates=("envios",))  # the accepted pair again
    tap(answers, "2", "envios", later(61))

    assert store.proposals("open") == []
    [rejected] = store.proposals("rejected")
    assert (rejected.id, rejected.people, rejected.decided_by, rejected.decided_at) == (deuna.id, 1, "editora",
                                                                                        later(30))
    [accepted] = store.proposals("accepted")
    assert (accepted.id, accepted.draft_id, accepted.decided_by, accepted.people) == (delivery.id, "d-3", "editor", 1)
    with pytest.raises(AnswerInvalid):
        store.proposals("todo")


def test_uses_go_with_the_journals_retention_decisions_stay(answers: Answers, store: AnswersStore) -> None:
    offer(answers, "1", "hacen delivery", NOW, candidates=("envios",))
    tap(answers, "1", "envios", later(1))
    offer(answers, "1", "aceptan deuna", NOW, candidates=("pagos",))
    tap(answers, "1", "pagos", later(2))
    offer(answers, "2", "hacen delivery", NOW + timedelta(days=10), candidates=("envios",))
    tap(answers, "2", "envios", NOW + timedelta(days=10, minutes=1))
    deuna = next(p for p in store.proposals("open") if p.entry_id == "pagos")
    store.reject_proposal(deuna.id, "editora", later(5))

    answers.prune(NOW + timedelta(days=35))  # the first day is past the 30 days kept

    [delivery] = store.proposals("open")
    assert (delivery.wording, delivery.people, delivery.first_at) == ("hacen delivery", 1,
                                                                      NOW + timedelta(days=10, minutes=1))
    [rejected] = store.proposals("rejected")
    assert (rejected.id, rejected.people) == (deuna.id, 0), "decided: kept (never proposed again), without its uses"
    answers.prune(NOW + timedelta(days=45))
    assert store.proposals("open") == [] and [p.id for p in store.proposals("rejected")] == [deuna.id]
    offer(answers, "3", "aceptan deuna", NOW + timedelta(days=46), candidates=("pagos",))
    tap(answers, "3", "pagos", NOW + timedelta(days=46, minutes=1))
    assert store.proposals("open") == []
