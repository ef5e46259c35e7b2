"""Importing OSV advisories from folders and zip dumps: upsert, malformed files, zip guards."""

from __future__ import annotations

import copy
import io
import json
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import select

from mirror.advisories.importer import AdvisoryImportError, ImportLimits, import_advisories
from mirror.advisories.models import VERSIONS_RANGE, Advisory, AdvisoryImport, AffectedRange

from .conftest import CVSS_ADVISORY, MALFORMED_JSON, RANGE_ADVISORY, VERSIONS_ADVISORY, write_json


def build_zip(path: Path, members: dict[str, bytes]) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    path.write_bytes(buffer.getvalue())
    return path


def test_folder_import_counts(catalog, osv_folder):
    with catalog.session() as session:
        report = import_advisories(session, osv_folder)
    assert report.imported == 3
    assert report.updated == 0
    assert [skipped.name for skipped in report.skipped] == ["PyPI/broken.json"]
    assert report.skipped[0].reason.startswith("malformed: malformed JSON")
    assert report.complete


def test_folder_import_rows(catalog, osv_folder):
    with catalog.session() as session:
        import_advisories(session, osv_folder)

    with catalog.session() as session:
        advisory = session.get(Advisory, "GHSA-aaaa-bbbb-cccc")
        assert advisory.aliases == ["CVE-2024-0001"]
        assert advisory.severity == "high"
        assert advisory.severity_source == "database_specific.severity HIGH"
        assert advisory.source_file == "PyPI/requests-toolbelt/GHSA-aaaa-bbbb-cccc.json"
        (affected,) = advisory.ranges
        assert affected.ecosystem == "PyPI"
        assert affected.package_name == "Requests_Toolbelt"
        assert affected.package_key == "requests-toolbelt"
        assert affected.events == [{"introduced": "0"}, {"fixed": "2.0.1"}]

        torch = session.get(Advisory, "PYSEC-2023-17")
        assert torch.severity == "medium"
        assert [(row.range_type, row.versions) for row in torch.ranges] == [(VERSIONS_RANGE, ["1.13.0", "1.13.1"])]

        opencv = session.get(Advisory, "PYSEC-2024-99")
        assert opencv.severity == "critical"
        assert "base score 9.8" in opencv.severity_source
        assert sorted(row.range_type for row in opencv.ranges) == ["ECOSYSTEM", "GIT"]


def test_reimport_is_idempotent(catalog, osv_folder):
    with catalog.session() as session:
        import_advisories(session, osv_folder)
    with catalog.session() as session:
        report = import_advisories(session, osv_folder)

    assert (report.imported, report.updated, report.unchanged) == (0, 0, 3)
    with catalog.session() as session:
        assert len(session.scalars(select(Advisory)).all()) == 3
        assert len(session.scalars(select(AffectedRange)).all()) == 4
        logs = session.scalars(select(AdvisoryImport).order_by(AdvisoryImport.id)).all()
        assert [(log.imported, log.unchanged) for log in logs] == [(3, 0), (0, 3)]
        assert logs[1].skipped == [{"file": "PyPI/broken.json", "reason": report.skipped[0].reason}]


def test_newer_modified_replaces(catalog, tmp_path):
    first = tmp_path / "first"
    write_json(first, "a.json", RANGE_ADVISORY)
    newer = copy.deepcopy(RANGE_ADVISORY)
    newer["modified"] = "2024-04-01T00:00:00Z"
    newer["affected"][0]["ranges"][0]["events"] = [{"introduced": "0"}, {"fixed": "2.1.0"}]
    second = tmp_path / "second"
    write_json(second, "a.json", newer)
    older = copy.deepcopy(RANGE_ADVISORY)
    older["modified"] = "2023-01-01T00:00:00Z"
    older["summary"] = "stale text"
    third = tmp_path / "third"
    write_json(third, "a.json", older)

    with catalog.session() as session:
        import_advisories(session, first)
    with catalog.session() as session:
        assert import_advisories(session, second).updated == 1
    with catalog.session() as session:
        assert import_advisories(session, third).unchanged == 1

    with catalog.session() as session:
        advisory = session.get(Advisory, "GHSA-aaaa-bbbb-cccc")
        assert advisory.summary == RANGE_ADVISORY["summary"]
        assert [row.events for row in advisory.ranges] == [[{"introduced": "0"}, {"fixed": "2.1.0"}]]
        assert len(session.scalars(select(AffectedRange)).all()) == 1


def test_invalid_record_skipped_by_name(catalog, tmp_path):
    folder = tmp_path / "osv"
    write_json(folder, "no-modified.json", {"id": "GHSA-x"})
    write_json(folder, "list.json", [1, 2])
    bad_event = copy.deepcopy(RANGE_ADVISORY)
    bad_event["id"] = "GHSA-bad-event"
    bad_event["affected"][0]["ranges"][0]["events"] = [{"introduced": "0", "fixed": "1.0"}]
    write_json(folder, "bad-event.json", bad_event)
    write_json(folder, "ok.json", RANGE_ADVISORY)

    with catalog.session() as session:
        report = import_advisories(session, folder)

    reasons = {skipped.name: skipped.reason for skipped in report.skipped}
    assert report.imported == 1
    assert "'modified'" in reasons["no-modified.json"]
    assert "JSON list" in reasons["list.json"]
    assert "events" in reasons["bad-event.json"]
    assert report.skipped_by_reason() == {"malformed": 3}


def test_zip_import(catalog, tmp_path):
    dump = build_zip(
        tmp_path / "PyPI.zip",
        {
            "GHSA-aaaa-bbbb-cccc.json": json.dumps(RANGE_ADVISORY).encode(),
            "PYSEC-2023-17.json": json.dumps(VERSIONS_ADVISORY).encode(),
            "PYSEC-2024-99.json": json.dumps(CVSS_ADVISORY).encode(),
            "broken.json": MALFORMED_JSON,
        },
    )
    with catalog.session() as session:
        report = import_advisories(session, dump)
    assert report.imported == 3
    assert [skipped.name for skipped in report.skipped] == ["broken.json"]

    with catalog.session() as session:
        assert import_advisories(session, dump).unchanged == 3


def test_zip_traversal_member_not_written(catalog, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    evil = copy.deepcopy(RANGE_ADVISORY)
    evil["id"] = "GHSA-evil"
    dump = build_zip(
        work / "dump.zip",
        {
            "../evil.json": json.dumps(evil).encode(),
            "../evil": b"payload",
            "/abs/evil.json": json.dumps(evil).encode(),
            "good.json": json.dumps(RANGE_ADVISORY).encode(),
        },
    )
    before = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*"))

    with catalog.session() as session:
        report = import_advisories(session, dump)

    after = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*"))
    new_files = [path for path in after if path not in before and not path.name.startswith("c.db")]
    assert new_files == []
    assert not (tmp_path / "evil").exists()
    assert not (tmp_path / "evil.json").exists()
    assert report.imported == 1
    reasons = {skipped.name: skipped.reason for skipped in report.skipped}
    assert reasons["../evil.json"] == "unsafe member name: contains '..'"
    assert reasons["../evil"] == "unsafe member name: contains '..'"
    assert reasons["/abs/evil.json"] == "unsafe member name: absolute path"
    with catalog.session() as session:
        assert session.get(Advisory, "GHSA-evil") is None


def test_zip_member_size_limit(catalog, tmp_path):
    padded = copy.deepcopy(VERSIONS_ADVISORY)
    padded["details"] = "x" * 5000
    dump = build_zip(
        tmp_path / "dump.zip",
        {"big.json": json.dumps(padded).encode(), "small.json": json.dumps(RANGE_ADVISORY).encode()},
    )
    with catalog.session() as session:
        report = import_advisories(session, dump, ImportLimits(max_member_bytes=2000))
    assert report.imported == 1
    assert report.skipped[0].name == "big.json"
    assert report.skipped[0].reason.startswith("too large")
    assert report.complete


def test_zip_total_limit_stops(catalog, tmp_path):
    members = {f"{index:02d}.json": json.dumps({**RANGE_ADVISORY, "id": f"GHSA-{index}"}).encode() for index in range(10)}
    dump = build_zip(tmp_path / "dump.zip", members)
    one_member = len(members["00.json"])
    with catalog.session() as session:
        report = import_advisories(session, dump, ImportLimits(max_total_bytes=one_member * 3 + 10))
    assert report.imported == 3
    assert not report.complete
    assert report.skipped[-1].name == "03.json"
    assert report.skipped[-1].reason.startswith("total limit reached")
    with catalog.session() as session:
        (log,) = session.scalars(select(AdvisoryImport)).all()
        assert log.complete is False


def test_folder_total_limit_stops(catalog, osv_folder):
    with catalog.session() as session:
        report = import_advisories(session, osv_folder, ImportLimits(max_total_bytes=10))
    assert report.imported == 0
    assert not report.complete


def test_not_a_zip(catalog, tmp_path):
    fake = tmp_path / "dump.zip"
    fake.write_bytes(b"this is not a zip archive")
    with catalog.session() as session, pytest.raises(AdvisoryImportError, match="not a readable zip"):
        import_advisories(session, fake)


def test_missing_path(catalog, tmp_path):
    with catalog.session() as session, pytest.raises(AdvisoryImportError, match="does not exist"):
        import_advisories(session, tmp_path / "nowhere")


def test_single_json_file(catalog, tmp_path):
    path = write_json(tmp_path, "one.json", CVSS_ADVISORY)
    with catalog.session() as session:
        report = import_advisories(session, path)
    assert report.imported == 1
