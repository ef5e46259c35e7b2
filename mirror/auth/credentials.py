"""Credentials a request carries: HTTP basic auth, a bearer token or a conda token in the path.

Basic credentials are read as RFC 7617 sends them: base64 of
`username:password` in UTF-8, split at the first colon, so a password may
contain `:`, `@`, `/`, `%` and `\\`. The server does not percent-decode
them. Clients that take credentials from a URL (`https://user:pa%40ss@host`)
percent-decode them before encoding the header.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from mirror.auth.tokens import TOKEN_PATTERN

MAX_USERNAME_CHARS = 256
MAX_PASSWORD_CHARS = 1024

# C0 control characters and DEL: no directory or local user name contains one.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class CredentialsError(ValueError):
    """The Authorization header or path token is malformed; the message never contains it."""


@dataclass(frozen=True)
class PasswordCredentials:
    username: str
    password: str

    def __repr__(self) -> str:
        return f"PasswordCredentials(username={self.username!r}, password=<redacted>)"


@dataclass(frozen=True)
class TokenCredentials:
    token: str
    source: str

    def __repr__(self) -> str:
        return f"TokenCredentials(source={self.source!r}, token=<redacted>)"


Credentials = PasswordCredentials | TokenCredentials


def parse_credentials(authorization: str | None, path_token: str | None) -> Credentials | None:
    """Return the credentials of a request, or None when it carries none.

    A token in the path is used even when an Authorization header is sent
    too, because conda clients add the path token to every URL they fetch.
    Raises CredentialsError when the header or token is malformed.
    """
    if path_token is not None:
        return _token(path_token, "path")
    if authorization is None:
        return None

    scheme, _, value = authorization.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        return parse_basic(value.strip())
    if scheme == "bearer":
        return _token(value.strip(), "bearer")
    raise CredentialsError("unsupported Authorization scheme; send Basic or Bearer credentials")


def parse_basic(value: str) -> PasswordCredentials:
    """Decode the value of a `Basic` Authorization header."""
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise CredentialsError("basic credentials are not base64 of UTF-8 text") from None

    username, colon, password = decoded.partition(":")
    if not colon:
        raise CredentialsError("basic credentials must be username:password")
    check_username(username)
    if len(password) > MAX_PASSWORD_CHARS:
        raise CredentialsError(f"password is longer than {MAX_PASSWORD_CHARS} characters")
    return PasswordCredentials(username, password)


def check_username(username: str) -> None:
    """Reject user names that no directory entry can have, before any directory request."""
    if not username:
        raise CredentialsError("user name is empty")
    if len(username) > MAX_USERNAME_CHARS:
        raise CredentialsError(f"user name is longer than {MAX_USERNAME_CHARS} characters")
    if _CONTROL.search(username):
        raise CredentialsError("user name contains a control character")


def _token(token: str, source: str) -> TokenCredentials:
    if not TOKEN_PATTERN.fullmatch(token):
        raise CredentialsError("token is malformed; create a new one with POST /api/tokens")
    return TokenCredentials(token, source)
