"""Moved to `connections.mongo`; kept so modules written against the old path still import."""

from connections.mongo import Document, source_collection

__all__ = ["Document", "source_collection"]
