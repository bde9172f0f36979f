# syntax=docker/dockerfile:1
#
# offndat container image: both binaries, offndat-api (default command) and
# offndat-worker, in one small non-root runtime image.
#
#   docker build -t offndat:dev .
#   docker run --rm -p 8090:8090 offndat:dev                 # the API (needs its services)
#   docker run --rm offndat:dev offndat-api migrate          # one-shot migration
#   docker run --rm -p 8091:8091 offndat:dev offndat-worker  # the worker
#
# The build needs no database: SQLX_OFFLINE=true makes the sqlx macros read the
# committed query metadata in .sqlx/. Crates are fetched from crates.io in one
# layer (`cargo fetch --locked`); every compile step after it runs with --offline.
# Nothing is downloaded when the image runs: the vocabularies and migrations are
# compiled into the binaries.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------------------
# toolchain: the Rust compiler, shared by the stages below.
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS toolchain
ENV SQLX_OFFLINE=true \
    CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0
WORKDIR /src

# ---------------------------------------------------------------------------
# skeleton: the workspace's manifests, Cargo.lock and empty stand-ins for every
# crate's lib/bin/build script. Its output changes only when a manifest or the
# lock file changes, so the dependency layer below stays cached across source
# edits (the same idea as cargo-chef, with plain cargo and a shell loop; it
# follows whatever crates exist under crates/, so adding a crate needs no edit).
FROM toolchain AS skeleton
COPY . /full
WORKDIR /full
RUN set -eu; \
    mkdir -p /skeleton; \
    cp Cargo.toml Cargo.lock /skeleton/; \
    if [ -d .cargo ]; then cp -r .cargo /skeleton/; fi; \
    for manifest in crates/*/Cargo.toml; do \
      dir=$(dirname "$manifest"); \
      mkdir -p "/skeleton/$dir/src"; \
      cp "$manifest" "/skeleton/$dir/Cargo.toml"; \
      if [ -f "$dir/src/lib.rs" ]; then : > "/skeleton/$dir/src/lib.rs"; fi; \
      if [ -f "$dir/src/main.rs" ]; then echo 'fn main() {}' > "/skeleton/$dir/src/main.rs"; fi; \
      if [ -f "$dir/build.rs" ]; then echo 'fn main() {}' > "/skeleton/$dir/build.rs"; fi; \
      if [ -d "$dir/src/bin" ]; then \
        mkdir -p "/skeleton/$dir/src/bin"; \
        for bin in "$dir"/src/bin/*.rs; do echo 'fn main() {}' > "/skeleton/$bin"; done; \
      fi; \
    done

# ---------------------------------------------------------------------------
# builder: dependencies first (cached), then the real sources.
FROM toolchain AS builder
COPY --from=skeleton /skeleton/ ./
RUN cargo fetch --locked
# Same flags as the real build below, so the dependency artifacts are reused.
# A layer of its own on purpose (cached apart from the fetch).
# hadolint ignore=DL3059
RUN cargo build --release --locked --offline --workspace --bins
COPY . .
# The stand-ins were compiled after the real files' timestamps were taken;
# touching the sources makes cargo rebuild the workspace crates (only them).
RUN find crates -name '*.rs' -exec touch {} + \
 && cargo build --release --locked --offline --workspace --bins \
 && install -D -m 0755 target/release/offndat-api /out/offndat-api \
 && install -D -m 0755 target/release/offndat-worker /out/offndat-worker \
 && /out/offndat-api --help > /dev/null \
 && /out/offndat-worker --help > /dev/null

# ---------------------------------------------------------------------------
# runtime: Debian slim (same release as the builder, so glibc matches), CA
# certificates for TLS endpoints (e.g. an https OTLP collector), a numeric
# non-root user, and nothing else.
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates follows the Debian release's security updates; not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 offndat \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin offndat
COPY --from=builder /out/offndat-api /out/offndat-worker /usr/local/bin/

LABEL org.opencontainers.image.title="offndat" \
      org.opencontainers.image.description="offndat link shortener: offndat-api (default) and offndat-worker" \
      org.opencontainers.image.licenses="MIT"

# Containers listen on every interface; logs are JSON lines for the log pipeline.
# Everything else is configured with OFFNDAT_* variables (docs/configuration.md).
ENV OFFNDAT_LISTEN=0.0.0.0:8090 \
    OFFNDAT_OPS_LISTEN=0.0.0.0:8092 \
    OFFNDAT_WORKER_LISTEN=0.0.0.0:8091 \
    OFFNDAT_LOG_FORMAT=json

USER 10001:10001
WORKDIR /
# 8090: offndat-api (HTTP API, /health/live); 8092: offndat-api operations (/health/*,
# /metrics); 8091: offndat-worker (/health/*, /metrics).
EXPOSE 8090 8091 8092
# Both binaries drain and exit 0 on SIGTERM (the API within OFFNDAT_SHUTDOWN_TIMEOUT,
# 30 s by default, plus up to ~10 s for the visit buffer and outbox relay): give
# them a stop timeout above that (compose stop_grace_period, Kubernetes
# terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
# No HEALTHCHECK here: the image runs three different commands (API on 8090,
# worker on 8091, the one-shot migration), so each orchestrator probes the right
# port itself (see docker-compose.yaml and deploy/kubernetes/).
CMD ["offndat-api"]
