"""Every classified error survives Temporal's real failure converter.

An exception that is its own `__cause__` once sent the converter into endless recursion and
stalled an export; here each kind of driver and S3 error is raised the way the activities raise
it and converted as the worker would.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from bson.errors import InvalidBSON
from pymongo.errors import (
    AutoReconnect,
    CursorNotFound,
    ExecutionTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
)
from temporalio.api.failure.v1 import Failure
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError

from activities import errors

MONGO_ERRORS = [
    ExecutionTimeout("operation exceeded time limit", 50),
    CursorNotFound("cursor id 7 not found", 43),
    AutoReconnect("connection reset"),
    ServerSelectionTimeoutError("no servers"),
    OperationFailure("bad stage", 40324),
    InvalidBSON("year 10000 is out of range"),
]
S3_ERRORS = [
    ClientError({"Error": {"Code": "NoSuchUpload", "Message": "gone"}}, "UploadPart"),
    ClientError(
        {"Error": {"Code": "InternalError"}, "ResponseMetadata": {"HTTPStatusCode": 500}},
        "UploadPart",
    ),
    EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
]


def _raised(original: Exception, classify: object) -> ApplicationError:
    try:
        try:
            raise original
        except Exception as exc:  # the activities' own pattern
            if isinstance(exc, ClientError | EndpointConnectionError):
                raise errors.classify_s3(exc, action="store part 1") from exc
            raise errors.classify_mongo(exc, max_time_ms=1000) from exc  # type: ignore[arg-type]
    except ApplicationError as final:
        return final
    raise AssertionError("nothing was raised")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None:
        assert all(current is not earlier for earlier in seen), f"a cycle at {current!r}"
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


@pytest.mark.parametrize("original", MONGO_ERRORS + S3_ERRORS, ids=repr)
def test_a_classified_error_converts_to_a_failure(original: Exception) -> None:
    final = _raised(original, None)
    assert final is not original
    assert final.__cause__ is original
    assert len(_chain(final)) >= 2
    failure = Failure()
    converter = DataConverter.default
    converter.failure_converter.to_failure(final, converter.payload_converter, failure)
    assert failure.message
    assert failure.cause.message  # the driver's error travels as the cause


def test_retryable_and_permanent_errors_are_told_apart() -> None:
    kinds = {type(e).__name__: _raised(e, None) for e in MONGO_ERRORS}
    assert isinstance(kinds["AutoReconnect"], ApplicationError)
    assert not kinds["AutoReconnect"].non_retryable
    assert not kinds["CursorNotFound"].non_retryable
    assert kinds["ExecutionTimeout"].non_retryable
    assert kinds["InvalidBSON"].non_retryable
    assert "could not be reached" in kinds["ServerSelectionTimeoutError"].message
