"""HTTP client for one upstream conda channel: repodata and package files.

Use it as an async context manager, which owns one aiohttp session:

    async with UpstreamClient("conda-forge", config, tmp_dir=tmp) as client:
        fetch = await client.fetch_repodata("linux-64", dest, cached)
        path = await client.download("linux-64", ExpectedFile(...))

A file:// upstream needs no session: the same calls read the local tree.
"""

from __future__ import annotations

import logging
import os
import ssl
from importlib.metadata import version
from pathlib import Path
from types import TracebackType

import aiohttp

from mirror.config.schema import UpstreamConfig
from mirror.errors import ConfigError
from mirror.upstream.download import Downloader
from mirror.upstream.endpoint import Endpoint
from mirror.upstream.models import CacheValidators, ExpectedFile, RepodataFetch
from mirror.upstream.redact import redact_url
from mirror.upstream.repodata import (
    DEFAULT_MAX_REPODATA_BYTES,
    fetch_repodata_file,
    fetch_repodata_http,
)
from mirror.upstream.retry import RetryPolicy
from mirror.upstream.urls import is_file_url

__all__ = ["CacheValidators", "ExpectedFile", "RepodataFetch", "UpstreamClient"]

logger = logging.getLogger(__name__)

USER_AGENT = f"conda-dmz-mirror/{version('conda-dmz-mirror')}"


class UpstreamClient:
    """Client for the upstream named `name`; partial downloads live under `tmp_dir/<name>/`."""

    def __init__(self, name: str, config: UpstreamConfig, *, tmp_dir: Path):
        self._config = config
        self._tmp_dir = Path(tmp_dir)
        self._endpoint = Endpoint(
            name=name,
            base_url=config.url,
            policy=RetryPolicy.from_config(config),
            token=resolve_token(name, config),
            proxy=config.proxy,
        )
        self._is_local = is_file_url(config.url)
        self._session: aiohttp.ClientSession | None = None
        self._downloader: Downloader | None = None

    async def __aenter__(self) -> UpstreamClient:
        if not self._is_local:
            self._session = open_session(self._endpoint.name, self._config)
        self._downloader = Downloader(self._session, self._endpoint, self._tmp_dir)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None
        self._downloader = None

    async def fetch_repodata(
        self,
        subdir: str,
        dest: Path,
        cached: CacheValidators | None = None,
        *,
        max_bytes: int = DEFAULT_MAX_REPODATA_BYTES,
    ) -> RepodataFetch:
        """Fetch `<url>/<subdir>/repodata.json(.zst)` and write it decompressed to `dest`.

        With `cached` from the previous fetch, the request is conditional and
        a 304 leaves `dest` untouched (`not_modified=True`). Decompressed
        repodata larger than `max_bytes` raises UpstreamError. Failures raise
        UpstreamError (or ShortReadError) after the configured retries.
        """
        self._require_open()
        dest = Path(dest)
        if self._is_local:
            return await fetch_repodata_file(self._endpoint, subdir, dest, max_bytes)
        return await fetch_repodata_http(
            self._session, self._endpoint, subdir, dest, cached, max_bytes
        )

    async def download(self, subdir: str, expected: ExpectedFile) -> Path:
        """Download a package file and return the path of its verified copy under tmp_dir.

        The copy's size and sha256 (or md5 when the record has no sha256)
        match `expected`. The caller moves it away, for example into the blob
        store, which must be on the same filesystem for the move to be a
        rename. Raises HashMismatchError, ShortReadError or UpstreamError
        after the retries, and UnsafePathError for a filename or subdir that
        is not a single path segment.
        """
        self._require_open()
        return await self._downloader.download(subdir, expected)

    def __repr__(self) -> str:
        return f"UpstreamClient({self._endpoint.name!r}, url={redact_url(self._config.url)!r})"

    def _require_open(self) -> None:
        if self._downloader is None:
            raise RuntimeError(
                "UpstreamClient is not open; use it as 'async with UpstreamClient(...) as client'"
            )


def resolve_token(name: str, config: UpstreamConfig) -> str | None:
    """Return the upstream's conda token from the config or the environment variable it names."""
    if config.token:
        return config.token
    if not config.token_env:
        return None

    token = os.environ.get(config.token_env)
    if not token:
        raise ConfigError(
            f"upstreams.{name}.token_env names the environment variable {config.token_env}, "
            "which is not set or empty; export it or remove token_env"
        )
    return token


def open_session(name: str, config: UpstreamConfig) -> aiohttp.ClientSession:
    """Open the aiohttp session: connection limit, timeouts, TLS settings and extra headers.

    `total` stays unlimited because a large package may take longer than any
    fixed limit. `sock_read` instead fails a transfer that stalls for
    `timeout_seconds`. Proxy variables from the environment are ignored
    (trust_env=False) so that only `config.proxy` applies.
    """
    connector = aiohttp.TCPConnector(limit=config.max_connections, ssl=_tls_setting(name, config))
    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=config.timeout_seconds,
        sock_connect=config.timeout_seconds,
        sock_read=config.timeout_seconds,
    )
    headers = {"User-Agent": USER_AGENT, **config.headers}
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=headers, trust_env=False
    )


def _tls_setting(name: str, config: UpstreamConfig) -> ssl.SSLContext | bool:
    if not config.verify_tls:
        logger.warning("TLS certificate verification is disabled for upstream %s", name)
        return False
    if config.ca_bundle is None:
        return True

    try:
        return ssl.create_default_context(cafile=str(config.ca_bundle))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"upstreams.{name}.ca_bundle: cannot load CA certificates from {config.ca_bundle} "
            f"({exc}); point it at a readable PEM file"
        ) from None
