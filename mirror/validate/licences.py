"""Licence normalisation to SPDX expressions, and the per-channel licence policy.

Upstream records carry licences in many spellings: SPDX expressions
("BSD-3-Clause OR MIT"), PyPI trove names ("Apache Software License"),
R's CRAN notation ("GPL (>= 2)", "MIT + file LICENSE", "GPL-2 | GPL-3")
and Fedora's ("GPLv2+ and LGPLv2+"). `normalise_licence` turns such a
value into one SPDX expression. Parts that name no definite licence
become `LicenseRef-` ids and are listed as unknown: ambiguous families
("BSD" without a clause count), proprietary terms and unmapped text.

`evaluate_licence` is the channel's judgement on that evidence. It is a
pure function, so a policy change never needs the check to run again.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from license_expression import (
    AND,
    OR,
    ExpressionError,
    LicenseSymbol,
    LicenseWithExceptionSymbol,
    get_spdx_licensing,
)

from mirror.catalog.models import CheckOutcome
from mirror.config.schema import LicencePolicy

logger = logging.getLogger(__name__)

_licensing = get_spdx_licensing()

PUBLIC_DOMAIN = "LicenseRef-Public-Domain"
PROPRIETARY = "LicenseRef-Proprietary"

# Ids that are not on the SPDX list but name a definite set of terms, so
# a channel can allow or deny them like SPDX ids.
KNOWN_REFERENCES = frozenset({PUBLIC_DOMAIN})

# Reviewer-facing reason for each ambiguous or non-free reference.
REFERENCE_REASONS = {
    PROPRIETARY: "proprietary terms, no SPDX id; a reviewer must read them",
    "LicenseRef-BSD-Family": "ambiguous BSD family (BSD-2-Clause, BSD-3-Clause or BSD-4-Clause)",
    "LicenseRef-GPL-Family": "GPL without a version",
    "LicenseRef-GPL-2.0-Family": "GPL-2.0 without 'only' or 'or later'",
    "LicenseRef-GPL-3.0-Family": "GPL-3.0 without 'only' or 'or later'",
    "LicenseRef-LGPL-Family": "LGPL without a version",
    "LicenseRef-AGPL-Family": "AGPL without a version",
    "LicenseRef-Apache-Family": "Apache licence without a version",
    "LicenseRef-MPL-Family": "MPL without a version",
    "LicenseRef-CC-Family": "Creative Commons licence without a variant or version",
    "LicenseRef-Various": "several licences that the record does not name",
    "LicenseRef-File-Only": "the terms are only in a file inside the package",
}

# Spellings seen in conda-forge, Anaconda and CRAN-derived records that are
# not SPDX ids. Keys pass through `_alias_key` (lower case, single spaces,
# "licence" spelled "license"). Values are SPDX expressions or LicenseRef ids.
ALIASES: dict[str, str] = {
    # Apache
    "apache license 2.0": "Apache-2.0",
    "apache license, version 2.0": "Apache-2.0",
    "apache license version 2.0": "Apache-2.0",
    "apache license (== 2.0)": "Apache-2.0",
    "apache software license": "Apache-2.0",
    "apache software license 2.0": "Apache-2.0",
    "apache 2.0": "Apache-2.0",
    "apache 2": "Apache-2.0",
    "apache2": "Apache-2.0",
    "apache-2": "Apache-2.0",
    "asl 2.0": "Apache-2.0",
    "asl 1.1": "Apache-1.1",
    "apache": "LicenseRef-Apache-Family",
    # BSD
    "bsd": "LicenseRef-BSD-Family",
    "bsd license": "LicenseRef-BSD-Family",
    "bsd-like": "LicenseRef-BSD-Family",
    "bsd 2-clause": "BSD-2-Clause",
    "bsd 2 clause": "BSD-2-Clause",
    "bsd-2": "BSD-2-Clause",
    "bsd_2_clause": "BSD-2-Clause",
    "simplified bsd": "BSD-2-Clause",
    "bsd 3-clause": "BSD-3-Clause",
    "bsd 3 clause": "BSD-3-Clause",
    "bsd-3": "BSD-3-Clause",
    "bsd_3_clause": "BSD-3-Clause",
    "new bsd": "BSD-3-Clause",
    "new bsd license": "BSD-3-Clause",
    "modified bsd": "BSD-3-Clause",
    "modified bsd license": "BSD-3-Clause",
    "modified bsd license (3-clause)": "BSD-3-Clause",
    "revised bsd": "BSD-3-Clause",
    "bsd 4-clause": "BSD-4-Clause",
    # MIT and other permissive
    "mit license": "MIT",
    "the mit license": "MIT",
    "mit/x11": "MIT",
    "expat": "MIT",
    "isc license": "ISC",
    "zlib": "Zlib",
    "zlib license": "Zlib",
    "zlib/libpng": "Zlib",
    "zlib (http://zlib.net/zlib_license.html)": "Zlib",
    "boost": "BSL-1.0",
    "boost software license": "BSL-1.0",
    "boost software license 1.0": "BSL-1.0",
    "unlicense": "Unlicense",
    "the unlicense": "Unlicense",
    "cc0": "CC0-1.0",
    "cc0 1.0": "CC0-1.0",
    "cc": "LicenseRef-CC-Family",
    "ofl": "OFL-1.1",
    "sil open font license, version 1.1": "OFL-1.1",
    "ijg": "IJG",
    "libtiff": "libtiff",
    "wxwidgets": "wxWindows",
    "sleepycat": "Sleepycat",
    "w3c": "W3C",
    "lucent public license": "LPL-1.02",
    "ruby": "Ruby",
    "artistic": "Artistic-1.0-Perl",
    "ftl": "FTL",
    # Python
    "psf": "PSF-2.0",
    "psf license": "PSF-2.0",
    "psf-2": "PSF-2.0",
    "python software foundation": "PSF-2.0",
    "python software foundation license": "PSF-2.0",
    "python": "Python-2.0",
    # Zope
    "zpl 2.1": "ZPL-2.1",
    "zpl-2": "ZPL-2.1",
    "zope public license": "ZPL-2.1",
    # MPL
    "mpl": "LicenseRef-MPL-Family",
    "mpl 2.0": "MPL-2.0",
    "mplv2.0": "MPL-2.0",
    "mplv2": "MPL-2.0",
    "mplv1.1": "MPL-1.1",
    "mplv1.0": "MPL-1.0",
    "mozilla public license 2.0": "MPL-2.0",
    "mozilla public license 2.0 (mpl 2.0)": "MPL-2.0",
    # GPL family, in GNU, Fedora and CRAN spellings
    "gpl": "LicenseRef-GPL-Family",
    "gnu gpl": "LicenseRef-GPL-Family",
    "gnu general public license": "LicenseRef-GPL-Family",
    "gpl+": "GPL-1.0-or-later",
    "lgpl+": "LGPL-2.0-or-later",
    "gpl (>= 2)": "GPL-2.0-or-later",
    "gpl (>= 2.0)": "GPL-2.0-or-later",
    "gpl-2": "GPL-2.0-only",
    "gplv2": "GPL-2.0-only",
    "gpl version 2": "GPL-2.0-only",
    "gpl-2.0 or later": "GPL-2.0-or-later",
    "gplv2+": "GPL-2.0-or-later",
    "gnu general public license v2 or later (gplv2+)": "GPL-2.0-or-later",
    "gpl (>= 3)": "GPL-3.0-or-later",
    "gpl-3": "GPL-3.0-only",
    "gplv3": "GPL-3.0-only",
    "gpl version 3": "GPL-3.0-only",
    "gpl-3.0 or later": "GPL-3.0-or-later",
    "gplv3+": "GPL-3.0-or-later",
    "gnu general public license v3 or later (gplv3+)": "GPL-3.0-or-later",
    "gnu general public license v3 (gplv3)": "GPL-3.0-only",
    "gnu general public license v2 (gplv2)": "GPL-2.0-only",
    "lgpl": "LicenseRef-LGPL-Family",
    "gnu lesser general public license (lgpl)": "LicenseRef-LGPL-Family",
    "lgpl (>= 2)": "LGPL-2.0-or-later",
    "lgpl (>= 2.1)": "LGPL-2.1-or-later",
    "lgpl-2": "LGPL-2.0-only",
    "lgplv2": "LGPL-2.0-only",
    "lgplv2+": "LGPL-2.0-or-later",
    "lgpl 2.1": "LGPL-2.1-only",
    "lgplv2.1": "LGPL-2.1-only",
    "lgplv2.1+": "LGPL-2.1-or-later",
    "lgpl-3": "LGPL-3.0-only",
    "lgplv3": "LGPL-3.0-only",
    "lgplv3+": "LGPL-3.0-or-later",
    "agpl": "LicenseRef-AGPL-Family",
    "agpl-3": "AGPL-3.0-only",
    "agplv3": "AGPL-3.0-only",
    "agplv3+": "AGPL-3.0-or-later",
    # Not a licence id at all
    "public domain": PUBLIC_DOMAIN,
    "public-domain": PUBLIC_DOMAIN,
    "unlimited": PUBLIC_DOMAIN,
    "proprietary": PROPRIETARY,
    "commercial": PROPRIETARY,
    "various": "LicenseRef-Various",
    "file license": "LicenseRef-File-Only",
    "file license (foss)": "LicenseRef-File-Only",
}

# conda's `license_family` values, used only when `license` is missing.
FAMILIES: dict[str, str] = {
    "mit": "MIT",
    "apache": "LicenseRef-Apache-Family",
    "bsd": "LicenseRef-BSD-Family",
    "gpl": "LicenseRef-GPL-Family",
    "gpl2": "LicenseRef-GPL-2.0-Family",
    "gpl3": "LicenseRef-GPL-3.0-Family",
    "lgpl": "LicenseRef-LGPL-Family",
    "agpl": "LicenseRef-AGPL-Family",
    "psf": "PSF-2.0",
    "proprietary": PROPRIETARY,
    "public-domain": PUBLIC_DOMAIN,
    "cc": "LicenseRef-CC-Family",
    "mozilla": "LicenseRef-MPL-Family",
}

# Values that mean "no licence given" rather than a licence.
_MISSING_VALUES = frozenset({"", "none", "null", "unknown", "n/a", "na", "other", "not specified"})

# CRAN's "+ file LICENSE" adds terms from a file in the package (often just
# the copyright holder for MIT), and the base licence still applies.
_CRAN_FILE_SUFFIX = re.compile(r"\s*\+\s*file\s+licen[cs]e\b", re.IGNORECASE)

# "or later" belongs to the licence name, not the OR operator.
_OPERATOR = re.compile(r"\s+(and|or(?!\s+(?:later|any\s+later)\b)|with)\s+|\s*(\|)\s*|\s*(,)\s*", re.IGNORECASE)

# "Proprietary - Example Corp", "Commercial license from ...": the vendor
# name varies, the meaning does not.
_PROPRIETARY_TEXT = re.compile(r"\s*(proprietary|commercial)\b", re.IGNORECASE)

_REF_UNSAFE = re.compile(r"[^A-Za-z0-9.]+")


@dataclass
class NormalisedLicence:
    """The licence of one record as an SPDX expression, plus what could not be mapped.

    `expression` is None when the record names no licence. `unknown` maps
    each `LicenseRef-` id in the expression that names no definite terms
    to the reason, such as "ambiguous BSD family".
    """

    raw: dict[str, Any]
    source: str | None
    expression: str | None
    spdx_ids: list[str] = field(default_factory=list)
    unknown: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.expression is None:
            return "missing"
        return "unknown" if self.unknown else "known"

    def as_evidence(self) -> dict[str, Any]:
        return {
            "raw": self.raw,
            "source": self.source,
            "normalised": self.expression,
            "spdx_ids": self.spdx_ids,
            "unknown": self.unknown,
            "notes": self.notes,
            "status": self.status,
        }


def normalise_licence(record: Mapping[str, Any]) -> NormalisedLicence:
    """Turn a record's `license` (or, failing that, `license_family`) into an SPDX expression."""
    raw = {"license": record.get("license"), "license_family": record.get("license_family")}

    for source, value in (("license", raw["license"]), ("license_family", raw["license_family"])):
        text = _text_of(value)
        if text is None:
            continue
        result = NormalisedLicence(raw=raw, source=source, expression=None)
        if source == "license_family":
            result.notes.append("license is missing; used the coarser license_family")
            family = FAMILIES.get(_alias_key(text))
            _finish(result, family if family is not None else _to_spdx(text, result.notes))
        else:
            _finish(result, _to_spdx(text, result.notes))
        return result

    return NormalisedLicence(raw=raw, source=None, expression=None)


def _text_of(value: Any) -> str | None:
    if isinstance(value, list):
        value = " AND ".join(str(item) for item in value if item)
    if value is None:
        return None
    text = str(value).strip().strip("'\"").strip()
    if text.lower() in _MISSING_VALUES:
        return None
    return text


def _alias_key(text: str) -> str:
    key = re.sub(r"\s+", " ", text.strip().lower()).rstrip(".")
    return key.replace("licence", "license")


def _to_spdx(text: str, notes: list[str]) -> str:
    """Map free licence text to an SPDX expression string, leaf by leaf."""
    if _CRAN_FILE_SUFFIX.search(text):
        notes.append("'+ file LICENSE' adds terms from a file in the package")
        text = _CRAN_FILE_SUFFIX.sub("", text)

    whole = _map_leaf(text)
    if whole is not None:
        return whole

    parts = []
    for token in _tokenise(text):
        if token in ("AND", "OR", "WITH", "(", ")"):
            parts.append(token)
        else:
            parts.append(_leaf_expression(token))
    return " ".join(parts)


def _tokenise(text: str) -> list[str]:
    """Split licence text into leaves, AND/OR/WITH and grouping brackets.

    Brackets that contain no operator belong to the name, as in
    "GPL (>= 2)", so they stay in the leaf text. CRAN's "|" reads as OR,
    its meaning in DESCRIPTION files. A comma reads as AND, the cautious
    choice for a list whose meaning the record does not state.
    """
    tokens: list[str] = []
    position = 0
    leaf = ""
    while position < len(text):
        char = text[position]
        if char == "(":
            closing = _matching_bracket(text, position)
            inner = text[position + 1 : closing]
            if closing < 0 or _OPERATOR.search(inner):
                leaf = _flush(leaf, tokens)
                tokens.append("(")
                position += 1
                continue
            leaf += text[position : closing + 1]
            position = closing + 1
            continue
        if char == ")":
            leaf = _flush(leaf, tokens)
            tokens.append(")")
            position += 1
            continue
        operator = _OPERATOR.match(text, position)
        if operator:
            leaf = _flush(leaf, tokens)
            tokens.append(_operator_word(operator))
            position = operator.end()
            continue
        leaf += char
        position += 1
    _flush(leaf, tokens)
    return _join_exceptions(tokens)


def _operator_word(operator: re.Match[str]) -> str:
    if operator.group(1):
        return operator.group(1).upper()
    return "OR" if operator.group(2) else "AND"


def _matching_bracket(text: str, opening: int) -> int:
    depth = 0
    for index in range(opening, len(text)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return index
    return -1


def _flush(leaf: str, tokens: list[str]) -> str:
    if leaf.strip():
        tokens.append(leaf.strip())
    return ""


def _join_exceptions(tokens: list[str]) -> list[str]:
    # "X with Y" is one leaf: the exception only has a meaning next to its licence.
    joined: list[str] = []
    index = 0
    while index < len(tokens):
        if tokens[index] == "WITH" and joined and index + 1 < len(tokens) and tokens[index + 1] not in ("(", ")"):
            joined[-1] = f"{joined[-1]} WITH {tokens[index + 1]}"
            index += 2
            continue
        joined.append(tokens[index])
        index += 1
    return joined


def _leaf_expression(leaf: str) -> str:
    mapped = _map_leaf(leaf)
    if mapped is not None:
        return mapped if " " not in mapped else f"({mapped})"
    return _unknown_reference(leaf)


def _map_leaf(text: str) -> str | None:
    """Map one licence name through the alias table, then the SPDX list (case-insensitive)."""
    alias = ALIASES.get(_alias_key(text))
    if alias is not None:
        return alias
    if _PROPRIETARY_TEXT.match(text):
        return PROPRIETARY
    return _spdx_rendering(text)


def _spdx_rendering(text: str) -> str | None:
    # license-expression 30.4 raises AttributeError instead of ExpressionError
    # on some truncated input such as "MIT AND".
    try:
        info = _licensing.validate(text)
    except (ExpressionError, AttributeError, TypeError):
        return None
    if info.errors or not info.normalized_expression:
        return None
    return info.normalized_expression


def _unknown_reference(text: str) -> str:
    slug = _REF_UNSAFE.sub("-", text).strip("-.") or "Empty"
    if slug.lower().startswith("licenseref-"):
        return slug
    return f"LicenseRef-Unknown-{slug}"


def _finish(result: NormalisedLicence, expression: str) -> None:
    """Parse the assembled expression and sort its ids into SPDX, known and unknown."""
    try:
        parsed = _licensing.parse(expression, validate=False)
    except (ExpressionError, AttributeError, TypeError) as exc:
        # The text could not be split into a valid expression at all (for
        # example unbalanced brackets), so the whole value is one unknown part.
        logger.debug("licence %r did not parse as an expression: %s", expression, exc)
        reference = _unknown_reference(str(result.raw.get(result.source)))
        result.expression = reference
        result.unknown[reference] = f"not a valid licence expression: {result.raw.get(result.source)!r}"
        return

    result.expression = str(parsed)
    for symbol in _licensing.license_symbols(parsed, decompose=True):
        key = symbol.key
        if key in _licensing.known_symbols or key in KNOWN_REFERENCES:
            if key not in result.spdx_ids:
                result.spdx_ids.append(key)
            continue
        result.unknown[key] = REFERENCE_REASONS.get(key, _unknown_reason(key))


def _unknown_reason(key: str) -> str:
    if key.startswith("LicenseRef-Unknown-"):
        return "no SPDX id matches this text"
    return "not on the SPDX list, so its terms are unknown"


# --- policy ----------------------------------------------------------------

_RANK = {CheckOutcome.PASS: 0, CheckOutcome.WARN: 1, CheckOutcome.FAIL: 2}
_MISSING_OUTCOME = {"review": CheckOutcome.WARN, "reject": CheckOutcome.FAIL, "allow": CheckOutcome.PASS}


def evaluate_licence(evidence: Mapping[str, Any], policy: LicencePolicy) -> tuple[CheckOutcome, str]:
    """Judge the licence check's evidence against one channel's licence policy.

    Deny patterns win over allow patterns. An OR passes when any branch
    passes, an AND only when every part does. An empty allow list allows
    everything not denied. Missing licences and unknown parts follow
    `policy.missing`; an unknown part passes without review only when an
    allow entry names its `LicenseRef-` id exactly, because a glob such
    as `*` should not wave through terms nobody has read.
    """
    raw = _raw_text(evidence)
    expression = evidence.get("normalised")
    if not expression:
        outcome = _MISSING_OUTCOME[policy.missing]
        return outcome, f"licence {raw}: no licence in the record; missing licences are set to {policy.missing!r}"

    try:
        parsed = _licensing.parse(expression, validate=False)
    except (ExpressionError, AttributeError, TypeError) as exc:
        return CheckOutcome.FAIL, f"licence {raw}: stored expression {expression!r} does not parse ({exc}); re-run the licence check"

    unknown = dict(evidence.get("unknown") or {})
    outcome, rule = _evaluate_node(parsed, policy, unknown)
    return outcome, f"licence {raw} normalised to {expression!r}: {rule}"


def _raw_text(evidence: Mapping[str, Any]) -> str:
    raw = evidence.get("raw") or {}
    source = evidence.get("source")
    if source:
        return f"{raw.get(source)!r} (from {source})"
    return "missing"


def _evaluate_node(node: Any, policy: LicencePolicy, unknown: Mapping[str, str]) -> tuple[CheckOutcome, str]:
    if isinstance(node, (AND, OR)):
        verdicts = [_evaluate_node(child, policy, unknown) for child in node.args]
        return _combine(verdicts, best=isinstance(node, OR))
    if isinstance(node, LicenseWithExceptionSymbol):
        return _evaluate_with(node, policy, unknown)
    if isinstance(node, LicenseSymbol):
        return _evaluate_id(node.key, policy, unknown)
    return CheckOutcome.FAIL, f"unexpected expression part {node!r}"


def _combine(verdicts: list[tuple[CheckOutcome, str]], *, best: bool) -> tuple[CheckOutcome, str]:
    # OR takes its best branch and AND its worst part. The text names every
    # part that has that outcome, because each one decided it.
    ranks = [_RANK[outcome] for outcome, _ in verdicts]
    chosen = min(ranks) if best else max(ranks)
    reasons = list(dict.fromkeys(reason for outcome, reason in verdicts if _RANK[outcome] == chosen))
    outcome = next(outcome for outcome, _ in verdicts if _RANK[outcome] == chosen)
    return outcome, "; ".join(reasons)


def _evaluate_with(node: LicenseWithExceptionSymbol, policy: LicencePolicy, unknown: Mapping[str, str]) -> tuple[CheckOutcome, str]:
    # An exception only grants extra permissions, so it needs no allow entry,
    # but a channel may still deny it by name.
    exception = node.exception_symbol.key
    denied_by = _first_match(exception, policy.deny)
    if denied_by is not None:
        return CheckOutcome.FAIL, f"exception {exception} is denied by {denied_by!r}"
    return _evaluate_id(node.license_symbol.key, policy, unknown)


def _evaluate_id(licence_id: str, policy: LicencePolicy, unknown: Mapping[str, str]) -> tuple[CheckOutcome, str]:
    denied_by = _first_match(licence_id, policy.deny)
    if denied_by is not None:
        return CheckOutcome.FAIL, f"{licence_id} is denied by {denied_by!r}"

    if licence_id in unknown:
        if any(entry.casefold() == licence_id.casefold() for entry in policy.allow):
            return CheckOutcome.PASS, f"{licence_id} is allowed by name"
        outcome = _MISSING_OUTCOME[policy.missing]
        return outcome, f"{licence_id} is unknown ({unknown[licence_id]}); unknown licences are set to {policy.missing!r}"

    if not policy.allow:
        return CheckOutcome.PASS, f"{licence_id} is not denied and the allow list is empty"
    allowed_by = _first_match(licence_id, policy.allow)
    if allowed_by is not None:
        return CheckOutcome.PASS, f"{licence_id} is allowed by {allowed_by!r}"
    return CheckOutcome.FAIL, f"{licence_id} matches no allow entry ({', '.join(policy.allow)})"


def _first_match(licence_id: str, patterns: Sequence[str]) -> str | None:
    # Licence ids are matched without regard to case, as license-expression
    # also parses them, so a policy entry "bsd-*" matches "BSD-3-Clause".
    for pattern in patterns:
        if fnmatch.fnmatchcase(licence_id.casefold(), pattern.casefold()):
            return pattern
    return None
