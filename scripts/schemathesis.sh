#!/usr/bin/env bash
# Holds the API to its own OpenAPI document: runs Schemathesis (PyPI, pinned)
# with every check and every phase (examples, coverage, fuzzing, stateful)
# against the real binaries, `offndat-api` and `offndat-worker` as cargo builds
# them, and fails on any failure it reports. Run by CI (.ci/run).
#
# Everything it starts is its own and is torn down at the end, whatever happens:
# a database `offndat_schemathesis_<id>` (dropped), a Redis key prefix (deleted),
# a RabbitMQ namespace (queues and exchanges deleted), and both processes on
# 127.0.0.1 ports the kernel picks (read back from their logs). The API runs
# with rate limiting off (the run sends thousands of requests from one address)
# and an admin key of 48 random characters.
#
# Bounded: at most ST_MAX_EXAMPLES cases per operation and phase (default 25) and
# ST_MAX_TIME seconds in all (default 240; the run stops there and fails).
# ST_SEED fixes the seed (default: a fixed one, so CI is repeatable; `random`
# draws a new one). Extra arguments go to `st run`, e.g.
# `scripts/schemathesis.sh --include-operation-id createLink`.
#
# Schemathesis and pika (to delete the RabbitMQ namespace) are installed once
# into a virtualenv under $OFFNDAT_SCHEMATHESIS_DIR (default
# ~/.cache/offndat/schemathesis). The report (JUnit XML and an NDJSON event log)
# goes to target/schemathesis/.
set -euo pipefail
cd "$(dirname "$0")/.."

PY_REQUIREMENTS="schemathesis==4.32.5 pika==1.4.4"
TOOLS=${OFFNDAT_SCHEMATHESIS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/offndat/schemathesis}
MAX_EXAMPLES=${ST_MAX_EXAMPLES:-25}
MAX_TIME=${ST_MAX_TIME:-240}
SEED=${ST_SEED:-20261126}
POSTGRES=${OFFNDAT_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432}
AMQP=${OFFNDAT_TEST_AMQP:-amqp://guest:guest@127.0.0.1:5672/%2f}
REDIS=${OFFNDAT_TEST_REDIS:-redis://127.0.0.1:6379}
TARGET=${CARGO_TARGET_DIR:-target}
REPORT_DIR="$TARGET/schemathesis"

say() { echo "schemathesis: $*"; }
fail() { echo "schemathesis: FAILED: $*" >&2; exit 1; }

id=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
database="offndat_schemathesis_$id"
namespace="schemathesis-$id"
redis_prefix="schemathesis-$id:"
api_key=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
work=$(mktemp -d)
api_pid=
worker_pid=

# --- tools ---------------------------------------------------------------------

python_tools() {
  local venv="$TOOLS/venv" stamp
  stamp="$venv/.installed-$(echo "$PY_REQUIREMENTS" | sha256sum | cut -c1-16)"
  if [ -f "$stamp" ]; then return 0; fi
  say "installing $PY_REQUIREMENTS into $venv"
  rm -rf "$venv"
  mkdir -p "$TOOLS"
  if ! python3 -m venv "$venv" >"$work/venv.log" 2>&1; then
    # Debian's python3 keeps venv in a separate package.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null 2>&1 \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv; } \
      >/dev/null 2>&1 || fail "cannot install python3-venv"
    python3 -m venv "$venv" >"$work/venv.log" 2>&1 || { cat "$work/venv.log" >&2; fail "cannot create a virtualenv"; }
  fi
  # shellcheck disable=SC2086
  "$venv/bin/pip" install --quiet --disable-pip-version-check $PY_REQUIREMENTS >"$work/pip.log" 2>&1 \
    || { cat "$work/pip.log" >&2; fail "pip install failed"; }
  touch "$stamp"
}

# --- teardown ------------------------------------------------------------------

stop() { # pid name
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  say "$2 did not stop within 10 s of SIGTERM; killing it"
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

teardown() {
  local status=$?
  stop "$api_pid" offndat-api
  stop "$worker_pid" offndat-worker
  psql "$POSTGRES/postgres" -qAtc "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" >/dev/null 2>&1 \
    || say "could not drop database $database"
  # Server-side, so keys holding quotes or spaces (generated phrases) go too.
  # shellcheck disable=SC2016 # Lua, not shell
  redis-cli -u "$REDIS" EVAL 'local cursor = "0" repeat
      local page = redis.call("SCAN", cursor, "MATCH", ARGV[1], "COUNT", 1000)
      cursor = page[1]
      for _, key in ipairs(page[2]) do redis.call("DEL", key) end
    until cursor == "0" return 0' 0 "$redis_prefix*" >/dev/null 2>&1 || say "could not delete Redis keys $redis_prefix*"
  if [ -x "$TOOLS/venv/bin/python" ]; then
    "$TOOLS/venv/bin/python" - "$AMQP" "$namespace" <<'EOF' || say "could not delete RabbitMQ namespace $namespace"
import sys
import pika

url, namespace = sys.argv[1], sys.argv[2]
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
for queue in ("dead-letter", "link-visited", "link-created"):
    channel.queue_delete(f"{namespace}.{queue}")
for exchange in ("events", "dead-letter", "link-changes"):
    channel.exchange_delete(f"{namespace}.{exchange}")
connection.close()
EOF
  fi
  if [ "$status" -ne 0 ] && [ -s "$work/api.log" ]; then
    echo "--- last lines of the API's log" >&2
    tail -n 20 "$work/api.log" >&2
  fi
  rm -rf "$work"
  exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# Waits for the JSON log line `message` in `log` and prints its field `field`.
listening_on() { # log message field
  for _ in $(seq 600); do
    if [ -s "$1" ]; then
      address=$("$TOOLS/venv/bin/python" - "$1" "$2" "$3" <<'EOF'
import json, sys

path, message, field = sys.argv[1:]
for line in open(path, encoding="utf-8", errors="replace"):
    try:
        event = json.loads(line)
    except ValueError:
        continue
    fields = {**event, **event.get("fields", {})}
    if fields.get("message") == message and field in fields:
        print(fields[field])
        break
EOF
)
      if [ -n "$address" ]; then echo "$address"; return 0; fi
    fi
    sleep 0.1
  done
  return 1
}

# --- build and start -------------------------------------------------------------

scripts/services.sh
python_tools
say "building the binaries"
cargo build --workspace --locked --bins --quiet
mkdir -p "$REPORT_DIR"

export OFFNDAT_DATABASE_URL="$POSTGRES/$database"
export OFFNDAT_REDIS_URL="$REDIS"
export OFFNDAT_REDIS_KEY_PREFIX="$redis_prefix"
export OFFNDAT_AMQP_URL="$AMQP"
export OFFNDAT_AMQP_NAMESPACE="$namespace"
# Also read by scripts/schemathesis_hooks.py.
export OFFNDAT_PUBLIC_BASE_URL=https://schemathesis.offndat.invalid
export OFFNDAT_LOG_FORMAT=json
export OFFNDAT_LOG=warn,offndat_api=info,offndat_worker=info

"$TARGET/debug/offndat-api" migrate >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log" >&2; fail "migrate"; }

OFFNDAT_WORKER_LISTEN=127.0.0.1:0 "$TARGET/debug/offndat-worker" >"$work/worker.log" 2>&1 &
worker_pid=$!

OFFNDAT_LISTEN=127.0.0.1:0 OFFNDAT_OPS_LISTEN=127.0.0.1:0 OFFNDAT_API_KEYS="$api_key" \
  OFFNDAT_RATE_LIMIT_ENABLED=false \
  "$TARGET/debug/offndat-api" >"$work/api.log" 2>&1 &
api_pid=$!

api=$(listening_on "$work/api.log" "offndat-api listening" address) || fail "the API did not start"
worker=$(listening_on "$work/worker.log" "offndat-worker listening" address) || fail "the worker did not start"
say "API on $api, worker on $worker, database $database, namespace $namespace"

# --- run ---------------------------------------------------------------------------

# One worker: with two, CPython 3.11's `ast.parse` (which Hypothesis calls to
# describe filters) can fail with "AST constructor recursion depth mismatch".
seed_args=(--seed "$SEED")
if [ "$SEED" = random ]; then seed_args=(); fi
status=0
timeout --foreground "$((MAX_TIME + 30))" \
  "$TOOLS/venv/bin/st" --config-file scripts/schemathesis.toml run "http://$api/openapi.json" \
  --header "X-Offnd-Api-Key: $api_key" \
  --checks all \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "$MAX_EXAMPLES" \
  --max-time "$MAX_TIME" \
  --workers 1 \
  "${seed_args[@]}" \
  --generation-database none \
  --no-color \
  --report junit,ndjson --report-dir "$REPORT_DIR" \
  "$@" || status=$?

kill -0 "$api_pid" 2>/dev/null || fail "the API exited during the run"
kill -0 "$worker_pid" 2>/dev/null || fail "the worker exited during the run"
[ "$status" -eq 0 ] || fail "Schemathesis reported failures (exit $status); reports in $REPORT_DIR"
say "no failures"
