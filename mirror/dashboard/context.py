"""Typed application keys of the dashboard and helpers every view needs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from aiohttp import web

from mirror.auth.authenticator import Principal
from mirror.auth.middleware import PRINCIPAL_KEY
from mirror.dashboard.service import ReviewService
from mirror.dashboard.sessions import SessionResolver, SessionStore

Result = TypeVar("Result")

SERVICE_KEY = web.AppKey("review_service", ReviewService)
SESSIONS_KEY = web.AppKey("dashboard_sessions", SessionStore)
RESOLVER_KEY = web.AppKey("dashboard_resolver", SessionResolver)


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL_KEY]


async def in_thread(function: Callable[..., Result], *args, **kwargs) -> Result:
    """Run blocking catalog or file work in the default executor."""
    return await asyncio.get_running_loop().run_in_executor(None, partial(function, *args, **kwargs))
