"""Reading a Parquet export back with pyarrow, DuckDB and polars, and the rows it must hold."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import duckdb
import polars
import pyarrow as pa
import pyarrow.parquet as pq
from bson import json_util

from domain.formats.arrow_values import to_array

_JSON = json_util.RELAXED_JSON_OPTIONS.with_options(tz_aware=True)


def read_three_ways(body: bytes, tmp_path: Path) -> list[list[dict[str, Any]]]:
    """The rows as pyarrow, DuckDB and polars read the file (each as Python values)."""
    path = tmp_path / "export.parquet"
    path.write_bytes(body)
    by_pyarrow = pq.read_table(io.BytesIO(body)).to_pylist()
    relation = duckdb.sql(f"SELECT * FROM read_parquet('{path}')")
    assert relation is not None
    by_duckdb = relation.to_arrow_table().to_pylist()
    by_polars = polars.read_parquet(path).to_dicts()
    return [by_pyarrow, by_duckdb, by_polars]


def schema_of(body: bytes) -> pa.Schema:
    return pq.read_schema(io.BytesIO(body))


def rows_of_jsonl(body: bytes, schema: pa.Schema) -> list[dict[str, Any]]:
    """The JSON Lines export's rows as the Parquet schema holds them (see
    `domain.formats.arrow_values`): what the Parquet export of the same request must contain."""
    documents = [json_util.loads(line, json_options=_JSON) for line in body.splitlines()]
    columns = {
        field.name: to_array([doc.get(field.name) for doc in documents], field.type)[0]
        for field in schema
    }
    return pa.table(columns, schema=schema).to_pylist() if documents else []


def same_rows(read: list[dict[str, Any]], expected: list[dict[str, Any]]) -> bool:
    """Equal row for row; a reader's timestamps may carry another (equal) time zone object."""
    return len(read) == len(expected) and all(
        _normal(a) == _normal(b) for a, b in zip(read, expected, strict=True)
    )


def _normal(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if hasattr(value, "tzinfo") and getattr(value, "tzinfo", None) is not None:
        return value.timestamp()
    return value
