#!/usr/bin/env bash
# Install everything the test suite needs, then run all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="test" bash scripts/bootstrap.sh

# The authentication tests start a real OpenLDAP server (slapd) and load it with ldapadd.
if [ ! -x /usr/sbin/slapd ] || ! command -v ldapadd >/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq slapd ldap-utils
    else
        echo "note: slapd or ldapadd is missing and cannot be installed here (needs root and apt-get);" \
             "install the slapd and ldap-utils packages, or the LDAP tests are skipped" >&2
    fi
fi

# Tests marked real_component (conda client, servers) must run, never skip, on CI.
if [ "${CI:-}" = "true" ]; then
    export MIRROR_REQUIRE_REAL_COMPONENTS=1
fi

exec .venv/bin/python -m pytest "$@"
