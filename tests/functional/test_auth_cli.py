"""The `mirror tokens` and `mirror users` commands."""

from __future__ import annotations

import hashlib

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from mirror.auth.local import LocalUsers
from mirror.auth.models import ApiToken
from mirror.catalog.session import Catalog
from mirror.cli import tokens as tokens_module
from mirror.cli import users as users_module
from mirror.config.auth import AuthConfig
from mirror.config.schema import MirrorConfig


@pytest.fixture
def config(tmp_path, monkeypatch) -> MirrorConfig:
    config = MirrorConfig.model_validate({
        "data_dir": tmp_path / "data",
        "database": f"sqlite:///{tmp_path / 'catalog.db'}",
        "upstreams": {"upstream": {"url": "http://127.0.0.1:9"}},
        "channels": {"main": {}},
    }).model_copy(update={"auth": AuthConfig(enabled=True, users_file=tmp_path / "users.yaml")})
    monkeypatch.setattr(tokens_module, "load_config", lambda _path: config)
    monkeypatch.setattr(users_module, "load_config", lambda _path: config)
    return config


def invoke(group: click.Group, *args: str, stdin: str | None = None):
    return CliRunner().invoke(group, list(args), obj="mirror.yaml", input=stdin)


def test_tokens_create_list_revoke(config):
    created = invoke(tokens_module.tokens, "create", "ci", "--channel", "main", "--expires-days", "3")
    token = created.stdout.strip()
    listed = invoke(tokens_module.tokens, "list")

    catalog = Catalog(config.database)
    try:
        with catalog.session() as session:
            row = session.scalar(select(ApiToken))
    finally:
        catalog.close()
    revoked = invoke(tokens_module.tokens, "revoke", str(row.id))
    listed_after = invoke(tokens_module.tokens, "list")

    assert created.exit_code == 0, created.output
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert "active" in listed.stdout
    assert token not in listed.stdout
    assert revoked.exit_code == 0
    assert "revoked" in listed_after.stdout


def test_tokens_unknown_channel(config):
    result = invoke(tokens_module.tokens, "create", "ci", "--channel", "nosuch")

    assert result.exit_code != 0
    assert "unknown channel(s) nosuch" in str(result.exception)


def test_users_add_and_passwd(config):
    added = invoke(users_module.users, "add", "admin", "--role", "admin", "--password-stdin", stdin="first\n")
    changed = invoke(users_module.users, "passwd", "admin", "--password-stdin", stdin="second\n")

    users = LocalUsers(config.auth.users_file)
    assert added.exit_code == 0, added.output
    assert changed.exit_code == 0, changed.output
    assert users.verify("admin", "second").roles == ("admin",)
    assert users.verify("admin", "first") is None
