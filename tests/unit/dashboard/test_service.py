"""Review service and session store on a real SQLite catalog."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from mirror.auth.authenticator import Principal
from mirror.auth.roles import Roles
from mirror.catalog.models import Artifact, AuditEvent, ChannelMembership, MembershipState
from mirror.catalog.session import Catalog
from mirror.config.schema import MirrorConfig
from mirror.dashboard.queries import QueueFilter
from mirror.dashboard.service import NotVisibleError, ReviewService
from mirror.dashboard.sessions import DashboardSession, SessionStore, hash_session_id

REVIEWER = Principal("rita", "local", Roles(reviewer=True))
READER = Principal("ray", "local", Roles(channels=frozenset({"dev"})))


@pytest.fixture
def catalog(tmp_path):
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    yield catalog
    catalog.close()


@pytest.fixture
def service(tmp_path, catalog) -> ReviewService:
    config = MirrorConfig.model_validate({
        "data_dir": str(tmp_path),
        "whitelist": str(tmp_path / "whitelist.yaml"),
        "upstreams": {"up": {"url": "file:///nowhere"}},
        "channels": {"dev": {"approval": "manual"}, "prod": {"approval": "manual", "approvals_required": 2}},
    })
    return ReviewService(config, catalog)


def add(catalog: Catalog, name: str, channel: str = "dev", requested_by: str | None = None) -> int:
    with catalog.session() as session:
        artifact = Artifact(upstream="up", subdir="noarch", filename=f"{name}-1.0-0.conda", name=name,
                            version="1.0", build="0", build_number=0, record={"name": name})
        session.add(artifact)
        session.flush()
        membership = ChannelMembership(channel=channel, artifact_id=artifact.id, state=MembershipState.PASSED,
                                       requested_by=requested_by)
        session.add(membership)
        session.flush()
        return membership.id


def states(catalog: Catalog) -> dict[int, MembershipState]:
    with catalog.session() as session:
        return {m.id: m.state for m in session.scalars(select(ChannelMembership))}


def test_bulk_keeps_successes(service, catalog):
    good = add(catalog, "good")
    own = add(catalog, "own", requested_by="rita")
    outcomes = service.act(REVIEWER, "approve", [good, own, 999], "checked")
    assert [o.ok for o in outcomes] == [True, False, False]
    assert "may not approve it" in outcomes[1].message
    assert states(catalog) == {good: MembershipState.APPROVED, own: MembershipState.PASSED}


def test_bulk_approve_audit(service, catalog):
    first, second = add(catalog, "alpha"), add(catalog, "beta")
    add(catalog, "alpine", channel="prod")
    outcomes = service.bulk_approve(REVIEWER, QueueFilter("dev", name="al"), "batch")
    assert [o.id for o in outcomes] == [first]
    assert states(catalog)[second] == MembershipState.PASSED
    with catalog.session() as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "bulk_approve"))
        assert event.actor == "rita"
        assert event.details["matched"] == 1
        assert event.details["filter"]["name"] == "al"


def test_reader_sees_own_channels(service, catalog):
    hidden = add(catalog, "secret", channel="prod")
    assert service.visible_channels(READER) == ["dev"]
    with pytest.raises(NotVisibleError):
        service.package(READER, hidden)
    with pytest.raises(NotVisibleError):
        service.queue(READER, QueueFilter("prod"), 1)
    assert service.package(REVIEWER, hidden)["filename"] == "secret-1.0-0.conda"


def test_whitelist_error_text(service, tmp_path):
    (tmp_path / "whitelist.yaml").write_text("- upstream: nowhere\n  channel: dev\n  packages: [x]\n")
    shown = service.whitelist()
    assert shown["entries"] == []
    assert "nowhere" in shown["error"]


def test_session_store_hashes(catalog):
    store = SessionStore(catalog, lifetime=timedelta(hours=1))
    session_id, row = store.create(REVIEWER, "127.0.0.1")
    assert row.id_hash == hash_session_id(session_id)
    assert store.find(session_id).username == "rita"
    with catalog.session() as session:
        stored = [r.id_hash for r in session.scalars(select(DashboardSession))]
    assert session_id not in stored
    store.delete(session_id)
    assert store.find(session_id) is None


def test_session_expiry(catalog):
    store = SessionStore(catalog, lifetime=timedelta(seconds=-1))
    session_id, _ = store.create(REVIEWER, None)
    assert store.find(session_id) is None
    assert store.find("short") is None
