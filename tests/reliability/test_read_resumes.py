"""A part's read survives connections that drop mid-cursor: it reopens its query after the last
row read, so every row comes once, in order, and the part is not restarted.

toxiproxy closes every MongoDB connection after 400 KB of replies (`limit_data`); 2,000
documents of about 1.7 KB need several connections. The rows are compared with a direct read
(no proxy; raw rows decoded with the same codec options), and the aggregate commands are
counted to prove the connections did drop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from bson import decode
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient, monitoring
from pymongo.collection import Collection
from pymongo.errors import AutoReconnect

from activities.chunk_reader import read_rows
from activities.export_activities import build_plan
from devstack.toxiproxy import Proxy
from domain.models import ExportRequest
from domain.settings import Settings
from tests.integration import export_harness as h
from tests.integration.test_export_workflow import documents

pytestmark = [pytest.mark.reliability, pytest.mark.services]

PIPELINES: dict[str, list[dict[str, Any]]] = {
    "source_keyset": [{"$project": {"tags": 0}}],
    "sort_keyset": [{"$sort": {"score": -1}}],
}


class AggregateCounter(monitoring.CommandListener):
    def __init__(self) -> None:
        self.aggregates = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "aggregate":
            self.aggregates += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@contextlib.contextmanager
def cut_after(
    settings: Settings, proxy: Proxy, collection: str, limit: int
) -> Iterator[tuple[Collection[dict[str, Any]], AggregateCounter]]:
    """`collection` through `proxy`, every connection closed after `limit` bytes of replies,
    and a counter of the aggregate commands sent through it."""
    counter = AggregateCounter()
    cut = proxy.add_toxic("limit_data", stream="downstream", bytes=limit)
    proxied: MongoClient[dict[str, Any]] = MongoClient(
        f"mongodb://127.0.0.1:{proxy.port}/", event_listeners=[counter]
    )
    try:
        yield proxied[settings.mongodb_database][collection], counter
    finally:
        proxied.close()
        proxy.remove_toxic(cut)


@pytest.fixture(scope="module")
def collection(settings: Settings) -> Iterator[str]:
    name = "read_resumes"
    h.drop(settings, name)
    h.seed(settings, name, documents(2_000, pad=1500))
    yield name
    h.drop(settings, name)


@pytest.mark.parametrize(
    ("strategy", "raw"),
    [("source_keyset", False), ("sort_keyset", True)],
    ids=["source_keyset-documents", "sort_keyset-raw"],
)
def test_rows_read_across_dropped_connections_are_each_read_once_in_order(
    settings: Settings,
    toxiproxy: dict[str, Proxy],
    collection: str,
    strategy: str,
    raw: bool,
) -> None:
    export = h.new_export(ExportRequest(collection=collection, pipeline=PIPELINES[strategy]))
    plan = build_plan(export, settings)
    assert plan.strategy == strategy
    direct: MongoClient[dict[str, Any]] = MongoClient(settings.mongodb_uri)
    expected = [
        dict(row)
        for row, _ in read_rows(
            direct[settings.mongodb_database][collection],
            plan,
            None,
            max_time_ms=60_000,
            batch_size=100,
        )
    ]
    direct.close()
    with cut_after(settings, toxiproxy["mongo"], collection, 400_000) as (cut, counter):
        stream = read_rows(cut, plan, None, max_time_ms=60_000, batch_size=100, raw=raw)
        rows = [row for row, _ in stream]
    assert len(expected) == 2_000
    assert all(isinstance(row, RawBSONDocument) == raw for row in rows)
    got = [decode(row.raw) if isinstance(row, RawBSONDocument) else dict(row) for row in rows]
    assert counter.aggregates >= 3, "the connections were not cut: nothing was tested"
    assert [row["_id"] for row in got] == [row["_id"] for row in expected]
    assert got == expected


def test_reopenings_that_never_yield_a_row_give_up_to_the_retry_policy(
    settings: Settings, toxiproxy: dict[str, Proxy], collection: str
) -> None:
    """Every reply over 20 KB is cut (the handshakes pass, no batch does): the read reopens for
    the time it is given, then raises the driver's error for the activity to classify."""
    export = h.new_export(ExportRequest(collection=collection))
    plan = build_plan(export, settings)
    with cut_after(settings, toxiproxy["mongo"], collection, 20_000) as (cut, counter):
        stream = read_rows(
            cut, plan, None, max_time_ms=60_000, batch_size=100, reopen_without_rows_seconds=2.0
        )
        with pytest.raises(AutoReconnect):
            next(stream)
    assert counter.aggregates >= 2, "the read gave up without reopening"
