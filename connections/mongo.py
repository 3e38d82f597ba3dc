"""The MongoDB side of an export: one client per worker process, reads with the configured
read preference."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.read_preferences import (
    Nearest,
    Primary,
    PrimaryPreferred,
    Secondary,
    SecondaryPreferred,
    _ServerMode,
)

from connections.decoding import CODEC_OPTIONS
from domain.settings import Settings

_ReadPreferenceFactory = Callable[[], _ServerMode]

Document = dict[str, Any]

_READ_PREFERENCES: dict[str, _ReadPreferenceFactory] = {
    "primary": Primary,
    "primaryPreferred": PrimaryPreferred,
    "secondary": Secondary,
    "secondaryPreferred": SecondaryPreferred,
    "nearest": Nearest,
}


@lru_cache(maxsize=4)
def _client(uri: str) -> MongoClient[Document]:
    return MongoClient(uri, appname="durable-export", tz_aware=True)


def source_collection(settings: Settings, name: str) -> Collection[Document]:
    """The collection an export reads, with the configured read preference."""
    database = _client(settings.mongodb_uri)[settings.mongodb_database]
    preference = _READ_PREFERENCES[settings.mongodb_read_preference]()
    return database.get_collection(name, read_preference=preference, codec_options=CODEC_OPTIONS)
