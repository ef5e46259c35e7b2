"""Tests of mirror.demo.channel: repodata as an upstream indexer writes it, and the demo channel."""

from __future__ import annotations

import bz2
import hashlib
import json
from pathlib import Path

import pytest
import zstandard

from mirror.demo.channel import build_demo_upstream, demo_specs, index_channel, record_for
from mirror.demo.packages import PackageSpec, build_package


def lib_spec(version: str = "1.0") -> PackageSpec:
    return PackageSpec(
        name="libfoo",
        version=version,
        subdir="linux-64",
        depends=["data-pkg >=1"],
        files={"lib/libfoo.sh": b"foo() { :; }\n"},
    )


def data_spec() -> PackageSpec:
    return PackageSpec(name="data-pkg", version="1.0", files={"share/data.txt": b"data\n"})


def read_repodata(subdir_dir: Path) -> dict:
    return json.loads((subdir_dir / "repodata.json").read_bytes())


def test_record_for_fields(tmp_path):
    path = build_package(lib_spec(), tmp_path, "conda")
    data = path.read_bytes()

    record = record_for(path)

    assert record["name"] == "libfoo"
    assert record["version"] == "1.0"
    assert record["build"] == "0"
    assert record["subdir"] == "linux-64"
    assert record["depends"] == ["data-pkg >=1"]
    assert record["size"] == len(data)
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["md5"] == hashlib.md5(data).hexdigest()
    assert "arch" not in record
    assert "platform" not in record


def test_record_for_corrupt_package(tmp_path):
    path = tmp_path / "broken-1.0-0.tar.bz2"
    path.write_bytes(b"not bzip2 at all")

    with pytest.raises(ValueError, match="broken-1.0-0.tar.bz2"):
        record_for(path)


def test_index_both_keys(tmp_path):
    for fmt in ("conda", "tar.bz2"):
        build_package(lib_spec(), tmp_path / "linux-64", fmt)

    index_channel(tmp_path)
    repodata = read_repodata(tmp_path / "linux-64")

    assert repodata["info"] == {"subdir": "linux-64"}
    assert repodata["repodata_version"] == 1
    assert repodata["removed"] == []
    assert list(repodata["packages"]) == ["libfoo-1.0-0.tar.bz2"]
    assert list(repodata["packages.conda"]) == ["libfoo-1.0-0.conda"]


def test_index_records_match_files(tmp_path):
    for spec in (lib_spec("1.0"), lib_spec("2.0"), data_spec()):
        for fmt in ("conda", "tar.bz2"):
            build_package(spec, tmp_path / spec.subdir, fmt)

    index_channel(tmp_path)

    for subdir in ("linux-64", "noarch"):
        repodata = read_repodata(tmp_path / subdir)
        records = repodata["packages"] | repodata["packages.conda"]
        files = sorted(p.name for p in (tmp_path / subdir).iterdir() if "repodata" not in p.name)
        assert sorted(records) == files
        for filename, record in records.items():
            data = (tmp_path / subdir / filename).read_bytes()
            assert record["size"] == len(data)
            assert record["sha256"] == hashlib.sha256(data).hexdigest()
            assert record["md5"] == hashlib.md5(data).hexdigest()
            assert record["subdir"] == subdir


def test_index_creates_empty_noarch(tmp_path):
    build_package(lib_spec(), tmp_path / "linux-64", "conda")

    index_channel(tmp_path)
    repodata = read_repodata(tmp_path / "noarch")

    assert repodata["info"] == {"subdir": "noarch"}
    assert repodata["packages"] == {}
    assert repodata["packages.conda"] == {}


def test_index_compressed_forms_equal(tmp_path):
    build_package(lib_spec(), tmp_path / "linux-64", "tar.bz2")

    index_channel(tmp_path)

    for subdir in ("linux-64", "noarch"):
        plain = (tmp_path / subdir / "repodata.json").read_bytes()
        zst = (tmp_path / subdir / "repodata.json.zst").read_bytes()
        bz = (tmp_path / subdir / "repodata.json.bz2").read_bytes()
        assert zstandard.ZstdDecompressor().decompressobj().decompress(zst) == plain
        assert bz2.decompress(bz) == plain
        assert json.loads(plain)["info"]["subdir"] == subdir


def test_index_explicit_subdirs(tmp_path):
    build_package(lib_spec(), tmp_path / "linux-64", "conda")

    index_channel(tmp_path, subdirs=["win-64"])

    assert read_repodata(tmp_path / "win-64")["packages.conda"] == {}
    assert (tmp_path / "noarch" / "repodata.json").is_file()
    assert not (tmp_path / "linux-64" / "repodata.json").exists()


def test_index_skips_non_subdir_folders(tmp_path):
    build_package(lib_spec(), tmp_path / "not a subdir", "conda")

    index_channel(tmp_path)

    assert not (tmp_path / "not a subdir" / "repodata.json").exists()
    assert (tmp_path / "noarch" / "repodata.json").is_file()


def test_index_rejects_invalid_subdir(tmp_path):
    with pytest.raises(ValueError, match="'../up' is not a conda subdir"):
        index_channel(tmp_path, subdirs=["../up"])


def test_index_corrupt_package_raises(tmp_path):
    (tmp_path / "noarch").mkdir()
    (tmp_path / "noarch" / "empty-1.0-0.conda").write_bytes(b"")

    with pytest.raises(ValueError, match="empty-1.0-0.conda"):
        index_channel(tmp_path)


def test_index_rerun_same_bytes(tmp_path):
    build_package(data_spec(), tmp_path / "noarch", "conda")
    index_channel(tmp_path)
    before = (tmp_path / "noarch" / "repodata.json.zst").read_bytes()

    index_channel(tmp_path)

    assert (tmp_path / "noarch" / "repodata.json.zst").read_bytes() == before


def test_demo_upstream_contents(tmp_path):
    paths = build_demo_upstream(tmp_path)

    assert len(paths) == 2 * len(demo_specs())
    assert all(path.is_file() for path in paths)
    linux = read_repodata(tmp_path / "linux-64")
    noarch = read_repodata(tmp_path / "noarch")
    assert sorted(linux["packages.conda"]) == [
        "demo-tool-0.9-h0_0.conda",
        "demo-tool-1.0-h0_0.conda",
        "libdemo-1.0-h0_0.conda",
        "libdemo-2.0-h0_0.conda",
    ]
    assert sorted(noarch["packages"]) == [
        "demo-data-1.0-0.tar.bz2",
        "demo-data-1.1-0.tar.bz2",
        "demo-extras-0.3-0.tar.bz2",
    ]
    tool = linux["packages.conda"]["demo-tool-1.0-h0_0.conda"]
    assert tool["depends"] == ["demo-data >=1.1", "libdemo >=2,<3"]
    assert noarch["packages.conda"]["demo-data-1.1-0.conda"]["noarch"] == "generic"


def test_demo_upstream_no_python(tmp_path):
    build_demo_upstream(tmp_path)

    for subdir in ("linux-64", "noarch"):
        repodata = read_repodata(tmp_path / subdir)
        for record in (repodata["packages"] | repodata["packages.conda"]).values():
            assert not any(dep.split()[0] == "python" for dep in record["depends"])
