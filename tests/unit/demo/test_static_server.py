"""Tests of mirror.demo.upstream_server over real HTTP on 127.0.0.1."""

from __future__ import annotations

import http.client
import os
from urllib.parse import urlsplit

import pytest

from mirror.demo.upstream_server import StaticChannelServer

CONTENT = bytes(range(256)) * 4


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "channel"
    (root / "noarch").mkdir(parents=True)
    (root / "noarch" / "repodata.json").write_bytes(CONTENT)
    (root / "noarch" / ".hidden").write_bytes(b"hidden")
    (tmp_path / "secret.txt").write_bytes(b"outside the root")
    with StaticChannelServer(root) as server:
        yield server


def request(server, method, path, headers=None):
    """Send one raw request (no path normalisation) and return (status, headers, body)."""
    address = urlsplit(server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def test_server_url_loopback(served):
    address = urlsplit(served.url)

    assert address.scheme == "http"
    assert address.hostname == "127.0.0.1"
    assert address.port > 0


def test_server_get(served):
    status, headers, body = request(served, "GET", "/noarch/repodata.json")

    assert status == 200
    assert body == CONTENT
    assert int(headers["Content-Length"]) == len(CONTENT)
    assert headers["ETag"]


def test_server_head(served):
    status, headers, body = request(served, "HEAD", "/noarch/repodata.json")

    assert status == 200
    assert body == b""
    assert int(headers["Content-Length"]) == len(CONTENT)


def test_server_range(served):
    status, headers, body = request(
        served, "GET", "/noarch/repodata.json", {"Range": "bytes=100-199"}
    )

    assert status == 206
    assert body == CONTENT[100:200]
    assert headers["Content-Range"] == f"bytes 100-199/{len(CONTENT)}"


def test_server_etag_not_modified(served):
    _, headers, _ = request(served, "GET", "/noarch/repodata.json")

    status, _, body = request(
        served, "GET", "/noarch/repodata.json", {"If-None-Match": headers["ETag"]}
    )

    assert status == 304
    assert body == b""


@pytest.mark.parametrize(
    "path",
    [
        "/noarch/missing.json",
        "/noarch",
        "/",
        "/noarch/.hidden",
        "/../secret.txt",
        "/noarch/%2e%2e/%2e%2e/secret.txt",
        "/noarch/..%2f..%2fsecret.txt",
    ],
    ids=["missing", "folder", "root", "hidden", "dotdot", "encoded-dotdot", "encoded-slash"],
)
def test_server_not_found(served, path):
    status, _, body = request(served, "GET", path)

    assert status == 404
    assert b"outside the root" not in body


def test_server_symlink_escape(tmp_path):
    root = tmp_path / "channel"
    root.mkdir()
    (tmp_path / "secret.txt").write_bytes(b"outside the root")
    os.symlink(tmp_path / "secret.txt", root / "link.txt")

    with StaticChannelServer(root) as server:
        status, _, body = request(server, "GET", "/link.txt")

    assert status == 404
    assert b"outside the root" not in body


def test_server_url_before_start(tmp_path):
    server = StaticChannelServer(tmp_path)

    with pytest.raises(RuntimeError, match="call start"):
        server.url


def test_server_missing_root(tmp_path):
    server = StaticChannelServer(tmp_path / "absent")

    with pytest.raises(FileNotFoundError, match="absent"):
        server.start()


def test_server_stop_closes_port(tmp_path):
    server = StaticChannelServer(tmp_path)
    server.start()
    address = urlsplit(server.url)
    server.stop()
    server.stop()

    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    with pytest.raises(ConnectionRefusedError):
        connection.request("GET", "/")
    connection.close()


def test_server_restart(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"a")
    server = StaticChannelServer(tmp_path)

    server.start()
    server.stop()
    with server:
        status, _, body = request(server, "GET", "/a.txt")

    assert status == 200
    assert body == b"a"
