"""The aiohttp application that serves the published channels.

Routes:

* `GET/HEAD /healthz`: `{"status": "ok"}` while the process serves requests;
* `GET/HEAD /<channel>/channeldata.json`;
* `GET/HEAD /<channel>/<subdir>/<file>`: the subdir indexes and package files.

Everything else is a 404 with a JSON body that does not repeat the path.
The server only reads `config.channels_dir` (and the blob store that its
links point into); the publisher writes it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from mirror.config.schema import MirrorConfig
from mirror.errors import MirrorError
from mirror.server.access_log import ChannelAccessLogger, access_logger
from mirror.server.channels import add_channel_routes
from mirror.server.errors import json_error_middleware
from mirror.server.keys import CONFIG_KEY

logger = logging.getLogger(__name__)


class ServerStartError(MirrorError):
    """The server could not bind its address."""


def create_app(config: MirrorConfig) -> web.Application:
    """Build the application that serves `config.channels_dir`."""
    app = web.Application(middlewares=[json_error_middleware])
    app[CONFIG_KEY] = config
    app.router.add_get("/healthz", healthz)
    add_channel_routes(app)
    return app


def runner_options() -> dict[str, Any]:
    """Return the AppRunner options that send the access log through `mirror.server.access`."""
    return {"access_log_class": ChannelAccessLogger, "access_log": access_logger}


def create_runner(app: web.Application) -> web.AppRunner:
    return web.AppRunner(app, **runner_options())


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def start_server(config: MirrorConfig) -> tuple[web.AppRunner, str]:
    """Start serving on `config.server.host` and port; return the runner and the base URL.

    The caller owns the runner and must `await runner.cleanup()`.
    """
    if not config.channels_dir.is_dir():
        logger.warning(
            "channels folder %s does not exist yet; every channel returns 404 until a publish",
            config.channels_dir,
        )

    runner = create_runner(create_app(config))
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.server.host, config.server.port)
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ServerStartError(
            f"could not listen on {config.server.host}:{config.server.port}: {exc.strerror}; "
            "pick another port with --port or server.port"
        ) from None

    host, port = runner.addresses[0][:2]
    shown = f"[{host}]" if ":" in host else host
    base_url = f"http://{shown}:{port}"
    logger.info("serving %s at %s", config.channels_dir, base_url)
    return runner, base_url


async def serve(config: MirrorConfig) -> None:
    """Serve the channels until the task is cancelled."""
    runner, _ = await start_server(config)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        logger.info("server stopped")
