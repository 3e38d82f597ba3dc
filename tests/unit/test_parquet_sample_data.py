"""The shared sample data as Parquet in three parts, read back by pyarrow, DuckDB and polars:
the same rows as the JSON Lines encoding of the same documents, typed as documented."""

from __future__ import annotations

from pathlib import Path

import pytest
from bson import json_util

from domain.formats.encoding import EncodingSpec, encode_part
from tests.integration.parquet_reading import read_three_ways, rows_of_jsonl, same_rows, schema_of
from tests.unit.test_parquet import encode_in_parts

_TZ_AWARE = json_util.CANONICAL_JSON_OPTIONS.with_options(tz_aware=True)


@pytest.mark.parametrize(
    "name",
    ["analytics_customers", "analytics_accounts", "mflix_theaters", "zips"],
)
def test_sample_data_as_parquet_reads_back_as_its_jsonl(
    shared_data: Path, tmp_path: Path, name: str
) -> None:
    lines = (shared_data / f"{name}.jsonl").read_text().splitlines()
    documents = [json_util.loads(line, json_options=_TZ_AWARE) for line in lines]
    third = len(documents) // 3
    parts, _ = encode_in_parts(documents, [third, 2 * third])
    body = b"".join(parts)
    jsonl = encode_part(EncodingSpec(format="jsonl"), None, documents, first_part=True)
    expected = rows_of_jsonl(jsonl, schema_of(body))
    assert len(expected) == len(documents)
    for read in read_three_ways(body, tmp_path):
        assert same_rows(read, expected)
