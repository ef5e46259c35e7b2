"""Typed keys of the values the server keeps on its aiohttp application."""

from __future__ import annotations

from aiohttp import web

from mirror.config.schema import MirrorConfig

CONFIG_KEY = web.AppKey("config", MirrorConfig)
