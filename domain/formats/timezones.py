"""Dates in the time zone a request names (IANA names, from the system's or `tzdata`'s database).

BSON dates are instants in UTC. Without a zone the CSV contract writes them with `Z`
(`domain.formats.cell_format.format_datetime`); with one they are written as the zone's wall-clock time
with its offset on that date (`2024-07-01T12:00:00.000+02:00`), daylight saving included, and
an XLSX cell holds the zone's wall-clock time (Excel dates have no zone).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bson import DatetimeMS

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MACHINE_DEPENDENT: Final = frozenset({"localtime", "posixrules"})


def check_timezone(name: str) -> str:
    """`name` if it is a time zone the database knows, else ValueError naming it.

    `localtime` is refused: it is whatever zone a machine is set to, so two workers could write
    different bytes for the same part."""
    try:
        if name in _MACHINE_DEPENDENT:
            raise ValueError(name)
        zone_of(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(
            f"timezone {name!r} is not an IANA time zone name such as 'Europe/Paris' or 'UTC'"
        ) from exc
    return name


@functools.lru_cache(maxsize=64)
def zone_of(name: str) -> tzinfo:
    if name in ("UTC", "Etc/UTC"):
        return UTC
    return ZoneInfo(name)


def as_utc(value: datetime | DatetimeMS) -> datetime | None:
    """An aware UTC datetime (naive means UTC), or None for a DatetimeMS outside years 1–9999."""
    if isinstance(value, DatetimeMS):
        try:
            return _EPOCH + timedelta(milliseconds=int(value))
        except OverflowError:
            return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def in_zone(value: datetime | DatetimeMS, zone: tzinfo) -> datetime | None:
    """The instant as an aware datetime in `zone`, or None when it has no datetime form."""
    moment = as_utc(value)
    if moment is None:
        return None
    try:
        return moment.astimezone(zone)
    except OverflowError:  # within a day of year 1 or 9999, shifted out of range
        return None


def zoned_iso(value: Any, zone: tzinfo) -> str | None:
    """ISO 8601 with milliseconds and the zone's offset, or None (the caller's fallback) for a
    value that is not a date or has no datetime form."""
    if not isinstance(value, datetime | DatetimeMS):
        return None
    moment = in_zone(value, zone)
    if moment is None:
        return None
    return moment.isoformat(timespec="milliseconds")
