"""Errors of the publisher."""

from __future__ import annotations

from mirror.errors import MirrorError


class PublishError(MirrorError):
    """A channel could not be published; the message names the subdir or file and the fix."""
