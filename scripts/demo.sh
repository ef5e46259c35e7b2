#!/usr/bin/env bash
# Run the whole mirror on a local upstream: build it, sync, validate, publish, serve.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="" bash scripts/bootstrap.sh
exec .venv/bin/mirror demo "$@"
