"""The profiles' processes (bot/profile.py, bot/stack.py): which processes, which commands and ports, which endpoints
file and the variables it needs, the service check's sentences, and supervision of every instance."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.profile import (
    process_names,
    rasa_endpoints_env,
    scale_services,
    unreachable_services,
)
from bot.stack import Ports, Supervisor, build_stack, label
from core.settings import ROOT, load_settings

SCALE = {"BOT_PROFILE": "scale"}


def test_the_embedded_profile_runs_one_rasa_its_feeder_and_no_standalone_worker() -> None:
    assert process_names(load_settings({})) == ["app", "actions", "webhook", "rasa", "feeder"]


def test_a_feeder_process_runs_beside_each_rasa_instance_when_asked(tmp_path: Path) -> None:
    """MESSENGER_FEEDER=process: "feeder" beside "rasa", "feeder-2" beside "rasa-2", each with its own journal claims
    (RASA_INSTANCE_ID) and its own Rasa (RASA_URL); `rasa` mode starts none."""
    env = {**SCALE, "RASA_INSTANCES": "2", "OUTBOX_WORKERS": "1"}
    assert process_names(load_settings({**env, "MESSENGER_FEEDER": "rasa"})) == [
        "app", "actions", "webhook", "rasa", "rasa-2", "outbox-1"]
    fed = {**env, "MESSENGER_FEEDER": "process"}
    assert process_names(load_settings(fed)) == [
        "app", "actions", "webhook", "rasa", "rasa-2", "feeder", "feeder-2", "outbox-1"]
    stack = build_stack(Ports(rasa=7000), tmp_path, tmp_path / "model.tar.gz", fed)
    assert stack.process_names == process_names(load_settings(fed))
    command = stack.command("feeder-2")
    assert command[0].endswith(".venv-rasa/bin/python") and command[1:] == ["-m", "connectors.feeder"]
    first, second = stack.env_for("feeder"), stack.env_for("feeder-2")
    assert (first["RASA_URL"], second["RASA_URL"]) == ("http://127.0.0.1:7000", "http://127.0.0.1:7010")
    assert first["RASA_INSTANCE_ID"].endswith(":feeder") and second["RASA_INSTANCE_ID"].endswith(":feeder-2")
    assert stack.env_for("rasa-2")["RASA_INSTANCE_ID"].endswith(":rasa-2")
    assert stack.env_for("app")["RASA_URL"] == "http://127.0.0.1:7000"
    assert label("feeder-2") == "the feeder of Rasa (rasa-2)" and label("feeder") == "the feeder of Rasa"


def test_the_scale_profile_runs_its_rasa_instances_and_outbox_workers() -> None:
    settings = load_settings({**SCALE, "RASA_INSTANCES": "3", "OUTBOX_WORKERS": "2"})
    assert process_names(settings) == ["app", "actions", "webhook", "rasa", "rasa-2", "rasa-3", "feeder", "feeder-2",
                                       "feeder-3", "outbox-1", "outbox-2"]


def test_the_endpoints_variables_are_the_parts_of_each_url() -> None:
    settings = load_settings({**SCALE, "REDIS_URL": "redis://:s%3Acret@cache.internal:6380/3",
                              "RABBITMQ_URL": "amqp://bot:p%40ss@mq.internal:5673/", "RASA_LOCK_KEY_PREFIX": "acme"})
    env = rasa_endpoints_env(settings)
    assert (env["RASA_REDIS_HOST"], env["RASA_REDIS_PORT"], env["RASA_REDIS_DB"]) == ("cache.internal", "6380", "3")
    assert env["RASA_REDIS_PASSWORD"] == "s:cret"
    assert (env["RASA_RABBITMQ_HOST"], env["RASA_RABBITMQ_PORT"]) == ("mq.internal", "5673")
    assert (env["RASA_RABBITMQ_USER"], env["RASA_RABBITMQ_PASSWORD"]) == ("bot", "p@ss")
    assert env["RASA_LOCK_KEY_PREFIX"] == "acme"
    assert env["RASA_TRACKER_DB_URL"] == settings.rasa_tracker_store_url
    assert rasa_endpoints_env(load_settings({})) == {}


def endpoint_variables(name: str) -> set[str]:
    lines = (ROOT / name).read_text(encoding="utf-8").splitlines()
    return {found for line in lines if not line.lstrip().startswith("#")
            for found in re.findall(r"\$\{(\w+)\}", line)}


def test_the_stack_sets_every_variable_of_the_scale_endpoints_file(tmp_path: Path) -> None:
    stack = build_stack(Ports(), tmp_path, tmp_path / "model.tar.gz", SCALE)
    assert stack.endpoints == "endpoints-scale.yml"
    missing = endpoint_variables("endpoints-scale.yml") - set(stack.env)
    assert not missing, f"Rasa would refuse to start: {missing} unset"
    assert not endpoint_variables("endpoints.yml") - set(build_stack(Ports(), tmp_path, tmp_path / "m", {}).env)


def test_the_scale_endpoints_file_has_no_quoted_variables() -> None:
    """Rasa 3.6 substitutes only unquoted ${VAR}."""
    assert not re.search(r"[\"']\$\{", (ROOT / "endpoints-scale.yml").read_text(encoding="utf-8"))


def test_each_rasa_instance_has_its_port_the_scale_endpoints_and_each_worker_its_name(tmp_path: Path) -> None:
    stack = build_stack(Ports(rasa=7000), tmp_path, tmp_path / "model.tar.gz", {**SCALE, "RASA_INSTANCES": "3"})
    assert stack.ports.rasa_extra == (7010, 7020)  # RASA_PORT+1 is the webhook's default
    assert stack.process_names == ["app", "actions", "webhook", "rasa", "rasa-2", "rasa-3", "feeder", "feeder-2",
                                   "feeder-3", "outbox-1", "outbox-2"]
    command = stack.command("rasa-3")
    assert command[command.index("--port") + 1] == "7020"
    assert command[command.index("--endpoints") + 1] == "endpoints-scale.yml"
    assert stack.health_url("rasa-2") == "http://127.0.0.1:7010/webhooks/messenger/"
    assert stack.command("outbox-2")[-4:] == ["outbox", "worker", "--id", "outbox-2"]
    assert stack.env["RASA_URL"] == "http://127.0.0.1:7000"  # the app's Rasa HTTP API calls: the first instance
    given = build_stack(Ports(rasa=7000, rasa_extra=(9001, 9002, 9003)), tmp_path, tmp_path / "m", SCALE)
    assert given.ports.rasa_extra == (9001,)  # ports given are used, as many as there are instances


def test_the_embedded_stack_keeps_its_endpoints_and_one_rasa(tmp_path: Path) -> None:
    stack = build_stack(Ports(), tmp_path, tmp_path / "model.tar.gz", {})
    assert (stack.endpoints, stack.rasa_names, stack.outbox_worker_names) == ("endpoints.yml", ["rasa"], [])
    assert "RASA_REDIS_HOST" not in stack.env or stack.env["RASA_REDIS_HOST"] == ""


def test_labels_name_each_instance() -> None:
    assert [label(n) for n in ("rasa", "rasa-2", "outbox-1", "app")] == [
        "Rasa", "Rasa (rasa-2)", "outbox worker outbox-1", "the app"]


def test_the_service_check_names_what_is_missing_and_where_to_set_it_without_passwords() -> None:
    settings = load_settings({**SCALE, "RABBITMQ_URL": "amqp://bot:hunter2@mq.internal:5672/"})
    assert [service.name for service in scale_services(settings)] == ["PostgreSQL", "Redis", "RabbitMQ"]
    down = {("mq.internal", 5672): "Connection refused"}
    problems = unreachable_services(settings, reach=lambda address: down.get(address))
    assert len(problems) == 1
    assert problems[0].startswith("RabbitMQ is not reachable at mq.internal:5672 (Connection refused); start it or "
                                  "set RABBITMQ_URL")
    assert "hunter2" not in problems[0]
    assert unreachable_services(load_settings({}), reach=lambda _a: "down") == []  # embedded: nothing needed


def test_a_separate_stores_database_is_checked_too() -> None:
    settings = load_settings({**SCALE, "BOT_DATABASE_URL": "postgresql://bot@stores.internal/bot",
                              "RASA_TRACKER_DB_URL": "postgresql://rasa@tracker.internal/rasa"})
    assert [(s.name, s.variable) for s in scale_services(settings)][:2] == [
        ("PostgreSQL", "RASA_TRACKER_DB_URL"), ("PostgreSQL", "BOT_DATABASE_URL")]


class FakeProcess:
    def __init__(self) -> None:
        self.pid = 1
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode


class FakeStack:
    log_dir = Path("/var/log/bot")

    def __init__(self, names: list[str]) -> None:
        self.processes = {name: FakeProcess() for name in names}
        self.spawned: list[str] = []

    def spawn(self, name: str) -> None:
        self.spawned.append(name)
        self.processes[name] = FakeProcess()


@pytest.mark.parametrize("dead", ["rasa-2", "outbox-1"])
def test_the_supervisor_restarts_any_instance_of_the_scale_profile(dead: str) -> None:
    now = [0.0]
    lines: list[str] = []
    stack = FakeStack(["app", "actions", "webhook", "rasa", "rasa-2", "outbox-1", "outbox-2"])
    supervisor = Supervisor(stack, say=lines.append, clock=lambda: now[0])  # type: ignore[arg-type]
    stack.processes[dead].returncode = 1
    supervisor.check()
    now[0] = 1.0
    supervisor.check()
    assert stack.spawned == [dead]
    assert label(dead) in lines[0] and "Restarting it in 1 s" in lines[0]


def test_bot_run_with_the_scale_profile_names_a_missing_service_and_starts_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from bot import cli

    monkeypatch.setenv("BOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens on port 1
    monkeypatch.delenv("BOT_PROFILE", raising=False)
    monkeypatch.setattr(cli, "ensure_model", lambda: pytest.fail("bot run went on without Redis"))
    assert cli.main(["run", "--profile", "scale"]) == 2
    err = capsys.readouterr().err
    assert "error: Redis is not reachable at 127.0.0.1:1" in err and "set REDIS_URL" in err
