"""The production process files (deploy/) describe the topology `make run PROFILE=scale` starts: every process of the
stack has a systemd unit and a compose service running the same module, with the environment names the stack sets
and the settings read, restarted with backoff, and nothing published beyond loopback. No Docker engine or systemd
runs here: the files are read, not started."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import tomllib
import yaml

from bot.profile import SCALE_ENDPOINTS, rasa_endpoints_env
from bot.stack import Ports, Stack, build_stack
from core.settings import ROOT, load_settings

DEPLOY = ROOT / "deploy"
SYSTEMD = DEPLOY / "systemd"
SCALE = {"BOT_PROFILE": "scale", "RASA_INSTANCES": "2", "OUTBOX_WORKERS": "2"}
# Set by the stack but not by a host's files, and why:
NOT_IN_DEPLOY = {
    "RASA_TRACKER_DB",  # the embedded profile's SQLite tracker file (endpoints.yml); the scale profile has none
    "PYTHONPATH",  # `bot run` runs from the checkout; the units set it, the images install the packages
    *rasa_endpoints_env(load_settings(SCALE)),  # the Rasa launcher fills them in from the settings
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Stack:
    return build_stack(Ports(), tmp_path_factory.mktemp("deploy"), Path("models"), SCALE)


@pytest.fixture(scope="module")
def set_by_stack(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The variables `bot run` gives its processes on top of its own environment."""
    inherited = dict(os.environ)
    built = build_stack(Ports(), tmp_path_factory.mktemp("deploy-env"), Path("models"), SCALE)
    return {name for name, value in built.env.items() if inherited.get(name) != value} | set(SCALE)


def unit(name: str) -> dict[str, list[str]]:
    """A unit file as {key: [values…]} (systemd allows a key more than once)."""
    entries: dict[str, list[str]] = {}
    for line in (SYSTEMD / name).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            entries.setdefault(key.strip(), []).append(value.strip())
    return entries


def unit_of(process: str) -> str:
    if process.startswith("rasa"):
        return "rasa@.service"
    if process.startswith("feeder"):
        return "feeder@.service"
    if process.startswith("outbox-"):
        return "outbox-worker@.service"
    return f"ecuabots-{process}.service"


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yml").read_text(encoding="utf-8"))


def env_example() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in (DEPLOY / "ecuabots.env.example").read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
    return {name: value for name, value in pairs}


def module_of(command: list[str]) -> str:
    """What a command runs: the module after -m (and uvicorn's app), with `outbox worker` kept whole."""
    module = command[command.index("-m") + 1]
    if module == "uvicorn":
        return command[command.index("-m") + 2]
    return f"{module} {command[command.index('-m') + 2]}" if module == "outbox" else module


def settings_variables() -> set[str]:
    source = (ROOT / "core" / "settings.py").read_text(encoding="utf-8")
    return set(re.findall(r"""get\(\s*["']([A-Z][A-Z0-9_]+)["']""", source)) | set(
        re.findall(r'"([A-Z][A-Z0-9_]+)"', source))


def test_every_process_of_the_scale_stack_has_a_unit_and_a_compose_service(stack: Stack) -> None:
    assert stack.process_names == ["app", "actions", "webhook", "rasa", "rasa-2", "feeder", "feeder-2", "outbox-1",
                                   "outbox-2"]
    services = compose()["services"]
    for process in stack.process_names:
        assert (SYSTEMD / unit_of(process)).exists(), f"no systemd unit for {process}"
        assert process in services, f"no compose service for {process}"
    wanted = " ".join(unit("ecuabots.target")["Wants"])
    assert len(re.findall(r"rasa@\d+\.service", wanted)) == len(stack.rasa_names)
    assert len(re.findall(r"feeder@\d+\.service", wanted)) == len(stack.feeder_names)
    assert len(re.findall(r"outbox-worker@\d+\.service", wanted)) == len(stack.outbox_worker_names)
    for name in ("app", "actions", "webhook"):
        assert f"ecuabots-{name}.service" in wanted


def test_each_unit_and_service_runs_what_the_stack_runs(stack: Stack) -> None:
    services = compose()["services"]
    for process in stack.process_names:
        ours = stack.command(process)
        exec_start = unit(unit_of(process))["ExecStart"][0].split()
        assert module_of(exec_start) == module_of(ours), process
        assert module_of(services[process]["command"]) == module_of(ours), process
        if process.startswith("rasa"):
            for command in (exec_start, services[process]["command"]):
                assert command[command.index("--endpoints") + 1] == SCALE_ENDPOINTS
                assert "--enable-api" in command and "--credentials" in command
    templated = unit("rasa@.service")["ExecStart"][0].split()
    assert templated[templated.index("--port") + 1] == "%i"  # rasa@5005, rasa@5015 …
    assert "--id" in unit("outbox-worker@.service")["ExecStart"][0]


def test_the_deploy_files_use_the_names_the_stack_sets_and_the_settings_read(set_by_stack: set[str]) -> None:
    env = env_example()
    services = compose()["services"]
    composed = {name for service in services.values() for name in (service.get("environment") or {})}
    missing = set_by_stack - NOT_IN_DEPLOY - set(env) - composed
    assert not missing, f"the stack sets {missing} but the deploy files do not"
    known = settings_variables() | {"PYTHONPATH", "RASA_TELEMETRY_ENABLED", "TF_CPP_MIN_LOG_LEVEL", "RASA_INSTANCE_ID"}
    app_services = {name: s for name, s in services.items() if s.get("image", "").startswith("ecuabots")}
    unknown = (set(env) | {n for s in app_services.values() for n in (s.get("environment") or {})}) - known
    assert not unknown, f"not a setting: {unknown}"
    for name in ("rasa", "rasa-2"):
        assert services[name]["environment"]["RASA_INSTANCE_ID"] == name  # the journal claims' owner
    assert unit("rasa@.service")["Environment"][-1].startswith("RASA_INSTANCE_ID=%H:rasa-")
    assert env["BOT_PROFILE"] == "scale" and services["app"]["environment"]["BOT_PROFILE"] == "scale"


def test_every_process_is_restarted_with_backoff_and_only_loopback_is_published() -> None:
    for path in sorted(SYSTEMD.glob("*.service")):
        entries = unit(path.name)
        assert entries["Restart"] == ["always"], path.name
        assert entries["RestartSec"] == ["1"] and entries["RestartMaxDelaySec"] == ["60"], path.name
        assert entries["StartLimitIntervalSec"] == ["0"], path.name  # never given up on
        assert entries["EnvironmentFile"] == ["/etc/ecuabots/ecuabots.env"], path.name
    app = unit("ecuabots-app.service")["ExecStart"][0].split()
    assert app[app.index("--host") + 1] == "127.0.0.1"
    rasa = unit("rasa@.service")["ExecStart"][0].split()
    assert rasa[rasa.index("--interface") + 1] == "127.0.0.1"
    for name, service in compose()["services"].items():
        assert service["restart"] == "unless-stopped", name
        for published in service.get("ports", []):
            assert published.startswith("127.0.0.1:"), f"{name} publishes {published} beyond loopback"


def test_the_images_are_built_from_the_two_dockerfiles() -> None:
    """Each image holds every package pyproject installs (`pip install .` finds only what was copied)."""
    packages = [pattern.rstrip("*") for pattern in
                tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"][
                    "find"]["include"]]
    assert {"comments", "links", "page_profile"} <= set(packages)
    services = compose()["services"]
    dockerfiles = {service["build"]["dockerfile"] for service in services.values() if "build" in service}
    assert dockerfiles == {"deploy/Dockerfile.app", "deploy/Dockerfile.rasa"}
    for dockerfile in dockerfiles:
        text = (ROOT / dockerfile).read_text(encoding="utf-8")
        for package in packages:
            assert f"COPY {package} {package}" in text, f"{dockerfile} lacks {package}/"
    assert "COPY domain.yml" in (DEPLOY / "Dockerfile.app").read_text(encoding="utf-8")  # links/intents.py reads it
    assert "FROM python:3.10" in (DEPLOY / "Dockerfile.rasa").read_text(encoding="utf-8")  # Rasa 3.6's Python
    assert "FROM python:3.11" in (DEPLOY / "Dockerfile.app").read_text(encoding="utf-8")
    assert "endpoints-scale.yml" in (DEPLOY / "Dockerfile.rasa").read_text(encoding="utf-8")
