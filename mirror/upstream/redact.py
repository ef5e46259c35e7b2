"""Remove credentials from URLs and error texts before they reach a log or a database.

Three places in a URL can carry a secret: a conda token path segment
(`/t/<token>/`), the password of the userinfo (`user:pw@host`), and query
parameters such as presigned-URL signatures. Redaction keeps the rest of the
URL so that a log line still names the file requested.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

_TOKEN_SEGMENT = re.compile(r"(?<=/t/)[^/?#\s'\"]+")
_USERINFO = re.compile(r"(?<=://)([^/@\s'\"]*)@")
_SECRET_QUERY_KEYS = re.compile(r"token|secret|password|passwd|signature|sig$|credential|key", re.I)


def redact_url(url: str) -> str:
    """Return `url` with its conda token, password and secret query values replaced by ***.

    `https://u:pw@host/t/abc/ch/x?token=1` becomes `https://u:***@host/t/***/ch/x?token=***`.
    A userinfo without a password is masked whole, because such a single value
    is usually a token. Redacting an already redacted URL changes nothing.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)

    netloc = _redact_userinfo(parts.netloc)
    path = _TOKEN_SEGMENT.sub(MASK, parts.path)
    query = _redact_query(parts.query)
    return urlunsplit((parts.scheme, netloc, path, query, parts.fragment))


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask every literal secret in `text`, plus token segments and passwords of URLs in it.

    Meant for exception messages from the HTTP library, which may quote the
    full request URL.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)

    text = _TOKEN_SEGMENT.sub(MASK, text)
    return _USERINFO.sub(lambda match: _redact_userinfo(match.group(0)), text)


def _redact_userinfo(netloc: str) -> str:
    userinfo, at, host = netloc.rpartition("@")
    if not at:
        return netloc

    user, colon, _password = userinfo.partition(":")
    if colon:
        return f"{user}:{MASK}@{host}"
    return f"{MASK}@{host}"


def _redact_query(query: str) -> str:
    if not query:
        return query

    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(_SECRET_QUERY_KEYS.search(key) for key, _value in pairs):
        return query
    redacted = [(key, MASK if _SECRET_QUERY_KEYS.search(key) else value) for key, value in pairs]
    return urlencode(redacted, safe="*")
