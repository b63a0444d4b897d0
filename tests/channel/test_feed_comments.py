"""The Rasa channel's own webhook route (one-process deployments) records a delivery's `feed` changes in the comment
journal before its 200, as the webhook process does: the app's processor then decides them. Would catch comments
dropped silently by this route, a redelivery recorded twice, or a 200 when the journal could not be written (Meta
would not deliver again)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from comments.journal import PENDING, CommentJournal, open_comment_journal
from connectors.messenger import MessengerInput
from sandbox import simulate
from tests.channel.conftest import OpenChannel
from tests.channel.support import PAGE_ID, ChannelServer

POST_ID = f"{PAGE_ID}_990000000001"


def comment_body(comment_id: str, message: str) -> dict[str, Any]:
    return simulate.feed_body(PAGE_ID, [simulate.comment(PAGE_ID, "6100000000000042", "Ana Pérez", POST_ID, message,
                                                         comment_id=comment_id)])


async def test_a_comment_reaches_the_comment_journal_once(channel: ChannelServer) -> None:
    body = comment_body(f"{POST_ID}_1", "¿Precio? 😍")

    assert await channel.deliver(body) == 200
    assert await channel.deliver(body) == 200, "Meta's redelivery"

    journal = open_comment_journal(channel.channel.settings.store_url("comment_journal"))
    try:
        [stored] = journal.recent(PAGE_ID)
    finally:
        journal.close()
    assert (stored.comment_id, stored.message, stored.status, stored.from_name) == (
        f"{POST_ID}_1", "¿Precio? 😍", PENDING, "Ana Pérez")


class BrokenJournal:
    """A comment journal that cannot be written (a full disk, a database that is down); the real journal's handling
    of that failure (`record_delivery`) on top."""

    record_delivery = CommentJournal.record_delivery

    async def record_async(self, changes: list[Any], now: datetime) -> list[int]:
        raise OSError("database or disk is full")

    def close(self) -> None:
        return None


async def test_a_journal_that_cannot_be_written_is_a_503_so_meta_delivers_again(open_channel: OpenChannel) -> None:
    def break_journal(channel: MessengerInput) -> None:
        channel.comments.close()
        channel.comments = BrokenJournal()  # type: ignore[assignment]

    server = await open_channel(break_journal)

    assert await server.deliver(comment_body(f"{POST_ID}_2", "Info")) == 503
