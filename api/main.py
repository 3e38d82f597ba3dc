"""`export-api`: serve the API with uvicorn."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import uvicorn

from api.app import create_app
from domain.settings import get_settings


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="export-api",
        description="Serve the durable export API (settings come from the environment).",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn log level (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(get_settings()), host=args.host, port=args.port, log_level=args.log_level
    )


if __name__ == "__main__":
    main()
