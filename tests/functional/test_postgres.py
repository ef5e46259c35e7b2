"""The catalog on a real PostgreSQL server: migrations, whole cycles, reviews, leases, advisories, tokens.

Every test gets an empty database of its own from the `postgres_url`
fixture (tests/support/postgres.py). The mirror runs through the real CLI
with only the `database:` line of mirror.yaml changed, so the code under
test is the code that runs on SQLite.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

import mirror.advisories.models  # noqa: F401  (registers the advisory tables on Base)
import mirror.auth.models  # noqa: F401  (registers the api_tokens table on Base)
import mirror.dashboard.sessions  # noqa: F401  (registers the dashboard_sessions table on Base)
import mirror.scheduler.models  # noqa: F401  (registers leases, scheduler_jobs, whitelist_states)
from mirror.advisories.models import Advisory, AdvisoryImport
from mirror.auth.tokens import TokenNotFoundError, TokenStore
from mirror.catalog.models import Base, MembershipState, RunStatus
from mirror.catalog.session import Catalog, alembic_config
from mirror.config.load import load_config
from mirror.demo.channel import index_channel
from mirror.demo.packages import PackageSpec, build_package
from mirror.review.actions import ReviewError, approve, find_membership, promote, reject, revoke
from mirror.scheduler.leader import LeaseStore
from tests.functional.helpers import WHITELIST, Mirror, build_upstream, demo_like_specs
from tests.functional.test_hostile import (
    ADVISORY,
    CHANNELS,
    ESCAPE_MARK,
    HOSTILE_WHITELIST,
    assert_only_good_published,
    build_hostile_upstream,
    write_advisories,
)
from tests.support.fake_upstream import FakeUpstream

pytestmark = pytest.mark.real_component

SQLITE_LINE = "database: sqlite:///data/catalog.db\n"
PUBLISHED = {
    "tool-1.0-h0_0.conda", "tool-1.0-h0_0.tar.bz2",
    "libx-2.0-h0_0.conda", "libx-2.0-h0_0.tar.bz2",
    "data-1.1-0.conda", "data-1.1-0.tar.bz2",
}


def on_postgres(mirror: Mirror, url: str) -> Mirror:
    """Point an already written mirror.yaml at the PostgreSQL database `url`."""
    text = mirror.config_path.read_text()
    if SQLITE_LINE not in text:
        raise ValueError(f"{mirror.config_path} has no line {SQLITE_LINE.strip()!r} to replace")
    mirror.config_path.write_text(text.replace(SQLITE_LINE, f"database: {url}\n"))
    return mirror


def published_indexes(mirror: Mirror) -> dict[str, bytes]:
    return {
        str(path.relative_to(mirror.channels_dir)): path.read_bytes()
        for path in sorted(mirror.channels_dir.rglob("*.json"))
    }


class Clock:
    """A settable clock for lease and token expiry."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def catalog(postgres_url):
    catalog = Catalog(postgres_url)
    yield catalog
    catalog.close()


def test_migrations_match_models(postgres_url):
    catalog = Catalog(postgres_url)
    try:
        with catalog.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
            current = context.get_current_revision()
    finally:
        catalog.close()

    head = ScriptDirectory.from_config(alembic_config(catalog.engine)).get_current_head()
    assert current == head
    assert differences == []


def test_migrations_downgrade_and_upgrade(postgres_url):
    catalog = Catalog(postgres_url)
    try:
        config = alembic_config(catalog.engine)
        command.downgrade(config, "base")
        with catalog.engine.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() is None
        command.upgrade(config, "head")
        with catalog.engine.connect() as connection:
            differences = compare_metadata(
                MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata
            )
    finally:
        catalog.close()
    assert differences == []


def test_run_same_as_sqlite(tmp_path, postgres_url):
    root = build_upstream(tmp_path / "upstream", demo_like_specs())
    with FakeUpstream(root) as upstream:
        on_sqlite = Mirror(tmp_path / "sqlite").write(upstream.url, WHITELIST)
        on_pg = on_postgres(Mirror(tmp_path / "pg").write(upstream.url, WHITELIST), postgres_url)
        assert on_sqlite.cli("run").exit_code == 0
        result = on_pg.cli("run")
        assert result.exit_code == 0, result.output

        # The rerun finds every repodata unchanged (304) and downloads nothing.
        upstream.clear()
        again = on_pg.cli("run")
        rerun_requests = list(upstream.requests)

    assert again.exit_code == 0, again.output
    assert not (tmp_path / "pg" / "data" / "catalog.db").exists()
    assert on_pg.published() == PUBLISHED
    assert published_indexes(on_pg) == published_indexes(on_sqlite)
    assert [run.status for run in on_pg.runs()] == [RunStatus.SUCCESS] * 6

    repodata_statuses = {r.status for r in rerun_requests if "repodata" in r.path}
    assert repodata_statuses == {304}
    assert [r.path for r in rerun_requests if r.path.endswith((".conda", ".tar.bz2"))] == []


def test_run_stores_aware_times(tmp_path, postgres_url):
    root = build_upstream(tmp_path / "upstream", demo_like_specs())
    with FakeUpstream(root) as upstream:
        mirror = on_postgres(Mirror(tmp_path / "pg").write(upstream.url, WHITELIST), postgres_url)
        assert mirror.cli("run").exit_code == 0

    artifacts = mirror.artifacts()
    assert artifacts
    for artifact in artifacts:
        assert artifact.first_seen.utcoffset() == timedelta(0)
        assert artifact.record["name"] == artifact.name
    memberships = mirror.memberships()
    assert {m.state for m in memberships} == {MembershipState.APPROVED}
    assert all(m.published_at is not None and m.published_at.utcoffset() == timedelta(0) for m in memberships)


def test_hostile_upstream_on_postgres(tmp_path, postgres_url):
    root = build_hostile_upstream(tmp_path / "upstream")
    advisories = write_advisories(tmp_path / "osv")

    with FakeUpstream(root) as server:
        mirror = Mirror(tmp_path / "mirror").write(
            server.url, HOSTILE_WHITELIST,
            channels=CHANNELS,
        )
        on_postgres(mirror, postgres_url)
        mirror.config_path.write_text(mirror.config_path.read_text() + "validation: {max_compression_ratio: 50}\n")
        imported = mirror.cli("advisories", "import", str(advisories))
        assert imported.exit_code == 0, imported.output
        result = mirror.cli("run")

    assert result.exit_code == 0, result.output
    assert_only_good_published(mirror)
    assert not list(tmp_path.rglob(f"{ESCAPE_MARK}*"))


def test_review_actions_on_postgres(tmp_path, postgres_url):
    channels = "  main: {approval: manual, approvals_required: 2}\n  prod: {approval: manual}"
    whitelist = "- upstream: up\n  channel: main\n  packages: [data]\n"
    root = build_upstream(tmp_path / "upstream", demo_like_specs())
    with FakeUpstream(root) as upstream:
        mirror = on_postgres(Mirror(tmp_path / "pg").write(upstream.url, whitelist, channels=channels), postgres_url)
        assert mirror.cli("run").exit_code == 0
    assert mirror.published() == set()
    config = load_config(mirror.config_path)

    catalog = mirror.catalog()
    try:
        # Four eyes: the first approval is recorded, a repeat is rejected, the second approves.
        with catalog.session() as session:
            membership_id = find_membership(session, "main", "data-1.1-0.conda").id
            first = approve(session, config, membership_id, "alice", "licence checked")
            with pytest.raises(ReviewError, match="already approved"):
                approve(session, config, membership_id, "alice", "again")
        with catalog.session() as session:
            second = approve(session, config, membership_id, "bob", "files read")
            promoted = promote(session, config, membership_id, "prod", "bob", "needed in prod")
    finally:
        catalog.close()

    # Both formats of the build were decided together.
    assert first.state == MembershipState.PASSED
    assert second.state == MembershipState.APPROVED
    assert promoted.state == MembershipState.PENDING
    assert mirror.cli("validate").exit_code == 0
    assert mirror.cli("publish").exit_code == 0
    assert mirror.published("main") == {"data-1.1-0.conda", "data-1.1-0.tar.bz2"}
    states = {(m.channel, m.artifact.filename): m.state for m in mirror.memberships()}
    assert states[("prod", "data-1.1-0.conda")] == MembershipState.PASSED

    catalog = mirror.catalog()
    try:
        with catalog.session() as session:
            revoked = revoke(session, membership_id, "carol", "licence unclear after all")
        with catalog.session() as session:
            other_id = find_membership(session, "main", "data-1.1-0.tar.bz2").id
            rejected = reject(session, other_id, "alice", "not needed after all")
    finally:
        catalog.close()
    assert rejected.state == MembershipState.REJECTED
    states = {(m.channel, m.artifact.filename): m.state for m in mirror.memberships()}
    assert states[("main", "data-1.1-0.conda")] == MembershipState.REJECTED
    assert revoked.state == MembershipState.PASSED
    assert mirror.cli("publish").exit_code == 0
    assert mirror.published("main") == set()

    actions = [event.action for event in mirror.audit() if event.actor != "mirror"]
    for action in ("approval_recorded", "approved", "promoted", "rejected", "approval_revoked"):
        assert action in actions


def test_lease_exclusive_between_stores(postgres_url):
    clock = Clock()
    first_catalog, second_catalog = Catalog(postgres_url), Catalog(postgres_url, upgrade=False)
    try:
        first = LeaseStore(first_catalog, identity="replica-a", clock=clock)
        second = LeaseStore(second_catalog, identity="replica-b", clock=clock)

        first_lease = first.acquire("sync:up", 60)
        assert first_lease is not None
        assert second.acquire("sync:up", 60) is None
        holder, expires_at = second.holder_of("sync:up")
        assert holder == first_lease.holder
        assert expires_at == first_lease.expires_at
        assert expires_at.utcoffset() == timedelta(0)

        # Renewal keeps it; once it expires unrenewed, the other store takes it over.
        clock.advance(50)
        assert first.renew(first_lease, 60) is not None
        clock.advance(50)
        assert second.acquire("sync:up", 60) is None
        clock.advance(20)
        second_lease = second.acquire("sync:up", 60)
        assert second_lease is not None
        assert first.renew(first_lease, 60) is None

        first.release(first_lease)
        assert second.holder_of("sync:up")[0] == second_lease.holder
        second.release(second_lease)
        assert first.live_leases() == []
        assert first.acquire("sync:up", 60) is not None
    finally:
        first_catalog.close()
        second_catalog.close()


def race(workers: int, attempt: Callable[[int], object]) -> list[object]:
    """Run `attempt(i)` in `workers` threads released together; return the results in order."""
    barrier = threading.Barrier(workers)
    results: list[object] = [None] * workers
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = attempt(index)
        except BaseException as exc:  # handed to the test thread, which raises it
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("expired", [False, True], ids=["free", "expired"])
def test_lease_race_one_winner(postgres_url, expired):
    clock = Clock()
    catalogs = [Catalog(postgres_url, upgrade=index == 0) for index in range(6)]
    try:
        stores = [LeaseStore(c, identity=f"replica-{i}", clock=clock) for i, c in enumerate(catalogs)]
        if expired:
            assert stores[0].acquire("publish", 10) is not None
            clock.advance(30)

        results = race(len(stores), lambda index: stores[index].acquire("publish", 60))
        winners = [lease for lease in results if lease is not None]
        assert len(winners) == 1
        assert stores[0].holder_of("publish")[0] == winners[0].holder
    finally:
        for catalog in catalogs:
            catalog.close()


def test_advisory_import_and_recheck(tmp_path, postgres_url):
    root = tmp_path / "upstream"
    build_requests_upstream(root)
    advisories = write_advisories(tmp_path / "osv")

    with FakeUpstream(root) as server:
        mirror = Mirror(tmp_path / "mirror").write(
            server.url, "- upstream: up\n  channel: main\n  packages: [requests]\n", channels=CHANNELS
        )
        on_postgres(mirror, postgres_url)
        assert mirror.cli("run").exit_code == 0
        assert mirror.published() == {"requests-2.0.0-0.conda"}

        imported = mirror.cli("advisories", "import", str(advisories))
        assert imported.exit_code == 0, imported.output
        assert "1 imported" in imported.output
        again = mirror.cli("advisories", "import", str(advisories))
        assert again.exit_code == 0, again.output
        assert "1 unchanged" in again.output

        newer = dict(ADVISORY, modified="2024-02-01T00:00:00Z", summary="Updated advisory for requests")
        (advisories / "GHSA-test-0001.json").write_text(json.dumps(newer))
        updated = mirror.cli("advisories", "import", str(advisories))
        assert updated.exit_code == 0, updated.output
        assert "1 updated" in updated.output
        assert mirror.cli("publish").exit_code == 0

    assert mirror.published() == set()
    (membership,) = mirror.memberships()
    assert membership.state == MembershipState.RETIRED
    assert "GHSA-test-0001" in membership.reason
    assert [e.action for e in mirror.audit()].count("retired_vulnerable") == 1

    (advisory,) = mirror.query(Advisory)
    assert advisory.summary == "Updated advisory for requests"
    assert advisory.modified == datetime(2024, 2, 1, tzinfo=UTC)
    assert [row.complete for row in mirror.query(AdvisoryImport)] == [True, True, True]


def build_requests_upstream(root: Path) -> None:
    """An upstream with one package that the test advisory affects: requests 2.0.0."""
    (root / "linux-64").mkdir(parents=True)
    (root / "noarch").mkdir()
    build_package(PackageSpec("requests", "2.0.0", files={"a.txt": b"a"}), root / "noarch", "conda")
    index_channel(root, ["linux-64", "noarch"])


def test_tokens_create_find_revoke(catalog):
    clock = Clock()
    tokens = TokenStore(catalog, now=clock)
    issued = tokens.create(
        name="ci-builds", owner="alice", owner_source="ldap", channels=["main", "dev", "main"],
        expires_in=timedelta(days=1),
    )
    other = tokens.create(name="laptop", owner="bob", owner_source="local", channels=["main"], expires_in=timedelta(hours=1))

    found = tokens.find_active(issued.token)
    assert found is not None
    assert found.id == issued.row.id
    assert found.channels == ["dev", "main"]
    assert found.expires_at == clock.now + timedelta(days=1)
    assert tokens.find_active(issued.token + "x") is None
    assert [row.name for row in tokens.list(owner="alice")] == ["ci-builds"]
    assert [row.name for row in tokens.list()] == ["laptop", "ci-builds"]

    # Expiry follows the clock; revocation is only for the owner's own tokens when `owner` is given.
    clock.advance(2 * 3600)
    assert tokens.find_active(other.token) is None
    with pytest.raises(TokenNotFoundError, match="no token with id"):
        tokens.revoke(issued.row.id, actor="bob", owner="bob")
    revoked = tokens.revoke(issued.row.id, actor="alice", owner="alice")
    assert revoked.revoked_by == "alice"
    assert tokens.find_active(issued.token) is None

    (row,) = tokens.list(owner="alice")
    assert row.last_used_at is not None
    assert row.revoked_at == clock.now


def test_long_version_skips_one_record(tmp_path, postgres_url):
    long_version = "1." + ".".join(["0"] * 70) + ".1"
    specs = [
        PackageSpec("longv", long_version, subdir="noarch", files={"a.txt": b"a"}),
        PackageSpec("short", "1.0", subdir="noarch", files={"b.txt": b"b"}),
    ]
    root = build_upstream(tmp_path / "upstream", specs, formats=("conda",))
    with FakeUpstream(root) as upstream:
        whitelist = "- upstream: up\n  channel: main\n  packages: [longv, short]\n"
        mirror = on_postgres(Mirror(tmp_path / "pg").write(upstream.url, whitelist), postgres_url)
        result = mirror.cli("run")

    # PostgreSQL enforces column lengths that SQLite ignores; both skip the one record.
    assert result.exit_code == 1
    assert "longv" in result.output
    assert "more than the catalog's 128" in result.output
    assert mirror.published() == {"short-1.0-0.conda"}
