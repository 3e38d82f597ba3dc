"""Bearer tokens for the CLI: the one given, or a development token minted with the local secret.

Development tokens are signed with `API_JWT_SECRET`, taken from the environment or, failing that,
from the `.devstack/env` file `make services` writes. Production tokens come from the identity
provider and are passed with `--token` / `EXPORTCTL_TOKEN`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cli.errors import EXIT_USAGE, CliError

SECRET_VARIABLE = "API_JWT_SECRET"
_CHECKOUT = Path(__file__).resolve().parent.parent
_TTL = re.compile(r"(\d+)([smhd]?)")
_TTL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class DevSecret:
    value: str
    source: str
    """Where it was found, to tell the user: the variable's name or the env file's path."""


def _env_files() -> list[Path]:
    if devstack := os.environ.get("DEVSTACK_DIR"):
        return [Path(devstack) / "env"]
    return [Path.cwd() / ".devstack" / "env", _CHECKOUT / ".devstack" / "env"]


def _read_env_file(path: Path, name: str) -> str | None:
    """The value of `export NAME=value` (or `NAME=value`) in a shell env file."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.removeprefix("export ").partition("=")
        if sep and key.strip() == name:
            return value.strip().strip("'\"")
    return None


def dev_secret() -> DevSecret | None:
    """The local API secret: `$API_JWT_SECRET`, else the one in `.devstack/env`, else None."""
    if value := os.environ.get(SECRET_VARIABLE):
        return DevSecret(value, SECRET_VARIABLE)
    for path in _env_files():
        if value := _read_env_file(path, SECRET_VARIABLE):
            return DevSecret(value, str(path))
    return None


def parse_ttl(text: str) -> timedelta:
    """`3600`, `90s`, `15m`, `12h` or `7d`."""
    match = _TTL.fullmatch(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration such as 3600, 90s, 15m, 12h or 7d")
    return timedelta(seconds=int(match.group(1)) * _TTL_UNITS[match.group(2)])


def mint(secret: str, sub: str, tenant: str, ttl: timedelta) -> str:
    # Imported here: the API package (FastAPI, Temporal) takes a while to import, and most
    # commands do not mint.
    from api.auth import mint_token

    return mint_token(secret, sub, tenant, ttl)


def require_dev_secret() -> DevSecret:
    secret = dev_secret()
    if secret is None:
        raise CliError(
            f"no secret to sign a development token: set {SECRET_VARIABLE} or run "
            "`make services` (which writes .devstack/env)",
            EXIT_USAGE,
        )
    return secret
