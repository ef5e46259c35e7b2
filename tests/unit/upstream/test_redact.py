"""Tests for mirror.upstream.redact."""

from __future__ import annotations

import pytest

from mirror.upstream.redact import redact_text, redact_url

CASES = [
    (
        "https://host/t/abc123/conda-forge/linux-64/x.conda",
        "https://host/t/***/conda-forge/linux-64/x.conda",
    ),
    ("https://host/t/abc123", "https://host/t/***"),
    ("https://user:pw@host/channel", "https://user:***@host/channel"),
    ("https://tokenonly@host/channel", "https://***@host/channel"),
    (
        "https://host/f.conda?X-Amz-Signature=abc&part=1",
        "https://host/f.conda?X-Amz-Signature=***&part=1",
    ),
    ("https://host/f?token=abc", "https://host/f?token=***"),
    (
        "https://host/conda-forge/linux-64/repodata.json",
        "https://host/conda-forge/linux-64/repodata.json",
    ),
    ("file:///srv/channel/noarch/repodata.json", "file:///srv/channel/noarch/repodata.json"),
    ("http://u:p@127.0.0.1:8080/t/tok/ch", "http://u:***@127.0.0.1:8080/t/***/ch"),
]


@pytest.mark.parametrize(("url", "redacted"), CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_redact_url_cases(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


@pytest.mark.parametrize("url", [url for url, _ in CASES])
def test_redact_url_idempotent(url: str) -> None:
    once = redact_url(url)

    assert redact_url(once) == once


def test_redact_text_masks_secret_and_urls() -> None:
    message = "Connection timeout to host https://u:pw@h/t/abc/ch while using key s3cr3t"

    redacted = redact_text(message, ["s3cr3t"])

    assert "s3cr3t" not in redacted
    assert "pw" not in redacted
    assert "/t/abc/" not in redacted
    assert redacted == "Connection timeout to host https://u:***@h/t/***/ch while using key ***"
