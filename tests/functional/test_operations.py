"""The service, triggers, leases, whitelist reloads, plan, gc, verify, metrics and readiness, end to end."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web

from mirror.catalog.models import ArtifactState, MembershipState, RunStatus
from mirror.cli.main import cli
from mirror.cli.ops import COMMANDS, EXIT_SKIPPED
from mirror.config.load import load_config
from mirror.config.operations import NotificationsConfig, SchedulerConfig, WebhookConfig
from mirror.scheduler.jobs import sync_lease
from mirror.scheduler.leader import LeaseStore
from mirror.scheduler.service import start_service
from tests.functional.helpers import WHITELIST, Mirror, build_upstream, demo_like_specs
from tests.support.fake_upstream import Fault, FakeUpstream

for command in COMMANDS:
    cli.add_command(command)

EXPECTED = {
    "tool-1.0-h0_0.conda", "tool-1.0-h0_0.tar.bz2",
    "libx-2.0-h0_0.conda", "libx-2.0-h0_0.tar.bz2",
    "data-1.1-0.conda", "data-1.1-0.tar.bz2",
}
DATA_ONLY = "- upstream: up\n  channel: main\n  packages: [data]\n"
# Without the install and consistency checks no quarantine or staging links keep blobs alive.
FAST_CHANNEL = "  main: {approval: auto, checks: [integrity, archive, metadata]}"


@pytest.fixture
def upstream(tmp_path):
    root = build_upstream(tmp_path / "upstream", demo_like_specs())
    with FakeUpstream(root) as server:
        yield server


@pytest.fixture
def mirror(tmp_path, upstream) -> Mirror:
    return Mirror(tmp_path / "mirror").write(upstream.url, WHITELIST, channels=FAST_CHANNEL)


def service_config(mirror: Mirror, **sections):
    config = load_config(mirror.config_path)
    return config.model_copy(update={"scheduler": SchedulerConfig(enabled=False, lease_seconds=30), **sections})


@pytest.fixture
async def service(mirror):
    running = await start_service(service_config(mirror))
    yield running
    await running.stop()


def write_whitelist(mirror: Mirror, text: str) -> None:
    path = mirror.folder / "whitelist.yaml"
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, (await response.read()).decode("utf-8", "replace")


async def post(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.post(url) as response:
        return response.status, await response.json()


# Service cycles


async def test_service_cycle_publishes(service, mirror):
    result = await service.runner.run_upstream("up")
    assert result.status == RunStatus.SUCCESS
    assert mirror.published() == EXPECTED
    assert [r.kind for r in mirror.runs()] == ["sync", "validate", "publish"]
    assert LeaseStore(service.context.catalog).live_leases() == []


async def test_scheduled_cycle_runs(mirror):
    config = service_config(mirror)
    config = config.model_copy(update={"scheduler": config.scheduler.model_copy(update={"enabled": True})})
    running = await start_service(config)
    try:
        assert running.scheduled == {"up": "0 3 * * *"}
        running.scheduler.modify_job("sync:up", next_run_time=datetime.now(UTC))
        while len([r for r in mirror.runs() if r.finished_at is not None]) < 3:
            await asyncio.sleep(0.1)
    finally:
        await running.stop()
    assert [(r.kind, r.status) for r in mirror.runs()] == [
        ("sync", RunStatus.SUCCESS), ("validate", RunStatus.SUCCESS), ("publish", RunStatus.SUCCESS),
    ]
    assert mirror.published() == EXPECTED


async def test_api_trigger_runs_cycle(service, mirror):
    status, body = await post(f"{service.base_url}/api/sync/up")
    assert status == 202
    assert body == {"upstream": "up", "status": "started"}
    await asyncio.gather(*[t for t in service.background if t.get_name() == "sync up"])
    assert mirror.published() == EXPECTED


async def test_api_trigger_unknown_upstream(service):
    status, _ = await post(f"{service.base_url}/api/sync/nope")
    assert status == 404


async def test_overlapping_trigger_skipped(service, mirror, caplog):
    other = LeaseStore(service.context.catalog, identity="replica-2")
    other.acquire(sync_lease("up"), 60)

    with caplog.at_level(logging.WARNING, logger="mirror.scheduler.jobs"):
        result = await service.runner.run_upstream("up", trigger="schedule")
    assert result.skipped
    assert "replica-2" in result.reason
    assert "sync of upstream up (schedule) skipped" in caplog.text
    assert mirror.runs() == []

    status, body = await post(f"{service.base_url}/api/sync/up")
    assert status == 409
    assert body["status"] == "busy"
    assert mirror.runs() == []


async def test_interrupted_cycle_recorded(service, mirror, upstream):
    stalled = "/noarch/data-1.1-0.conda"
    upstream.add_fault(stalled, Fault("stall", times=None, stall_seconds=60))
    task = asyncio.create_task(service.runner.run_upstream("up"))
    while stalled not in upstream.paths_requested():
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    runs = mirror.runs()
    assert [(r.kind, r.status) for r in runs] == [("sync", RunStatus.INTERRUPTED)]
    assert LeaseStore(service.context.catalog).holder_of(sync_lease("up")) is None


async def test_bad_package_skipped_then_recovers(mirror, upstream, aiohttp_server):
    received = []

    async def receive(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", receive)
    hook = await aiohttp_server(app, host="127.0.0.1")
    notifications = NotificationsConfig(webhooks=[WebhookConfig(url=f"http://127.0.0.1:{hook.port}/hook")])
    running = await start_service(service_config(mirror, notifications=notifications))
    try:
        upstream.add_fault("/noarch/data-1.1-0.conda", Fault("corrupt", times=None, offset=100))
        first = await running.runner.run_upstream("up")
        upstream.clear()
        second = await running.runner.run_upstream("up")
    finally:
        await running.stop()

    assert first.status == RunStatus.PARTIAL
    assert second.status == RunStatus.SUCCESS
    assert mirror.published() == EXPECTED
    events = [payload["event"] for payload in received]
    assert events == ["run_failed", "download_failed"]
    assert "data-1.1-0.conda" in received[1]["items"][0]


async def test_broken_whitelist_keeps_last_good(service, mirror):
    await service.runner.run_upstream("up")
    write_whitelist(mirror, DATA_ONLY + "- upstream: up\n  channel: nope\n  packages: [x]\n")

    result = await service.runner.run_upstream("up")
    assert result.status == RunStatus.SUCCESS
    assert mirror.published() == EXPECTED
    assert all(m.state != MembershipState.RETIRED for m in mirror.memberships())

    status = mirror.cli("status")
    assert "whitelist.yaml:5:" in status.output
    assert "unknown channel 'nope'" in status.output


async def test_fixed_whitelist_applies(service, mirror):
    await service.runner.run_upstream("up")
    write_whitelist(mirror, DATA_ONLY)
    await service.runner.run_upstream("up")
    assert mirror.published() == {"data-1.1-0.conda", "data-1.1-0.tar.bz2"}


# HTTP operations


async def test_metrics_after_run(service):
    await service.runner.run_upstream("up")
    status, _ = await get(f"{service.base_url}/main/noarch/data-1.1-0.conda")
    assert status == 200

    status, text = await get(f"{service.base_url}/metrics")
    assert status == 200
    assert 'mirror_packages{channel="main",state="approved"} 6.0' in text
    assert 'mirror_artifacts{state="downloaded"} 6.0' in text
    assert 'mirror_sync_duration_seconds_count{status="success",upstream="up"}' in text
    assert 'mirror_sync_downloaded_bytes_total{upstream="up"}' in text
    assert 'route="/{channel}/{subdir}/{filename}"' in text
    assert "data-1.1-0.conda" not in text
    assert "mirror_catalog_up 1.0" in text
    assert 'mirror_last_run_timestamp_seconds{kind="publish",status="success"}' in text


async def test_readyz_needs_channels(service, mirror):
    mirror.channels_dir.rmdir()
    status, body = await get(f"{service.base_url}/readyz")
    assert status == 503
    assert "channels folder" in body

    await service.runner.run_upstream("up")
    status, body = await get(f"{service.base_url}/readyz")
    assert status == 200
    assert '"ready"' in body


# CLI operations


def test_trigger_command_runs_cycle(mirror):
    result = mirror.cli("trigger", "up")
    assert result.exit_code == 0, result.output
    assert mirror.published() == EXPECTED


def test_trigger_command_skipped(mirror):
    catalog = mirror.catalog()
    try:
        LeaseStore(catalog, identity="replica-2").acquire(sync_lease("up"), 60)
    finally:
        catalog.close()
    result = mirror.cli("trigger", "up")
    assert result.exit_code == EXIT_SKIPPED
    assert "sync of up skipped: lease sync:up is held by replica-2" in result.output
    assert mirror.runs() == []


def test_plan_shows_changes(mirror):
    assert mirror.cli("run").exit_code == 0
    write_whitelist(mirror, DATA_ONLY + "- upstream: up\n  channel: main\n  packages: [unrelated]\n")
    result = mirror.cli("plan")
    assert result.exit_code == 0, result.output

    rows = {line.split("│")[2].strip(): line for line in result.output.splitlines() if line.count("│") >= 4}
    assert "retire" in rows["up/linux-64/tool-1.0-h0_0.conda"]
    assert "retire" in rows["up/linux-64/libx-2.0-h0_0.tar.bz2"]
    assert "add" in rows["up/noarch/unrelated-1.0-0.conda"]
    assert "up/noarch/data-1.1-0.conda" not in rows
    assert "to add: 2 files" in result.output
    assert "to retire: 4 files" in result.output
    # Planning changes nothing.
    assert mirror.published() == EXPECTED


def test_plan_without_cache_warns(mirror):
    result = mirror.cli("plan")
    assert result.exit_code == 0
    assert "no cached repodata" in result.output


def test_plan_fetch_fills_cache(mirror):
    result = mirror.cli("plan", "--fetch")
    assert result.exit_code == 0, result.output
    assert "to add: 6 files" in result.output


def test_gc_dry_run_then_real(tmp_path, upstream):
    mirror = Mirror(tmp_path / "gc").write(upstream.url, WHITELIST, channels=FAST_CHANNEL)
    with mirror.config_path.open("a") as stream:
        stream.write("publish: {removal_grace_seconds: 0}\n")
    assert mirror.cli("run").exit_code == 0
    write_whitelist(mirror, DATA_ONLY)
    assert mirror.cli("run").exit_code == 0
    store = mirror.folder / "data" / "store"

    young = mirror.cli("gc", "--dry-run")
    assert "would remove 0" in young.output
    assert "4 unreferenced for less than 30 days" in young.output

    dry = mirror.cli("gc", "--dry-run", "--older-than-days", "0")
    assert dry.exit_code == 0, dry.output
    assert "would remove 4" in dry.output
    assert len([p for p in store.rglob("*") if p.is_file()]) == 6

    real = mirror.cli("gc", "--older-than-days", "0")
    assert real.exit_code == 0, real.output
    assert "removed 4" in real.output
    assert len([p for p in store.rglob("*") if p.is_file()]) == 2
    states = {a.filename: a.state for a in mirror.artifacts()}
    assert states["tool-1.0-h0_0.conda"] == ArtifactState.DISCOVERED
    assert states["data-1.1-0.conda"] == ArtifactState.DOWNLOADED
    assert mirror.cli("verify").exit_code == 0

    # Selected again, the removed files are downloaded again.
    write_whitelist(mirror, WHITELIST)
    assert mirror.cli("run").exit_code == 0
    assert mirror.published() == EXPECTED


def test_verify_detects_tampering(mirror):
    assert mirror.cli("run").exit_code == 0
    clean = mirror.cli("verify")
    assert clean.exit_code == 0, clean.output
    assert "6 files checked, 0 differences" in clean.output

    published = mirror.channels_dir / "main" / "noarch" / "data-1.1-0.conda"
    data = published.read_bytes()
    published.unlink()
    published.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))

    result = mirror.cli("verify")
    assert result.exit_code == 1
    assert "main/noarch/data-1.1-0.conda: sha256" in result.output
    assert "differs from the catalog" in result.output


def test_verify_detects_missing_file(mirror):
    assert mirror.cli("run").exit_code == 0
    (mirror.channels_dir / "main" / "linux-64" / "tool-1.0-h0_0.conda").unlink()
    result = mirror.cli("verify")
    assert result.exit_code == 1
    assert "tool-1.0-h0_0.conda: listed in repodata.json but missing" in result.output


def test_status_shows_schedule_and_queues(mirror):
    assert mirror.cli("run").exit_code == 0
    result = mirror.cli("status")
    assert result.exit_code == 0
    assert "0 3 * * * (UTC)" in result.output
    assert "Queues" in result.output
