"""Blob storage: content-addressed by sha256, written atomically."""

from mirror.store.base import BlobStore
from mirror.store.filesystem import FilesystemBlobStore

__all__ = ["BlobStore", "FilesystemBlobStore"]
