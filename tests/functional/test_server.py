"""The channel server over real HTTP on 127.0.0.1, serving a channel built by the publisher."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from mirror.config.schema import MirrorConfig, ServerConfig
from mirror.publish import PublishedFile, publish_channel
from mirror.server import create_app, runner_options, serve
from mirror.store.filesystem import FilesystemBlobStore
from tests.support.corpus import CORPUS_DIR, require_corpus

CORPUS_SUBDIR = CORPUS_DIR / "channels/conda-format-repo/linux-64"
CONDA_FILE = "zlib-1.2.11-h7b6447c_3.conda"
TAR_BZ2_FILE = "zlib-1.2.11-h7b6447c_3.tar.bz2"
OUTSIDE_FILE = "outside-1.0-0.conda"
OUTSIDE_BYTES = b"bytes that live outside the channels folder"


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@pytest.fixture
def config(tmp_path: Path) -> MirrorConfig:
    return MirrorConfig.model_validate(
        {
            "data_dir": tmp_path / "data",
            "upstreams": {"upstream": {"url": "http://127.0.0.1:9"}},
            "channels": {"main": {}, "empty": {}},
        }
    )


@pytest.fixture
def channel(config: MirrorConfig, tmp_path: Path) -> Path:
    """Publish the two zlib files of the corpus channel into `main`, through the real blob store."""
    require_corpus()
    upstream = json.loads((CORPUS_SUBDIR / "repodata.json").read_bytes())
    records = {
        CONDA_FILE: upstream["packages.conda"][CONDA_FILE],
        TAR_BZ2_FILE: upstream["packages"][TAR_BZ2_FILE],
    }
    store = FilesystemBlobStore(config.store_dir)
    files = {}
    for filename, record in records.items():
        incoming = tmp_path / f"incoming-{filename}"
        shutil.copyfile(CORPUS_SUBDIR / filename, incoming)
        store.add_verified_file(incoming, record["sha256"])
        files[filename] = PublishedFile(record, record["sha256"])

    channel_dir = config.channels_dir / "main"
    publish_channel(channel_dir, {"linux-64": files}, store.link, all_subdirs=["linux-64"])
    (config.data_dir / OUTSIDE_FILE).write_bytes(OUTSIDE_BYTES)
    return channel_dir


@pytest.fixture
async def client(config: MirrorConfig, channel: Path):
    server = TestServer(create_app(config), host="127.0.0.1")
    await server.start_server(**runner_options())
    async with TestClient(server) as test_client:
        yield test_client


async def raw_request(client: TestClient, target: str, method: str = "GET") -> RawResponse:
    """Send a request line exactly as written, so no client library normalises the path."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        writer.write(
            f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()

    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return RawResponse(int(status_line.split()[1]), headers, body)


async def test_healthz_get_and_head(client):
    response = await client.get("/healthz")
    head = await client.head("/healthz")

    assert response.status == 200
    assert await response.json() == {"status": "ok"}
    assert head.status == 200
    assert await head.read() == b""


async def test_repodata_get(client, channel):
    response = await client.get("/main/linux-64/repodata.json")

    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-cache"
    assert "ETag" in response.headers
    assert "Last-Modified" in response.headers
    assert await response.read() == (channel / "linux-64/repodata.json").read_bytes()


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/main/channeldata.json", "application/json"),
        ("/main/linux-64/current_repodata.json", "application/json"),
        ("/main/linux-64/repodata.json.zst", "application/zstd"),
        ("/main/linux-64/repodata.json.bz2", "application/x-bzip2"),
        ("/main/noarch/repodata.json", "application/json"),
        (f"/main/linux-64/{CONDA_FILE}", "application/octet-stream"),
        (f"/main/linux-64/{TAR_BZ2_FILE}", "application/octet-stream"),
    ],
)
async def test_content_types(client, path, content_type):
    response = await client.get(path, headers={"Accept-Encoding": "identity"})

    assert response.status == 200
    assert response.headers["Content-Type"] == content_type
    assert "Content-Encoding" not in response.headers


async def test_package_get_bytes(client):
    response = await client.get(f"/main/linux-64/{TAR_BZ2_FILE}", auto_decompress=False)

    assert response.status == 200
    assert await response.read() == (CORPUS_SUBDIR / TAR_BZ2_FILE).read_bytes()
    assert response.headers["Cache-Control"] == "max-age=31536000"
    assert response.headers["Accept-Ranges"] == "bytes"


async def test_package_head(client):
    response = await client.head(f"/main/linux-64/{CONDA_FILE}")

    assert response.status == 200
    assert int(response.headers["Content-Length"]) == (CORPUS_SUBDIR / CONDA_FILE).stat().st_size
    assert await response.read() == b""


async def test_etag_not_modified(client):
    first = await client.get("/main/linux-64/repodata.json")
    etag = first.headers["ETag"]

    second = await client.get("/main/linux-64/repodata.json", headers={"If-None-Match": etag})

    assert second.status == 304
    assert await second.read() == b""
    assert second.headers["ETag"] == etag


async def test_etag_changes_on_republish(client, channel, config):
    before = (await client.get("/main/linux-64/repodata.json")).headers["ETag"]
    store = FilesystemBlobStore(config.store_dir)
    publish_channel(channel, {}, store.link, all_subdirs=["linux-64"])

    response = await client.get("/main/linux-64/repodata.json", headers={"If-None-Match": before})

    assert response.status == 200
    assert (await response.json())["packages"] == {}


async def test_range_partial_content(client):
    expected = (CORPUS_SUBDIR / CONDA_FILE).read_bytes()

    response = await client.get(f"/main/linux-64/{CONDA_FILE}", headers={"Range": "bytes=100-199"})

    assert response.status == 206
    assert response.headers["Content-Range"] == f"bytes 100-199/{len(expected)}"
    assert await response.read() == expected[100:200]


async def test_symlink_into_store_served(client, channel, config):
    sha256 = json.loads((CORPUS_SUBDIR / "repodata.json").read_bytes())["packages.conda"][
        CONDA_FILE
    ]["sha256"]
    (channel / "linux-64/linked-1.0-0.conda").symlink_to(
        FilesystemBlobStore(config.store_dir).path_for(sha256)
    )

    response = await client.get("/main/linux-64/linked-1.0-0.conda")

    assert response.status == 200
    assert await response.read() == (CORPUS_SUBDIR / CONDA_FILE).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/other/linux-64/repodata.json",
        "/other/channeldata.json",
        "/empty/channeldata.json",
        "/main/osx-arm64/repodata.json",
        "/main/Linux-64/repodata.json",
        "/main/linux-64/missing-1.0-0.conda",
        "/main/linux-64/repodata.json.gz",
        "/main/linux-64/repodata_shards.msgpack.zst",
        "/main/linux-64/.publish-state.json",
        "/main/.publish-state.json",
        "/main/linux-64",
        "/main",
        "/",
    ],
    ids=[
        "channel",
        "channel-channeldata",
        "unpublished-channel",
        "subdir",
        "subdir-pattern",
        "package",
        "index-name",
        "shards",
        "hidden-file",
        "state-file",
        "subdir-listing",
        "channel-listing",
        "root",
    ],
)
async def test_unknown_paths_not_found(client, path):
    response = await client.get(path)

    assert response.status == 404
    assert response.headers["Content-Type"].startswith("application/json")
    assert await response.json() == {"error": "not found"}


TRAVERSALS = [
    f"/main/linux-64/../../../{OUTSIDE_FILE}",
    f"/main/linux-64/%2e%2e/%2e%2e/%2e%2e/{OUTSIDE_FILE}",
    f"/main/linux-64/..%2f..%2f..%2f{OUTSIDE_FILE}",
    f"/main/linux-64/%2e%2e%2f%2e%2e%2f%2e%2e%2f{OUTSIDE_FILE}",
    f"/main/%2e%2e/linux-64/{CONDA_FILE}",
    f"/%2e%2e/main/linux-64/{CONDA_FILE}",
    "/main/linux-64/%2fetc%2fpasswd",
    f"/main/linux-64//{OUTSIDE_FILE}",
    "//etc/passwd",
    f"/main/linux-64/..\\..\\..\\{OUTSIDE_FILE}",
    f"/main/linux-64/..%5c..%5c..%5c{OUTSIDE_FILE}",
    f"/main/linux-64/%00{CONDA_FILE}",
    f"/main/linux-64%2f..%2f..%2f..%2f{OUTSIDE_FILE}",
]


@pytest.mark.parametrize("target", TRAVERSALS)
async def test_traversal_not_found(client, target):
    response = await raw_request(client, target)

    assert response.status == 404
    assert json.loads(response.body) == {"error": "not found"}
    assert OUTSIDE_BYTES not in response.body
    for fragment in ("outside", "passwd", "..", "%2e", "%2f", "\\", "%5c"):
        assert fragment not in response.body.decode(), fragment


async def test_traversal_head_not_found(client):
    response = await raw_request(
        client, f"/main/linux-64/%2e%2e%2f%2e%2e%2f{OUTSIDE_FILE}", method="HEAD"
    )

    assert response.status == 404
    assert response.body == b""


async def test_absolute_request_target_not_found(client):
    response = await raw_request(
        client, f"http://127.0.0.1/main/linux-64/..%2f..%2f..%2f{OUTSIDE_FILE}"
    )

    assert response.status == 404
    assert OUTSIDE_BYTES not in response.body


async def test_symlink_outside_not_served(client, channel, config):
    (channel / "linux-64/escape-1.0-0.conda").symlink_to(config.data_dir / OUTSIDE_FILE)

    response = await client.get("/main/linux-64/escape-1.0-0.conda")

    assert response.status == 404
    assert await response.json() == {"error": "not found"}


async def test_symlinked_subdir_outside_not_served(client, channel, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "repodata.json").write_text('{"secret": true}')
    (channel / "win-64").symlink_to(elsewhere, target_is_directory=True)

    response = await client.get("/main/win-64/repodata.json")

    assert response.status == 404
    assert b"secret" not in await response.read()


async def test_unreadable_index_server_error(client, channel):
    index = channel / "linux-64/current_repodata.json"
    index.unlink()
    index.mkdir()

    response = await client.get("/main/linux-64/current_repodata.json")

    assert response.status == 500
    assert await response.json() == {"error": "file could not be read"}


async def test_dangling_package_link_server_error(client, channel, tmp_path):
    (channel / "linux-64/dangling-1.0-0.conda").symlink_to(channel / "linux-64/gone-1.0-0.conda")

    response = await client.get("/main/linux-64/dangling-1.0-0.conda")

    assert response.status == 500
    assert b"dangling" not in await response.read()


async def test_method_not_allowed_json(client):
    response = await client.post("/main/linux-64/repodata.json")

    assert response.status == 405
    assert await response.json() == {"error": "method not allowed"}
    assert "GET" in response.headers["Allow"]


async def test_access_log_without_query(client, caplog):
    caplog.set_level(logging.INFO, logger="mirror.server.access")

    response = await client.get(f"/main/linux-64/{CONDA_FILE}?token=s3cret", auto_decompress=False)
    await response.read()
    await client.get("/t/abc123token/main/linux-64/repodata.json")

    lines = [
        record.getMessage() for record in caplog.records if record.name == "mirror.server.access"
    ]
    size = (CORPUS_SUBDIR / CONDA_FILE).stat().st_size
    assert f"GET /main/linux-64/{CONDA_FILE} 200 {size} bytes" in lines[0]
    assert all("s3cret" not in line for line in lines)
    assert "GET /t/<redacted>/main/linux-64/repodata.json 404" in lines[1]
    assert all("abc123token" not in line for line in lines)


async def test_channel_dir_missing_not_found(config):
    server = TestServer(create_app(config), host="127.0.0.1")
    async with TestClient(server) as test_client:
        response = await test_client.get("/main/noarch/repodata.json")

    assert response.status == 404
    assert not os.path.exists(config.channels_dir)


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_serve_until_cancelled(config, channel):
    port = free_loopback_port()
    served = config.model_copy(update={"server": ServerConfig(host="127.0.0.1", port=port)})
    task = asyncio.create_task(serve(served))
    try:
        status = await _healthz_status(port)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    assert status == 200
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def _healthz_status(port: int) -> int:
    """Return the /healthz status once the server accepts connections (up to about 10 s)."""
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    return response.status
            except aiohttp.ClientConnectorError:
                await asyncio.sleep(0.05)
    raise AssertionError(f"server on 127.0.0.1:{port} did not start")
