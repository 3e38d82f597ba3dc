"""Moved to `connections.s3`; kept so modules written against the old path still import."""

from connections.s3 import make_presigning_client, make_s3_client, s3_config

__all__ = ["make_presigning_client", "make_s3_client", "s3_config"]
