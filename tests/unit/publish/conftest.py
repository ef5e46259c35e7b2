"""Fixtures of the publisher tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import RecordingLinker


@pytest.fixture
def linker() -> RecordingLinker:
    return RecordingLinker()


@pytest.fixture
def channel_dir(tmp_path: Path) -> Path:
    return tmp_path / "channels" / "main"
