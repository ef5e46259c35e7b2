"""Tests for tests.support.fake_upstream, written as plain synchronous tests.

They double as examples of using FakeUpstream without an event loop.
"""

from __future__ import annotations

import http.client
from pathlib import Path

import pytest

from tests.support.fake_upstream import FakeUpstream, Fault

BODY = bytes(range(256)) * 4


@pytest.fixture
def server(tmp_path: Path):
    root = tmp_path / "root"
    (root / "noarch").mkdir(parents=True)
    (root / "noarch" / "pkg.conda").write_bytes(BODY)
    (tmp_path / "outside.txt").write_text("secret")
    with FakeUpstream(root) as upstream:
        yield upstream


def request(
    server: FakeUpstream, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_fake_get_and_validators(server: FakeUpstream) -> None:
    status, headers, body = request(server, "/noarch/pkg.conda")

    assert status == 200
    assert body == BODY
    assert headers["ETag"].startswith('"')
    assert "GMT" in headers["Last-Modified"]
    assert headers["Accept-Ranges"] == "bytes"


def test_fake_head(server: FakeUpstream) -> None:
    status, headers, body = request(server, "/noarch/pkg.conda", method="HEAD")

    assert status == 200
    assert headers["Content-Length"] == str(len(BODY))
    assert body == b""


@pytest.mark.parametrize(
    "path", ["/noarch/missing.conda", "/noarch", "/../outside.txt", "/%2e%2e/outside.txt"]
)
def test_fake_not_found(server: FakeUpstream, path: str) -> None:
    status, _headers, body = request(server, path)

    assert status == 404
    assert b"secret" not in body


def test_fake_304(server: FakeUpstream) -> None:
    _status, headers, _body = request(server, "/noarch/pkg.conda")

    by_etag = request(server, "/noarch/pkg.conda", headers={"If-None-Match": headers["ETag"]})
    by_date = request(
        server, "/noarch/pkg.conda", headers={"If-Modified-Since": headers["Last-Modified"]}
    )
    other_etag = request(server, "/noarch/pkg.conda", headers={"If-None-Match": '"other"'})

    assert by_etag[0] == 304
    assert by_etag[2] == b""
    assert by_date[0] == 304
    assert other_etag[0] == 200


@pytest.mark.parametrize(
    ("header", "content_range", "expected"),
    [
        ("bytes=10-19", "bytes 10-19/1024", BODY[10:20]),
        ("bytes=1000-", "bytes 1000-1023/1024", BODY[1000:]),
        ("bytes=-4", "bytes 1020-1023/1024", BODY[-4:]),
        ("bytes=1000-5000", "bytes 1000-1023/1024", BODY[1000:]),
    ],
)
def test_fake_range(server: FakeUpstream, header: str, content_range: str, expected: bytes) -> None:
    status, headers, body = request(server, "/noarch/pkg.conda", headers={"Range": header})

    assert status == 206
    assert headers["Content-Range"] == content_range
    assert body == expected


def test_fake_range_unsatisfiable(server: FakeUpstream) -> None:
    status, headers, _body = request(server, "/noarch/pkg.conda", headers={"Range": "bytes=5000-"})

    assert status == 416
    assert headers["Content-Range"] == "bytes */1024"


def test_fake_if_range(server: FakeUpstream) -> None:
    _status, headers, _body = request(server, "/noarch/pkg.conda")

    matching = request(
        server, "/noarch/pkg.conda", headers={"Range": "bytes=1-", "If-Range": headers["ETag"]}
    )
    stale = request(server, "/noarch/pkg.conda", headers={"Range": "bytes=1-", "If-Range": '"old"'})

    assert matching[0] == 206
    assert stale[0] == 200
    assert stale[2] == BODY


def test_fake_status_fault_times(server: FakeUpstream) -> None:
    server.add_fault("/noarch/pkg.conda", Fault("status", code=503, retry_after=7, times=2))

    statuses = [request(server, "/noarch/pkg.conda") for _ in range(3)]

    assert [status for status, _headers, _body in statuses] == [503, 503, 200]
    assert statuses[0][1]["Retry-After"] == "7"
    assert [entry.status for entry in server.requests] == [503, 503, 200]


def test_fake_fault_method_filter(server: FakeUpstream) -> None:
    server.add_fault("/noarch/pkg.conda", Fault("status", code=500))

    head_status = request(server, "/noarch/pkg.conda", method="HEAD")[0]
    get_status = request(server, "/noarch/pkg.conda")[0]

    assert head_status == 200
    assert get_status == 500


def test_fake_truncate(server: FakeUpstream) -> None:
    server.add_fault("/noarch/pkg.conda", Fault("truncate", after_bytes=100))

    with pytest.raises(http.client.IncompleteRead) as caught:
        request(server, "/noarch/pkg.conda")

    assert len(caught.value.partial) == 100


def test_fake_corrupt(server: FakeUpstream) -> None:
    server.add_fault("/noarch/pkg.conda", Fault("corrupt", offset=3))

    _status, _headers, body = request(server, "/noarch/pkg.conda")

    assert len(body) == len(BODY)
    assert body[3] == BODY[3] ^ 0xFF
    assert body[:3] + body[4:] == BODY[:3] + BODY[4:]


def test_fake_clear(server: FakeUpstream) -> None:
    server.add_fault("/noarch/pkg.conda", Fault("status", times=None))
    request(server, "/noarch/pkg.conda")

    server.clear()

    assert server.requests == []
    assert request(server, "/noarch/pkg.conda")[0] == 200
    assert server.paths_requested(".conda") == ["/noarch/pkg.conda"]


def test_fake_token(tmp_path: Path) -> None:
    (tmp_path / "noarch").mkdir()
    (tmp_path / "noarch" / "pkg.conda").write_bytes(BODY)

    with FakeUpstream(tmp_path, token="abc") as server:
        without = request(server, "/noarch/pkg.conda")[0]
        wrong = request(server, "/t/xyz/noarch/pkg.conda")[0]
        right = request(server, "/t/abc/noarch/pkg.conda")[0]

    assert (without, wrong, right) == (401, 401, 200)


def test_fake_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("slow")  # type: ignore[arg-type]
