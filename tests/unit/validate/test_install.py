"""Tests of the install check: real packages, a real quarantine channel, py-rattler installs."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from mirror.catalog.models import CheckOutcome
from mirror.demo.channel import record_for
from mirror.demo.packages import PackageSpec, TarMember, build_members, write_package
from mirror.validate.checks.install import InstallTestCheck, exact_spec, extract_package_tests
from mirror.validate.quarantine import QuarantineFile, build_quarantine_channel
from mirror.validate.result import CheckContext
from mirror.validate.sandbox import ISOLATION_NONE, network_isolation_mode

pytestmark = pytest.mark.real_component


class Quarantine:
    """Package files built into tmp_path, listed in a quarantine channel the check installs from."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.blobs = tmp_path / "blobs"
        self.root = tmp_path / "quarantine"
        self.files: dict[str, QuarantineFile] = {}

    def add(self, spec: PackageSpec, fmt: str = "conda", extra_info: dict[str, bytes] | None = None) -> CheckContext:
        info, payload = build_members(spec)
        extra = [TarMember(name, data) for name, data in (extra_info or {}).items()]
        info = sorted(info + extra, key=lambda member: member.name)
        path = write_package(spec.stem, info, payload, self.blobs / spec.subdir, fmt)
        item = QuarantineFile(spec.subdir, path.name, record_for(path), path)
        self.files[f"{spec.subdir}/{path.name}"] = item
        return CheckContext(path=path, filename=item.filename, subdir=item.subdir, record=item.record)

    def check(self, **options) -> InstallTestCheck:
        url = build_quarantine_channel(self.root, self.files.values()).as_uri()
        options.setdefault("timeout_seconds", 30)
        return InstallTestCheck(lambda context: url, work_root=self.tmp_path / "work", **options)


@pytest.fixture
def quarantine(tmp_path):
    return Quarantine(tmp_path)


def tool(name: str, test_commands: list[str], **fields) -> PackageSpec:
    script = b"#!/bin/sh\necho hello from the tool\n"
    fields.setdefault("subdir", "linux-64")
    return PackageSpec(
        name=name,
        version="1.0",
        build="h0_0",
        files={f"bin/{name}": script},
        executables={f"bin/{name}"},
        test_commands=test_commands,
        **fields,
    )


def test_install_passing_test(quarantine, tmp_path):
    quarantine.add(PackageSpec("libgreet", "2.0", subdir="linux-64", files={"lib/greet.txt": b"hi\n"}))
    context = quarantine.add(tool("greeter", ["greeter", "test -f $PREFIX/lib/greet.txt"], depends=["libgreet >=2"]))

    result = quarantine.check().run(context)

    assert result.outcome is CheckOutcome.PASS, result.summary
    assert result.summary.startswith("installed 2 packages; 1 tests passed")
    solved = {package["name"]: package for package in result.evidence["solved"]}
    assert solved["greeter"]["file_name"] == "greeter-1.0-h0_0.conda"
    assert solved["libgreet"]["version"] == "2.0"
    test = result.evidence["tests"][0]
    assert test["name"] == "run_test.sh"
    assert test["exit_code"] == 0
    assert "hello from the tool" in test["stdout_tail"]
    assert result.evidence["spec"] == "greeter ==1.0 h0_0"


def test_install_cleans_work_root(quarantine, tmp_path):
    context = quarantine.add(tool("greeter", ["greeter"]))

    quarantine.check().run(context)

    assert list((tmp_path / "work").iterdir()) == []


def test_install_failing_test(quarantine):
    context = quarantine.add(tool("flaky", ["test -f $PREFIX/share/missing.txt"]))

    result = quarantine.check().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert result.summary == "installed 1 packages; test run_test.sh exited with 1"
    test = result.evidence["tests"][0]
    assert test["exit_code"] == 1
    assert test["timed_out"] is False
    assert "share/missing.txt" in test["stderr_tail"]


def test_install_hanging_test_killed(quarantine):
    context = quarantine.add(tool("sleepy", ["sleep 60"]))

    result = quarantine.check(timeout_seconds=1).run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert "test run_test.sh timed out" in result.summary
    test = result.evidence["tests"][0]
    assert test["timed_out"] is True
    assert test["exit_code"] == -9


@pytest.fixture
def listener():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()


def accepted_connection(server: socket.socket) -> bool:
    try:
        connection, _ = server.accept()
    except BlockingIOError:
        return False
    connection.close()
    return True


def test_install_network_blocked(quarantine, listener):
    if network_isolation_mode() == ISOLATION_NONE:
        pytest.skip("unshare --net does not work on this machine, so tests cannot be isolated from the network")
    port = listener.getsockname()[1]
    context = quarantine.add(tool("phone-home", [f"exec 3<>/dev/tcp/127.0.0.1/{port}"]))

    result = quarantine.check().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert result.evidence["isolation"].startswith("unshare --net")
    assert "unreachable" in result.evidence["tests"][0]["stderr_tail"]
    assert not accepted_connection(listener)


def test_install_network_without_isolation(quarantine, listener):
    port = listener.getsockname()[1]
    context = quarantine.add(tool("phone-home", [f"exec 3<>/dev/tcp/127.0.0.1/{port}"]))

    result = quarantine.check(isolate_network=False).run(context)

    assert result.outcome is CheckOutcome.PASS, result.summary
    assert result.evidence["isolation"] == "disabled"
    assert accepted_connection(listener)


def test_install_unsatisfiable_dependency(quarantine):
    context = quarantine.add(tool("needy", ["needy"], depends=["not-in-quarantine >=2"]))

    result = quarantine.check().run(context)

    assert result.outcome is CheckOutcome.FAIL
    assert result.summary.startswith("solve failed for needy ==1.0 h0_0")
    assert "not-in-quarantine >=2" in result.summary
    assert "not-in-quarantine >=2" in result.evidence["error"]
    assert "tests" not in result.evidence


def test_install_foreign_subdir_skipped(quarantine):
    context = quarantine.add(tool("mac-only", ["mac-only"], subdir="osx-64"))

    result = quarantine.check().run(context)

    assert result.outcome is CheckOutcome.PASS
    assert result.summary == "skipped: osx-64 packages cannot be installed on this linux-64 host"
    assert result.evidence["skipped"] is True
    assert result.evidence["reason"] == "osx-64 packages cannot be installed on this linux-64 host"


def test_install_missing_virtual_package_skipped(quarantine):
    context = quarantine.add(tool("future", ["future"], depends=["__glibc >=99"]))

    result = quarantine.check().run(context)

    assert result.outcome is CheckOutcome.PASS
    assert result.summary == "skipped: it needs __glibc >=99, which this host does not provide"
    assert result.evidence["skipped"] is True
    assert any(package.startswith("__glibc=") for package in result.evidence["virtual_packages"])


def test_install_no_tests(quarantine):
    context = quarantine.add(PackageSpec("plain-data", "1.0", files={"share/plain/data.txt": b"x\n"}))

    result = quarantine.check().run(context)

    assert result.outcome is CheckOutcome.PASS
    assert result.summary == "installed 1 packages; no tests in the package"
    assert result.evidence["tests"] == []


def test_install_tar_bz2_twin(quarantine):
    spec = tool("twin", ["twin"])
    quarantine.add(spec, "conda")
    context = quarantine.add(spec, "tar.bz2")

    result = quarantine.check().run(context)

    assert result.outcome is CheckOutcome.PASS, result.summary
    assert [package["file_name"] for package in result.evidence["solved"]] == ["twin-1.0-h0_0.tar.bz2"]


def test_install_run_test_py_without_python(quarantine):
    context = quarantine.add(
        tool("pyless", ["pyless"]),
        extra_info={"info/test/run_test.py": b"import pyless\n"},
    )

    result = quarantine.check().run(context)

    assert result.outcome is CheckOutcome.WARN
    assert result.evidence["tests"][0]["name"] == "run_test.sh"
    assert result.evidence["skipped_tests"] == [
        {"name": "run_test.py", "reason": "needs python, which is not installed in the prefix"}
    ]
    assert "run_test.py: needs python" in result.summary


def test_install_unsolvable_test_requirements(quarantine):
    context = quarantine.add(
        tool("tested", ["pytest --version"]),
        extra_info={"info/test/test_time_dependencies.json": json.dumps(["pytest >=8"]).encode()},
    )

    result = quarantine.check().run(context)

    assert result.outcome is CheckOutcome.WARN
    assert result.evidence["test_requirements"] == ["pytest >=8"]
    assert [package["name"] for package in result.evidence["solved"]] == ["tested"]
    assert result.evidence["tests"] == []
    assert "cannot be solved from the quarantine channel" in result.summary


def test_install_test_requirements_installed(quarantine):
    quarantine.add(tool("checker", []))
    context = quarantine.add(
        tool("checked", ["checker"]),
        extra_info={"info/test/test_time_dependencies.json": json.dumps(["checker"]).encode()},
    )

    result = quarantine.check().run(context)

    assert result.outcome is CheckOutcome.PASS, result.summary
    assert sorted(package["name"] for package in result.evidence["solved"]) == ["checked", "checker"]


def test_install_meta_yaml_commands(quarantine):
    meta = b"package:\n  name: legacy\ntest:\n  commands:\n    - legacy\n    - test -d $PREFIX/bin\n"
    context = quarantine.add(tool("legacy", []), extra_info={"info/recipe/meta.yaml": meta})

    result = quarantine.check().run(context)

    assert result.outcome is CheckOutcome.PASS, result.summary
    assert [test["name"] for test in result.evidence["tests"]] == [
        "command: legacy",
        "command: test -d $PREFIX/bin",
    ]


def test_install_environment_minimal(quarantine, monkeypatch):
    monkeypatch.setenv("MIRROR_TEST_SECRET", "hunter2")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    context = quarantine.add(tool("envdump", ["env", "ulimit -v", "ulimit -c"]))

    result = quarantine.check(memory_mb=512).run(context)

    assert result.outcome is CheckOutcome.PASS, result.summary
    output = result.evidence["tests"][0]["stdout_tail"]
    assert "hunter2" not in output
    assert "HTTPS_PROXY" not in output
    assert "PKG_NAME=envdump" in output
    assert "\n524288\n0\n" in output


def test_install_no_quarantine_channel(quarantine, tmp_path):
    context = quarantine.add(tool("orphan", ["orphan"]))
    check = InstallTestCheck(lambda context: None, work_root=tmp_path / "work")

    result = check.run(context)

    assert result.outcome is CheckOutcome.ERROR
    assert "no quarantine channel" in result.summary


def test_install_hostile_test_member(quarantine, tmp_path):
    context = quarantine.add(tool("escape", ["escape"]), extra_info={"info/test/../../escaped.sh": b"echo out\n"})

    result = quarantine.check().run(context)

    assert result.outcome is CheckOutcome.ERROR
    assert "unsafe member name 'info/test/../../escaped.sh'" in result.summary
    assert not list(tmp_path.rglob("escaped.sh"))


def test_install_host_subdirs_rejected(tmp_path):
    with pytest.raises(ValueError, match="exactly one platform"):
        InstallTestCheck(lambda context: None, host_subdirs=("noarch",))


def test_extract_tests_symlink_skipped(tmp_path):
    spec = tool("linky", ["linky"])
    info, payload = build_members(spec)
    link = TarMember("info/test/link.sh", type=b"2", linkname="/etc/passwd")
    path = write_package(spec.stem, sorted([*info, link], key=lambda m: m.name), payload, tmp_path, "conda")

    tests = extract_package_tests(path, tmp_path / "out")

    assert tests.scripts == ["run_test.sh"]
    assert tests.notes == ["info/test/link.sh is not a regular file and was not extracted"]
    assert not (tmp_path / "out" / "info" / "test" / "link.sh").exists()


def test_exact_spec_format():
    record = {"name": "demo", "version": "1.0", "build": "h1_0"}

    assert exact_spec(record) == "demo ==1.0 h1_0"
