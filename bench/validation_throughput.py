"""Validation throughput and peak memory against `sha256sum` on the same file.

Builds one conda package with an incompressible payload of --size-mb MiB,
then times, each in a fresh process so memory is measured per step:

1. `sha256sum` on the package file (the baseline);
2. the integrity check alone;
3. every per-file check except the install test, through `run_checks`, where the
   content checks (archive, metadata, paths, scripts, malware) share one streaming pass.

Run: .venv/bin/python bench/validation_throughput.py --size-mb 1024 --format conda
Results go to stdout as a Markdown table; docs/benchmarks.md keeps the record.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = ("integrity", "pipeline")


def build(folder: Path, size_mb: int, fmt: str) -> Path:
    """Build the package in a child process, so its memory does not count for the checks."""
    code = f"""
import os, sys
from pathlib import Path
from mirror.demo.packages import PackageSpec, build_package
payload = {{f"share/blob{{i:02d}}.bin": os.urandom({size_mb} * 1024 * 1024 // 16) for i in range(16)}}
spec = PackageSpec("bench", "1.0", subdir="noarch", files=payload)
print(build_package(spec, Path({str(folder)!r}), {fmt!r}))
"""
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return Path(output.strip().splitlines()[-1])


def run_step(step: str, package: Path, record: dict) -> dict:
    """Run one step in a child process and return its seconds and peak RSS."""
    command = [sys.executable, __file__, "--child", step, "--package", str(package), "--record", json.dumps(record)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def child(step: str, package: Path, record: dict) -> None:
    from mirror.validate.checks.integrity import IntegrityCheck
    from mirror.validate.pipeline import run_checks
    from mirror.validate.result import CheckContext

    context = CheckContext(path=package, filename=package.name, subdir="noarch", record=record)
    if step == "integrity":
        checks = [IntegrityCheck()]
    else:
        checks = pipeline_checks()

    started = time.perf_counter()
    results = run_checks(context, checks)
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcomes = {check.name: result.outcome.value for check, result in results}
    print(json.dumps({"seconds": seconds, "peak_mib": peak_kib / 1024, "outcomes": outcomes}))


def pipeline_checks() -> list:
    from mirror.advisories.matching import AdvisoryIndex
    from mirror.validate.checks.archive import ArchiveCheck
    from mirror.validate.checks.integrity import IntegrityCheck
    from mirror.validate.checks.licence import LicenceCheck
    from mirror.validate.checks.malware import MalwareCheck
    from mirror.validate.checks.metadata import MetadataCheck
    from mirror.validate.checks.paths import PathsCheck
    from mirror.validate.checks.scripts import ScriptsCheck
    from mirror.validate.checks.vulnerabilities import VulnerabilitiesCheck

    return [
        IntegrityCheck(), ArchiveCheck(), MetadataCheck(), PathsCheck(), ScriptsCheck(),
        LicenceCheck(), VulnerabilitiesCheck(AdvisoryIndex([], fingerprint="empty")), MalwareCheck(None),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256, help="payload size in MiB")
    parser.add_argument("--format", choices=("conda", "tar.bz2"), default="conda")
    parser.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--package", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--record", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        child(args.child, args.package, json.loads(args.record))
        return

    from mirror.demo.channel import record_for

    with tempfile.TemporaryDirectory(prefix="mirror-bench-") as folder:
        package = build(Path(folder), args.size_mb, args.format)
        size_mb = package.stat().st_size / 1024**2
        record = record_for(package)

        started = time.perf_counter()
        subprocess.run(["sha256sum", str(package)], check=True, capture_output=True)
        baseline = time.perf_counter() - started

        rows = [("sha256sum", baseline, None, "")]
        for step in STEPS:
            measured = run_step(step, package, record)
            failing = {k: v for k, v in measured["outcomes"].items() if v != "pass"}
            rows.append((step, measured["seconds"], measured["peak_mib"], json.dumps(failing) if failing else "all pass"))

    print(f"package: {args.format}, {size_mb:.0f} MiB on disk; cpu: {os.cpu_count()} cores\n")
    print("| step | seconds | MiB/s | share of sha256sum speed | peak RSS MiB | outcomes |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for name, seconds, peak, outcomes in rows:
        ratio = baseline / seconds
        peak_text = f"{peak:.0f}" if peak is not None else "-"
        print(f"| {name} | {seconds:.2f} | {size_mb / seconds:.0f} | {ratio:.0%} | {peak_text} | {outcomes} |")


if __name__ == "__main__":
    main()
