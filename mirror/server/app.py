"""The aiohttp application that serves the published channels.

Routes:

* `GET/HEAD /healthz`: `{"status": "ok"}` while the process serves requests;
* `GET/HEAD /<channel>/channeldata.json`;
* `GET/HEAD /<channel>/<subdir>/<file>`: the subdir indexes and package files.

With `auth.enabled`, the channel routes are also served under
`/t/<token>/`, `/api/whoami` and `/api/tokens` are added, and every
route but `/healthz` needs credentials (see `mirror.auth.middleware`).
The review dashboard (`/dashboard/`), its JSON API (`/api/review/`)
and `/api/openapi.json` are added too, because review actions need a
signed-in actor.

Everything else is a 404 with a JSON body that does not repeat the path.
The server only reads `config.channels_dir` (and the blob store that its
links point into); the publisher writes it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from mirror.auth.access import Access, requires
from mirror.config.schema import MirrorConfig
from mirror.errors import ConfigError, MirrorError
from mirror.server.access_log import ChannelAccessLogger, access_logger
from mirror.server.channels import add_channel_routes
from mirror.server.errors import json_error_middleware
from mirror.server.keys import CONFIG_KEY

logger = logging.getLogger(__name__)


class ServerStartError(MirrorError):
    """The server could not bind its address."""


def create_app(config: MirrorConfig) -> web.Application:
    """Build the application that serves `config.channels_dir`.

    With authentication enabled this opens the catalog and reads the users
    file and directory settings, so a configuration error surfaces here.
    """
    from mirror.server.ops import add_ops_routes, metrics_middleware

    enabled = config.auth.enabled
    middlewares = [metrics_middleware, json_error_middleware]
    if enabled:
        from mirror.auth.middleware import auth_middleware
        from mirror.dashboard import csrf_middleware, dashboard_pages_middleware

        # Outermost first: pages turn auth errors into HTML, CSRF runs once the principal is known.
        middlewares += [dashboard_pages_middleware, auth_middleware, csrf_middleware]

    app = web.Application(middlewares=middlewares)
    app[CONFIG_KEY] = config
    app.router.add_get("/healthz", healthz)
    add_ops_routes(app)
    if enabled:
        _install_auth(app, config)
    add_channel_routes(app, token_routes=enabled)
    return app


def _install_auth(app: web.Application, config: MirrorConfig) -> None:
    from mirror.auth.api import add_auth_routes
    from mirror.auth.authenticator import Authenticator
    from mirror.auth.middleware import AUTHENTICATOR_KEY, CATALOG_KEY
    from mirror.catalog.session import Catalog

    unknown = config.auth.unknown_channels(config.channels)
    if unknown:
        raise ConfigError(
            f"auth names unknown channel(s) {', '.join(unknown)} in anonymous_read or roles.readers; "
            "define them under 'channels:' or remove them"
        )

    catalog = Catalog(config.database)
    try:
        authenticator = Authenticator.from_config(config.auth, catalog)
    except BaseException:
        catalog.close()
        raise
    app[CATALOG_KEY] = catalog
    app[AUTHENTICATOR_KEY] = authenticator
    add_auth_routes(app)
    _install_review(app, config, catalog, authenticator)

    async def close_auth(_app: web.Application) -> None:
        authenticator.close()
        catalog.close()

    app.on_cleanup.append(close_auth)


def _install_review(app: web.Application, config: MirrorConfig, catalog, authenticator) -> None:
    from mirror.dashboard import install_dashboard
    from mirror.server.api import add_review_api_routes
    from mirror.server.openapi import add_openapi_route

    install_dashboard(app, config, catalog, authenticator)
    add_review_api_routes(app)
    add_openapi_route(app)


def runner_options() -> dict[str, Any]:
    """Return the AppRunner options that send the access log through `mirror.server.access`."""
    return {"access_log_class": ChannelAccessLogger, "access_log": access_logger}


def create_runner(app: web.Application) -> web.AppRunner:
    return web.AppRunner(app, **runner_options())


@requires(Access.PUBLIC)
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def start_server(config: MirrorConfig, app: web.Application | None = None) -> tuple[web.AppRunner, str]:
    """Start serving `app` (by default `create_app(config)`) on `config.server.host` and port.

    Returns the runner and the base URL. The caller owns the runner and
    must `await runner.cleanup()`.
    """
    if not config.channels_dir.is_dir():
        logger.warning(
            "channels folder %s does not exist yet; every channel returns 404 until a publish",
            config.channels_dir,
        )

    runner = create_runner(app if app is not None else create_app(config))
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
