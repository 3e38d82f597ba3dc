"""Where an export's object lives in S3 and how a browser saves it."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from domain.models import ExportRequest, key_segment

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
EXTENSIONS = {"csv": ".csv", "jsonl": ".jsonl", "parquet": ".parquet", "xlsx": ".xlsx"}
_UNSAFE_ASCII = re.compile(r"[^A-Za-z0-9._\- ()+,;=@\[\]]")


def file_extension(request: ExportRequest) -> str:
    suffix = EXTENSIONS[request.format]
    return suffix + (".gz" if request.compression == "gzip" else "")


def download_filename(request: ExportRequest, export_id: str) -> str:
    """The name a user's browser saves: theirs, or `<report or collection>-<date-free id>.<ext>`."""
    if request.filename:
        return request.filename
    stem = request.report_id or request.collection
    return f"{stem}-{export_id}{file_extension(request)}"


def object_key(prefix: str, tenant: str, export_id: str, filename: str) -> str:
    """`exports/{tenant}/{export_id}/{filename}`, each segment percent-encoded so that no tenant
    or filename can add a path segment or a control character to the key."""
    segments = (quote(tenant, safe=""), quote(export_id, safe=""), key_segment(filename))
    return prefix.rstrip("/") + "/" + "/".join(segments)


def content_type(request: ExportRequest) -> str:
    return "application/gzip" if request.compression == "gzip" else CONTENT_TYPES[request.format]


def content_disposition(filename: str) -> str:
    """An RFC 6266 `attachment` header: an ASCII fallback name plus the exact UTF-8 name."""
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    ascii_name = _UNSAFE_ASCII.sub("_", ascii_name).strip() or "export"
    header = f'attachment; filename="{ascii_name}"'
    if ascii_name != filename:
        header += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return header
