from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mirror.validate.result import CheckContext

from .builders import CORPUS_DIR, repodata_records


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not (CORPUS_DIR / "MANIFEST.md").is_file():
        pytest.fail(f"test corpus not found at {CORPUS_DIR}; set MIRROR_CORPUS_DIR to its folder")
    return CORPUS_DIR


@pytest.fixture
def corpus_context(corpus: Path) -> Callable[[str], CheckContext]:
    """Build a context for a corpus file from the repodata.json next to it."""

    def build(relative_path: str) -> CheckContext:
        path = corpus / relative_path
        record = repodata_records(path.parent / "repodata.json")[path.name]
        return CheckContext(path=path, filename=path.name, subdir=path.parent.name, record=record)

    return build
