"""`exportctl download`: follow the API's redirect to a fresh presigned URL and stream the object
to disk, into a hidden `.part` file renamed into place at the end (no half-written file is left).
The bytes are written as stored (`iter_raw`): a gzip export stays gzip."""

from __future__ import annotations

import contextlib
import re
import secrets
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from cli.api_client import ApiClient, stream_object

CHUNK_BYTES = 1024 * 1024
_FILENAME_STAR = re.compile(r"filename\*\s*=\s*([\w!#$%&+^`{}~-]*)'[^']*'([^;\s]+)", re.IGNORECASE)
_FILENAME = re.compile(r'(?<![\w*])filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))', re.IGNORECASE)


def _safe_name(name: str | None) -> str | None:
    """A bare file name (no directories), or None for nothing usable."""
    if not name:
        return None
    base = Path(name.replace("\\", "/")).name
    return base if base not in ("", ".", "..") else None


def _disposition_filename(header: str) -> str | None:
    """The file name of a Content-Disposition header, `filename*` (RFC 5987) first, as RFC 6266
    says (`email.message` takes whichever comes first, and decodes `filename*` as Latin-1)."""
    if extended := _FILENAME_STAR.search(header):
        charset, value = extended.groups()
        try:
            return unquote(value, encoding=charset or "utf-8", errors="strict")
        except (LookupError, UnicodeDecodeError):
            pass
    if plain := _FILENAME.search(header):
        return plain.group(1) if plain.group(1) is not None else plain.group(2)
    return None


def filename_of(response: httpx.Response, export_id: str) -> str:
    """The name the storage suggests (Content-Disposition), else the object key's last segment,
    else the export id."""
    from_header = _disposition_filename(response.headers.get("Content-Disposition", ""))
    from_key = unquote(urlsplit(str(response.url)).path.rsplit("/", 1)[-1])
    return _safe_name(from_header) or _safe_name(from_key) or export_id


def _target(output: str | None, suggested: str) -> Path:
    if output is None:
        return Path(suggested)
    path = Path(output)
    return path / suggested if path.is_dir() else path


def _copy(response: httpx.Response, sink: Path | None, err: Console) -> int:
    """Stream the body into `sink` (None: standard output); the byte count."""
    total = (
        int(response.headers["Content-Length"]) if "Content-Length" in response.headers else None
    )
    written = 0
    progress = Progress(
        BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err, transient=True
    )
    progress.disable = not err.is_terminal
    with progress, contextlib.ExitStack() as stack:
        task = progress.add_task("download", total=total)
        out = sys.stdout.buffer if sink is None else stack.enter_context(sink.open("xb"))
        for chunk in response.iter_raw(CHUNK_BYTES):
            out.write(chunk)
            written += len(chunk)
            progress.update(task, completed=written)
        out.flush()
    return written


def download(api: ApiClient, export_id: str, output: str | None, err: Console) -> tuple[str, int]:
    """Download a COMPLETED export to `output` (a file, a directory, `-` for standard output, or
    None for the suggested name in the current directory); (where it went, its size)."""
    url = api.download_location(export_id)
    with stream_object(url) as response:
        if output == "-":
            return "standard output", _copy(response, None, err)
        target = _target(output, filename_of(response, export_id))
        partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
        try:
            written = _copy(response, partial, err)
            partial.replace(target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return str(target), written
