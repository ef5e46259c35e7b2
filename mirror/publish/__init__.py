"""Channel index generation: repodata, current_repodata and channeldata, written atomically."""

from mirror.publish.errors import PublishError
from mirror.publish.writer import PublishedFile, PublishReport, publish_channel

__all__ = ["PublishError", "PublishReport", "PublishedFile", "publish_channel"]
