"""Parse whitelist match specs with conda's own grammar (through py-rattler).

Specs are parsed leniently, as conda does, so `pytorch =*=cuda*` and
`numpy=1.26=py311*` are accepted. Lenient parsing also turns some garbage
into a spec that matches nothing (`bad spec ((` becomes version `==spec`
with build `((`), so the parsed build glob is checked on top: a line must
never load as something other than what its author meant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

from rattler import MatchSpec

BUILD_GLOB = re.compile(r"^[A-Za-z0-9_.*+!]+$")


class InvalidSpecError(ValueError):
    """A match spec could not be parsed; the message gives the reason."""


@dataclass(frozen=True)
class ParsedSpec:
    """A whitelist spec and the package names it can match."""

    text: str
    spec: MatchSpec
    name: str

    @property
    def is_glob(self) -> bool:
        return any(char in self.name for char in "*?[")

    def names_in(self, available: list[str]) -> list[str]:
        """Return the package names from `available` that this spec's name selects."""
        if not self.is_glob:
            return [self.name] if self.name in available else []
        return [name for name in available if fnmatchcase(name, self.name)]

    def matches(self, record) -> bool:
        return self.spec.matches(record)


def parse_spec(text: str) -> ParsedSpec:
    """Parse one whitelist or exclude line; raise InvalidSpecError when it is not a match spec."""
    stripped = text.strip()
    if not stripped:
        raise InvalidSpecError("the spec is empty")

    try:
        spec = MatchSpec(stripped, strict=False, exact_names_only=False)
    except Exception as exc:  # rattler raises its own InvalidMatchSpecError type
        raise InvalidSpecError(str(exc)) from None

    if spec.name is None:
        raise InvalidSpecError("the spec names no package")
    build = spec.build
    if build is not None and not BUILD_GLOB.match(str(build)):
        raise InvalidSpecError(
            f"build string {str(build)!r} contains characters that no build string has; "
            "write 'name version build', for example 'numpy >=1.26,<2 py311*'"
        )
    return ParsedSpec(text=stripped, spec=spec, name=_matcher_text(spec))


def _matcher_text(spec: MatchSpec) -> str:
    """Return the package-name part of a spec, lower-cased as conda does: a name or a glob."""
    return str(spec.name.normalized).lower()
