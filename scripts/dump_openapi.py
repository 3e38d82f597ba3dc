"""Print the API's OpenAPI document as JSON, from `create_app` without a server.

The TypeScript client's types are generated from it (`make ts-client`); the settings are the
defaults, never the environment, so the document is the same on every machine.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from api.app import create_app
from domain.settings import Settings


def openapi_document() -> dict[str, Any]:
    document: dict[str, Any] = create_app(Settings.model_construct()).openapi()
    return document


def openapi_json() -> str:
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    sys.stdout.write(openapi_json())


if __name__ == "__main__":
    main()
