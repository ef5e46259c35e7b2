"""Download one package file, resumably, and verify it against its upstream record.

Files on disk, all under `<tmp_dir>/<upstream name>/<subdir>/`:

* `<filename>.partial`: the bytes received so far.
* `<filename>.partial.json`: the sidecar, with the URL, expected size and the
  server's ETag and Last-Modified. A later attempt resumes the partial with
  `Range` and `If-Range` only when the sidecar still matches.
* `<filename>.partial.lock`: locked with `fcntl.flock` by the worker that owns
  the partial, so two workers never write the same partial.
* `<filename>.<random>.verified`: a complete file whose size and hash matched.
  The caller moves it into the blob store. The random part keeps two workers
  that fetched the same file from replacing each other's result.

A resumed partial can hold stale bytes from an older upstream file. When a
resumed download fails verification the partial is deleted and the file is
downloaded once more from byte 0. A mismatch there, or on any download that
started from byte 0, raises `HashMismatchError`. Bytes that failed
verification are always deleted and never returned.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import aiohttp

from mirror.errors import HashMismatchError, UpstreamError
from mirror.store.atomic import atomic_write_bytes
from mirror.upstream.endpoint import (
    CHUNK_SIZE,
    NETWORK_ERRORS,
    Endpoint,
    announced_length,
    stream_body,
)
from mirror.upstream.models import ExpectedFile
from mirror.upstream.redact import redact_url
from mirror.upstream.retry import TransientError, call_with_retries, check_status
from mirror.upstream.urls import check_filename, check_subdir, path_from_file_url

logger = logging.getLogger(__name__)

LOCK_POLL_SECONDS = 0.05

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class _ResumedMismatch(Exception):
    """A download that reused partial bytes failed verification; `error` is the mismatch found."""

    def __init__(self, error: HashMismatchError):
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class PartialPaths:
    partial: Path
    sidecar: Path
    lock: Path
    folder: Path
    filename: str

    @classmethod
    def under(cls, tmp_dir: Path, upstream: str, subdir: str, filename: str) -> PartialPaths:
        check_subdir(subdir)
        check_filename(filename)
        folder = tmp_dir / upstream / subdir
        return cls(
            partial=folder / f"{filename}.partial",
            sidecar=folder / f"{filename}.partial.json",
            lock=folder / f"{filename}.partial.lock",
            folder=folder,
            filename=filename,
        )

    def discard(self) -> None:
        self.partial.unlink(missing_ok=True)
        self.sidecar.unlink(missing_ok=True)

    def promote(self) -> Path:
        """Rename the verified partial to a unique `.verified` name and drop its sidecar."""
        verified = self.folder / f"{self.filename}.{secrets.token_hex(4)}.verified"
        os.replace(self.partial, verified)
        self.sidecar.unlink(missing_ok=True)
        return verified


@dataclass(frozen=True)
class Sidecar:
    """Source of a partial: redacted URL, expected size and the server's validators."""

    url: str
    size: int | None
    etag: str | None
    last_modified: str | None

    @property
    def if_range(self) -> str | None:
        """Validator for If-Range, which accepts a strong ETag or a Last-Modified date."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified

    @classmethod
    def read(cls, path: Path) -> Sidecar | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(data["url"], data["size"], data.get("etag"), data.get("last_modified"))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, path: Path) -> None:
        atomic_write_bytes(path, json.dumps(asdict(self)).encode(), only_if_changed=False)


class Digest:
    """Size, sha256 and md5 of the bytes written to a partial so far."""

    def __init__(self) -> None:
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.sha256.update(chunk)
        self.md5.update(chunk)


def check_verifiable(expected: ExpectedFile) -> None:
    if not expected.sha256 and not expected.md5:
        raise UpstreamError(
            f"{expected.filename}: the upstream record has neither sha256 nor md5, so a "
            "download could not be verified; it was not downloaded"
        )


def verify(expected: ExpectedFile, digest: Digest) -> None:
    """Raise HashMismatchError unless size (when known) and sha256, or else md5, match."""
    if expected.size is not None and digest.size != expected.size:
        raise HashMismatchError(expected.filename, "size", str(expected.size), str(digest.size))

    if expected.sha256:
        actual = digest.sha256.hexdigest()
        if actual != expected.sha256.lower():
            raise HashMismatchError(expected.filename, "sha256", expected.sha256, actual)
        return

    actual = digest.md5.hexdigest()
    if actual != (expected.md5 or "").lower():
        raise HashMismatchError(expected.filename, "md5", str(expected.md5), actual)


@asynccontextmanager
async def partial_lock(path: Path) -> AsyncIterator[None]:
    """Hold an exclusive flock on `path`, polling with LOCK_NB instead of blocking the event loop.

    The lock file is deleted on release. A waiter that then locks the deleted
    file finds that the path now names another inode (or none) and tries again.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    waiting_logged = False
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            if not waiting_logged:
                logger.info("waiting for another worker to finish %s", path.name)
                waiting_logged = True
            await asyncio.sleep(LOCK_POLL_SECONDS)
            continue

        if _names_same_file(descriptor, path):
            break
        os.close(descriptor)

    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(descriptor)


def _names_same_file(descriptor: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(descriptor).st_ino
    except FileNotFoundError:
        return False


class Downloader:
    """Download package files of one upstream into its folder under `tmp_dir`."""

    def __init__(self, session: aiohttp.ClientSession | None, endpoint: Endpoint, tmp_dir: Path):
        self._session = session
        self._endpoint = endpoint
        self._tmp_dir = tmp_dir

    async def download(self, subdir: str, expected: ExpectedFile) -> Path:
        check_verifiable(expected)
        paths = PartialPaths.under(self._tmp_dir, self._endpoint.name, subdir, expected.filename)
        public_url = self._endpoint.public_url(subdir, expected.filename)

        async with partial_lock(paths.lock):
            if self._session is None:
                return await asyncio.to_thread(_copy_local_file, paths, public_url, expected)

            try:
                return await self._download_round(paths, public_url, expected, last_round=False)
            except _ResumedMismatch as mismatch:
                logger.warning(
                    "%s: resumed download failed verification (%s); "
                    "deleting the partial file and downloading from byte 0",
                    expected.filename,
                    mismatch.error,
                )
                paths.discard()
                return await self._download_round(paths, public_url, expected, last_round=True)

    async def _download_round(
        self, paths: PartialPaths, public_url: str, expected: ExpectedFile, *, last_round: bool
    ) -> Path:
        async def attempt() -> Path:
            return await self._attempt(paths, public_url, expected, last_round=last_round)

        path = await call_with_retries(
            attempt, self._endpoint.policy, f"downloading {redact_url(public_url)}"
        )
        logger.info("downloaded and verified %s", redact_url(public_url))
        return path

    async def _attempt(
        self, paths: PartialPaths, public_url: str, expected: ExpectedFile, *, last_round: bool
    ) -> Path:
        safe_url = redact_url(public_url)
        sidecar = Sidecar.read(paths.sidecar)
        offset = _resumable_offset(paths, sidecar, safe_url, expected)

        try:
            if offset and offset == expected.size:
                digest = await asyncio.to_thread(_hash_prefix, paths.partial, offset)
            else:
                digest, offset = await self._fetch(paths, public_url, expected, sidecar, offset)
            verify(expected, digest)
        except HashMismatchError as error:
            # Only the first round turns a resumed mismatch into a restart
            # from byte 0, so a download restarts at most once.
            paths.discard()
            if offset and not last_round:
                raise _ResumedMismatch(error) from None
            raise

        return paths.promote()

    async def _fetch(
        self,
        paths: PartialPaths,
        public_url: str,
        expected: ExpectedFile,
        sidecar: Sidecar | None,
        offset: int,
    ) -> tuple[Digest, int]:
        """Request the file, from `offset` when resuming; return the digest and the offset used."""
        request_url = self._endpoint.request_url(public_url)
        safe_url = redact_url(public_url)
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            headers["If-Range"] = sidecar.if_range

        try:
            async with self._session.get(
                request_url, headers=headers, proxy=self._endpoint.proxy
            ) as response:
                offset = _accepted_offset(response, offset, sidecar, expected, paths)
                check_status(response.status, safe_url, response.headers)
                _check_announced_size(response, offset, expected)
                Sidecar(
                    safe_url,
                    expected.size,
                    response.headers.get("ETag"),
                    response.headers.get("Last-Modified"),
                ).write(paths.sidecar)

                digest = await asyncio.to_thread(_hash_prefix, paths.partial, offset)
                with _open_partial(paths.partial, offset) as stream:
                    sink = _partial_sink(stream, digest, expected)
                    await stream_body(
                        response,
                        sink,
                        endpoint=self._endpoint,
                        url=request_url,
                        offset=offset,
                        expected_total=expected.size,
                    )
                    stream.flush()
                    os.fsync(stream.fileno())
        except NETWORK_ERRORS as exc:
            raise self._endpoint.network_failure(request_url, exc) from None

        return digest, offset


def _resumable_offset(
    paths: PartialPaths, sidecar: Sidecar | None, safe_url: str, expected: ExpectedFile
) -> int:
    """Return how many partial bytes may be kept, or 0 to start over."""
    if sidecar is None or expected.size is None or not paths.partial.is_file():
        return 0
    if sidecar.url != safe_url or sidecar.size != expected.size or not sidecar.if_range:
        return 0

    size = paths.partial.stat().st_size
    return size if size <= expected.size else 0


def _accepted_offset(
    response: aiohttp.ClientResponse,
    offset: int,
    sidecar: Sidecar | None,
    expected: ExpectedFile,
    paths: PartialPaths,
) -> int:
    """Return the offset the response body starts at; raise to start over when it is unusable."""
    if not offset:
        if response.status == 206:
            raise _restart(paths, "sent 206 Partial Content to a request without Range", response)
        return 0

    if response.status == 200:
        logger.info(
            "%s: server sent the whole file instead of a range; starting over", paths.filename
        )
        return 0
    if response.status == 416:
        raise _restart(paths, "rejected the range as not satisfiable", response)
    if response.status != 206:
        return offset

    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
    if match is None or int(match.group(1)) != offset:
        raise _restart(
            paths, "sent a Content-Range that does not start at the partial's end", response
        )
    if match.group(3) != "*" and int(match.group(3)) != expected.size:
        raise _restart(paths, "sent a Content-Range for a file of another size", response)
    if _validators_changed(response, sidecar):
        raise _restart(
            paths, "sent a range of a file that changed since the partial was written", response
        )
    return offset


def _validators_changed(response: aiohttp.ClientResponse, sidecar: Sidecar) -> bool:
    etag = response.headers.get("ETag")
    if etag and sidecar.etag:
        return etag != sidecar.etag

    last_modified = response.headers.get("Last-Modified")
    return bool(last_modified and sidecar.last_modified and last_modified != sidecar.last_modified)


def _restart(paths: PartialPaths, reason: str, response: aiohttp.ClientResponse) -> TransientError:
    paths.discard()
    safe_url = redact_url(str(response.url))
    message = f"{safe_url} {reason}; the partial file was deleted and the download starts over"
    return TransientError(UpstreamError(message, url=safe_url, status=response.status))


def _check_announced_size(
    response: aiohttp.ClientResponse, offset: int, expected: ExpectedFile
) -> None:
    """Fail before downloading when Content-Length already shows the wrong size."""
    length = announced_length(response)
    if expected.size is None or length is None:
        return
    if offset + length != expected.size:
        raise HashMismatchError(expected.filename, "size", str(expected.size), str(offset + length))


def _partial_sink(
    stream: BinaryIO, digest: Digest, expected: ExpectedFile
) -> Callable[[bytes], None]:
    def write(chunk: bytes) -> None:
        # Stop a server that sends more than the record's size instead of
        # filling the disk.
        if expected.size is not None and digest.size + len(chunk) > expected.size:
            raise HashMismatchError(
                expected.filename, "size", str(expected.size), f"more than {expected.size}"
            )
        stream.write(chunk)
        digest.update(chunk)

    return write


def _open_partial(path: Path, offset: int) -> BinaryIO:
    """Open the partial for writing at `offset`, dropping any bytes after it."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    stream = os.fdopen(descriptor, "r+b")
    stream.seek(offset)
    stream.truncate()
    return stream


def _hash_prefix(path: Path, length: int) -> Digest:
    """Hash the first `length` bytes of an existing partial before appending to it."""
    digest = Digest()
    if not length:
        return digest

    with path.open("rb") as stream:
        while digest.size < length:
            chunk = stream.read(min(CHUNK_SIZE, length - digest.size))
            if not chunk:
                break
            digest.update(chunk)
    return digest


def _copy_local_file(paths: PartialPaths, public_url: str, expected: ExpectedFile) -> Path:
    """Copy a package from a file:// channel into the partial, then verify and promote it."""
    source = path_from_file_url(public_url)
    if not source.is_file():
        raise UpstreamError(
            f"{redact_url(public_url)} does not exist; check the upstream url and whether "
            "the channel's repodata lists files that are missing",
            url=redact_url(public_url),
        )

    digest = Digest()
    try:
        with source.open("rb") as reader, _open_partial(paths.partial, 0) as writer:
            sink = _partial_sink(writer, digest, expected)
            while chunk := reader.read(CHUNK_SIZE):
                sink(chunk)
            writer.flush()
            os.fsync(writer.fileno())
        verify(expected, digest)
    except HashMismatchError:
        paths.discard()
        raise
    return paths.promote()
