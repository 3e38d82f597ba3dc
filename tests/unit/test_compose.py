"""docker-compose.yml without a Docker engine: valid against the Compose specification's JSON
schema (the copy `check-jsonschema` vendors), every setting the code reads passed to the API and
the worker and documented in .env.example, and the worker free to scale."""

from __future__ import annotations

import json
import re
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from domain.settings import Settings
from workflows.export_workflow import OWNER_ATTRIBUTE, STATUS_ATTRIBUTE, TENANT_ATTRIBUTE

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
APP_SERVICES = ("api", "worker-workflows", "worker-activities")
BOTO3_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


@cache
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def compose_schema() -> dict[str, Any]:
    vendored = files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema: dict[str, Any] = json.loads(vendored.read_text(encoding="utf-8"))
    return schema


def code_variables() -> list[str]:
    """Every variable the code reads: the settings' fields, and boto3's credentials."""
    return [name.upper() for name in Settings.model_fields] + list(BOTO3_VARIABLES)


def documented_variables() -> set[str]:
    """`NAME=` lines of .env.example, commented out (fixed by the compose file) or not."""
    return {
        match.group(1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if (match := re.match(r"#?\s*([A-Z][A-Z0-9_]*)=", line))
    }


def test_the_compose_file_follows_the_compose_specification() -> None:
    schema = compose_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(
        validator_class(schema).iter_errors(compose()), key=lambda e: list(e.absolute_path)
    )
    assert not errors, "\n".join(
        f"{'.'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in errors
    )


def test_the_schema_check_catches_a_broken_file() -> None:
    """Guards the test above against a schema that accepts anything."""
    broken: dict[str, Any] = {
        "services": {"api": {"image": "x", "ports": {"not": "a list"}, "bogus": 1}}
    }
    schema = compose_schema()
    assert list(jsonschema.validators.validator_for(schema)(schema).iter_errors(broken))


@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_variable_the_code_reads_is_set_for_the_app(service: str) -> None:
    environment = compose()["services"][service]["environment"]
    assert isinstance(environment, dict)
    missing = [name for name in code_variables() if name not in environment]
    assert not missing, f"{service} lacks {missing}"


def test_every_variable_is_documented_in_the_env_example() -> None:
    referenced = set(_INTERPOLATION.findall(COMPOSE_FILE.read_text()))
    undocumented = sorted((set(code_variables()) | referenced) - documented_variables())
    assert not undocumented, f".env.example does not document {undocumented}"


def test_workflows_and_activities_run_in_separate_services_and_activities_scale() -> None:
    services = compose()["services"]
    assert services["worker-workflows"]["command"] == ["export-worker", "--role", "workflows"]
    worker = services["worker-activities"]
    assert worker["command"] == ["export-worker", "--role", "activities"]
    assert "container_name" not in worker
    assert "ports" not in worker
    assert "build" in worker
    graceful = int(Settings().worker_graceful_shutdown_seconds)
    assert int(worker["stop_grace_period"].removesuffix("s")) > graceful


def test_the_api_and_worker_run_the_image_built_from_the_dockerfile() -> None:
    api = compose()["services"]["api"]
    assert api["command"][:3] == ["export-api", "--host", "0.0.0.0"]
    assert api["build"] == "."
    assert "FROM python:3.11-slim" in (REPO_ROOT / "Dockerfile").read_text()


def test_the_search_attributes_are_registered_as_keywords() -> None:
    script = "\n".join(compose()["services"]["temporal-init"]["command"])
    names = re.search(r"for name in ([\w ]+); do", script)
    assert names is not None
    expected = {key.name for key in (OWNER_ATTRIBUTE, STATUS_ATTRIBUTE, TENANT_ATTRIBUTE)}
    assert set(names.group(1).split()) == expected
    assert '--name "$$name" --type Keyword' in script


def test_mongodb_is_a_replica_set_and_every_port_is_on_loopback() -> None:
    services = compose()["services"]
    assert "--replSet" in services["mongodb"]["command"]
    assert "replicaSet=rs0" in services["api"]["environment"]["MONGODB_URI"]
    published = [port for service in services.values() for port in service.get("ports", [])]
    assert published
    assert all(str(port).startswith("127.0.0.1:") for port in published)


def test_the_operator_must_set_the_secrets() -> None:
    """No secret has a default in the compose file: `docker compose up` stops and says so."""
    environment = compose()["services"]["api"]["environment"]
    for name in ("API_JWT_SECRET", "WEBHOOK_SIGNING_SECRET"):
        assert re.fullmatch(rf"\$\{{{name}:\?.+\}}", environment[name]), environment[name]
    assert "change-me-local-development-only" not in COMPOSE_FILE.read_text()
