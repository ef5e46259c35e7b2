"""OSV documents shaped like the real PyPI dump, and a migrated SQLite catalog."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mirror.catalog.session import Catalog

RANGE_ADVISORY: dict[str, Any] = {
    "schema_version": "1.6.0",
    "id": "GHSA-aaaa-bbbb-cccc",
    "modified": "2024-03-01T10:00:00Z",
    "published": "2024-02-20T09:00:00Z",
    "aliases": ["CVE-2024-0001"],
    "summary": "Path traversal in requests-toolbelt",
    "details": "Crafted archive member names escape the target folder.",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "Requests_Toolbelt", "purl": "pkg:pypi/requests-toolbelt"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0.1"}]}],
        }
    ],
    "database_specific": {"severity": "HIGH", "cwe_ids": ["CWE-22"], "github_reviewed": True},
}

VERSIONS_ADVISORY: dict[str, Any] = {
    "id": "PYSEC-2023-17",
    "modified": "2023-06-01T00:00:00Z",
    "aliases": ["CVE-2023-1111", "GHSA-dddd-eeee-ffff"],
    "details": "Heap overflow in the image decoder.",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "torch"},
            "versions": ["1.13.0", "1.13.1"],
        }
    ],
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"}],
}

CVSS_ADVISORY: dict[str, Any] = {
    "id": "PYSEC-2024-99",
    "modified": "2024-05-05T05:05:05.123456Z",
    "aliases": ["CVE-2024-9999"],
    "summary": "Remote code execution in opencv-python",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "opencv-python"},
            "ranges": [
                {"type": "ECOSYSTEM", "events": [{"introduced": "4.0.0"}, {"last_affected": "4.8.0.74"}]},
                {"type": "GIT", "repo": "https://example.invalid/opencv", "events": [{"introduced": "0"}, {"fixed": "abc123"}]},
            ],
        }
    ],
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
}

OPENSSL_STYLE_ADVISORY: dict[str, Any] = {
    "id": "GHSA-1111-2222-3333",
    "modified": "2024-01-01T00:00:00Z",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "pyopenssl-legacy"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.1.1a"}, {"fixed": "1.1.1w"}]}],
        }
    ],
    "database_specific": {"severity": "LOW"},
}

SEMVER_ADVISORY: dict[str, Any] = {
    "id": "GHSA-4444-5555-6666",
    "modified": "2024-01-01T00:00:00Z",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "semver-tool"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "1.0.0-beta.2"}, {"fixed": "1.4.0"}]}],
        }
    ],
    "database_specific": {"severity": "MODERATE"},
}

MALFORMED_JSON = b'{"id": "GHSA-broken", "modified": '


def write_json(folder: Path, relative: str, document: Any) -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def osv_folder(tmp_path: Path) -> Path:
    """A folder tree like an unpacked dump: three advisories in nested folders and one malformed file."""
    folder = tmp_path / "osv"
    write_json(folder, "PyPI/requests-toolbelt/GHSA-aaaa-bbbb-cccc.json", RANGE_ADVISORY)
    write_json(folder, "PyPI/torch/PYSEC-2023-17.json", VERSIONS_ADVISORY)
    write_json(folder, "PyPI/opencv-python/PYSEC-2024-99.json", CVSS_ADVISORY)
    (folder / "PyPI" / "broken.json").write_bytes(MALFORMED_JSON)
    (folder / "README.txt").write_text("not an advisory")
    return folder


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    catalog = Catalog("sqlite:///" + str(tmp_path / "c.db"))
    yield catalog
    catalog.close()
