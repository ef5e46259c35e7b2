"""Configuration: the schema of `mirror.yaml` and the whitelist, and their loader."""

from mirror.config.load import load_config, load_whitelist
from mirror.config.schema import ChannelConfig, MirrorConfig, UpstreamConfig, WhitelistEntry

__all__ = ["ChannelConfig", "MirrorConfig", "UpstreamConfig", "WhitelistEntry", "load_config", "load_whitelist"]
