"""End-to-end: py-rattler solves against the demo upstream served on 127.0.0.1 and installs it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import rattler

from mirror.demo.channel import build_demo_upstream, demo_specs, index_channel
from mirror.demo.packages import build_package
from mirror.demo.upstream_server import StaticChannelServer

pytestmark = pytest.mark.real_component

PLATFORMS = ["linux-64", "noarch"]


async def solve_and_install(url: str, specs: list[str], work: Path) -> list[rattler.RepoDataRecord]:
    """Solve `specs` for linux-64 from the channel at `url` and install them into work/env."""
    gateway = rattler.Gateway(cache_dir=work / "repodata-cache")
    records = await rattler.solve(
        sources=[url],
        specs=specs,
        gateway=gateway,
        platforms=PLATFORMS,
        virtual_packages=[],
    )
    await rattler.install(
        records,
        target_prefix=work / "env",
        cache_dir=work / "pkgs",
        platform=rattler.Subdir("linux-64"),
        show_progress=False,
    )
    return records


def solved(records: list[rattler.RepoDataRecord]) -> dict[str, str]:
    return {record.name.normalized: str(record.version) for record in records}


@pytest.fixture
def upstream(tmp_path):
    build_demo_upstream(tmp_path / "channel")
    with StaticChannelServer(tmp_path / "channel") as server:
        yield server


async def test_install_demo_tool(upstream, tmp_path):
    records = await solve_and_install(upstream.url, ["demo-tool"], tmp_path)
    prefix = tmp_path / "env"

    assert solved(records) == {"demo-tool": "1.0", "libdemo": "2.0", "demo-data": "1.1"}
    assert all(record.url.startswith(upstream.url) for record in records)
    assert all(record.file_name.endswith(".conda") for record in records)
    assert (prefix / "bin" / "demo-tool").is_file()
    assert (prefix / "lib" / "libdemo" / "greet.sh").is_file()
    assert (prefix / "share" / "demo-data" / "names.txt").read_bytes() == b"Ada\nGrace\nLinus\n"
    assert (prefix / "conda-meta" / "demo-tool-1.0-h0_0.json").is_file()

    result = subprocess.run(
        [prefix / "bin" / "demo-tool"], capture_output=True, text=True, check=True, timeout=30
    )
    assert result.stdout.splitlines() == [
        "Hello, Ada (libdemo 2.0)",
        "Hello, Grace (libdemo 2.0)",
        "Hello, Linus (libdemo 2.0)",
    ]


async def test_install_older_version(upstream, tmp_path):
    records = await solve_and_install(upstream.url, ["demo-tool ==0.9"], tmp_path)

    assert solved(records) == {"demo-tool": "0.9", "libdemo": "1.0"}
    greet = (tmp_path / "env" / "lib" / "libdemo" / "greet.sh").read_text()
    assert "libdemo 1.0" in greet


async def test_install_tar_bz2_only(tmp_path):
    channel = tmp_path / "channel"
    for spec in demo_specs():
        build_package(spec, channel / spec.subdir, "tar.bz2")
    index_channel(channel)

    with StaticChannelServer(channel) as server:
        records = await solve_and_install(server.url, ["demo-tool"], tmp_path)

    assert solved(records) == {"demo-tool": "1.0", "libdemo": "2.0", "demo-data": "1.1"}
    assert all(record.file_name.endswith(".tar.bz2") for record in records)
    assert (tmp_path / "env" / "bin" / "demo-tool").stat().st_mode & 0o111
    assert (tmp_path / "env" / "share" / "demo-data" / "names.txt").is_file()
