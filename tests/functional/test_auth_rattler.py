"""py-rattler installs from a channel that needs credentials: basic auth in the URL, and a conda token."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
import rattler

from mirror.demo.packages import PackageSpec
from mirror.server.app import start_server
from tests.functional.helpers import build_upstream
from tests.functional.test_auth_routes import auth_settings, make_config
from tests.support.slapd import SPECIAL_PASSWORD, USERS

pytestmark = pytest.mark.real_component

SPECS = [
    PackageSpec("tool", "1.0", "h0_0", subdir="linux-64", depends=["data"],
                files={"bin/tool": b"#!/bin/sh\necho tool\n"}, executables={"bin/tool"}),
    PackageSpec("data", "1.1", subdir="noarch", files={"share/data.txt": b"data\n"}),
]


@pytest.fixture
async def served(tmp_path, slapd):
    config = make_config(tmp_path, auth_settings(slapd, tmp_path))
    build_upstream(config.channels_dir / "main", SPECS)
    runner, url = await start_server(config)
    yield url
    await runner.cleanup()


async def install(channel_url: str, work: Path) -> dict[str, str]:
    records = await rattler.solve(
        sources=[channel_url], specs=["tool"],
        gateway=rattler.Gateway(cache_dir=work / "repodata-cache"),
        platforms=["linux-64", "noarch"], virtual_packages=[],
    )
    await rattler.install(
        records, target_prefix=work / "env", cache_dir=work / "pkgs",
        platform=rattler.Subdir("linux-64"), show_progress=False,
    )
    return {record.name.normalized: str(record.version) for record in records}


async def test_rattler_basic_auth_in_url(served, tmp_path):
    # Userinfo in a URL is percent-encoded; the client decodes it before sending basic auth.
    user = quote("pobrien", safe="")
    password = quote(SPECIAL_PASSWORD, safe="")
    url = served.replace("http://", f"http://{user}:{password}@") + "/main"

    installed = await install(url, tmp_path / "client")

    assert installed == {"tool": "1.0", "data": "1.1"}
    assert (tmp_path / "client" / "env" / "share" / "data.txt").read_text() == "data\n"


async def test_rattler_conda_token_in_path(served, tmp_path):
    carol = USERS["carol"]
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{served}/api/tokens", json={"name": "rattler", "channels": ["main"], "expires_days": 1},
            headers={"Authorization": aiohttp.encode_basic_auth(carol.uid, carol.password)},
        ) as response:
            token = (await response.json())["token"]

    installed = await install(f"{served}/t/{token}/main", tmp_path / "client")

    assert installed == {"tool": "1.0", "data": "1.1"}
    assert (tmp_path / "client" / "env" / "bin" / "tool").exists()


async def test_rattler_without_credentials_fails(served, tmp_path):
    with pytest.raises(Exception) as failure:
        await install(f"{served}/main", tmp_path / "client")

    assert "401" in str(failure.value)
