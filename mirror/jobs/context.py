"""The shared context of every job: the configuration, the catalog and the blob store."""

from __future__ import annotations

from dataclasses import dataclass

from mirror.catalog.models import AuditEvent
from mirror.catalog.session import Catalog
from mirror.config.schema import MirrorConfig
from mirror.store.filesystem import FilesystemBlobStore


@dataclass
class MirrorContext:
    config: MirrorConfig
    catalog: Catalog
    store: FilesystemBlobStore

    @classmethod
    def open(cls, config: MirrorConfig) -> MirrorContext:
        for folder in (config.data_dir, config.channels_dir, config.cache_dir, config.tmp_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return cls(config=config, catalog=Catalog(config.database), store=FilesystemBlobStore(config.store_dir))

    def close(self) -> None:
        self.catalog.close()


def audit(session, actor: str, action: str, *, channel=None, artifact_id=None, reason=None, **details) -> None:
    """Append an audit event to the session's transaction."""
    session.add(
        AuditEvent(actor=actor, action=action, channel=channel, artifact_id=artifact_id, reason=reason, details=details)
    )
