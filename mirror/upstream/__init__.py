"""Read upstream conda channels: repodata with conditional requests, packages with resume.

`UpstreamClient` is the entry point; `redact_url` is the only way a URL of an
upstream should reach a log line.
"""

from mirror.upstream.client import UpstreamClient
from mirror.upstream.models import CacheValidators, ExpectedFile, RepodataFetch
from mirror.upstream.redact import redact_url

__all__ = ["CacheValidators", "ExpectedFile", "RepodataFetch", "UpstreamClient", "redact_url"]
