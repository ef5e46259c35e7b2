"""Build the built-in checks from the mirror's configuration, keyed by check name.

The names are the ones channels list under `checks:` in `mirror.yaml`.
Checks that need the catalog (advisories) or the job (the quarantine
channel for install tests) receive them here, so the checks themselves
stay free of database and job code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mirror.validate.pipeline import Check
from mirror.validate.result import CheckContext

logger = logging.getLogger(__name__)


def build_checks(context, quarantine_url: Callable[[CheckContext], str | None]) -> dict[str, Check]:
    """Return every per-file check, configured from `context.config`."""
    from mirror.advisories.matching import AdvisoryIndex
    from mirror.validate.checks.archive import ArchiveCheck
    from mirror.validate.checks.install import InstallTestCheck
    from mirror.validate.checks.integrity import IntegrityCheck
    from mirror.validate.checks.licence import LicenceCheck
    from mirror.validate.checks.malware import MalwareCheck
    from mirror.validate.checks.metadata import MetadataCheck
    from mirror.validate.checks.paths import PathsCheck
    from mirror.validate.checks.scripts import ScriptsCheck
    from mirror.validate.checks.vulnerabilities import VulnerabilitiesCheck
    from mirror.validate.package_reader import ArchiveLimits

    settings = context.config.validation
    limits = ArchiveLimits(
        max_total_bytes=settings.max_unpacked_bytes,
        max_members=settings.max_members,
        max_compression_ratio=settings.max_compression_ratio,
    )
    with context.catalog.session() as session:
        advisories = AdvisoryIndex.load(session)

    checks: list[Check] = [
        IntegrityCheck(),
        ArchiveCheck(limits),
        MetadataCheck(limits),
        PathsCheck(limits),
        ScriptsCheck(limits),
        LicenceCheck(),
        VulnerabilitiesCheck(advisories),
        MalwareCheck(settings.yara_rules_dir, limits=limits),
        InstallTestCheck(
            quarantine_url,
            timeout_seconds=settings.install_timeout_seconds,
            memory_mb=settings.install_memory_mb,
            isolate_network=settings.isolate_network,
            work_root=context.config.tmp_dir,
        ),
    ]
    return {check.name: check for check in checks}
