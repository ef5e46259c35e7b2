"""A hostile upstream: one package per fault kind goes through the whole pipeline, and only the clean one is published."""

from __future__ import annotations

import json
import tarfile
import uuid
from pathlib import Path

import pytest

from mirror.catalog.models import MembershipState
from mirror.demo.channel import index_channel
from mirror.demo.packages import PackageSpec, TarMember, build_members, build_package, write_package
from tests.functional.helpers import Mirror
from tests.support.fake_upstream import FakeUpstream

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
ESCAPE_MARK = f"mirror-hostile-{uuid.uuid4().hex}"

CHANNELS = """\
  main:
    approval: auto
    licence: {deny: ["GPL-*"]}
    vulnerabilities: {max_severity: medium}
"""

ADVISORY = {
    "schema_version": "1.6.0",
    "id": "GHSA-test-0001",
    "modified": "2024-01-01T00:00:00Z",
    "published": "2024-01-01T00:00:00Z",
    "summary": "Test advisory for requests",
    "affected": [{
        "package": {"ecosystem": "PyPI", "name": "requests"},
        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.31.0"}]}],
    }],
    "database_specific": {"severity": "HIGH"},
}

# name -> (check expected in the reason, state the package ends in)
EXPECTED = {
    "evil-absolute": ("paths", MembershipState.FAILED),
    "evil-escape": ("paths", MembershipState.FAILED),
    "evil-symlink": ("paths", MembershipState.FAILED),
    "evil-setuid": ("paths", MembershipState.FAILED),
    "evil-device": ("paths", MembershipState.FAILED),
    "evil-eicar": ("malware", MembershipState.FAILED),
    "evil-bomb": ("archive", MembershipState.FAILED),
    "evil-gpl": ("licence", MembershipState.FAILED),
    "requests": ("vulnerabilities", MembershipState.FAILED),
    "evil-test": ("install", MembershipState.FAILED),
    "evil-postlink": ("scripts", MembershipState.PASSED),
    "evil-nolicence": ("licence", MembershipState.PASSED),
}


def hostile(out: Path, spec: PackageSpec, extra: list[TarMember] = (), fmt: str = "conda") -> None:
    info, payload = build_members(spec)
    write_package(f"{spec.name}-{spec.version}-{spec.build}", info, payload + list(extra), out, fmt)


def build_hostile_upstream(root: Path) -> Path:
    noarch = root / "noarch"
    noarch.mkdir(parents=True)
    (root / "linux-64").mkdir()

    build_package(PackageSpec("good", "1.0", files={"share/good.txt": b"good\n"}), noarch, "conda")
    hostile(noarch, PackageSpec("evil-absolute", "1.0"), [TarMember(f"/tmp/{ESCAPE_MARK}-abs", b"x")])
    hostile(noarch, PackageSpec("evil-escape", "1.0"), [TarMember(f"lib/../../{ESCAPE_MARK}-up", b"x")])
    hostile(noarch, PackageSpec("evil-symlink", "1.0"),
            [TarMember("lib/link", type=tarfile.SYMTYPE, linkname="../../../etc/passwd")], fmt="tar.bz2")
    hostile(noarch, PackageSpec("evil-setuid", "1.0"), [TarMember("bin/su-helper", b"#!/bin/sh\n", mode=0o4755)])
    hostile(noarch, PackageSpec("evil-device", "1.0"), [TarMember("dev/sda", type=tarfile.CHRTYPE)])
    build_package(PackageSpec("evil-eicar", "1.0", files={"share/readme.txt": b"hello " + EICAR}), noarch, "conda")
    build_package(PackageSpec("evil-bomb", "1.0", files={"share/zeros.bin": bytes(8 * 1024 * 1024)}), noarch, "conda")
    build_package(PackageSpec("evil-gpl", "1.0", license="GPL-3.0-or-later", files={"a.txt": b"a"}), noarch, "conda")
    build_package(PackageSpec("requests", "2.0.0", files={"a.txt": b"a"}), noarch, "conda")
    build_package(PackageSpec("evil-test", "1.0", files={"a.txt": b"a"}, test_commands=["exit 3"]), noarch, "conda")
    build_package(PackageSpec("evil-postlink", "1.0", files={
        "bin/.evil-postlink-post-link.sh": b"#!/bin/sh\necho linked\n"}), noarch, "conda")
    build_package(PackageSpec("evil-nolicence", "1.0", license=None, files={"a.txt": b"a"}), noarch, "conda")

    index_channel(root, ["linux-64", "noarch"])
    return root


HOSTILE_WHITELIST = "- upstream: up\n  channel: main\n  packages: ['good', 'evil-*', 'requests']\n"


def write_advisories(folder: Path) -> Path:
    """Write the test advisory as an OSV folder and return it."""
    folder.mkdir()
    (folder / "GHSA-test-0001.json").write_text(json.dumps(ADVISORY))
    return folder


def assert_only_good_published(mirror: Mirror) -> None:
    """Check that only the clean package is published and each hostile one is kept out by its check."""
    assert mirror.published() == {"good-1.0-0.conda"}
    states = {m.artifact.name: m for m in mirror.memberships()}
    assert set(states) == set(EXPECTED) | {"good"}
    for name, (check, state) in EXPECTED.items():
        membership = states[name]
        assert membership.state == state, f"{name}: {membership.state} {membership.reason}"
        assert f"{check}:" in membership.reason, f"{name}: {membership.reason}"


@pytest.mark.real_component
def test_hostile_upstream_rejected(tmp_path):
    root = build_hostile_upstream(tmp_path / "upstream")
    advisories = write_advisories(tmp_path / "osv")

    with FakeUpstream(root) as server:
        mirror = Mirror(tmp_path / "mirror").write(
            server.url, HOSTILE_WHITELIST,
            channels=CHANNELS,
        )
        config = mirror.config_path.read_text() + "validation: {max_compression_ratio: 50}\n"
        mirror.config_path.write_text(config)
        assert mirror.cli("advisories", "import", str(advisories)).exit_code == 0
        result = mirror.cli("run")

    assert result.exit_code == 0, result.output
    assert_only_good_published(mirror)

    # Nothing escaped: the hostile paths were judged from tar headers, never written.
    assert not Path(f"/tmp/{ESCAPE_MARK}-abs").exists()
    assert not list(Path("/").glob(f"{ESCAPE_MARK}*"))
    assert not list(tmp_path.rglob(f"{ESCAPE_MARK}*"))


def test_hostile_run_is_idempotent(tmp_path):
    root = build_hostile_upstream(tmp_path / "upstream")
    with FakeUpstream(root) as server:
        mirror = Mirror(tmp_path / "mirror").write(
            server.url, "- upstream: up\n  channel: main\n  packages: ['good', 'evil-setuid', 'evil-eicar']\n",
            channels=CHANNELS,
        )
        assert mirror.cli("run").exit_code == 0
        again = mirror.cli("validate")
    assert again.exit_code == 0
    assert "validate: 0 checked" in again.output
    validate_runs = [r for r in mirror.runs() if r.kind == "validate"]
    assert validate_runs[-1].counts["validated"] == 0


def test_advisory_import_retires_approved(tmp_path):
    root = tmp_path / "upstream"
    (root / "linux-64").mkdir(parents=True)
    (root / "noarch").mkdir()
    build_package(PackageSpec("requests", "2.0.0", files={"a.txt": b"a"}), root / "noarch", "conda")
    index_channel(root, ["linux-64", "noarch"])
    advisories = write_advisories(tmp_path / "osv")

    with FakeUpstream(root) as server:
        mirror = Mirror(tmp_path / "mirror").write(
            server.url, "- upstream: up\n  channel: main\n  packages: [requests]\n", channels=CHANNELS
        )
        assert mirror.cli("run").exit_code == 0
        assert mirror.published() == {"requests-2.0.0-0.conda"}

        imported = mirror.cli("advisories", "import", str(advisories))
        assert imported.exit_code == 0, imported.output
        assert "GHSA-test-0001" in imported.output
        assert mirror.cli("publish").exit_code == 0
        assert mirror.published() == set()
        (membership,) = mirror.memberships()
        assert membership.state == MembershipState.RETIRED
        assert "GHSA-test-0001" in membership.reason
        assert any(e.action == "retired_vulnerable" for e in mirror.audit())

        # The whitelist still names it: the next cycle selects it again, and the
        # vulnerability check, whose version follows the advisory data, keeps it out.
        assert mirror.cli("run").exit_code == 0
    assert mirror.published() == set()
    (membership,) = mirror.memberships()
    assert membership.state == MembershipState.FAILED
    assert "GHSA-test-0001" in membership.reason
