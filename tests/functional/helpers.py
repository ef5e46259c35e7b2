"""Helpers for end-to-end tests: a local upstream of real packages and a mirror config pointing at it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from mirror.catalog.models import Artifact, AuditEvent, ChannelMembership, SyncRun
from mirror.catalog.session import Catalog
from mirror.cli.main import cli
from mirror.config.load import load_config
from mirror.demo.channel import index_channel
from mirror.demo.packages import PackageSpec, build_package

MIRROR_YAML = """\
data_dir: data
database: sqlite:///data/catalog.db
whitelist: whitelist.yaml
upstreams:
  up:
    url: {url}
    subdirs: [linux-64, noarch]
    retries: {retries}
    backoff_seconds: 0.01
    max_backoff_seconds: 0.05
    timeout_seconds: 10
    max_connections: {connections}
channels:
{channels}
server: {{host: 127.0.0.1, port: 0}}
"""


def build_upstream(root: Path, specs: list[PackageSpec], formats=("conda", "tar.bz2")) -> Path:
    """Build real packages for `specs` under `root/<subdir>/` and index them as a channel."""
    for spec in specs:
        for fmt in formats:
            build_package(spec, root / spec.subdir, fmt)
    (root / "linux-64").mkdir(parents=True, exist_ok=True)
    index_channel(root, ["linux-64", "noarch"])
    return root


def edit_repodata(root: Path, subdir: str, change) -> None:
    """Apply `change(document)` to an upstream subdir's repodata and drop its compressed copies."""
    path = root / subdir / "repodata.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document, indent=1, sort_keys=True))
    for suffix in (".zst", ".bz2"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


@dataclass
class Mirror:
    """A mirror installation in a test folder, driven through the real CLI."""

    folder: Path

    @property
    def config_path(self) -> Path:
        return self.folder / "mirror.yaml"

    @property
    def channels_dir(self) -> Path:
        return self.folder / "data" / "channels"

    def write(self, url: str, whitelist: str, *, channels: str = "  main: {approval: auto}", retries: int = 2, connections: int = 4) -> Mirror:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(MIRROR_YAML.format(url=url, channels=channels, retries=retries, connections=connections))
        (self.folder / "whitelist.yaml").write_text(whitelist)
        return self

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(cli, ["--config", str(self.config_path), *args], catch_exceptions=False)

    def repodata(self, channel: str, subdir: str) -> dict:
        return json.loads((self.channels_dir / channel / subdir / "repodata.json").read_text())

    def published(self, channel: str = "main") -> set[str]:
        names = set()
        for subdir in ("linux-64", "noarch"):
            path = self.channels_dir / channel / subdir / "repodata.json"
            if path.exists():
                document = json.loads(path.read_text())
                names |= set(document["packages"]) | set(document["packages.conda"])
        return names

    def catalog(self) -> Catalog:
        return Catalog(load_config(self.config_path).database)

    def query(self, model, *options):
        catalog = self.catalog()
        try:
            with catalog.session() as session:
                return list(session.scalars(select(model).options(*options)))
        finally:
            catalog.close()

    def runs(self) -> list[SyncRun]:
        return self.query(SyncRun)

    def artifacts(self) -> list[Artifact]:
        return self.query(Artifact)

    def memberships(self) -> list[ChannelMembership]:
        return self.query(ChannelMembership, selectinload(ChannelMembership.artifact))

    def audit(self) -> list[AuditEvent]:
        return self.query(AuditEvent)


def demo_like_specs() -> list[PackageSpec]:
    """A tool with a library and a noarch data dependency, in two versions each."""
    return [
        PackageSpec("tool", "1.0", "h0_0", subdir="linux-64", depends=["libx >=2,<3", "data"],
                    files={"bin/tool": b"#!/bin/sh\necho tool 1.0\n"}, executables={"bin/tool"}),
        PackageSpec("tool", "0.9", "h0_0", subdir="linux-64", depends=["libx 1.*"],
                    files={"bin/tool": b"#!/bin/sh\necho tool 0.9\n"}, executables={"bin/tool"}),
        PackageSpec("libx", "1.0", "h0_0", subdir="linux-64", files={"lib/libx.txt": b"libx 1\n"}),
        PackageSpec("libx", "2.0", "h0_0", subdir="linux-64", files={"lib/libx.txt": b"libx 2\n"}),
        PackageSpec("data", "1.1", subdir="noarch", files={"share/data.txt": b"data\n"}),
        PackageSpec("unrelated", "1.0", subdir="noarch", files={"share/u.txt": b"u\n"}),
    ]


WHITELIST = """\
- upstream: up
  channel: main
  packages: ["tool >=1.0"]
  dependencies: true
"""
