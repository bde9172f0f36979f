#!/usr/bin/env bash
# Runs the whole test suite against the local PostgreSQL, Redis and RabbitMQ
# (started if needed), with Chromium and axe-core for the browser test
# (installed if missing). Tests create and drop their own databases.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
scripts/browser-setup.sh
cargo test --workspace --locked "$@"
