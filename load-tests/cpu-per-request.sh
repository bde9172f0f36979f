#!/usr/bin/env bash
# CPU time the API spends per cached redirect, for comparing configurations.
# Throughput on a shared 2-core machine swings with whatever else runs; the CPU
# the API process itself burns per request (user + system, from /proc) swings
# much less, so it shows what a setting costs.
#
#   load-tests/cpu-per-request.sh LABEL [VAR=VALUE ...]
#
# Starts target/release/offndat-api (build it first: cargo build --release
# --workspace) on loopback ports the kernel picks, with a fresh database, the image's logging
# (OFFNDAT_LOG=info, OFFNDAT_LOG_FORMAT=json) and the given variables, creates one
# link, warms up for 3 s, then runs wrk (64 connections, 10 s) on the link and
# prints CPU µs per redirect and req/s. The outbox relay and the Redis cache are
# off (a hot link is served from L1), so the run leaves nothing in RabbitMQ or
# Redis; it stops the API and drops its database. Any non-3xx answer or socket
# error fails the run.
# Examples:
#   load-tests/cpu-per-request.sh logs-warn OFFNDAT_LOG=warn
#   load-tests/cpu-per-request.sh traced OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317
set -euo pipefail
label=${1:?usage: cpu-per-request.sh LABEL [VAR=VALUE ...]}
shift
for setting in "$@"; do
    case "$setting" in
        *=*) ;;
        *) echo "cpu-per-request.sh: '$setting' is not VAR=VALUE" >&2; exit 2 ;;
    esac
done
repo="$(cd "$(dirname "$0")/.." && pwd)"
binary="${CARGO_TARGET_DIR:-$repo/target}/release/offndat-api"
[ -x "$binary" ] || { echo "cpu-per-request.sh: $binary not built" >&2; exit 2; }
command -v wrk >/dev/null || { echo "cpu-per-request.sh: wrk not found (apt-get install wrk)" >&2; exit 2; }

# Ports of the kernel's choosing (port 0), read back from the API's
# `offndat-api listening` line: the filter keeps that line (of `offndat_api::app`)
# whatever OFFNDAT_LOG the run measures.
filter=info
for setting in "$@"; do
    case "$setting" in OFFNDAT_LOG=*) filter=${setting#OFFNDAT_LOG=} ;; esac
done
name="cpu_$(date +%s)_$$"
log="$(mktemp)"
env -i PATH="$PATH" \
    OFFNDAT_LISTEN=127.0.0.1:0 OFFNDAT_OPS_LISTEN=127.0.0.1:0 OFFNDAT_PUBLIC_BASE_URL=http://offndat-cpu.test \
    OFFNDAT_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$name" OFFNDAT_API_KEYS=cpu-key OFFNDAT_DEVELOPMENT_MODE=true \
    OFFNDAT_RATE_LIMIT_ENABLED=false OFFNDAT_OUTBOX_RELAY_ENABLED=false OFFNDAT_CACHE_L2_ENABLED=false \
    OFFNDAT_LOG_FORMAT=json "$@" OFFNDAT_LOG="$filter,offndat_api::app=info" \
    "$binary" >"$log" 2>&1 &
pid=$!
cleanup() {
    kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $name" >/dev/null 2>&1 || true
    rm -f "$log"
}
trap cleanup EXIT

# The `field` of the API's listening line, JSON or text, once it is out.
listening() {
    python3 - "$log" "$1" <<'PY'
import json, sys
path, field = sys.argv[1:]
for line in open(path, encoding="utf-8", errors="replace"):
    try:
        event = json.loads(line)
    except ValueError:
        event = None
    if isinstance(event, dict):
        if event.get("message") == "offndat-api listening" and field in event:
            print(event[field])
            break
    elif "offndat-api listening" in line:
        values = dict(w.split("=", 1) for w in line.split("offndat-api listening", 1)[1].split() if "=" in w)
        if field in values:
            print(values[field])
            break
PY
}

ready=0
for _ in $(seq 1 150); do
    address=$(listening address)
    ops_address=$(listening ops_address)
    [ -n "$address" ] && [ -n "$ops_address" ] && curl -sf "http://$ops_address/health/ready" >/dev/null && { ready=1; break; }
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.2
done
[ "$ready" = 1 ] || { echo "cpu-per-request.sh: the API was not ready within 30 s" >&2; cat "$log" >&2; exit 1; }
phrase=$(curl -sf -X POST "http://$address/v1/links" -H 'X-Offnd-Api-Key: cpu-key' \
    -H 'Content-Type: application/json' \
    -d '{"targetUrl":"https://example.com/","languageId":0,"themeId":0,"formatId":0}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["url"].rsplit("/", 1)[1])')
url="http://$address/$phrase"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
wrk -t2 -c64 -d3s "$url" >/dev/null
before=$(cpu_ticks)
out=$(wrk -t2 -c64 -d10s "$url")
after=$(cpu_ticks)
if echo "$out" | grep -qE 'Non-2xx or 3xx responses|Socket errors'; then
    echo "cpu-per-request.sh: not every request was a redirect:" >&2
    echo "$out" >&2
    exit 1
fi
requests=$(echo "$out" | awk '/requests in/ {print $1}')
rate=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
python3 - "$label" "$before" "$after" "$(getconf CLK_TCK)" "$requests" "$rate" <<'PY'
import sys
label, before, after, hz, requests, rate = sys.argv[1], *map(float, sys.argv[2:])
if requests <= 0:
    sys.exit(f"cpu-per-request.sh: wrk completed no requests")
print(f"{label}: {(after - before) / hz / requests * 1e6:.1f} µs CPU per redirect, {rate:,.0f} req/s")
PY
