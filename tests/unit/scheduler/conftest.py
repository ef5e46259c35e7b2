"""Fixtures of the scheduler tests: a catalog and a mirror config in a temporary folder."""

from __future__ import annotations

import pytest

from mirror.catalog.session import Catalog
from mirror.config.schema import MirrorConfig


@pytest.fixture
def catalog(tmp_path):
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    yield catalog
    catalog.close()


@pytest.fixture
def config(tmp_path) -> MirrorConfig:
    return MirrorConfig.model_validate(
        {
            "data_dir": str(tmp_path / "data"),
            "database": f"sqlite:///{tmp_path / 'catalog.db'}",
            "whitelist": str(tmp_path / "whitelist.yaml"),
            "upstreams": {"up": {"url": "http://127.0.0.1:9/"}},
            "channels": {"main": {}},
        }
    )
