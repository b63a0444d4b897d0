"""The one contract suite of the ingest journal (`open_ingest_store`): the same tests against SQLite and PostgreSQL.

Claims: several Rasa instances share one journal; a conversation is processed by one of them at a time under a
lease (`claim_pending`, `renew_claims`, `release_claim`). `now` is always passed in: no sleeping.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from connectors.ingest import (
    DONE,
    FAILED,
    IGNORED,
    PENDING,
    RECORDED,
    ROLE_FEEDER,
    ROLE_WEBHOOK,
    IngestJournal,
    open_ingest_store,
)
from meta.events import InboundEvent, parse_webhook
from tests.support import meta_payloads as meta

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
LEASE = timedelta(seconds=30)
DAY = timedelta(days=1)
USER_A, USER_B, USER_C = "7000000000000001", "7000000000000002", "7000000000000003"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def events_of(*items: dict[str, Any], standby: bool = False, page: str = meta.PAGE_ID) -> list[InboundEvent]:
    return parse_webhook(meta.webhook(meta.entry(list(items), page=page, standby=standby)))


def message(mid: str, user: str = USER_A) -> dict[str, Any]:
    return meta.text_message(mid=mid, text=mid, sender=user)


def key(user: str, page: str = meta.PAGE_ID) -> str:
    return f"{page}:{user}"


def mids(stored: list[Any]) -> list[str | None]:
    return [event.event.mid for event in stored]


# --- record, dedup, pending ------------------------------------------------------------------------


def test_record_returns_the_new_events_in_order_with_their_statuses(store: IngestJournal) -> None:
    events = events_of(message("m_1"), meta.read(meta.T0), meta.postback("m_3", "Menú", "/menu"))

    fresh = store.record(events)

    assert [stored.event for stored in fresh] == events
    assert [stored.status for stored in fresh] == [PENDING, RECORDED, PENDING]
    assert fresh[0].id < fresh[1].id < fresh[2].id
    assert store.counts_by_status() == {PENDING: 2, RECORDED: 1}


def test_a_redelivery_is_recorded_once(store: IngestJournal) -> None:
    body = meta.webhook(meta.entry([message("m_1"), meta.delivery(["m_x"], meta.T0)]))
    store.record(parse_webhook(body))

    assert store.record(parse_webhook(json.loads(json.dumps(body)))) == []
    assert [stored.event.mid for stored in store.record(events_of(message("m_1"), message("m_2")))] == ["m_2"]
    assert store.record(events_of(message("m_3"), message("m_3"))) != []
    assert store.counts_by_status() == {PENDING: 3, RECORDED: 1}


def test_own_echoes_are_ignored_and_person_echoes_pending(store: IngestJournal) -> None:
    own, person = store.record(
        events_of(
            meta.echo("m_own", "respuesta del bot", app_id=int(meta.OUR_APP_ID)),
            meta.echo("m_inbox", "Soy Ana", app_id=meta.PAGE_INBOX_APP_ID_NUMBER),
        ),
        own_app_id=meta.OUR_APP_ID,
    )

    assert (own.status, person.status) == (IGNORED, PENDING)


def test_record_async_commits_concurrent_deliveries_together(store: IngestJournal) -> None:
    async def burst() -> list[list[Any]]:
        return await asyncio.gather(
            *(store.record_async(events_of(message(f"m_{n}", user=USER_A if n % 2 else USER_B))) for n in range(20)),
            store.record_async(events_of(message("m_3", user=USER_A))),  # a redelivery inside the burst
        )

    results = asyncio.run(burst())

    assert [len(fresh) for fresh in results[:20]] == [1] * 20 and results[20] == []
    assert sorted(str(stored.event.mid) for stored in store.pending()) == sorted(f"m_{n}" for n in range(20))


def test_pending_survives_a_restart_in_insertion_order(open_store: Callable[[], IngestJournal]) -> None:
    first = open_store()
    first.record(events_of(message("m_1"), meta.read(meta.T0), message("m_2", user=USER_B), message("m_3")))
    first.close()

    pending = open_store().pending()

    assert mids(pending) == ["m_1", "m_2", "m_3"]
    assert [stored.id for stored in pending] == sorted(stored.id for stored in pending)
    assert pending[1].event.user_id == USER_B and pending[1].event.user_text() == "m_2"


def test_pending_ids_are_the_pending_events_oldest_first(store: IngestJournal) -> None:
    first, _read, second, third = store.record(
        events_of(message("m_1"), meta.read(meta.T0), message("m_2", user=USER_B), message("m_3"))
    )
    store.finish(second.id, DONE)

    assert store.pending_ids() == [first.id, third.id] == [stored.id for stored in store.pending()]


def test_the_webhook_and_a_feeder_share_one_journal_in_their_roles(journal_url: str) -> None:
    """The webhook process records (`ROLE_WEBHOOK`), a Rasa instance claims and finishes (`ROLE_FEEDER`); each sees
    what the other committed, and what the feeder itself records is kept as well."""
    webhook = open_ingest_store(journal_url, role=ROLE_WEBHOOK)
    feeder = open_ingest_store(journal_url, role=ROLE_FEEDER)
    try:
        one, two = webhook.record(events_of(message("m_1"), message("m_2", user=USER_B)))
        claimed = feeder.claim_pending("rasa", at(0), LEASE)
        feeder.finish(one.id, DONE)
        feeder.release_claim("rasa", key(USER_A))
        [own] = feeder.record(events_of(message("m_3", user=USER_C)))

        assert [stored.id for stored in claimed] == [one.id, two.id]
        assert webhook.pending_ids() == [two.id, own.id]
        assert set(webhook.claims()) == {key(USER_B)}
        assert webhook.counts_by_status() == {DONE: 1, PENDING: 2}
    finally:
        webhook.close()
        feeder.close()
    with pytest.raises(ValueError, match="role"):
        open_ingest_store(journal_url, role="reader")


def test_finish_attempts_and_reverted_turns(store: IngestJournal) -> None:
    first, second, third = store.record(events_of(message("m_1"), message("m_2"), message("m_3")))

    assert store.note_attempt_failed(second.id, "the action server answered 502") == 1
    assert store.note_turn_reverted(second.id, "action_knowledge_answer failed") == (2, 1)
    assert store.reverted_turns(second.id) == 1 and store.reverted_turns(first.id) == 0
    store.finish(first.id, DONE)
    store.finish(third.id, FAILED, "no Rasa", counted=False)

    [still] = store.pending()
    assert still.id == second.id and still.attempts == 2
    assert store.counts_by_status() == {DONE: 1, FAILED: 1, PENDING: 1}
    assert store.note_attempt_failed(999_999, "gone") == 0 and store.reverted_turns(999_999) == 0


def test_events_for_page_for_user_and_the_send_log(store: IngestJournal) -> None:
    store.record(events_of(message("m_1"), message("m_2", user=USER_B)))
    store.record(events_of(message("m_3"), page="100000000000009"))
    store.log_send(meta.PAGE_ID, USER_A, {"text": "hola"}, "sent", message_id="m_out")
    store.log_send(meta.PAGE_ID, USER_B, {"text": "¿sí?"}, "failed", error_code=551, error_message="unavailable")

    assert [json.loads(row[2])["item"]["message"]["mid"] for row in store.events_for(meta.PAGE_ID, USER_A)] == ["m_1"]
    assert store.page_for_user(USER_A) == "100000000000009" and store.page_for_user("nobody") is None
    assert store.send_failures() == [(meta.PAGE_ID, USER_B, 551, "unavailable")]


# --- journal flags ---------------------------------------------------------------------------------


def test_window_and_notice_flags_until_applied(store: IngestJournal) -> None:
    reaction, standby = store.record(events_of(meta.reaction("m_x"))) + store.record(
        events_of(message("m_sb"), standby=True)
    )

    assert (reaction.window_pending, reaction.notice_pending) == (True, False)
    assert (standby.window_pending, standby.notice_pending) == (True, True)
    assert [stored.id for stored in store.journaled()] == [reaction.id, standby.id]
    assert [stored.id for stored in store.windows_pending()] == [reaction.id, standby.id]

    store.window_applied(reaction.id)
    store.window_applied(standby.id)
    assert store.journal_state(standby.id) == (False, True)
    assert [stored.id for stored in store.journaled()] == [standby.id] and store.windows_pending() == []
    store.notice_applied(standby.id)
    assert store.journaled() == [] and store.journal_state(standby.id) == (False, False)
    assert store.journal_state(999_999) == (False, False)


def test_a_journaled_row_is_taken_by_one_caller_and_can_be_put_back(
    store: IngestJournal, open_store: Callable[[], IngestJournal]
) -> None:
    """Two Rasa instances read the same journaled row (`journaled()`): `take_journaled` gives each flag to one of
    them; a failed apply puts it back for a later round."""
    other = open_store()  # a second instance: its own connection
    reaction, standby = store.record(events_of(meta.reaction("m_tk"))) + store.record(
        events_of(message("m_tk_sb"), standby=True)
    )
    assert store.take_journaled(standby.id) == (True, True)
    assert other.take_journaled(standby.id) == (False, False), "already taken"
    assert [s.id for s in store.journaled()] == [reaction.id]
    store.restore_journaled(standby.id, window=False, notice=True)  # the app was down
    assert other.journal_state(standby.id) == (False, True)
    assert other.take_journaled(standby.id) == (False, True) and store.take_journaled(standby.id) == (False, False)
    assert other.take_journaled(reaction.id) == (True, False)
    assert store.journaled() == [] and store.take_journaled(999_999) == (False, False)


def test_instances_taking_journaled_rows_at_once_each_get_a_row_once(
    open_store: Callable[[], IngestJournal]
) -> None:
    """Three instances (threads, each with its own connection) take the same rows at the same moment: every flag
    goes to exactly one of them."""
    import threading

    stores = [open_store() for _ in range(3)]
    rows = stores[0].record(events_of(*(message(f"m_at_{n}") for n in range(15)), standby=True))
    assert all(row.notice_pending for row in rows)
    won: list[tuple[int, bool, bool]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(stores))

    def take_all(journal: IngestJournal) -> None:
        for row in rows:
            barrier.wait()
            window, notice = journal.take_journaled(row.id)
            with lock:
                won.extend([(row.id, True, False)] * window + [(row.id, False, True)] * notice)

    threads = [threading.Thread(target=take_all, args=(journal,)) for journal in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    expected = sorted([(row.id, True, False) for row in rows] + [(row.id, False, True) for row in rows])
    assert sorted(won) == expected, "each flag taken once"


# --- retention -------------------------------------------------------------------------------------


def test_prune_deletes_old_finished_events_and_keeps_their_dedup_keys(store: IngestJournal) -> None:
    done, pending = store.record(events_of(message("m_done"), message("m_pending")))
    [window] = store.record(events_of(meta.reaction("m_x")))
    store.finish(done.id, DONE)
    store.log_send(meta.PAGE_ID, USER_A, {"text": "hola"}, "sent")
    now = datetime.now(timezone.utc)

    result = store.prune(now + 2 * DAY, retention=DAY, dedup_horizon=7 * DAY)

    assert (result.events_deleted, result.keys_kept, result.keys_expired, result.sends_deleted) == (1, 1, 0, 1)
    assert [stored.id for stored in store.pending()] == [pending.id]
    assert [stored.id for stored in store.journaled()] == [window.id], "an unapplied window is never deleted"
    assert store.record(events_of(message("m_done"))) == [], "a late redelivery of a pruned event is a no-op"

    later = store.prune(now + 9 * DAY, retention=DAY, dedup_horizon=7 * DAY)
    assert later.keys_expired == 1
    assert len(store.record(events_of(message("m_done")))) == 1, "past Meta's horizon the key is forgotten"


# --- claims ----------------------------------------------------------------------------------------


def test_a_claim_returns_the_pending_events_in_id_order_and_holds_their_conversations(store: IngestJournal) -> None:
    store.record(events_of(message("a1"), message("b1", user=USER_B), meta.read(meta.T0), message("a2")))
    store.record(events_of(message("c1", user=USER_C), message("b2", user=USER_B)))

    claimed = store.claim_pending("rasa-1", at(0), LEASE)

    assert mids(claimed) == ["a1", "b1", "a2", "c1", "b2"]
    assert [stored.id for stored in claimed] == sorted(stored.id for stored in claimed)
    assert all(stored.status == PENDING for stored in claimed)
    assert store.claims() == {k: ("rasa-1", at(30)) for k in (key(USER_A), key(USER_B), key(USER_C))}


def test_two_owners_never_hold_the_same_conversation(store: IngestJournal) -> None:
    store.record(events_of(message("a1"), message("b1", user=USER_B)))
    first = store.claim_pending("rasa-1", at(0), LEASE)
    store.record(events_of(message("a2"), message("c1", user=USER_C)))

    second = store.claim_pending("rasa-2", at(1), LEASE)

    assert mids(first) == ["a1", "b1"]
    assert mids(second) == ["c1"], "the pending events of a conversation claimed by another owner are not returned"
    assert store.claims()[key(USER_A)][0] == "rasa-1" and store.claims()[key(USER_C)][0] == "rasa-2"
    assert mids(store.claim_pending("rasa-1", at(2), LEASE)) == ["a1", "b1", "a2"], "its own, in flight included"


def test_an_expired_claim_is_taken_over_and_not_renewed_by_its_old_owner(store: IngestJournal) -> None:
    store.record(events_of(message("a1"), message("b1", user=USER_B)))
    store.claim_pending("rasa-1", at(0), LEASE)

    assert store.claim_pending("rasa-2", at(29), LEASE) == [], "still held one second before the lease ends"
    taken = store.claim_pending("rasa-2", at(30), LEASE)

    assert mids(taken) == ["a1", "b1"]
    assert store.renew_claims("rasa-1", [key(USER_A), key(USER_B)], at(31), LEASE) == []
    assert store.claims()[key(USER_A)] == ("rasa-2", at(60))


def test_renewing_keeps_a_conversation_from_the_others(store: IngestJournal) -> None:
    store.record(events_of(message("a1"), message("b1", user=USER_B)))
    store.claim_pending("rasa-1", at(0), LEASE)

    assert store.renew_claims("rasa-1", [key(USER_A), key(USER_A), "nobody:0"], at(25), LEASE) == [key(USER_A)]

    assert mids(store.claim_pending("rasa-2", at(40), LEASE)) == ["b1"], "A renewed until 55, B ran out at 30"
    assert store.renew_claims("rasa-1", [], at(41), LEASE) == []


def test_a_released_conversation_with_a_new_event_is_claimable_by_anyone(store: IngestJournal) -> None:
    [a1] = store.record(events_of(message("a1")))
    store.claim_pending("rasa-1", at(0), LEASE)
    store.finish(a1.id, DONE)
    store.release_claim("rasa-2", key(USER_A))  # not the holder: nothing happens
    assert key(USER_A) in store.claims()

    store.release_claim("rasa-1", key(USER_A))
    store.record(events_of(message("a2")))

    assert store.claims() == {}
    assert mids(store.claim_pending("rasa-2", at(1), LEASE)) == ["a2"]
    assert store.claims() == {key(USER_A): ("rasa-2", at(31))}


def test_finished_events_are_not_claimed_and_a_conversation_without_pending_events_is_not_held(
    store: IngestJournal,
) -> None:
    a1, b1 = store.record(events_of(message("a1"), message("b1", user=USER_B)))
    store.finish(a1.id, DONE)
    store.record(events_of(meta.read(meta.T0, sender=USER_C)))  # recorded, not for Rasa

    assert mids(store.claim_pending("rasa-1", at(0), LEASE)) == ["b1"]
    assert set(store.claims()) == {key(USER_B)}


def test_the_limit_shares_the_events_round_robin_and_the_rest_follows_on_the_next_claim(store: IngestJournal) -> None:
    store.record(events_of(*(message(f"a{n}") for n in range(5)), message("b1", user=USER_B)))

    first = store.claim_pending("rasa-1", at(0), LEASE, limit=3)
    assert mids(first) == ["a0", "a1", "b1"], "each conversation's first event, then the second, in id order"
    assert set(store.claims()) == {key(USER_A), key(USER_B)}
    assert store.claim_pending("rasa-1", at(0), LEASE, limit=0) == []
    assert store.claim_pending("rasa-2", at(1), LEASE, limit=3) == [], "both held by rasa-1"
    assert mids(store.claim_pending("rasa-1", at(2), LEASE, limit=10)) == ["a0", "a1", "a2", "a3", "a4", "b1"]


def test_the_limit_counts_conversations_claimed_longest_waiting_first(store: IngestJournal) -> None:
    store.record(events_of(message("a0"), message("b0", user=USER_B), message("a1"), message("c0", user=USER_C)))

    assert mids(store.claim_pending("rasa-1", at(0), LEASE, limit=2)) == ["a0", "b0"]
    assert set(store.claims()) == {key(USER_A), key(USER_B)}, "C waits: two conversations were asked for"
    assert mids(store.claim_pending("rasa-2", at(1), LEASE, limit=2)) == ["c0"]


def test_claims_survive_a_restart(open_store: Callable[[], IngestJournal]) -> None:
    first = open_store()
    first.record(events_of(message("a1")))
    first.claim_pending("rasa-1", at(0), LEASE)
    first.close()

    reopened = open_store()

    assert reopened.claim_pending("rasa-2", at(10), LEASE) == []
    assert mids(reopened.claim_pending("rasa-1", at(10), LEASE)) == ["a1"]


def test_prune_forgets_claims_left_by_a_gone_owner(store: IngestJournal) -> None:
    store.record(events_of(message("a1"), message("b1", user=USER_B)))
    store.claim_pending("rasa-1", at(0), LEASE)
    store.renew_claims("rasa-1", [key(USER_B)], T0 + 2 * DAY, LEASE)

    result = store.prune(T0 + 2 * DAY, retention=30 * DAY)

    assert result.claims_deleted == 1 and set(store.claims()) == {key(USER_B)}
