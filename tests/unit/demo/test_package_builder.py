"""Tests of mirror.demo.packages: real, deterministic conda packages in both formats."""

from __future__ import annotations

import hashlib
import json
import tarfile
import zipfile
from pathlib import Path

import pytest
import rattler
from conda_package_streaming.package_streaming import stream_conda_component

from mirror.demo.packages import (
    DEFAULT_TIMESTAMP_MS,
    OMIT,
    PackageSpec,
    TarMember,
    build_members,
    build_package,
    write_package,
)

FORMATS = ["conda", "tar.bz2"]

TOOL_SCRIPT = b"#!/bin/sh\necho hello\n"
README = b"read me\n"


def tool_spec(**changes) -> PackageSpec:
    fields = dict(
        name="tool",
        version="1.2.3",
        build="h1_2",
        build_number=2,
        subdir="linux-64",
        depends=["libfoo >=1.0", "data-pkg"],
        constrains=["other <2"],
        license="BSD-3-Clause",
        files={"bin/tool": TOOL_SCRIPT, "share/tool/README": README},
        executables={"bin/tool"},
    )
    fields.update(changes)
    return PackageSpec(**fields)


def read_component(path: Path, component: str) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    """Return {member name: (header, content)} of one component, read as conda clients read it."""
    members = {}
    for tar, member in stream_conda_component(path, component=component):
        content = tar.extractfile(member).read() if member.isfile() else b""
        members[member.name] = (member, content)
    return members


def read_all(path: Path) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    if path.name.endswith(".tar.bz2"):
        return read_component(path, "info")
    return read_component(path, "info") | read_component(path, "pkg")


def info_json(path: Path, name: str) -> dict:
    return json.loads(read_all(path)[f"info/{name}"][1])


@pytest.mark.parametrize("fmt", FORMATS)
def test_build_package_filename(tmp_path, fmt):
    path = build_package(tool_spec(), tmp_path, fmt)

    assert path == tmp_path / f"tool-1.2.3-h1_2.{fmt}"
    assert path.is_file()


@pytest.mark.parametrize("fmt", FORMATS)
def test_index_json_fields(tmp_path, fmt):
    index = info_json(build_package(tool_spec(), tmp_path, fmt), "index.json")

    assert index == {
        "arch": "x86_64",
        "build": "h1_2",
        "build_number": 2,
        "constrains": ["other <2"],
        "depends": ["libfoo >=1.0", "data-pkg"],
        "license": "BSD-3-Clause",
        "name": "tool",
        "platform": "linux",
        "subdir": "linux-64",
        "timestamp": DEFAULT_TIMESTAMP_MS,
        "version": "1.2.3",
    }


@pytest.mark.parametrize("fmt", FORMATS)
def test_noarch_defaults_generic(tmp_path, fmt):
    spec = PackageSpec(name="data-pkg", version="1", files={"share/x": b"x"}, license=None)
    path = build_package(spec, tmp_path, fmt)
    index = info_json(path, "index.json")

    assert spec.noarch == "generic"
    assert index["noarch"] == "generic"
    assert index["subdir"] == "noarch"
    assert index["arch"] is None
    assert index["platform"] is None
    assert "license" not in index
    assert "constrains" not in index
    assert info_json(path, "link.json") == {
        "noarch": {"type": "generic"},
        "package_metadata_version": 1,
    }


@pytest.mark.parametrize(
    ("subdir", "arch", "platform"),
    [
        ("linux-64", "x86_64", "linux"),
        ("win-32", "x86", "win"),
        ("osx-arm64", "arm64", "osx"),
        ("linux-aarch64", "aarch64", "linux"),
    ],
)
def test_arch_platform_from_subdir(tmp_path, subdir, arch, platform):
    index = info_json(build_package(tool_spec(subdir=subdir), tmp_path, "conda"), "index.json")

    assert index["arch"] == arch
    assert index["platform"] == platform
    assert "noarch" not in index


@pytest.mark.parametrize("fmt", FORMATS)
def test_paths_json_matches_payload(tmp_path, fmt):
    path = build_package(tool_spec(), tmp_path, fmt)
    members = read_all(path)
    paths = json.loads(members["info/paths.json"][1])

    assert paths["paths_version"] == 1
    assert [entry["_path"] for entry in paths["paths"]] == ["bin/tool", "share/tool/README"]
    for entry in paths["paths"]:
        content = members[entry["_path"]][1]
        assert entry["path_type"] == "hardlink"
        assert entry["size_in_bytes"] == len(content)
        assert entry["sha256"] == hashlib.sha256(content).hexdigest()
    assert members["info/files"][1] == b"bin/tool\nshare/tool/README\n"


@pytest.mark.parametrize("fmt", FORMATS)
def test_payload_content_and_headers(tmp_path, fmt):
    members = read_all(build_package(tool_spec(), tmp_path, fmt))

    tool_header, tool_content = members["bin/tool"]
    readme_header, readme_content = members["share/tool/README"]
    assert tool_content == TOOL_SCRIPT
    assert readme_content == README
    assert tool_header.mode == 0o755
    assert readme_header.mode == 0o644
    for header, _ in members.values():
        assert header.isfile()
        assert (header.uid, header.gid, header.uname, header.gname) == (0, 0, "", "")
        assert header.mtime == DEFAULT_TIMESTAMP_MS // 1000


def test_conda_component_split(tmp_path):
    path = build_package(tool_spec(test_commands=["tool --help"]), tmp_path, "conda")

    assert set(read_component(path, "info")) == {
        "info/about.json",
        "info/files",
        "info/index.json",
        "info/paths.json",
        "info/test/run_test.sh",
    }
    assert set(read_component(path, "pkg")) == {"bin/tool", "share/tool/README"}


def test_conda_zip_layout(tmp_path):
    path = build_package(tool_spec(), tmp_path, "conda")

    with zipfile.ZipFile(path) as archive:
        entries = archive.infolist()
        metadata = json.loads(archive.read("metadata.json"))
    assert [entry.filename for entry in entries] == [
        "metadata.json",
        "pkg-tool-1.2.3-h1_2.tar.zst",
        "info-tool-1.2.3-h1_2.tar.zst",
    ]
    assert all(entry.compress_type == zipfile.ZIP_STORED for entry in entries)
    assert metadata == {"conda_pkg_format_version": 2}


def test_tar_bz2_info_first(tmp_path):
    path = build_package(tool_spec(), tmp_path, "tar.bz2")

    with tarfile.open(path, "r:bz2") as tar:
        names = tar.getnames()
    assert names == [
        "info/about.json",
        "info/files",
        "info/index.json",
        "info/paths.json",
        "bin/tool",
        "share/tool/README",
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_build_deterministic(tmp_path, fmt):
    first = build_package(tool_spec(), tmp_path / "a", fmt)
    second = build_package(tool_spec(), tmp_path / "b", fmt)
    changed = build_package(tool_spec(timestamp=DEFAULT_TIMESTAMP_MS + 1000), tmp_path / "c", fmt)

    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != changed.read_bytes()


def test_test_commands_script(tmp_path):
    spec = tool_spec(test_commands=["tool", "test -f $PREFIX/bin/tool"])
    path = build_package(spec, tmp_path, "tar.bz2")
    script = read_all(path)["info/test/run_test.sh"][1].decode()

    assert script.startswith("#!/bin/bash\n")
    assert "\ntool\n" in script
    assert "\ntest -f $PREFIX/bin/tool\n" in script


def test_index_overrides_merge_last(tmp_path):
    spec = tool_spec(index_overrides={"subdir": "osx-64", "license": OMIT, "extra_key": [1]})
    index = info_json(build_package(spec, tmp_path, "conda"), "index.json")

    assert index["subdir"] == "osx-64"
    assert "license" not in index
    assert index["extra_key"] == [1]
    assert index["platform"] == "linux"


def test_extra_member_written(tmp_path):
    spec = tool_spec()
    info, payload = build_members(spec)
    payload.append(TarMember("etc/extra.conf", b"x=1\n", mode=0o600))
    path = write_package(spec.stem, info, payload, tmp_path, "conda")

    header, content = read_component(path, "pkg")["etc/extra.conf"]
    assert content == b"x=1\n"
    assert header.mode == 0o600


@pytest.mark.parametrize("fmt", FORMATS)
async def test_rattler_reads_archive(tmp_path, fmt):
    record = await rattler.RepoDataRecord.from_package_archive(
        build_package(tool_spec(), tmp_path, fmt)
    )

    assert record.name.normalized == "tool"
    assert str(record.version) == "1.2.3"
    assert str(record.build) == "h1_2"
    assert record.depends == ["libfoo >=1.0", "data-pkg"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"version": "1.0-1"}, "invalid package version"),
        ({"name": "../escape"}, "invalid package name"),
        ({"build": "a-b"}, "invalid package build"),
        ({"subdir": "Linux 64"}, "invalid package subdir"),
        ({"build_number": -1}, "build_number"),
        ({"noarch": "generic"}, "needs subdir 'noarch'"),
        ({"subdir": "noarch", "noarch": "perl"}, "must be one of"),
        ({"files": {"../evil": b""}}, "invalid payload path"),
        ({"files": {"/abs": b""}}, "invalid payload path"),
        ({"files": {"info/index.json": b""}}, "invalid payload path"),
        ({"files": {"a//b": b""}}, "invalid payload path"),
        ({"executables": {"bin/missing"}}, "not in files"),
    ],
    ids=["version-dash", "name-slash", "build-dash", "subdir", "build-number", "noarch-subdir",
         "noarch-kind", "dotdot", "absolute", "info-prefix", "empty-segment", "executable"],
)
def test_spec_rejects_invalid(changes, message):
    with pytest.raises(ValueError, match=message):
        tool_spec(**changes)


def test_build_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="unknown package format 'zip'"):
        build_package(tool_spec(), tmp_path, "zip")
