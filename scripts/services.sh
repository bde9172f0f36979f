#!/usr/bin/env bash
# Makes sure the local PostgreSQL, Redis and RabbitMQ are up, and waits until each
# answers. A service that is missing is installed from the distribution's packages
# (Debian and Ubuntu, as root or with sudo); one that is stopped is started. Safe to
# run again and again.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # name port seconds
  for _ in $(seq "$3"); do
    if port_open "$2"; then return 0; fi
    sleep 1
  done
  echo "services: $1 did not come up on 127.0.0.1:$2 within $3 s" >&2
  return 1
}

# Installs Debian/Ubuntu packages for a service that is missing, as root or with
# sudo; elsewhere says what to install and stops.
install() { # package... (from the distribution's own repositories)
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "services: installing $* needs root (or sudo); install them, or point OFFNDAT_* at running services" >&2
      exit 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "services: $* missing and this is not a Debian or Ubuntu machine: install PostgreSQL, Redis and RabbitMQ with its package manager (or run 'docker compose up')" >&2
    exit 1
  fi
  echo "services: installing $* from the distribution's packages"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need() { # command package
  command -v "$1" >/dev/null 2>&1 || install "$2"
}

# A PostgreSQL installed here trusts local TCP connections of the `postgres` user,
# as the tests and scripts/run.sh expect (a development machine, never production).
trust_local_postgres() {
  local hba
  hba=$(ls /etc/postgresql/*/main/pg_hba.conf 2>/dev/null | head -n1) || return 0
  if [ -n "$hba" ] && ! grep -q '^host all postgres 127.0.0.1/32 trust' "$hba"; then
    sed -i -e '1i host all postgres ::1/128 trust' -e '1i host all postgres 127.0.0.1/32 trust' "$hba"
    # The package may have started the cluster already: make it read the change.
    if port_open 5432; then pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main reload; fi
  fi
}

if ! port_open 5432; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    install postgresql
    trust_local_postgres
  fi
fi
if ! port_open 5432; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
fi
wait_for PostgreSQL 5432 60
for _ in $(seq 60); do
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || ! command -v pg_isready >/dev/null; then break; fi
  sleep 1
done

if ! port_open 6379; then need redis-server redis-server; fi
# A package just installed may have started its service already; a second start then
# fails harmlessly and wait_for has the last word.
if ! port_open 6379; then
  echo "services: starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi
wait_for Redis 6379 30

if ! port_open 5672; then need rabbitmq-server rabbitmq-server; fi
if ! port_open 5672; then
  echo "services: starting RabbitMQ"
  rabbitmq-server -detached || true
fi
wait_for RabbitMQ 5672 120

# Some tests start Redis servers of their own (with a password, over TLS) and make
# a certificate authority with the openssl CLI.
need redis-server redis-server
need openssl openssl
