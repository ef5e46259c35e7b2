"""File listings from real package files and the comparison of two package versions."""

from __future__ import annotations

from mirror.dashboard.diff import FileListing, compare, list_files, scripts_of
from mirror.demo.packages import PackageSpec, build_package


def test_list_files_headers(tmp_path):
    spec = PackageSpec("tool", "1.0", files={"bin/tool": b"#!/bin/sh\n", "share/a.txt": b"abc"},
                       executables={"bin/tool"})
    path = build_package(spec, tmp_path, "conda")
    listing = list_files(path, path.name)
    entries = {entry["path"]: entry for entry in listing.entries}
    assert listing.error is None
    assert entries["bin/tool"]["mode"] == "0755"
    assert entries["share/a.txt"]["size"] == 3
    assert entries["share/a.txt"]["component"] == "pkg"
    assert entries["info/index.json"]["component"] == "info"


def test_list_files_capped(tmp_path):
    spec = PackageSpec("many", "1.0", files={f"share/f{i}.txt": b"x" for i in range(30)})
    path = build_package(spec, tmp_path, "tar.bz2")
    listing = list_files(path, path.name, limit=10)
    assert len(listing.entries) == 10
    assert listing.truncated


def test_list_files_missing_blob(tmp_path):
    listing = list_files(tmp_path / "absent", "x-1.0-0.conda")
    assert listing.entries == []
    assert "not in the blob store" in listing.error


def test_list_files_corrupt(tmp_path):
    path = tmp_path / "bad-1.0-0.conda"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    listing = list_files(path, path.name)
    assert listing.error.startswith("the archive could not be read")


def facts(version: str, depends: list[str], licence: str, files: list[dict], scripts: list[dict]) -> dict:
    return {"filename": f"tool-{version}-0.conda", "version": version, "depends": depends, "constrains": [],
            "licence": licence, "size": 100 if version == "1.0" else 150, "files": FileListing(files),
            "scripts": scripts}


def entry(path: str, size: int, mode: str = "0644") -> dict:
    return {"path": path, "component": "pkg", "kind": "file", "size": size, "mode": mode, "link": None}


def test_compare_sections():
    old = facts("1.0", ["a >=1", "b"], "MIT", [entry("bin/t", 5, "0755"), entry("gone", 1)],
                [{"member": "bin/.tool-post-link.sh", "sha256": "1", "text": "echo a\n"}])
    new = facts("1.1", ["a >=2", "b"], "BSD-3-Clause", [entry("bin/t", 9, "0755"), entry("new", 2)],
                [{"member": "bin/.tool-post-link.sh", "sha256": "2", "text": "echo a\ncurl x\n"},
                 {"member": "etc/conda/activate.d/x.sh", "sha256": "3", "text": "export X=1\n"}])
    change = compare(old, new)
    assert change["depends"] == {"added": ["a >=2"], "removed": ["a >=1"]}
    assert change["licence"] == {"from": "MIT", "to": "BSD-3-Clause"}
    assert change["size"]["change"] == 50
    assert [f["path"] for f in change["files"]["added"]] == ["new"]
    assert [f["path"] for f in change["files"]["removed"]] == ["gone"]
    assert change["files"]["changed"] == [{"path": "bin/t", "fields": ["size"], "from": {"size": 5}, "to": {"size": 9}}]
    statuses = {s["member"]: s["status"] for s in change["scripts"]}
    assert statuses == {"bin/.tool-post-link.sh": "changed", "etc/conda/activate.d/x.sh": "added"}
    assert "+curl x" in change["scripts"][0]["diff"]


def test_compare_unchanged():
    same = facts("1.0", ["a"], "MIT", [entry("x", 1)], [])
    change = compare(same, same)
    assert change["licence"] is None
    assert change["size"] is None
    assert change["scripts"] == []
    assert change["files"] == {"added": [], "removed": [], "changed": [], "incomplete": False}


def test_scripts_of_results():
    results = [{"check": "paths", "evidence": {}},
               {"check": "scripts", "evidence": {"scripts": [{"member": "a"}, "junk"]}}]
    assert scripts_of(results) == [{"member": "a"}]
    assert scripts_of([]) == []
