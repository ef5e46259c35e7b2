"""Operational routes: `/metrics`, `/readyz` and `POST /api/sync/{upstream}`, plus request metrics.

* `GET /metrics`: Prometheus text format, see `mirror.ops.metrics`.
* `GET /readyz`: 200 when a catalog query succeeds and the channels
  folder can be read, else 503 with the failing checks named.
* `POST /api/sync/{upstream}`: start a sync cycle of one upstream in the
  service that runs this app. 202 when started, 409 when a run of that
  upstream holds its lease, 404 for an unknown upstream, 503 when this
  process runs no scheduler (`mirror serve` rather than `mirror service`).

`metrics_middleware` labels latency with the route's resource pattern,
such as `/{channel}/{subdir}/{filename}`, never the path a client sent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from mirror.auth.access import Access, requires
from mirror.catalog.session import create_catalog_engine
from mirror.ops.metrics import REQUEST_DURATION, CatalogCollector, render
from mirror.server.keys import CONFIG_KEY

logger = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 5.0
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

SyncTrigger = Callable[[str], Awaitable[str]]
"""Start a cycle of one upstream in the background; return 'started' or 'busy'."""

CATALOG_ENGINE_KEY = web.AppKey("ops_catalog_engine", Engine)
OPS_REGISTRY_KEY = web.AppKey("ops_registry", CollectorRegistry)
SYNC_TRIGGER_KEY = web.AppKey("sync_trigger", SyncTrigger)
UNMATCHED_ROUTE = "unmatched"


def add_ops_routes(app: web.Application, *, engine: Engine | None = None) -> None:
    """Add the operational routes; the catalog engine is created on startup unless given."""
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/readyz", readyz)
    app.router.add_post("/api/sync/{upstream}", trigger_sync)
    app.cleanup_ctx.append(_catalog_engine(engine))


def _catalog_engine(given: Engine | None):
    async def context(app: web.Application) -> AsyncIterator[None]:
        engine = given or create_catalog_engine(app[CONFIG_KEY].database)
        app[CATALOG_ENGINE_KEY] = engine
        registry = CollectorRegistry()
        registry.register(CatalogCollector(engine))
        app[OPS_REGISTRY_KEY] = registry
        yield
        if given is None:
            engine.dispose()

    return context


@web.middleware
async def metrics_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Observe each request's latency by method, route pattern and status."""
    started = time.monotonic()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        REQUEST_DURATION.labels(request.method, route_pattern(request), str(status)).observe(time.monotonic() - started)


def route_pattern(request: web.Request) -> str:
    """Return the pattern of the matched route (`/{channel}/...`) or 'unmatched'."""
    match_info = request.match_info
    route = getattr(match_info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is None or getattr(match_info, "http_exception", None) is not None:
        return UNMATCHED_ROUTE
    return resource.canonical


@requires(Access.PUBLIC)
async def metrics(request: web.Request) -> web.Response:
    registry = request.app[OPS_REGISTRY_KEY]
    body = await asyncio.to_thread(render, registry)
    return web.Response(body=body, headers={"Content-Type": PROMETHEUS_CONTENT_TYPE})


@requires(Access.PUBLIC)
async def readyz(request: web.Request) -> web.Response:
    config = request.app[CONFIG_KEY]
    problems = []

    try:
        await asyncio.wait_for(asyncio.to_thread(_ping, request.app[CATALOG_ENGINE_KEY]), READY_TIMEOUT_SECONDS)
    except (SQLAlchemyError, TimeoutError) as exc:
        logger.warning("readiness: the catalog database is not reachable: %s", exc)
        problems.append("catalog database not reachable")

    channels = config.channels_dir
    if not (channels.is_dir() and os.access(channels, os.R_OK | os.X_OK)):
        problems.append("channels folder missing or not readable; run 'mirror publish'")

    if problems:
        return web.json_response({"status": "unavailable", "problems": problems}, status=503)
    return web.json_response({"status": "ready"})


def _ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


@requires(Access.ADMIN)
async def trigger_sync(request: web.Request) -> web.Response:
    upstream = request.match_info["upstream"]
    if upstream not in request.app[CONFIG_KEY].upstreams:
        return web.json_response({"error": "unknown upstream"}, status=404)

    trigger = request.app.get(SYNC_TRIGGER_KEY)
    if trigger is None:
        return web.json_response(
            {"error": "this server runs no scheduler; start it with 'mirror service' to trigger syncs"}, status=503
        )

    outcome = await trigger(upstream)
    if outcome == "busy":
        return web.json_response({"upstream": upstream, "status": "busy"}, status=409)
    return web.json_response({"upstream": upstream, "status": "started"}, status=202)
