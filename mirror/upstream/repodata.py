"""Fetch one subdir's repodata.json from an upstream channel.

`repodata.json.zst` is tried first and `repodata.json` when the .zst is
missing. The body is streamed to a temporary file next to the destination,
decompressed on the way when it is zstd, and renamed over the destination only
once it is complete. A reader of the destination therefore gets the old
file or the new one, never a half written one. conda-forge's linux-64
repodata is about 243 MB decompressed, which is why no body is ever held in
memory whole.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import tempfile
from pathlib import Path
from types import TracebackType

import aiohttp
import zstandard

from mirror.errors import UpstreamError
from mirror.store.atomic import fsync_directory
from mirror.upstream.endpoint import CHUNK_SIZE, NETWORK_ERRORS, Endpoint, stream_body
from mirror.upstream.models import CacheValidators, RepodataFetch
from mirror.upstream.redact import redact_url
from mirror.upstream.retry import call_with_retries, check_status
from mirror.upstream.urls import check_subdir, path_from_file_url

logger = logging.getLogger(__name__)

REPODATA_NAMES = ("repodata.json.zst", "repodata.json")

# Decompressed repodata larger than this is rejected as a likely zstd bomb.
# conda-forge linux-64, the largest channel in common use, is about 243 MB.
DEFAULT_MAX_REPODATA_BYTES = 4 * 1024**3

# Statuses that mean "no such file". For the .zst, 403 counts too, because
# object stores return 403 for a missing key when listing is denied. For
# repodata.json a 403 is more likely a credentials problem, so it is raised.
_MISSING_STATUSES = frozenset({404, 410})
_ZST_MISSING_STATUSES = _MISSING_STATUSES | {403}

# zstd input is fed in slices this small because one decompress() call returns
# all output for its input at once. A run-length block of 4 bytes expands to
# up to 128 KiB (RFC 8878), so a 1 KiB slice yields at most 32 MiB before the
# size cap is checked, as measured on 256 MiB of zeros with zstandard 0.25.
_ZSTD_SLICE = 1024


class RepodataWriter:
    """Write a repodata body to a temporary file beside `dest`, then rename it over `dest`.

    With `compressed` set the body is decompressed as zstd (one or more
    frames). The decompressed size is capped at `max_bytes`; `source` is the
    redacted URL named in errors. Leaving the `with` block without a
    `commit()` deletes the temporary file.
    """

    def __init__(self, dest: Path, *, compressed: bool, max_bytes: int, source: str):
        self._dest = dest
        self._source = source
        self._max_bytes = max_bytes
        self._sha256 = hashlib.sha256()
        self._size = 0
        self._decompressor = zstandard.ZstdDecompressor() if compressed else None
        self._frame = self._decompressor.decompressobj() if self._decompressor else None

        dest.parent.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        self._temporary = Path(name)
        self._stream = os.fdopen(descriptor, "wb")
        self._committed = False

    def __enter__(self) -> RepodataWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self._committed:
            self._stream.close()
            self._temporary.unlink(missing_ok=True)

    def write(self, chunk: bytes) -> None:
        if self._frame is None:
            self._emit(chunk)
            return

        view = memoryview(chunk)
        for start in range(0, len(view), _ZSTD_SLICE):
            self._decompress(bytes(view[start : start + _ZSTD_SLICE]))

    def commit(self) -> str:
        """Move the finished file over the destination and return its sha256 (hex)."""
        if self._frame is not None and not self._frame.eof:
            raise UpstreamError(
                f"{self._source} is not a complete zstd stream (it ends inside a frame); "
                "the upstream file may be truncated or being rewritten, so try again later",
                url=self._source,
            )

        self._stream.flush()
        os.fsync(self._stream.fileno())
        self._stream.close()
        os.chmod(self._temporary, 0o644)
        os.replace(self._temporary, self._dest)
        self._committed = True
        fsync_directory(self._dest.parent)
        return self._sha256.hexdigest()

    def _decompress(self, data: bytes) -> None:
        while data:
            if self._frame.eof:
                self._frame = self._decompressor.decompressobj()
            try:
                output = self._frame.decompress(data)
            except zstandard.ZstdError as exc:
                raise UpstreamError(
                    f"{self._source} is not valid zstd data ({exc}); "
                    "check that the upstream serves a real repodata.json.zst",
                    url=self._source,
                ) from None
            self._emit(output)
            data = self._frame.unused_data if self._frame.eof else b""

    def _emit(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._max_bytes:
            raise UpstreamError(
                f"repodata from {self._source} exceeds {self._max_bytes} bytes decompressed, "
                "so it was rejected as a possible zstd bomb; raise max_bytes if the channel "
                "really is that large",
                url=self._source,
            )
        self._sha256.update(data)
        self._stream.write(data)


async def fetch_repodata_http(
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    subdir: str,
    dest: Path,
    cached: CacheValidators | None,
    max_bytes: int,
) -> RepodataFetch:
    """Fetch repodata over HTTP(S), with conditional requests and retries."""
    for filename in REPODATA_NAMES:
        public_url = endpoint.public_url(subdir, filename)
        description = f"fetching {redact_url(public_url)}"

        async def attempt(public_url: str = public_url) -> RepodataFetch | None:
            return await _fetch_once(session, endpoint, public_url, dest, cached, max_bytes)

        result = await call_with_retries(attempt, endpoint.policy, description)
        if result is not None:
            return result
        logger.info("%s not found", redact_url(public_url))

    raise _not_found(endpoint, subdir)


async def _fetch_once(
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    public_url: str,
    dest: Path,
    cached: CacheValidators | None,
    max_bytes: int,
) -> RepodataFetch | None:
    """Make one request; return None when the file is missing so that the caller moves on."""
    safe_url = redact_url(public_url)
    request_url = endpoint.request_url(public_url)
    headers = _conditional_headers(cached, safe_url, dest)
    is_zst = public_url.endswith(".zst")

    try:
        async with session.get(request_url, headers=headers, proxy=endpoint.proxy) as response:
            if response.status == 304 and headers:
                logger.info("%s not modified", safe_url)
                return _not_modified(response, cached, dest, safe_url)
            missing = _ZST_MISSING_STATUSES if is_zst else _MISSING_STATUSES
            if response.status in missing:
                return None
            check_status(response.status, safe_url, response.headers)

            # aiohttp has already decoded a body sent with Content-Encoding: zstd.
            compressed = is_zst and response.headers.get("Content-Encoding", "") != "zstd"
            with RepodataWriter(
                dest, compressed=compressed, max_bytes=max_bytes, source=safe_url
            ) as writer:
                await stream_body(response, writer.write, endpoint=endpoint, url=request_url)
                digest = writer.commit()
    except NETWORK_ERRORS as exc:
        raise endpoint.network_failure(request_url, exc) from None

    logger.info("fetched %s into %s", safe_url, dest)
    return RepodataFetch(
        not_modified=False,
        path=dest,
        url=safe_url,
        etag=response.headers.get("ETag"),
        last_modified=response.headers.get("Last-Modified"),
        sha256=digest,
    )


def _conditional_headers(
    cached: CacheValidators | None, safe_url: str, dest: Path
) -> dict[str, str]:
    # Validators only describe the file they came from, and a 304 is only
    # useful while the copy they describe still exists.
    if cached is None or cached.url != safe_url or not dest.is_file():
        return {}

    headers = {}
    if cached.etag:
        headers["If-None-Match"] = cached.etag
    if cached.last_modified:
        headers["If-Modified-Since"] = cached.last_modified
    return headers


def _not_modified(
    response: aiohttp.ClientResponse, cached: CacheValidators, dest: Path, safe_url: str
) -> RepodataFetch:
    return RepodataFetch(
        not_modified=True,
        path=dest,
        url=safe_url,
        etag=response.headers.get("ETag", cached.etag),
        last_modified=response.headers.get("Last-Modified", cached.last_modified),
        sha256=None,
    )


async def fetch_repodata_file(
    endpoint: Endpoint, subdir: str, dest: Path, max_bytes: int
) -> RepodataFetch:
    """Copy repodata from a file:// channel, decompressing the .zst when there is one."""
    check_subdir(subdir)
    return await asyncio.to_thread(_copy_local_repodata, endpoint, subdir, dest, max_bytes)


def _copy_local_repodata(
    endpoint: Endpoint, subdir: str, dest: Path, max_bytes: int
) -> RepodataFetch:
    for filename in REPODATA_NAMES:
        public_url = endpoint.public_url(subdir, filename)
        source = path_from_file_url(public_url)
        if not source.is_file():
            continue

        safe_url = redact_url(public_url)
        compressed = filename.endswith(".zst")
        with (
            source.open("rb") as stream,
            RepodataWriter(
                dest, compressed=compressed, max_bytes=max_bytes, source=safe_url
            ) as writer,
        ):
            while chunk := stream.read(CHUNK_SIZE):
                writer.write(chunk)
            digest = writer.commit()

        logger.info("copied %s into %s", safe_url, dest)
        return RepodataFetch(False, dest, safe_url, None, None, digest)

    raise _not_found(endpoint, subdir)


def _not_found(endpoint: Endpoint, subdir: str) -> UpstreamError:
    safe_base = redact_url(endpoint.base_url)
    return UpstreamError(
        f"upstream {endpoint.name!r} has no repodata for {subdir} at {safe_base}/{subdir}/ "
        "(neither repodata.json.zst nor repodata.json exists); "
        "check the upstream url and its subdirs list",
        url=safe_base,
        status=404,
    )
