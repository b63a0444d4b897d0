"""One contract suite for `BroadcastStore` on its two databases: a real SQLite file and a PostgreSQL schema of the
test's own (`open_broadcasts_store(url)` picks by URL). Drafts are edited and deleted only as drafts; scheduling,
starting (once), cancelling and finishing move the state only from where they may; recipients are written once per
broadcast and person (a batch planned again keeps its first decision); outcomes and retries belong to one attempt;
counts group by state, reason and error code. PostgreSQL missing → its half is skipped."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from broadcasts.model import BroadcastDraft, BroadcastStatus, Recipient, RecipientState
from broadcasts.store import BroadcastStore, Outcome, PlanState, open_broadcasts_store
from tests.support.postgres import STORE_BACKENDS, store_url

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=timezone.utc)
PAGE = "100000000000001"


def later(**span: float) -> datetime:
    return NOW + timedelta(**span)


@pytest.fixture(params=STORE_BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BroadcastStore]:
    with store_url(request.param, tmp_path, "broadcasts") as url:
        opened = open_broadcasts_store(url)
        yield opened
        opened.close()


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
    store.save_plan(due.id, PlanState(after=42, done=True, queued=1), NOW)
    assert store.plan_state(due.id) == PlanState(42, True, 1)
    assert store.finish_if_complete(due.id, later(minutes=1)) is False  # u1 still queued
    store.set_outcomes(due.id, [Outcome("u1", 0, RecipientState.SENT, sent_at=later(seconds=5))],
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
    store.save_plan(later_one.id, PlanState(7, False, 3), NOW)  # not sending: the cursor stays
    assert store.plan_state(later_one.id) == PlanState(0, False, 0)


def test_recipients_are_written_once_and_outcomes_belong_to_their_attempt(store: BroadcastStore) -> None:
    broadcast = store.create(a_draft(), "ana", NOW)
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
    assert [r.psid for r in store.to_refresh(broadcast.id, 10)] == ["u1", "u3"]

    store.set_outcomes(broadcast.id, [
        Outcome("u1", 0, RecipientState.FAILED, "person_unavailable", 551),
        Outcome("u3", 0, RecipientState.SENT, sent_at=later(seconds=2), delivered_at=later(seconds=3))],
        later(seconds=4))
    assert [r.psid for r in store.to_refresh(broadcast.id, 10)] == ["u3"]  # sent, not read yet
    store.requeue(broadcast.id, [("u1", 1, 2)], later(seconds=5))
    again = store.recipients_of(broadcast.id, ["u1"])["u1"]
    assert (again.state, again.attempt, again.position, again.outbox_ids, again.error_code) == (
        RecipientState.QUEUED, 1, 2, (), None)
    assert store.plan_state(broadcast.id).queued == 1
    store.set_outcomes(broadcast.id, [Outcome("u1", 0, RecipientState.FAILED, "late", 551)], later(seconds=6))
    assert store.recipients_of(broadcast.id, ["u1"])["u1"].state is RecipientState.QUEUED  # an old attempt's read
    store.set_outbox_ids(broadcast.id, [("u1", 0, [99])], NOW)
    assert store.recipients_of(broadcast.id, ["u1"])["u1"].outbox_ids == ()

    store.set_outcomes(broadcast.id, [Outcome("u3", 0, RecipientState.SENT, sent_at=later(seconds=2),
                                              delivered_at=later(seconds=3), read_at=later(seconds=9))], NOW)
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
    assert [r.psid for r in store.to_refresh(broadcast.id, 2)] == ["a", "b"]
    store.touch_refreshed(broadcast.id, ["a", "b"], later(seconds=1))
    assert [r.psid for r in store.to_refresh(broadcast.id, 2)] == ["c", "a"]
