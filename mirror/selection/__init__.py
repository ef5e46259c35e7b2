"""Selection: the upstream files that the whitelist selects."""

from mirror.selection.closure import Chosen, Selection, Unresolved, select_entry
from mirror.selection.index import SubdirIndex
from mirror.selection.specs import InvalidSpecError, ParsedSpec, parse_spec

__all__ = [
    "Chosen", "InvalidSpecError", "ParsedSpec", "Selection", "SubdirIndex", "Unresolved",
    "parse_spec", "select_entry",
]
