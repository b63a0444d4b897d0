"""Rasa's SQL tracker store on a SQLite file, kept open and in WAL mode: the embedded profile's conversations.

`endpoints.yml` names it (`type: connectors.tracker_store.LocalSQLTrackerStore`). Rasa 3.6's own `SQLTrackerStore`
takes SQLAlchemy 1.4's defaults for a SQLite file: no pool (a new connection, and SQLAlchemy's checks of it, for every
retrieve and every save) and the rollback journal (two or three fsyncs per commit). Both run on Rasa's event loop, in
every turn. This store keeps one connection per thread (Rasa uses it from its loop) and puts the file in WAL mode: one
fsync per commit, and a reader (the channel's pause check) never waits for a writer. What is committed is as durable
as before (`synchronous` stays FULL: a saved turn survives a power cut).

Any other dialect (the scale profile's PostgreSQL, which Rasa already pools) is Rasa's store unchanged. Runs inside
the Rasa process (Python 3.10).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from sqlalchemy.pool import SingletonThreadPool

BUSY_TIMEOUT_MS = 30_000  # another process writing the file (a second `bot` on the same data dir) is waited for


class LocalSQLTrackerStore(SQLTrackerStore):
    """`SQLTrackerStore`, with a kept connection and WAL when the database is a SQLite file."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        rasas: Any = getattr(self, "engine")  # noqa: B009 (Rasa sets it; untyped here)
        url = rasas.url
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return
        rasas.dispose()
        self.engine = sa.create_engine(url, poolclass=SingletonThreadPool)
        sa.event.listen(self.engine, "connect", prepare_connection)
        self.sessionmaker = sa.orm.session.sessionmaker(bind=self.engine)


def prepare_connection(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
    finally:
        cursor.close()
