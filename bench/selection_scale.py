"""Selection on conda-forge-sized repodata: time and peak memory.

Writes a synthetic linux-64 repodata.json with --records records (default
466,000, about the size of conda-forge's linux-64 index), then, in a fresh
process, opens it with SubdirIndex, selects a whitelist with dependency
closure, and extracts the raw records of the selection.

Run: .venv/bin/python bench/selection_scale.py --records 466000
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_repodata(path: Path, records: int) -> None:
    """Write records for ~9,000 names with ~50 builds each, and dependencies between them."""
    rng = random.Random(1)
    names = [f"pkg{i:05d}" for i in range(max(1, records // 50))]
    with path.open("w") as stream:
        stream.write('{"info": {"subdir": "linux-64"}, "packages.conda": {')
        for i in range(records):
            name = names[i % len(names)]
            version = f"{i // len(names) // 5}.{i // len(names) % 5}.0"
            build = f"h{i:07x}_0"
            depends = [f"{rng.choice(names)} >=0.1" for _ in range(rng.randint(0, 4))] + ["python >=3.9"]
            record = {
                "name": name, "version": version, "build": build, "build_number": 0, "depends": depends,
                "license": "MIT", "md5": "0" * 32, "sha256": "1" * 64, "size": 12345, "subdir": "linux-64",
                "timestamp": 1700000000000,
            }
            stream.write(("," if i else "") + json.dumps(f"{name}-{version}-{build}.conda") + ":" + json.dumps(record))
        stream.write('}, "packages": {}, "removed": [], "repodata_version": 1}')


SCENARIOS = {
    # Two names, no closure: the usual shape of a curated whitelist.
    "narrow": {"packages": ["pkg00001", "pkg00002 >=1"], "dependencies": False},
    # The random dependency graph reaches almost every name: the worst case.
    "closure": {"packages": ["pkg00001", "pkg00002 >=1"], "dependencies": True},
}


def child(path: Path, scenario: str) -> None:
    from mirror.config.schema import WhitelistEntry
    from mirror.selection import SubdirIndex, select_entry

    started = time.perf_counter()
    index = SubdirIndex("bench", "linux-64", path)
    opened = time.perf_counter() - started

    entry = WhitelistEntry(upstream="bench", channel="main", **SCENARIOS[scenario])
    started = time.perf_counter()
    selection = select_entry(entry, ["linux-64"], {"linux-64": index})
    selected = time.perf_counter() - started

    started = time.perf_counter()
    raw = index.raw_records([c.filename for c in selection.chosen.values()])
    extracted = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"open": opened, "select": selected, "raw": extracted, "chosen": len(selection.chosen),
                      "raw_found": len(raw), "peak_mib": peak_mib}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=466_000)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scenario", choices=SCENARIOS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.scenario)
        return

    with tempfile.TemporaryDirectory(prefix="mirror-bench-") as folder:
        path = Path(folder) / "repodata.json"
        write_repodata(path, args.records)
        size_mib = path.stat().st_size / 1024**2
        results = {}
        for scenario in SCENARIOS:
            command = [sys.executable, __file__, "--child", str(path), "--scenario", scenario]
            output = subprocess.run(command, check=True, capture_output=True, text=True)
            results[scenario] = json.loads(output.stdout.strip().splitlines()[-1])

    print(f"repodata: {args.records} records, {size_mib:.0f} MiB\n")
    print("| scenario | files chosen | open s | select s | raw records s | peak RSS MiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for scenario, r in results.items():
        print(f"| {scenario} | {r['chosen']} | {r['open']:.2f} | {r['select']:.2f} | {r['raw']:.2f} | {r['peak_mib']:.0f} |")


if __name__ == "__main__":
    main()
