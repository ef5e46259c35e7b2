"""Reviewer actions on a real SQLite catalog: four eyes, comments, revoke and promote."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mirror.catalog.models import Artifact, AuditEvent, ChannelMembership, MembershipState
from mirror.catalog.session import Catalog
from mirror.config.schema import MirrorConfig
from mirror.review.actions import ReviewError, approve, promote, reject, revoke


@pytest.fixture
def config(tmp_path) -> MirrorConfig:
    return MirrorConfig.model_validate({
        "data_dir": str(tmp_path),
        "upstreams": {"up": {"url": "file:///nowhere"}},
        "channels": {"dev": {}, "prod": {"approval": "manual", "approvals_required": 2}},
    })


@pytest.fixture
def catalog(tmp_path):
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    yield catalog
    catalog.close()


def add_membership(session, channel="prod", state=MembershipState.PASSED, requested_by=None) -> int:
    artifact = Artifact(upstream="up", subdir="noarch", filename="pkg-1.0-0.conda", name="pkg", version="1.0",
                        build="0", build_number=0, record={"name": "pkg"})
    session.add(artifact)
    session.flush()
    membership = ChannelMembership(channel=channel, artifact_id=artifact.id, state=state, requested_by=requested_by)
    session.add(membership)
    session.flush()
    return membership.id


def test_four_eyes_needs_two_reviewers(catalog, config):
    with catalog.session() as session:
        membership_id = add_membership(session)
        first = approve(session, config, membership_id, "alice", "licence checked")
        assert first.state == MembershipState.PASSED
        assert "1 of 2" in first.message
        with pytest.raises(ReviewError, match="already approved"):
            approve(session, config, membership_id, "alice", "again")
        second = approve(session, config, membership_id, "bob", "scripts read")
        assert second.state == MembershipState.APPROVED
        actions = [e.action for e in session.scalars(select(AuditEvent))]
        assert actions == ["approval_recorded", "approved"]


def test_requester_may_not_approve(catalog, config):
    with catalog.session() as session:
        membership_id = add_membership(session, requested_by="carol")
        with pytest.raises(ReviewError, match="requested"):
            approve(session, config, membership_id, "carol", "looks fine")


def test_comment_required(catalog, config):
    with catalog.session() as session:
        membership_id = add_membership(session)
        with pytest.raises(ReviewError, match="comment is required"):
            reject(session, membership_id, "alice", "  ")


def test_failed_package_not_approvable(catalog, config):
    with catalog.session() as session:
        membership_id = add_membership(session, state=MembershipState.FAILED)
        with pytest.raises(ReviewError, match="only packages waiting"):
            approve(session, config, membership_id, "alice", "override")


def test_reject_and_revoke(catalog, config):
    with catalog.session() as session:
        membership_id = add_membership(session, channel="dev", state=MembershipState.APPROVED)
        revoked = revoke(session, membership_id, "alice", "advisory pending")
        assert revoked.state == MembershipState.PASSED
        rejected = reject(session, membership_id, "alice", "not needed")
        assert rejected.state == MembershipState.REJECTED
        assert session.get(ChannelMembership, membership_id).reason == "rejected by alice: not needed"


def test_promote_creates_pending_in_target(catalog, config):
    with catalog.session() as session:
        membership_id = add_membership(session, channel="dev", state=MembershipState.APPROVED)
        result = promote(session, config, membership_id, "prod", "alice", "ready for prod")
        target = session.get(ChannelMembership, result.membership_id)
        assert (target.channel, target.state, target.requested_by) == ("prod", MembershipState.PENDING, "alice")
        with pytest.raises(ReviewError, match="already pending"):
            promote(session, config, membership_id, "prod", "bob", "again")
        with pytest.raises(ReviewError, match="unknown channel"):
            promote(session, config, membership_id, "nope", "bob", "x")


def test_twin_formats_decided_together(catalog, config):
    with catalog.session() as session:
        ids = []
        for filename in ("pkg-1.0-0.conda", "pkg-1.0-0.tar.bz2"):
            artifact = Artifact(upstream="up", subdir="noarch", filename=filename, name="pkg", version="1.0",
                                build="0", build_number=0, record={"name": "pkg"})
            session.add(artifact)
            session.flush()
            membership = ChannelMembership(channel="dev", artifact_id=artifact.id, state=MembershipState.APPROVED)
            session.add(membership)
            session.flush()
            ids.append(membership.id)

        revoke(session, ids[0], "alice", "recheck")
        assert [session.get(ChannelMembership, i).state for i in ids] == [MembershipState.PASSED] * 2
        approve(session, config, ids[1], "bob", "fine")
        assert [session.get(ChannelMembership, i).state for i in ids] == [MembershipState.APPROVED] * 2
        reject(session, ids[0], "alice", "withdrawn upstream")
        assert [session.get(ChannelMembership, i).state for i in ids] == [MembershipState.REJECTED] * 2
