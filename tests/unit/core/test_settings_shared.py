"""What several processes share must be shareable, refused at start with the variable named (core/settings.py
`_check_shared`): an in-memory outbox when more than one process uses it, and a WEBHOOK_PORT another process of
`bot run` binds (RASA_PORT, APP_PORT, ACTION_PORT, or an extra Rasa's RASA_PORT + 10·k)."""

from __future__ import annotations

import pytest

from bot.profile import extra_rasa_ports
from core.settings import SettingsError, load_settings

MEMORY = {"OUTBOX_URL": "memory://"}


def test_an_in_memory_outbox_is_fine_for_one_process() -> None:
    assert load_settings(MEMORY).outbox_store_url == "memory://"


def test_rasa_sends_what_it_queues_in_an_in_memory_outbox() -> None:
    """The app's worker cannot see Rasa's memory: with `memory://` the channel runs its own worker, or its replies
    would wait forever, unsent and unsaid."""
    assert load_settings(MEMORY).rasa_runs_outbox
    assert not load_settings({}).rasa_runs_outbox  # a shared store: the app's worker sends, off Rasa's loop
    assert load_settings({"OUTBOX_IN_RASA": "1"}).rasa_runs_outbox


@pytest.mark.parametrize("env", [
    {"OUTBOX_WORKERS": "1"},
    {"BOT_PROFILE": "scale"},
    {"BOT_PROFILE": "scale", "RASA_INSTANCES": "1", "OUTBOX_WORKERS": "0"},
    {"BOT_PROFILE": "scale", "RASA_INSTANCES": "3", "OUTBOX_WORKERS": "0"},
], ids=["standalone-workers", "scale", "scale-one-rasa-no-workers", "three-rasa"])
def test_an_in_memory_outbox_shared_by_several_processes_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=r"OUTBOX_URL=memory://"):
        load_settings({**MEMORY, **env})


def test_the_default_ports_do_not_clash() -> None:
    settings = load_settings({"BOT_PROFILE": "scale", "RASA_INSTANCES": "16"})
    assert settings.webhook_port == 5006


@pytest.mark.parametrize(("env", "named"), [
    ({"WEBHOOK_PORT": "5005"}, "RASA_PORT"),
    ({"WEBHOOK_PORT": "8000"}, "APP_PORT"),
    ({"WEBHOOK_PORT": "5055"}, "ACTION_PORT"),
    ({"WEBHOOK_PORT": "9100", "APP_PORT": "9100"}, "APP_PORT"),
    ({"WEBHOOK_PORT": "5015", "BOT_PROFILE": "scale"}, r"RASA_PORT\+10 \(rasa-2\)"),
    ({"WEBHOOK_PORT": "5035", "BOT_PROFILE": "scale", "RASA_INSTANCES": "4"}, r"RASA_PORT\+30 \(rasa-4\)"),
    ({"RASA_PORT": "4996", "BOT_PROFILE": "scale"}, r"RASA_PORT\+10 \(rasa-2\)"),
], ids=["rasa", "app", "action", "moved-app", "rasa-2", "rasa-4", "moved-rasa"])
def test_a_webhook_port_another_process_binds_is_refused(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=rf"WEBHOOK_PORT=\d+ is also {named}"):
        load_settings(env)


def test_an_extra_rasa_port_beyond_the_instances_is_free() -> None:
    """RASA_PORT+20 is rasa-3's only with three instances: with two it is the webhook's to take."""
    settings = load_settings({"WEBHOOK_PORT": "5025", "BOT_PROFILE": "scale", "RASA_INSTANCES": "2"})
    assert settings.webhook_port not in (settings.rasa_port, *extra_rasa_ports(settings.rasa_port, 2))


def test_the_check_covers_the_ports_bot_run_gives_the_extra_rasas() -> None:
    for port in extra_rasa_ports(5005, 5):
        with pytest.raises(SettingsError, match="WEBHOOK_PORT"):
            load_settings({"WEBHOOK_PORT": str(port), "BOT_PROFILE": "scale", "RASA_INSTANCES": "5"})
