"""Leases in the catalog database, so that one job of a kind runs at a time across replicas.

A lease is a row of the `leases` table: a name (such as `sync:conda-forge`),
the holder, and when it expires. Acquiring is one transaction that first
takes over the row if it has expired, and otherwise inserts it. A unique
violation on insert means that another holder has the lease. Both statements are
plain SQL that SQLite and PostgreSQL run the same way. On PostgreSQL two
concurrent takeovers of an expired row serialise on the row lock and the
second one finds `expires_at` already in the future, so it updates no row.

The holder renews the lease while its job runs. A holder that dies stops
renewing, and the lease can be taken over once it expires.

NOTE: expiry compares the clocks of the replicas, so their clocks must
agree (NTP) to well within `lease_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from mirror.catalog.models import utcnow
from mirror.catalog.session import Catalog
from mirror.errors import MirrorError
from mirror.scheduler.models import Lease as LeaseRow

logger = logging.getLogger(__name__)

LEASES = LeaseRow.__table__


class LeaseBusyError(MirrorError):
    """Another holder has the lease; the job is skipped, not queued."""

    def __init__(self, name: str, holder: str | None, expires_at: datetime | None):
        until = f" until {expires_at:%Y-%m-%d %H:%M:%S} UTC" if expires_at else ""
        super().__init__(f"lease {name} is held by {holder or 'another process'}{until}")
        self.name = name
        self.holder = holder
        self.expires_at = expires_at


@dataclass(frozen=True)
class Lease:
    """A lease this process holds."""

    name: str
    holder: str
    expires_at: datetime


class LeaseStore:
    """Acquire, renew and release leases in the catalog database.

    Each acquisition gets its own holder string, so two jobs of one process
    exclude each other just like two replicas do.
    """

    def __init__(self, catalog: Catalog, *, identity: str | None = None, clock: Callable[[], datetime] = utcnow):
        self.catalog = catalog
        self.identity = identity or f"{socket.gethostname()}:{os.getpid()}"
        self.clock = clock

    def acquire(self, name: str, seconds: float) -> Lease | None:
        """Take the lease `name` for `seconds`; return None when someone else holds it."""
        holder = f"{self.identity}:{secrets.token_hex(4)}"
        now = self.clock()
        expires_at = now + timedelta(seconds=seconds)
        values = {"holder": holder, "acquired_at": now, "expires_at": expires_at}

        try:
            with self.catalog.engine.begin() as connection:
                taken_over = connection.execute(
                    update(LEASES).where(LEASES.c.name == name, LEASES.c.expires_at < now).values(**values)
                )
                if taken_over.rowcount == 0:
                    connection.execute(insert(LEASES).values(name=name, **values))
        except IntegrityError:
            return None
        logger.debug("lease %s acquired by %s until %s", name, holder, expires_at)
        return Lease(name, holder, expires_at)

    def renew(self, lease: Lease, seconds: float) -> Lease | None:
        """Extend a held lease; return None when it was lost (expired and taken over)."""
        expires_at = self.clock() + timedelta(seconds=seconds)
        with self.catalog.engine.begin() as connection:
            renewed = connection.execute(
                update(LEASES)
                .where(LEASES.c.name == lease.name, LEASES.c.holder == lease.holder)
                .values(expires_at=expires_at)
            )
        if renewed.rowcount == 0:
            return None
        return Lease(lease.name, lease.holder, expires_at)

    def release(self, lease: Lease) -> None:
        with self.catalog.engine.begin() as connection:
            connection.execute(delete(LEASES).where(LEASES.c.name == lease.name, LEASES.c.holder == lease.holder))
        logger.debug("lease %s released by %s", lease.name, lease.holder)

    def holder_of(self, name: str) -> tuple[str, datetime] | None:
        """Return the holder and expiry of a lease that has not expired, or None."""
        with self.catalog.engine.connect() as connection:
            row = connection.execute(
                select(LEASES.c.holder, LEASES.c.expires_at).where(LEASES.c.name == name)
            ).first()
        if row is None:
            return None
        expires_at = as_utc(row.expires_at)
        return (row.holder, expires_at) if expires_at > self.clock() else None

    def live_leases(self) -> list[tuple[str, str, datetime]]:
        """Return (name, holder, expires_at) of every lease that has not expired."""
        with self.catalog.engine.connect() as connection:
            rows = connection.execute(select(LEASES.c.name, LEASES.c.holder, LEASES.c.expires_at)).all()
        now = self.clock()
        return [(r.name, r.holder, as_utc(r.expires_at)) for r in rows if as_utc(r.expires_at) > now]


def as_utc(moment: datetime) -> datetime:
    # SQLite gives back naive datetimes; every stored time is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@contextlib.asynccontextmanager
async def hold_lease(store: LeaseStore, name: str, seconds: float) -> AsyncIterator[Lease]:
    """Hold lease `name` around the body, renewing it every third of `seconds`.

    Raises LeaseBusyError when another holder has it. If the lease is lost
    while the body runs (the database renewal finds another holder), the
    body's task is cancelled, so a job never keeps running unprotected.
    """
    lease = await asyncio.to_thread(store.acquire, name, seconds)
    if lease is None:
        current = await asyncio.to_thread(store.holder_of, name)
        holder, expires_at = current if current else (None, None)
        raise LeaseBusyError(name, holder, expires_at)

    owner = asyncio.current_task()
    renewer = asyncio.create_task(_keep_renewed(store, lease, seconds, owner), name=f"renew {name}")
    try:
        yield lease
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        await asyncio.to_thread(store.release, lease)


async def _keep_renewed(store: LeaseStore, lease: Lease, seconds: float, owner: asyncio.Task | None) -> None:
    while True:
        await asyncio.sleep(seconds / 3)
        try:
            renewed = await asyncio.to_thread(store.renew, lease, seconds)
        except OperationalError as exc:
            # A database outage shorter than the lease costs nothing; the next renewal retries.
            logger.warning("lease %s could not be renewed (%s); retrying", lease.name, exc)
            continue
        if renewed is None:
            logger.error("lease %s was lost to another holder; stopping the job that held it", lease.name)
            if owner is not None:
                owner.cancel()
            return
        lease = renewed
