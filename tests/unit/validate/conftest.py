from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mirror.validate.result import CheckContext

from tests.support.corpus import require_corpus

from .builders import repodata_records


@pytest.fixture(scope="session")
def corpus() -> Path:
    return require_corpus()


@pytest.fixture
def corpus_context(corpus: Path) -> Callable[[str], CheckContext]:
    """Build a context for a corpus file from the repodata.json next to it."""

    def build(relative_path: str) -> CheckContext:
        path = corpus / relative_path
        record = repodata_records(path.parent / "repodata.json")[path.name]
        return CheckContext(path=path, filename=path.name, subdir=path.parent.name, record=record)

    return build
