"""Tests for package downloads through UpstreamClient, against FakeUpstream over 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from mirror.errors import (
    ConfigError,
    HashMismatchError,
    ShortReadError,
    UnsafePathError,
    UpstreamError,
)
from mirror.upstream import ExpectedFile, UpstreamClient
from tests.support.corpus import CORPUS_DIR, require_corpus
from tests.support.fake_upstream import FakeUpstream, Fault
from tests.unit.upstream.conftest import (
    BIG_FILENAME,
    BIG_SIZE,
    SUBDIR,
    Channel,
    expected_for,
    make_config,
)

BIG_PATH = f"/{SUBDIR}/{BIG_FILENAME}"
CORPUS_CHANNEL = CORPUS_DIR / "channels/conda-format-repo"


def client_for(url: str, tmp_dir: Path, **overrides: object) -> UpstreamClient:
    return UpstreamClient("fake", make_config(url, **overrides), tmp_dir=tmp_dir)


def work_folder(tmp_dir: Path) -> Path:
    return tmp_dir / "fake" / SUBDIR


def files_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def head(url: str) -> dict[str, str]:
    # An opener without proxies, so that proxy variables of the environment
    # cannot send this loopback request elsewhere.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(urllib.request.Request(url, method="HEAD")) as response:
        return dict(response.headers)


def write_partial(tmp_dir: Path, upstream: FakeUpstream, data: bytes) -> Path:
    """Leave a partial and a sidecar that matches the server, as an interrupted run would."""
    headers = head(f"{upstream.url}{BIG_PATH}")
    folder = work_folder(tmp_dir)
    folder.mkdir(parents=True)
    sidecar = {
        "url": f"{upstream.url}{BIG_PATH}",
        "size": BIG_SIZE,
        "etag": headers["ETag"],
        "last_modified": headers["Last-Modified"],
    }
    (folder / f"{BIG_FILENAME}.partial.json").write_text(json.dumps(sidecar))
    partial = folder / f"{BIG_FILENAME}.partial"
    partial.write_bytes(data)
    upstream.clear()
    return partial


async def test_download_verified(upstream: FakeUpstream, channel: Channel, tmp_path: Path) -> None:
    async with client_for(upstream.url, tmp_path) as client:
        path = await client.download(SUBDIR, channel.big_expected)

    assert path.read_bytes() == channel.big
    assert path.parent == work_folder(tmp_path)
    assert path.name.startswith(BIG_FILENAME)
    assert path.name.endswith(".verified")
    assert files_in(work_folder(tmp_path)) == [path.name]
    [request] = upstream.requests
    assert request.headers["Accept-Encoding"] == "identity"
    assert "Range" not in request.headers


async def test_download_truncated_then_resumed(
    upstream: FakeUpstream, channel: Channel, tmp_path: Path
) -> None:
    upstream.add_fault(BIG_PATH, Fault("truncate", after_bytes=300_000, times=3))

    async with client_for(upstream.url, tmp_path, retries=2) as client:
        with pytest.raises(ShortReadError) as caught:
            await client.download(SUBDIR, channel.big_expected)

        assert caught.value.expected == BIG_SIZE
        assert caught.value.received == 900_000
        assert files_in(work_folder(tmp_path)) == [
            f"{BIG_FILENAME}.partial",
            f"{BIG_FILENAME}.partial.json",
        ]

        path = await client.download(SUBDIR, channel.big_expected)

    assert path.read_bytes() == channel.big
    ranges = [(entry.headers.get("Range"), entry.status) for entry in upstream.requests]
    assert ranges == [
        (None, 200),
        ("bytes=300000-", 206),
        ("bytes=600000-", 206),
        ("bytes=900000-", 206),
    ]
    assert files_in(work_folder(tmp_path)) == [path.name]


async def test_download_chunked_unterminated(
    upstream: FakeUpstream, channel: Channel, tmp_path: Path
) -> None:
    upstream.add_fault(BIG_PATH, Fault("chunked_unterminated", after_bytes=100_000, times=None))

    async with client_for(upstream.url, tmp_path, retries=1) as client:
        with pytest.raises(ShortReadError) as caught:
            await client.download(SUBDIR, channel.big_expected)
        assert caught.value.expected == BIG_SIZE
        assert caught.value.received == 200_000

        upstream.clear()
        path = await client.download(SUBDIR, channel.big_expected)

    assert path.read_bytes() == channel.big
    assert upstream.requests[0].headers["Range"] == "bytes=200000-"


async def test_download_reset_retried(
    upstream: FakeUpstream, channel: Channel, tmp_path: Path
) -> None:
    upstream.add_fault(BIG_PATH, Fault("reset", after_bytes=50_000))

    async with client_for(upstream.url, tmp_path) as client:
        path = await client.download(SUBDIR, channel.big_expected)

    assert path.read_bytes() == channel.big
    assert len(upstream.requests) == 2


async def test_download_stale_partial(
    upstream: FakeUpstream, channel: Channel, tmp_path: Path
) -> None:
    stale = bytes(b ^ 0x5A for b in channel.big[:300_000])
    write_partial(tmp_path, upstream, stale)

    async with client_for(upstream.url, tmp_path) as client:
        path = await client.download(SUBDIR, channel.big_expected)

    assert path.read_bytes() == channel.big
    ranges = [(entry.headers.get("Range"), entry.status) for entry in upstream.requests]
    assert ranges == [("bytes=300000-", 206), (None, 200)]
    assert files_in(work_folder(tmp_path)) == [path.name]


async def test_download_complete_partial_no_request(
    upstream: FakeUpstream, channel: Channel, tmp_path: Path
) -> None:
    write_partial(tmp_path, upstream, channel.big)

    async with client_for(upstream.url, tmp_path) as client:
        path = await client.download(SUBDIR, channel.big_expected)

    assert path.read_bytes() == channel.big
    assert upstream.requests == []


async def test_download_range_ignored(
    upstream: FakeUpstream, channel: Channel, tmp_path: Path
) -> None:
    write_partial(tmp_path, upstream, channel.big[:400_000])
    upstream.add_fault(BIG_PATH, Fault("no_range"))

    async with client_for(upstream.url, tmp_path) as client:
        path = await client.download(SUBDIR, channel.big_expected)

    assert path.read_bytes() == channel.big
    [request] = upstream.requests
    assert request.headers["Range"] == "bytes=400000-"
    assert request.status == 200


async def test_download_sidecar_mismatch_restarts(
    upstream: FakeUpstream, channel: Channel, tmp_path: Path
) -> None:
    partial = write_partial(tmp_path, upstream, channel.big[:400_000])
    sidecar = partial.with_name(f"{BIG_FILENAME}.partial.json")
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "size": BIG_SIZE + 1}))

    async with client_for(upstream.url, tmp_path) as client:
        path = await client.download(SUBDIR, channel.big_expected)

    assert path.read_bytes() == channel.big
    [request] = upstream.requests
    assert "Range" not in request.headers


async def test_download_hash_mismatch(
    upstream: FakeUpstream, channel: Channel, tmp_path: Path
) -> None:
    upstream.add_fault(BIG_PATH, Fault("corrupt", offset=1000, times=None))
    expected = channel.big_expected

    async with client_for(upstream.url, tmp_path) as client:
        with pytest.raises(HashMismatchError) as caught:
            await client.download(SUBDIR, expected)

    error = caught.value
    assert error.filename == BIG_FILENAME
    assert error.field == "sha256"
    assert error.expected == expected.sha256
    assert error.actual != expected.sha256
    assert expected.sha256 in str(error)
    assert error.actual in str(error)
    assert files_in(work_folder(tmp_path)) == []
    assert len(upstream.requests) == 1


async def test_download_md5_only(upstream: FakeUpstream, channel: Channel, tmp_path: Path) -> None:
    upstream.add_fault(BIG_PATH, Fault("corrupt"))
    expected = replace(channel.big_expected, sha256=None)

    async with client_for(upstream.url, tmp_path) as client:
        with pytest.raises(HashMismatchError) as caught:
            await client.download(SUBDIR, expected)
        path = await client.download(SUBDIR, expected)

    assert caught.value.field == "md5"
    assert path.read_bytes() == channel.big


async def test_download_size_mismatch(
    upstream: FakeUpstream, channel: Channel, tmp_path: Path
) -> None:
    expected = replace(channel.big_expected, size=BIG_SIZE - 1)

    async with client_for(upstream.url, tmp_path) as client:
        with pytest.raises(HashMismatchError) as caught:
            await client.download(SUBDIR, expected)

    assert caught.value.field == "size"
    assert caught.value.expected == str(BIG_SIZE - 1)
    assert caught.value.actual == str(BIG_SIZE)
    assert files_in(work_folder(tmp_path)) == []


async def test_download_stale_then_corrupt(
    upstream: FakeUpstream, channel: Channel, tmp_path: Path
) -> None:
    write_partial(tmp_path, upstream, b"\0" * 300_000)
    upstream.add_fault(BIG_PATH, Fault("corrupt", offset=5, times=None))

    async with client_for(upstream.url, tmp_path) as client:
        with pytest.raises(HashMismatchError):
            await client.download(SUBDIR, channel.big_expected)

    assert [entry.headers.get("Range") for entry in upstream.requests] == ["bytes=300000-", None]
    assert files_in(work_folder(tmp_path)) == []


async def test_download_404_not_retried(upstream: FakeUpstream, tmp_path: Path) -> None:
    expected = expected_for("missing-1.0-0.conda", b"x")

    async with client_for(upstream.url, tmp_path) as client:
        with pytest.raises(UpstreamError) as caught:
            await client.download(SUBDIR, expected)

    assert caught.value.status == 404
    assert len(upstream.requests) == 1


async def test_download_concurrent_same_file(
    upstream: FakeUpstream, channel: Channel, tmp_path: Path
) -> None:
    async with client_for(upstream.url, tmp_path) as client:
        first, second = await asyncio.gather(
            client.download(SUBDIR, channel.big_expected),
            client.download(SUBDIR, channel.big_expected),
        )

    assert first != second
    assert first.read_bytes() == channel.big
    assert second.read_bytes() == channel.big
    assert files_in(work_folder(tmp_path)) == sorted([first.name, second.name])


@pytest.mark.parametrize("filename", ["../escape.conda", ".hidden.conda", "a/b.conda", ""])
async def test_download_unsafe_filename(
    upstream: FakeUpstream, tmp_path: Path, filename: str
) -> None:
    expected = ExpectedFile(filename=filename, size=1, sha256="0" * 64, md5=None)

    async with client_for(upstream.url, tmp_path) as client:
        with pytest.raises(UnsafePathError):
            await client.download(SUBDIR, expected)

    assert upstream.requests == []


async def test_download_needs_a_hash(upstream: FakeUpstream, tmp_path: Path) -> None:
    expected = ExpectedFile(filename=BIG_FILENAME, size=BIG_SIZE, sha256=None, md5=None)

    async with client_for(upstream.url, tmp_path) as client:
        with pytest.raises(UpstreamError, match="neither sha256 nor md5"):
            await client.download(SUBDIR, expected)

    assert upstream.requests == []


async def test_download_token_not_logged(
    channel: Channel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "pkg-secret-token"
    caplog.set_level(logging.DEBUG)

    with FakeUpstream(channel.root, token=secret) as upstream:
        upstream.add_fault(BIG_PATH, Fault("truncate", after_bytes=1000))
        async with client_for(upstream.url, tmp_path, token=secret) as client:
            path = await client.download(SUBDIR, channel.big_expected)

    assert path.read_bytes() == channel.big
    assert upstream.paths_requested() == [f"/t/{secret}{BIG_PATH}"] * 2
    assert "short read" in caplog.text
    assert secret not in caplog.text
    sidecars = list(tmp_path.rglob("*.partial.json"))
    assert sidecars == []


async def test_download_extra_headers(
    upstream: FakeUpstream, channel: Channel, tmp_path: Path
) -> None:
    async with client_for(upstream.url, tmp_path, headers={"X-Mirror-Test": "yes"}) as client:
        await client.download(SUBDIR, channel.big_expected)

    [request] = upstream.requests
    assert request.headers["X-Mirror-Test"] == "yes"
    assert request.headers["User-Agent"].startswith("conda-dmz-mirror/")


async def test_download_through_proxy(channel: Channel, tmp_path: Path) -> None:
    # The upstream URL names a closed loopback port, so the file can only
    # arrive through the proxy, which is the fake server itself.
    with FakeUpstream(channel.root) as proxy:
        async with client_for("http://127.0.0.1:9", tmp_path, proxy=proxy.url) as client:
            path = await client.download(SUBDIR, channel.big_expected)

    assert path.read_bytes() == channel.big
    [request] = proxy.requests
    assert request.path == BIG_PATH
    assert request.headers["Host"] == "127.0.0.1:9"


async def test_client_missing_token_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FAKE_MISSING_TOKEN", raising=False)

    with pytest.raises(ConfigError, match="FAKE_MISSING_TOKEN"):
        client_for("http://127.0.0.1:9", tmp_path, token_env="FAKE_MISSING_TOKEN")


async def test_client_missing_ca_bundle(tmp_path: Path) -> None:
    client = client_for("https://127.0.0.1:9", tmp_path, ca_bundle=tmp_path / "missing.pem")

    with pytest.raises(ConfigError, match="ca_bundle"):
        async with client:
            pass


async def test_client_requires_context(tmp_path: Path) -> None:
    client = client_for("http://127.0.0.1:9", tmp_path)

    with pytest.raises(RuntimeError, match="async with"):
        await client.download(SUBDIR, expected_for("x-1-0.conda", b"x"))


async def test_download_file_url(channel: Channel, tmp_path: Path) -> None:
    async with client_for(channel.root.as_uri(), tmp_path / "tmp") as client:
        path = await client.download(SUBDIR, channel.big_expected)

    assert path.read_bytes() == channel.big
    assert files_in(work_folder(tmp_path / "tmp")) == [path.name]


async def test_download_file_url_mismatch(channel: Channel, tmp_path: Path) -> None:
    expected = replace(channel.big_expected, sha256="0" * 64)

    async with client_for(channel.root.as_uri(), tmp_path / "tmp") as client:
        with pytest.raises(HashMismatchError):
            await client.download(SUBDIR, expected)

    assert files_in(work_folder(tmp_path / "tmp")) == []


async def test_download_corpus_channel(tmp_path: Path) -> None:
    require_corpus()
    repodata = json.loads((CORPUS_CHANNEL / SUBDIR / "repodata.json").read_text())
    filename = "zlib-1.2.11-h7b6447c_3.conda"
    record = repodata["packages.conda"][filename]
    expected = ExpectedFile(filename, record["size"], record["sha256"], record["md5"])

    with FakeUpstream(CORPUS_CHANNEL) as upstream:
        async with client_for(upstream.url, tmp_path) as client:
            path = await client.download(SUBDIR, expected)
            fetch = await client.fetch_repodata(SUBDIR, tmp_path / "repodata.json")

    assert path.read_bytes() == (CORPUS_CHANNEL / SUBDIR / filename).read_bytes()
    assert json.loads(fetch.path.read_bytes()) == repodata


async def test_download_stall_times_out(
    upstream: FakeUpstream, channel: Channel, tmp_path: Path
) -> None:
    upstream.add_fault(BIG_PATH, Fault("stall", after_bytes=10_000))

    async with client_for(upstream.url, tmp_path, timeout_seconds=0.5) as client:
        path = await client.download(SUBDIR, channel.big_expected)

    assert path.read_bytes() == channel.big
    ranges = [(entry.headers.get("Range"), entry.status) for entry in upstream.requests]
    assert ranges == [(None, 200), ("bytes=10000-", 206)]
