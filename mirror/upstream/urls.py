"""Build the URLs of one upstream channel: subdir files, conda tokens, file:// paths."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit
from urllib.request import url2pathname

from mirror.config.schema import SUBDIR_PATTERN
from mirror.errors import UnsafePathError

# Characters RFC 3986 allows in a path segment besides letters, digits and "-._~".
_SEGMENT_SAFE = "!$&'()*+,;=:@"


def file_url(base_url: str, subdir: str, filename: str) -> str:
    """Return `<base_url>/<subdir>/<filename>` after checking both names are single segments."""
    check_subdir(subdir)
    check_filename(filename)
    return f"{base_url.rstrip('/')}/{subdir}/{quote(filename, safe=_SEGMENT_SAFE)}"


def insert_token(url: str, token: str | None) -> str:
    """Insert a conda token right after the host: `https://host/t/<token>/channel/...`.

    A file:// URL or an empty token leaves `url` unchanged.
    """
    parts = urlsplit(url)
    if not token or parts.scheme == "file":
        return url

    path = f"/t/{quote(token, safe='')}{parts.path}"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def is_file_url(url: str) -> bool:
    return urlsplit(url).scheme == "file"


def path_from_file_url(url: str) -> Path:
    """Return the local path of a file:// URL (`file:///srv/channel` -> /srv/channel)."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise UnsafePathError(
            f"file URL {url!r} names the host {parts.netloc!r}; "
            "use file:///absolute/path for a channel on this machine"
        )
    return Path(url2pathname(unquote(parts.path)))


def check_subdir(subdir: str) -> None:
    if not SUBDIR_PATTERN.match(subdir):
        raise UnsafePathError(
            f"{subdir!r} is not a conda subdir; expected a name such as linux-64 or noarch"
        )


def check_filename(filename: str) -> None:
    """Raise UnsafePathError unless `filename` is one plain path segment.

    Filenames come from upstream repodata, so they are untrusted: a slash, a
    leading dot or a NUL byte could place a partial download outside its folder.
    """
    invalid = (
        not filename
        or filename.startswith(".")
        or "/" in filename
        or os.sep in filename
        or "\x00" in filename
        or len(filename) > 255
    )
    if invalid:
        raise UnsafePathError(
            f"upstream filename {filename!r} is not a single plain file name, so it was "
            "not downloaded; check the upstream repodata record"
        )
