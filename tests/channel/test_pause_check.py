"""`ever_paused`: the Rasa channel's cheap pause check (connectors/turns.py) against Rasa's own SQL tracker store:
a conversation that never had a `pause` event is not paused (its tracker is not loaded twice per turn); one that
had is loaded and asked, and a resumed one is then not paused."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from rasa.core.tracker_store import AwaitableTrackerStore, SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ConversationPaused, ConversationResumed, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from connectors.turns import ever_paused


async def test_only_a_conversation_with_a_pause_event_is_loaded(tmp_path: Path) -> None:
    sql = SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(tmp_path / "tracker.db"))
    store = AwaitableTrackerStore(sql)
    chatting = DialogueStateTracker.from_events("chatting", [UserUttered("hola")])
    held = DialogueStateTracker.from_events("held", [UserUttered("hola"), ConversationPaused()])
    back = DialogueStateTracker.from_events("back", [ConversationPaused(), ConversationResumed(), UserUttered("hi")])
    for tracker in (chatting, held, back):
        await store.save(tracker)

    assert not ever_paused(store, "chatting")
    assert not ever_paused(store, "nobody")
    assert ever_paused(store, "held") and ever_paused(sql, "held")
    assert ever_paused(store, "back"), "had a pause: the caller loads the tracker, which says it was resumed"
    loaded = await store.retrieve("back")
    assert loaded is not None and not loaded.is_paused()


def test_a_store_it_cannot_query_sends_the_caller_to_the_tracker() -> None:
    assert ever_paused(object(), "anyone")


def test_a_message_stored_without_a_prediction_is_told_apart() -> None:
    """`stored_unpredicted`: the latest user message with no action after it (Rasa held a paused conversation)."""
    from rasa.shared.core.events import ActionExecuted, BotUttered

    from connectors.turns import stored_unpredicted

    answered = [UserUttered("hola", message_id="m1"), ActionExecuted("utter_greet"), BotUttered("¡Hola!"),
                ActionExecuted("action_listen")]
    assert not stored_unpredicted(answered, "m1")
    held = [*answered, ConversationPaused(), UserUttered("¿hay alguien?", message_id="m2")]
    assert stored_unpredicted(held, "m2") and stored_unpredicted(held, None)
    assert not stored_unpredicted(held, "m1"), "another message is the latest"
    assert not stored_unpredicted([ConversationPaused()], "m1")


async def test_a_pause_landing_after_the_check_still_reaches_the_live_view(open_channel: Any) -> None:
    """The pause arrives between the channel's `_is_paused` and the turn: Rasa stores the message without predicting
    and the Rasa event feed skips user messages of paused conversations, so the channel reports it to the app
    (handoff user_message) as it does for any message written while paused. Fails on a channel that does not check
    again after a turn without replies: nothing reaches the live view."""
    from connectors.handoff import AppHandoffClient
    from tests.channel.support import ChannelServer, eventually, pause_in_tracker

    user = "psid-pause-race"
    told: list[tuple[str, str]] = []

    class HandoffTap(AppHandoffClient):
        async def user_message(self, page_id: str, user_id: str, text: str, at: Any) -> bool:
            told.append((user_id, text))
            return True

    def prepare(channel: Any) -> None:
        channel.handoff = HandoffTap(channel.settings.app_url, channel.settings.service_token)

    server: ChannelServer = await open_channel(prepare)
    await server.start()
    assert await server.say(user, "hola") == 200
    await eventually(lambda: [row["status"] for row in server.journal(user)] == ["done"], "the first turn done")
    assert told == []

    agent, real_is_paused = server.agent, server.channel._is_paused

    async def pause_lands_after_the_check(user_id: str) -> bool:
        paused = await real_is_paused(user_id)
        await pause_in_tracker(agent, user_id)
        return paused

    server.channel._is_paused = pause_lands_after_the_check
    assert await server.say(user, "¿me ayudan?") == 200
    await eventually(lambda: [row["status"] for row in server.journal(user)] == ["done", "done"], "the second done")
    assert await server.user_texts_in_tracker(user) == ["hola", "¿me ayudan?"], "Rasa stored it"
    assert told == [(user, "¿me ayudan?")], "the live view hears of it"


async def test_a_live_view_notice_the_app_did_not_take_is_journaled_and_delivered_later(open_channel: Any) -> None:
    """A message written while paused, with the app not answering the notice (down, or slower than the call's
    timeout): the notice is journaled on the event and the upkeep delivers it once the app answers. Fails on a
    channel that drops the notice when the call fails (the message would never reach the agents)."""
    from connectors.handoff import AppHandoffClient
    from tests.channel.support import ChannelServer, eventually, pause_in_tracker

    user = "psid-notice-later"
    told: list[tuple[str, str]] = []
    app_up = False

    class FlakyHandoff(AppHandoffClient):
        async def user_message(self, page_id: str, user_id: str, text: str, at: Any) -> bool:
            if app_up:
                told.append((user_id, text))
            return app_up

    def prepare(channel: Any) -> None:
        channel.handoff = FlakyHandoff(channel.settings.app_url, channel.settings.service_token)

    server: ChannelServer = await open_channel(prepare)
    await server.start()
    assert await server.say(user, "hola") == 200
    await eventually(lambda: [row["status"] for row in server.journal(user)] == ["done"], "the first turn done")
    await pause_in_tracker(server.agent, user)

    assert await server.say(user, "¿hay alguien?") == 200
    await eventually(lambda: [row["status"] for row in server.journal(user)] == ["done", "done"], "stored, done")
    store = server.channel.store

    def journaled_notices() -> list[tuple[str | None, bool]]:
        return [(stored.event.text, stored.notice_pending) for stored in store.journaled()
                if stored.event.user_id == user]

    # The feeder may be trying the journaled notice right now (its flag is taken while the app is asked): wait.
    await eventually(lambda: journaled_notices() == [("¿hay alguien?", True)], "the notice journaled")
    assert told == []

    app_up = True
    # An upkeep round delivers it; a round the feeder's own try is still holding skips the row, the next one gets it.
    for _round in range(200):
        await server.channel._apply_windows(store.journaled())
        if told:
            break
        await asyncio.sleep(0.05)
    assert told == [(user, "¿hay alguien?")], "the upkeep delivered the notice once the app answered"
    assert [stored for stored in store.journaled() if stored.event.user_id == user] == []
