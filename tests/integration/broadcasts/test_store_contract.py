"""One contract suite for `BroadcastStore` on its two databases: a real SQLite file and a PostgreSQL schema of the
test's own (`open_broadcasts_store(url)` picks by URL). Drafts are edited and deleted only as drafts; scheduling,
starting (once), cancelling and finishing move the state only from where they may; recipients are written once per
broadcast and person (a batch planned again keeps its first decision); outcomes and retries belong to one attempt;
counts group by state, reason and error code. PostgreSQL missing → its half is skipped."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from broadcasts.model import BroadcastDraft, BroadcastStatus, PartsOutcome, Recipient, RecipientState
from broadcasts.store import BroadcastStore, Outcome, PlanState, open_broadcasts_store
from tests.support.postgres import store_fixture, url_fixture

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=timezone.utc)
PAGE = "100000000000001"


def later(**span: float) -> datetime:
    return NOW + timedelta(**span)


url = url_fixture("broadcasts")
store = store_fixture(open_broadcasts_store)


def a_draft(name: str = "Promo", **audience: object) -> BroadcastDraft:
    return BroadcastDraft.from_dict({
        "page_id": PAGE, "name": name, "promotional": True,
        "content": {"text": "Hola «amigos»", "buttons": [{"title": "Menú", "start": {"entry_id": "menu"}}],
                    "quick_replies": [{"title": "Sí"}], "image": {"attachment_id": "123456"}},
        "audience": {"page_id": PAGE, "tags_any": ["VIP"], "fields": {"ciudad": "Quito"},
                     "last_interaction_after": "2026-11-01T00:00:00+00:00", **audience}})


def recipient(broadcast_id: int, psid: str, state: RecipientState = RecipientState.QUEUED, position: int = 0,
              reason: str | None = None) -> Recipient:
    return Recipient(broadcast_id=broadcast_id, page_id=PAGE, psid=psid, name=f"Nombre {psid}", state=state,
                     position=position, reason_code=reason)


def test_a_draft_round_trips_and_is_edited_or_deleted_only_as_a_draft(store: BroadcastStore) -> None:
    created = store.create(a_draft(), "ana", NOW)
    assert created.draft == a_draft() and created.status is BroadcastStatus.DRAFT
    assert (created.created_by, created.created_at, created.send_at, created.started_at) == ("ana", NOW, None, None)
    assert store.get(created.id) == created
    assert store.update_draft(created.id, a_draft("Otra"), later(minutes=1)) is True
    edited = store.get(created.id)
    assert edited is not None and edited.name == "Otra" and edited.updated_at == later(minutes=1)

    assert store.schedule(created.id, later(hours=1), later(minutes=2)) is True
    assert store.schedule(created.id, later(hours=2), later(minutes=2)) is False  # no longer a draft
    assert store.update_draft(created.id, a_draft("Tarde"), later(minutes=3)) is False
    assert store.delete_draft(created.id) is False
    other = store.create(a_draft("Borrar"), "ana", NOW)
    assert store.delete_draft(other.id) is True and store.get(other.id) is None
    assert store.get(999_999) is None


def test_the_list_is_newest_first_by_page_and_pages_by_id(store: BroadcastStore) -> None:
    ids = [store.create(a_draft(f"B{index}"), "ana", later(seconds=index)).id for index in range(5)]
    assert [b.id for b in store.list(None, 2, None)] == ids[::-1][:2]
    assert [b.id for b in store.list(None, 10, ids[2])] == [ids[1], ids[0]]
    assert store.list("999", 10, None) == []
    assert [b.id for b in store.list(PAGE, 10, None)] == ids[::-1]


def test_due_broadcasts_start_once_and_cancel_and_finish_move_only_from_where_they_may(
        store: BroadcastStore) -> None:
    due = store.create(a_draft("Ya"), "ana", NOW)
    later_one = store.create(a_draft("Luego"), "ana", NOW)
    store.schedule(due.id, NOW, NOW)
    store.schedule(later_one.id, later(hours=1), NOW)
    assert store.start_due(later(seconds=1)) == [due.id]
    assert store.start_due(later(seconds=2)) == []  # started once
    started = store.get(due.id)
    assert started is not None
    assert (started.status, started.started_at) == (BroadcastStatus.SENDING, later(seconds=1))
    assert store.ids_to_refresh(later(days=-7)) == [due.id]

    store.add_recipients([recipient(due.id, "u1")], NOW)
    assert store.finish_if_complete(due.id, later(minutes=1)) is False  # not planned to the end yet
    assert store.save_plan(due.id, PlanState(after=42, done=True, queued=1), 5, NOW) is False  # cursor moved on
    assert store.save_plan(due.id, PlanState(after=42, done=True, queued=1), 0, NOW) is True
    assert store.plan_state(due.id) == PlanState(42, True, 1)
    assert store.finish_if_complete(due.id, later(minutes=1)) is False  # u1 still queued
    store.set_outcomes(due.id, [Outcome("u1", 0, PartsOutcome(RecipientState.SENT, sent_at=later(seconds=5)))],
                       later(minutes=1))
    assert store.finish_if_complete(due.id, later(minutes=2)) is True
    done = store.get(due.id)
    assert done is not None and (done.status, done.finished_at) == (BroadcastStatus.DONE, later(minutes=2))
    assert store.cancel(due.id, "jefa", later(minutes=3)) is False
    # `since`: seven days before now; receipts are read for a broadcast finished after it.
    assert store.ids_to_refresh(later(minutes=1)) == [due.id]
    assert store.ids_to_refresh(later(minutes=3)) == []

    assert store.cancel(later_one.id, "jefa", later(minutes=3)) is True
    cancelled = store.get(later_one.id)
    assert cancelled is not None and (cancelled.status, cancelled.cancelled_by) == (BroadcastStatus.CANCELLED,
                                                                                    "jefa")
    assert store.save_plan(later_one.id, PlanState(7, False, 3), 0, NOW) is False  # not sending: the cursor stays
    assert store.plan_state(later_one.id) == PlanState(0, False, 0)


def test_recipients_are_written_once_and_outcomes_belong_to_their_attempt(store: BroadcastStore) -> None:
    broadcast = store.create(a_draft(), "ana", NOW)
    store.schedule(broadcast.id, NOW, NOW)
    assert store.start_due(NOW) == [broadcast.id]
    store.add_recipients([recipient(broadcast.id, "u1", position=0),
                          recipient(broadcast.id, "u2", RecipientState.SKIPPED, reason="never_wrote")], NOW)
    # The same batch planned again after a crash, decided otherwise: the first decision stays.
    store.add_recipients([recipient(broadcast.id, "u1", RecipientState.SKIPPED, reason="blocked"),
                          recipient(broadcast.id, "u3", position=1)], later(seconds=1))
    found = store.recipients_of(broadcast.id, ["u1", "u2", "u3", "nadie"])
    assert {psid: (r.state, r.position, r.reason_code) for psid, r in found.items()} == {
        "u1": (RecipientState.QUEUED, 0, None), "u2": (RecipientState.SKIPPED, 0, "never_wrote"),
        "u3": (RecipientState.QUEUED, 1, None)}
    store.set_outbox_ids(broadcast.id, [("u1", 0, [11, 12]), ("u3", 0, [13, 14])], NOW)
    assert store.recipients_of(broadcast.id, ["u1"])["u1"].outbox_ids == (11, 12)
    assert [r.psid for r in store.to_refresh(broadcast.id, 10, later(seconds=1))] == ["u1", "u3"]
    assert store.to_enqueue(broadcast.id, 10) == []  # both in the outbox

    store.set_outcomes(broadcast.id, [
        Outcome("u1", 0, PartsOutcome(RecipientState.FAILED, "person_unavailable", 551, sent_parts={0: 11})),
        Outcome("u3", 0, PartsOutcome(RecipientState.SENT, sent_at=later(seconds=2), delivered_at=later(seconds=3),
                                      sent_parts={0: 13, 1: 14}))],
        later(seconds=4))
    assert [r.psid for r in store.to_refresh(broadcast.id, 10, later(seconds=4))] == ["u3"]  # sent, not read yet
    assert store.to_refresh(broadcast.id, 10, later(seconds=3)) == []  # read since
    assert [(c.state, c.partial) for c in store.counts(broadcast.id) if c.state is RecipientState.FAILED] == [
        (RecipientState.FAILED, 1)]  # got the image, not the text
    assert store.requeue(broadcast.id, ["u1", "u2", "u3"], later(seconds=5)) == 1  # only the failed one
    again = store.recipients_of(broadcast.id, ["u1"])["u1"]
    assert (again.state, again.attempt, again.outbox_ids, again.error_code, dict(again.sent_parts)) == (
        RecipientState.QUEUED, 1, (), None, {0: 11})  # the image it got stays got
    assert [r.psid for r in store.to_enqueue(broadcast.id, 10)] == ["u1"]
    store.set_outcomes(broadcast.id, [Outcome("u1", 0, PartsOutcome(RecipientState.FAILED, "late", 551))],
                       later(seconds=6))
    assert store.recipients_of(broadcast.id, ["u1"])["u1"].state is RecipientState.QUEUED  # an old attempt's read
    store.set_outbox_ids(broadcast.id, [("u1", 0, [99])], NOW)
    assert store.recipients_of(broadcast.id, ["u1"])["u1"].outbox_ids == ()

    store.set_outcomes(broadcast.id, [Outcome("u3", 0, PartsOutcome(
        RecipientState.SENT, sent_at=later(seconds=2), delivered_at=later(seconds=3), read_at=later(seconds=9),
        sent_parts={0: 13, 1: 14}))], NOW)
    counts = {(c.state, c.reason_code, c.error_code): (c.recipients, c.delivered, c.read)
              for c in store.counts(broadcast.id)}
    assert counts == {(RecipientState.QUEUED, None, None): (1, 0, 0),
                      (RecipientState.SKIPPED, "never_wrote", None): (1, 0, 0),
                      (RecipientState.SENT, None, None): (1, 1, 1)}
    sent = store.recipients_of(broadcast.id, ["u3"])["u3"]
    assert (sent.sent_at, sent.delivered_at, sent.read_at) == (later(seconds=2), later(seconds=3), later(seconds=9))


def test_recipients_in_states_page_by_psid(store: BroadcastStore) -> None:
    broadcast = store.create(a_draft(), "ana", NOW)
    store.add_recipients([recipient(broadcast.id, f"u{index:02d}", RecipientState.SKIPPED, reason="never_wrote")
                          for index in range(7)] + [recipient(broadcast.id, "z")], NOW)
    first = store.recipients_in(broadcast.id, [RecipientState.SKIPPED], "", 3)
    assert [r.psid for r in first] == ["u00", "u01", "u02"]
    rest = store.recipients_in(broadcast.id, [RecipientState.SKIPPED, RecipientState.FAILED], first[-1].psid, 10)
    assert [r.psid for r in rest] == ["u03", "u04", "u05", "u06"]
    store.reopen(broadcast.id, NOW)  # a draft is not reopened
    found = store.get(broadcast.id)
    assert found is not None and found.status is BroadcastStatus.DRAFT


def test_recipients_read_with_nothing_new_go_to_the_back_of_the_refresh_queue(store: BroadcastStore) -> None:
    broadcast = store.create(a_draft(), "ana", NOW)
    store.add_recipients([recipient(broadcast.id, psid, position=n) for n, psid in enumerate(["a", "b", "c"])], NOW)
    assert [r.psid for r in store.to_refresh(broadcast.id, 2, NOW)] == ["a", "b"]
    store.touch_refreshed(broadcast.id, ["a", "b"], later(seconds=1))
    assert [r.psid for r in store.to_refresh(broadcast.id, 2, later(seconds=1))] == ["c", "a"]
    assert [r.psid for r in store.to_refresh(broadcast.id, 2, NOW)] == ["c"]  # a and b were read after NOW


def test_a_retry_holds_only_on_a_sending_or_done_broadcast_and_reopens_a_done_one(store: BroadcastStore) -> None:
    broadcast = store.create(a_draft(), "ana", NOW)
    store.add_recipients([recipient(broadcast.id, "u1")], NOW)
    store.set_outcomes(broadcast.id, [Outcome("u1", 0, PartsOutcome(RecipientState.FAILED, error_code=551))], NOW)
    assert store.requeue(broadcast.id, ["u1"], NOW) == 0  # a draft
    store.schedule(broadcast.id, NOW, NOW)
    store.start_due(NOW)
    store.save_plan(broadcast.id, PlanState(1, True, 1), 0, NOW)
    assert store.finish_if_complete(broadcast.id, later(seconds=1)) is True
    assert store.requeue(broadcast.id, ["u1"], later(seconds=2)) == 1
    reopened = store.get(broadcast.id)
    assert reopened is not None and (reopened.status, reopened.finished_at) == (BroadcastStatus.SENDING, None)
    assert store.cancel(broadcast.id, "jefa", later(seconds=3)) is True
    assert store.cancel_unenqueued(broadcast.id, later(seconds=4)) == 1  # queued, never reached the outbox
    assert store.recipients_of(broadcast.id, ["u1"])["u1"].reason_code == "broadcast_cancelled"
    assert store.has_queued(broadcast.id) is False
    assert store.requeue(broadcast.id, ["u1"], later(seconds=5)) == 0  # cancelled: nothing is retried


def test_one_runner_holds_a_broadcast_until_its_lease_runs_out(store: BroadcastStore) -> None:
    broadcast = store.create(a_draft(), "ana", NOW)
    assert store.take_lease(broadcast.id, "r1", NOW, later(seconds=60)) is True
    assert store.take_lease(broadcast.id, "r2", later(seconds=30), later(seconds=90)) is False
    assert store.take_lease(broadcast.id, "r1", later(seconds=30), later(seconds=90)) is True  # renewed
    assert store.take_lease(broadcast.id, "r2", later(seconds=89), later(seconds=149)) is False
    assert store.take_lease(broadcast.id, "r2", later(seconds=91), later(seconds=151)) is True  # r1 died


def test_page_slots_are_shared_and_never_start_in_the_past(store: BroadcastStore) -> None:
    assert store.reserve_slots(PAGE, 20, 10.0, NOW) == NOW
    assert store.reserve_slots(PAGE, 10, 10.0, NOW) == later(seconds=2)  # behind the first 20
    assert store.reserve_slots("200000000000002", 5, 10.0, NOW) == NOW  # another page has its own
    assert store.reserve_slots(PAGE, 10, 10.0, later(minutes=10)) == later(minutes=10)  # after downtime: from now
    assert store.reserve_slots(PAGE, 1, 10.0, later(minutes=10)) == later(minutes=10, seconds=1)
    assert store.reserve_slots(PAGE, 0, 10.0, NOW) == NOW  # nothing reserved


def test_the_reports_read_a_periods_broadcasts_by_start_and_their_counts_in_one_query(store: BroadcastStore) -> None:
    """started_between: by start time in [since, until), page filter, start order, limit; counts_of: what counts
    says for each broadcast, in one grouped read."""
    started = []
    for index, page in enumerate((PAGE, PAGE, "100000000000002", PAGE)):
        draft = BroadcastDraft.from_dict({**a_draft(f"B{index}").to_dict(), "page_id": page,
                                          "audience": {"page_id": page}})
        created = store.create(draft, "ana", NOW)
        store.schedule(created.id, later(hours=index), NOW)
        assert store.start_due(later(hours=index)) == [created.id]
        started.append(created.id)
    never_started = store.create(a_draft("Borrador"), "ana", NOW).id
    assert [b.id for b in store.started_between(None, NOW, later(hours=3), 10)] == started[:3]
    assert [b.id for b in store.started_between(PAGE, NOW, later(hours=4), 10)] == [started[0], started[1],
                                                                                    started[3]]
    assert [b.id for b in store.started_between(None, later(minutes=1), later(hours=9), 2)] == started[1:3]
    assert store.started_between(None, later(hours=-2), NOW, 10) == []  # until is exclusive, since inclusive

    store.add_recipients([recipient(started[0], "u1"), recipient(started[0], "u2", RecipientState.SKIPPED,
                                                                 reason="never_wrote"),
                          recipient(started[0], "u3", RecipientState.SKIPPED, reason="never_wrote")], NOW)
    store.add_recipients([recipient(started[1], "u1", RecipientState.SKIPPED, reason="blocked")], NOW)
    both = store.counts_of([started[0], started[1], started[2], never_started])
    assert set(both) == {started[0], started[1]}  # without recipients: absent
    for broadcast_id in (started[0], started[1]):
        assert sorted(both[broadcast_id], key=repr) == sorted(store.counts(broadcast_id), key=repr)
    assert store.counts_of([]) == {}
