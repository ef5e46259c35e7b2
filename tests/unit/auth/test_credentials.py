"""Parsing basic, bearer and path-token credentials."""

from __future__ import annotations

import base64

import pytest

from mirror.auth.credentials import (
    CredentialsError,
    PasswordCredentials,
    TokenCredentials,
    parse_credentials,
)
from mirror.auth.tokens import generate_token


def basic_header(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode("utf-8")).decode()


def test_basic_special_characters():
    credentials = parse_credentials(basic_header("O'Brien@x:p@ss:w/rd%41\\x"), None)

    assert credentials == PasswordCredentials("O'Brien@x", "p@ss:w/rd%41\\x")


def test_basic_no_percent_decoding():
    credentials = parse_credentials(basic_header("u:%41"), None)

    assert credentials.password == "%41"


def test_basic_empty_password_parsed():
    # Parsed here, rejected by the authenticator before any bind.
    assert parse_credentials(basic_header("carol:"), None) == PasswordCredentials("carol", "")


@pytest.mark.parametrize(
    "header",
    [basic_header("no-colon"), basic_header(":password"), basic_header("x\x00:p"), "Basic !!!notbase64",
     "Basic " + base64.b64encode(b"\xff\xfe:p").decode(), "Digest abc", basic_header("u" * 300 + ":p")],
    ids=["no-colon", "empty-user", "nul-in-user", "bad-base64", "not-utf8", "other-scheme", "long-user"],
)
def test_malformed_header_rejected(header):
    with pytest.raises(CredentialsError) as failure:
        parse_credentials(header, None)

    assert "password" not in str(failure.value).lower() or "username:password" in str(failure.value)


def test_bearer_and_path_token():
    token = generate_token()

    assert parse_credentials(f"Bearer {token}", None) == TokenCredentials(token, "bearer")
    assert parse_credentials(basic_header("a:b"), token) == TokenCredentials(token, "path")


def test_malformed_token_rejected():
    with pytest.raises(CredentialsError):
        parse_credentials(None, "cdm_short")


def test_repr_hides_secrets():
    token = generate_token()

    assert "secret" not in repr(PasswordCredentials("u", "secret"))
    assert token not in repr(TokenCredentials(token, "path"))


def test_no_credentials():
    assert parse_credentials(None, None) is None
