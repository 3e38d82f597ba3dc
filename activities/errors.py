"""Sorting failures into the ones a retry can fix and the ones it cannot.

Non-retryable failures carry a message a user can act on; the workflow shows it as the export's
error. Everything not recognised here is left to Temporal's retry policy (network and server
hiccups), which retries with backoff.
"""

from __future__ import annotations

from botocore.exceptions import ClientError
from pymongo.errors import CursorNotFound, ExecutionTimeout, OperationFailure
from temporalio.exceptions import ApplicationError

INVALID_PIPELINE = "InvalidPipeline"
QUERY_TIMEOUT = "QueryTimeout"
REFUSED_BY_DATABASE = "RefusedByDatabase"
STORAGE_REFUSED = "StorageRefused"

NON_RETRYABLE_TYPES = [INVALID_PIPELINE, QUERY_TIMEOUT, REFUSED_BY_DATABASE, STORAGE_REFUSED]

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


def classify_mongo(exc: Exception, *, max_time_ms: int) -> Exception:
    """The error to raise for a failed MongoDB read: a clear non-retryable one, or `exc` itself."""
    if isinstance(exc, ExecutionTimeout):
        return ApplicationError(
            f"the export query exceeded its time limit (maxTimeMS={max_time_ms}); narrow the "
            "pipeline with a more selective $match, add an index for its sort, or raise "
            "MONGODB_MAX_TIME_MS",
            type=QUERY_TIMEOUT,
            non_retryable=True,
        )
    if isinstance(exc, CursorNotFound):
        # The server dropped the cursor mid-part (FerretDB drops it with the connection that
        # opened it; MongoDB on an idle timeout or a failover): re-reading the part from its
        # chunk cursor gives the same rows, so let Temporal retry it.
        return exc
    if isinstance(exc, OperationFailure) and not exc.has_error_label("RetryableError"):
        reason = (exc.details or {}).get("errmsg") or str(exc)
        return ApplicationError(
            f"the database refused the export query (code {exc.code}): {reason}",
            type=REFUSED_BY_DATABASE,
            non_retryable=True,
        )
    return exc


def classify_s3(exc: Exception, *, action: str) -> Exception:
    """The error to raise for a failed S3 call: permanent ones become non-retryable."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _PERMANENT_S3_CODES:
            message = exc.response.get("Error", {}).get("Message", "")
            return ApplicationError(
                f"S3 refused to {action}: {code} {message}".strip(),
                type=STORAGE_REFUSED,
                non_retryable=True,
            )
    return exc
