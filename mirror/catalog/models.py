"""SQLAlchemy models of the catalog.

The schema is written for both SQLite and PostgreSQL: plain column types,
JSON stored as text through SQLAlchemy's JSON type, timezone-aware
timestamps, and explicit names for every constraint so Alembic
migrations stay portable.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class ArtifactState(enum.StrEnum):
    """Progress of one package file on its way into the store."""

    DISCOVERED = "discovered"
    DOWNLOADED = "downloaded"
    DOWNLOAD_FAILED = "download_failed"


class MembershipState(enum.StrEnum):
    """Progress of one package file on its way into one channel."""

    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"
    APPROVED = "approved"
    REJECTED = "rejected"
    RETIRED = "retired"


class CheckOutcome(enum.StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCESS = "success"
    PARTIAL = "partial"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


def _enum(enum_type: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings so adding a state needs no database type change.
    return Enum(enum_type, name=name, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])


class Artifact(Base):
    """One package file of one upstream subdir, with its upstream repodata record."""

    __tablename__ = "artifacts"
    __table_args__ = (
        UniqueConstraint("upstream", "subdir", "filename", name="uq_artifacts_upstream_subdir_filename"),
        Index("ix_artifacts_name", "name"),
        Index("ix_artifacts_sha256", "sha256"),
        Index("ix_artifacts_state", "state"),
        Index("ix_artifacts_upstream", "upstream"),
        Index("ix_artifacts_first_seen", "first_seen"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    upstream: Mapped[str] = mapped_column(String(64))
    subdir: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(128))
    build: Mapped[str] = mapped_column(String(255))
    build_number: Mapped[int] = mapped_column(Integer)
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    md5: Mapped[str | None] = mapped_column(String(32))
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[ArtifactState] = mapped_column(_enum(ArtifactState, "artifact_state"), default=ArtifactState.DISCOVERED)
    removed_upstream: Mapped[bool] = mapped_column(default=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    downloaded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    memberships: Mapped[list[ChannelMembership]] = relationship(back_populates="artifact")
    results: Mapped[list[ValidationResult]] = relationship(back_populates="artifact")

    @property
    def key(self) -> str:
        return f"{self.upstream}/{self.subdir}/{self.filename}"


class Blob(Base):
    """A verified file in the content-addressed store."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    stored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ChannelMembership(Base):
    """An artifact selected for an internal channel, and its approval state there."""

    __tablename__ = "channel_memberships"
    __table_args__ = (
        UniqueConstraint("channel", "artifact_id", name="uq_channel_memberships_channel_artifact"),
        Index("ix_channel_memberships_channel_state", "channel", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(64))
    artifact_id: Mapped[int] = mapped_column(ForeignKey("artifacts.id", ondelete="CASCADE"))
    state: Mapped[MembershipState] = mapped_column(_enum(MembershipState, "membership_state"), default=MembershipState.PENDING)
    reason: Mapped[str | None] = mapped_column(Text)
    selected_by: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    artifact: Mapped[Artifact] = relationship(back_populates="memberships")
    approvals: Mapped[list[Approval]] = relationship(back_populates="membership", cascade="all, delete-orphan")


class Approval(Base):
    """One reviewer's approval of a membership; a four-eyes channel needs two from different people."""

    __tablename__ = "approvals"
    __table_args__ = (
        UniqueConstraint("membership_id", "actor", name="uq_approvals_membership_actor"),
        Index("ix_approvals_membership_id", "membership_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    membership_id: Mapped[int] = mapped_column(ForeignKey("channel_memberships.id", ondelete="CASCADE"))
    actor: Mapped[str] = mapped_column(String(255))
    comment: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    membership: Mapped[ChannelMembership] = relationship(back_populates="approvals")


class ValidationResult(Base):
    """The outcome of one check, at one check version, on one artifact."""

    __tablename__ = "validation_results"
    __table_args__ = (
        UniqueConstraint("artifact_id", "check_name", "check_version", name="uq_validation_results_artifact_check"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    artifact_id: Mapped[int] = mapped_column(ForeignKey("artifacts.id", ondelete="CASCADE"))
    check_name: Mapped[str] = mapped_column(String(64))
    check_version: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[CheckOutcome] = mapped_column(_enum(CheckOutcome, "check_outcome"))
    summary: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    artifact: Mapped[Artifact] = relationship(back_populates="results")


class RepodataState(Base):
    """Cache validators of the last upstream repodata fetch, for conditional requests."""

    __tablename__ = "repodata_states"
    __table_args__ = (UniqueConstraint("upstream", "subdir", name="uq_repodata_states_upstream_subdir"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    upstream: Mapped[str] = mapped_column(String(64))
    subdir: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SyncRun(Base):
    """One sync, validate or publish cycle and how it ended."""

    __tablename__ = "sync_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus, "run_status"), default=RunStatus.RUNNING)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    errors: Mapped[list[Any]] = mapped_column(JSON, default=list)


class AuditEvent(Base):
    """An append-only record of a state change, with who made it and why."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(64))
    artifact_id: Mapped[int | None] = mapped_column(ForeignKey("artifacts.id", ondelete="SET NULL"))
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
