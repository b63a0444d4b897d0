"""Start-up recovery: events recorded but not finished before a restart are dispatched again when the channel starts
(`after_server_start` reads the pending events). Sanic already accepts webhooks while that runs, so a message can be
recorded and dispatched by its webhook and then also be read by the recovery, still pending: `_dispatch`'s
`_inflight` guard must keep it from being processed twice.
"""

from __future__ import annotations

from connectors.messenger import MessengerInput
from tests.channel.conftest import OpenChannel
from tests.channel.support import FakeGraph, RecoveryGatedIngestStore, eventually


def gate_the_recovery(gated: list[RecoveryGatedIngestStore]) -> object:
    def prepare(channel: MessengerInput) -> None:
        """The channel's journal on the same file, its start-up read held at a gate."""
        channel.store.close()
        store = RecoveryGatedIngestStore(channel.settings.ingest_db_path)
        channel.store = store
        channel._journal.store = store
        gated.append(store)

    return prepare


async def test_a_message_dispatched_by_its_webhook_during_the_recovery_is_processed_once(
    open_channel: OpenChannel, fake_graph: FakeGraph
) -> None:
    """The webhook records and dispatches the message while the recovery is about to read the journal; the
    message's turn is parked (its typing indicator held at the Graph API), so the recovery reads it as pending.
    Processed once: one turn (one mark_seen), Rasa's tracker holds the message once, one attempt recorded. Fails
    without the `_inflight` guard (the recovered copy queues behind the first and runs the turn again)."""
    gated: list[RecoveryGatedIngestStore] = []
    server = await open_channel(gate_the_recovery(gated))
    [store] = gated
    user = "psid-channel-racing-recovery"
    fake_graph.hold_sender_actions.clear()
    starting = server.start()
    await store.recovery_reading.wait()

    assert await server.say(user, "hola") == 200
    await eventually(lambda: fake_graph.sender_actions(user, "mark_seen") == 1, "the webhook's dispatch running")
    assert [row["status"] for row in server.journal(user)] == ["pending"], "the recovery will read it as pending"
    store.recovery_gate.set()
    await starting  # the recovery dispatched what it read
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
    """Sanic listens before `after_server_start` has created the dispatcher: a delivery then is recorded and
    answered 200 (before the fix, `_dispatch` asserted and Meta got a 500), and the start-up recovery, which reads
    the pending events after creating the dispatcher, processes it once."""
    server = await open_channel()
    user = "psid-channel-before-start"
    assert server.channel._dispatcher is None
    assert await server.say(user, "hola") == 200
    assert [row["status"] for row in server.journal(user)] == ["pending"]
    await server.start()
    await eventually(lambda: [row["status"] for row in server.journal(user)] == ["done"], "the message done")
    assert fake_graph.sender_actions(user, "mark_seen") == 1, "one turn"
    assert await server.user_texts_in_tracker(user) == ["hola"]
