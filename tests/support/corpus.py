"""Where the shared corpus of real conda data is, and what to do when it is not there.

The corpus lives beside the repository (`../shared/corpus`) or wherever
MIRROR_CORPUS_DIR points. Tests that read it call `require_corpus()`:
without the corpus they skip, except where real components are required
(MIRROR_REQUIRE_REAL_COMPONENTS=1, set on CI), where they fail.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
CORPUS_DIR = Path(os.environ.get("MIRROR_CORPUS_DIR") or REPOSITORY.parent / "shared" / "corpus")


def require_corpus() -> Path:
    """Return the corpus folder, or skip (fail where required) when it is missing."""
    if (CORPUS_DIR / "MANIFEST.md").is_file():
        return CORPUS_DIR
    message = f"the shared corpus is missing at {CORPUS_DIR}; set MIRROR_CORPUS_DIR to its folder"
    if os.environ.get("MIRROR_REQUIRE_REAL_COMPONENTS") == "1":
        pytest.fail(message)
    pytest.skip(message)
