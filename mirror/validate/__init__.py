"""Validation of stored package files before they can be published.

`run_checks` runs an ordered list of checks on one file and returns
their results. Storing the results is the caller's job, so this package
never touches the catalog.
"""

from mirror.validate.pipeline import Check, default_checks, run_checks, verdict
from mirror.validate.result import CheckContext, CheckOutcome, CheckResult

__all__ = [
    "Check",
    "CheckContext",
    "CheckOutcome",
    "CheckResult",
    "default_checks",
    "run_checks",
    "verdict",
]
