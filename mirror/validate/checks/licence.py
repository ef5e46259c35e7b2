"""Licence check: which licence the upstream record declares, as an SPDX expression.

The check reads `license` and `license_family` from the upstream
repodata record, because upstream hotfixes correct licences there and
not in the package's info/index.json. It records facts only: whether a
channel accepts the licence is `mirror.validate.licences.evaluate_licence`.
"""

from __future__ import annotations

import logging

from mirror.catalog.models import CheckOutcome
from mirror.validate.licences import normalise_licence
from mirror.validate.result import CheckContext, CheckResult

logger = logging.getLogger(__name__)


class LicenceCheck:
    """Normalise the record's licence, and WARN when it is missing or contains unknown parts."""

    name = "licence"
    version = "1"

    def run(self, context: CheckContext) -> CheckResult:
        licence = normalise_licence(context.record)
        evidence = licence.as_evidence()

        if licence.expression is None:
            return CheckResult(CheckOutcome.WARN, "the record has no license or license_family", evidence)

        raw = licence.raw[licence.source]
        if licence.unknown:
            reasons = "; ".join(f"{key}: {reason}" for key, reason in licence.unknown.items())
            logger.debug("%s: licence %r has unknown parts: %s", context.filename, raw, reasons)
            return CheckResult(
                CheckOutcome.WARN,
                f"licence {raw!r} normalised to {licence.expression} has unknown parts ({reasons})",
                evidence,
            )
        return CheckResult(CheckOutcome.PASS, f"licence {raw!r} normalised to {licence.expression}", evidence)
