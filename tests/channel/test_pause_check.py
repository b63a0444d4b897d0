"""`ever_paused`: the Rasa channel's cheap pause check (connectors/messenger.py) against Rasa's own SQL tracker store:
a conversation that never had a `pause` event is not paused (its tracker is not loaded twice per turn); one that
had is loaded and asked, and a resumed one is then not paused."""

from __future__ import annotations

from pathlib import Path

from rasa.core.tracker_store import AwaitableTrackerStore, SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ConversationPaused, ConversationResumed, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from connectors.messenger import ever_paused


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
