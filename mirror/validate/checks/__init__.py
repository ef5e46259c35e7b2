"""Built-in validation checks, one module per check.

Each check class has a stable `name`, a `version` and a `run(context)`
method, as described by `mirror.validate.pipeline.Check`.
"""

from mirror.validate.checks.archive import ArchiveCheck, ArchiveLimits
from mirror.validate.checks.integrity import IntegrityCheck
from mirror.validate.checks.malware import MalwareCheck, RuleCompileError
from mirror.validate.checks.metadata import MetadataCheck
from mirror.validate.checks.paths import PathsCheck
from mirror.validate.checks.scripts import ScriptsCheck

__all__ = [
    "ArchiveCheck",
    "ArchiveLimits",
    "IntegrityCheck",
    "MalwareCheck",
    "MetadataCheck",
    "PathsCheck",
    "RuleCompileError",
    "ScriptsCheck",
]
