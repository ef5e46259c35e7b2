"""The whole cycle against a local upstream over loopback: sync, validate, publish, serve, install."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
import rattler

from mirror.catalog.models import ArtifactState, MembershipState, RunStatus
from mirror.config.load import load_config
from mirror.demo.packages import PackageSpec
from mirror.server.app import start_server
from tests.functional.helpers import WHITELIST, Mirror, build_upstream, demo_like_specs, edit_repodata
from tests.support.fake_upstream import Fault, FakeUpstream

EXPECTED = {
    "tool-1.0-h0_0.conda", "tool-1.0-h0_0.tar.bz2",
    "libx-2.0-h0_0.conda", "libx-2.0-h0_0.tar.bz2",
    "data-1.1-0.conda", "data-1.1-0.tar.bz2",
}


@pytest.fixture
def upstream(tmp_path):
    root = build_upstream(tmp_path / "upstream", demo_like_specs())
    with FakeUpstream(root) as server:
        yield server


@pytest.fixture
def mirror(tmp_path, upstream) -> Mirror:
    return Mirror(tmp_path / "mirror").write(upstream.url, WHITELIST)


async def install(config_path: Path, specs: list[str], work: Path, channel: str = "main") -> dict[str, str]:
    """Serve the published channels and install `specs` with py-rattler; return name -> version."""
    runner, base_url = await start_server(load_config(config_path))
    try:
        records = await rattler.solve(
            sources=[f"{base_url}/{channel}"], specs=specs,
            gateway=rattler.Gateway(cache_dir=work / "repodata-cache"),
            platforms=["linux-64", "noarch"], virtual_packages=[],
        )
        await rattler.install(
            records, target_prefix=work / "env", cache_dir=work / "pkgs",
            platform=rattler.Subdir("linux-64"), show_progress=False,
        )
    finally:
        await runner.cleanup()
    return {record.name.normalized: str(record.version) for record in records}


def test_run_publishes_exactly_the_selection(mirror):
    result = mirror.cli("run")
    assert result.exit_code == 0, result.output
    assert mirror.published() == EXPECTED
    assert [run.status for run in mirror.runs()] == [RunStatus.SUCCESS] * 3


def test_published_records_are_upstream_records(mirror, tmp_path):
    upstream_doc = __import__("json").loads((tmp_path / "upstream" / "linux-64" / "repodata.json").read_text())
    mirror.cli("run")
    published = mirror.repodata("main", "linux-64")
    for key in ("packages", "packages.conda"):
        for filename, record in published[key].items():
            assert record == upstream_doc[key][filename]


@pytest.mark.real_component
def test_rattler_installs_from_mirror(mirror, tmp_path):
    assert mirror.cli("run").exit_code == 0
    installed = asyncio.run(install(mirror.config_path, ["tool"], tmp_path / "client"))
    assert installed == {"tool": "1.0", "libx": "2.0", "data": "1.1"}
    assert (tmp_path / "client" / "env" / "bin" / "tool").read_text() == "#!/bin/sh\necho tool 1.0\n"


def test_second_sync_costs_304_and_no_downloads(mirror, upstream):
    mirror.cli("run")
    upstream.clear()
    result = mirror.cli("sync")
    assert result.exit_code == 0, result.output
    assert upstream.paths_requested(".conda") == []
    assert upstream.paths_requested(".tar.bz2") == []
    statuses = [r.status for r in upstream.requests if "repodata" in r.path]
    assert statuses and set(statuses) == {304}


def test_corrupt_file_never_published(mirror, upstream):
    upstream.add_fault("/noarch/data-1.1-0.conda", Fault("corrupt", times=None, offset=100))
    result = mirror.cli("run")
    assert result.exit_code == 1
    assert "data-1.1-0.conda" in result.output
    assert "sha256 mismatch" in result.output or "mismatch" in result.output
    assert mirror.published() == EXPECTED - {"data-1.1-0.conda"}
    failed = [a for a in mirror.artifacts() if a.state == ArtifactState.DOWNLOAD_FAILED]
    assert [a.filename for a in failed] == ["data-1.1-0.conda"]
    assert [r.status for r in mirror.runs() if r.kind == "sync"] == [RunStatus.PARTIAL]

    upstream.clear()
    assert mirror.cli("run").exit_code == 0
    assert mirror.published() == EXPECTED


def test_truncated_download_resumes(tmp_path):
    # Incompressible payload, so the archive is large enough to be cut mid-way.
    noise = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(40_000))
    big = PackageSpec("big", "1.0", subdir="noarch", files={"share/big.bin": noise})
    root = build_upstream(tmp_path / "upstream", [big], formats=("tar.bz2",))
    with FakeUpstream(root) as server:
        server.add_fault("/noarch/big-1.0-0.tar.bz2", Fault("truncate", times=1, after_bytes=300_000))
        mirror = Mirror(tmp_path / "mirror").write(server.url, "- upstream: up\n  channel: main\n  packages: [big]\n")
        assert mirror.cli("run").exit_code == 0
        ranges = [r.headers["Range"] for r in server.requests if r.path.endswith("big-1.0-0.tar.bz2") and "Range" in r.headers]
    assert len(ranges) == 1
    assert ranges[0].startswith("bytes=")
    assert ranges[0] != "bytes=0-"
    assert mirror.published() == {"big-1.0-0.tar.bz2"}


def test_failed_upstream_keeps_channel(mirror, upstream):
    assert mirror.cli("run").exit_code == 0
    before = {p: p.read_bytes() for p in mirror.channels_dir.rglob("repodata.json")}
    upstream.add_fault("/linux-64/repodata.json.zst", Fault("status", code=503, times=None))
    upstream.add_fault("/linux-64/repodata.json", Fault("status", code=503, times=None))
    result = mirror.cli("run")
    assert result.exit_code == 1
    assert "repodata could not be fetched" in result.output
    assert {p: p.read_bytes() for p in mirror.channels_dir.rglob("repodata.json")} == before
    assert all(m.state != MembershipState.RETIRED for m in mirror.memberships())


def test_whitelist_change_retires(mirror, upstream):
    mirror.cli("run")
    (mirror.folder / "whitelist.yaml").write_text(
        "- upstream: up\n  channel: main\n  packages: ['data']\n"
    )
    assert mirror.cli("run").exit_code == 0
    assert mirror.published() == {"data-1.1-0.conda", "data-1.1-0.tar.bz2"}
    retired = [e for e in mirror.audit() if e.action == "retired"]
    assert len(retired) == 4


def test_hotfix_updates_record_without_download(mirror, upstream, tmp_path):
    mirror.cli("run")

    def hotfix(document):
        document["packages.conda"]["tool-1.0-h0_0.conda"]["depends"] = ["libx >=2.0,<2.1", "data"]

    edit_repodata(tmp_path / "upstream", "linux-64", hotfix)
    upstream.clear()
    assert mirror.cli("run").exit_code == 0
    assert upstream.paths_requested(".conda") == []
    record = mirror.repodata("main", "linux-64")["packages.conda"]["tool-1.0-h0_0.conda"]
    assert record["depends"] == ["libx >=2.0,<2.1", "data"]
    updates = [e for e in mirror.audit() if e.action == "record_updated"]
    assert [e.details["fields"] for e in updates] == [["depends"]]


def test_removed_upstream_leaves_index(mirror, upstream, tmp_path):
    mirror.cli("run")

    def remove(document):
        document["removed"] = ["data-1.1-0.tar.bz2"]
        del document["packages"]["data-1.1-0.tar.bz2"]

    edit_repodata(tmp_path / "upstream", "noarch", remove)
    assert mirror.cli("run").exit_code == 0
    assert mirror.published() == EXPECTED - {"data-1.1-0.tar.bz2"}
    assert any(e.action == "removed_upstream" for e in mirror.audit())


def test_repodata_variants_disagree(mirror, upstream, tmp_path):
    # A stale .bz2 copy upstream must not be read: the mirror takes .zst or .json only.
    bz2 = tmp_path / "upstream" / "noarch" / "repodata.json.bz2"
    bz2.write_bytes(b"BZh9 not the real index")
    assert mirror.cli("run").exit_code == 0
    assert upstream.paths_requested("repodata.json.bz2") == []
    assert mirror.published() == EXPECTED


def test_malformed_record_partial_success(tmp_path):
    root = build_upstream(tmp_path / "upstream", demo_like_specs())

    def add_null(document):
        document["packages"]["broken-1.0-0.tar.bz2"] = None

    edit_repodata(root, "noarch", add_null)
    with FakeUpstream(root) as server:
        mirror = Mirror(tmp_path / "mirror").write(
            server.url, WHITELIST + "- upstream: up\n  channel: main\n  packages: [broken]\n"
        )
        result = mirror.cli("run")
    assert result.exit_code == 1
    assert "broken-1.0-0.tar.bz2" in result.output
    assert mirror.published() == EXPECTED
    assert [r.status for r in mirror.runs() if r.kind == "sync"] == [RunStatus.PARTIAL]


def test_identity_mismatch_kept_out(tmp_path):
    specs = demo_like_specs()
    specs[4] = PackageSpec("data", "1.1", subdir="noarch", files={"share/data.txt": b"data\n"},
                           index_overrides={"version": "9.9"})
    root = build_upstream(tmp_path / "upstream", specs)

    def fix_record(document):
        for key in ("packages", "packages.conda"):
            for record in document[key].values():
                record["version"] = "1.1"

    edit_repodata(root, "noarch", fix_record)
    with FakeUpstream(root) as server:
        mirror = Mirror(tmp_path / "mirror").write(server.url, WHITELIST)
        result = mirror.cli("run")
    assert "version" in result.output
    data = [m for m in mirror.memberships() if m.artifact.name == "data"]
    assert {m.state for m in data} == {MembershipState.FAILED}
    assert all("metadata" in m.reason for m in data)

    # tool needs data, so it cannot be installed from the channel and stays out too.
    assert mirror.published() == {"libx-2.0-h0_0.conda", "libx-2.0-h0_0.tar.bz2"}
    tool = [m for m in mirror.memberships() if m.artifact.name == "tool"]
    assert all("data" in m.reason for m in tool)


def test_manual_channel_waits(tmp_path, upstream):
    mirror = Mirror(tmp_path / "manual").write(upstream.url, WHITELIST, channels="  main: {approval: manual}")
    assert mirror.cli("run").exit_code == 0
    assert mirror.published() == set()
    assert {m.state for m in mirror.memberships()} == {MembershipState.PASSED}
    assert (mirror.channels_dir / "main" / "noarch" / "repodata.json").exists()


def test_blob_shared_by_channels_stored_once(tmp_path, upstream):
    whitelist = WHITELIST + WHITELIST.replace("channel: main", "channel: dev")
    mirror = Mirror(tmp_path / "two").write(
        upstream.url, whitelist, channels="  main: {approval: auto}\n  dev: {approval: auto}"
    )
    assert mirror.cli("run").exit_code == 0
    assert mirror.published("main") == mirror.published("dev") == EXPECTED
    blobs = [p for p in (mirror.folder / "data" / "store").rglob("*") if p.is_file()]
    assert len(blobs) == len(EXPECTED)
    main_file = mirror.channels_dir / "main" / "noarch" / "data-1.1-0.conda"
    dev_file = mirror.channels_dir / "dev" / "noarch" / "data-1.1-0.conda"
    assert main_file.stat().st_ino == dev_file.stat().st_ino


def test_republish_is_byte_identical(mirror):
    mirror.cli("run")
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in mirror.channels_dir.rglob("*.json*")}
    assert mirror.cli("publish").exit_code == 0
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in mirror.channels_dir.rglob("*.json*")}
    assert after == before


def test_status_reports_channels(mirror):
    mirror.cli("run")
    result = mirror.cli("status")
    assert result.exit_code == 0
    assert "main" in result.output
    assert "approved" in result.output


def test_invalid_whitelist_exit_code(mirror):
    (mirror.folder / "whitelist.yaml").write_text("- upstream: nope\n  channel: main\n  packages: [x]\n")
    result = mirror.cli("sync")
    assert result.exit_code == 2
    assert "unknown upstream 'nope'" in result.output
    assert "whitelist.yaml:1" in result.output


def test_store_file_matches_record(mirror):
    mirror.cli("run")
    for artifact in mirror.artifacts():
        blob = mirror.folder / "data" / "store" / artifact.sha256[:2] / artifact.sha256[2:4] / artifact.sha256
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == artifact.sha256


def test_consistency_holds_unsatisfiable(tmp_path, upstream):
    channels = "  main: {approval: auto, checks: [integrity, archive, metadata, consistency]}"
    mirror = Mirror(tmp_path / "c").write(
        upstream.url, "- upstream: up\n  channel: main\n  packages: ['tool >=1.0', data]\n", channels=channels
    )
    result = mirror.cli("run")
    assert result.exit_code == 0, result.output
    assert mirror.published() == {"data-1.1-0.conda", "data-1.1-0.tar.bz2"}
    assert "libx" in result.output
    tool = [m for m in mirror.memberships() if m.artifact.name == "tool"]
    assert {m.state for m in tool} == {MembershipState.APPROVED}
    assert all(m.reason.startswith("approved but not published") and "libx" in m.reason for m in tool)
