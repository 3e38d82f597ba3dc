"""Sorting failures into the ones a retry can fix and the ones it cannot.

Every failure an activity raises leaves it as an `ApplicationError` with a message a user can act
on: non-retryable ones end the export at once; retryable ones are retried by the activity's
bounded retry policy, and when the attempts run out their message becomes the export's error.
The driver's own exception always stays the `__cause__` (never the error itself: an exception
that is its own cause sends Temporal's failure converter into endless recursion).
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError
from bson.errors import BSONError
from pymongo.errors import (
    ConnectionFailure,
    CursorNotFound,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
)
from temporalio.exceptions import ApplicationError

INVALID_PIPELINE = "InvalidPipeline"
QUERY_TIMEOUT = "QueryTimeout"
REFUSED_BY_DATABASE = "RefusedByDatabase"
UNDECODABLE_DOCUMENT = "UndecodableDocument"
STORAGE_REFUSED = "StorageRefused"
QUOTA_EXCEEDED = "QuotaExceeded"
DATABASE_UNAVAILABLE = "DatabaseUnavailable"  # retryable
STORAGE_UNAVAILABLE = "StorageUnavailable"  # retryable

NON_RETRYABLE_TYPES = [
    INVALID_PIPELINE,
    QUERY_TIMEOUT,
    REFUSED_BY_DATABASE,
    UNDECODABLE_DOCUMENT,
    STORAGE_REFUSED,
    QUOTA_EXCEEDED,
]

# S3 errors that a retry cannot fix: the request or the upload itself is wrong or gone.
_PERMANENT_S3_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "NoSuchBucket",
    "NoSuchUpload",
    "InvalidPart",
    "InvalidPartOrder",
    "EntityTooSmall",
    "EntityTooLarge",
    "InvalidArgument",
    "InvalidBucketName",
    "KeyTooLongError",
}


def invalid_pipeline(message: str) -> ApplicationError:
    return ApplicationError(message, type=INVALID_PIPELINE, non_retryable=True)


def storage_refused(message: str) -> ApplicationError:
    return ApplicationError(message, type=STORAGE_REFUSED, non_retryable=True)


def quota_exceeded(message: str) -> ApplicationError:
    return ApplicationError(message, type=QUOTA_EXCEEDED, non_retryable=True)


def classify_mongo(exc: PyMongoError | BSONError, *, max_time_ms: int) -> ApplicationError:
    """The error to raise (`from exc`) for a failed MongoDB read."""
    if isinstance(exc, ExecutionTimeout):
        return ApplicationError(
            f"the export query exceeded its time limit (maxTimeMS={max_time_ms}); narrow the "
            "pipeline with a more selective $match, add an index for its sort, or raise "
            "MONGODB_MAX_TIME_MS",
            type=QUERY_TIMEOUT,
            non_retryable=True,
        )
    if isinstance(exc, BSONError):
        return ApplicationError(
            f"the database returned a row that cannot be decoded: {exc}",
            type=UNDECODABLE_DOCUMENT,
            non_retryable=True,
        )
    if isinstance(exc, CursorNotFound):
        # The server dropped the cursor mid-part (FerretDB drops it with the connection that
        # opened it; MongoDB on an idle timeout or a failover): re-reading the part from its
        # chunk cursor gives the same rows.
        return ApplicationError(
            f"the database dropped the export's cursor: {exc}", type=DATABASE_UNAVAILABLE
        )
    if isinstance(exc, OperationFailure) and not exc.has_error_label("RetryableError"):
        reason = (exc.details or {}).get("errmsg") or str(exc)
        return ApplicationError(
            f"the database refused the export query (code {exc.code}): {reason}",
            type=REFUSED_BY_DATABASE,
            non_retryable=True,
        )
    what = "could not be reached" if isinstance(exc, ConnectionFailure) else "failed"
    return ApplicationError(
        f"the database {what} while reading the export: {type(exc).__name__}: {exc}",
        type=DATABASE_UNAVAILABLE,
    )


def s3_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def classify_s3(exc: ClientError | BotoCoreError, *, action: str) -> ApplicationError:
    """The error to raise (`from exc`) for a failed S3 call: permanent ones are non-retryable."""
    if isinstance(exc, ClientError):
        code = s3_code(exc)
        message = str(exc.response.get("Error", {}).get("Message", ""))
        described = f"{code} {message}".strip() or f"HTTP {http_status(exc)}"
        if code in _PERMANENT_S3_CODES:
            return ApplicationError(
                f"S3 refused to {action}: {described}", type=STORAGE_REFUSED, non_retryable=True
            )
        return ApplicationError(f"S3 failed to {action}: {described}", type=STORAGE_UNAVAILABLE)
    return ApplicationError(
        f"S3 could not be reached to {action}: {type(exc).__name__}: {exc}",
        type=STORAGE_UNAVAILABLE,
    )
