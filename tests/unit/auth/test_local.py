"""The local users file: argon2 hashes, reload on change, roles."""

from __future__ import annotations

import os

import pytest

from mirror.auth.local import LocalUsers, read_users_file, save_user
from mirror.errors import ConfigError


def test_add_and_verify(tmp_path):
    path = tmp_path / "users.yaml"
    save_user(path, "admin", password="p@ss:w/rd%\\", roles=["admin"], groups=["ops"], create=True)
    users = LocalUsers(path)

    assert users.verify("admin", "p@ss:w/rd%\\").roles == ("admin",)
    assert users.verify("admin", "wrong") is None
    assert users.verify("nobody", "p@ss:w/rd%\\") is None
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert "p@ss" not in path.read_text()


def test_passwd_reloads(tmp_path):
    path = tmp_path / "users.yaml"
    save_user(path, "admin", password="old", create=True)
    users = LocalUsers(path)
    assert users.verify("admin", "old") is not None

    save_user(path, "admin", password="new", create=False)

    assert users.verify("admin", "old") is None
    assert users.verify("admin", "new") is not None


def test_add_existing_rejected(tmp_path):
    path = tmp_path / "users.yaml"
    save_user(path, "admin", password="x", create=True)

    with pytest.raises(ConfigError, match="already exists"):
        save_user(path, "admin", password="y", create=True)


def test_unknown_role_rejected(tmp_path):
    path = tmp_path / "users.yaml"
    path.write_text("users:\n  admin:\n    password_hash: x\n    roles: [root]\n")

    with pytest.raises(ConfigError, match="unknown role 'root'"):
        read_users_file(path)


def test_disabled_user(tmp_path):
    path = tmp_path / "users.yaml"
    save_user(path, "admin", password="x", create=True)
    text = path.read_text().replace("admin:\n", "admin:\n    disabled: true\n")
    path.write_text(text)

    assert LocalUsers(path).verify("admin", "x") is None
