"""Start-up recovery and the feeder: events recorded but not finished before a restart are claimed again when the
channel starts (`after_server_start` runs the feeder's first round), and the feeder's later rounds, which claim the
journal every few milliseconds, see an event that is still being processed as pending: its `_inflight` guard must
keep it from being processed twice.
"""

from __future__ import annotations

from connectors.messenger import MessengerInput
from tests.channel.conftest import OpenChannel
from tests.channel.support import FakeGraph, RecoveryGatedIngestStore, eventually


def gate_the_recovery(gated: list[RecoveryGatedIngestStore]) -> object:
    def prepare(channel: MessengerInput) -> None:
        """The channel's journal on the same file, its start-up claim held at a gate."""
        channel.store.close()
        store = RecoveryGatedIngestStore(channel.settings.ingest_db_path)
        channel.store = store
        channel._journal.store = store
        gated.append(store)

    return prepare


async def test_a_message_still_in_its_turn_is_not_claimed_again_by_the_next_rounds(
    open_channel: OpenChannel, fake_graph: FakeGraph
) -> None:
    """The webhook records the message while the recovery is about to read the journal; the recovery dispatches it
    and its turn is parked (its typing indicator held at the Graph API) while the feeder claims the journal round
    after round, each time reading the message as pending. Processed once: one turn (one mark_seen), Rasa's tracker
    holds the message once, one attempt recorded. Fails without the feeder's `_inflight` guard."""
    gated: list[RecoveryGatedIngestStore] = []
    server = await open_channel(gate_the_recovery(gated))
    [store] = gated
    user = "psid-channel-racing-recovery"
    fake_graph.hold_sender_actions.clear()
    starting = server.start()
    await store.recovery_reading.wait()

    assert await server.say(user, "hola") == 200
    assert [row["status"] for row in server.journal(user)] == ["pending"]
    store.recovery_gate.set()
    await starting  # the recovery dispatched what it read
    await eventually(lambda: fake_graph.sender_actions(user, "mark_seen") == 1, "the recovered message's turn")
    claims = store.claims
    await eventually(lambda: store.claims >= claims + 3, "three more rounds of the feeder while the turn is parked")
    assert [row["status"] for row in server.journal(user)] == ["pending"], "the rounds read it as pending"
    fake_graph.hold_sender_actions.set()

    await eventually(lambda: [row["status"] for row in server.journal(user)] == ["done"], "the message done")
    assert server.channel._dispatcher is not None
    await server.channel._dispatcher.wait_idle()
    assert fake_graph.sender_actions(user, "mark_seen") == 1, "one turn"
    assert await server.user_texts_in_tracker(user) == ["hola"], "Rasa saw the message once"
    assert server.journal(user)[0]["attempts"] == 1, server.journal(user)


async def test_a_webhook_served_before_the_start_up_listener_is_answered_and_processed_after_it(
    open_channel: OpenChannel, fake_graph: FakeGraph
) -> None:
    """Sanic listens before `after_server_start` has created the feeder: a delivery then is recorded and answered
    200, and the feeder's first round (the start-up recovery) processes it once."""
    server = await open_channel()
    user = "psid-channel-before-start"
    assert server.channel._dispatcher is None
    assert await server.say(user, "hola") == 200
    assert [row["status"] for row in server.journal(user)] == ["pending"]
    await server.start()
    await eventually(lambda: [row["status"] for row in server.journal(user)] == ["done"], "the message done")
    assert fake_graph.sender_actions(user, "mark_seen") == 1, "one turn"
    assert await server.user_texts_in_tracker(user) == ["hola"]


async def test_the_feeder_releases_a_conversation_once_its_queue_drained(
    open_channel: OpenChannel, fake_graph: FakeGraph
) -> None:
    """While a message is processed the conversation is claimed by this instance; once done, the claim goes (another
    Rasa instance may take the user's next message at once)."""
    server = await open_channel()
    await server.start()
    user = "psid-channel-claim"
    fake_graph.hold_sender_actions.clear()
    assert await server.say(user, "hola") == 200
    await eventually(lambda: fake_graph.sender_actions(user, "mark_seen") == 1, "the turn parked")
    key = f"{fake_graph_page()}:{user}"
    assert server.channel.store.claims()[key][0] == server.channel.owner
    fake_graph.hold_sender_actions.set()
    await eventually(lambda: [row["status"] for row in server.journal(user)] == ["done"], "the message done")
    await eventually(lambda: key not in server.channel.store.claims(), "the claim released")


def fake_graph_page() -> str:
    from tests.channel.support import PAGE_ID

    return PAGE_ID
