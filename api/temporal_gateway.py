"""The API's one Temporal client: connected at startup, or later on demand.

The API starts even when Temporal is down (it answers `/healthz`, and 503 elsewhere) and
connects on the first request after Temporal comes back, instead of failing to boot.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from temporalio.client import Client
from temporalio.service import RPCError

from api.errors import ApiError, temporal_unavailable
from connections.temporal import connect
from domain.settings import Settings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 5.0
HEALTH_TIMEOUT = timedelta(seconds=2)


class TemporalGateway:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        """The connected client, or `ApiError` 503 when Temporal cannot be reached."""
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await asyncio.wait_for(
                        connect(self._settings), CONNECT_TIMEOUT_SECONDS
                    )
                except (RuntimeError, OSError, TimeoutError, RPCError) as exc:
                    # The SDK reports a refused or failed connection as a RuntimeError.
                    raise temporal_unavailable(
                        f"cannot connect to {self._settings.temporal_address}"
                    ) from exc
            return self._client

    async def try_connect(self) -> None:
        """Connect now if possible; log and carry on if not (the lifespan calls this)."""
        try:
            await self.client()
        except ApiError as exc:
            log.warning("%s; will retry on demand", exc.message)

    async def is_ready(self) -> bool:
        try:
            client = await self.client()
            return await client.service_client.check_health(timeout=HEALTH_TIMEOUT)
        except (ApiError, RPCError):
            return False
