"""Catalog tables of the scheduler: leases, scheduled jobs and the whitelist in force."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mirror.catalog.models import Base, utcnow


class Lease(Base):
    """A named lock with an expiry, so one replica at a time runs a job."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ScheduledJob(Base):
    """One APScheduler job, stored as JSON so that loading it runs no code (no pickle)."""

    __tablename__ = "scheduler_jobs"
    __table_args__ = (Index("ix_scheduler_jobs_next_run_time", "next_run_time"),)

    id: Mapped[str] = mapped_column(String(191), primary_key=True)
    # Seconds since the epoch (UTC), as APScheduler's own stores keep it; NULL while paused.
    next_run_time: Mapped[float | None] = mapped_column(Float)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)


class WhitelistState(Base):
    """The last whitelist that loaded, and the error of the file on disk if it does not load."""

    __tablename__ = "whitelist_states"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    entries: Mapped[list[Any]] = mapped_column(JSON, default=list)
    loaded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    error_sha256: Mapped[str | None] = mapped_column(String(64))
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
