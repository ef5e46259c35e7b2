"""Leases: exclusivity, expiry, renewal and release."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest

from mirror.catalog.models import utcnow
from mirror.scheduler.leader import LeaseBusyError, LeaseStore, hold_lease


def test_lease_excludes_second_holder(catalog):
    first = LeaseStore(catalog, identity="a").acquire("sync:up", 60)
    second = LeaseStore(catalog, identity="b").acquire("sync:up", 60)
    assert first is not None
    assert second is None


def test_lease_excludes_same_process(catalog):
    store = LeaseStore(catalog, identity="a")
    assert store.acquire("sync:up", 60) is not None
    assert store.acquire("sync:up", 60) is None


def test_lease_threads_one_winner(catalog):
    results = []
    barrier = threading.Barrier(4)

    def contend(identity: str) -> None:
        barrier.wait()
        results.append(LeaseStore(catalog, identity=identity).acquire("sync:up", 60))

    threads = [threading.Thread(target=contend, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [lease for lease in results if lease is not None]
    assert len(results) == 4
    assert len(winners) == 1


def test_lease_expiry_allows_takeover(catalog):
    now = utcnow()
    old = LeaseStore(catalog, identity="old", clock=lambda: now)
    lease = old.acquire("sync:up", 30)
    later = LeaseStore(catalog, identity="new", clock=lambda: now + timedelta(seconds=31))
    takeover = later.acquire("sync:up", 30)
    assert lease is not None
    assert takeover is not None
    assert takeover.holder.startswith("new:")
    assert old.renew(lease, 30) is None


def test_lease_release_frees(catalog):
    store = LeaseStore(catalog, identity="a")
    lease = store.acquire("publish", 60)
    store.release(lease)
    assert store.holder_of("publish") is None
    assert store.acquire("publish", 60) is not None


def test_lease_renew_extends(catalog):
    store = LeaseStore(catalog, identity="a")
    lease = store.acquire("publish", 10)
    renewed = store.renew(lease, 100)
    assert renewed is not None
    assert renewed.expires_at > lease.expires_at
    assert store.holder_of("publish")[0] == lease.holder


def test_leases_are_per_name(catalog):
    store = LeaseStore(catalog, identity="a")
    assert store.acquire("sync:one", 60) is not None
    assert store.acquire("sync:two", 60) is not None


async def test_hold_lease_busy_names_holder(catalog):
    store = LeaseStore(catalog, identity="a")
    async with hold_lease(store, "sync:up", 60):
        with pytest.raises(LeaseBusyError) as raised:
            async with hold_lease(LeaseStore(catalog, identity="b"), "sync:up", 60):
                pass
    assert "a:" in str(raised.value)
    assert store.holder_of("sync:up") is None


async def test_hold_lease_lost_cancels_body(catalog):
    store = LeaseStore(catalog, identity="a")
    cancelled = False
    with pytest.raises(asyncio.CancelledError):
        async with hold_lease(store, "sync:up", 0.3) as lease:
            # Another holder takes the row over, as after an expiry; the next renewal notices.
            store.release(lease)
            LeaseStore(catalog, identity="b").acquire("sync:up", 60)
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled = True
                raise
    assert cancelled
    assert store.holder_of("sync:up")[0].startswith("b:")
