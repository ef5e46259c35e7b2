"""A sync killed mid-run keeps finished downloads, changes nothing published, and resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mirror.catalog.models import ArtifactState, RunStatus
from mirror.demo.packages import PackageSpec
from tests.functional.helpers import Mirror, build_upstream
from tests.support.fake_upstream import Fault, FakeUpstream

PACKAGES = 30
STALLED = 20


def many_specs() -> list[PackageSpec]:
    return [
        PackageSpec(f"pkg{i:02d}", "1.0", subdir="noarch", files={f"share/pkg{i:02d}.txt": f"{i}\n".encode()})
        for i in range(PACKAGES)
    ]


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


def start_sync(mirror: Mirror) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mirror", "--config", str(mirror.config_path), "sync"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2],
    )


def test_sigterm_mid_sync_then_rerun(tmp_path):
    root = build_upstream(tmp_path / "upstream", many_specs(), formats=("conda",))
    with FakeUpstream(root) as server:
        mirror = Mirror(tmp_path / "mirror").write(
            server.url, "- upstream: up\n  channel: main\n  packages: [pkg00]\n", connections=1
        )
        assert mirror.cli("run").exit_code == 0
        published_before = {p: p.read_bytes() for p in mirror.channels_dir.rglob("repodata.json*")}

        # Widen the whitelist, stall one download, and stop the sync while it waits.
        (mirror.folder / "whitelist.yaml").write_text(
            "- upstream: up\n  channel: main\n  packages: ['pkg*']\n"
        )
        stalled = f"/noarch/pkg{STALLED:02d}-1.0-0.conda"
        server.add_fault(stalled, Fault("stall", times=None, stall_seconds=60))
        process = start_sync(mirror)
        try:
            wait_for(lambda: stalled in server.paths_requested())
        finally:
            process.send_signal(signal.SIGTERM)
            output = process.communicate(timeout=60)[0].decode()
        assert process.returncode == 130, output

        runs = [r for r in mirror.runs() if r.kind == "sync"]
        assert runs[-1].status == RunStatus.INTERRUPTED
        downloaded = {a.filename for a in mirror.artifacts() if a.state == ArtifactState.DOWNLOADED}
        assert f"pkg{STALLED:02d}-1.0-0.conda" not in downloaded
        assert len(downloaded) >= STALLED
        assert {p: p.read_bytes() for p in mirror.channels_dir.rglob("repodata.json*")} == published_before

        # The rerun fetches only what was not finished.
        server.clear()
        assert mirror.cli("run").exit_code == 0
        fetched = {Path(p).name for p in server.paths_requested(".conda")}
        assert fetched == {f"pkg{i:02d}-1.0-0.conda" for i in range(PACKAGES)} - downloaded

    filenames = [a.filename for a in mirror.artifacts()]
    assert len(filenames) == len(set(filenames)) == PACKAGES
    assert len(mirror.published()) == PACKAGES
    assert [r.status for r in mirror.runs() if r.kind == "sync"][-1] == RunStatus.SUCCESS


def test_abandoned_run_marked_interrupted(tmp_path):
    root = build_upstream(tmp_path / "upstream", many_specs()[:3], formats=("conda",))
    with FakeUpstream(root) as server:
        mirror = Mirror(tmp_path / "mirror").write(server.url, "- upstream: up\n  channel: main\n  packages: ['pkg*']\n", connections=1)
        server.add_fault("/noarch/pkg01-1.0-0.conda", Fault("stall", times=None, stall_seconds=60))
        process = start_sync(mirror)
        try:
            wait_for(lambda: "/noarch/pkg01-1.0-0.conda" in server.paths_requested())
        finally:
            process.kill()
            process.communicate(timeout=30)
        assert [r.status for r in mirror.runs()] == [RunStatus.RUNNING]

        server.clear()
        assert mirror.cli("sync").exit_code == 0
    statuses = [r.status for r in mirror.runs()]
    assert statuses == [RunStatus.INTERRUPTED, RunStatus.SUCCESS]


def test_concurrent_sync_refused(tmp_path):
    from mirror.jobs.locks import exclusive_lock

    root = build_upstream(tmp_path / "upstream", many_specs()[:2], formats=("conda",))
    with FakeUpstream(root) as server:
        mirror = Mirror(tmp_path / "mirror").write(server.url, "- upstream: up\n  channel: main\n  packages: ['pkg*']\n")
        (mirror.folder / "data").mkdir(parents=True)
        with exclusive_lock(mirror.folder / "data" / "jobs.lock", "test"):
            result = mirror.cli("sync")
    assert result.exit_code == 1
    assert "another sync, validate or publish job is running" in result.output
    assert mirror.runs() == []
    assert os.path.exists(mirror.folder / "data" / "jobs.lock")
