"""Values passed between the upstream client and its callers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CacheValidators:
    """Validators the catalog keeps from the last repodata fetch of one subdir.

    `url` is the redacted URL that returned the repodata (…/repodata.json.zst
    or …/repodata.json), as stored in `RepodataFetch.url`.
    """

    url: str | None = None
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class RepodataFetch:
    """Outcome of one repodata fetch.

    `path` is the decompressed repodata.json (the `dest` argument). When
    `not_modified` is set, upstream returned 304 and `path` was left as it
    was, so `sha256` is None. `url` is redacted: it carries no token or
    password and may be logged or stored as is.
    """

    not_modified: bool
    path: Path
    url: str
    etag: str | None
    last_modified: str | None
    sha256: str | None

    @property
    def validators(self) -> CacheValidators:
        """Validators to pass as `cached` to the next fetch of the same subdir."""
        return CacheValidators(url=self.url, etag=self.etag, last_modified=self.last_modified)


@dataclass(frozen=True)
class ExpectedFile:
    """A package file as its upstream repodata record describes it."""

    filename: str
    size: int | None
    sha256: str | None
    md5: str | None
