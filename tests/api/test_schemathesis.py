"""Property-based requests generated from the OpenAPI schema: no input yields a 5xx.

The schema comes from the app itself (no server needed to collect the tests); the requests go
to a served app whose exports stay PENDING (no worker), cleaned up by `idle_api`.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import Case
from schemathesis.checks import not_a_server_error

from api.app import create_app
from domain.settings import Settings
from tests.api.support import Api, IdleApiFactory, new_owner

pytestmark = [pytest.mark.services, pytest.mark.slow]

schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())
OWNER = new_owner()  # one caller for the whole run, so the running-export limit is reached too


@pytest.fixture(scope="module")
def fuzzed_api(idle_api_module: IdleApiFactory) -> Api:
    return idle_api_module()


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_request_makes_the_api_fail(case: Case[Any], fuzzed_api: Api) -> None:
    case.call_and_validate(
        base_url=fuzzed_api.url,
        headers=fuzzed_api.headers(OWNER),
        checks=[not_a_server_error],
    )


async def test_docs_show_request_and_response_examples(
    fuzzed_api: Api, http: httpx.AsyncClient
) -> None:
    assert (await http.get(f"{fuzzed_api.url}/docs")).status_code == 200
    spec = (await http.get(f"{fuzzed_api.url}/openapi.json")).json()
    body = spec["paths"]["/exports"]["post"]["requestBody"]["content"]["application/json"]
    assert set(body["examples"]) == {"minimal", "full"}
    for name in ("ExportAccepted", "ExportView", "ExportPage", "ErrorBody"):
        assert spec["components"]["schemas"][name]["examples"], name
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
