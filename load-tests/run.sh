#!/usr/bin/env bash
# The offndat benchmark in one command: builds the release binaries and the ceiling
# server, starts a fresh database, the API, the worker and the ceiling on
# loopback ports the kernel picks, runs every scenario with wrk and pgbench, stops
# everything it started, prints the report and writes
# load-tests/results/<timestamp>.json (and, for full runs, docs/benchmarks.md).
#
#   load-tests/run.sh            full run (about 15 minutes on 2 cores, warm build)
#   load-tests/run.sh --quick    smoke run: 2–3-second scenarios, does not touch docs/
#
# Knobs (environment variables) are listed in load-tests/README.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cd "$repo"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"

for tool in wrk psql pgbench python3 cargo; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool not found (wrk: apt-get install wrk; pgbench/psql: postgresql-client)" >&2; exit 2; }
done

build_started=$SECONDS
if [ "${LT_SKIP_BUILD:-0}" != 1 ]; then
    echo "run.sh: building the workspace (release)" >&2
    cargo build --release --workspace --locked
    echo "run.sh: building the ceiling server (release)" >&2
    cargo build --release --locked --manifest-path "$here/ceiling/Cargo.toml"
fi

# pika deletes the run's RabbitMQ queues and exchanges at the end; without it they
# stay (harmless: every run uses a namespace of its own).
if [ "${LT_NO_VENV:-0}" != 1 ] && [ ! -x "$here/.venv/bin/python" ]; then
    if python3 -m venv "$here/.venv" >/dev/null 2>&1 && "$here/.venv/bin/pip" install -q pika >/dev/null 2>&1; then
        echo "run.sh: created load-tests/.venv with pika (RabbitMQ cleanup)" >&2
    else
        rm -rf "$here/.venv"
        echo "run.sh: could not install pika; RabbitMQ queues of this run will be left in place" >&2
    fi
fi

export LT_BUILD_S=$((SECONDS - build_started))
exec python3 "$here/bench.py" "$@"
