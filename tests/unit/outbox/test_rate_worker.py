"""The worker and the shared per-page rate: in-memory store, fake Graph transport, the worker's clock fixed.

What a worker does with its page's send slot: asks the store for it before each send (not when the rate is 0),
gives the message back unsent when the slot starts past half its lease (holding it longer would let the lease
expire and another worker send it too), and decides the policy for the moment the message leaves, not the moment
it was claimed. The timing of real sends is tests/integration/outbox/test_page_rate.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from core.settings import SANDBOX_PAGE_ID, Settings
from meta.graph import GraphClient
from outbox.model import NewMessage, OutboxMessage, Purpose, SendSlot, Status
from outbox.policy_file import load_policy
from outbox.store import InMemoryOutboxStore
from outbox.worker import AUDIO_VIDEO_LANE, OutboxWorker
from tests.unit.outbox.test_worker_store_outage import RecordingTransport

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)
USER = "psid-rate"


def worker_for(store: InMemoryOutboxStore, transport: RecordingTransport, rate: float) -> OutboxWorker:
    client = GraphClient(Settings().page_tokens, transport=transport)
    return OutboxWorker(
        store, client, load_policy(), worker_id="w1", lease_seconds=30, page_rate=rate, clock=lambda: T0
    )


def reply(store: InMemoryOutboxStore, user_wrote_at: datetime = T0) -> OutboxMessage:
    store.record_user_message(SANDBOX_PAGE_ID, USER, user_wrote_at)
    message, _ = store.enqueue(NewMessage(SANDBOX_PAGE_ID, USER, {"text": "listo"}, purpose=Purpose.REPLY), T0)
    return message


@pytest.mark.parametrize(("rate", "next_free"), [(0, T0), (5, T0 + timedelta(seconds=0.2))])
async def test_each_send_takes_a_slot_unless_the_rate_is_off(rate: float, next_free: datetime) -> None:
    store, transport = InMemoryOutboxStore(), RecordingTransport()
    message = reply(store)

    assert await worker_for(store, transport, rate).run_once() == 1

    assert store.get(message.id).status is Status.SENT and len(transport.sent) == 1
    # Rate 0: no slot recorded, the page is free now. Rate 5: the worker took T0, the next free one is T0 + 0.2 s.
    assert store.reserve_send_slot(SANDBOX_PAGE_ID, T0, 5).send_at == next_free


async def test_a_message_whose_slot_is_past_half_the_lease_is_given_back_unsent() -> None:
    store, transport = InMemoryOutboxStore(), RecordingTransport()
    message = reply(store)
    store.reserve_send_slot(SANDBOX_PAGE_ID, T0 + timedelta(seconds=100), 1)  # other workers took the page's slots

    assert await worker_for(store, transport, 1).run_once() == 1

    back = store.get(message.id)
    assert transport.sent == [], "not sent: waiting 101 s would outlive its 30 s lease"
    assert (back.status, back.claimed_by, back.attempts) == (Status.PENDING, None, 0), "given back, not an attempt"
    assert back.next_attempt_at == T0 + timedelta(seconds=101), "due again when the page has a free slot"
    assert store.reserve_send_slot(SANDBOX_PAGE_ID, T0, 1) == SendSlot(True, T0 + timedelta(seconds=101)), (
        "the slot it did not take is still free"
    )


async def test_the_window_is_decided_for_the_moment_the_message_leaves() -> None:
    """The customer's 24 hours end 0.1 s after the claim; the page's next slot is 0.2 s after it."""
    store, transport = InMemoryOutboxStore(), RecordingTransport()
    message = reply(store, user_wrote_at=T0 - timedelta(hours=24) + timedelta(seconds=0.1))
    store.reserve_send_slot(SANDBOX_PAGE_ID, T0, 5)

    assert await worker_for(store, transport, 5).run_once() == 1

    blocked = store.get(message.id)
    assert transport.sent == [], "it would have reached Meta outside the 24-hour window"
    assert (blocked.status, blocked.reason_code) == (Status.BLOCKED, "outside_window")


class StallingStore(InMemoryOutboxStore):
    """The worker's clock jumps `stall` right after its first slot is granted (and `then_stall` after its second):
    its event loop stalled (a busy machine, a long blocking call) or the store answered that late."""

    def __init__(self, clock: list[datetime], stall: timedelta, then_stall: timedelta = timedelta(0)) -> None:
        super().__init__()
        self.clock, self.stall, self.then_stall, self.granted = clock, stall, then_stall, 0

    def reserve_send_slot(
        self, page_id: str, now: datetime, rate: float, not_after: datetime | None = None
    ) -> SendSlot:
        slot = super().reserve_send_slot(page_id, now, rate, not_after)
        self.granted += 1
        if self.granted == 2:  # the first is the test's own: the worker's slot is 0.2 s ahead, it sleeps for it
            self.clock[0] += self.stall
        elif self.granted == 3:
            self.clock[0] += self.then_stall
        return slot


@pytest.mark.parametrize(("stall_seconds", "its_slot"), [(0.1, 0.2), (1.0, 1.0)])
async def test_a_slot_missed_by_a_whole_interval_is_replaced_not_used_late(
    stall_seconds: float, its_slot: float
) -> None:
    """Its slot is 0.2 s ahead. Stalled 0.1 s: it sleeps the rest and sends in its slot. Stalled 1 s: its slot is
    0.8 s behind, sending now would land on whoever has the slots since (at 5/s, one each 0.2 s), so it takes a new
    one, now, and the page's next free slot comes after that one."""
    clock = [T0]
    store, transport = StallingStore(clock, timedelta(seconds=stall_seconds)), RecordingTransport()
    message = reply(store)
    store.reserve_send_slot(SANDBOX_PAGE_ID, T0, 5)  # another worker's send, now
    client = GraphClient(Settings().page_tokens, transport=transport)
    worker = OutboxWorker(store, client, load_policy(), worker_id="w1", page_rate=5, clock=lambda: clock[0])

    assert await worker.run_once() == 1

    assert store.get(message.id).status is Status.SENT and len(transport.sent) == 1
    next_free = store.reserve_send_slot(SANDBOX_PAGE_ID, T0, 5).send_at
    assert next_free == T0 + timedelta(seconds=its_slot + 0.2)


async def test_a_worker_stalled_again_past_half_its_lease_gives_the_message_back_unsent() -> None:
    """Stalled 1 s past its slot (it takes a new one, now), then 20 s past that one: 21 s into a 30 s lease, less
    than the half kept for the request and the outcome is left, and a worker that reclaims the message when the
    lease runs out would send it a second time. It gives the message back instead of sending it late."""
    clock = [T0]
    store = StallingStore(clock, timedelta(seconds=1), then_stall=timedelta(seconds=20))
    transport = RecordingTransport()
    message = reply(store)
    store.reserve_send_slot(SANDBOX_PAGE_ID, T0, 5)  # another worker's send, now
    client = GraphClient(Settings().page_tokens, transport=transport)
    worker = OutboxWorker(
        store, client, load_policy(), worker_id="w1", lease_seconds=30, page_rate=5, clock=lambda: clock[0]
    )

    assert await worker.run_once() == 1

    back = store.get(message.id)
    assert transport.sent == [], "not sent 21 s into its 30 s lease"
    assert (back.status, back.claimed_by, back.attempts) == (Status.PENDING, None, 0), "given back, not an attempt"
    assert back.next_attempt_at == T0 + timedelta(seconds=21), "due again at once, for whichever worker is free"


def video_reply(store: InMemoryOutboxStore) -> OutboxMessage:
    store.record_user_message(SANDBOX_PAGE_ID, USER, T0)
    video = {"attachment": {"type": "video", "payload": {"url": "https://example.com/demo.mp4"}}}
    message, _ = store.enqueue(NewMessage(SANDBOX_PAGE_ID, USER, video, purpose=Purpose.REPLY), T0)
    return message


@pytest.mark.parametrize("rate", [0, 100])
async def test_a_video_takes_a_slot_of_the_pages_audio_and_video_lane_at_metas_slower_rate(rate: float) -> None:
    """Meta allows a page 10 Send API calls a second with audio or video (policy.yml send_rates), whatever the page
    rate, which is off (0) or faster here: the video's slot is its lane's, 1/10 s apart, and the page's own slots
    stay free for text."""
    store, transport = InMemoryOutboxStore(), RecordingTransport()
    message = video_reply(store)
    audio_video = load_policy().send_rates.audio_video_per_second  # type: ignore[union-attr]

    assert await worker_for(store, transport, rate).run_once() == 1

    assert store.get(message.id).status is Status.SENT and len(transport.sent) == 1
    lane = SANDBOX_PAGE_ID + AUDIO_VIDEO_LANE
    assert store.reserve_send_slot(lane, T0, audio_video).send_at == T0 + timedelta(seconds=1 / audio_video)
    assert store.reserve_send_slot(SANDBOX_PAGE_ID, T0, 5).send_at == T0, "no text slot was taken"


async def test_without_a_page_rate_the_worker_keeps_to_the_policys_share() -> None:
    store, transport = InMemoryOutboxStore(), RecordingTransport()
    client = GraphClient(Settings().page_tokens, transport=transport)
    policy = load_policy()
    worker = OutboxWorker(store, client, policy, worker_id="w1", lease_seconds=30, clock=lambda: T0)
    assert policy.send_rates is not None and worker.page_rate == policy.send_rates.outbox_per_second
    reply(store)

    assert await worker.run_once() == 1

    interval = timedelta(microseconds=round(1_000_000 / worker.page_rate))
    assert store.reserve_send_slot(SANDBOX_PAGE_ID, T0, worker.page_rate).send_at == T0 + interval
