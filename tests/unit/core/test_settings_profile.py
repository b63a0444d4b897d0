"""BOT_PROFILE and the scale profile's settings: defaults per profile, URLs checked, the messages name the variable
and never echo a URL that may hold a password."""

from __future__ import annotations

import pytest

from core.postgres import schema_in_url, with_schema
from core.settings import (
    DEFAULT_RABBITMQ_URL,
    DEFAULT_REDIS_URL,
    DEFAULT_SCALE_DATABASE_URL,
    SettingsError,
    load_settings,
)


def test_the_embedded_profile_is_the_default_with_one_rasa_and_in_process_outbox_workers() -> None:
    settings = load_settings({})
    assert (settings.profile, settings.is_scale) == ("embedded", False)
    assert (settings.rasa_instances, settings.outbox_workers, settings.runs_outbox_in_process) == (1, 0, True)


def test_the_scale_profile_defaults_to_two_rasa_instances_two_workers_and_local_services() -> None:
    settings = load_settings({"BOT_PROFILE": "scale"})
    assert settings.is_scale
    assert (settings.rasa_instances, settings.outbox_workers, settings.runs_outbox_in_process) == (2, 2, False)
    # Every store on PostgreSQL on this machine, Rasa's trackers in a schema of their own beside them.
    assert settings.database_url == DEFAULT_SCALE_DATABASE_URL
    assert settings.rasa_tracker_store_url == with_schema(DEFAULT_SCALE_DATABASE_URL, "bot_rasa")
    assert schema_in_url(settings.rasa_tracker_store_url) == "bot_rasa"
    assert (settings.redis_url, settings.rabbitmq_url) == (DEFAULT_REDIS_URL, DEFAULT_RABBITMQ_URL)
    assert (settings.rasa_events_exchange, settings.rasa_events_queue) == ("rasa-exchange", "rasa_events")


def test_the_embedded_profile_keeps_its_sqlite_files() -> None:
    assert load_settings({}).database_url == ""


def test_the_tracker_url_comes_from_its_own_variable_then_its_parts_then_the_stores_database() -> None:
    scale = {"BOT_PROFILE": "scale"}
    shared = load_settings({**scale, "BOT_DATABASE_URL": "postgres://bot@db.internal/bot",
                            "BOT_DATABASE_SCHEMA_PREFIX": "acme_"})
    assert shared.rasa_tracker_store_url.startswith("postgresql://bot@db.internal/bot?")  # SQLAlchemy's scheme
    assert schema_in_url(shared.rasa_tracker_store_url) == "acme_rasa"
    parts = load_settings({**scale, "BOT_DATABASE_URL": "postgresql://x@y/z", "RASA_TRACKER_DB_HOST": "10.0.0.7",
                           "RASA_TRACKER_DB_USER": "rasa", "RASA_TRACKER_DB_PASSWORD": "p@ss/word",
                           "RASA_TRACKER_DB_NAME": "tracker", "RASA_TRACKER_DB_PORT": "6432"})
    assert parts.rasa_tracker_store_url == "postgresql://rasa:p%40ss%2Fword@10.0.0.7:6432/tracker"
    own = load_settings({**scale, "RASA_TRACKER_DB_URL": "postgres://a@b/c", "RASA_TRACKER_DB_HOST": "ignored"})
    assert own.rasa_tracker_store_url == "postgresql://a@b/c"


def test_more_than_one_rasa_instance_needs_the_scale_profile() -> None:
    with pytest.raises(SettingsError, match="RASA_INSTANCES above 1 needs BOT_PROFILE=scale"):
        load_settings({"RASA_INSTANCES": "2"})
    assert load_settings({"OUTBOX_WORKERS": "3"}).outbox_workers == 3  # standalone workers work on SQLite too


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BOT_PROFILE": "cluster"}, "BOT_PROFILE must be one of embedded, scale"),
        ({"BOT_PROFILE": "scale", "RASA_INSTANCES": "0"}, "RASA_INSTANCES must be 1 to 16"),
        ({"BOT_PROFILE": "scale", "OUTBOX_WORKERS": "1.5"}, "OUTBOX_WORKERS must be a whole number"),
        ({"BOT_PROFILE": "scale", "REDIS_URL": "http://secret@h"}, "REDIS_URL must be a redis://"),
        ({"BOT_PROFILE": "scale", "RABBITMQ_URL": "amqp://u:secret@h:99999/"}, "RABBITMQ_URL is not a valid URL"),
        ({"BOT_PROFILE": "scale", "RASA_TRACKER_DB_URL": "mysql://u:secret@h/db"}, "RASA_TRACKER_DB_URL must be a"),
        ({"BOT_PROFILE": "scale", "RASA_LOCK_KEY_PREFIX": "bot-1"}, "RASA_LOCK_KEY_PREFIX must be letters and"),
        ({"BOT_PROFILE": "scale", "RASA_EVENTS_QUEUE": "a queue"}, "RASA_EVENTS_QUEUE must be 1 to 200"),
    ],
)
def test_a_bad_scale_setting_stops_the_start_naming_it_without_its_secret(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message) as raised:
        load_settings(env)
    assert "secret" not in str(raised.value)


def test_the_embedded_profile_does_not_check_the_scale_services() -> None:
    settings = load_settings({"REDIS_URL": "not a url"})  # only the scale profile uses it
    assert settings.redis_url == DEFAULT_REDIS_URL
