"""Dashboard queries on a real SQLite catalog: filters, pages, and index use at 100,000 packages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from mirror.catalog.models import Artifact, ChannelMembership, CheckOutcome, MembershipState, ValidationResult
from mirror.catalog.session import Catalog
from mirror.dashboard import queries

ROWS = 100_000
STATES = [MembershipState.PASSED, MembershipState.APPROVED, MembershipState.FAILED, MembershipState.PENDING]


@pytest.fixture(scope="module")
def big_catalog(tmp_path_factory):
    """A catalog with 100,000 artifacts and memberships, written with bulk inserts."""
    catalog = Catalog(f"sqlite:///{tmp_path_factory.mktemp('big') / 'catalog.db'}")
    now = datetime.now(UTC)
    artifacts = [
        {"id": i, "upstream": "other" if i % 2 else "up", "subdir": "noarch", "filename": f"pkg{i}-1.0-0.conda",
         "name": f"pkg{i}", "version": "1.0", "build": "0", "build_number": 0, "size": 1000 + i,
         "record": {}, "state": "downloaded", "removed_upstream": False,
         "first_seen": now - timedelta(days=i % 30), "updated_at": now}
        for i in range(1, ROWS + 1)
    ]
    memberships = [
        {"id": i, "channel": "main", "artifact_id": i, "state": STATES[i % 4].value, "updated_at": now}
        for i in range(1, ROWS + 1)
    ]
    # Only the warnings: rows of passing results would not change any query here.
    results = [
        {"artifact_id": i, "check_name": "scripts", "check_version": "1", "outcome": CheckOutcome.WARN.value,
         "summary": "s", "evidence": {}, "created_at": now}
        for i in range(8, ROWS + 1, 8)
    ]
    with catalog.session() as session:
        session.execute(Artifact.__table__.insert(), artifacts)
        session.execute(ChannelMembership.__table__.insert(), memberships)
        session.execute(ValidationResult.__table__.insert(), results)
    with catalog.engine.connect() as connection:
        connection.execute(text("ANALYZE"))
    yield catalog
    catalog.close()


def plan_of(catalog: Catalog, query) -> str:
    compiled = query.compile(catalog.engine, compile_kwargs={"literal_binds": True})
    with catalog.engine.connect() as connection:
        rows = connection.execute(text(f"EXPLAIN QUERY PLAN {compiled}")).all()
    return "\n".join(row[-1] for row in rows)


def test_queue_uses_index(big_catalog):
    query = queries.queue_query(queries.QueueFilter("main"))
    plan = plan_of(big_catalog, query.limit(50))
    assert "ix_channel_memberships_channel_state" in plan

    with big_catalog.session() as session:
        page = queries.queue_page(session, queries.QueueFilter("main"), page=3)
    assert page.total == ROWS // 4
    assert len(page.items) == 50
    assert all(row["state"] == "passed" for row in page.items)
    assert page.items[0]["id"] < page.items[-1]["id"]


def test_name_filter_uses_index(big_catalog):
    query_filter = queries.QueueFilter("main", states=(), name="pkg9999")
    plan = plan_of(big_catalog, queries.queue_query(query_filter).limit(50))
    assert "ix_artifacts_name" in plan

    with big_catalog.session() as session:
        page = queries.queue_page(session, query_filter)
    assert {row["name"] for row in page.items} == {"pkg9999", "pkg99990", "pkg99991", "pkg99992", "pkg99993",
                                                   "pkg99994", "pkg99995", "pkg99996", "pkg99997", "pkg99998",
                                                   "pkg99999"}


def test_check_filter_uses_index(big_catalog):
    query_filter = queries.QueueFilter("main", check="scripts", upstream="up", max_age_days=10)
    plan = plan_of(big_catalog, queries.queue_query(query_filter).limit(50))
    # SQLite names the index of a unique constraint sqlite_autoindex_<table>_N.
    assert "SEARCH validation_results USING INDEX" in plan
    assert "(artifact_id=? AND check_name=?)" in plan

    with big_catalog.session() as session:
        page = queries.queue_page(session, query_filter)
    assert page.total > 0
    for row in page.items:
        assert row["upstream"] == "up"
        assert row["checks_not_passed"] == [{"check": "scripts", "outcome": "warn", "summary": "s"}]


def test_parse_filter_errors():
    with pytest.raises(queries.QueryError, match="unknown state 'nope'"):
        queries.queue_filter_from("main", {"state": "nope"})
    with pytest.raises(queries.QueryError, match="max_age_days must be a number"):
        queries.queue_filter_from("main", {"max_age_days": "soon"})
    with pytest.raises(queries.QueryError, match="page must be"):
        queries.page_from({"page": "0"})
    assert queries.queue_filter_from("main", {}).states == (MembershipState.PASSED,)
    assert queries.queue_filter_from("main", {"state": "all"}).states == ()
    assert queries.queue_filter_from("main", {"state": "failed,rejected"}).states == (
        MembershipState.FAILED, MembershipState.REJECTED)


def test_filter_params_round_trip():
    query_filter = queries.QueueFilter("main", check="licence", name="py", max_age_days=2.5)
    assert queries.queue_filter_from("main", query_filter.as_params()) == query_filter
