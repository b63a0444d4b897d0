"""The paraphrase store (knowledge_matrix/paraphrase_store.py) on SQLite and PostgreSQL: one contract.

Would catch: a wording proposed twice for an entry (or again after it was rejected), a filtered proposal that can be
accepted, a decision changed after the proposal went into a draft, a job that cannot end or a stale one left running,
times that come back naive or shifted."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from knowledge_matrix.paraphrase_store import NewParaphrase, ParaphraseStore, open_paraphrase_store
from tests.support.postgres import store_fixture, url_fixture

url = url_fixture("paraphrases")
store = store_fixture(open_paraphrase_store)
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)


def proposal(entry_id: str, text: str, status: str = "proposed", **why: str) -> NewParaphrase:
    return NewParaphrase(entry_id, text, text.casefold(), status, **why)  # type: ignore[arg-type]


def test_a_job_moves_and_ends(store: ParaphraseStore) -> None:
    assert store.schema_version == 1 and store.running_job() is None
    job = store.start_job("0003", "ana", 40, T0)
    assert (job.status, job.total_entries, job.percent, job.created_at) == ("running", 40, 0, T0)
    assert store.running_job() == job
    store.record_progress(job.id, done_entries=10, proposed=7, filtered=3, tokens=1234, now=T0 + timedelta(seconds=5))
    moved = store.job(job.id)
    assert moved is not None and (moved.done_entries, moved.proposed, moved.filtered, moved.tokens, moved.percent) \
        == (10, 7, 3, 1234, 25)
    assert store.finish_job(job.id, T0 + timedelta(seconds=9), failed=True, error_code="timeout", error_es="No.")
    assert not store.finish_job(job.id, T0 + timedelta(seconds=10))  # ended once
    ended = store.job(job.id)
    assert ended is not None and (ended.status, ended.error_code, ended.error_es, ended.percent) == \
        ("failed", "timeout", "No.", 100)
    assert ended.finished_at == T0 + timedelta(seconds=9) and store.running_job() is None
    assert [j.id for j in store.latest_jobs()] == [job.id] and store.job(job.id + 1) is None


def test_progress_written_out_of_order_never_goes_back(store: ParaphraseStore) -> None:
    """Two batches finish side by side and the second's progress lands first (the editors' loop once showed a done
    job at 2 of 3 entries): what was counted stays counted."""
    job = store.start_job("0001", "ana", 3, T0)
    store.record_progress(job.id, done_entries=3, proposed=5, filtered=1, tokens=900, now=T0 + timedelta(seconds=2))
    store.record_progress(job.id, done_entries=2, proposed=4, filtered=0, tokens=600, now=T0 + timedelta(seconds=3))
    moved = store.job(job.id)
    assert moved is not None and (moved.done_entries, moved.proposed, moved.filtered, moved.tokens) == (3, 5, 1, 900)
    assert moved.updated_at == T0 + timedelta(seconds=3), "the job still shows it moved"


def test_a_stale_running_job_is_ended_as_interrupted(store: ParaphraseStore) -> None:
    old = store.start_job("0001", "ana", 5, T0)
    fresh = store.start_job("0001", "ana", 5, T0 + timedelta(minutes=10))
    assert store.end_stale_jobs(T0 + timedelta(minutes=5), T0 + timedelta(minutes=11), "Se interrumpió.") == 1
    assert store.job(old.id).status == "failed" and store.job(old.id).error_code == "interrupted"  # type: ignore[union-attr]
    assert store.job(fresh.id).status == "running"  # type: ignore[union-attr]


def test_one_wording_per_entry_ever_and_the_decisions(store: ParaphraseStore) -> None:
    job = store.start_job("0001", "ana", 2, T0)
    kept = store.add(job.id, "0001", [
        proposal("horario", "oe a q hora abren"), proposal("horario", "oe a q hora abren"),
        proposal("envios", "oe a q hora abren"),
        proposal("horario", "hacen envios", "filtered", reason_code="routes_elsewhere", reason_es="Otra.",
                 other_entry_id="envios")], T0)
    assert [(k.entry_id, k.status) for k in kept] == [("horario", "proposed"), ("envios", "proposed"),
                                                       ("horario", "filtered")]
    waiting = store.paraphrases("proposed")
    assert [(p.entry_id, p.text) for p in waiting] == [("envios", "oe a q hora abren"),
                                                        ("horario", "oe a q hora abren")]
    horario = store.paraphrases("proposed", entry_id="horario")[0]
    filtered = store.paraphrases("filtered")[0]
    assert (filtered.reason_es, filtered.other_entry_id, filtered.created_at) == ("Otra.", "envios", T0)

    assert store.decide(horario.id, "rejected", "ana", T0) and not store.decide(filtered.id, "accepted", "ana", T0)
    assert store.add(job.id, "0001", [proposal("horario", "oe a q hora abren")], T0) == []  # rejected stays so
    assert store.decide_entry("envios", "accepted", "ana", T0) == 1
    assert store.counts() == {"proposed": 0, "accepted": 1, "rejected": 1, "filtered": 1}
    accepted = store.accepted_undrafted()
    assert [p.entry_id for p in accepted] == ["envios"] and accepted[0].decided_by == "ana"
    assert store.mark_drafted([accepted[0].id], "abcdef012345") == 1
    assert store.accepted_undrafted() == [] and not store.decide(accepted[0].id, "rejected", "ana", T0)
    assert store.paraphrase(accepted[0].id).draft_id == "abcdef012345"  # type: ignore[union-attr]
