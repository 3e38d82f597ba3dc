"""A small importable Python client of the export API (`durable_export.client`), the one
`exportctl` is built on."""

from durable_export.client import (
    DownloadError,
    ExportApiError,
    ExportClient,
    ExportConnectionError,
    ExportServiceError,
)

__all__ = [
    "DownloadError",
    "ExportApiError",
    "ExportClient",
    "ExportConnectionError",
    "ExportServiceError",
]
