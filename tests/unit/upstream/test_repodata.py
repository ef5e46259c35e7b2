"""Tests for repodata fetching through UpstreamClient, against FakeUpstream over 127.0.0.1."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
import zstandard

from mirror.errors import UpstreamError
from mirror.upstream import CacheValidators, UpstreamClient
from tests.support.fake_upstream import FakeUpstream, Fault
from tests.unit.upstream.conftest import SUBDIR, Channel, make_config

ZST_PATH = f"/{SUBDIR}/repodata.json.zst"
JSON_PATH = f"/{SUBDIR}/repodata.json"


async def fetch(url: str, dest: Path, cached: CacheValidators | None = None, **overrides: object):
    async with UpstreamClient(
        "fake", make_config(url, **overrides), tmp_dir=dest.parent / "tmp"
    ) as client:
        return await client.fetch_repodata(SUBDIR, dest, cached)


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(".tmp"))


async def test_repodata_prefers_zst(
    upstream: FakeUpstream, channel: Channel, tmp_path: Path
) -> None:
    dest = tmp_path / "out" / "repodata.json"

    result = await fetch(upstream.url, dest)

    assert result.not_modified is False
    assert result.url == f"{upstream.url}{ZST_PATH}"
    assert dest.read_bytes() == channel.repodata
    assert result.sha256 == hashlib.sha256(channel.repodata).hexdigest()
    assert result.etag is not None
    assert result.last_modified is not None
    assert upstream.paths_requested() == [ZST_PATH]
    assert leftovers(dest.parent) == []


async def test_repodata_falls_back_to_json(
    upstream: FakeUpstream, channel: Channel, tmp_path: Path
) -> None:
    channel.remove_zst()
    dest = tmp_path / "repodata.json"

    result = await fetch(upstream.url, dest)

    assert result.url == f"{upstream.url}{JSON_PATH}"
    assert dest.read_bytes() == channel.repodata
    assert [(entry.path, entry.status) for entry in upstream.requests] == [
        (ZST_PATH, 404),
        (JSON_PATH, 200),
    ]


async def test_repodata_second_fetch_304(upstream: FakeUpstream, tmp_path: Path) -> None:
    dest = tmp_path / "repodata.json"
    first = await fetch(upstream.url, dest)
    before = dest.stat()
    upstream.clear()

    second = await fetch(upstream.url, dest, first.validators)

    assert second.not_modified is True
    assert second.sha256 is None
    assert second.etag == first.etag
    assert dest.stat().st_mtime_ns == before.st_mtime_ns
    assert dest.stat().st_ino == before.st_ino
    [request] = upstream.requests
    assert request.status == 304
    assert request.headers["If-None-Match"] == first.etag
    assert request.headers["If-Modified-Since"] == first.last_modified


async def test_repodata_no_conditional_without_dest(upstream: FakeUpstream, tmp_path: Path) -> None:
    dest = tmp_path / "repodata.json"
    first = await fetch(upstream.url, dest)
    dest.unlink()
    upstream.clear()

    second = await fetch(upstream.url, dest, first.validators)

    assert second.not_modified is False
    assert dest.is_file()
    [request] = upstream.requests
    assert "If-None-Match" not in request.headers
    assert request.status == 200


async def test_repodata_no_conditional_for_other_url(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    dest = tmp_path / "repodata.json"
    first = await fetch(upstream.url, dest)
    upstream.clear()
    other = CacheValidators(
        url=f"{upstream.url}{JSON_PATH}", etag=first.etag, last_modified=first.last_modified
    )

    second = await fetch(upstream.url, dest, other)

    assert second.not_modified is False
    assert "If-None-Match" not in upstream.requests[0].headers


async def test_repodata_retries_500(
    upstream: FakeUpstream, channel: Channel, tmp_path: Path
) -> None:
    upstream.add_fault(ZST_PATH, Fault("status", code=500, times=2))
    dest = tmp_path / "repodata.json"

    result = await fetch(upstream.url, dest)

    assert dest.read_bytes() == channel.repodata
    assert result.not_modified is False
    assert [entry.status for entry in upstream.requests] == [500, 500, 200]


async def test_repodata_500_exhausts_retries(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.add_fault(ZST_PATH, Fault("status", code=503, times=None))
    dest = tmp_path / "repodata.json"

    with pytest.raises(UpstreamError) as caught:
        await fetch(upstream.url, dest, retries=2)

    assert caught.value.status == 503
    assert len(upstream.requests) == 3
    assert not dest.exists()


async def test_repodata_429_retry_after(
    upstream: FakeUpstream, channel: Channel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Retry-After requests 30 s and max_backoff_seconds=0.05 caps the wait.
    # The log line shows which wait was chosen.
    upstream.add_fault(ZST_PATH, Fault("status", code=429, retry_after=30))
    dest = tmp_path / "repodata.json"
    caplog.set_level(logging.WARNING, logger="mirror.upstream")

    await fetch(upstream.url, dest, max_backoff_seconds=0.05)

    assert dest.read_bytes() == channel.repodata
    assert [entry.status for entry in upstream.requests] == [429, 200]
    assert "retry 1 of 2 in 0.05 s" in caplog.text


async def test_repodata_404_both_not_retried(
    upstream: FakeUpstream, channel: Channel, tmp_path: Path
) -> None:
    channel.remove_zst()
    (channel.root / SUBDIR / "repodata.json").unlink()

    with pytest.raises(UpstreamError) as caught:
        await fetch(upstream.url, tmp_path / "repodata.json")

    assert "no repodata for linux-64" in str(caught.value)
    assert upstream.paths_requested() == [ZST_PATH, JSON_PATH]


async def test_repodata_403_json_not_retried(
    upstream: FakeUpstream, channel: Channel, tmp_path: Path
) -> None:
    channel.remove_zst()
    upstream.add_fault(JSON_PATH, Fault("status", code=403, times=None))

    with pytest.raises(UpstreamError) as caught:
        await fetch(upstream.url, tmp_path / "repodata.json")

    assert caught.value.status == 403
    assert upstream.paths_requested() == [ZST_PATH, JSON_PATH]


async def test_repodata_chunked_unterminated(
    upstream: FakeUpstream, channel: Channel, tmp_path: Path
) -> None:
    channel.remove_zst()
    upstream.add_fault(JSON_PATH, Fault("chunked_unterminated", after_bytes=20, times=None))
    dest = tmp_path / "repodata.json"

    with pytest.raises(UpstreamError) as caught:
        await fetch(upstream.url, dest)

    assert "ended early after 20 bytes" in str(caught.value)
    assert not dest.exists()
    assert leftovers(tmp_path) == []

    upstream.clear()
    await fetch(upstream.url, dest)
    assert dest.read_bytes() == channel.repodata


async def test_repodata_truncated_keeps_old(
    upstream: FakeUpstream, channel: Channel, tmp_path: Path
) -> None:
    dest = tmp_path / "repodata.json"
    dest.write_bytes(b"{}")
    upstream.add_fault(ZST_PATH, Fault("truncate", after_bytes=10, times=None))

    with pytest.raises(UpstreamError, match="short read"):
        await fetch(upstream.url, dest)

    assert dest.read_bytes() == b"{}"
    assert leftovers(tmp_path) == []


async def test_repodata_zstd_bomb_rejected(
    upstream: FakeUpstream, channel: Channel, tmp_path: Path
) -> None:
    bomb = zstandard.ZstdCompressor().compress(b"\0" * (8 * 1024 * 1024))
    (channel.root / SUBDIR / "repodata.json.zst").write_bytes(bomb)
    dest = tmp_path / "repodata.json"

    with pytest.raises(UpstreamError, match="exceeds 1048576 bytes decompressed"):
        async with UpstreamClient("fake", make_config(upstream.url), tmp_dir=tmp_path) as client:
            await client.fetch_repodata(SUBDIR, dest, None, max_bytes=1024 * 1024)

    assert not dest.exists()
    assert leftovers(tmp_path) == []
    assert len(upstream.requests) == 1


async def test_repodata_incomplete_zstd(
    upstream: FakeUpstream, channel: Channel, tmp_path: Path
) -> None:
    whole = zstandard.ZstdCompressor().compress(channel.repodata * 50)
    (channel.root / SUBDIR / "repodata.json.zst").write_bytes(whole[: len(whole) // 2])
    dest = tmp_path / "repodata.json"

    with pytest.raises(UpstreamError, match="not a complete zstd stream"):
        await fetch(upstream.url, dest)

    assert not dest.exists()
    assert len(upstream.requests) == 1


async def test_repodata_multiple_zstd_frames(
    upstream: FakeUpstream, channel: Channel, tmp_path: Path
) -> None:
    compressor = zstandard.ZstdCompressor()
    half = len(channel.repodata) // 2
    frames = compressor.compress(channel.repodata[:half]) + compressor.compress(
        channel.repodata[half:]
    )
    (channel.root / SUBDIR / "repodata.json.zst").write_bytes(frames)
    dest = tmp_path / "repodata.json"

    await fetch(upstream.url, dest)

    assert dest.read_bytes() == channel.repodata


async def test_repodata_token_in_path_not_logged(
    channel: Channel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cr3t-token"
    caplog.set_level(logging.DEBUG)
    dest = tmp_path / "repodata.json"

    with FakeUpstream(channel.root, token=secret) as upstream:
        upstream.add_fault(ZST_PATH, Fault("status", code=500))
        result = await fetch(upstream.url, dest, token=secret)

    assert dest.read_bytes() == channel.repodata
    assert upstream.paths_requested() == [f"/t/{secret}{ZST_PATH}"] * 2
    assert secret not in result.url
    assert "retry 1 of 2" in caplog.text
    assert secret not in caplog.text


async def test_repodata_token_from_env(
    channel: Channel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_UPSTREAM_TOKEN", "env-token")

    with FakeUpstream(channel.root, token="env-token") as upstream:
        await fetch(upstream.url, tmp_path / "repodata.json", token_env="FAKE_UPSTREAM_TOKEN")

    assert upstream.paths_requested() == [f"/t/env-token{ZST_PATH}"]


async def test_repodata_wrong_token_not_logged(
    channel: Channel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    with FakeUpstream(channel.root, token="right") as upstream:
        base_url = upstream.url
        with pytest.raises(UpstreamError) as caught:
            await fetch(base_url, tmp_path / "repodata.json", token="wrong-secret")

    assert caught.value.status == 401
    assert str(caught.value).startswith(f"{base_url}{ZST_PATH} returned HTTP 401")
    assert "wrong-secret" not in str(caught.value)
    assert "wrong-secret" not in caplog.text


async def test_repodata_file_url_prefers_zst(channel: Channel, tmp_path: Path) -> None:
    (channel.root / SUBDIR / "repodata.json").write_bytes(b"not the one")
    dest = tmp_path / "repodata.json"

    result = await fetch(channel.root.as_uri(), dest)

    assert result.not_modified is False
    assert result.url.endswith("/linux-64/repodata.json.zst")
    assert dest.read_bytes() == channel.repodata
    assert result.sha256 == hashlib.sha256(channel.repodata).hexdigest()


async def test_repodata_file_url_json(channel: Channel, tmp_path: Path) -> None:
    channel.remove_zst()
    dest = tmp_path / "repodata.json"

    result = await fetch(channel.root.as_uri(), dest)

    assert result.url.endswith("/linux-64/repodata.json")
    assert dest.read_bytes() == channel.repodata


async def test_repodata_file_url_missing(tmp_path: Path) -> None:
    with pytest.raises(UpstreamError, match="no repodata for linux-64"):
        await fetch(tmp_path.as_uri(), tmp_path / "out" / "repodata.json")
