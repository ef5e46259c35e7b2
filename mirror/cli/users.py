"""The `mirror users` commands: local users with argon2 password hashes."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mirror.auth.local import save_user
from mirror.config.load import load_config
from mirror.errors import ConfigError


@click.group()
def users() -> None:
    """Add local users and change their passwords (the file named by auth.users_file)."""


_users_file_option = click.option(
    "--users-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Users file to change; default auth.users_file of mirror.yaml.",
)
_password_stdin_option = click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of standard input."
)


@users.command("add")
@click.argument("username")
@click.option("--role", "roles", multiple=True, help="admin, reviewer or reader:<channel>; repeatable.")
@click.option("--group", "groups", multiple=True, help="Group name matched by the roles: section; repeatable.")
@_users_file_option
@_password_stdin_option
@click.pass_context
def add(ctx: click.Context, username: str, roles: tuple[str, ...], groups: tuple[str, ...],
        users_file: Path | None, password_stdin: bool) -> None:
    """Add the local user USERNAME with a password, roles and groups."""
    path = users_file or _configured_users_file(ctx)
    password = _read_password(password_stdin)
    try:
        save_user(path, username, password=password, roles=list(roles), groups=list(groups), create=True)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    click.echo(f"added user {username} to {path}")


@users.command("passwd")
@click.argument("username")
@_users_file_option
@_password_stdin_option
@click.pass_context
def passwd(ctx: click.Context, username: str, users_file: Path | None, password_stdin: bool) -> None:
    """Set a new password for the local user USERNAME."""
    path = users_file or _configured_users_file(ctx)
    save_user(path, username, password=_read_password(password_stdin), create=False)
    click.echo(f"changed the password of {username} in {path}")


def _configured_users_file(ctx: click.Context) -> Path:
    path = load_config(ctx.obj).auth.users_file
    if path is None:
        raise ConfigError("auth.users_file is not set in mirror.yaml; set it or pass --users-file")
    return path


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise ConfigError("the password is empty; an empty password can never sign in")
    return password
