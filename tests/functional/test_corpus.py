"""Real packages and repodata written by other projects: selected, synced, validated, published, installed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import rattler

from mirror.catalog.models import ArtifactState, MembershipState
from mirror.config.schema import WhitelistEntry
from mirror.config.load import load_config
from mirror.selection import SubdirIndex, select_entry
from mirror.server.app import start_server
from tests.functional.helpers import Mirror
from tests.support.fake_upstream import FakeUpstream
from tests.support.corpus import require_corpus



@pytest.fixture(scope="module")
def corpus() -> Path:
    return require_corpus()


def corpus_mirror(folder: Path, url: str, subdirs: str, whitelist: str, channels: str = "  main: {approval: auto}") -> Mirror:
    mirror = Mirror(folder).write(url, whitelist, channels=channels)
    text = mirror.config_path.read_text().replace("subdirs: [linux-64, noarch]", f"subdirs: {subdirs}")
    mirror.config_path.write_text(text)
    return mirror


@pytest.mark.real_component
def test_test_recipes_synced_and_installed(corpus, tmp_path):
    with FakeUpstream(corpus / "channels" / "conda-test-recipes") as server:
        mirror = corpus_mirror(
            tmp_path / "mirror", server.url, "[noarch]",
            "- upstream: up\n  channel: main\n  packages: ['another_dependent 2.*']\n  dependencies: true\n",
            # These test packages declare no licence, which keeps them waiting for review by default.
            channels="  main: {approval: auto, licence: {missing: allow}}",
        )
        result = mirror.cli("run")
    assert result.exit_code == 0, result.output
    assert mirror.published() == {
        "another_dependent-2.0-0.conda", "dependent-1.0-0.conda", "dependent-2.0-0.conda",
        "dependency-1.0-0.conda", "dependency-2.0-0.conda",
    }

    async def install() -> dict[str, str]:
        runner, base_url = await start_server(load_config(mirror.config_path))
        try:
            records = await rattler.solve(
                sources=[f"{base_url}/main"], specs=["another_dependent"],
                gateway=rattler.Gateway(cache_dir=tmp_path / "cache"), platforms=["noarch"], virtual_packages=[],
            )
            await rattler.install(
                records, target_prefix=tmp_path / "env", cache_dir=tmp_path / "pkgs",
                platform=rattler.Subdir("linux-64"), show_progress=False,
            )
        finally:
            await runner.cleanup()
        return {r.name.normalized: str(r.version) for r in records}

    installed = asyncio.run(install())
    assert installed == {"another_dependent": "2.0", "dependent": "2.0", "dependency": "2.0"}
    assert (tmp_path / "env" / "conda-meta").is_dir()


def test_conda_format_repo_both_formats(corpus, tmp_path):
    whitelist = (
        "- upstream: up\n  channel: basic\n  packages: [zlib]\n  dependencies: true\n"
        "- upstream: up\n  channel: main\n  packages: [zlib]\n  dependencies: true\n"
    )
    channels = "  basic: {approval: auto, checks: [integrity, archive, metadata, paths]}\n  main: {approval: auto}"
    with FakeUpstream(corpus / "channels" / "conda-format-repo") as server:
        mirror = corpus_mirror(tmp_path / "mirror", server.url, "[linux-64, noarch]", whitelist, channels)
        result = mirror.cli("run")

    # libgcc-ng is listed upstream but its file is not there: reported, the rest goes on.
    assert result.exit_code == 1
    assert "libgcc-ng-8.2.0-hdf63c60_1.tar.bz2" in result.output
    states = {a.filename: a.state for a in mirror.artifacts()}
    assert states["libgcc-ng-8.2.0-hdf63c60_1.tar.bz2"] == ArtifactState.DOWNLOAD_FAILED

    # Both formats of the real zlib pass the file checks and are published verbatim...
    assert mirror.published("basic") == {"zlib-1.2.11-h7b6447c_3.conda", "zlib-1.2.11-h7b6447c_3.tar.bz2"}
    upstream = json.loads((corpus / "channels" / "conda-format-repo" / "linux-64" / "repodata.json").read_text())
    published = mirror.repodata("basic", "linux-64")
    assert published["packages"]["zlib-1.2.11-h7b6447c_3.tar.bz2"] == upstream["packages"]["zlib-1.2.11-h7b6447c_3.tar.bz2"]

    # ...but with every check, zlib cannot install without libgcc-ng and stays out.
    assert mirror.published("main") == set()
    main = [m for m in mirror.memberships() if m.channel == "main" and m.artifact.name == "zlib"]
    assert {m.state for m in main} == {MembershipState.FAILED}
    assert all("libgcc-ng" in m.reason for m in main)


def test_mismatched_arch_package_rejected(corpus, tmp_path):
    with FakeUpstream(corpus / "edge" / "mismatched-arch-channel") as server:
        mirror = corpus_mirror(
            tmp_path / "mirror", server.url, "[linux-64, noarch]",
            "- upstream: up\n  channel: main\n  packages: [test-package]\n",
        )
        mirror.cli("run")
    assert mirror.published() == set()
    (membership,) = mirror.memberships()
    assert membership.state == MembershipState.FAILED
    assert "subdir" in membership.reason


def test_selection_on_anaconda_r(corpus):
    path = corpus / "repodata" / "anaconda-r" / "linux-64" / "repodata.json"
    index = SubdirIndex("anaconda-r", "linux-64", path)
    entry = WhitelistEntry(upstream="r", channel="main", packages=["r-ggplot2 2.2.1", "r-base 3.4.*"], dependencies=True)
    selection = select_entry(entry, ["linux-64"], {"linux-64": index})
    chosen = {c.name for c in selection.chosen.values()}
    assert {"r-ggplot2", "r-base", "r-scales", "r-tibble", "r-plyr"} <= chosen

    # The r-base pin survives the closure: builds needing r-base 3.5 are reported, not widened.
    versions = {c.version for c in selection.chosen.values() if c.name == "r-base"}
    assert versions == {"3.4.1", "3.4.2", "3.4.3"}
    pinned_out = [u for u in selection.unresolved if u.dependency.startswith("r-base >=3.5")]
    assert pinned_out and all("pinned-out" in u.reason for u in pinned_out)

    # pkgs/r alone lacks system libraries that pkgs/main provides: reported by name.
    assert any(u.dependency == "bzip2" for u in selection.unresolved)
    assert all(c.filename not in index.removed for c in selection.chosen.values())
    raw = index.raw_records([c.filename for c in selection.chosen.values()])
    assert set(raw) == {c.filename for c in selection.chosen.values()}


def test_selection_on_anaconda_main_noarch(corpus):
    path = corpus / "repodata" / "anaconda-main" / "noarch" / "repodata.json"
    index = SubdirIndex("main", "noarch", path)
    entry = WhitelistEntry(upstream="main", channel="main", packages=["*[license=MIT]"], exclude=["attrs <19"])
    selection = select_entry(entry, ["noarch"], {"noarch": index})
    raw = index.raw_records([c.filename for c in selection.chosen.values()])
    assert raw
    assert all(record.get("license") == "MIT" for record in raw.values())
    assert not any(c.name == "attrs" and c.version.startswith("18") for c in selection.chosen.values())
