"""Local users in a YAML file with argon2 password hashes: for the demo and a break-glass admin.

The file looks like this (`mirror users add` writes it):

    users:
      admin:
        password_hash: "$argon2id$v=19$m=65536,t=3,p=4$..."
        roles: [admin]            # admin, reviewer, reader:<channel>
        groups: [mirror-admins]   # matched against the roles: section by name

The file is read again when its modification time changes, so a new
password applies without a restart.
"""

from __future__ import annotations

import io
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from mirror.auth.roles import ADMIN, READER_PREFIX, REVIEWER
from mirror.errors import ConfigError
from mirror.store.atomic import fsync_directory

logger = logging.getLogger(__name__)

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}\Z")

_hasher = PasswordHasher()


@dataclass(frozen=True)
class LocalUser:
    username: str
    password_hash: str = field(repr=False)
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    disabled: bool = False


def hash_password(password: str) -> str:
    """Return the argon2id hash of `password` with argon2-cffi's default cost."""
    return _hasher.hash(password)


def check_role(role: str) -> str:
    if role in (ADMIN, REVIEWER) or (role.startswith(READER_PREFIX) and len(role) > len(READER_PREFIX)):
        return role
    raise ValueError(f"unknown role {role!r}; use admin, reviewer or reader:<channel>")


class LocalUsers:
    """The users file, re-read when it changes on disk."""

    def __init__(self, path: Path):
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, LocalUser] = {}
        # Verified against when a user name is unknown, so a reply takes as long
        # as for a known user with a wrong password.
        self._dummy_hash = _hasher.hash("unused password")
        self._reload_if_changed()

    def get(self, username: str) -> LocalUser | None:
        self._reload_if_changed()
        return self._users.get(username)

    def verify(self, username: str, password: str) -> LocalUser | None:
        """Return the user when the password matches and the account is enabled, else None."""
        user = self.get(username)
        if user is None:
            _verify_hash(self._dummy_hash, password)
            return None
        if not _verify_hash(user.password_hash, password) or user.disabled:
            return None
        return user

    def _reload_if_changed(self) -> None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            raise ConfigError(
                f"{self.path}: users file not found; create it with 'mirror users add NAME' "
                "or remove auth.users_file"
            ) from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._users = read_users_file(self.path)
            self._stamp = stamp
            logger.info("loaded %d local user(s) from %s", len(self._users), self.path)


def _verify_hash(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except VerifyMismatchError:
        return False
    except (InvalidHashError, VerificationError):
        logger.error("a password hash in the users file is invalid; reset it with 'mirror users passwd'")
        return False


def read_users_file(path: Path) -> dict[str, LocalUser]:
    """Read and check the users file; raise ConfigError naming the entry at fault."""
    document = _load_yaml(path)
    entries = document.get("users") if isinstance(document, dict) else None
    if document is None or entries is None:
        return {}
    if not isinstance(entries, dict):
        raise ConfigError(f"{path}: 'users' must be a mapping of user name to settings")

    users = {}
    for username, entry in entries.items():
        users[str(username)] = _parse_user(path, str(username), entry)
    return users


def _parse_user(path: Path, username: str, entry: object) -> LocalUser:
    where = f"{path}: users.{username}"
    if not USERNAME_PATTERN.match(username):
        raise ConfigError(f"{where}: invalid user name; use letters, digits, '.', '_', '@' and '-'")
    if not isinstance(entry, dict) or not isinstance(entry.get("password_hash"), str):
        raise ConfigError(f"{where}: password_hash is missing; set it with 'mirror users passwd {username}'")
    unknown = set(entry) - {"password_hash", "roles", "groups", "disabled"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")

    try:
        roles = tuple(check_role(str(role)) for role in entry.get("roles") or ())
    except ValueError as exc:
        raise ConfigError(f"{where}.roles: {exc}") from None
    return LocalUser(
        username=username,
        password_hash=entry["password_hash"],
        roles=roles,
        groups=tuple(str(group) for group in entry.get("groups") or ()),
        disabled=bool(entry.get("disabled", False)),
    )


def _load_yaml(path: Path) -> object:
    try:
        with path.open("r", encoding="utf-8") as stream:
            return YAML(typ="safe").load(stream)
    except FileNotFoundError:
        return None
    except YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None


def save_user(
    path: Path,
    username: str,
    *,
    password: str | None,
    roles: list[str] | None = None,
    groups: list[str] | None = None,
    create: bool,
) -> None:
    """Add a user (`create=True`) or change one; only the values given are changed.

    The file is written atomically with mode 0600 because it contains password hashes.
    """
    if not USERNAME_PATTERN.match(username):
        raise ConfigError(f"invalid user name {username!r}; use letters, digits, '.', '_', '@' and '-'")
    document = _load_yaml(path) or {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: the users file must be a mapping with a 'users:' key")
    users = document.setdefault("users", {}) or {}
    document["users"] = users

    if create and username in users:
        raise ConfigError(f"user {username!r} already exists in {path}; use 'mirror users passwd' to change it")
    if not create and username not in users:
        raise ConfigError(f"no user {username!r} in {path}; add it with 'mirror users add {username}'")

    entry = users.setdefault(username, {})
    if password is not None:
        entry["password_hash"] = hash_password(password)
    if roles is not None:
        entry["roles"] = [check_role(role) for role in roles]
    if groups is not None:
        entry["groups"] = list(groups)
    _write(path, document)


def _write(path: Path, document: dict) -> None:
    buffer = io.StringIO()
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    yaml.dump(document, buffer)

    # mkstemp creates the file with mode 0600, and the rename keeps it; the shared
    # atomic_write_bytes sets 0644, which would expose the hashes for a moment.
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(buffer.getvalue().encode("utf-8"))
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
