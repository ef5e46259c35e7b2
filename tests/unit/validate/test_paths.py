from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from mirror.catalog.models import CheckOutcome
from mirror.validate.checks.paths import PathsCheck
from mirror.validate.package_reader import ArchiveLimits
from mirror.validate.result import CheckContext
from tests.support.corpus import CORPUS_DIR

from .builders import (
    HOSTILE_FORMATS,
    TarMember,
    demo_package,
    isolate_working_folder,
)

LIBRARY = b"\x7fELF demo library"


@pytest.fixture(autouse=True)
def no_stray_files(tmp_path, monkeypatch):
    yield from isolate_working_folder(tmp_path, monkeypatch)


def findings_of(result):
    return {(item["member"], item["kind"]) for item in result.evidence["findings"]}


def paths_json(files=None, softlinks=(), directories=(), **overrides):
    """Build info/paths.json for `files` (name -> bytes), with per-path field overrides."""
    files = {"lib/libdemo.so": LIBRARY} if files is None else files
    entries = [
        {
            "_path": path,
            "path_type": "hardlink",
            "sha256": hashlib.sha256(data).hexdigest(),
            "size_in_bytes": len(data),
            **overrides.get(path, {}),
        }
        for path, data in files.items()
    ]
    entries += [{"_path": path, "path_type": "softlink"} for path in softlinks]
    entries += [{"_path": path, "path_type": "directory"} for path in directories]
    return json.dumps({"paths": entries, "paths_version": 1}).encode()


def run(tmp_path, fmt, **package):
    return PathsCheck().run(demo_package(tmp_path, fmt, **package))


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
def test_paths_demo_package_pass(tmp_path, fmt):
    result = run(tmp_path, fmt)

    assert result.outcome is CheckOutcome.PASS
    assert result.evidence["manifest"] == "info/paths.json"
    assert result.evidence["payload_members"] == 1
    assert json.dumps(result.evidence)


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
def test_paths_double_dot_inside_name_pass(tmp_path, fmt):
    result = run(tmp_path, fmt, files={"lib/a..b.so": b"x", "lib/..hidden": b"y"})

    assert result.outcome is CheckOutcome.PASS


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
def test_paths_absolute_member(tmp_path, fmt):
    result = run(tmp_path, fmt, extra_payload=[TarMember("/etc/cron.d/evil", b"* * * * * root sh")])

    assert result.outcome is CheckOutcome.FAIL
    assert ("/etc/cron.d/evil", "absolute-path") in findings_of(result)
    assert "absolute-path '/etc/cron.d/evil'" in result.summary


@pytest.mark.parametrize("name", ["C:/Windows/evil.dll", "c:evil.dll", "\\\\server\\share\\evil"])
def test_paths_windows_absolute_member(tmp_path, name):
    result = run(tmp_path, "tar.bz2", extra_payload=[TarMember(name, b"x")])

    assert (name, "absolute-path") in findings_of(result)


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
def test_paths_parent_escape(tmp_path, fmt):
    result = run(tmp_path, fmt, extra_payload=[TarMember("lib/../../.bashrc", b"evil")])

    assert result.outcome is CheckOutcome.FAIL
    assert ("lib/../../.bashrc", "parent-escape") in findings_of(result)


def test_paths_backslash_parent_escape(tmp_path):
    result = run(tmp_path, "tar.bz2", extra_payload=[TarMember("lib\\..\\..\\evil.dll", b"x")])

    assert ("lib\\..\\..\\evil.dll", "parent-escape") in findings_of(result)


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
def test_paths_symlink_escape(tmp_path, fmt):
    link = TarMember("lib/conf", type=tarfile.SYMTYPE, linkname="../../etc")
    result = run(tmp_path, fmt, extra_payload=[link])

    assert result.outcome is CheckOutcome.FAIL
    assert ("lib/conf", "symlink-escape") in findings_of(result)


@pytest.mark.parametrize("target", ["/etc/passwd", "C:\\Windows", "c:/windows", "..\\..\\x"])
def test_paths_symlink_absolute_target(tmp_path, target):
    link = TarMember("lib/conf", type=tarfile.SYMTYPE, linkname=target)
    result = run(tmp_path, "tar.bz2", extra_payload=[link])

    assert ("lib/conf", "symlink-escape") in findings_of(result)


def test_paths_symlink_chain_escape(tmp_path):
    # Each link stays inside on its own, but "up/.." walks through "up".
    links = [
        TarMember("lib/a/b/up", type=tarfile.SYMTYPE, linkname="../../.."),
        TarMember("lib/out", type=tarfile.SYMTYPE, linkname="a/b/up/.."),
    ]
    result = run(tmp_path, "tar.bz2", extra_payload=links)

    assert ("lib/out", "symlink-escape") in findings_of(result)
    assert ("lib/a/b/up", "symlink-escape") not in findings_of(result)


def test_paths_member_through_symlink_escape(tmp_path):
    # "lib/root" points at the prefix root, so "lib/root/../x" is written above it.
    links = [
        TarMember("lib/root", type=tarfile.SYMTYPE, linkname=".."),
        TarMember("lib/root/../evil", b"x"),
    ]
    result = run(tmp_path, "tar.bz2", extra_payload=links)

    assert ("lib/root/../evil", "escape-through-symlink") in findings_of(result)


def test_paths_symlink_case_insensitive_escape(tmp_path):
    # On a case-insensitive file system "LIB/ROOT" is the link "lib/root".
    links = [
        TarMember("lib/root", type=tarfile.SYMTYPE, linkname=".."),
        TarMember("share/out", type=tarfile.SYMTYPE, linkname="../LIB/ROOT/.."),
    ]
    result = run(tmp_path, "tar.bz2", extra_payload=links)

    assert ("share/out", "symlink-escape") in findings_of(result)


def test_paths_symlink_loop(tmp_path):
    links = [
        TarMember("lib/a", type=tarfile.SYMTYPE, linkname="b"),
        TarMember("lib/b", type=tarfile.SYMTYPE, linkname="a"),
    ]
    result = run(tmp_path, "tar.bz2", extra_payload=links)

    assert ("lib/a", "symlink-loop") in findings_of(result)


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
def test_paths_symlink_inside_pass(tmp_path, fmt):
    link = TarMember("lib/libdemo.so.1", type=tarfile.SYMTYPE, linkname="libdemo.so")
    manifest = paths_json(softlinks=["lib/libdemo.so.1"])
    result = run(tmp_path, fmt, extra_payload=[link], replace_info={"info/paths.json": manifest})

    assert result.outcome is CheckOutcome.PASS, result.summary


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
def test_paths_hardlink_outside(tmp_path, fmt):
    link = TarMember("lib/shadow", type=tarfile.LNKTYPE, linkname="../../etc/shadow")
    result = run(tmp_path, fmt, extra_payload=[link])

    assert result.outcome is CheckOutcome.FAIL
    assert ("lib/shadow", "hardlink-outside") in findings_of(result)


def test_paths_hardlink_absolute(tmp_path):
    link = TarMember("lib/shadow", type=tarfile.LNKTYPE, linkname="/etc/shadow")
    result = run(tmp_path, "tar.bz2", extra_payload=[link])

    assert ("lib/shadow", "hardlink-outside") in findings_of(result)


def test_paths_hardlink_missing_target(tmp_path):
    link = TarMember("lib/copy", type=tarfile.LNKTYPE, linkname="lib/not-archived")
    result = run(tmp_path, "conda", extra_payload=[link])

    assert ("lib/copy", "hardlink-missing-target") in findings_of(result)


def test_paths_hardlink_inside_pass(tmp_path):
    link = TarMember("lib/libdemo-copy.so", type=tarfile.LNKTYPE, linkname="lib/libdemo.so")
    manifest = paths_json(files={"lib/libdemo.so": LIBRARY, "lib/libdemo-copy.so": LIBRARY})
    result = run(tmp_path, "tar.bz2", extra_payload=[link], replace_info={"info/paths.json": manifest})

    assert result.outcome is CheckOutcome.PASS, result.summary


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
@pytest.mark.parametrize(
    ("member_type", "kind"),
    [(tarfile.CHRTYPE, "char-device"), (tarfile.BLKTYPE, "block-device"), (tarfile.FIFOTYPE, "fifo")],
    ids=["char", "block", "fifo"],
)
def test_paths_special_member(tmp_path, fmt, member_type, kind):
    result = run(tmp_path, fmt, extra_payload=[TarMember("dev/mem", type=member_type)])

    assert result.outcome is CheckOutcome.FAIL
    assert ("dev/mem", kind) in findings_of(result)


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
@pytest.mark.parametrize(("mode", "kind"), [(0o4755, "setuid"), (0o2755, "setgid")])
def test_paths_setid_mode(tmp_path, fmt, mode, kind):
    info_manifest = paths_json(files={"lib/libdemo.so": LIBRARY, "bin/su": b"#!/bin/sh"})
    result = run(
        tmp_path,
        fmt,
        extra_payload=[TarMember("bin/su", b"#!/bin/sh", mode=mode)],
        replace_info={"info/paths.json": info_manifest},
    )

    assert result.outcome is CheckOutcome.FAIL
    assert findings_of(result) == {("bin/su", kind)}


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
def test_paths_duplicate_member(tmp_path, fmt):
    result = run(tmp_path, fmt, extra_payload=[TarMember("lib/libdemo.so", b"replaced later")])

    assert result.outcome is CheckOutcome.FAIL
    assert findings_of(result) == {("lib/libdemo.so", "duplicate")}


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
def test_paths_manifest_sha256_mismatch(tmp_path, fmt):
    manifest = paths_json(**{"lib/libdemo.so": {"sha256": "0" * 64}})
    result = run(tmp_path, fmt, replace_info={"info/paths.json": manifest})

    assert result.outcome is CheckOutcome.FAIL
    assert findings_of(result) == {("lib/libdemo.so", "sha256-mismatch")}


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
def test_paths_manifest_size_mismatch(tmp_path, fmt):
    manifest = paths_json(**{"lib/libdemo.so": {"size_in_bytes": 3}})
    result = run(tmp_path, fmt, replace_info={"info/paths.json": manifest})

    assert result.outcome is CheckOutcome.FAIL
    assert findings_of(result) == {("lib/libdemo.so", "size-mismatch")}
    assert f"says 3 bytes, the archive has {len(LIBRARY)}" in result.evidence["findings"][0]["detail"]


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
def test_paths_payload_not_in_manifest(tmp_path, fmt):
    result = run(tmp_path, fmt, extra_payload=[TarMember("bin/hidden", b"#!/bin/sh\nid\n")])

    assert result.outcome is CheckOutcome.FAIL
    assert findings_of(result) == {("bin/hidden", "not-in-manifest")}
    assert "not-in-manifest 'bin/hidden'" in result.summary


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
def test_paths_manifest_entry_missing(tmp_path, fmt):
    manifest = paths_json(files={"lib/libdemo.so": LIBRARY, "lib/gone.so": b"x"})
    result = run(tmp_path, fmt, replace_info={"info/paths.json": manifest})

    assert findings_of(result) == {("lib/gone.so", "missing-from-package")}


def test_paths_manifest_directory_entry_pass(tmp_path):
    manifest = paths_json(directories=["share/empty"])
    result = run(tmp_path, "conda", replace_info={"info/paths.json": manifest})

    assert result.outcome is CheckOutcome.PASS


@pytest.mark.parametrize(
    "document",
    [b"{not json", b'{"paths": [], "paths_version": 2}', b'{"paths": [{"path_type": "hardlink"}], "paths_version": 1}'],
    ids=["json", "version", "entry"],
)
def test_paths_manifest_invalid(tmp_path, document):
    result = run(tmp_path, "tar.bz2", replace_info={"info/paths.json": document})

    assert result.outcome is CheckOutcome.FAIL
    assert ("info/paths.json", "manifest-invalid") in findings_of(result)


def test_paths_files_list_fallback_warns(tmp_path):
    result = run(tmp_path, "tar.bz2", replace_info={"info/paths.json": None})

    assert result.outcome is CheckOutcome.WARN
    assert result.summary == "no paths.json; checked against info/files"
    assert result.evidence["manifest"] == "info/files"


def test_paths_files_list_fallback_mismatch(tmp_path):
    result = run(
        tmp_path,
        "tar.bz2",
        extra_payload=[TarMember("bin/hidden", b"x")],
        replace_info={"info/paths.json": None, "info/files": b"lib/libdemo.so\nlib/gone.so\n"},
    )

    assert result.outcome is CheckOutcome.FAIL
    assert findings_of(result) == {("bin/hidden", "not-in-manifest"), ("lib/gone.so", "missing-from-package")}


def test_paths_no_manifest_with_payload(tmp_path):
    result = run(tmp_path, "tar.bz2", replace_info={"info/paths.json": None, "info/files": None})

    assert result.outcome is CheckOutcome.FAIL
    assert findings_of(result) == {("lib/libdemo.so", "not-in-manifest")}


def test_paths_conda_info_member_in_payload(tmp_path):
    result = run(tmp_path, "conda", extra_payload=[TarMember("info/paths.json", b"{}")])

    assert ("info/paths.json", "info-in-payload") in findings_of(result)


def test_paths_conda_payload_member_in_info(tmp_path):
    result = run(tmp_path, "conda", extra_info=[TarMember("bin/sneaky", b"x")])

    assert ("bin/sneaky", "payload-in-info") in findings_of(result)


def test_paths_unreadable_archive_fails(tmp_path):
    context = demo_package(tmp_path, "tar.bz2", extra_payload=[TarMember("lib/" + "a" * 300, b"x")])

    result = PathsCheck().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "so its paths are unchecked" in result.summary
    assert "300-byte path segment" in result.summary


def test_paths_manifest_over_limit(tmp_path):
    context = demo_package(tmp_path, "tar.bz2")

    result = PathsCheck(ArchiveLimits(), max_manifest_bytes=64).run(context)

    assert ("info/paths.json", "manifest-too-large") in findings_of(result)


def test_paths_findings_capped(tmp_path):
    hidden = [TarMember(f"bin/hidden{i:03}", b"x") for i in range(150)]
    result = run(tmp_path, "tar.bz2", extra_payload=hidden)

    assert result.evidence["finding_count"] == 150
    assert len(result.evidence["findings"]) == 100
    assert result.evidence["finding_kinds"] == {"not-in-manifest": 150}
    assert result.summary.endswith("and 145 more")


def corpus_packages() -> list[str]:
    found = sorted(CORPUS_DIR.glob("packages/*"))
    found += sorted(CORPUS_DIR.glob("channels/conda-format-repo/*/*.conda"))
    found += sorted(CORPUS_DIR.glob("channels/conda-format-repo/*/*.tar.bz2"))
    found += sorted(CORPUS_DIR.glob("channels/conda-test-recipes/*/*.conda"))
    return [str(path.relative_to(CORPUS_DIR)) for path in found if path.is_file()]


# Packages older than info/paths.json.
FILES_LIST_ONLY = {"packages/flask-0.11.1-py_0.tar.bz2"}
# The conda-index test data strips the payload of these, so their manifests
# name files that are absent; conda reports such packages as corrupted.
PAYLOAD_STRIPPED = {
    "packages/fly-2.5.2-0.tar.bz2": "bin/fly",
    "packages/nano-2.4.1-0.tar.bz2": "bin/nano",
    "packages/spiffy-test-app-0.5-pyh6afbcc8_0.tar.bz2": "site-packages/spiffy_test_app/__init__.py",
}


@pytest.mark.parametrize("relative_path", corpus_packages())
def test_paths_corpus_package(corpus, relative_path):
    path: Path = corpus / relative_path
    context = CheckContext(path=path, filename=path.name, subdir=path.parent.name, record={})

    result = PathsCheck().run(context)

    if relative_path in PAYLOAD_STRIPPED:
        assert result.outcome is CheckOutcome.FAIL
        assert result.evidence["finding_kinds"] == {"missing-from-package": result.evidence["finding_count"]}
        assert (PAYLOAD_STRIPPED[relative_path], "missing-from-package") in findings_of(result)
    elif relative_path in FILES_LIST_ONLY:
        assert result.outcome is CheckOutcome.WARN, result.summary
    else:
        assert result.outcome is CheckOutcome.PASS, result.summary
