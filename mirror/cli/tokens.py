"""The `mirror tokens` commands: create, list and revoke tokens for conda clients."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from mirror.auth.tokens import TokenStore
from mirror.catalog.session import Catalog
from mirror.config.load import load_config
from mirror.errors import ConfigError


@click.group()
def tokens() -> None:
    """Create, list and revoke tokens that let conda clients read channels."""


@tokens.command("create")
@click.argument("name")
@click.option("--channel", "channels", multiple=True, required=True,
              help="Channel the token may read; repeat for several.")
@click.option("--expires-days", type=click.IntRange(min=1), default=None,
              help="Days until the token expires; default auth.tokens.default_expiry_days.")
@click.option("--owner", default="cli", show_default=True, help="Name recorded as the token's owner.")
@click.pass_context
def create(ctx: click.Context, name: str, channels: tuple[str, ...], expires_days: int | None,
           owner: str) -> None:
    """Create a token named NAME and print it once; only its hash is stored."""
    config = load_config(ctx.obj)
    settings = config.auth.tokens
    unknown = sorted(set(channels) - set(config.channels))
    if unknown:
        raise ConfigError(
            f"unknown channel(s) {', '.join(unknown)}; known channels: {', '.join(sorted(config.channels))}"
        )
    days = expires_days or settings.default_expiry_days
    if days > settings.max_expiry_days:
        raise ConfigError(
            f"--expires-days {days} exceeds auth.tokens.max_expiry_days ({settings.max_expiry_days})"
        )

    catalog = Catalog(config.database)
    try:
        issued = TokenStore(catalog).create(
            name=name, owner=owner, owner_source="cli", channels=channels, expires_in=timedelta(days=days)
        )
    finally:
        catalog.close()
    click.echo(
        f"token {issued.row.id} {name!r} for {', '.join(issued.row.channels)}, "
        f"expires {issued.row.expires_at:%Y-%m-%d %H:%M} UTC. It is shown only now:",
        err=True,
    )
    click.echo(issued.token)


@tokens.command("list")
@click.pass_context
def list_tokens(ctx: click.Context) -> None:
    """List every token with its channels and state; tokens themselves are never shown."""
    config = load_config(ctx.obj)
    catalog = Catalog(config.database)
    try:
        rows = TokenStore(catalog).list()
    finally:
        catalog.close()
    if not rows:
        click.echo("no tokens")
        return
    now = datetime.now(UTC)
    for row in rows:
        click.echo(
            f"{row.id:>5}  {row.name:<24}  {row.owner:<16}  {','.join(row.channels):<24}  "
            f"{_state(row, now):<8}  expires {_utc(row.expires_at):%Y-%m-%d}"
        )


@tokens.command("revoke")
@click.argument("token_id", type=int)
@click.pass_context
def revoke(ctx: click.Context, token_id: int) -> None:
    """Revoke the token with id TOKEN_ID; running servers stop accepting it within auth.cache_seconds."""
    config = load_config(ctx.obj)
    catalog = Catalog(config.database)
    try:
        row = TokenStore(catalog).revoke(token_id, actor="cli")
    finally:
        catalog.close()
    click.echo(f"revoked token {row.id} {row.name!r}")


def _state(row, now: datetime) -> str:
    if row.revoked_at is not None:
        return "revoked"
    if _utc(row.expires_at) <= now:
        return "expired"
    return "active"


def _utc(moment: datetime) -> datetime:
    # SQLite returns naive datetimes; the catalog stores UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
