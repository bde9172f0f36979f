#!/usr/bin/env bash
# Runs offndat locally: starts PostgreSQL, Redis and RabbitMQ if needed, builds,
# migrates the database, then runs the API on http://127.0.0.1:8090 and the worker
# that counts visits. Ctrl-C or SIGTERM stops both. Pass --release for an
# optimised build; other arguments go to the API.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=debug
if [ "${1:-}" = "--release" ]; then profile=release; shift; fi
scripts/services.sh
if [ "$profile" = release ]; then cargo build --workspace --locked --release; else cargo build --workspace --locked; fi

# Migrate first, so the worker finds its tables whichever process starts first.
"target/$profile/offndat-api" migrate
"target/$profile/offndat-api" "$@" &
api=$!
"target/$profile/offndat-worker" &
worker=$!
stop() { kill -TERM "$api" "$worker" 2>/dev/null || true; }
trap stop INT TERM
status=0
wait "$api" || status=$?
kill -TERM "$worker" 2>/dev/null || true
wait "$worker" || true
exit "$status"
