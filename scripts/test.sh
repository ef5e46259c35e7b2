#!/usr/bin/env bash
# Install everything the test suite needs, then run all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="test" bash scripts/bootstrap.sh

# Tests marked real_component (conda client, servers) must run, never skip, on CI.
if [ "${CI:-}" = "true" ]; then
    export MIRROR_REQUIRE_REAL_COMPONENTS=1
fi

exec .venv/bin/python -m pytest "$@"
