"""A real OpenLDAP slapd on 127.0.0.1 for authentication tests.

`slapd` is a session-scoped fixture. It writes a `slapd.conf` with the
mdb backend and the memberof overlay into a temporary folder and starts
/usr/sbin/slapd on a free port with the `stats` log, which has one line
per operation, so tests can count binds. It then loads `DIRECTORY_LDIF`
with ldapadd, so the overlay maintains `memberOf`.

The directory has users of every kind the tests need: a user whose DN
and password contain special characters, users in a group nested inside
another, and Active Directory attributes (`sAMAccountName`,
`userPrincipalName`) from a small schema of its own.

Without slapd or ldapadd the fixture skips, or fails when
MIRROR_REQUIRE_REAL_COMPONENTS=1 (Debian: apt-get install slapd ldap-utils).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from mirror.config.auth import LdapConfig

SLAPD = Path("/usr/sbin/slapd")
MODULE_DIR = Path("/usr/lib/ldap")
SCHEMA_DIR = Path("/etc/ldap/schema")
START_TIMEOUT_SECONDS = 15.0

SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "root-secret-for-tests"
SERVICE_DN = f"cn=mirror-service,ou=Services,{SUFFIX}"
SERVICE_PASSWORD = "service-secret-for-tests"
SERVICE_PASSWORD_ENV = "MIRROR_TEST_LDAP_SERVICE_PASSWORD"
PEOPLE = f"ou=People,{SUFFIX}"
GROUPS = f"ou=Groups,{SUFFIX}"

ADMINS_DN = f"cn=mirror-admins,{GROUPS}"
REVIEWERS_DN = f"cn=mirror-reviewers,{GROUPS}"
READERS_MAIN_DN = f"cn=readers-main,{GROUPS}"
NESTED_DN = f"cn=team-nested,{GROUPS}"

# The password of the special user contains every character that URL and
# basic-auth handling can get wrong.
SPECIAL_PASSWORD = "p@ss:w/rd%41\\x"
SPECIAL_DN = f"cn=O'Brien\\, Pat,{PEOPLE}"


@dataclass(frozen=True)
class DirectoryUserSpec:
    uid: str
    password: str
    dn: str


USERS = {
    "alice": DirectoryUserSpec("alice", "alice-pass-1", f"uid=alice,{PEOPLE}"),
    "bob": DirectoryUserSpec("bob", "bob-pass-1", f"uid=bob,{PEOPLE}"),
    "carol": DirectoryUserSpec("carol", "carol-pass-1", f"uid=carol,{PEOPLE}"),
    "dave": DirectoryUserSpec("dave", "dave-pass-1", f"uid=dave,{PEOPLE}"),
    "eve": DirectoryUserSpec("eve", "eve-pass-1", f"uid=eve,{PEOPLE}"),
    "pobrien": DirectoryUserSpec("pobrien", SPECIAL_PASSWORD, SPECIAL_DN),
    # Two entries share this uid, so a search for it finds two and nobody may sign in.
    "twin": DirectoryUserSpec("twin", "twin-pass-1", f"uid=twin,{PEOPLE}"),
}

# OIDs under 1.3.6.1.4.1.32473, the enterprise number RFC 5612 reserves for documentation.
AD_SCHEMA = """\
attributetype ( 1.3.6.1.4.1.32473.1.1 NAME 'sAMAccountName'
    EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.32473.1.2 NAME 'userPrincipalName'
    EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.32473.2.1 NAME 'mirrorTestAdUser' SUP top AUXILIARY
    MAY ( sAMAccountName $ userPrincipalName ) )
"""


def _person(spec: DirectoryUserSpec, cn: str, *, extra: str = "") -> str:
    return (
        f"dn: {spec.dn}\nobjectClass: inetOrgPerson\nobjectClass: mirrorTestAdUser\n"
        f"uid: {spec.uid}\ncn: {cn}\nsn: {spec.uid}\nsAMAccountName: {spec.uid}\n"
        f"userPrincipalName: {spec.uid}@example.org\nuserPassword: {spec.password}\n{extra}\n"
    )


def _group(dn: str, name: str, members: list[str]) -> str:
    lines = "".join(f"member: {member}\n" for member in members)
    return f"dn: {dn}\nobjectClass: groupOfNames\ncn: {name}\n{lines}\n"


DIRECTORY_LDIF = (
    f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n"
    f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: People\n\n"
    f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: Groups\n\n"
    f"dn: ou=Services,{SUFFIX}\nobjectClass: organizationalUnit\nou: Services\n\n"
    f"dn: {SERVICE_DN}\nobjectClass: person\ncn: mirror-service\nsn: service\n"
    f"userPassword: {SERVICE_PASSWORD}\n\n"
    + _person(USERS["alice"], "Alice Admin")
    + _person(USERS["bob"], "Bob Reviewer")
    + _person(USERS["carol"], "Carol Reader")
    + _person(USERS["dave"], "Dave Nested")
    + _person(USERS["eve"], "Eve Nobody")
    + _person(USERS["pobrien"], "O'Brien, Pat")
    + _person(USERS["twin"], "Twin One")
    + f"dn: uid=twin,ou=Services,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: twin\ncn: Twin Two\n"
    f"sn: twin\nuserPassword: twin-pass-1\n\n"
    + _group(ADMINS_DN, "mirror-admins", [USERS["alice"].dn])
    + _group(REVIEWERS_DN, "mirror-reviewers", [USERS["bob"].dn])
    + _group(NESTED_DN, "team-nested", [USERS["dave"].dn])
    + _group(READERS_MAIN_DN, "readers-main", [USERS["carol"].dn, SPECIAL_DN, NESTED_DN])
)


def _slapd_conf(folder: Path, with_memberof: bool) -> str:
    overlay = (
        "overlay memberof\nmemberof-group-oc groupOfNames\nmemberof-member-ad member\n"
        "memberof-memberof-ad memberOf\nmemberof-refint TRUE\n"
        if with_memberof else ""
    )
    module = "moduleload memberof\n" if with_memberof else ""
    return f"""\
include {SCHEMA_DIR}/core.schema
include {SCHEMA_DIR}/cosine.schema
include {SCHEMA_DIR}/inetorgperson.schema
include {folder}/ad.schema
pidfile {folder}/slapd.pid
argsfile {folder}/slapd.args
modulepath {MODULE_DIR}
moduleload back_mdb
{module}
database mdb
maxsize 16777216
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PASSWORD}
directory {folder}/db
index objectClass eq
index uid eq
index member eq
{overlay}
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by * none
"""


@dataclass
class Slapd:
    """A running slapd: its URL, port and stats log."""

    url: str
    port: int
    folder: Path
    log_path: Path
    process: subprocess.Popen
    has_memberof: bool

    def bind_count(self, dn: str) -> int:
        """Return how many simple BIND requests slapd logged for `dn`.

        slapd logs a request line (`method=128`) and, on success, a second
        line with the mechanism; only the first is counted.
        """
        return self.log_path.read_text(errors="replace").count(f'BIND dn="{dn}" method=128')

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def missing_tools() -> list[str]:
    missing = [str(SLAPD)] if not SLAPD.is_file() else []
    if shutil.which("ldapadd") is None:
        missing.append("ldapadd")
    return missing


def require_tools() -> None:
    """Skip, or fail where real components are required, when slapd or ldapadd is missing."""
    missing = missing_tools()
    if not missing:
        return
    message = f"{' and '.join(missing)} not installed; install the Debian packages slapd and ldap-utils"
    if os.environ.get("MIRROR_REQUIRE_REAL_COMPONENTS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_slapd(folder: Path) -> Slapd:
    """Configure, start and fill a slapd in `folder`; the caller must call `stop()`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "db").mkdir(exist_ok=True)
    (folder / "ad.schema").write_text(AD_SCHEMA)
    with_memberof = (MODULE_DIR / "memberof.so").exists()
    conf = folder / "slapd.conf"
    conf.write_text(_slapd_conf(folder, with_memberof))

    port = free_port()
    url = f"ldap://127.0.0.1:{port}"
    log_path = folder / "slapd.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(SLAPD), "-f", str(conf), "-h", f"{url}/", "-d", "stats"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    server = Slapd(url, port, folder, log_path, process, with_memberof)
    try:
        _wait_for_port(server)
        _load(server, DIRECTORY_LDIF)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_for_port(server: Slapd) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"slapd exited with {server.process.returncode}:\n{server.log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"slapd did not listen on port {server.port} within {START_TIMEOUT_SECONDS} s")


def _load(server: Slapd, ldif: str) -> None:
    (server.folder / "data.ldif").write_text(ldif, encoding="utf-8")
    # ldapadd -y reads the whole file as the password, so no trailing newline.
    (server.folder / "root.pw").write_text(ROOT_PASSWORD)
    result = subprocess.run(
        ["ldapadd", "-x", "-H", server.url, "-D", ROOT_DN, "-y", str(server.folder / "root.pw"),
         "-f", str(server.folder / "data.ldif")],
        capture_output=True, text=True, timeout=60,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ldapadd failed ({result.returncode}): {result.stderr}")


def ldap_settings(server: Slapd, **overrides) -> LdapConfig:
    """Return `auth.ldap` settings for this directory; the service password comes from the environment."""
    os.environ[SERVICE_PASSWORD_ENV] = SERVICE_PASSWORD
    settings = {
        "servers": [server.url], "base_dn": SUFFIX, "bind_dn": SERVICE_DN,
        "bind_password_env": SERVICE_PASSWORD_ENV, "connect_timeout_seconds": 2.0,
        "receive_timeout_seconds": 5,
    }
    settings.update(overrides)
    return LdapConfig.model_validate(settings)


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory):
    require_tools()
    server = start_slapd(tmp_path_factory.mktemp("slapd"))
    yield server
    server.stop()
