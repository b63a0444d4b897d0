"""MESSENGER_SENDER_ACTIONS: when a turn begins with mark_seen and typing_on.

One processing slot, three users writing at once: A's turn holds the slot (its first action call held at the tap
between Rasa and the action server) while B and C wait for it. When A ends, B runs while C still
waits (a burst), then C runs with no one waiting.
`unless_busy` (the default) sends no sender action for B only; `always` sends them for all three; `never` for none.
Every message is answered either way.
"""

from __future__ import annotations

import dataclasses
import threading

import pytest

from connectors.messenger import MessengerInput
from tests.channel.conftest import OpenChannel
from tests.channel.support import ActionTap, ChannelServer, FakeGraph, eventually

USERS = ("psid-sa-first", "psid-sa-second", "psid-sa-third")


def one_slot(mode: str) -> object:
    def prepare(channel: MessengerInput) -> None:
        channel.settings = dataclasses.replace(
            channel.settings, messenger_processing_concurrency=1, messenger_sender_actions=mode
        )

    return prepare


def statuses(server: ChannelServer, user: str) -> list[str]:
    return [row["status"] for row in server.journal(user)]


async def burst(open_channel: OpenChannel, fake_graph: FakeGraph, action_hook: ActionTap,
                mode: str) -> dict[str, tuple[int, int]]:
    """(mark_seen, typing_on) sent per user, once the three messages are answered and done."""
    users = tuple(f"{user}-{mode}" for user in USERS)
    first, *_ = users
    server = await open_channel(one_slot(mode))
    await server.start()
    dispatcher = server.channel._dispatcher
    assert dispatcher is not None and dispatcher.max_concurrency == 1
    held, release = threading.Event(), threading.Event()

    def hold(_action: str) -> None:  # on the tap's thread: the first call waits, the others pass
        if not held.is_set():
            held.set()
            release.wait(60)

    action_hook.before_action = hold
    try:
        assert await server.say(first, "hola") == 200
        await eventually(held.is_set, "the first turn calling the action server")
        for user in users[1:]:
            assert await server.say(user, "hola") == 200
        await eventually(lambda: dispatcher.waiting_for_slot == 2, "the other two waiting for the slot")
    finally:
        release.set()
    for user in users:
        await eventually(lambda user=user: statuses(server, user) == ["done"], f"{user}'s message done")
        await eventually(lambda user=user: len(fake_graph.texts(user)) >= 2, f"{user}'s replies sent")
    return {user.removesuffix(f"-{mode}"): (fake_graph.sender_actions(user, "mark_seen"),
                                            fake_graph.sender_actions(user, "typing_on")) for user in users}


async def test_unless_busy_leaves_them_out_while_others_wait_for_a_slot(
    open_channel: OpenChannel, fake_graph: FakeGraph, action_hook: ActionTap
) -> None:
    """Fails on a channel that sends them for every turn (B then gets them) or never (A and C get none)."""
    sent = await burst(open_channel, fake_graph, action_hook, "unless_busy")
    assert sent == {USERS[0]: (1, 1), USERS[1]: (0, 0), USERS[2]: (1, 1)}, sent


@pytest.mark.parametrize(("mode", "expected"), [("always", (1, 1)), ("never", (0, 0))])
async def test_always_and_never(
    open_channel: OpenChannel, fake_graph: FakeGraph, action_hook: ActionTap, mode: str, expected: tuple[int, int]
) -> None:
    sent = await burst(open_channel, fake_graph, action_hook, mode)
    assert sent == dict.fromkeys(USERS, expected), sent
