"""A static conda channel server for tests, with faults that can be injected per path.

`FakeUpstream(root)` serves the files under `root` at `/<relative path>` from
an aiohttp server on 127.0.0.1 (a free port), running in a background thread
with its own event loop. Sync and async tests can use it alike:

    with FakeUpstream(tmp_path) as upstream:
        upstream.add_fault("/linux-64/repodata.json.zst", Fault("status", code=503))
        ...  # point an UpstreamConfig at upstream.url
        assert upstream.paths_requested(".zst") == [...]

What it implements, so tests can rely on it:

* GET and HEAD; 404 for a missing file, a folder, or a path leaving `root`.
* A strong ETag (a hash of the content) and Last-Modified on every file.
* 304 for a matching If-None-Match, or, when that header is absent, for an
  If-Modified-Since that is not older than the file.
* A single `Range: bytes=a-b`, `bytes=a-` or `bytes=-n` gets 206 with
  Content-Range, or 416 when it starts past the end. If-Range accepts an
  ETag or a Last-Modified date. A list of several ranges gets the whole file.
* With `token="abc"`, files are served only under `/t/abc/`, as conda
  tokens are, and any other path gets 401. The request log keeps the full
  path, so a test can check that the token was sent.

Files are read into memory whole for each request, which suits test files of
a few MiB, not a real channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import socket
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

FaultKind = Literal[
    "status", "truncate", "chunked_unterminated", "reset", "stall", "corrupt", "no_range"
]
FAULT_KINDS = (
    "status",
    "truncate",
    "chunked_unterminated",
    "reset",
    "stall",
    "corrupt",
    "no_range",
)
_BROKEN_KINDS = ("truncate", "chunked_unterminated", "reset", "stall")

_CONTENT_TYPES = {
    ".json": "application/json",
    ".zst": "application/zstd",
    ".bz2": "application/x-bzip2",
}


@dataclass
class Fault:
    """A misbehaviour applied to the next `times` requests for one path.

    Kinds and the fields they read:

    * "status": return `code` (default 500) with a short text body, and a
      `Retry-After: <retry_after>` header when `retry_after` is set (seconds
      as an int, or any string such as an HTTP date).
    * "truncate": announce the full Content-Length, send `after_bytes` body
      bytes, then close the connection normally.
    * "chunked_unterminated": send the body with chunked encoding, stop after
      `after_bytes` bytes and close without the final zero-length chunk.
    * "reset": send `after_bytes` body bytes, then abort the connection with
      a TCP reset. The client may lose some of those bytes.
    * "corrupt": send the normal response with the body byte at position
      `offset` (counted in the response body, clamped to its last byte)
      inverted, so the length is right and the hash is wrong.
    * "stall": send `after_bytes` body bytes, then nothing for
      `stall_seconds`, then close the connection. A client with a shorter
      read timeout times out. Stopping the server ends the wait early.
    * "no_range": ignore Range and If-Range and send the whole file with 200.

    `times=None` applies the fault to every request until `clear()`. Only
    requests whose method equals `method` match.
    """

    kind: FaultKind
    times: int | None = 1
    code: int = 500
    retry_after: int | str | None = None
    after_bytes: int = 0
    offset: int = 0
    stall_seconds: float = 30.0
    method: str = "GET"

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(
                f"unknown fault kind {self.kind!r}; use one of {', '.join(FAULT_KINDS)}"
            )
        if self.times is not None and self.times < 1:
            raise ValueError(
                f"times must be at least 1, or None for every request, not {self.times}"
            )


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the server received it.

    `headers` is a case-insensitive mapping, so `headers["range"]` and
    `headers["Range"]` both work. `status` is the status code the server sent,
    also when a fault then broke the connection.
    """

    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    status: int = 0


@dataclass(frozen=True)
class _FileInfo:
    body: bytes
    etag: str
    last_modified: str
    mtime: int
    content_type: str


class FakeUpstream:
    """Serve `root` over HTTP on 127.0.0.1; see the module docstring for what it supports."""

    def __init__(self, root: Path, *, token: str | None = None):
        self.root = Path(root).resolve()
        self.token = token
        self._lock = threading.Lock()
        self._log: list[LoggedRequest] = []
        self._faults: dict[str, list[Fault]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._stopping: asyncio.Event | None = None

    # Lifecycle

    def __enter__(self) -> FakeUpstream:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, `http://127.0.0.1:<port>`, without a trailing slash."""
        if self._port is None:
            raise RuntimeError(
                "FakeUpstream is not started; call start() or use it in a with block"
            )
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("FakeUpstream is already started")

        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(ready, failure), name="FakeUpstream", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout=10):
            raise RuntimeError("FakeUpstream did not start within 10 seconds")
        if failure:
            self._thread.join()
            self._thread = None
            raise RuntimeError(f"FakeUpstream failed to bind 127.0.0.1: {failure[0]}") from failure[
                0
            ]

    def stop(self) -> None:
        if self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None
        self._port = None

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except OSError as exc:
            failure.append(exc)
            ready.set()
            self._loop.close()
            return

        ready.set()
        self._loop.run_forever()
        self._stopping.set()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    # Request log and faults, shared with the test thread

    @property
    def requests(self) -> list[LoggedRequest]:
        """A copy of the request log, oldest first."""
        with self._lock:
            return list(self._log)

    def paths_requested(self, suffix: str = "") -> list[str]:
        """Paths of the logged requests that end with `suffix`, oldest first."""
        return [entry.path for entry in self.requests if entry.path.endswith(suffix)]

    def add_fault(self, path: str, fault: Fault) -> None:
        """Apply `fault` to requests for `path` ("/linux-64/foo.conda", without any /t/<token>)."""
        if not path.startswith("/"):
            raise ValueError(f"fault path {path!r} must start with '/'")
        with self._lock:
            self._faults.setdefault(path, []).append(fault)

    def clear(self) -> None:
        """Forget the request log and every fault."""
        with self._lock:
            self._log.clear()
            self._faults.clear()

    def _take_fault(self, path: str, method: str) -> Fault | None:
        with self._lock:
            for fault in self._faults.get(path, []):
                if fault.method != method:
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults[path].remove(fault)
                return fault
        return None

    def _record(self, request: web.BaseRequest, status: int) -> None:
        headers = CIMultiDictProxy(CIMultiDict(request.headers))
        entry = LoggedRequest(request.method, request.path, headers, status)
        with self._lock:
            self._log.append(entry)

    # Request handling

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            response, status = await self._respond(request)
        except Exception:
            self._record(request, 500)
            raise

        if status is not None:
            self._record(request, status)
        return response

    async def _respond(self, request: web.Request) -> tuple[web.StreamResponse, int | None]:
        """Build the response; a status of None means the request is already logged."""
        path = self._strip_token(request.path)
        if path is None:
            return web.Response(status=401, text="missing or wrong token\n"), 401
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="method not allowed\n"), 405

        fault = self._take_fault(path, request.method)
        if fault is not None and fault.kind == "status":
            headers = (
                {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            )
            return web.Response(
                status=fault.code, headers=headers, text="injected fault\n"
            ), fault.code

        info = self._read(path)
        if info is None:
            return web.Response(status=404, text="not found\n"), 404
        if _not_modified(request, info):
            return web.Response(status=304, headers=_validator_headers(info)), 304

        honour_range = fault is None or fault.kind != "no_range"
        status, headers, body = _select_range(request, info, honour_range)
        if fault is not None and fault.kind == "corrupt" and body:
            body = _invert_byte(body, fault.offset)
        if fault is not None and fault.kind in _BROKEN_KINDS:
            # Logged before the connection breaks, so that a stalled request
            # is in the log while it is still stalled.
            self._record(request, status)
            response = await _send_broken(request, fault, status, headers, body, self._stopping)
            return response, None
        return web.Response(status=status, headers=headers, body=body), status

    def _strip_token(self, path: str) -> str | None:
        if self.token is None:
            return path
        prefix = f"/t/{self.token}/"
        return "/" + path[len(prefix) :] if path.startswith(prefix) else None

    def _read(self, path: str) -> _FileInfo | None:
        target = (self.root / path.lstrip("/")).resolve()
        if not target.is_relative_to(self.root) or not target.is_file():
            return None

        body = target.read_bytes()
        mtime = int(target.stat().st_mtime)
        return _FileInfo(
            body=body,
            etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"',
            last_modified=email.utils.formatdate(mtime, usegmt=True),
            mtime=mtime,
            content_type=_CONTENT_TYPES.get(target.suffix, "application/octet-stream"),
        )


def _validator_headers(info: _FileInfo) -> dict[str, str]:
    return {"ETag": info.etag, "Last-Modified": info.last_modified}


def _not_modified(request: web.Request, info: _FileInfo) -> bool:
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
        return "*" in tags or info.etag in tags

    if_modified_since = request.headers.get("If-Modified-Since")
    if if_modified_since is None:
        return False
    try:
        since = email.utils.parsedate_to_datetime(if_modified_since).timestamp()
    except (TypeError, ValueError):
        return False
    return info.mtime <= since


def _select_range(
    request: web.Request, info: _FileInfo, honour_range: bool
) -> tuple[int, dict[str, str], bytes]:
    """Return status, headers and body, cut to the requested range when it applies."""
    headers = {
        **_validator_headers(info),
        "Content-Type": info.content_type,
        "Accept-Ranges": "bytes",
    }
    size = len(info.body)
    wanted = _parse_range(request.headers.get("Range"), size) if honour_range else None
    if_range = request.headers.get("If-Range")
    if wanted is None or (if_range is not None and if_range not in (info.etag, info.last_modified)):
        return 200, headers, info.body

    start, end = wanted
    if start >= size:
        return 416, {**headers, "Content-Range": f"bytes */{size}"}, b""
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return 206, headers, info.body[start : end + 1]


def _parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """Parse one `bytes=` range into inclusive (start, end); None means send the whole file."""
    if value is None or not value.startswith("bytes=") or "," in value:
        return None

    first, dash, last = value.removeprefix("bytes=").strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()):
        return None
    if not first:
        length = int(last)
        return (max(0, size - length), size - 1) if length else None
    start = int(first)
    end = min(int(last), size - 1) if last.isdigit() else size - 1
    return (start, end) if end >= start or start >= size else None


def _invert_byte(body: bytes, offset: int) -> bytes:
    position = min(max(offset, 0), len(body) - 1)
    return body[:position] + bytes([body[position] ^ 0xFF]) + body[position + 1 :]


async def _send_broken(
    request: web.Request,
    fault: Fault,
    status: int,
    headers: dict[str, str],
    body: bytes,
    stopping: asyncio.Event,
) -> web.StreamResponse:
    """Send the start of a response, then break the connection as the `fault` kind specifies."""
    response = web.StreamResponse(status=status, headers=headers)
    if fault.kind == "chunked_unterminated":
        response.enable_chunked_encoding()
    else:
        response.content_length = len(body)
    await response.prepare(request)

    sent = body[: fault.after_bytes]
    if sent:
        await response.write(sent)
    await asyncio.sleep(0.01)
    if fault.kind == "stall":
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), fault.stall_seconds)

    # The transport is None once the client has closed the connection itself.
    transport = request.transport
    if transport is None:
        return response
    if fault.kind == "reset":
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()
    return response
