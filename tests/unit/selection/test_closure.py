"""Selection tables: ranges, pre-releases, build strings, closure, exclude and both formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mirror.config.schema import WhitelistEntry
from mirror.selection import SubdirIndex, select_entry


def record(name, version, build="0", build_number=0, depends=(), subdir="linux-64", **extra):
    return {
        "name": name, "version": version, "build": build, "build_number": build_number,
        "depends": list(depends), "subdir": subdir, "size": 10, "sha256": "0" * 64, **extra,
    }


def write_repodata(folder: Path, subdir: str, packages: dict, conda: dict | None = None, removed=()):
    target = folder / subdir / "repodata.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({
        "info": {"subdir": subdir}, "packages": packages, "packages.conda": conda or {},
        "removed": list(removed), "repodata_version": 1,
    }))
    return target


def fn(rec, ext=".tar.bz2"):
    return f"{rec['name']}-{rec['version']}-{rec['build']}{ext}"


def index_of(folder, subdir):
    return SubdirIndex("up", subdir, folder / subdir / "repodata.json")


def select(tmp_path, records, packages, *, dependencies=False, exclude=(), noarch=(), conda=(), removed=()):
    write_repodata(
        tmp_path, "linux-64", {fn(r): r for r in records},
        {fn(r, ".conda"): r for r in conda}, removed,
    )
    write_repodata(tmp_path, "noarch", {fn(r): r for r in noarch})
    indexes = {s: index_of(tmp_path, s) for s in ("linux-64", "noarch")}
    entry = WhitelistEntry(
        upstream="up", channel="main", packages=list(packages),
        dependencies=dependencies, exclude=list(exclude),
    )
    return select_entry(entry, ["linux-64", "noarch"], indexes)


NUMPYS = [record("numpy", v, "py311_0") for v in ("1.26.4", "2.0.2", "2.1.3", "2.2.0")]

TABLE = [
    ("range", ["numpy >=1.26,<2"], ["numpy-1.26.4-py311_0.tar.bz2"]),
    ("lower bound only", ["numpy >2.1.0"], ["numpy-2.1.3-py311_0.tar.bz2", "numpy-2.2.0-py311_0.tar.bz2"]),
    ("wildcard", ["numpy 2.*"], ["numpy-2.0.2-py311_0.tar.bz2", "numpy-2.1.3-py311_0.tar.bz2", "numpy-2.2.0-py311_0.tar.bz2"]),
    ("exact", ["numpy ==2.0.2"], ["numpy-2.0.2-py311_0.tar.bz2"]),
    ("equals-equals form", ["numpy=2.1.3=py311*"], ["numpy-2.1.3-py311_0.tar.bz2"]),
    ("bracket version", ['numpy[version=">=2.1,<2.2"]'], ["numpy-2.1.3-py311_0.tar.bz2"]),
    ("build glob misses", ["numpy * py312*"], []),
]


@pytest.mark.parametrize("specs, expected", [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_version_specs(tmp_path, specs, expected):
    selection = select(tmp_path, NUMPYS, specs)
    assert sorted(f for _, f in selection.chosen) == expected


def test_build_number_and_build_string(tmp_path):
    builds = [
        record("python", "3.11.9", "h1_0_cpython", 0),
        record("python", "3.11.9", "h1_2_cpython", 2),
        record("python", "3.11.9", "h1_3_pypy", 3),
    ]
    selection = select(tmp_path, builds, ['python[version=">=3.11", build_number=">=2"]', "python * *_cpython"])
    assert sorted(f for _, f in selection.chosen) == [
        "python-3.11.9-h1_0_cpython.tar.bz2",
        "python-3.11.9-h1_2_cpython.tar.bz2",
        "python-3.11.9-h1_3_pypy.tar.bz2",
    ]
    only_bn = select(tmp_path, builds, ["python[build_number=2]"])
    assert [f for _, f in only_bn.chosen] == ["python-3.11.9-h1_2_cpython.tar.bz2"]


def test_prerelease_ordering_and_warning(tmp_path):
    khmers = [record("khmer", v) for v in ("2.1.1", "3.0.0a1", "3.0.0")]
    selection = select(tmp_path, khmers, ["khmer >=2.1,<3"])
    assert sorted(f for _, f in selection.chosen) == ["khmer-2.1.1-0.tar.bz2", "khmer-3.0.0a1-0.tar.bz2"]
    assert any("<3a0" in warning for warning in selection.warnings)
    strict = select(tmp_path, khmers, ["khmer >=2.1,<3.0a0"])
    assert [f for _, f in strict.chosen] == ["khmer-2.1.1-0.tar.bz2"]


def test_closure_keeps_explicit_constraint(tmp_path):
    scipy = record("scipy", "1.14", depends=["numpy >=1.23"])
    selection = select(tmp_path, NUMPYS + [scipy], ["numpy >2.1.0", "scipy"], dependencies=True)
    assert sorted(f for _, f in selection.chosen) == [
        "numpy-2.1.3-py311_0.tar.bz2", "numpy-2.2.0-py311_0.tar.bz2", "scipy-1.14-0.tar.bz2",
    ]


def test_closure_adds_dependencies_transitively(tmp_path):
    app = record("app", "1.0", depends=["lib >=2", "__glibc >=2.17"])
    libs = [record("lib", "1.0"), record("lib", "2.0", depends=["data"])]
    data = record("data", "1.0", subdir="noarch", noarch="generic")
    selection = select(tmp_path, [app, *libs], ["app"], dependencies=True, noarch=[data])
    assert set(selection.chosen) == {
        ("linux-64", "app-1.0-0.tar.bz2"), ("linux-64", "lib-2.0-0.tar.bz2"), ("noarch", "data-1.0-0.tar.bz2"),
    }
    assert selection.unresolved == []


def test_closure_off_takes_only_named(tmp_path):
    app = record("app", "1.0", depends=["lib"])
    selection = select(tmp_path, [app, record("lib", "1.0")], ["app"])
    assert list(selection.chosen) == [("linux-64", "app-1.0-0.tar.bz2")]


def test_exclude_wins_over_closure(tmp_path):
    app = record("app", "1.0", depends=["openssl"])
    openssls = [record("openssl", "1.1.1w"), record("openssl", "3.0.0")]
    selection = select(tmp_path, [app, *openssls], ["app", "openssl"], dependencies=True, exclude=["openssl <3"])
    assert sorted(f for _, f in selection.chosen) == ["app-1.0-0.tar.bz2", "openssl-3.0.0-0.tar.bz2"]


def test_unsatisfied_dependency_reported(tmp_path):
    app = record("app", "1.0", depends=["openssl <3"])
    selection = select(tmp_path, [app, record("openssl", "1.1.1w")], ["app"], dependencies=True, exclude=["openssl <3"])
    assert [u.dependency for u in selection.unresolved] == ["openssl <3"]
    assert "excluded" in selection.unresolved[0].reason


def test_unparsable_dependency_not_match_all(tmp_path):
    bad = record("b", "1.0", depends=["python =>3.8"])
    selection = select(tmp_path, [bad, record("python", "3.8.0")], ["b"], dependencies=True)
    assert list(selection.chosen) == [("linux-64", "b-1.0-0.tar.bz2")]
    assert selection.unresolved[0].reason.startswith("unparsable dependency")


def test_both_formats_selected(tmp_path):
    twin = record("attrs", "19.3.0", "py_0")
    selection = select(tmp_path, [twin], ["attrs"], conda=[twin])
    assert sorted(f for _, f in selection.chosen) == ["attrs-19.3.0-py_0.conda", "attrs-19.3.0-py_0.tar.bz2"]


def test_removed_never_selected(tmp_path):
    versions = [record("arpack", "3.6.1"), record("arpack", "3.6.2")]
    selection = select(tmp_path, versions, ["arpack"], removed=["arpack-3.6.1-0.tar.bz2"])
    assert list(selection.chosen) == [("linux-64", "arpack-3.6.2-0.tar.bz2")]


def test_glob_name_with_license_filter(tmp_path):
    recs = [record("jupyter-core", "5.0", license="MIT"), record("jupyter-gpl", "1.0", license="GPL-3.0")]
    selection = select(tmp_path, recs, ['jupyter*[license="MIT"]'])
    assert list(selection.chosen) == [("linux-64", "jupyter-core-5.0-0.tar.bz2")]


def test_noarch_dependencies_found_in_arch_subdir(tmp_path):
    tool = record("tool", "1.0", subdir="noarch", depends=["native"], noarch="generic")
    selection = select(tmp_path, [record("native", "1.0")], ["tool"], dependencies=True, noarch=[tool])
    assert set(selection.chosen) == {("noarch", "tool-1.0-0.tar.bz2"), ("linux-64", "native-1.0-0.tar.bz2")}


def test_malformed_record_skipped(tmp_path):
    target = write_repodata(tmp_path, "linux-64", {
        "a-1.0-0.tar.bz2": None,
        "b-1.0-0.tar.bz2": record("b", "1.0", depends=["python =>3.8", "c >2.10*"]),
        "c-2.11-0.tar.bz2": record("c", "2.11"),
    })
    write_repodata(tmp_path, "noarch", {})
    indexes = {s: index_of(tmp_path, s) for s in ("linux-64", "noarch")}
    entry = WhitelistEntry(upstream="up", channel="main", packages=["a", "b", "c"], dependencies=True)
    selection = select_entry(entry, ["linux-64", "noarch"], indexes)
    assert target.exists()
    assert sorted(f for _, f in selection.chosen) == ["b-1.0-0.tar.bz2", "c-2.11-0.tar.bz2"]
    assert [p.filename for p in indexes["linux-64"].problems] == ["a-1.0-0.tar.bz2"]
    assert selection.unmatched_specs == ["a"]
    assert [u.dependency for u in selection.unresolved] == ["python =>3.8"]
