"""Record factories and a recording link function for the publisher tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from mirror.publish import PublishedFile
from tests.support.corpus import CORPUS_DIR, require_corpus

CORPUS = CORPUS_DIR
ANACONDA_MAIN_NOARCH = CORPUS / "repodata/anaconda-main/noarch/repodata.json"
ANACONDA_R_LINUX_64 = CORPUS / "repodata/anaconda-r/linux-64/repodata.json"


def fake_sha256(filename: str) -> str:
    return hashlib.sha256(filename.encode()).hexdigest()


def make_record(
    name: str,
    version: str,
    build: str = "0",
    *,
    build_number: int = 0,
    depends: list[str] | None = None,
    subdir: str = "noarch",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "build": build,
        "build_number": build_number,
        "depends": depends or [],
        "subdir": subdir,
        **extra,
    }


def filename_of(record: dict[str, Any], suffix: str = ".tar.bz2") -> str:
    return f"{record['name']}-{record['version']}-{record['build']}{suffix}"


def published(*records: dict[str, Any], suffix: str = ".tar.bz2") -> dict[str, PublishedFile]:
    """Return file name -> PublishedFile for records, each with a made-up blob hash."""
    files = {}
    for record in records:
        filename = filename_of(record, suffix)
        files[filename] = PublishedFile(record=record, sha256=fake_sha256(filename))
    return files


class RecordingLinker:
    """A link function that writes the sha256 as file content and remembers each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Path]] = []

    def __call__(self, sha256: str, destination: Path) -> None:
        self.calls.append((sha256, destination))
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(sha256)


def load_json(path: Path) -> Any:
    if path.is_relative_to(CORPUS_DIR):
        require_corpus()
    return json.loads(path.read_bytes())
