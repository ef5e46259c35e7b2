"""Channel consistency: every package in a channel can be installed from that channel alone.

Run before publishing a channel. Two passes:

1. A static pass checks each dependency of each record: some record of
   that name in the same subdir or in noarch (or a virtual package) must
   match the spec. It is cheap and names the missing dependency and spec.
2. A solve pass runs the py-rattler solver on `name ==version build` of
   each record that passed, which also finds conflicts between dependencies.
   Records with distinct names are solved in batches. A batch that fails is
   split in halves until the failing records are alone. `max_solves` caps
   the solver calls, and records left over are listed in
   `ConsistencyReport.unsolved` instead of being guessed.

A noarch record is consistent when it can be installed on at least one of
the platform subdirs checked, or on noarch alone when no platform subdir is
given. Virtual packages such as `__glibc` and `__unix` are assumed present
(see `default_virtual_packages`), because the channel cannot provide them.

NOTE: the solver treats a `.conda` and a `.tar.bz2` of the same
name-version-build as one package, so the solve pass checks only one of the
two. The static pass still reads the dependencies of both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import rattler
from rattler import PackageFormatSelection
from rattler.exceptions import InvalidMatchSpecError, SolverError

logger = logging.getLogger(__name__)

DEFAULT_MAX_SOLVES = 500
DEFAULT_BATCH_SIZE = 50
# Reasons and listings stay short enough to show on the dashboard.
MAX_LISTED_VERSIONS = 10

# Recent versions as of 2025, so packages built for current systems pass.
# They stand for what the channel's users run, which this module cannot
# know. Pass `virtual_packages` to use other values.
_VIRTUAL_PACKAGES_BY_FAMILY: Mapping[str, Sequence[tuple[str, str]]] = {
    "linux": (("__unix", "0"), ("__linux", "6.8"), ("__glibc", "2.39"), ("__cuda", "12.8")),
    "osx": (("__unix", "0"), ("__osx", "15.0")),
    "win": (("__win", "0"), ("__cuda", "12.8")),
}
# The microarchitecture family that `__archspec` reports, by the arch part of a subdir.
_ARCHSPEC_BY_ARCH = {
    "64": "x86_64",
    "32": "x86",
    "arm64": "arm64",
    "aarch64": "aarch64",
    "ppc64le": "ppc64le",
}

RecordKey = tuple[str, str, str]


@dataclass(frozen=True)
class Problem:
    """One reason why a record cannot be installed from the channel.

    `dependency` is the dependency spec that nothing matches, or None when
    every dependency has a match but the solver finds no consistent set,
    and `reason` then contains the solver's explanation.
    """

    subdir: str
    filename: str
    dependency: str | None
    reason: str


@dataclass
class ConsistencyReport:
    """Findings of `check_channel_consistency` on one channel."""

    channel: str
    subdirs: list[str]
    records: int = 0
    solves: int = 0
    problems: list[Problem] = field(default_factory=list)
    unsolved: list[str] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        """True when no problem was found. Records in `unsolved` had only the static pass."""
        return not self.problems


@dataclass
class _Subdir:
    name: str
    sparse: rattler.SparseRepoData
    records: list[rattler.RepoDataRecord]
    virtual: list[rattler.GenericVirtualPackage]
    by_name: dict[str, list[rattler.PackageRecord]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        grouped: dict[str, list[rattler.PackageRecord]] = defaultdict(list)
        for record in self.records:
            grouped[record.name.normalized].append(record)
        for package in self.virtual:
            grouped[package.name.normalized].append(_virtual_record(package, self.name))
        self.by_name = dict(grouped)


def default_virtual_packages(subdir: str) -> list[rattler.GenericVirtualPackage]:
    """Return the virtual packages assumed present on `subdir`.

    noarch gets those of linux and win together, so a noarch package
    that depends on `__unix` or on `__win` passes.
    """
    platform, _, arch = subdir.partition("-")
    families = ("linux", "win") if subdir == "noarch" else (platform,)
    pairs = {
        name: version
        for family in families
        for name, version in _VIRTUAL_PACKAGES_BY_FAMILY.get(family, ())
    }
    packages = [_virtual(name, version, "0") for name, version in sorted(pairs.items())]
    if arch in _ARCHSPEC_BY_ARCH:
        packages.append(_virtual("__archspec", "1", _ARCHSPEC_BY_ARCH[arch]))
    return packages


def check_channel_consistency(
    channel: Path | str,
    subdirs: Iterable[str],
    *,
    virtual_packages: Sequence[rattler.GenericVirtualPackage] | None = None,
    max_solves: int = DEFAULT_MAX_SOLVES,
    batch_size: int = DEFAULT_BATCH_SIZE,
    cache_dir: Path | None = None,
) -> ConsistencyReport:
    """Check that every record of `channel` in `subdirs` (and noarch) can be installed from it.

    `channel` is a channel folder or a URL (file://, http://, https://).
    `virtual_packages` replaces `default_virtual_packages` for every
    subdir. Repodata is cached in `cache_dir`, or in a temporary folder
    that is removed afterwards. Raises rattler's FetchRepoDataError when a
    subdir has no repodata.json. Must not be called from a running event
    loop. Await `check_channel_consistency_async` there instead.
    """
    return asyncio.run(
        check_channel_consistency_async(
            channel,
            subdirs,
            virtual_packages=virtual_packages,
            max_solves=max_solves,
            batch_size=batch_size,
            cache_dir=cache_dir,
        )
    )


async def check_channel_consistency_async(
    channel: Path | str,
    subdirs: Iterable[str],
    *,
    virtual_packages: Sequence[rattler.GenericVirtualPackage] | None = None,
    max_solves: int = DEFAULT_MAX_SOLVES,
    batch_size: int = DEFAULT_BATCH_SIZE,
    cache_dir: Path | None = None,
) -> ConsistencyReport:
    """Coroutine form of `check_channel_consistency`, with the same arguments."""
    if max_solves < 0 or batch_size < 1:
        raise ValueError(
            f"max_solves must be >= 0 and batch_size >= 1, got {max_solves} and {batch_size}"
        )

    url = channel_url(channel)
    names = sorted(set(subdirs) | {"noarch"})
    report = ConsistencyReport(channel=url, subdirs=names)

    with _cache_folder(cache_dir) as cache:
        loaded = await _load(url, names, virtual_packages, cache)
        report.records = sum(len(subdir.records) for subdir in loaded.values())

        passed = _static_pass(loaded, report)
        await _solve_pass(loaded, passed, report, max_solves, batch_size)

    logger.info(
        "channel %s: %d records, %d problems, %d solves, %d left unsolved",
        url,
        report.records,
        len(report.problems),
        report.solves,
        len(report.unsolved),
    )
    return report


@contextlib.contextmanager
def _cache_folder(cache_dir: Path | None) -> Iterator[Path]:
    if cache_dir is not None:
        yield Path(cache_dir)
        return
    with tempfile.TemporaryDirectory(prefix="consistency-") as temporary:
        yield Path(temporary)


def channel_url(channel: Path | str) -> str:
    """Return the URL of a channel folder, or the URL itself without a trailing slash."""
    if isinstance(channel, str) and "://" in channel:
        return channel.rstrip("/")
    return Path(channel).resolve().as_uri()


async def _load(
    url: str,
    names: list[str],
    virtual_packages: Sequence[rattler.GenericVirtualPackage] | None,
    cache_dir: Path,
) -> dict[str, _Subdir]:
    sparse_list = await rattler.fetch_repo_data(
        channels=[rattler.Channel(url + "/")],
        platforms=[rattler.Subdir(name) for name in names],
        cache_path=cache_dir,
        callback=None,
    )
    loaded = {}
    for sparse in sparse_list:
        if virtual_packages is None:
            virtual = default_virtual_packages(sparse.subdir)
        else:
            virtual = list(virtual_packages)
        records = sparse.load_all_records(PackageFormatSelection.BOTH)
        loaded[sparse.subdir] = _Subdir(sparse.subdir, sparse, records, virtual)
    return loaded


def _platforms_for(subdir: str, loaded: Mapping[str, _Subdir]) -> list[str]:
    """Return the platform subdirs a record of `subdir` may be installed on."""
    if subdir != "noarch":
        return [subdir]
    platforms = [name for name in loaded if name != "noarch"]
    return platforms or ["noarch"]


def _static_pass(
    loaded: Mapping[str, _Subdir], report: ConsistencyReport
) -> dict[str, list[rattler.RepoDataRecord]]:
    """Add a problem for each dependency that nothing matches, and return the other records by subdir."""
    passed: dict[str, list[rattler.RepoDataRecord]] = defaultdict(list)
    for subdir in loaded.values():
        for record in subdir.records:
            problems = []
            for dependency in record.depends:
                problem = _match_dependency(record, dependency, subdir.name, loaded)
                if problem is not None:
                    problems.append(problem)

            report.problems.extend(problems)
            if not problems:
                passed[subdir.name].append(record)
    return passed


def _match_dependency(
    record: rattler.RepoDataRecord, dependency: str, subdir: str, loaded: Mapping[str, _Subdir]
) -> Problem | None:
    try:
        spec = rattler.MatchSpec(dependency)
    except InvalidMatchSpecError as exc:
        return Problem(subdir, record.file_name, dependency, f"invalid dependency spec: {exc}")

    name = spec.name.normalized
    candidates: list[rattler.PackageRecord] = []
    places = []
    for platform in _platforms_for(subdir, loaded):
        for pool in _pools(loaded, platform):
            places.append(pool.name)
            candidates.extend(pool.by_name.get(name, ()))

    if any(spec.matches(candidate) for candidate in candidates):
        return None

    searched = " or ".join(dict.fromkeys(places))
    if not candidates:
        return Problem(subdir, record.file_name, dependency, f"no package named {name} in {searched}")
    versions = sorted({str(candidate.version) for candidate in candidates})
    listed = ", ".join(versions[:MAX_LISTED_VERSIONS])
    if len(versions) > MAX_LISTED_VERSIONS:
        listed += " ..."
    reason = f"no {name} record in {searched} matches {dependency!r}; found {listed}"
    return Problem(subdir, record.file_name, dependency, reason)


def _pools(loaded: Mapping[str, _Subdir], platform: str) -> list[_Subdir]:
    """Return the subdirs a solve for `platform` draws records from."""
    if platform == "noarch":
        return [loaded["noarch"]]
    return [loaded[platform], loaded["noarch"]]


async def _solve_pass(
    loaded: Mapping[str, _Subdir],
    passed: Mapping[str, list[rattler.RepoDataRecord]],
    report: ConsistencyReport,
    max_solves: int,
    batch_size: int,
) -> None:
    budget = _SolveBudget(max_solves)
    for subdir, records in sorted(passed.items()):
        filenames = _filenames_by_key(records)
        failures: dict[RecordKey, str] = dict.fromkeys(filenames, "")
        for platform in _platforms_for(subdir, loaded):
            if not failures:
                break
            keys = list(failures)
            failures = await _solve_keys(loaded, platform, keys, batch_size, budget)

        report.solves = budget.used
        for key, reason in failures.items():
            for filename in filenames[key]:
                if reason == _UNSOLVED:
                    report.unsolved.append(f"{subdir}/{filename}")
                else:
                    report.problems.append(Problem(subdir, filename, None, reason))


# Marks a record that was not solved because the budget ran out.
_UNSOLVED = "not solved: max_solves reached"


@dataclass
class _SolveBudget:
    limit: int
    used: int = 0

    def take(self) -> bool:
        if self.used >= self.limit:
            return False
        self.used += 1
        return True


async def _solve_keys(
    loaded: Mapping[str, _Subdir],
    platform: str,
    keys: list[RecordKey],
    batch_size: int,
    budget: _SolveBudget,
) -> dict[RecordKey, str]:
    """Solve `keys` on `platform` and return the keys that failed with the solver's reason."""
    failures: dict[RecordKey, str] = {}
    for batch in _batches(keys, batch_size):
        failures.update(await _solve_batch(loaded, platform, batch, budget))
    return failures


async def _solve_batch(
    loaded: Mapping[str, _Subdir], platform: str, batch: list[RecordKey], budget: _SolveBudget
) -> dict[RecordKey, str]:
    if not budget.take():
        return dict.fromkeys(batch, _UNSOLVED)

    error = await _solve(loaded, platform, batch)
    if error is None:
        return {}
    if len(batch) == 1:
        return {batch[0]: error}

    # One failing record sinks the whole batch, so halve it to find which.
    middle = len(batch) // 2
    failures = await _solve_batch(loaded, platform, batch[:middle], budget)
    failures.update(await _solve_batch(loaded, platform, batch[middle:], budget))
    return failures


async def _solve(loaded: Mapping[str, _Subdir], platform: str, batch: list[RecordKey]) -> str | None:
    specs = [
        rattler.MatchSpec(f"{name} =={version} {build}", strict=True) for name, version, build in batch
    ]
    try:
        await rattler.solve_with_sparse_repodata(
            specs=specs,
            sparse_repodata=[pool.sparse for pool in _pools(loaded, platform)],
            virtual_packages=loaded[platform].virtual,
            package_format_selection=PackageFormatSelection.BOTH,
        )
    except SolverError as exc:
        return str(exc).strip()
    return None


def _batches(keys: list[RecordKey], batch_size: int) -> list[list[RecordKey]]:
    """Split keys into batches of distinct package names, since one solve installs one version of each.

    The n-th version of every name goes into round n, and each round is
    cut into batches of `batch_size`.
    """
    rounds: list[list[RecordKey]] = []
    seen: dict[str, int] = defaultdict(int)
    for key in keys:
        position = seen[key[0]]
        seen[key[0]] += 1
        if position == len(rounds):
            rounds.append([])
        rounds[position].append(key)
    return [
        names[start : start + batch_size]
        for names in rounds
        for start in range(0, len(names), batch_size)
    ]


def _filenames_by_key(records: Iterable[rattler.RepoDataRecord]) -> dict[RecordKey, list[str]]:
    filenames: dict[RecordKey, list[str]] = defaultdict(list)
    for record in records:
        filenames[(record.name.normalized, str(record.version), str(record.build))].append(record.file_name)
    return dict(filenames)


def _virtual(name: str, version: str, build: str) -> rattler.GenericVirtualPackage:
    return rattler.GenericVirtualPackage(
        rattler.PackageName(name), rattler.Version(version), rattler.BuildString(build)
    )


def _virtual_record(package: rattler.GenericVirtualPackage, subdir: str) -> rattler.PackageRecord:
    return rattler.PackageRecord(package.name, str(package.version), package.build_string, 0, subdir)
