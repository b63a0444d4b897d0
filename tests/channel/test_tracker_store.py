"""The embedded profile's tracker store (connectors/tracker_store.py): what `endpoints.yml` names loads as it (Rasa
falls back to an in-memory store, silently, when a custom `type` does not import), the file is in WAL mode and kept
open, and conversations survive a new process's store on the same file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa
import yaml
from rasa.core.tracker_store import AwaitableTrackerStore, TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ConversationPaused, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig
from sqlalchemy.pool import SingletonThreadPool

from connectors.tracker_store import LocalSQLTrackerStore, prepare_connection
from connectors.turns import ever_paused
from core.settings import ROOT


def endpoints_store(path: Path) -> TrackerStore:
    """The tracker store Rasa builds from the project's endpoints.yml, with RASA_TRACKER_DB at `path`."""
    config = yaml.safe_load((ROOT / "endpoints.yml").read_text(encoding="utf-8"))["tracker_store"]
    config["db"] = str(path)
    return TrackerStore.create(EndpointConfig.from_dict(config), Domain.empty())


async def test_the_endpoints_store_is_the_kept_wal_store_and_outlives_its_process(tmp_path: Path) -> None:
    path = tmp_path / "rasa_tracker.sqlite3"
    store = endpoints_store(path)
    inner = store._tracker_store if isinstance(store, AwaitableTrackerStore) else store
    assert isinstance(inner, LocalSQLTrackerStore), f"endpoints.yml gave {type(inner).__name__}"
    assert isinstance(inner.engine.pool, SingletonThreadPool), "one kept connection, not one per read and write"

    await store.save(DialogueStateTracker.from_events("ana", [UserUttered("hola"), ConversationPaused()]))
    await store.save(DialogueStateTracker.from_events("luis", [UserUttered("buenas")]))
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert ever_paused(store, "ana") and not ever_paused(store, "luis")

    again = endpoints_store(path)  # what a restarted Rasa opens
    loaded = await again.retrieve("ana")
    assert loaded is not None and loaded.is_paused()
    assert [event.text for event in loaded.events if isinstance(event, UserUttered)] == ["hola"]


def test_another_dialect_is_rasas_store_unchanged(tmp_path: Path) -> None:
    """In memory (and PostgreSQL, the scale profile's) keeps Rasa's engine: only a SQLite file is changed."""
    memory = LocalSQLTrackerStore(Domain.empty(), dialect="sqlite", db="")
    on_file = LocalSQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(tmp_path / "t.sqlite3"))
    assert sa.event.contains(on_file.engine, "connect", prepare_connection), "the file's connections are set up"
    assert not sa.event.contains(memory.engine, "connect", prepare_connection), "Rasa's engine, as it made it"
