"""Vulnerabilities check: which imported advisories affect the package's name and version.

The check records facts only. Whether a channel accepts a package with
these advisories is `mirror.advisories.policy.evaluate_vulnerabilities`.
Its version carries the advisory database's fingerprint, so stored
results are recomputed after an import changes the database.
"""

from __future__ import annotations

import logging

from mirror.advisories.matching import AdvisoryIndex
from mirror.catalog.models import CheckOutcome
from mirror.validate.result import CheckContext, CheckResult

logger = logging.getLogger(__name__)

LOGIC_VERSION = "1"


class VulnerabilitiesCheck:
    """Look up the upstream record's name and version in an `AdvisoryIndex`, and WARN on any match."""

    name = "vulnerabilities"

    def __init__(self, index: AdvisoryIndex):
        self.index = index
        self.version = f"{LOGIC_VERSION}+{index.fingerprint}"

    def run(self, context: CheckContext) -> CheckResult:
        name, version = context.record.get("name"), context.record.get("version")
        if not isinstance(name, str) or not isinstance(version, str):
            return CheckResult(
                CheckOutcome.ERROR,
                f"the upstream record has no string name and version ({name!r}, {version!r}) to look up",
                {"name": name, "version": version},
            )

        matches = self.index.match(name, version)
        evidence = {
            "name": name,
            "version": version,
            "looked_up": [f"{ecosystem}:{package}" for ecosystem, package in self.index.candidates(name)],
            "database": self.index.fingerprint,
            "advisories": [match.as_evidence() for match in matches],
        }
        if not matches:
            return CheckResult(CheckOutcome.PASS, f"no known advisory affects {name} {version}", evidence)

        listed = ", ".join(
            f"{match.advisory_id} ({match.severity or 'severity unknown'}"
            + (f", fixed in {', '.join(match.fixed)})" if match.fixed else ", no fix)")
            for match in matches
        )
        logger.debug("%s: %d advisories match: %s", context.filename, len(matches), listed)
        noun = "advisory affects" if len(matches) == 1 else "advisories affect"
        return CheckResult(CheckOutcome.WARN, f"{len(matches)} known {noun} {name} {version}: {listed}", evidence)
