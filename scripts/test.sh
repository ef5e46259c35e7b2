#!/usr/bin/env bash
# Install everything the test suite needs, then run all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="test" bash scripts/bootstrap.sh

# Real servers and a browser that the tests start themselves, from Debian packages:
# OpenLDAP (slapd, loaded with ldapadd), PostgreSQL, and Chromium for the dashboard.
missing=()
[ -x /usr/sbin/slapd ] && command -v ldapadd >/dev/null || missing+=(slapd ldap-utils)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v unshare >/dev/null || missing+=(util-linux)

if [ ${#missing[@]} -gt 0 ]; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}"
    else
        echo "note: ${missing[*]} missing and cannot be installed here (needs root and apt-get);" \
             "install these Debian packages, or the tests that need them are skipped" >&2
    fi
fi

# Tests marked real_component (conda client, servers, browser) must run, never skip, on CI.
if [ "${CI:-}" = "true" ]; then
    export MIRROR_REQUIRE_REAL_COMPONENTS=1
fi

exec .venv/bin/python -m pytest "$@"
