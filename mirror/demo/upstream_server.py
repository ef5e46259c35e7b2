"""Serve a channel folder over HTTP, standing in for an upstream such as conda-forge.

The demo and the tests of the sync side point the mirror at this server. It
is a plain static file server on a background thread. aiohttp's
`FileResponse` serves GET and HEAD with `ETag` and `Last-Modified` headers,
and handles `Range`, `If-None-Match` and `If-Modified-Since`. It is not the
mirror's own server and has no authentication.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 10.0


class StaticChannelServer:
    """A static HTTP server for one folder, running its own event loop on a thread.

    Port 0 picks a free port; read `url` after `start()`. Paths with `..`
    segments, hidden files and anything that resolves outside `root`
    (through a symbolic link, say) get 404, as do folders.
    """

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0):
        self.root = Path(root).resolve()
        self.host = host
        self.port = port
        self._requested_port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, such as `http://127.0.0.1:41234`."""
        if self._runner is None:
            raise RuntimeError("StaticChannelServer has no URL before start(); call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind the socket and serve on a background thread; return once it accepts requests."""
        if self._thread is not None:
            raise RuntimeError(f"StaticChannelServer for {self.root} is already running")
        if not self.root.is_dir():
            raise FileNotFoundError(f"cannot serve {self.root}: it is not a folder")

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"static-channel-{self.root.name}", daemon=True
        )
        self._thread.start()
        try:
            self._call(self._start_site(), START_TIMEOUT_SECONDS)
        except BaseException:
            self._stop_loop()
            raise
        logger.info("serving %s at %s", self.root, self.url)

    def stop(self) -> None:
        """Close the listening socket and open connections, then end the thread."""
        if self._thread is None:
            return
        try:
            if self._runner is not None:
                self._call(self._runner.cleanup(), STOP_TIMEOUT_SECONDS)
        finally:
            self._runner = None
            self._stop_loop()
        logger.info("stopped serving %s", self.root)

    def __enter__(self) -> StaticChannelServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def _start_site(self) -> None:
        app = web.Application()
        app.router.add_get("/{path:.*}", self._handle)
        runner = web.AppRunner(app, access_log=logger)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._requested_port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self.port = runner.addresses[0][1]
        self._runner = runner

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        # `match_info` is already percent-decoded, so "%2e%2e" arrives as "..".
        path = self._resolve(request.match_info["path"])
        if path is None:
            raise web.HTTPNotFound(text=f"{request.path} not found\n")
        return web.FileResponse(path)

    def _resolve(self, relative: str) -> Path | None:
        parts = relative.split("/")
        if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
            return None

        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            return None
        return path

    def _call(self, coroutine: Coroutine[Any, Any, None], timeout: float) -> None:
        if self._loop is None:
            raise RuntimeError("StaticChannelServer loop is not running")
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def _stop_loop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(STOP_TIMEOUT_SECONDS)
            self._loop.close()
        self._loop = None
        self._thread = None
