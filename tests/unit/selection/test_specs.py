"""Whitelist spec parsing and conda version order, as conda clients see them."""

from __future__ import annotations

import pytest
from rattler import Version

from mirror.selection.specs import InvalidSpecError, parse_spec

PARSED = [
    ("numpy >=1.2,<2 *_cp311", "numpy", ">=1.2,<2", "*_cp311", None),
    ("pytorch =*=cuda*", "pytorch", "*", "cuda*", None),
    ("blas * mkl", "blas", "*", "mkl", None),
    ('python[version=">=3.11", build_number=">=2"]', "python", ">=3.11", None, ">=2"),
    ("numpy[build_number=5]", "numpy", None, None, "==5"),
    ("Numpy", "numpy", None, None, None),
]


@pytest.mark.parametrize("text, name, version, build, build_number", PARSED, ids=[row[0] for row in PARSED])
def test_spec_parts(text, name, version, build, build_number):
    parsed = parse_spec(text)
    assert parsed.name == name
    assert (str(parsed.spec.version) if parsed.spec.version else None) == version
    assert (str(parsed.spec.build) if parsed.spec.build else None) == build
    assert (str(parsed.spec.build_number) if parsed.spec.build_number else None) == build_number


REJECTED = ["foo [version=5.5.5] 1.2.3 foo", "bad spec ((", "python =>3.8", "", "   ", "x 1.0 0 extra"]


@pytest.mark.parametrize("text", REJECTED)
def test_spec_rejected(text):
    with pytest.raises(InvalidSpecError):
        parse_spec(text)


def test_glob_name_detected():
    parsed = parse_spec('jupyter*[license="MIT"]')
    assert parsed.is_glob
    assert parsed.names_in(["jupyter-core", "jupyterlab", "numpy"]) == ["jupyter-core", "jupyterlab"]


ORDER = [
    ("1.0a1", "<", "1.0"),
    ("1.0a1", "<", "1.0.dev1"),  # the dot makes dev a new segment, unlike PEP 440
    ("3.4.0rc2", "<", "3.4.0.dev1"),
    ("2.1.1.bioconda", "<", "2.1.1"),
    ("1.0", "==", "1.0.0"),
    ("3.0.0a1", "<", "3"),
]


@pytest.mark.parametrize("left, op, right", ORDER, ids=[f"{l} {o} {r}" for l, o, r in ORDER])
def test_conda_version_order(left, op, right):
    if op == "<":
        assert Version(left) < Version(right)
    else:
        assert Version(left) == Version(right)
