"""Fixtures for the upstream client tests: a small channel tree served by FakeUpstream."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from mirror.config.schema import UpstreamConfig
from mirror.upstream import ExpectedFile
from tests.support.fake_upstream import FakeUpstream

SUBDIR = "linux-64"
BIG_FILENAME = "big-1.0-0.conda"
BIG_SIZE = 1024 * 1024


@dataclass(frozen=True)
class Channel:
    """A channel tree on disk: repodata.json(.zst) and one 1 MiB package."""

    root: Path
    repodata: bytes
    big: bytes

    @property
    def big_expected(self) -> ExpectedFile:
        return expected_for(BIG_FILENAME, self.big)

    def remove_zst(self) -> None:
        (self.root / SUBDIR / "repodata.json.zst").unlink()


def expected_for(filename: str, data: bytes) -> ExpectedFile:
    return ExpectedFile(
        filename=filename,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        md5=hashlib.md5(data).hexdigest(),
    )


def make_config(url: str, **overrides: object) -> UpstreamConfig:
    """An UpstreamConfig with tiny backoffs so retries cost milliseconds."""
    settings: dict[str, object] = {
        "url": url,
        "subdirs": [SUBDIR],
        "retries": 2,
        "backoff_seconds": 0.01,
        "max_backoff_seconds": 0.05,
        "timeout_seconds": 10,
    }
    settings.update(overrides)
    return UpstreamConfig(**settings)


@pytest.fixture
def channel(tmp_path: Path) -> Channel:
    root = tmp_path / "channel"
    (root / SUBDIR).mkdir(parents=True)

    big = random.Random(7).randbytes(BIG_SIZE)
    (root / SUBDIR / BIG_FILENAME).write_bytes(big)

    record = {"name": "big", "version": "1.0", "build": "0", "size": len(big)}
    repodata = json.dumps(
        {"info": {"subdir": SUBDIR}, "packages": {}, "packages.conda": {BIG_FILENAME: record}}
    ).encode()
    (root / SUBDIR / "repodata.json").write_bytes(repodata)
    (root / SUBDIR / "repodata.json.zst").write_bytes(zstandard.ZstdCompressor().compress(repodata))
    return Channel(root=root, repodata=repodata, big=big)


@pytest.fixture
def upstream(channel: Channel) -> Iterator[FakeUpstream]:
    with FakeUpstream(channel.root) as server:
        yield server


@pytest.fixture
def config_for() -> Callable[..., UpstreamConfig]:
    return make_config
