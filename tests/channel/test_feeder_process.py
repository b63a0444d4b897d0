"""`MESSENGER_FEEDER=process`: the journal claimed and the turns driven by a feeder beside Rasa (connectors/feeder.py),
over Rasa's `turns` routes (connectors/turns.py), with the same results as the channel feeding itself.

Real: Rasa's agent behind the channel's Sanic server (the Rasa side, which then only serves turns), a second
`MessengerInput` with `RemoteTurns` as the feeder process builds it (on the test's loop, talking HTTP to that
server), the journal, the outbox and its worker; fake: the Graph API.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timezone
from typing import Any

import aiohttp

from connectors.messenger import MessengerInput
from connectors.turns import RemoteTurns
from tests.channel.conftest import OpenChannel
from tests.channel.support import (
    PAGE_ID,
    ChannelServer,
    FakeGraph,
    eventually,
    pause_in_tracker,
    with_short_outbox_busy_timeout,
)


async def open_fed(open_channel: OpenChannel, **changes: Any) -> tuple[ChannelServer, MessengerInput]:
    """Rasa's side (`process` mode: serves turns, claims nothing) and a started feeder calling it over HTTP."""
    def prepare(channel: MessengerInput) -> None:
        channel.settings = dataclasses.replace(channel.settings, messenger_feeder="process", **changes)

    server = await open_channel(prepare)
    await server.start()
    settings = server.channel.settings
    turns = RemoteTurns(f"http://127.0.0.1:{server.port}", settings.service_token, settings.action_timeout_seconds)
    feeder = MessengerInput(settings, turns=turns)
    with_short_outbox_busy_timeout(feeder)
    await turns.ready()  # as the feeder process starts: Rasa answered once, later calls are not preceded by a check
    await feeder.start_feeding()

    async def close_feeder() -> None:
        await feeder.stop_feeding()
        feeder.store.close()
        feeder.outbox.close()

    server.closers.append(close_feeder)
    return server, feeder


def all_sent(rows: list[tuple[str, str]]) -> bool:
    """Something was queued and all of it reached Meta."""
    return bool(rows) and all(status == "sent" for _key, status in rows)


def statuses(server: ChannelServer, user: str) -> list[str]:
    return [row["status"] for row in server.journal(user)]


async def test_turns_run_on_rasa_and_replies_leave_from_the_feeder(open_channel: OpenChannel,
                                                                     fake_graph: FakeGraph) -> None:
    """Each user's messages answered in order; Rasa's side claimed nothing (its own feeder never started). Fails
    when the Rasa side still feeds itself (two claimers), or when the feeder's replies are lost or reordered."""
    server, feeder = await open_fed(open_channel)
    assert server.channel._feeder is None, "Rasa's process does not claim the journal in process mode"
    users = ["psid-fed-1", "psid-fed-2"]
    for user in users:
        assert await server.say(user, "hola") == 200
    for user in users:
        await eventually(lambda u=user: statuses(server, u) == ["done"], f"{user}'s first turn done")
        assert await server.say(user, "muchas gracias") == 200
    for user in users:
        await eventually(lambda u=user: statuses(server, u) == ["done", "done"], f"{user}'s second turn done")
        assert await server.user_texts_in_tracker(user) == ["hola", "muchas gracias"]
        await eventually(lambda u=user: len(fake_graph.texts(u)) >= 3, f"{user}'s replies sent")
    assert feeder._feeder is not None and feeder._feeder.rounds > 0


async def test_a_paused_conversation_is_stored_by_the_turn_itself(open_channel: OpenChannel,
                                                                    fake_graph: FakeGraph) -> None:
    """Without sender actions the pause is checked by Rasa in the same call as the turn (`unless_paused`): the
    message is stored, nothing is predicted or sent. Fails when the turn runs on a paused conversation."""
    server, _feeder = await open_fed(open_channel, messenger_sender_actions="never")
    user = "psid-fed-paused"
    assert await server.say(user, "hola") == 200
    await eventually(lambda: statuses(server, user) == ["done"], "the first turn done")
    await eventually(lambda: all_sent(server.outbox_rows(user)), "the greeting sent")
    sent_before = list(fake_graph.texts(user))
    assert len(sent_before) == len(server.outbox_rows(user)), "every reply of the greeting reached Meta"
    await pause_in_tracker(server.agent, user)

    assert await server.say(user, "¿hay alguien?") == 200
    await eventually(lambda: statuses(server, user) == ["done", "done"], "stored, done")
    assert await server.user_texts_in_tracker(user) == ["hola", "¿hay alguien?"], "Rasa stored it"
    assert fake_graph.texts(user) == sent_before, "nothing sent while paused"


async def test_the_feeder_waits_for_rasa_without_spending_attempts(open_channel: OpenChannel) -> None:
    """Rasa not ready (restarting, loading its model: the routes answer 503): the event waits, then is answered with
    no failed attempt recorded. Fails when a restart's seconds use up the event's three attempts."""
    server, _feeder = await open_fed(open_channel)
    local = server.channel.local
    real_is_ready = local.is_ready
    local.is_ready = lambda: False  # type: ignore[method-assign]
    user = "psid-fed-restart"
    try:
        assert await server.say(user, "hola") == 200
        await asyncio.sleep(2.5)  # several of the feeder's looks at Rasa (every 0.5 s)
        assert statuses(server, user) == ["pending"], "waiting for Rasa, not failed"
    finally:
        local.is_ready = real_is_ready  # type: ignore[method-assign]
    await eventually(lambda: statuses(server, user) == ["done"], "answered once Rasa is back")
    # one attempt: the one that answered it (`finish` counts it); the waits for Rasa counted none
    assert [(row["attempts"], row["last_error"]) for row in server.journal(user)] == [(1, None)]


async def test_the_turns_routes_refuse_what_they_cannot_take(open_channel: OpenChannel) -> None:
    """The service token is required (401); a body that is not a turn is a 400 saying what is wrong; an unknown
    operation a 404. Never a 500."""
    server, _feeder = await open_fed(open_channel)
    base = f"http://127.0.0.1:{server.port}/webhooks/messenger/turns"
    token = {"Authorization": f"Bearer {server.channel.settings.service_token}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/run", json={"user_id": "x", "text": "hola"}) as answer:
            assert answer.status == 401
        async with http.post(f"{base}/run", json={"user_id": "x", "text": "hola"},
                             headers={"Authorization": "Bearer wrong"}) as answer:
            assert answer.status == 401
        async with http.get(base) as answer:
            assert answer.status == 401
        bodies = [b"", b"not json", b"[]", b'{"text": "hola"}', b'{"user_id": 5, "text": "hola"}',
                  b'{"user_id": "u", "text": 3}', b'{"user_id": "u", "text": "hola", "metadata": []}',
                  b'{"user_id": "u", "text": "hola", "mid": 7}',
                  b'{"user_id": "u", "text": "hola", "unless_paused": "yes"}']
        for body in bodies:
            async with http.post(f"{base}/run", data=body, headers=token) as answer:
                assert answer.status == 400, body
                assert "error" in await answer.json()
        async with http.post(f"{base}/paused", data=b'{"user_id": ""}', headers=token) as answer:
            assert answer.status == 400
        async with http.post(f"{base}/explode", json={"user_id": "u"}, headers=token) as answer:
            assert answer.status == 404
        async with http.get(base, headers=token) as answer:
            assert answer.status == 200 and (await answer.json()) == {"ready": True}
        async with http.post(f"{base}/paused", json={"user_id": "psid-nobody"}, headers=token) as answer:
            assert answer.status == 200 and (await answer.json()) == {"paused": False}


async def test_remote_turns_tell_rasa_away_from_rasa_refusing() -> None:
    """What the feeder makes of each answer: no answer, or 503, is Rasa away (`TurnsUnavailable`: wait, then the same
    attempt); any other error, or an answer that is not a turn, is a refusal (`TurnRefused`: a counted attempt). A
    200 turn returns its responses in order (for the channel to queue), with the failures and the pause it reports,
    and sends nothing itself."""
    import pytest
    from aiohttp import web

    from connectors.turns import TurnMessage, TurnRefused, TurnsUnavailable
    from tests.channel.support import serve

    answers: list[tuple[int, str]] = []
    seen: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append({"op": request.match_info["op"], "auth": request.headers.get("Authorization"),
                     "body": await request.json()})
        status, text = answers.pop(0)
        return web.Response(status=status, text=text, content_type="application/json")

    app = web.Application()
    app.router.add_post("/webhooks/messenger/turns/{op}", handle)
    runner, base = await serve(app)

    class Output:
        def __init__(self) -> None:
            self.sent: list[tuple[str, dict[str, Any]]] = []

        async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
            self.sent.append((recipient_id, message))

    turns = RemoteTurns(base, "s" * 32, action_timeout_seconds=1.0)
    message = TurnMessage(user_id="u1", text="hola", mid="m1", metadata={"page_id": "p"})
    try:
        answers[:] = [(200, '{"messages": [{"text": "a"}, {"text": "b", "quick_replies": []}], "failures": ['
                            '"action_x: the action server answered 500"], "paused": false}')]
        output = Output()
        outcome = await turns.run(message, output, unless_paused=True)  # type: ignore[arg-type]
        assert outcome.messages == ({"text": "a"}, {"text": "b", "quick_replies": []}) and output.sent == []
        assert outcome.failures == ("action_x: the action server answered 500",) and not outcome.paused
        assert seen[-1] == {"op": "run", "auth": "Bearer " + "s" * 32,
                            "body": {**message.to_json(), "unless_paused": True}}
        answers[:] = [(200, '{"messages": [], "failures": [], "paused": true}')]
        assert (await turns.run(message, Output(), unless_paused=True)).paused  # type: ignore[arg-type]
        for status, text, error in [(503, '{"error": "loading"}', TurnsUnavailable),
                                    (500, "<html>boom</html>", TurnRefused), (400, '{"error": "x"}', TurnRefused),
                                    (200, "not json", TurnRefused), (200, "[]", TurnRefused),
                                    (200, '{"messages": "a", "failures": []}', TurnRefused)]:
            answers[:] = [(status, text)]
            with pytest.raises(error):
                await turns.run(message, Output())  # type: ignore[arg-type]
        answers[:] = [(200, '{"paused": true}')]
        assert await turns.is_paused("u1")
    finally:
        await runner.cleanup()
    with pytest.raises(TurnsUnavailable):  # nothing listens any more
        await turns.is_paused("u1")
    await turns.close()


async def test_a_turns_replies_are_queued_in_order_in_one_write(open_channel: OpenChannel,
                                                                fake_graph: FakeGraph) -> None:
    """The feeder queues a turn's replies together (`MessengerOutput.send_responses`): in order, under positional
    keys, a reply Messenger cannot take logged as failed without holding back the others, and the same replies
    queued again (a retried turn) add nothing. Fails when a bad reply drops the turn's other replies, when the
    order or the keys change, or when a retry queues a reply twice."""
    from connectors.messenger import MessengerOutput

    server = await open_channel()
    channel = server.channel
    user = "psid-batched"
    replies = [{"text": "uno"}, {"text": 42}, {"text": "dos"}, {"text": "tres"}]
    await channel.outbox.record_user_message(PAGE_ID, user, datetime.now(timezone.utc), "hola")  # the window

    def output() -> MessengerOutput:
        return MessengerOutput(channel.client, channel.store, channel.outbox, PAGE_ID, key_prefix="reply:t:1",
                               typing=False)

    await output().send_responses(user, replies)
    await output().send_responses(user, replies)  # the turn's retry: same keys

    assert server.outbox_keys(user) == ["reply:t:1:1", "reply:t:1:2", "reply:t:1:3"]
    await server.start()  # the channel's outbox worker sends
    await eventually(lambda: len(fake_graph.texts(user)) == 3, "the three good replies sent")
    assert fake_graph.texts(user) == ["uno", "dos", "tres"]
    failed = server.send_log(user)
    assert [row["status"] for row in failed] == ["failed", "failed"], "the bad reply logged, once per try"
    assert "text" in failed[0]["error_message"] and '"text": 42' in failed[0]["request_json"]


async def test_a_turn_whose_answer_was_lost_runs_again_and_rasa_counts_the_message_once(
        open_channel: OpenChannel, fake_graph: FakeGraph) -> None:
    """Rasa ran the turn but its answer never reached the feeder (Rasa hung past the heartbeat, or restarted after
    saving): the feeder waits for Rasa, undoes that turn (Rasa's `UserUtteranceReverted`) and runs it again, so the
    replies go out once and the dialogue sees the message once. Fails when the rerun skips the revert (the message
    counted twice) or when the lost turn's replies are sent as well."""
    from rasa.shared.core.events import UserUttered

    from connectors.turns import TurnsUnavailable

    server, feeder = await open_fed(open_channel)
    turns = feeder.turns
    assert isinstance(turns, RemoteTurns)
    real_run = turns.run
    lost: list[str] = []

    async def run_then_lose_the_answer(message: Any, output: Any, unless_paused: bool = False) -> Any:
        outcome = await real_run(message, output, unless_paused)
        if not lost:
            lost.append(message.text)
            turns._ready = False  # as after a call Rasa did not answer: the feeder asks it before the next call
            raise TurnsUnavailable("Rasa did not answer run: the connection was reset")
        return outcome

    turns.run = run_then_lose_the_answer  # type: ignore[method-assign]
    user = "psid-fed-lost"
    assert await server.say(user, "hola") == 200
    await eventually(lambda: statuses(server, user) == ["done"], "answered after the lost answer")
    assert lost == ["hola"]
    assert [(row["attempts"], row["last_error"]) for row in server.journal(user)] == [(1, None)]
    await eventually(lambda: len(fake_graph.texts(user)) >= 1, "the replies sent")
    tracker = await server.agent.tracker_store.retrieve(user)
    assert [event.text for event in tracker.events if isinstance(event, UserUttered)] == ["hola", "hola"]
    applied = [event.text for event in tracker.applied_events() if isinstance(event, UserUttered)]
    assert applied == ["hola"], "the dialogue sees the message once"
    await asyncio.sleep(0.5)  # anything sent twice would be out by now
    replies = fake_graph.texts(user)
    assert len(replies) == len(set(replies)), f"replies sent twice: {replies}"
