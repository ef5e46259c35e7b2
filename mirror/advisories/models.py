"""Catalog tables of the offline vulnerability advisory database.

The rows mirror OSV records (https://ossf.github.io/osv-schema/): one
`Advisory` per OSV id, one `AffectedRange` per range or explicit version
list of an affected package, and one `AdvisoryImport` per import run.
They share `Base` with the catalog, so migrations in
`mirror/catalog/migrations/versions/` create them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mirror.catalog.models import Base, utcnow

# `AffectedRange.range_type` of a row that lists explicit versions
# (OSV's `affected[].versions`) rather than range events.
VERSIONS_RANGE = "VERSIONS"


class Advisory(Base):
    """One OSV advisory: its ids, text, severity and dates."""

    __tablename__ = "advisories"
    __table_args__ = (Index("ix_advisories_modified", "modified"),)

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    aliases: Mapped[list[Any]] = mapped_column(JSON, default=list)
    summary: Mapped[str | None] = mapped_column(Text)
    details: Mapped[str | None] = mapped_column(Text)
    # One of SEVERITY_ORDER, or None when the record gives no usable score.
    severity: Mapped[str | None] = mapped_column(String(16))
    severity_source: Mapped[str | None] = mapped_column(Text)
    published: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    modified: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    withdrawn: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source_file: Mapped[str] = mapped_column(Text)
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    ranges: Mapped[list[AffectedRange]] = relationship(
        back_populates="advisory", cascade="all, delete-orphan", passive_deletes=True
    )


class AffectedRange(Base):
    """One affected version range, or one explicit version list, of one ecosystem package.

    `events` keeps OSV's ordered list of `{"introduced": v}`, `{"fixed": v}`,
    `{"last_affected": v}` and `{"limit": v}` objects, because one range
    may open and close several times. `package_key` is the name as the
    matcher looks it up (PEP 503 form for PyPI).
    """

    __tablename__ = "advisory_ranges"
    __table_args__ = (Index("ix_advisory_ranges_ecosystem_package_key", "ecosystem", "package_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    advisory_id: Mapped[str] = mapped_column(ForeignKey("advisories.id", ondelete="CASCADE"))
    ecosystem: Mapped[str] = mapped_column(String(64))
    package_name: Mapped[str] = mapped_column(String(255))
    package_key: Mapped[str] = mapped_column(String(255))
    range_type: Mapped[str] = mapped_column(String(16))
    events: Mapped[list[Any]] = mapped_column(JSON, default=list)
    versions: Mapped[list[Any]] = mapped_column(JSON, default=list)

    advisory: Mapped[Advisory] = relationship(back_populates="ranges")


class AdvisoryImport(Base):
    """One run of `mirror advisories import`: its source, counts and skipped files."""

    __tablename__ = "advisory_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    imported: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[list[Any]] = mapped_column(JSON, default=list)
    complete: Mapped[bool] = mapped_column(default=False)
