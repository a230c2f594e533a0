"""docker-compose.temporal.yml and the Dockerfile cannot be run here (no Docker engine), so
they are checked as text: settings, services, ports, health checks and entry points line up."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from workflowable.ops.cli import app, load_types
from workflowable.settings import Settings
from workflowable.workflows.messages import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.temporal.yml").read_text())
SERVICES = COMPOSE["services"]


def environment_of(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    return dict(item.split("=", 1) for item in env) if isinstance(env, list) else {k: str(v) for k, v in env.items()}


def workflowable_services() -> dict[str, dict]:
    return {name: s for name, s in SERVICES.items() if any(k.startswith("WORKFLOWABLE_") for k in environment_of(s))}


def test_every_variable_is_a_setting_and_the_settings_load():
    fields = set(Settings.model_fields)
    services = workflowable_services()
    assert {"migrate", "worker"} <= set(services)
    for name, service in services.items():
        env = {k: v for k, v in environment_of(service).items() if k.startswith("WORKFLOWABLE_")}
        unknown = {k for k in env if k.removeprefix("WORKFLOWABLE_").lower() not in fields}
        assert not unknown, f"{name}: {unknown} are not settings"
        Settings(**{k.removeprefix("WORKFLOWABLE_").lower(): v for k, v in env.items()})  # they validate


def test_addresses_point_at_services_that_listen_there():
    env = environment_of(SERVICES["worker"])
    host, port = env["WORKFLOWABLE_TEMPORAL_ADDRESS"].rsplit(":", 1)
    assert host == "temporal" and any(p.split(":")[-1] == port for p in SERVICES["temporal"]["ports"])
    url = urlsplit(env["WORKFLOWABLE_DATABASE_URL"])
    mirror = environment_of(SERVICES[url.hostname])
    assert url.port == 5432
    assert (url.username, url.password, url.path.lstrip("/")) == (mirror["POSTGRES_USER"], mirror["POSTGRES_PASSWORD"], mirror["POSTGRES_DB"])
    temporal = environment_of(SERVICES["temporal"])
    assert temporal["POSTGRES_SEEDS"] in SERVICES and temporal["POSTGRES_SEEDS"] != url.hostname  # Temporal has its own Postgres
    for service in ("temporal-setup", "temporal-ui"):
        assert environment_of(SERVICES[service])["TEMPORAL_ADDRESS"] == env["WORKFLOWABLE_TEMPORAL_ADDRESS"]


def test_dependencies_exist_and_wait_on_what_can_report():
    for name, service in SERVICES.items():
        depends = service.get("depends_on", {})
        for target, rule in (depends.items() if isinstance(depends, dict) else ((d, {}) for d in depends)):
            assert target in SERVICES, f"{name} depends on unknown {target}"
            condition = (rule or {}).get("condition", "service_started")
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[target], f"{name} waits for {target} to be healthy, which has no health check"
            if condition == "service_completed_successfully":
                assert SERVICES[target].get("restart") == "no", f"{target} must be a one-shot service"
    for name in ("temporal-db", "temporal", "mirror-db", "worker"):
        assert "healthcheck" in SERVICES[name], name


def test_host_ports_are_unique():
    host_ports = [p.split(":")[0] for s in SERVICES.values() for p in s.get("ports", [])]
    assert len(host_ports) == len(set(host_ports))


def registered_commands() -> set[tuple[str, ...]]:
    from typer.main import get_command

    root = get_command(app)
    found = set()
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        found.add((name,))
        for sub in getattr(command, "commands", {}):
            found.add((name, sub))
    return found


@pytest.mark.parametrize("service", ["migrate", "worker"])
def test_commands_are_real_entry_points(service):
    command = tuple(SERVICES[service]["command"])
    assert command[:2] in registered_commands() or command[:1] in registered_commands()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'ENTRYPOINT \["workflowable"\]', dockerfile)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["workflowable"] == "workflowable.ops.cli:main"
    health = SERVICES["worker"]["healthcheck"]["test"]
    assert health[1] == "workflowable" and (health[2],) in registered_commands()


def test_the_image_has_what_the_worker_loads():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (\S+)", dockerfile, re.M):
        assert (ROOT / source).exists(), source
    app_spec = environment_of(SERVICES["worker"])["WORKFLOWABLE_APP"]
    assert app_spec.split(":")[0].split(".")[0] in dockerfile  # its package is copied in
    assert load_types(app_spec)


def test_the_setup_service_registers_every_search_attribute():
    script = "\n".join(SERVICES["temporal-setup"]["entrypoint"])
    for key in SEARCH_ATTRIBUTES:
        assert f"{key.name}:{key.indexed_value_type.name.capitalize()}" in script
