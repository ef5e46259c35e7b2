"""Suite-wide settings: real-component tests may not be skipped where they are required.

Tests marked `real_component` exercise software a user meets for real (a
conda client, database and directory servers, a browser). When
MIRROR_REQUIRE_REAL_COMPONENTS=1 (CI sets it), a skip of such a test
fails the run, so a missing install step cannot hide behind a green run.
"""

from __future__ import annotations

import os

import pytest

# The real slapd and PostgreSQL fixtures, shared by the tests that need them.
pytest_plugins = ["tests.support.slapd", "tests.support.postgres"]

_skipped_real: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "real_component" in report.keywords:
        _skipped_real.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped_real and os.environ.get("MIRROR_REQUIRE_REAL_COMPONENTS") == "1":
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                "real-component tests were skipped but are required here: " + ", ".join(_skipped_real),
                red=True,
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
