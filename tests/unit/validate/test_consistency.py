"""Tests of mirror.validate.consistency on small real channels, solved with py-rattler."""

from __future__ import annotations

from pathlib import Path

import pytest
import rattler

from mirror.demo.channel import build_demo_upstream, demo_specs, index_channel
from mirror.demo.packages import PackageSpec, build_package
from mirror.demo.upstream_server import StaticChannelServer
from mirror.validate.consistency import Problem, default_virtual_packages
from mirror.validate.consistency import check_channel_consistency as check_consistency

pytestmark = pytest.mark.real_component


def channel_of(root: Path, specs: list[PackageSpec], formats=("conda",)) -> Path:
    for spec in specs:
        for fmt in formats:
            build_package(spec, root / spec.subdir, fmt)
    index_channel(root)
    return root


def check_channel_consistency(channel, subdirs, **options):
    """Run the check with its repodata cache in the test's own folder."""
    if "cache_dir" not in options:
        options["cache_dir"] = Path(channel).parent / "repodata-cache"
    return check_consistency(channel, subdirs, **options)


def without(name: str, version: str | None = None) -> list[PackageSpec]:
    return [
        spec for spec in demo_specs() if not (spec.name == name and (version is None or spec.version == version))
    ]


def test_consistency_complete_channel(tmp_path):
    build_demo_upstream(tmp_path / "channel")

    report = check_channel_consistency(tmp_path / "channel", ["linux-64"])

    assert report.problems == []
    assert report.consistent
    assert report.records == 14
    assert report.unsolved == []
    assert report.solves >= 1


def test_consistency_missing_dependency(tmp_path):
    root = channel_of(tmp_path / "channel", without("demo-data"))

    report = check_channel_consistency(root, ["linux-64"])

    assert report.problems == [
        Problem(
            subdir="linux-64",
            filename="demo-tool-1.0-h0_0.conda",
            dependency="demo-data >=1.1",
            reason="no package named demo-data in linux-64 or noarch",
        )
    ]
    assert not report.consistent


def test_consistency_version_missing(tmp_path):
    root = channel_of(tmp_path / "channel", without("libdemo", "2.0"))

    report = check_channel_consistency(root, ["linux-64"])

    problem = report.problems[0]
    assert problem.subdir == "linux-64"
    assert problem.filename == "demo-tool-1.0-h0_0.conda"
    assert problem.dependency == "libdemo >=2,<3"
    assert problem.reason == "no libdemo record in linux-64 or noarch matches 'libdemo >=2,<3'; found 1.0"


def test_consistency_both_formats_reported(tmp_path):
    root = channel_of(tmp_path / "channel", without("demo-data"), formats=("conda", "tar.bz2"))

    report = check_channel_consistency(root, ["linux-64"])

    tool_problems = sorted(problem.filename for problem in report.problems if problem.subdir == "linux-64")
    assert tool_problems == ["demo-tool-1.0-h0_0.conda", "demo-tool-1.0-h0_0.tar.bz2"]


def test_consistency_noarch_on_platform(tmp_path):
    root = channel_of(tmp_path / "channel", without("demo-data", "1.0"))

    report = check_channel_consistency(root, ["linux-64"])

    # demo-extras is noarch and needs the linux-64 demo-tool, which the static pass finds.
    assert report.problems == []


def test_consistency_conflict_found_by_solver(tmp_path):
    conflict = PackageSpec("conflicted", "1.0", subdir="linux-64", depends=["demo-tool 0.9.*", "libdemo 2.*"])
    root = channel_of(tmp_path / "channel", [*demo_specs(), conflict])

    report = check_channel_consistency(root, ["linux-64"])

    assert len(report.problems) == 1
    problem = report.problems[0]
    assert problem.filename == "conflicted-1.0-0.conda"
    assert problem.dependency is None
    assert "demo-tool >=1.0" in problem.reason
    assert problem.reason.startswith("Cannot solve the request")


def test_consistency_virtual_packages_assumed(tmp_path):
    native = PackageSpec("native", "1.0", subdir="linux-64", depends=["__glibc >=2.17", "__unix"])
    root = channel_of(tmp_path / "channel", [native])

    assert check_channel_consistency(root, ["linux-64"]).problems == []

    old_glibc = [
        rattler.GenericVirtualPackage(rattler.PackageName("__glibc"), rattler.Version("2.12"), rattler.BuildString("0"))
    ]
    report = check_channel_consistency(root, ["linux-64"], virtual_packages=old_glibc)
    assert [problem.dependency for problem in report.problems] == ["__glibc >=2.17", "__unix"]


def test_consistency_solve_cap(tmp_path):
    build_demo_upstream(tmp_path / "channel")

    report = check_channel_consistency(tmp_path / "channel", ["linux-64"], max_solves=0)

    assert report.solves == 0
    assert report.problems == []
    assert len(report.unsolved) == 14
    assert "linux-64/demo-tool-1.0-h0_0.conda" in report.unsolved


def test_consistency_over_http(tmp_path):
    root = channel_of(tmp_path / "channel", without("demo-data"))

    with StaticChannelServer(root) as server:
        url = server.url
        report = check_channel_consistency(url, ["linux-64"], cache_dir=tmp_path / "cache")

    assert report.channel == url
    assert ("demo-tool-1.0-h0_0.conda", "demo-data >=1.1") in {
        (problem.filename, problem.dependency) for problem in report.problems
    }


def test_default_virtual_packages_linux():
    packages = {str(package) for package in default_virtual_packages("linux-64")}

    assert "__unix=0=0" in packages
    assert "__glibc=2.39=0" in packages
    assert "__archspec=1=x86_64" in packages
    assert not any(package.startswith("__osx") for package in packages)
