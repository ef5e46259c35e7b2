"""Authentication on every route, over real HTTP on 127.0.0.1, against a real slapd."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from mirror.auth.models import ApiToken
from mirror.catalog.models import AuditEvent
from mirror.catalog.session import Catalog
from mirror.config.auth import AuthConfig
from mirror.config.schema import MirrorConfig
from mirror.publish import PublishedFile, publish_channel
from mirror.server.app import start_server
from mirror.store.filesystem import FilesystemBlobStore
from tests.support.corpus import CORPUS_DIR, require_corpus
from tests.support.slapd import ADMINS_DN, READERS_MAIN_DN, SPECIAL_PASSWORD, USERS, ldap_settings

pytestmark = pytest.mark.real_component

CORPUS_SUBDIR = CORPUS_DIR / "channels/conda-format-repo/linux-64"
PACKAGE = "zlib-1.2.11-h7b6447c_3.conda"
BREAK_GLASS_PASSWORD = "break-glass-pass"
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)

CREDENTIALS = {
    "anonymous": None,
    "reader": ("carol", USERS["carol"].password),
    "reviewer": ("bob", USERS["bob"].password),
    "admin": ("alice", USERS["alice"].password),
}


@dataclass
class Served:
    url: str
    config: MirrorConfig

    def catalog(self) -> Catalog:
        return Catalog(self.config.database)


def publish_main(config: MirrorConfig, tmp_path: Path) -> None:
    """Publish one corpus package into channel `main` through the real blob store."""
    require_corpus()
    upstream = json.loads((CORPUS_SUBDIR / "repodata.json").read_bytes())
    record = upstream["packages.conda"][PACKAGE]
    store = FilesystemBlobStore(config.store_dir)
    incoming = tmp_path / f"incoming-{PACKAGE}"
    shutil.copyfile(CORPUS_SUBDIR / PACKAGE, incoming)
    store.add_verified_file(incoming, record["sha256"])
    publish_channel(
        config.channels_dir / "main", {"linux-64": {PACKAGE: PublishedFile(record, record["sha256"])}},
        store.link, all_subdirs=["linux-64"],
    )


def auth_settings(slapd_server, tmp_path: Path, **overrides) -> AuthConfig:
    users_file = tmp_path / "users.yaml"
    users_file.write_text(
        "users:\n  breakglass:\n"
        f"    password_hash: '{CHEAP_HASHER.hash(BREAK_GLASS_PASSWORD)}'\n    roles: [admin]\n"
    )
    settings = {
        "enabled": True,
        "users_file": users_file,
        "ldap": ldap_settings(slapd_server, nested_groups="recursive"),
        "roles": {"admin": [ADMINS_DN], "reviewer": ["mirror-reviewers"], "readers": {"main": [READERS_MAIN_DN]}},
        "limits": {"max_failures_per_user": 3, "max_failures_per_address": 50},
    }
    settings.update(overrides)
    return AuthConfig.model_validate(settings)


def make_config(tmp_path: Path, auth: AuthConfig) -> MirrorConfig:
    config = MirrorConfig.model_validate(
        {
            "data_dir": tmp_path / "data",
            "database": f"sqlite:///{tmp_path / 'data' / 'catalog.db'}",
            "upstreams": {"upstream": {"url": "http://127.0.0.1:9"}},
            "channels": {"main": {}, "prod": {}},
            "server": {"host": "127.0.0.1", "port": 0},
        }
    )
    return config.model_copy(update={"auth": auth})


@pytest.fixture
async def serve(tmp_path, slapd):
    """Return a function that starts the server with auth settings; every server stops at teardown."""
    runners = []

    async def start(**overrides) -> Served:
        config = make_config(tmp_path, auth_settings(slapd, tmp_path, **overrides))
        publish_main(config, tmp_path)
        runner, url = await start_server(config)
        runners.append(runner)
        return Served(url, config)

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def basic(user: tuple[str, str] | None) -> dict[str, str]:
    """Return the Authorization header of `user`, UTF-8 encoded as RFC 7617 recommends."""
    return {} if user is None else {"Authorization": aiohttp.encode_basic_auth(user[0], user[1])}


async def status_of(http, method: str, url: str, user=None, **kwargs) -> int:
    headers = {**basic(user), **kwargs.pop("headers", {})}
    async with http.request(method, url, headers=headers, allow_redirects=False, **kwargs) as response:
        await response.read()
        return response.status


async def create_token(http, served: Served, user, channels=("main",), days: int = 7) -> dict:
    async with http.post(
        f"{served.url}/api/tokens", headers=basic(user),
        json={"name": "ci", "channels": list(channels), "expires_days": days},
    ) as response:
        assert response.status == 201, await response.text()
        return await response.json()


# (method, path, expected status for anonymous, reader of main, reviewer, admin)
ROUTE_TABLE = [
    ("GET", "/healthz", (200, 200, 200, 200)),
    ("HEAD", "/healthz", (200, 200, 200, 200)),
    ("GET", "/main/channeldata.json", (401, 200, 403, 200)),
    ("GET", "/main/linux-64/repodata.json", (401, 200, 403, 200)),
    ("HEAD", "/main/linux-64/repodata.json", (401, 200, 403, 200)),
    ("GET", f"/main/linux-64/{PACKAGE}", (401, 200, 403, 200)),
    ("GET", "/prod/channeldata.json", (401, 403, 403, 404)),
    ("GET", "/nosuch/linux-64/repodata.json", (401, 403, 403, 404)),
    ("GET", "/api/whoami", (401, 200, 200, 200)),
    ("GET", "/api/whoami/", (401, 200, 200, 200)),
    ("GET", "/api/tokens", (401, 200, 200, 200)),
    ("GET", "/api/tokens/", (401, 200, 200, 200)),
    ("DELETE", "/api/tokens/999999", (401, 404, 404, 404)),
    ("GET", "/t/cdm_not-a-real-token-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/main/channeldata.json",
     (401, 401, 401, 401)),
    ("GET", "/no/such/route/at/all", (401, 404, 404, 404)),
]


async def test_route_table(serve, http):
    served = await serve()

    for method, path, expected in ROUTE_TABLE:
        for role, status in zip(CREDENTIALS, expected):
            actual = await status_of(http, method, served.url + path, CREDENTIALS[role])
            assert actual == status, f"{method} {path} as {role}"


async def test_route_table_token_routes(serve, http):
    served = await serve()
    main_token = (await create_token(http, served, CREDENTIALS["reader"]))["token"]

    # The path token is the credential, whatever Authorization header comes with it.
    for role, user in CREDENTIALS.items():
        for path in ("/main/channeldata.json", "/main/linux-64/repodata.json", f"/main/linux-64/{PACKAGE}"):
            assert await status_of(http, "GET", f"{served.url}/t/{main_token}{path}", user) == 200, role
        assert await status_of(http, "GET", f"{served.url}/t/{main_token}/prod/channeldata.json", user) == 403


async def test_post_token_by_role(serve, http):
    served = await serve()
    body = {"name": "ci", "channels": ["main"], "expires_days": 7}
    expected = {"anonymous": 401, "reader": 201, "reviewer": 403, "admin": 201}

    for role, status in expected.items():
        assert await status_of(http, "POST", f"{served.url}/api/tokens", CREDENTIALS[role], json=body) == status
        assert await status_of(http, "POST", f"{served.url}/api/tokens/", CREDENTIALS[role], json=body) == status


async def test_unauthorized_challenge(serve, http):
    served = await serve()

    async with http.get(f"{served.url}/main/channeldata.json") as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == 'Basic realm="conda mirror"'
        assert await response.json() == {"error": "authentication required"}


async def test_whoami_roles(serve, http):
    served = await serve()

    async with http.get(f"{served.url}/api/whoami", headers=basic(CREDENTIALS["admin"])) as response:
        admin = await response.json()
    async with http.get(f"{served.url}/api/whoami", headers=basic(("dave", USERS["dave"].password))) as response:
        nested = await response.json()

    assert admin == {"user": "alice", "source": "ldap", "token_id": None, "admin": True,
                     "reviewer": True, "channels": ["main", "prod"]}
    assert nested["channels"] == ["main"]
    assert nested["reviewer"] is False


async def test_special_password_basic_auth(serve, http):
    served = await serve()

    ok = await status_of(http, "GET", f"{served.url}/main/channeldata.json", ("pobrien", SPECIAL_PASSWORD))
    percent_encoded = await status_of(
        http, "GET", f"{served.url}/main/channeldata.json", ("pobrien", "p%40ss%3Aw%2Frd%2541%5Cx")
    )

    assert ok == 200
    # The server takes basic credentials as sent: a percent-encoded password is a different password.
    assert percent_encoded == 401


async def test_break_glass_local_admin(serve, http):
    served = await serve()

    assert await status_of(http, "GET", f"{served.url}/main/channeldata.json", ("breakglass", BREAK_GLASS_PASSWORD)) == 200
    assert await status_of(http, "GET", f"{served.url}/main/channeldata.json", ("breakglass", "wrong")) == 401


INJECTION_USERS = ["*", "a*", "admin)(|(uid=*", "bob\\5c", "x\x00", "ÿ"]


async def test_injection_vectors_rejected(serve, http, caplog):
    caplog.set_level(logging.DEBUG)
    served = await serve(limits={"max_failures_per_user": 100, "max_failures_per_address": 1000})
    passwords = [USERS["alice"].password, "wrong-password-xyz", ""]

    for username in INJECTION_USERS:
        for password in passwords:
            status = await status_of(http, "GET", f"{served.url}/main/channeldata.json", (username, password))
            assert status == 401, (username, password)

    for password in passwords[:2]:
        assert password not in caplog.text


async def test_wrong_and_empty_password(serve, http, slapd):
    served = await serve()
    carol = USERS["carol"]
    binds_before = slapd.bind_count(carol.dn)

    wrong = await status_of(http, "GET", f"{served.url}/main/channeldata.json", ("carol", "nope"))
    empty = await status_of(http, "GET", f"{served.url}/main/channeldata.json", ("carol", ""))

    assert wrong == 401
    assert empty == 401
    # The empty password never reached the directory.
    assert slapd.bind_count(carol.dn) == binds_before + 1


async def test_lockout_after_failures(serve, http):
    served = await serve()
    url = f"{served.url}/main/channeldata.json"

    statuses = [await status_of(http, "GET", url, ("eve", "wrong")) for _ in range(3)]
    async with http.get(url, headers=basic(("eve", USERS["eve"].password))) as response:
        locked_status = response.status
        retry_after = response.headers.get("Retry-After")
        message = (await response.json())["error"]

    assert statuses == [401, 401, 401]
    assert locked_status == 429
    assert retry_after is not None and int(retry_after) >= 1
    assert "too many failed sign-in attempts" in message


async def test_directory_down_503(tmp_path, slapd, http):
    from tests.support.slapd import free_port

    ldap = ldap_settings(slapd, servers=[f"ldap://127.0.0.1:{free_port()}"])
    config = make_config(tmp_path, auth_settings(slapd, tmp_path, ldap=ldap))
    runner, url = await start_server(config)
    try:
        async with http.get(f"{url}/main/channeldata.json", headers=basic(CREDENTIALS["reader"])) as response:
            status = response.status
            body = await response.json()
            retry_after = response.headers.get("Retry-After")
    finally:
        await runner.cleanup()

    assert status == 503
    assert body == {"error": "the user directory is unavailable; try again later"}
    assert retry_after == "30"


async def test_cache_one_bind_per_window(serve, http, slapd):
    served = await serve()
    carol = USERS["carol"]
    binds_before = slapd.bind_count(carol.dn)

    for path in ("/main/channeldata.json", "/main/linux-64/repodata.json", f"/main/linux-64/{PACKAGE}",
                 "/main/linux-64/repodata.json", "/api/whoami"):
        assert await status_of(http, "GET", served.url + path, CREDENTIALS["reader"]) == 200

    assert slapd.bind_count(carol.dn) == binds_before + 1


async def test_cache_disabled_binds_each_time(serve, http, slapd):
    served = await serve(cache_seconds=0)
    carol = USERS["carol"]
    binds_before = slapd.bind_count(carol.dn)

    for _ in range(3):
        assert await status_of(http, "GET", f"{served.url}/main/channeldata.json", CREDENTIALS["reader"]) == 200

    assert slapd.bind_count(carol.dn) == binds_before + 3


async def test_token_bearer_and_path(serve, http):
    served = await serve()
    issued = await create_token(http, served, CREDENTIALS["reader"])

    bearer = await status_of(http, "GET", f"{served.url}/main/channeldata.json",
                             headers={"Authorization": f"Bearer {issued['token']}"})
    path = await status_of(http, "GET", f"{served.url}/t/{issued['token']}/main/channeldata.json")
    manage = await status_of(http, "GET", f"{served.url}/api/tokens",
                             headers={"Authorization": f"Bearer {issued['token']}"})

    assert bearer == 200
    assert path == 200
    assert manage == 403


async def test_token_revocation(serve, http):
    served = await serve()
    issued = await create_token(http, served, CREDENTIALS["reader"])
    url = f"{served.url}/t/{issued['token']}/main/channeldata.json"
    assert await status_of(http, "GET", url) == 200

    other_user = await status_of(http, "DELETE", f"{served.url}/api/tokens/{issued['id']}", CREDENTIALS["reviewer"])
    owner = await status_of(http, "DELETE", f"{served.url}/api/tokens/{issued['id']}", CREDENTIALS["reader"])

    assert other_user == 404
    assert owner == 200
    assert await status_of(http, "GET", url) == 401


async def test_token_expiry(serve, http):
    served = await serve()
    issued = await create_token(http, served, CREDENTIALS["reader"])
    catalog = served.catalog()
    try:
        with catalog.session() as session:
            row = session.get(ApiToken, issued["id"])
            row.expires_at = row.created_at - timedelta(days=1)
    finally:
        catalog.close()

    assert await status_of(http, "GET", f"{served.url}/t/{issued['token']}/main/channeldata.json") == 401


async def test_tokens_stored_hashed(serve, http):
    served = await serve()
    issued = await create_token(http, served, CREDENTIALS["reader"])
    catalog = served.catalog()
    try:
        with catalog.session() as session:
            row = session.get(ApiToken, issued["id"])
            columns = [str(getattr(row, column.name)) for column in ApiToken.__table__.columns]
    finally:
        catalog.close()

    assert row.token_hash == hashlib.sha256(issued["token"].encode()).hexdigest()
    assert all(issued["token"] not in value for value in columns)
    async with http.get(f"{served.url}/api/tokens", headers=basic(CREDENTIALS["reader"])) as response:
        listed = await response.text()
    assert issued["token"] not in listed


async def test_token_limited_to_owner_channels(serve, http):
    served = await serve()

    reader_prod = await status_of(http, "POST", f"{served.url}/api/tokens", CREDENTIALS["reader"],
                                  json={"name": "x", "channels": ["prod"], "expires_days": 1})
    unknown = await status_of(http, "POST", f"{served.url}/api/tokens", CREDENTIALS["admin"],
                              json={"name": "x", "channels": ["nosuch"], "expires_days": 1})
    too_long = await status_of(http, "POST", f"{served.url}/api/tokens", CREDENTIALS["admin"],
                               json={"name": "x", "channels": ["main"], "expires_days": 100000})

    assert reader_prod == 403
    assert unknown == 400
    assert too_long == 400


async def test_anonymous_read_configured(serve, http):
    served = await serve(anonymous_read=["main"])

    assert await status_of(http, "GET", f"{served.url}/main/channeldata.json") == 200
    assert await status_of(http, "GET", f"{served.url}/prod/channeldata.json") == 401
    assert await status_of(http, "GET", f"{served.url}/api/whoami") == 401
    # Wrong credentials are not downgraded to anonymous access.
    assert await status_of(http, "GET", f"{served.url}/main/channeldata.json", ("carol", "wrong")) == 401


async def test_private_cache_control(serve, http):
    served = await serve()

    async with http.get(f"{served.url}/main/linux-64/{PACKAGE}", headers=basic(CREDENTIALS["reader"])) as response:
        assert response.headers["Cache-Control"] == "private, max-age=31536000"


async def test_audit_events(serve, http):
    served = await serve()
    for _ in range(3):
        await status_of(http, "GET", f"{served.url}/main/channeldata.json", CREDENTIALS["reader"])
    await status_of(http, "GET", f"{served.url}/main/channeldata.json", ("carol", "wrong"))
    await status_of(http, "GET", f"{served.url}/main/channeldata.json", CREDENTIALS["reviewer"])
    issued = await create_token(http, served, CREDENTIALS["reader"])
    for _ in range(2):
        await status_of(http, "GET", f"{served.url}/t/{issued['token']}/main/channeldata.json")
    await status_of(http, "DELETE", f"{served.url}/api/tokens/{issued['id']}", CREDENTIALS["reader"])

    catalog = served.catalog()
    try:
        with catalog.session() as session:
            events = [(event.actor, event.action) for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    finally:
        catalog.close()

    assert events == [
        ("carol", "auth.login"),
        ("carol", "auth.denied"),
        ("bob", "auth.login"),
        ("bob", "auth.forbidden"),
        ("carol", "token.created"),
        ("carol", "auth.token_used"),
        ("carol", "token.revoked"),
    ]


async def test_no_secret_in_logs(serve, http, caplog):
    caplog.set_level(logging.DEBUG)
    served = await serve()
    issued = await create_token(http, served, CREDENTIALS["reader"])

    await status_of(http, "GET", f"{served.url}/t/{issued['token']}/main/channeldata.json")
    await status_of(http, "GET", f"{served.url}/t/{issued['token']}/nosuch/x/y/z")
    await status_of(http, "GET", f"{served.url}/main/channeldata.json", ("pobrien", SPECIAL_PASSWORD))
    await status_of(http, "GET", f"{served.url}/main/channeldata.json", ("pobrien", SPECIAL_PASSWORD + "x"))

    assert issued["token"] not in caplog.text
    assert SPECIAL_PASSWORD not in caplog.text
    assert USERS["carol"].password not in caplog.text
    assert "/t/<redacted>/main/channeldata.json" in caplog.text
