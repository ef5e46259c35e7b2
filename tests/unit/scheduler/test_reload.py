"""Whitelist reloads: a broken file keeps the last good whitelist and records its error."""

from __future__ import annotations

import logging
import os

from mirror.scheduler.reload import WhitelistWatcher, whitelist_status

GOOD = "- upstream: up\n  channel: main\n  packages: [numpy]\n"
OTHER = "- upstream: up\n  channel: main\n  packages: [scipy, numpy]\n"
BROKEN = "- upstream: up\n  channel: main\n  packages: [numpy]\n- upstream: nope\n  channel: main\n  packages: [x]\n"


def write(path, text: str) -> None:
    path.write_text(text)
    # Some file systems keep the old mtime within one tick; force a visible change.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def test_reload_picks_up_change(config, catalog):
    write(config.whitelist, GOOD)
    watcher = WhitelistWatcher(config, catalog)
    watcher.start()
    write(config.whitelist, OTHER)
    assert watcher.check() is True
    assert watcher.entries[0].packages == ["scipy", "numpy"]


def test_reload_unchanged_file(config, catalog):
    write(config.whitelist, GOOD)
    watcher = WhitelistWatcher(config, catalog)
    watcher.start()
    assert watcher.check() is False


def test_reload_broken_keeps_last_good(config, catalog, caplog):
    write(config.whitelist, GOOD)
    watcher = WhitelistWatcher(config, catalog)
    watcher.start()
    write(config.whitelist, BROKEN)
    with caplog.at_level(logging.ERROR, logger="mirror.scheduler.reload"):
        assert watcher.check() is False

    assert [entry.packages for entry in watcher.entries] == [["numpy"]]
    status = whitelist_status(catalog)
    assert status.entries == 1
    assert f"{config.whitelist}:4:" in status.error
    assert "unknown upstream 'nope'" in status.error
    assert f"{config.whitelist}:4:" in caplog.text


def test_reload_error_cleared_by_fix(config, catalog):
    write(config.whitelist, GOOD)
    watcher = WhitelistWatcher(config, catalog)
    watcher.start()
    write(config.whitelist, BROKEN)
    watcher.check()
    write(config.whitelist, OTHER)
    assert watcher.check() is True
    assert whitelist_status(catalog).error is None
    assert whitelist_status(catalog).entries == 1


def test_restart_uses_stored_whitelist(config, catalog):
    write(config.whitelist, GOOD)
    WhitelistWatcher(config, catalog).start()
    write(config.whitelist, "- upstream: [broken\n")
    restarted = WhitelistWatcher(config, catalog)
    restarted.start()
    assert [entry.packages for entry in restarted.entries] == [["numpy"]]
    assert "whitelist.yaml:2: invalid YAML" in whitelist_status(catalog).error


def test_missing_whitelist_has_no_entries(config, catalog):
    watcher = WhitelistWatcher(config, catalog)
    watcher.start()
    assert watcher.entries is None
    assert "cannot read the whitelist" in whitelist_status(catalog).error
