"""A real PostgreSQL server on 127.0.0.1 for catalog tests.

`postgres` is a session-scoped fixture. It runs `initdb` into a fresh
folder under the system temporary directory. It starts the server with
`pg_ctl`, listening on a free port of 127.0.0.1 and on a unix socket in
that folder. At the end of the session it stops the server and deletes
the folder. Every local connection is trusted, so no password exists.

PostgreSQL refuses to run as root, and CI runs the tests as root. In that
case the folder is handed to the `postgres` system user that the Debian
package creates, and every server command runs under `runuser -u postgres`.
The folder is not under pytest's temporary directory because that one is
private to the user running pytest, so `postgres` could not enter it.

`postgres_url` creates an empty database `test_<n>` for one test and
returns its SQLAlchemy URL (`postgresql+psycopg://...`).

Without PostgreSQL or the psycopg driver the fixtures skip, or fail when
MIRROR_REQUIRE_REAL_COMPONENTS=1 (Debian: apt-get install postgresql;
pip: psycopg[binary]).
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.slapd import free_port

DEBIAN_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "mirror_test"
SERVER_USER = "postgres"
START_TIMEOUT_SECONDS = 30

# Durability settings only cost time in a throw-away cluster. The server's
# time zone is deliberately not UTC (Chatham is UTC+12:45 or +13:45), so a
# catalog session that does not set UTC itself shows up in the tests.
SERVER_OPTIONS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c max_connections=200 -c log_min_messages=warning -c timezone=Pacific/Chatham"
)


def find_bin_dir() -> Path | None:
    """Return the newest Debian PostgreSQL bin folder, else the folder of `initdb` on PATH."""
    versions = []
    for initdb in DEBIAN_ROOT.glob("*/bin/initdb"):
        version = initdb.parent.parent.name
        if re.fullmatch(r"\d+", version):
            versions.append((int(version), initdb.parent))
    if versions:
        return max(versions)[1]

    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _missing_reason(bin_dir: Path | None) -> str | None:
    if bin_dir is None:
        return (
            f"PostgreSQL is not installed (no {DEBIAN_ROOT}/<version>/bin/initdb and no initdb on PATH); "
            "install the Debian package postgresql"
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the psycopg driver is not installed; install psycopg[binary] into the virtualenv"
    if os.geteuid() == 0 and not _user_exists(SERVER_USER):
        return f"running as root but the system user {SERVER_USER!r} is missing; install the Debian package postgresql"
    return None


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def require_postgres() -> Path:
    """Return the PostgreSQL bin folder; skip, or fail where real components are required, without it."""
    bin_dir = find_bin_dir()
    reason = _missing_reason(bin_dir)
    if reason is None:
        return bin_dir
    if os.environ.get("MIRROR_REQUIRE_REAL_COMPONENTS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass
class PostgresServer:
    """A running PostgreSQL cluster: where it listens and how to reach it."""

    bin_dir: Path
    folder: Path
    port: int
    run_as: list[str]
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def log_path(self) -> Path:
        return self.folder / "server.log"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """Create an empty database `test_<n>` and return its SQLAlchemy URL."""
        import psycopg

        name = f"test_{next(self._numbers)}"
        dsn = f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        """Run a PostgreSQL program as the server user; raise with its output when it fails."""
        command = [*self.run_as, str(self.bin_dir / tool), *args]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=START_TIMEOUT_SECONDS + 30, stdin=subprocess.DEVNULL
        )
        if result.returncode != 0:
            log = self.log_path.read_text(errors="replace") if self.log_path.exists() else "(no server log)"
            raise RuntimeError(
                f"{' '.join(command)} failed with exit code {result.returncode}:\n"
                f"{result.stdout}{result.stderr}\nserver log:\n{log}"
            )
        return result

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self.run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w")


def _make_folder() -> tuple[Path, list[str]]:
    folder = Path(tempfile.mkdtemp(prefix="mirror-pg-"))
    if os.geteuid() != 0:
        return folder, []

    server_user = pwd.getpwnam(SERVER_USER)
    os.chown(folder, server_user.pw_uid, server_user.pw_gid)
    return folder, ["runuser", "-u", SERVER_USER, "--"]


def start_postgres(bin_dir: Path) -> PostgresServer:
    """Create and start a cluster in a new temporary folder; the caller must call `stop()`."""
    folder, run_as = _make_folder()
    server = PostgresServer(bin_dir, folder, free_port(), run_as)
    try:
        server.run(
            "initdb", "-D", str(server.data_dir), "-U", SUPERUSER, "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )
        options = f"-c listen_addresses=127.0.0.1 -p {server.port} -k {folder} {SERVER_OPTIONS}"
        server.run(
            "pg_ctl", "start", "-D", str(server.data_dir), "-l", str(server.log_path),
            "-o", options, "-w", "-t", str(START_TIMEOUT_SECONDS),
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    bin_dir = require_postgres()
    server = start_postgres(bin_dir)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """The SQLAlchemy URL of an empty database of its own for one test."""
    return postgres.create_database()
