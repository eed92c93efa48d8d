"""One instance at a time, among those sharing a database: a lease on a session-level advisory
lock, held on a connection of its own.

Several instances with the same gateway API keys must not each poll: the gateway's rate limit is
per key, so two pollers would each spend it whole and be refused (Lisoloo may suspend a key that
keeps knocking after 429s), and every lost report would be asked about twice. The lock lives as
long as the connection: an instance that stops, crashes or loses the database releases it, and
another takes it over at its next try.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from smswatch.store.postgres.schema import ADVISORY_LOCK

log = logging.getLogger(__name__)

# Two 32-bit keys (ours, and the owner's number): PostgreSQL keeps them apart from the
# one-64-bit-key locks the writer takes per message and recipient, so no hash can collide.
# The server notices a leader gone silent (a cable pulled, not a closed socket) within a minute
# or so, and frees its leases, instead of after the system's two hours.
KEEPALIVE = {
    "tcp_keepalives_idle": "20",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "4",
}


class PgLease:
    """Leases held on one connection, one per owner (a gateway and its key)."""

    def __init__(self, url: str, name: str = "smswatch-lease") -> None:
        self.url = url
        self.name = name
        self._conn: asyncpg.Connection | None = None
        self._held: set[int] = set()

    def held(self, owner: int) -> bool:
        return owner in self._held

    async def acquire(self, owner: int) -> bool:
        """Take `owner`'s lease if it is free, or check it is still ours: True while held.
        Never raises: a database out of reach means every lease is lost (the server frees the
        locks with the session)."""
        try:
            if self._conn is None or self._conn.is_closed():
                self._held.clear()
                self._conn = await asyncpg.connect(
                    self.url,
                    timeout=5,
                    command_timeout=10,
                    server_settings={"application_name": self.name, **KEEPALIVE},
                )
            if owner in self._held:
                await self._conn.fetchval("SELECT 1")
            elif await self._conn.fetchval(
                "SELECT pg_try_advisory_lock($1, $2)", ADVISORY_LOCK, owner
            ):
                self._held.add(owner)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning("%s: the database is out of reach (%s): leases dropped", self.name, exc)
            self._drop()
        return owner in self._held

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._held.clear()
        if conn is not None:
            conn.terminate()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        self._held.clear()
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)
            if not conn.is_closed():
                conn.terminate()
