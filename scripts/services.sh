#!/usr/bin/env bash
# Makes sure the local PostgreSQL, Redis and RabbitMQ are up, starting any that is
# not (with the commands this machine's services were installed with), and waits
# until each answers. Safe to run again and again.
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

need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "services: $2 is not running and '$1' is not installed; install it or point OFFNDAT_* at a running one" >&2
    exit 1
  fi
}

if ! port_open 5432; then
  need pg_ctlcluster PostgreSQL
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
fi
wait_for PostgreSQL 5432 60
for _ in $(seq 60); do
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || ! command -v pg_isready >/dev/null; then break; fi
  sleep 1
done

if ! port_open 6379; then
  need redis-server Redis
  echo "services: starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
wait_for Redis 6379 30

if ! port_open 5672; then
  need rabbitmq-server RabbitMQ
  echo "services: starting RabbitMQ"
  rabbitmq-server -detached
fi
wait_for RabbitMQ 5672 120
