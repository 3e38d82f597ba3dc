"""Hostile and broken input: the request corpus in `corpus/`, and random pipelines.

Every corpus file is one request (see `corpus/README.md`). Those expecting a 4xx must get it, in
the one error shape, with the expected message fragment, and none of them may start a workflow:
Temporal visibility is counted on the corpus API's own task queue and for the corpus owner
before and after (and a final valid request proves the count would have seen one). Requests
expecting 200 are `explain` calls whose plan must still begin with the caller's tenant filter.
Requests expecting 202 are filenames that are accepted: each is exported for real, and its
object key and the Content-Disposition S3 serves must be sane and give back the exact name.

The property run feeds random pipelines through validation and chunk planning: they may be
refused (`PipelineRejected`, `PlanRefused`, `ExportRefused`), never crash.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import csv
import io
import ipaddress
import json
import math
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import bson
import httpx
import jwt
import pytest
from bson.code import Code
from bson.dbref import DBRef
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import ValidationError
from temporalio.client import Client

from api.auth import mint_token
from connections.s3 import make_s3_client
from connections.temporal import connect
from domain import objects
from domain.formats.cell_format import FORMULA_TRIGGERS, format_cell
from domain.formats.encoding import EncodingSpec, encode_part
from domain.formats.relaxed_json import relaxed_json
from domain.models import Column, ExportRequest, Owner
from domain.pipeline.export_plan import ExportRefused, plan_export
from domain.pipeline.operators import operator_refusal, variable_refusal
from domain.pipeline.planning import PlanRefused, plan_chunks
from domain.pipeline.validation import (
    _ADMIN_STAGES,
    _REFUSED_OPERATORS,
    _REFUSED_STAGES,
    ALLOWED_STAGES,
    PipelineRejected,
    validate_pipeline,
)
from domain.settings import Settings
from domain.webhook_policy import static_refusal
from tests.api.support import Api, serve
from tests.integration import export_harness as h
from tests.reliability.results import Results, full_run
from workflows.export_workflow import ExportWorkflow

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.services,
    pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),  # the HS512 case
]

CORPUS = Path(__file__).resolve().parent / "corpus"
CORPUS_TENANT = "tenant-corpus"
WRONG_SECRET = "not-the-api-secret-but-long-enough-for-hs256"
UNKNOWN_ID = "exp_" + "0" * 32


@dataclass(frozen=True)
class Case:
    name: str
    spec: dict[str, Any]

    @property
    def status(self) -> int:
        return int(self.spec["expect_status"])


def corpus() -> list[Case]:
    return [Case(path.stem, json.loads(path.read_text())) for path in sorted(CORPUS.glob("*.json"))]


# -- building a request from a corpus file ----------------------------------------------------


def _substitute(value: Any, owner: Owner) -> Any:
    if isinstance(value, str):
        return value.replace("{tenant}", owner.tenant).replace("{unknown_id}", UNKNOWN_ID)
    if isinstance(value, list):
        return [_substitute(item, owner) for item in value]
    if isinstance(value, dict):
        return {key: _substitute(item, owner) for key, item in value.items()}
    return value


def _jwt(secret: str, claims: Mapping[str, Any], algorithm: str = "HS256") -> str:
    return jwt.encode(dict(claims), secret, algorithm=algorithm)


def auth_headers(auth: Any, owner: Owner, secret: str) -> dict[str, str]:
    """The Authorization header a corpus `auth` value stands for."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": owner.user_id,
        "tenant": owner.tenant,
        "iat": now,
        "exp": now + timedelta(hours=1),
    }
    if isinstance(auth, dict):
        for key, value in auth.get("claims", {}).items():
            if key == "nbf_in":
                claims["nbf"] = now + timedelta(seconds=value)
            else:
                claims[key] = value
        for key in auth.get("omit", []):
            claims.pop(key)
        return {"Authorization": f"Bearer {_jwt(secret, claims)}"}
    valid = mint_token(secret, owner.user_id, owner.tenant, timedelta(hours=1))
    match auth:
        case "valid":
            return {"Authorization": f"Bearer {valid}"}
        case "none":
            return {}
        case "basic":
            return {"Authorization": "Basic " + base64.b64encode(b"admin:admin").decode()}
        case "empty_bearer":
            return {"Authorization": "Bearer"}
        case "garbage":
            return {"Authorization": "Bearer not.a.jwt"}
        case "expired":
            expired = mint_token(secret, owner.user_id, owner.tenant, timedelta(seconds=-120))
            return {"Authorization": f"Bearer {expired}"}
        case "forged":
            forged = mint_token(WRONG_SECRET, owner.user_id, owner.tenant, timedelta(hours=1))
            return {"Authorization": f"Bearer {forged}"}
        case "alg_none":
            header = _b64({"alg": "none", "typ": "JWT"})
            payload = _b64(
                {**claims, "iat": int(now.timestamp()), "exp": int(now.timestamp()) + 3600}
            )
            return {"Authorization": f"Bearer {header}.{payload}."}
        case "hs512":
            return {"Authorization": f"Bearer {_jwt(secret, claims, 'HS512')}"}
        case "tampered":
            head, _, rest = valid.partition(".")
            payload, _, signature = rest.partition(".")
            decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            decoded["tenant"] = "tenant-b"
            return {"Authorization": f"Bearer {head}.{_b64(decoded)}.{signature}"}
    raise AssertionError(f"unknown auth kind {auth!r}")


def _b64(value: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def _generated(spec: Mapping[str, Any]) -> Any:
    """A body too big or too deep to keep as a file."""
    kind = spec["kind"]
    match kind:
        case "many_stages":
            return {
                "collection": "orders",
                "pipeline": [{"$match": {"i": i}} for i in range(spec["count"])],
            }
        case "stages_in_facet":
            inner = [{"$match": {"i": i}} for i in range(spec["inner"])]
            top = [{"$match": {"i": i}} for i in range(spec["top"] - 1)]
            return {"collection": "orders", "pipeline": [*top, {"$facet": {"a": inner}}]}
        case "nested_lookups":
            stage: dict[str, Any] = {"$match": {}}
            for _ in range(spec["depth"] - 1):
                stage = {"$lookup": {"from": "customers", "as": "c", "pipeline": [stage]}}
            return {"collection": "orders", "pipeline": [stage]}
        case "deep_expression" | "deep_array":
            value: Any = 1
            for _ in range(spec["depth"]):
                value = {"a": value} if kind == "deep_expression" else [value]
            return {"collection": "orders", "pipeline": [{"$match": {"v": value}}]}
        case "big_pipeline":
            values = ["x" * 100] * (spec["bytes"] // 108)
            return {"collection": "orders", "pipeline": [{"$match": {"k": {"$in": values}}}]}
        case "many_columns":
            columns = [{"path": f"c{i}"} for i in range(spec["count"])]
            return {"collection": "orders", "columns": columns}
    raise AssertionError(f"unknown generated body {kind!r}")


def _body(case: Case, owner: Owner) -> tuple[bytes | None, bool]:
    """The raw body and whether to send it chunked (without Content-Length)."""
    spec = case.spec
    if "body" in spec:
        return json.dumps(_substitute(spec["body"], owner), ensure_ascii=False).encode(), False
    if "body_raw" in spec:
        return spec["body_raw"].encode(), False
    if "body_file" in spec:
        return (CORPUS / spec["body_file"]).read_bytes(), False
    generated = spec.get("body_generated")
    if generated is None:
        return None, False
    if generated["kind"] == "deep_json":
        depth = generated["depth"]
        text = '{"collection": "orders", "pipeline": [{"$match": ' + '{"a": ' * depth
        return (text + "1" + "}" * depth + "}]}").encode(), False
    if generated["kind"] == "oversize":
        size = generated["bytes"]
        skeleton = json.dumps({"collection": "orders", "report_id": ""})
        padding = "x" * (size - len(skeleton))
        body = json.dumps({"collection": "orders", "report_id": padding}).encode()
        assert len(body) >= size
        return body, bool(generated.get("chunked"))
    return json.dumps(_generated(generated)).encode(), False


async def send(http: httpx.AsyncClient, api: Api, case: Case, owner: Owner) -> httpx.Response:
    spec = case.spec
    headers = auth_headers(spec.get("auth", "valid"), owner, api.settings.api_jwt_secret)
    body, chunked = _body(case, owner)
    if body is not None:
        headers["Content-Type"] = "application/json"
    headers.update(spec.get("headers", {}))
    sent = [(k.encode(), v.encode()) for k, v in headers.items()]  # non-ASCII values as UTF-8
    url = api.url + _substitute(spec["path"], owner)
    if chunked and body is not None:
        payload = body

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(payload), 64 * 1024):
                yield payload[start : start + 64 * 1024]

        return await http.request(spec["method"], url, headers=sent, content=chunks())
    return await http.request(spec["method"], url, headers=sent, content=body)


def _contains(tree: Any, wanted: Any) -> bool:
    if tree == wanted:
        return True
    if isinstance(tree, dict):
        return any(_contains(item, wanted) for item in tree.values())
    if isinstance(tree, list):
        return any(_contains(item, wanted) for item in tree)
    return False


def problems_with(case: Case, response: httpx.Response, owner: Owner) -> list[str]:
    """What is wrong with the answer to a corpus request (nothing: an empty list)."""
    spec = case.spec
    found: list[str] = []
    if response.status_code != case.status:
        return [f"status {response.status_code}, expected {case.status}: {response.text[:300]}"]
    if "Traceback" in response.text:
        found.append("a stack trace in the response")
    if case.status >= 400:
        if response.headers.get("content-type") != "application/json":
            found.append(f"content type {response.headers.get('content-type')!r}")
            return found
        error = response.json().get("error", {})
        if error.get("status") != case.status or not error.get("message"):
            found.append(f"not the error shape: {response.text[:300]}")
        if "expect_code" in spec and error.get("code") != spec["expect_code"]:
            found.append(f"code {error.get('code')!r}, expected {spec['expect_code']!r}")
        if spec.get("expect_message", "") not in error.get("message", ""):
            found.append(f"message {error.get('message')!r} lacks {spec['expect_message']!r}")
        if case.status == 401 and response.headers.get("www-authenticate") != "Bearer":
            found.append("401 without WWW-Authenticate: Bearer")
        if case.status == 429 and not response.headers.get("retry-after"):
            found.append("429 without Retry-After")
    else:
        answer = response.json()
        first = _substitute(spec.get("expect_first_stage"), owner)
        if first is not None and answer.get("pipeline", [None])[0] != first:
            found.append(f"first stage {answer.get('pipeline', [None])[0]!r}, expected {first!r}")
        for wanted in _substitute(spec.get("expect_json_contains", []), owner):
            if not _contains(answer, wanted):
                found.append(f"the answer lacks {wanted!r}")
    return found


# -- the corpus: refused, and nothing started -------------------------------------------------


@pytest.fixture(scope="module")
def corpus_api(settings: Settings) -> Iterator[Api]:
    """An API on a task queue of its own that no worker polls, with two exportable collections."""
    local = settings.model_copy(
        update={
            "temporal_task_queue": f"corpus-{uuid.uuid4().hex[:8]}",
            "export_collections": "orders,customers",
        }
    )
    with serve(local) as api:
        yield api


async def _count(client: Client, query: str) -> int:
    return (await client.count_workflows(query)).count


async def _counts(client: Client, api: Api, owner: Owner) -> tuple[int, int]:
    queue = api.settings.temporal_task_queue
    return (
        await _count(client, f"TaskQueue = '{queue}'"),
        await _count(client, f"ExportOwner = '{owner.user_id}'"),
    )


async def test_the_corpus_is_refused_and_starts_no_workflow(
    corpus_api: Api, results: Results
) -> None:
    cases = [case for case in corpus() if case.status != 202]
    assert len(corpus()) >= 100
    owner = Owner(user_id=f"corpus-{uuid.uuid4().hex[:8]}", tenant=CORPUS_TENANT)
    client = await connect(corpus_api.settings)
    before = await _counts(client, corpus_api, owner)
    failures: dict[str, list[str]] = {}
    statuses: Counter[int] = Counter()
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=60) as http:
        for case in cases:
            response = await send(http, corpus_api, case, owner)
            statuses[response.status_code] += 1
            problems = problems_with(case, response, owner)
            if problems:
                failures[case.name] = problems
        seconds = time.monotonic() - started
        await asyncio.sleep(1.0)  # visibility is eventually consistent
        after = await _counts(client, corpus_api, owner)

        # The control: one valid request is seen by the very same counts.
        valid = await http.post(
            f"{corpus_api.url}/exports",
            json={"collection": "orders"},
            headers=auth_headers("valid", owner, corpus_api.settings.api_jwt_secret),
        )
        assert valid.status_code == 202, valid.text
        control = after
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(20):
                while True:
                    control = await _counts(client, corpus_api, owner)
                    if control != after:
                        break
                    await asyncio.sleep(0.2)
        await client.get_workflow_handle(valid.json()["export_id"]).terminate("corpus control")

    categories = Counter(case.spec["category"] for case in corpus())
    results.section("hostile_input").update(
        {
            "corpus_files": len(corpus()),
            "corpus_refused_requests": sum(1 for c in cases if c.status >= 400),
            "corpus_explain_requests": sum(1 for c in cases if c.status == 200),
            "categories": dict(sorted(categories.items())),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "mismatches": failures,
            "workflows_before": {"task_queue": before[0], "owner": before[1]},
            "workflows_after": {"task_queue": after[0], "owner": after[1]},
            "control_request_seen": {"task_queue": control[0], "owner": control[1]},
            "seconds": round(seconds, 1),
        }
    )
    assert not failures, "\n".join(f"{name}: {'; '.join(p)}" for name, p in failures.items())
    assert before == after == (0, 0), f"workflows started by refused requests: {before} -> {after}"
    assert control == (1, 1), f"the control request was counted as {control}, not (1, 1)"


# -- accepted filenames: a sane key and Content-Disposition -----------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DISPOSITION = re.compile(
    r'^attachment; filename="([^"\\]*)"(?:; filename\*=UTF-8\'\'([A-Za-z0-9%!#$&+.^_`|~-]+))?$'
)


def key_problems(key: str, tenant: str, export_id: str, filename: str) -> list[str]:
    found = []
    prefix = f"exports/{quote(tenant, safe='')}/{export_id}/"
    if not key.startswith(prefix):
        found.append(f"key {key!r} does not start with {prefix!r}")
    if key.count("/") != 3:
        found.append(f"key {key!r} has {key.count('/')} slashes, not 3")
    if not key.isascii() or _CONTROL.search(key):
        found.append(f"key {key!r} has non-ASCII or control characters")
    if unquote(key.rsplit("/", 1)[-1]) != filename:
        found.append(f"key {key!r} does not decode back to the filename")
    if len(key.encode()) > 1024:
        found.append(f"key is {len(key.encode())} bytes, over S3's 1024")
    return found


def disposition_problems(header: str | None, filename: str) -> list[str]:
    if header is None:
        return ["no Content-Disposition"]
    if not header.isascii() or _CONTROL.search(header):
        return [f"Content-Disposition {header!r} is not printable ASCII"]
    match = _DISPOSITION.match(header)
    if match is None:
        return [f"Content-Disposition {header!r} is not attachment; filename=...[; filename*=...]"]
    fallback, extended = match.groups()
    found = []
    if "/" in fallback or "\\" in fallback or fallback in {"", ".", ".."}:
        found.append(f"unsafe ASCII fallback name {fallback!r}")
    exact = unquote(extended, errors="strict") if extended else fallback
    if exact != filename:
        found.append(f"Content-Disposition names {exact!r}, not {filename!r}")
    return found


@pytest.fixture(scope="module")
def filename_source(app_settings: Settings) -> Iterator[str]:
    name = f"reliability_names_{uuid.uuid4().hex[:8]}"
    docs = [{"_id": i, "city": c} for i, c in enumerate(["Oslo", "Zürich", "東京"])]
    h.seed(app_settings, name, docs, tenant=CORPUS_TENANT)
    yield name
    h.drop(app_settings, name)


async def _export_filename(
    http: httpx.AsyncClient, api: Api, worker: Client, case: Case, owner: Owner, source: str
) -> dict[str, Any]:
    body = json.loads(_body(case, owner)[0] or b"{}")
    body["collection"] = source
    body["columns"] = [{"path": "_id"}, {"path": "city"}]
    filename = body["filename"]
    headers = auth_headers("valid", owner, api.settings.api_jwt_secret)
    answer = await http.post(f"{api.url}/exports", json=body, headers=headers)
    segment = objects.object_key(api.settings.export_prefix, owner.tenant, "id", filename)
    outcome: dict[str, Any] = {
        "filename": filename,
        "key_segment_bytes": len(segment.rsplit("/", 1)[-1]),
        "status": answer.status_code,
        "problems": [],
    }
    if answer.status_code != 202:
        outcome["problems"].append(f"status {answer.status_code}: {answer.text[:300]}")
        return outcome
    export_id = answer.json()["export_id"]
    handle = worker.get_workflow_handle_for(ExportWorkflow.run, export_id)
    try:
        progress = await asyncio.wait_for(handle.result(), EXPORT_WITHIN)
    except Exception as exc:
        why = "did not finish" if isinstance(exc, TimeoutError) else "failed"
        detail = f": {getattr(exc, 'cause', None) or exc}" if why == "failed" else ""
        outcome["problems"].append(f"the export {why} within {EXPORT_WITHIN:.0f} s{detail}")
        await _stop_and_abort(worker, api.settings, owner, export_id)
        return outcome
    key = progress.object_key or ""
    outcome["key"] = key
    outcome["problems"] += key_problems(key, owner.tenant, export_id, filename)
    view = (await http.get(f"{api.url}/exports/{export_id}", headers=headers)).json()
    download = await http.get(view["download_url"])
    outcome["content_disposition"] = download.headers.get("content-disposition")
    if download.status_code != 200:
        outcome["problems"].append(f"download: {download.status_code}")
    outcome["problems"] += disposition_problems(
        download.headers.get("content-disposition"), filename
    )
    export = h.new_export(ExportRequest.model_validate(body), owner)
    if download.content != h.reference_bytes(api.settings, export, export.request.columns):
        outcome["problems"].append("the object differs from the reference")
    return outcome


async def _stop_and_abort(worker: Client, settings: Settings, owner: Owner, export_id: str) -> None:
    """Terminate an export that did not end and abort what it left open (recorded first)."""
    with contextlib.suppress(Exception):
        await worker.get_workflow_handle(export_id).terminate("reliability: did not finish")
    s3 = make_s3_client(settings)
    prefix = f"{settings.export_prefix.rstrip('/')}/{quote(owner.tenant, safe='')}/{export_id}/"
    for upload in h.uploads_under(settings, prefix):
        s3.abort_multipart_upload(
            Bucket=settings.s3_bucket, Key=upload["Key"], UploadId=upload["UploadId"]
        )


EXPORT_WITHIN = 20.0
ACCEPTED = [
    pytest.param(
        case,
        id=case.name,
        marks=[pytest.mark.xfail(strict=True, reason=case.spec["known_defect"])]
        if "known_defect" in case.spec
        else [],
    )
    for case in corpus()
    if case.status == 202
]


@pytest.mark.parametrize("case", ACCEPTED)
async def test_an_accepted_filename_gives_a_sane_key_and_header(
    case: Case,
    app_api: Api,
    app_worker: Client,
    filename_source: str,
    results: Results,
) -> None:
    owner = Owner(user_id=f"names-{uuid.uuid4().hex[:8]}", tenant=CORPUS_TENANT)
    async with httpx.AsyncClient(timeout=60) as http:
        outcome = await _export_filename(http, app_api, app_worker, case, owner, filename_source)
    outcome["known_defect"] = "known_defect" in case.spec
    results.section("hostile_input").setdefault("accepted_filenames", []).append(outcome)
    assert not outcome["problems"], f"{outcome['filename']!r}: " + "; ".join(outcome["problems"])


# -- the property run -------------------------------------------------------------------------

PROPERTY_SETTINGS = Settings(
    export_collections="orders,customers",
    max_pipeline_stages=30,
    max_pipeline_depth=4,
    max_pipeline_bytes=20_000,
)
STAGE_NAMES = [
    *sorted(ALLOWED_STAGES | set(_REFUSED_STAGES) | _ADMIN_STAGES),
    *["$bogus", "match", "$OUT"],
]
KEYS = [
    *sorted(_REFUSED_OPERATORS),
    *["$_internalJsEmit", "$_internalJsReduce", "$_x", "$jsonSchema", "$meta", "$Where"],
    *["$ref", "$id", "$db", "$dbPointer", "$regularExpression", "$symbol", "$undefined"],
    *["$expr", "$and", "$or", "$nor", "$not", "$in", "$gt", "$lte", "$eq", "$exists"],
    *["$cond", "$map", "$filter", "$sum", "$push", "$literal", "$mergeObjects", "$regex"],
    *["$options", "$oid", "$date", "$numberLong", "$numberDecimal", "$numberDouble", "$binary"],
    *["$regularExpression", "$code", "$scope", "$uuid", "$timestamp", "$minKey", "$maxKey"],
    *["_id", "a", "a.b", "tenantId", "n", "items", "", "$a", "__dx_k0", "newRoot", "path"],
    *["from", "as", "pipeline", "let", "localField", "foreignField", "coll", "groupBy"],
    *[
        "boundaries",
        "buckets",
        "startWith",
        "connectFromField",
        "connectToField",
        "includeArrayIndex",
    ],
]
STRINGS = st.sampled_from(
    ["$a", "$a.b", "$_id", "$$NOW", "$$ROOT", "$$CLUSTER_TIME.x", "$items", "orders", "users",
     "$$USER_ROLES", "$$USER_ROLES.role", "$$SEARCH_META", "$$JS_SCOPE", "$$CURRENT.a", "$$v",
     "system.users", "customers", "x", "", "0" * 24, "2024-01-01T00:00:00Z"]
) | st.text(max_size=6)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | STRINGS
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=25,
)


def _stage_bodies(pipelines: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    collection = st.sampled_from(["orders", "customers", "users", "system.js", ""])
    return st.one_of(
        JSON,
        st.fixed_dictionaries(
            {"from": collection, "as": st.sampled_from(["c", "$c", ""]), "pipeline": pipelines},
            optional={"localField": STRINGS, "foreignField": STRINGS, "let": JSON},
        ),
        st.fixed_dictionaries({"coll": collection}, optional={"pipeline": pipelines}),
        st.dictionaries(st.sampled_from(["a", "b", "$c"]), pipelines, min_size=1, max_size=2),
        st.fixed_dictionaries({"path": STRINGS}, optional={"includeArrayIndex": STRINGS}),
        st.dictionaries(
            st.sampled_from(["a", "_id", "n", "tenantId"]), st.sampled_from([1, -1, 0, 2])
        ),
    )


PIPELINES: st.SearchStrategy[Any] = st.deferred(
    lambda: st.lists(
        st.one_of(
            st.builds(
                lambda name, body: {name: body},
                st.sampled_from(STAGE_NAMES),
                _stage_bodies(PIPELINES),
            ),
            JSON,
        ),
        max_size=5,
    )
)

# Plausible pipelines: well-formed stages the planner has to place chunk bounds in.
FIELD = st.sampled_from(["a", "b", "a.b", "n", "tenantId", "items", "_id", "x.y"])
VALUE = st.one_of(
    st.integers(-5, 5),
    st.sampled_from(["x", "tenant-b", "$a", "$$ROOT"]),
    st.booleans(),
    st.none(),
    st.just({"$oid": "0" * 24}),
    st.just({"$date": "2024-01-01T00:00:00Z"}),
)
COLLECTION = st.sampled_from(["orders", "customers", "users"])


def _plausible_stages(sub: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    fields = st.lists(FIELD, min_size=1, max_size=3, unique=True)
    return st.one_of(
        st.builds(
            lambda f, op, v: {"$match": {f: {op: v}}},
            FIELD,
            st.sampled_from(["$eq", "$gt", "$lt", "$ne", "$gte"]),
            VALUE,
        ),
        st.builds(
            lambda fs, v: {"$project": dict.fromkeys(fs, v)}, fields, st.sampled_from([0, 1])
        ),
        st.builds(lambda fs, d: {"$sort": dict.fromkeys(fs, d)}, fields, st.sampled_from([1, -1])),
        st.builds(lambda n: {"$limit": n}, st.integers(1, 50)),
        st.builds(lambda n: {"$skip": n}, st.integers(0, 50)),
        st.builds(
            lambda keep, index: {
                "$unwind": {"path": "$items", "preserveNullAndEmptyArrays": keep}
                | ({"includeArrayIndex": "i"} if index else {})
            },
            st.booleans(),
            st.booleans(),
        ),
        st.builds(lambda f: {"$group": {"_id": f"${f}", "n": {"$sum": 1}}}, FIELD),
        st.builds(lambda f, v: {"$set": {f: v}}, FIELD, VALUE),
        st.builds(lambda f: {"$unset": f}, FIELD),
        st.just({"$count": "total"}),
        st.builds(lambda f: {"$sortByCount": f"${f}"}, FIELD),
        st.just({"$replaceRoot": {"newRoot": "$$ROOT"}}),
        st.builds(lambda c, p: {"$lookup": {"from": c, "as": "j", "pipeline": p}}, COLLECTION, sub),
        st.builds(
            lambda c: {"$lookup": {"from": c, "localField": "a", "foreignField": "b", "as": "j"}},
            COLLECTION,
        ),
        st.builds(lambda c, p: {"$unionWith": {"coll": c, "pipeline": p}}, COLLECTION, sub),
        st.builds(lambda p: {"$facet": {"branch": p}}, sub),
    )


PLAUSIBLE: st.SearchStrategy[Any] = st.deferred(
    lambda: st.lists(
        _plausible_stages(st.lists(_plausible_stages(st.just([])), max_size=3)), max_size=6
    )
)

OUTCOMES: Counter[str] = Counter()
TENANT_MATCH = {"$match": {"tenantId": "acme"}}


def _sub_pipelines(stages: Any) -> Iterator[list[Any]]:
    """Every sub-pipeline ($lookup, $unionWith) of a validated pipeline, at any depth."""
    for stage in stages if isinstance(stages, list) else []:
        for name, body in stage.items():
            if name in ("$lookup", "$unionWith") and isinstance(body, dict):
                yield body["pipeline"]
                yield from _sub_pipelines(body["pipeline"])
            elif name == "$facet":
                for branch in body.values():
                    yield from _sub_pipelines(branch)


def _one_pipeline(pipeline: Any) -> None:
    """Validation and planning either refuse the pipeline or give one that is safe to run."""
    try:
        request = ExportRequest(collection="orders", pipeline=pipeline)
    except ValidationError:
        request = None  # not a list of objects: the request schema refuses it; validate anyway
    try:
        if request is not None:
            plan = plan_export(request, Owner(user_id="u", tenant="acme"), PROPERTY_SETTINGS)
        else:
            stages = validate_pipeline(
                pipeline, collection="orders", tenant="acme", settings=PROPERTY_SETTINGS
            )
            plan = plan_chunks(stages)
    except (PipelineRejected, PlanRefused, ExportRefused) as refused:
        OUTCOMES[f"refused ({type(refused).__name__})"] += 1
        return
    OUTCOMES["accepted"] += 1
    first = plan.pipeline_for(None)
    assert not list(_forbidden_inside(first, "pipeline")), list(
        _forbidden_inside(first, "pipeline")
    )
    assert first[0] == TENANT_MATCH
    for sub in _sub_pipelines(first):
        assert sub[0] == TENANT_MATCH, sub
    bson.encode({"pipeline": first})
    relaxed_json(first)


def _forbidden_inside(value: Any, path: str) -> Iterator[str]:
    """What an accepted pipeline must never hold, wherever it is: an operator outside the
    allow-list (stage names aside), a DBRef or code value, a non-finite number, a system
    variable outside its allow-list."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            stage_name = key in ALLOWED_STAGES and path.endswith("]")
            if key.startswith("$") and not stage_name and operator_refusal(key) is not None:
                yield f"{path}.{key}"
            yield from _forbidden_inside(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _forbidden_inside(item, f"{path}[{index}]")
    elif isinstance(value, DBRef | Code):
        yield f"{path} ({type(value).__name__})"
    elif (isinstance(value, float) and not math.isfinite(value)) or (
        isinstance(value, str) and variable_refusal(value) is not None
    ):
        yield f"{path} ({value})"


@hypothesis_settings(
    max_examples=5000 if full_run() else 600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
)
@given(pipeline=st.one_of(PLAUSIBLE, PLAUSIBLE, PIPELINES, JSON))
def test_random_pipelines_are_refused_or_planned_never_crash(pipeline: Any) -> None:
    _one_pipeline(pipeline)


# -- hidden refused values: at any depth, in any allowed stage, always refused ----------------

HIDDEN = st.one_of(
    st.builds(lambda name: {name: {"eval": "function(){}", "this": "$$ROOT"}},
              st.sampled_from(["$_internalJsEmit", "$_internalJsReduce", "$_internalAny"])),
    st.builds(lambda op: {"$ref": "customers", "$id": 1, "x": {op: "sleep(1)"}},
              st.sampled_from(["$where", "$function", "$accumulator", "$rand", "$_internalJsEmit"])),
    st.builds(lambda var: {"$ref": "customers", "$id": 1, "v": var}, st.sampled_from(["$$NOW", "$$ROOT"])),
    st.just({"$dbPointer": {"$ref": "customers", "$id": {"$oid": "0" * 24}}}),
    st.just({"$code": "sleep(1)"}),
    st.sampled_from(["$$USER_ROLES", "$$NOW", "$$CLUSTER_TIME", "$$SEARCH_META", "$$JS_SCOPE"]),
    st.sampled_from([{"$where": "1"}, {"$function": {}}, {"$accumulator": {}}, {"$rand": {}}]),
    st.sampled_from([math.nan, math.inf, -math.inf, float("-1e400"), 2**64]),
)  # fmt: skip
"""Values that must be refused wherever they appear in a pipeline."""


def _bury(value: Any, path: list[str | int]) -> Any:
    for step in reversed(path):
        value = [0, value] if isinstance(step, int) else {step: value}
    return value


WRAPPERS = st.lists(
    st.one_of(
        st.sampled_from(["a", "b", "$and", "$or", "$in", "$cond", "$expr", "$eq"]), st.just(0)
    ),
    max_size=8,
)
STAGES_AROUND = st.sampled_from(
    [
        lambda v: {"$match": {"f": v}},
        lambda v: {"$addFields": {"f": v}},
        lambda v: {"$project": {"f": v}},
        lambda v: {"$group": {"_id": v}},
        lambda v: {"$lookup": {"from": "customers", "as": "c", "let": {"x": v}, "pipeline": []}},
        lambda v: {"$facet": {"a": [{"$set": {"f": v}}]}},
        lambda v: {"$lookup": {"from": "customers", "as": "c", "pipeline": [{"$match": {"$expr": v}}]}},
        lambda v: {"$unionWith": {"coll": "customers", "pipeline": [{"$set": {"f": v}}]}},
        lambda v: {"$bucket": {"groupBy": "$n", "boundaries": [0, 1], "default": 9, "output": {"o": v}}},
    ]
)  # fmt: skip


@hypothesis_settings(
    max_examples=2000 if full_run() else 300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
@given(hidden=HIDDEN, path=WRAPPERS, stage=STAGES_AROUND, before=st.integers(0, 2))
def test_a_refused_value_is_refused_at_any_depth(
    hidden: Any, path: list[str | int], stage: Any, before: int
) -> None:
    buried = _bury(hidden, path)
    pipeline = [{"$match": {"i": i}} for i in range(before)] + [stage(buried)]
    with pytest.raises((PipelineRejected, ExportRefused)) as refused:
        plan_export(
            ExportRequest(collection="orders", pipeline=pipeline),
            Owner(user_id="u", tenant="acme"),
            PROPERTY_SETTINGS,
        )
    error = refused.value
    assert isinstance(error, ExportRefused)
    assert error.path.startswith(f"pipeline[{before}].$"), error.path
    assert str(error) == f"{error.path}: {error.reason}"
    OUTCOMES["hidden value refused"] += 1


# -- webhooks, names, e-mail and the formula guard ---------------------------------------------

ALWAYS_REFUSED = st.one_of(
    st.ip_addresses(network="169.254.0.0/16"),
    st.ip_addresses(network="fe80::/10"),
    st.sampled_from(["fd00:ec2::254", "100.100.100.200", "0.0.0.0", "::"]).map(
        ipaddress.ip_address
    ),
)


@hypothesis_settings(max_examples=400, deadline=None, database=None)
@given(
    address=st.ip_addresses(), listed=st.booleans(), https=st.booleans(), port=st.integers(1, 65535)
)
def test_a_webhook_reaches_only_public_or_listed_addresses(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, listed: bool, https: bool, port: int
) -> None:
    host = f"[{address}]" if address.version == 6 else str(address)
    url = f"{'https' if https else 'http'}://{host}:{port}/hook"
    allowed = frozenset({f"{host}:{port}"}) if listed else frozenset()
    refusal = static_refusal(url, allowed)
    if refusal is None:
        assert https or listed
        assert listed or address.is_global
        assert not address.is_link_local
    OUTCOMES["webhook address judged"] += 1


@hypothesis_settings(max_examples=300, deadline=None, database=None)
@given(address=ALWAYS_REFUSED, spelling=st.sampled_from(["plain", "mapped", "nat64"]))
def test_link_local_and_metadata_addresses_are_refused_in_every_spelling(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, spelling: str
) -> None:
    if address.version == 4 and spelling != "plain":
        prefix = "::ffff:" if spelling == "mapped" else "64:ff9b::"
        host = f"[{prefix}{address}]"
    else:
        host = f"[{address}]" if address.version == 6 else str(address)
    url = f"https://{host}:443/"
    assert static_refusal(url, frozenset({f"{host}:443"})) is not None, url


FORBIDDEN_IN_NAMES = st.sampled_from(
    ["/", "\\", '"', "'", "\r", "\n", "\x00", "\x7f", "\x85", "\u2028", "\u202e", "\u2066"]
)


@hypothesis_settings(max_examples=300, deadline=None, database=None)
@given(
    head=st.text(max_size=10), bad=FORBIDDEN_IN_NAMES, tail=st.text(max_size=10),
    field=st.sampled_from(["filename", "report_id"]),
)  # fmt: skip
def test_names_with_separators_quotes_or_controls_are_refused(
    head: str, bad: str, tail: str, field: str
) -> None:
    with pytest.raises(ValidationError):
        ExportRequest.model_validate({"collection": "orders", field: head + bad + tail})


@hypothesis_settings(max_examples=300, deadline=None, database=None)
@given(
    local=st.from_regex(r"[a-z]{1,8}", fullmatch=True),
    trick=st.sampled_from([", b@example.com", "; b@example.com", "\r\nBcc: b@example.com", " (x)", ">"]),
    display=st.booleans(),
)  # fmt: skip
def test_an_email_is_exactly_one_address(local: str, trick: str, display: bool) -> None:
    ExportRequest.model_validate({"collection": "o", "notify": {"email": f"{local}@example.com"}})
    bad = f"Name <{local}@example.com>" if display else f"{local}@example.com{trick}"
    with pytest.raises(ValidationError):
        ExportRequest.model_validate({"collection": "o", "notify": {"email": bad}})
    with pytest.raises(ValidationError):
        ExportRequest.model_validate({"collection": "o", "notify": {"email": local}})


@hypothesis_settings(max_examples=300, deadline=None, database=None)
@given(
    cells=st.lists(
        st.one_of(
            st.none(),
            st.text(max_size=6),
            st.builds(
                lambda t, s: t + s, st.sampled_from(list(FORMULA_TRIGGERS)), st.text(max_size=5)
            ),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_the_csv_formula_guard_catches_every_trigger_on_both_paths(cells: list[str | None]) -> None:
    """A column of strings takes the encoder's one-search fast path: it must guard exactly what
    the cell-by-cell formatter guards, for every OWASP trigger (NUL and full-width forms too)."""
    columns = [Column(path="s")]
    encoded = encode_part(EncodingSpec(), columns, [{"s": c} for c in cells], first_part=False)
    parsed = list(csv.reader(io.StringIO(encoded.decode(), newline="")))
    for cell, row in zip(cells, parsed, strict=True):
        if cell:
            assert row == [format_cell(cell)], (cell, row)
            assert not cell.startswith(FORMULA_TRIGGERS) or row[0].startswith("'")
    OUTCOMES["csv column guarded"] += 1


def test_record_the_property_run(results: Results) -> None:
    """Runs after the property run (file order): its figures go into the report."""
    results.section("hostile_input")["property_run"] = {
        "examples": sum(OUTCOMES.values()),
        "outcomes": dict(OUTCOMES),
        "max_examples": 5000 if full_run() else 600,
    }
