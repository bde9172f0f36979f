#!/usr/bin/env bash
# Runs offndat locally: starts PostgreSQL, Redis and RabbitMQ if needed, builds,
# and runs the API on http://127.0.0.1:8090 (the database is created and migrated
# at start). Pass --release for an optimised build; other arguments go to the API.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=debug
if [ "${1:-}" = "--release" ]; then profile=release; shift; fi
scripts/services.sh
if [ "$profile" = release ]; then cargo build --workspace --locked --release; else cargo build --workspace --locked; fi
exec "target/$profile/offndat-api" "$@"
