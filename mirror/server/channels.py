"""Channel routes: `channeldata.json`, subdir indexes and package files.

Every path segment is checked against a strict pattern before the
filesystem is touched. The file is then located with a containment
check that still applies if the checks above let something through:

* the requested path itself and every folder above it must resolve inside
  the channels folder, so no symlinked folder leads elsewhere;
* the file may be a symbolic link (the blob store falls back to one when
  a hard link is impossible), but its target must resolve inside the
  channels folder or the blob store folder.

A missing file is a 404. A file that exists but cannot be opened as a
regular file (a dangling link, a permission error, a folder) is a 500,
so clients never mistake a broken channel for an empty one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path

from aiohttp import web

from mirror.auth.access import Access, requires
from mirror.config.schema import SUBDIR_PATTERN, MirrorConfig
from mirror.errors import UnsafePathError
from mirror.publish.repodata import (
    CHANNELDATA,
    CURRENT_REPODATA,
    REPODATA,
    REPODATA_BZ2,
    REPODATA_ZST,
    SUBDIR_INDEX_NAMES,
    is_package_filename,
)
from mirror.server.errors import json_error, not_found
from mirror.server.keys import CONFIG_KEY

logger = logging.getLogger(__name__)

# conda clients ignore Content-Type, so packages get the generic binary type instead of a
# made-up one, and the compressed indexes get their registered media types.
INDEX_CONTENT_TYPES = {
    CHANNELDATA: "application/json",
    REPODATA: "application/json",
    CURRENT_REPODATA: "application/json",
    REPODATA_ZST: "application/zstd",
    REPODATA_BZ2: "application/x-bzip2",
}
PACKAGE_CONTENT_TYPE = "application/octet-stream"

# Indexes change in place, so clients revalidate them with the ETag on every use. A package
# file name names one build, whose bytes do not change, so clients may keep it for a year.
# With authentication on, the middleware adds "private" to responses for signed-in clients.
INDEX_CACHE_CONTROL = "no-cache"
PACKAGE_CACHE_CONTROL = "max-age=31536000"


class FileMissingError(LookupError):
    """The requested file does not exist in the channel."""


class FileUnreadableError(OSError):
    """The requested file exists but cannot be opened as a regular file."""


def add_channel_routes(app: web.Application, *, token_routes: bool = False) -> None:
    """Add the channel routes, and with `token_routes` the same under conda's `/t/<token>/` prefix."""
    prefixes = ["", "/t/{token}"] if token_routes else [""]
    for prefix in prefixes:
        app.router.add_get(prefix + "/{channel}/channeldata.json", serve_channeldata)
        app.router.add_get(prefix + "/{channel}/{subdir}/{filename}", serve_subdir_file)


@requires(Access.CHANNEL_READ)
async def serve_channeldata(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG_KEY]
    channel = request.match_info["channel"]
    if channel not in config.channels:
        return not_found()
    return await _serve_file(request, config, (channel, CHANNELDATA), CHANNELDATA)


@requires(Access.CHANNEL_READ)
async def serve_subdir_file(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG_KEY]
    channel = request.match_info["channel"]
    subdir = request.match_info["subdir"]
    filename = request.match_info["filename"]
    if (
        channel not in config.channels
        or not SUBDIR_PATTERN.fullmatch(subdir)
        or not is_servable_name(filename)
    ):
        return not_found()
    response = await _serve_file(request, config, (channel, subdir, filename), filename)
    if response.status == 404 and is_package_filename(filename):
        # A user blocked from a package learns why and where to ask, instead of a bare 404.
        from mirror.dashboard.blocked import blocked_package_response

        return await blocked_package_response(request, channel, subdir, filename) or response
    return response


def is_servable_name(filename: str) -> bool:
    """Return whether a subdir file name is an index or a bare package file name."""
    return filename in SUBDIR_INDEX_NAMES or is_package_filename(filename)


def response_headers(filename: str) -> dict[str, str]:
    if filename in INDEX_CONTENT_TYPES:
        return {"Content-Type": INDEX_CONTENT_TYPES[filename], "Cache-Control": INDEX_CACHE_CONTROL}
    return {"Content-Type": PACKAGE_CONTENT_TYPE, "Cache-Control": PACKAGE_CACHE_CONTROL}


async def _serve_file(
    request: web.Request, config: MirrorConfig, parts: tuple[str, ...], filename: str
) -> web.StreamResponse:
    loop = asyncio.get_running_loop()
    try:
        path = await loop.run_in_executor(
            None, locate_file, config.channels_dir, config.store_dir, parts
        )
    except FileMissingError:
        return not_found()
    except UnsafePathError as exc:
        logger.warning("rejected a path outside the served folders: %s", exc)
        return not_found()
    except FileUnreadableError as exc:
        logger.error("channel file could not be read: %s", exc)
        return json_error(500, "file could not be read")

    # FileResponse streams with sendfile and handles ETag, 304, Range (206) and HEAD.
    # NOTE: aiohttp 3.14 also serves a regular file `<name>.gz` or `<name>.br` next to the
    # requested one when the client accepts that encoding. The publisher writes no such file.
    return web.FileResponse(path, headers=response_headers(filename))


def locate_file(channels_dir: Path, store_dir: Path, parts: tuple[str, ...]) -> Path:
    """Return the resolved path of a channel file after the containment checks.

    Raises FileMissingError when nothing is at the path, UnsafePathError
    when it leads outside the allowed folders, and FileUnreadableError
    when it exists but cannot be opened as a regular file.
    """
    requested = Path(channels_dir).joinpath(*parts)
    try:
        os.lstat(requested)
        channels_root = Path(channels_dir).resolve(strict=True)
        folder = requested.parent.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError, ValueError):
        # ValueError: a NUL byte in the name, which no file can have.
        raise FileMissingError(str(requested)) from None
    except OSError as exc:
        raise FileUnreadableError(f"{requested}: {exc}") from None

    if not folder.is_relative_to(channels_root):
        raise UnsafePathError(f"{requested} is in {folder}, outside {channels_root}")
    target = (folder / requested.name).resolve(strict=False)
    allowed_roots = (channels_root, Path(store_dir).resolve(strict=False))
    if not any(target.is_relative_to(root) for root in allowed_roots):
        raise UnsafePathError(
            f"{requested} links to {target}, outside {channels_root} and the blob store"
        )

    _check_readable(requested, target)
    return target


def _check_readable(requested: Path, target: Path) -> None:
    # O_NONBLOCK so that a FIFO placed in the tree cannot stall the worker thread on open.
    try:
        descriptor = os.open(target, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise FileUnreadableError(f"{requested}: {exc}") from None
    try:
        mode = os.fstat(descriptor).st_mode
    finally:
        os.close(descriptor)
    if not stat.S_ISREG(mode):
        raise FileUnreadableError(f"{requested} is not a regular file")
