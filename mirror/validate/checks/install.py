"""Install check: the package installs from the quarantine channel and its own tests pass.

The quarantine channel contains the candidate files of the same upstream
(see `mirror.validate.quarantine`). For a file in a subdir this host can
run, the check solves the package's exact record with its dependencies
against that channel and installs the solution with py-rattler into a
fresh temporary prefix. Then it runs the tests that conda-build packs into
`info/test/`:

- `run_test.sh` with bash, which contains the recipe's test commands;
- `run_test.py` with the prefix's python, which contains the recipe's
  imports and its own test script;
- only when neither exists, `test.commands` and `test.imports` from
  `info/recipe/meta.yaml`;
- `test_time_dependencies.json` (or meta.yaml `test.requires`) adds the
  test requirements to the solve.

Each test runs in a `Sandbox` (timeout, resource limits, minimal
environment, no network where `unshare` works). The temporary folder with
the prefix, the package cache and the test files is removed afterwards.

Outcomes: FAIL when the solve or the install fails, or a test fails or
times out. PASS when every test passes, or when the package has no tests.
WARN when the package has tests that could not run: their requirements are
not in the quarantine channel, or a test needs python and the prefix has
none. A file that this host cannot install is not tested: its subdir is
another platform (osx-arm64 on a linux-64 host, say), or it depends on a
virtual package the host lacks (`__cuda` without a GPU driver). It gets
PASS with a summary that starts with "skipped:" and evidence
{"skipped": true, "reason": ...}, because the file shows no defect, and a
WARN on every such file would bury the WARNs that need a reviewer.

Run `run` from a worker thread, not from a thread with a running event
loop, because it drives py-rattler through `asyncio.run`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import posixpath
import re
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rattler
from conda_package_streaming.package_streaming import stream_conda_component
from rattler.exceptions import (
    CacheDirError,
    DetectVirtualPackageError,
    ExtractError,
    FetchRepoDataError,
    GatewayError,
    InstallerError,
    InvalidMatchSpecError,
    IoError,
    LinkError,
    SolverError,
    TransactionError,
)
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from mirror.catalog.models import CheckOutcome
from mirror.validate.result import CheckContext, CheckResult
from mirror.validate.sandbox import CommandResult, Sandbox, SandboxLimits

try:
    import compression.zstd as zstd  # Python 3.14 and later
except ImportError:
    import backports.zstd as zstd

logger = logging.getLogger(__name__)

TEST_PREFIX = "info/test/"
RECIPE_META = "info/recipe/meta.yaml"
RUN_TEST_SH = "run_test.sh"
RUN_TEST_PY = "run_test.py"
TEST_REQUIREMENTS_JSON = "test_time_dependencies.json"

# Caps on what is extracted from info/test/ and info/recipe/meta.yaml. A
# conda-build package copies the recipe's test source files there, which
# are usually kilobytes.
MAX_TEST_FILES_BYTES = 64 * 1024 * 1024
MAX_TEST_FILES = 10_000
MAX_META_YAML_BYTES = 1024 * 1024

# A dotted Python module path, as conda-build accepts in test.imports.
MODULE_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

_UNREADABLE_ARCHIVE_ERRORS = (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile, zstd.ZstdError)
# Failures that show the package or its dependencies cannot be installed,
# as opposed to failures to read the quarantine channel or the cache.
_INSTALL_FAILURES = (InstallerError, LinkError, TransactionError, ExtractError)
_CHANNEL_FAILURES = (FetchRepoDataError, GatewayError, IoError, CacheDirError)


class TestFilesError(Exception):
    """The test files of a package cannot be extracted safely."""


@dataclass
class PackageTests:
    """The tests found in one package's `info/` folder, extracted under `test_dir`."""

    test_dir: Path
    scripts: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)
    requirements: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.scripts or self.commands or self.imports)


@dataclass
class _TestRun:
    results: list[CommandResult] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def failed(self) -> CommandResult | None:
        return next((result for result in self.results if not result.passed), None)


class InstallTestCheck:
    """Install the package from its quarantine channel and run its packaged tests."""

    name = "install"
    version = "1"

    def __init__(
        self,
        quarantine_url: Callable[[CheckContext], str | None],
        *,
        timeout_seconds: float = 300,
        memory_mb: int = 2048,
        isolate_network: bool = True,
        host_subdirs: Sequence[str] = ("linux-64", "noarch"),
        work_root: Path | None = None,
    ):
        platforms = [subdir for subdir in host_subdirs if subdir != "noarch"]
        if len(platforms) != 1:
            raise ValueError(
                f"host_subdirs {list(host_subdirs)!r} must name exactly one platform besides noarch, "
                "such as ('linux-64', 'noarch')"
            )
        self.quarantine_url = quarantine_url
        self.limits = SandboxLimits(timeout_seconds=timeout_seconds, memory_mb=memory_mb)
        self.isolate_network = isolate_network
        self.host_subdirs = tuple(host_subdirs)
        self.host_platform = platforms[0]
        self.work_root = Path(work_root) if work_root is not None else None
        self._virtual_packages: list[rattler.VirtualPackage] | None = None

    def run(self, context: CheckContext) -> CheckResult:
        if context.subdir not in self.host_subdirs:
            reason = f"{context.subdir} packages cannot be installed on this {self.host_platform} host"
            return self._skipped(context, reason)

        channel_url = self.quarantine_url(context)
        if channel_url is None:
            return CheckResult(
                CheckOutcome.ERROR,
                "no quarantine channel for this file; build one with build_quarantine_channel first",
                {"filename": context.filename},
            )

        if self.work_root is not None:
            self.work_root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="install-check-", dir=self.work_root))
        try:
            return self._run_in(work, context, channel_url.rstrip("/"))
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _run_in(self, work: Path, context: CheckContext, channel_url: str) -> CheckResult:
        evidence: dict[str, Any] = {"channel": channel_url, "spec": exact_spec(context.record)}
        try:
            tests = extract_package_tests(context.path, work / "test-files", filename=context.filename)
        except (TestFilesError, *_UNREADABLE_ARCHIVE_ERRORS) as exc:
            return CheckResult(CheckOutcome.ERROR, f"cannot read the package's test files: {exc}", evidence)
        evidence["test_requirements"] = tests.requirements
        evidence["notes"] = tests.notes

        try:
            spec = rattler.MatchSpec(evidence["spec"], strict=True)
        except InvalidMatchSpecError as exc:
            summary = f"the record's name, version and build do not form a valid spec: {exc}"
            return CheckResult(CheckOutcome.FAIL, summary, evidence)
        test_specs = _parse_requirements(tests)

        host_virtual = [package.into_generic() for package in self._host_virtual_packages()]
        evidence["virtual_packages"] = [str(package) for package in host_virtual]
        missing = _missing_virtual_packages(context.record, host_virtual, self.host_platform)
        if missing:
            reason = f"it needs {', '.join(missing)}, which this host does not provide"
            return self._skipped(context, reason, evidence)

        try:
            records, tests_installable = self._install(work, context, channel_url, spec, test_specs)
        except (SolverError, *_INSTALL_FAILURES) as exc:
            evidence["error"] = str(exc)
            stage = "solve" if isinstance(exc, SolverError) else "install"
            summary = f"{stage} failed for {evidence['spec']}: {_short_message(exc)}"
            return CheckResult(CheckOutcome.FAIL, summary, evidence)
        except _CHANNEL_FAILURES as exc:
            evidence["error"] = str(exc)
            summary = f"cannot use the quarantine channel {channel_url}: {_short_message(exc)}"
            return CheckResult(CheckOutcome.ERROR, summary, evidence)
        evidence["solved"] = [_describe(record) for record in records]

        sandbox = Sandbox(
            work / "prefix",
            _fresh_dir(work / "sandbox"),
            limits=self.limits,
            isolate_network=self.isolate_network,
            extra_env=_package_env(context.record),
        )
        evidence["isolation"] = sandbox.isolation
        run = _run_tests(sandbox, tests, tests_installable)
        evidence["tests"] = [result.evidence() for result in run.results]
        evidence["skipped_tests"] = run.skipped
        return _result(records, tests, run, evidence)

    def _install(
        self,
        work: Path,
        context: CheckContext,
        channel_url: str,
        spec: rattler.MatchSpec,
        test_specs: list[rattler.MatchSpec],
    ) -> tuple[list[rattler.RepoDataRecord], bool]:
        """Solve and install the package, with its test requirements when they can be solved.

        Returns the installed records and whether the test requirements are among them.
        """
        target = _target_record(work, context, channel_url)
        if test_specs:
            try:
                records = asyncio.run(
                    self._solve_and_install(work, channel_url, target, [spec, *test_specs])
                )
                return records, True
            except SolverError as exc:
                logger.info(
                    "%s: test requirements cannot be solved, installing without them: %s",
                    context.filename,
                    exc,
                )
        records = asyncio.run(self._solve_and_install(work, channel_url, target, [spec]))
        return records, not test_specs

    async def _solve_and_install(
        self,
        work: Path,
        channel_url: str,
        target: rattler.RepoDataRecord,
        specs: list[rattler.MatchSpec],
    ) -> list[rattler.RepoDataRecord]:
        # Pinning the exact record keeps the solver on this file. Otherwise it
        # would take the .conda twin of a .tar.bz2 under test.
        gateway = rattler.Gateway(cache_dir=work / "repodata-cache")
        records = await rattler.solve(
            sources=[channel_url],
            specs=specs,
            gateway=gateway,
            platforms=list(self.host_subdirs),
            pinned_packages=[target],
            virtual_packages=self._host_virtual_packages(),
            channel_relations="disabled",
        )
        prefix = _fresh_dir(work / "prefix")
        await rattler.install(
            records,
            target_prefix=prefix,
            cache_dir=work / "pkgs",
            platform=rattler.Subdir(self.host_platform),
            show_progress=False,
        )
        return records

    def _host_virtual_packages(self) -> list[rattler.VirtualPackage]:
        # The tests run on this host, so its own virtual packages (__glibc,
        # __linux, ...) are the honest ones to solve with.
        if self._virtual_packages is None:
            try:
                self._virtual_packages = rattler.VirtualPackage.detect()
            except DetectVirtualPackageError as exc:
                logger.warning(
                    "cannot detect this host's virtual packages, solving without them: %s", exc
                )
                self._virtual_packages = []
        return self._virtual_packages

    def _skipped(
        self, context: CheckContext, reason: str, evidence: dict[str, Any] | None = None
    ) -> CheckResult:
        logger.info("%s: install check skipped: %s", context.filename, reason)
        details = {**(evidence or {}), "skipped": True, "reason": reason}
        details["host_subdirs"] = list(self.host_subdirs)
        return CheckResult(CheckOutcome.PASS, f"skipped: {reason}", details)


def exact_spec(record: Any) -> str:
    """Return the strict match spec `name ==version build` of a repodata record."""
    return f"{record['name']} =={record['version']} {record['build']}"


def extract_package_tests(package: Path, destination: Path, *, filename: str | None = None) -> PackageTests:
    """Extract `info/test/` and `info/recipe/meta.yaml` into `destination` and list the tests.

    `filename` gives the archive format when the path has none, as blobs
    in the store are named by hash. Only regular files are written, each
    at a checked path inside `destination`. Links and other special members are left out and named
    in `notes`. Raises TestFilesError when the files exceed the size or
    count caps or a member name is unsafe.
    """
    destination.mkdir(parents=True)
    notes = _extract_members(package, filename or package.name, destination)
    tests = PackageTests(test_dir=destination / "info" / "test", notes=notes)
    tests.test_dir.mkdir(parents=True, exist_ok=True)

    for script in (RUN_TEST_SH, RUN_TEST_PY):
        if (tests.test_dir / script).is_file():
            tests.scripts.append(script)
    tests.requirements = _read_json_requirements(tests.test_dir / TEST_REQUIREMENTS_JSON, notes)

    # conda-build writes test.commands into run_test.sh and test.imports into
    # run_test.py, so meta.yaml is read only for packages that have neither.
    # NOTE: rattler-build's info/tests/ layout is not read, so such a package
    # reports "no tests in the package".
    if not tests.scripts:
        _add_meta_yaml_tests(destination / RECIPE_META, tests)
    return tests


def _extract_members(package: Path, filename: str, destination: Path) -> list[str]:
    notes: list[str] = []
    total_bytes = 0
    count = 0
    for tar, member in _info_members(package, filename):
        relative = _safe_member_path(member.name)
        if relative is None:
            continue
        if member.isdir():
            continue
        if not member.isfile():
            notes.append(f"{member.name} is not a regular file and was not extracted")
            continue

        count += 1
        total_bytes += member.size
        if count > MAX_TEST_FILES or total_bytes > MAX_TEST_FILES_BYTES:
            raise TestFilesError(
                f"{filename}: test files exceed {MAX_TEST_FILES} files or "
                f"{MAX_TEST_FILES_BYTES} bytes; raise the caps in {__name__} to test this package"
            )
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        if source is None:
            continue
        with source, target.open("wb") as stream:
            shutil.copyfileobj(source, stream)
    return notes


def _info_members(package: Path, filename: str) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    with package.open("rb") as blob, closing(stream_conda_component(filename, blob, "info")) as members:
        yield from members


def _safe_member_path(name: str) -> str | None:
    """Return the member's relative path when it is a test file or meta.yaml, else None.

    Raises TestFilesError for a test member whose name could reach outside
    the destination.
    """
    if not (name.startswith(TEST_PREFIX) or name == RECIPE_META):
        return None

    parts = name.split("/")
    unsafe_characters = "\\" in name or "\x00" in name
    if name.startswith("/") or unsafe_characters or any(part in ("..", ".") for part in parts):
        raise TestFilesError(f"unsafe member name {name!r} in the package's info/ folder")
    return posixpath.normpath(name)


def _read_json_requirements(path: Path, notes: list[str]) -> list[str]:
    if not path.is_file():
        return []
    try:
        value = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        notes.append(f"{TEST_REQUIREMENTS_JSON} is not valid JSON and was ignored: {exc}")
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        notes.append(f"{TEST_REQUIREMENTS_JSON} is not a list of strings and was ignored")
        return []
    return value


def _add_meta_yaml_tests(path: Path, tests: PackageTests) -> None:
    section = _read_meta_yaml_test_section(path, tests.notes)
    fields = (("commands", tests.commands), ("imports", tests.imports), ("requires", tests.requirements))
    for key, target in fields:
        values = section.get(key) or []
        if not isinstance(values, list) or not all(isinstance(item, str) for item in values):
            tests.notes.append(f"meta.yaml test.{key} is not a list of strings and was ignored")
            continue
        target.extend(values)


def _read_meta_yaml_test_section(path: Path, notes: list[str]) -> dict[str, Any]:
    if not path.is_file():
        return {}
    if path.stat().st_size > MAX_META_YAML_BYTES:
        notes.append(f"meta.yaml is larger than {MAX_META_YAML_BYTES} bytes and was not read")
        return {}
    try:
        document = YAML(typ="safe").load(path.read_text())
    except (YAMLError, UnicodeDecodeError) as exc:
        notes.append(f"meta.yaml cannot be parsed and was ignored: {exc}")
        return {}
    section = document.get("test") if isinstance(document, dict) else None
    return section if isinstance(section, dict) else {}


def _missing_virtual_packages(
    record: Any, host_virtual: list[rattler.GenericVirtualPackage], subdir: str
) -> list[str]:
    """Return the record's virtual-package dependencies (`__cuda`, `__glibc >=2.40`) this host lacks.

    Only direct dependencies are checked. A dependency of a dependency that
    needs a missing virtual package still ends as a solve failure.
    """
    available = [
        rattler.PackageRecord(package.name, str(package.version), package.build_string, 0, subdir)
        for package in host_virtual
    ]
    missing = []
    for dependency in record.get("depends") or []:
        if not isinstance(dependency, str) or not dependency.startswith("__"):
            continue
        try:
            spec = rattler.MatchSpec(dependency)
        except InvalidMatchSpecError:
            continue  # left for the solver, which reports it with its reason
        if not any(spec.matches(package) for package in available):
            missing.append(dependency)
    return missing


def _parse_requirements(tests: PackageTests) -> list[rattler.MatchSpec]:
    specs = []
    for requirement in tests.requirements:
        try:
            specs.append(rattler.MatchSpec(requirement))
        except InvalidMatchSpecError as exc:
            tests.notes.append(
                f"test requirement {requirement!r} is not a valid match spec and was ignored: {exc}"
            )
    return specs


def _target_record(work: Path, context: CheckContext, channel_url: str) -> rattler.RepoDataRecord:
    """Turn the upstream record into a py-rattler record whose URL is this file in the channel."""
    key = "packages.conda" if context.filename.endswith(".conda") else "packages"
    repodata = {"info": {"subdir": context.subdir}, key: {context.filename: dict(context.record)}}
    path = work / "target-repodata.json"
    path.write_text(json.dumps(repodata))
    repodata_records = rattler.RepoData.from_path(path).into_repo_data(rattler.Channel(channel_url + "/"))
    return repodata_records[0]


def _run_tests(sandbox: Sandbox, tests: PackageTests, installable: bool) -> _TestRun:
    run = _TestRun()
    planned = _planned_tests(sandbox.prefix, tests)
    if not installable:
        reason = f"test requirements {tests.requirements} cannot be solved from the quarantine channel"
        run.skipped = [{"name": name, "reason": reason} for name, _ in planned]
        return run

    for name, argv in planned:
        if argv is None:
            reason = "needs python, which is not installed in the prefix"
            run.skipped.append({"name": name, "reason": reason})
        elif run.failed is not None:
            run.skipped.append({"name": name, "reason": "not run because an earlier test failed"})
        else:
            run.results.append(sandbox.run(name, argv, cwd=tests.test_dir))
    return run


def _planned_tests(prefix: Path, tests: PackageTests) -> list[tuple[str, list[str] | None]]:
    """List (name, argv) for each test. argv is None when the test needs python and the prefix has none."""
    python = prefix / "bin" / "python"
    has_python = python.is_file()
    planned: list[tuple[str, list[str] | None]] = []
    for script in tests.scripts:
        if script == RUN_TEST_SH:
            planned.append((script, ["bash", "-x", "-e", script]))
        else:
            planned.append((script, [str(python), "-s", script] if has_python else None))
    for command in tests.commands:
        planned.append((f"command: {command}", ["bash", "-x", "-e", "-c", command]))
    for module in tests.imports:
        if not MODULE_PATTERN.match(module):
            tests.notes.append(f"import {module!r} is not a Python module path and was not tested")
            continue
        argv = [str(python), "-s", "-c", f"import {module}"] if has_python else None
        planned.append((f"import {module}", argv))
    return planned


def _result(
    records: list[rattler.RepoDataRecord],
    tests: PackageTests,
    run: _TestRun,
    evidence: dict[str, Any],
) -> CheckResult:
    installed = f"installed {len(records)} packages"
    failed = run.failed
    if failed is not None:
        if failed.timed_out:
            failure = f"timed out after {failed.duration_seconds:.0f} s"
        else:
            failure = f"exited with {failed.exit_code}"
        return CheckResult(CheckOutcome.FAIL, f"{installed}; test {failed.name} {failure}", evidence)

    if run.skipped:
        reasons = "; ".join(sorted({f"{item['name']}: {item['reason']}" for item in run.skipped}))
        return CheckResult(CheckOutcome.WARN, f"{installed}; tests not run: {reasons}", evidence)
    if tests.empty:
        return CheckResult(CheckOutcome.PASS, f"{installed}; no tests in the package", evidence)
    return CheckResult(
        CheckOutcome.PASS,
        f"{installed}; {len(run.results)} tests passed (network isolation: {evidence['isolation']})",
        evidence,
    )


def _describe(record: rattler.RepoDataRecord) -> dict[str, str]:
    return {
        "name": record.name.normalized,
        "version": str(record.version),
        "build": str(record.build),
        "file_name": record.file_name,
    }


def _package_env(record: Any) -> dict[str, str]:
    # conda-build sets these for its test scripts, and some scripts use them.
    return {
        "PKG_NAME": str(record.get("name", "")),
        "PKG_VERSION": str(record.get("version", "")),
        "PKG_BUILD_STRING": str(record.get("build", "")),
        "PKG_BUILDNUM": str(record.get("build_number", "")),
    }


def _fresh_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=False)
    return path


def _short_message(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:4]) if lines else type(exc).__name__
