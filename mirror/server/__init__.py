"""HTTP server: channel files, health checks."""

from mirror.server.app import create_app, create_runner, runner_options, serve

__all__ = ["create_app", "create_runner", "runner_options", "serve"]
