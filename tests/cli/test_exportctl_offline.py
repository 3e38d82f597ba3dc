"""`exportctl` without the API: help, usage errors, development tokens, an unreachable API."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

import jwt
import pytest

from cli.credentials import parse_ttl
from cli.request_options import parse_column
from tests.cli.conftest import Cli

COMMANDS = ["start", "status", "watch", "list", "cancel", "download", "explain", "token"]
SECRET = "a-test-secret-of-at-least-32-bytes!!"


@pytest.fixture
def no_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No API_JWT_SECRET in the environment and an empty DEVSTACK_DIR (returned)."""
    monkeypatch.delenv("API_JWT_SECRET", raising=False)
    monkeypatch.setenv("DEVSTACK_DIR", str(tmp_path))
    return tmp_path


async def test_help_lists_every_command(cli: Cli) -> None:
    result = await cli("--help")
    assert result.code == 0
    assert result.out.startswith("usage: exportctl")
    for command in COMMANDS:
        assert f"    {command} " in result.out
    assert "exit codes:" in result.out


@pytest.mark.parametrize("command", COMMANDS)
async def test_help_of_every_command(cli: Cli, command: str) -> None:
    result = await cli(command, "--help")
    assert result.code == 0
    assert result.out.startswith(f"usage: exportctl {command}")
    assert "--api-url" in result.out  # the connection options are everywhere
    assert result.err == ""


async def test_usage_errors_exit_2(cli: Cli) -> None:
    assert (await cli()).code == 2
    no_collection = await cli("start")
    assert no_collection.code == 2
    assert "--collection" in no_collection.err
    bad_json = await cli("explain", "--collection", "c", "--pipeline", "[{")
    assert bad_json.code == 2
    assert "exportctl: error: --pipeline: not valid JSON" in bad_json.err
    not_a_list = await cli("explain", "--collection", "c", "--pipeline", '{"$match": {}}')
    assert not_a_list.code == 2
    assert "a pipeline is a JSON list of stages" in not_a_list.err
    missing = await cli("explain", "--collection", "c", "--pipeline-file", "/nonexistent.json")
    assert missing.code == 2
    assert "cannot read the pipeline file" in missing.err
    both = await cli("start", "--collection", "c", "--pipeline", "[]", "--pipeline-file", "p")
    assert both.code == 2
    assert (await cli("token", "--ttl", "soon")).code == 2


async def test_an_unreachable_api_exits_1(cli: Cli) -> None:
    result = await cli("--api-url", "http://127.0.0.1:1", "--token", "t", "status", "exp_x")
    assert result.code == 1
    assert "cannot reach the API at http://127.0.0.1:1" in result.err


async def test_token_is_signed_with_the_secret_from_the_environment(
    cli: Cli, no_secret: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_JWT_SECRET", SECRET)

    result = await cli("token", "--sub", "alice", "--tenant", "acme", "--ttl", "2h")

    assert result.code == 0, result.err
    claims = jwt.decode(result.out.strip(), SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["tenant"]) == ("alice", "acme")
    assert claims["exp"] - claims["iat"] == 7200
    assert "signed with API_JWT_SECRET" in result.err


async def test_token_falls_back_to_the_devstack_env_file(cli: Cli, no_secret: Path) -> None:
    (no_secret / "env").write_text(f"export S3_BUCKET=exports\nexport API_JWT_SECRET={SECRET}\n")

    result = await cli("token")

    assert result.code == 0, result.err
    claims = jwt.decode(result.out.strip(), SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["tenant"]) == ("dev-user", "dev-tenant")
    assert claims["exp"] - claims["iat"] == 3600
    assert f"signed with {no_secret / 'env'}" in result.err


async def test_token_without_a_secret_is_a_usage_error(cli: Cli, no_secret: Path) -> None:
    result = await cli("token")
    assert result.code == 2
    assert "no secret to sign a development token" in result.err
    assert result.out == ""


def test_columns_and_durations_parse() -> None:
    assert parse_column("total") == {"path": "total"}
    assert parse_column("a.b:Header: with colon") == {"path": "a.b", "header": "Header: with colon"}
    assert parse_column("a:") == {"path": "a", "header": ""}
    with pytest.raises(argparse.ArgumentTypeError):
        parse_column(":Header")
    assert parse_ttl("90") == timedelta(seconds=90)
    assert parse_ttl("15m") == timedelta(minutes=15)
    assert parse_ttl("7d") == timedelta(days=7)
    for bad in ("", "0", "1w", "-5m", "h"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_ttl(bad)
