"""`mirror demo`: the whole mirror on this machine, with no network beyond loopback.

It builds a small upstream channel of real conda packages and serves it
on 127.0.0.1. It then syncs a whitelist from it into a local data folder
with SQLite, validates and publishes. To prove the result works, it
installs from the published channel with py-rattler, then serves the
channels and the review dashboard until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
import shutil
from pathlib import Path

import click
from rich.console import Console

from mirror.config.load import load_config

UPSTREAM_NAME = "demo-forge"
CHANNEL_NAME = "main"
DEMO_SPEC = "demo-tool"

MIRROR_TEMPLATE = """\
# Written by 'mirror demo'; the upstream URL changes with every run.
data_dir: data
database: sqlite:///data/catalog.db
whitelist: whitelist.yaml
upstreams:
  {upstream}:
    url: {url}
    subdirs: [linux-64, noarch]
    retries: 2
    backoff_seconds: 0.2
channels:
  {channel}:
    approval: auto
    description: Packages that passed every check
  {review_channel}:
    approval: manual
    approvals_required: 1
    description: Packages a reviewer approves on the dashboard
server:
  host: 127.0.0.1
  port: {port}
auth:
  enabled: true
  users_file: users.yaml
  anonymous_read: [{channel}]   # conda clients read the demo channel without credentials
"""

REVIEW_CHANNEL_NAME = "reviewed"
REVIEWER = "reviewer"

WHITELIST_TEXT = f"""\
# The demo whitelist: demo-tool 1.0 or newer and what it needs.
# demo-tool 0.9, libdemo 1.0, demo-data 1.0 and demo-extras stay out.
- upstream: {UPSTREAM_NAME}
  channel: {CHANNEL_NAME}
  packages: ["demo-tool >=1.0"]
  dependencies: true
# The same packages wait for a reviewer in a manual channel.
- upstream: {UPSTREAM_NAME}
  channel: {REVIEW_CHANNEL_NAME}
  packages: ["demo-tool >=1.0"]
  dependencies: true
"""


@click.command()
@click.option(
    "--dir", "folder", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-data"),
    show_default=True, help="Folder for the demo upstream, config, data and test environment.",
)
@click.option("--port", type=int, default=8080, show_default=True, help="Port of the internal channel server.")
@click.option("--serve/--no-serve", default=True, show_default=True, help="Keep serving the channel after the cycle.")
@click.option("--fresh", is_flag=True, help="Delete the demo folder first.")
@click.pass_context
def demo(ctx: click.Context, folder: Path, port: int, serve: bool, fresh: bool) -> None:
    """Build a local upstream, run sync, validate and publish on it, and serve the result."""
    if ctx.meta.get("verbosity", 0) == 0:
        # The demo prints its own summary; per-request logs would bury it. -v brings them back.
        logging.getLogger().setLevel(logging.WARNING)
    from mirror.cli.main import console, run_cycle
    from mirror.demo.channel import build_demo_upstream
    from mirror.demo.upstream_server import StaticChannelServer
    from mirror.jobs.context import MirrorContext

    folder = folder.resolve()
    if fresh and folder.exists():
        shutil.rmtree(folder)
    upstream_dir = folder / "upstream" / UPSTREAM_NAME
    build_demo_upstream(upstream_dir)
    console.print(f"built a local upstream of real conda packages in {upstream_dir}", highlight=False)

    with StaticChannelServer(upstream_dir.parent) as upstream:
        url = f"{upstream.url}/{UPSTREAM_NAME}"
        console.print(f"serving it as upstream '{UPSTREAM_NAME}' at {url}", highlight=False)
        config_path = _write_config(folder, url, port)

        context = MirrorContext.open(load_config(config_path))
        try:
            run_cycle(context)
        finally:
            context.close()

    asyncio.run(_serve(load_config(config_path), folder, serve))


def _write_config(folder: Path, upstream_url: str, port: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "mirror.yaml"
    config_path.write_text(
        MIRROR_TEMPLATE.format(
            upstream=UPSTREAM_NAME, url=upstream_url, channel=CHANNEL_NAME,
            review_channel=REVIEW_CHANNEL_NAME, port=port,
        ),
        encoding="utf-8",
    )
    (folder / "whitelist.yaml").write_text(WHITELIST_TEXT, encoding="utf-8")
    _ensure_reviewer(folder)
    return config_path


def _ensure_reviewer(folder: Path) -> None:
    """Create the demo's local admin once; its password is kept in a file only its owner reads."""
    from mirror.auth.local import save_user

    users_file = folder / "users.yaml"
    password_file = folder / "reviewer-password.txt"
    if users_file.exists() and password_file.exists():
        return
    password = secrets.token_urlsafe(12)
    users_file.unlink(missing_ok=True)
    save_user(users_file, REVIEWER, password=password, roles=["admin"], create=True)
    password_file.touch(mode=0o600)
    password_file.write_text(password + "\n", encoding="utf-8")


async def _serve(config, folder: Path, keep_serving: bool) -> None:
    from mirror.cli.main import console
    from mirror.server.app import start_server

    runner, base_url = await start_server(config)
    try:
        channel_url = f"{base_url}/{CHANNEL_NAME}"
        prefix = await _install_from(channel_url, folder)
        console.print(
            f"\ninstalled {DEMO_SPEC} from {channel_url} into {prefix} with py-rattler; "
            f"try: {prefix / 'bin' / 'demo-tool'}",
            highlight=False,
        )
        _print_client_commands(Console(), channel_url, folder, keep_serving)
        if keep_serving:
            console.print(f"serving {channel_url}; press Ctrl-C to stop", highlight=False)
            await asyncio.Event().wait()
    finally:
        await runner.cleanup()


async def _install_from(channel_url: str, folder: Path) -> Path:
    import rattler

    prefix = folder / "env"
    records = await rattler.solve(
        sources=[channel_url],
        specs=[DEMO_SPEC],
        gateway=rattler.Gateway(cache_dir=folder / "client-cache" / "repodata"),
        platforms=["linux-64", "noarch"],
        virtual_packages=[],
    )
    await rattler.install(
        records, target_prefix=prefix, cache_dir=folder / "client-cache" / "pkgs",
        platform=rattler.Subdir("linux-64"), show_progress=False,
    )
    return prefix


def _print_client_commands(console: Console, channel_url: str, folder: Path, serving: bool) -> None:
    mirror = _mirror_command()
    config = folder / "mirror.yaml"
    lines = [""]
    if not serving:
        lines += ["This run did not keep the server; start it with:", f"  {mirror} --config {config} serve"]
    lines += [
        "Install from the internal channel with any conda client:",
        f"  conda create -p ./demo-env --override-channels -c {channel_url} {DEMO_SPEC}",
        f"  mamba create -p ./demo-env --override-channels -c {channel_url} {DEMO_SPEC}",
        f"  pixi init demo-project -c {channel_url} && pixi add --manifest-path demo-project/pixi.toml {DEMO_SPEC}",
        f"Review the packages waiting in channel '{REVIEW_CHANNEL_NAME}' on the dashboard:",
        f"  {channel_url.rsplit('/', 1)[0]}/dashboard/",
        f"  sign in as '{REVIEWER}' with the password in {folder / 'reviewer-password.txt'}",
        "See what the mirror did:",
        f"  {mirror} --config {config} status",
    ]
    console.print("\n".join(lines), highlight=False, soft_wrap=True)


def _mirror_command() -> str:
    """Return how to run `mirror` again: the running script's path unless `mirror` is on PATH."""
    script = Path(sys.argv[0]).resolve()
    on_path = shutil.which("mirror")
    if on_path and Path(on_path).resolve() == script:
        return "mirror"
    return str(script) if script.name == "mirror" else f"{sys.executable} -m mirror"
