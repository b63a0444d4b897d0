"""The outage clock (`ActionServerWatch`), supervision when a restart cannot start, the action-call timeout setting
and the start-up checks of the processes, with a fake clock and fakes (no services).

Each test fails on the code before the review fixes: the watch could not be driven by a fake clock nor told who
was told (it lived inside the Rasa-only module, with `_told_in_outage` in the channel, never pruned); a spawn
that raised escaped `Supervisor.check` and stopped `bot run`; there was no ACTION_TIMEOUT_SECONDS; and the
action server and Rasa started without ACTION_SERVER_TOKEN (Rasa then failed on `${ACTION_SERVER_TOKEN}`).
"""

from __future__ import annotations

import io

import pytest

from actions.server import is_authorized
from connectors.outage import UP_CACHE_SECONDS, ActionServerWatch
from core.exposure import MISSING_TOKEN, startup_settings
from core.settings import DEFAULT_LLM_TIMEOUT_SECONDS, SettingsError, load_settings
from knowledge_matrix.llm.settings import DEFAULT_TIMEOUT_SECONDS


class FakeTime:
    """A clock that only moves when the watch sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class FakeHealth:
    """The action server's /health: down until `up_at` (on the fake clock), then up; counts the checks."""

    def __init__(self, time: FakeTime, up_at: float | None) -> None:
        self.time = time
        self.up_at = up_at
        self.checks = 0

    async def __call__(self, _url: str) -> bool:
        self.checks += 1
        return self.up_at is not None and self.time.now >= self.up_at


def watch_with(up_at: float | None, bound: float = 30.0) -> tuple[ActionServerWatch, FakeTime, FakeHealth]:
    time = FakeTime()
    health = FakeHealth(time, up_at)
    return ActionServerWatch("http://127.0.0.1:5055/health", bound, health, time.clock, time.sleep), time, health


async def test_a_message_waits_for_the_server_to_come_back_within_the_bound() -> None:
    watch, time, health = watch_with(up_at=107.0)
    assert await watch.wait_until_up(), "back after 7 s of a 30 s bound: the message goes on"
    assert time.now >= 107.0 and time.slept[:4] == [0.5, 1.0, 2.0, 4.0], f"backing off: {time.slept}"
    assert all(wait <= 5.0 for wait in time.slept)
    assert watch.down_since is None and watch.down_for() == 0.0


async def test_one_clock_per_outage_a_late_message_does_not_wait_the_bound_again() -> None:
    watch, time, health = watch_with(up_at=None, bound=30.0)
    assert not await watch.wait_until_up(), "gives up once the outage lasted the bound"
    assert time.now - 100.0 == pytest.approx(30.0), "waited exactly the bound, not more"
    assert watch.down_for() == pytest.approx(30.0)
    slept = len(time.slept)
    assert not await watch.wait_until_up(), "a message arriving later in the same outage"
    assert len(time.slept) == slept, "it is answered honestly at once, without waiting"


async def test_a_passed_check_is_trusted_briefly_and_a_failed_call_forgets_it() -> None:
    watch, time, health = watch_with(up_at=0.0)
    assert await watch.wait_until_up() and health.checks == 1
    time.now += UP_CACHE_SECONDS / 2
    assert await watch.wait_until_up() and health.checks == 1, "cached"
    watch.saw_failure()
    assert await watch.wait_until_up() and health.checks == 2, "a call failed in a turn: checked again"


async def test_who_was_told_is_remembered_per_outage_and_dropped_when_the_server_is_back() -> None:
    """Review: `_told_in_outage` grew one entry per conversation forever."""
    watch, time, health = watch_with(up_at=None, bound=5.0)
    assert not watch.was_told("page:a"), "no outage: every failed message is told"
    watch.note_told("page:a")
    assert watch.told_count == 0, "nothing remembered outside an outage"
    assert not await watch.wait_until_up()
    for user in ("page:a", "page:b"):
        assert not watch.was_told(user)
        watch.note_told(user)
        assert watch.was_told(user), "told once per outage"
    assert watch.told_count == 2
    health.up_at = time.now
    assert await watch.wait_until_up()
    assert watch.told_count == 0 and not watch.was_told("page:a"), "pruned when the server came back"
    health.up_at = None
    time.now += 10
    assert not await watch.wait_until_up()
    assert not watch.was_told("page:a"), "a new outage tells everyone again"


def test_action_calls_are_bounded_by_the_llm_budget_plus_a_margin() -> None:
    """Review: action calls kept Rasa's 300 s timeout (15 min over three attempts for a hung action server)."""
    assert DEFAULT_LLM_TIMEOUT_SECONDS == DEFAULT_TIMEOUT_SECONDS, "settings name the fallback's own default"
    assert load_settings({}).action_timeout_seconds == DEFAULT_TIMEOUT_SECONDS + 15
    assert load_settings({"LLM_TIMEOUT_SECONDS": "30"}).action_timeout_seconds == 45
    assert load_settings({"ACTION_TIMEOUT_SECONDS": "20"}).action_timeout_seconds == 20
    for refused in ("3", "4", "601", "abc"):
        with pytest.raises(SettingsError, match="ACTION_TIMEOUT_SECONDS"):
            load_settings({"ACTION_TIMEOUT_SECONDS": refused})
    with pytest.raises(SettingsError, match="LLM_TIMEOUT_SECONDS"):
        load_settings({"LLM_TIMEOUT_SECONDS": "10", "ACTION_TIMEOUT_SECONDS": "8"})


@pytest.mark.parametrize("process", ["action server", "rasa"])
def test_a_process_started_on_its_own_says_clearly_that_the_token_is_missing(
    process: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: outside `bot run` Rasa failed on the unset `${ACTION_SERVER_TOKEN}` in endpoints.yml with a
    cryptic error, and the action server started open on loopback."""
    monkeypatch.delenv("ACTION_SERVER_TOKEN", raising=False)
    err = io.StringIO()
    assert startup_settings(process, err) is None
    assert err.getvalue() == f"error: {MISSING_TOKEN}\n"
    monkeypatch.setenv("ACTION_SERVER_TOKEN", "a-long-random-token")
    settings = startup_settings(process, err)
    assert settings is not None and settings.action_server_token == "a-long-random-token"


def test_bot_run_makes_its_own_token_but_an_open_host_needs_the_operators(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACTION_SERVER_TOKEN", raising=False)
    assert startup_settings("bot run", io.StringIO()) is not None
    monkeypatch.setenv("ACTION_SERVER_HOST", "0.0.0.0")
    err = io.StringIO()
    assert startup_settings("bot run", err) is None and "ACTION_SERVER_HOST=0.0.0.0" in err.getvalue()


def test_without_a_configured_token_nothing_but_health_is_open() -> None:
    assert not is_authorized("/webhook", {"authorization": "Bearer "}, "")
    assert is_authorized("/health", {}, "")
