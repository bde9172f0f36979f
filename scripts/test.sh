#!/usr/bin/env bash
# Runs the whole test suite against the local PostgreSQL, Redis and RabbitMQ
# (started if needed). Tests create and drop their own databases.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
cargo test --workspace --locked "$@"
