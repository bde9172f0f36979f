#!/usr/bin/env python3
"""The offndat benchmark driver (Python 3 standard library only).

`load-tests/run.sh` builds the binaries, then runs this. It starts a fresh
database, the API, the worker and the ceiling server on loopback ports the kernel
picks (each reports what it bound in its log), seeds the links, runs every
scenario with wrk (and pgbench), writes
`load-tests/results/<timestamp>.json` and hands it to report.py. Everything it
starts it stops again, by PID; everything it creates (database, Redis keys, the
RabbitMQ namespace's queues and exchanges) it removes. See load-tests/README.md.
"""

from __future__ import annotations

import datetime as dt
import glob
import http.client
import json
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SCRIPTS = HERE / "scripts"
sys.path.insert(0, str(HERE))
sys.dont_write_bytecode = True
import report  # noqa: E402  (sibling module)

T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    return float(value) if value.strip() else default


def env_str(name: str, default: str) -> str:
    value = os.environ.get(name, "")
    return value if value.strip() else default


class Config:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.duration = env_int("LT_DURATION", 2 if quick else 8)
        self.warmup = env_int("LT_WARMUP", 1 if quick else 3)
        self.connections = env_int("LT_CONNECTIONS", 64)
        self.threads = env_int("LT_THREADS", os.cpu_count() or 2)
        self.create_connections = [int(c) for c in env_str("LT_CREATE_CONNECTIONS", "16,64").split(",") if c.strip()]
        self.miss_low_connections = env_int("LT_MISS_LOW_CONNECTIONS", 1)
        self.miss_pool = env_int("LT_MISS_POOL", 1000)
        self.ingest_duration = env_int("LT_INGEST_DURATION", 3 if quick else 300)
        self.ingest_hot_duration = env_int("LT_INGEST_HOT_DURATION", 3 if quick else 60)
        # Long enough for a backlog to drain: the time it took is the measurement
        # (against a 5 s budget), and the next run starts from an empty pipeline
        # instead of counting the last one's visits as its own.
        self.ingest_timeout = env_int("LT_INGEST_TIMEOUT", 20 if quick else 240)
        self.ingest_clean_stop = env_float("LT_INGEST_CLEAN_STOP", 1.0)
        self.rollup_visits = env_int("LT_ROLLUP_VISITS", 10_000_000)
        self.rollup_connections = env_int("LT_ROLLUP_CONNECTIONS", 16)
        self.settle_timeout = env_int("LT_SETTLE_TIMEOUT", 5 if quick else 20)
        self.links = env_int("LT_LINKS", 100_000)
        self.zipf_s = env_float("LT_ZIPF_S", 1.1)
        self.sweep = env_str("LT_SWEEP", "0" if quick else "1") == "1"
        self.redirect_count_status = env_str("LT_REDIRECT_COUNT_STATUS", "0") == "1"
        self.db = env_str("LT_DB", "offndat_bench")
        self.pg_host = env_str("LT_PG_HOST", "127.0.0.1")
        self.pg_port = env_str("LT_PG_PORT", "5432")
        self.pg_user = env_str("LT_PG_USER", "postgres")
        self.target = Path(env_str("CARGO_TARGET_DIR", str(REPO / "target"))) / "release"
        only = env_str("LT_SCENARIOS", "")
        self.only = {s.strip() for s in only.split(",") if s.strip()} or None
        self.update_docs = env_str("LT_UPDATE_DOCS", "0" if quick else "1") == "1"

    def wants(self, scenario: str) -> bool:
        return self.only is None or scenario in self.only

    @property
    def database_url(self) -> str:
        return f"postgres://{self.pg_user}@{self.pg_host}:{self.pg_port}/{self.db}"


# ---------------------------------------------------------------- small helpers


def rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def http_get(url: str, timeout: float = 2.0, headers: dict[str, str] | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text → {series: value}, plus {name: sum over labels}."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        try:
            series, value = line.rsplit(" ", 1)
            v = float(value)
        except ValueError:
            continue
        out[series] = v
        name = series.split("{", 1)[0]
        if "{" in series:
            out[name + "{*}"] = out.get(name + "{*}", 0.0) + v
    return out


def metric_total(metrics: dict[str, float], name: str) -> float:
    """A metric summed over all its labels (or its one unlabelled series)."""
    return metrics.get(name + "{*}", metrics.get(name, 0.0))


def metric_matching(metrics: dict[str, float], name: str, label: str) -> float:
    """The sum of `name`'s series whose labels contain `label` (e.g. 'status="301"')."""
    return sum(v for k, v in metrics.items() if k.startswith(name + "{") and label in k)


def per_second(samples: list[dict], key: str) -> list[float]:
    return [round((b[key] - a[key]) / max(b["t"] - a["t"], 0.001), 1) for a, b in zip(samples, samples[1:])
            if a.get(key) is not None and b.get(key) is not None]


class DbSampler:
    """Samples pg_stat_database of the bench database (and optionally the worker's
    transaction count) once a second in a thread, while a load runs."""

    def __init__(self, bench: "Bench", worker: bool = False) -> None:
        self.bench = bench
        self.worker = worker
        self.samples: list[dict] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def sample(self) -> dict:
        s = self.bench.pg_stat()
        if self.worker:
            s["worker_xact"] = self.bench.worker_transactions()
            if s["worker_xact"] is None:
                raise BenchError(f"no metrics from the worker at http://{self.bench.worker_addr}/metrics")
        return s

    def loop(self) -> None:
        while not self.stop.wait(1.0):
            try:
                self.samples.append(self.sample())
            except (BenchError, subprocess.TimeoutExpired, ValueError):
                pass

    def __enter__(self) -> "DbSampler":
        self.samples.append(self.sample())
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()

    def window(self) -> list[dict]:
        # Backends report statistics at most once a second while busy (and idle
        # ones only after 10 s), so the edges of the run are lumpy: rates are taken
        # between the second and the second-to-last sample.
        return self.samples[1:-1] if len(self.samples) >= 4 else self.samples


def machine_info() -> dict:
    info: dict = {"nproc": os.cpu_count(), "kernel": platform.release()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["ram_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
        info["loadavg_at_start"] = open("/proc/loadavg").read().split()[:3]
    except OSError:
        pass
    for key, argv in {
        "rustc": ["rustc", "--version"],
        "wrk": ["wrk", "--version"],
        "pgbench": ["pgbench", "--version"],
    }.items():
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            info[key] = (r.stdout or r.stderr).strip().splitlines()[0]
        except (OSError, subprocess.TimeoutExpired, IndexError):
            info[key] = None
    return info


# ---------------------------------------------------------------- processes


class Proc:
    """A child process we started; stopped by its own PID only."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.log_file = open(log_path, "ab")
        self.log_file.write(f"==== {dt.datetime.now().isoformat()} {' '.join(argv)}\n".encode())
        self.log_file.flush()
        # Where this life of the process starts in a log its earlier lives share.
        self.log_start = self.log_file.tell()
        self.popen = subprocess.Popen(argv, env=env, stdout=self.log_file, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def listening(self, message: str, field: str, timeout: float = 90.0) -> str:
        """The address the process reports it bound: `field` of its log line
        `message`, JSON (`"message":…,"address":…`) or text (`… address=…`). The
        services bind port 0 and say what they got, so no port is picked, freed
        and reused (docs/development.md)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_start)
                for raw in f:
                    line = raw.decode("utf-8", "replace")
                    try:
                        event = json.loads(line)
                    except ValueError:
                        event = None
                    if isinstance(event, dict):
                        if event.get("message") == message and field in event:
                            return str(event[field])
                    elif message in line:
                        for word in line.split(message, 1)[1].split():
                            if word.startswith(field + "="):
                                return word.split("=", 1)[1]
            if not self.alive():
                raise BenchError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}")
            time.sleep(0.1)
        raise BenchError(f"{self.name} did not log {message!r} within {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 40.0) -> dict:
        """SIGTERM, wait; SIGKILL only if it does not exit in time."""
        started = time.monotonic()
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"{self.name} (pid {self.pid}) did not stop within {timeout:.0f}s: SIGKILL")
            os.kill(self.pid, signal.SIGKILL)
            code = self.popen.wait(timeout=10)
        self.log_file.close()
        return {"exit_code": code, "stop_s": round(time.monotonic() - started, 2)}


def wait_ready(proc: Proc, url: str, timeout: float = 90.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not proc.alive():
            raise BenchError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}")
        try:
            status, _ = http_get(url, timeout=1.0)
            if status == 200:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchError(f"{proc.name} not ready at {url} within {timeout:.0f}s:\n{proc.log_tail()}")


# ---------------------------------------------------------------- the bench


class Bench:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
        self.stamp = stamp
        self.results_dir = HERE / "results"
        self.work = self.results_dir / stamp
        self.work.mkdir(parents=True, exist_ok=True)
        self.links_file = self.work / "links.tsv"
        self.namespace = f"bench-{stamp.lower()}-{secrets.token_hex(2)}"
        self.redis_prefix = f"{self.namespace}:"
        self.api_key = "bench-" + secrets.token_hex(16)
        self.api: Proc | None = None
        self.worker: Proc | None = None
        self.ceiling: Proc | None = None
        self.api_addr = ""
        self.api_ops_addr = ""
        self.api_config = "default"
        self.worker_addr = ""
        self.ceiling_addr = ""
        self.runs: list[dict] = []
        self.notes: list[str] = []
        self.phases: dict[str, float] = {}
        self.api_stops: list[dict] = []
        self.api_help = ""
        self.db_created = False
        self.run_seq = 0
        self.last_load_end = time.monotonic()
        self.out: Path | None = None

    # ---- database

    def psql(self, sql: str, db: str | None = None, timeout: float = 120) -> str:
        c = self.cfg
        argv = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", c.pg_host, "-p", c.pg_port,
                "-U", c.pg_user, "-d", db or c.db, "-c", sql]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise BenchError(f"psql failed: {r.stderr.strip()}\n  SQL: {sql[:200]}")
        return r.stdout.strip()

    def create_database(self) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{self.cfg.db}" WITH (FORCE)', db="postgres")
        self.psql(f'CREATE DATABASE "{self.cfg.db}"', db="postgres")
        self.db_created = True

    def seed(self) -> None:
        n = self.cfg.links
        # Phrases valid for the service (no '/', no control characters, ≤ 256 chars).
        self.psql(f"""
            INSERT INTO links (id, phrase, target_url, language_id, theme_id, created_at)
            SELECT gen_random_uuid(), 'bench-' || g || '-walrus', 'https://example.com/bench/' || g,
                   (g % 2)::smallint, (g % 3)::smallint, now() - interval '1 day'
            FROM generate_series(1, {n}) AS g;
            INSERT INTO visit_summaries (link_id) SELECT id FROM links WHERE phrase LIKE 'bench-%';
            ANALYZE links; ANALYZE visit_summaries;""")
        with open(self.links_file, "w") as f:
            for g in range(1, n + 1):
                f.write(f"bench-{g}-walrus\thttps://example.com/bench/{g}\n")
        count = int(self.psql("SELECT count(*) FROM links"))
        if count < n:
            raise BenchError(f"seeded {count} links, wanted {n}")

    def pg_stat(self) -> dict:
        row = self.psql("SELECT extract(epoch FROM clock_timestamp()), xact_commit, xact_rollback, tup_returned, "
                        f"tup_fetched FROM pg_stat_database WHERE datname = '{self.cfg.db}'", db="postgres")
        t, commit, rollback, returned, fetched = row.split("|")
        return {"t": float(t), "xact_commit": int(commit), "xact_rollback": int(rollback),
                "tup_returned": int(returned), "tup_fetched": int(fetched)}

    def visit_sum(self) -> int:
        return int(self.psql("SELECT coalesce(sum(total_visits), 0) FROM visit_summaries"))

    def db_size(self) -> int:
        return int(self.psql(f"SELECT pg_database_size('{self.cfg.db}')", db="postgres"))

    def unapplied_visit_events(self) -> int:
        """`link.visited` outbox rows the worker has not applied yet (not in its inbox)."""
        return int(self.psql("SELECT count(*) FROM outbox o WHERE o.event_type = 'link.visited' "
                             "AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.message_id = o.id)"))

    def drain_visits(self, why: str) -> float:
        """Waits (bounded) until every visit served so far is counted: one flush
        interval for the API's aggregator, then until the worker has applied every
        `link.visited` event in the outbox."""
        started = time.monotonic()
        time.sleep(1.3)  # OFFNDAT_VISIT_FLUSH_INTERVAL (1 s by default) and a margin
        pending = 0
        while time.monotonic() - started < self.cfg.settle_timeout + 1.3:
            pending = self.unapplied_visit_events()
            if pending == 0:
                break
            time.sleep(0.2)
        waited = time.monotonic() - started
        if pending:
            self.notes.append(f"{why}: {pending} link.visited events still unapplied after {waited:.0f}s")
        return round(waited, 2)

    def wait_db_quiet(self, why: str, since_load_s: float = 11.0, max_rate: float = 20.0,
                      timeout: float = 20.0) -> float:
        """PostgreSQL publishes the counts of a backend that goes idle within a second
        of its last report only about 10 s later (PGSTAT_IDLE_INTERVAL), so an earlier
        load's last second would land in the next run's transaction count. Waits
        until that long has passed since the last load and the bench database
        commits at most `max_rate` transactions per second."""
        started = time.monotonic()
        time.sleep(max(0.0, since_load_s - (started - self.last_load_end)))
        previous = self.pg_stat()
        rate = None
        while time.monotonic() - started < since_load_s + timeout:
            time.sleep(1.0)
            current = self.pg_stat()
            rate = (current["xact_commit"] - previous["xact_commit"]) / max(current["t"] - previous["t"], 0.001)
            if rate <= max_rate:
                break
            previous = current
        else:
            self.notes.append(f"{why}: the bench database still committed {rate:.0f} transactions/s before the run")
        return round(time.monotonic() - started, 2)

    def settle(self, why: str) -> float:
        """Waits (bounded) until the outbox relay has published everything pending."""
        started = time.monotonic()
        pending = 0
        while time.monotonic() - started < self.cfg.settle_timeout:
            pending = int(self.psql("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
            if pending == 0:
                break
            time.sleep(0.25)
        waited = time.monotonic() - started
        if pending:
            self.notes.append(f"{why}: {pending} outbox rows still unpublished after {waited:.0f}s")
        return round(waited, 2)

    # ---- processes

    def api_env(self, extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OFFNDAT_")}
        env.update({
            # Ports of the kernel's choosing, read back from the "listening" lines.
            "OFFNDAT_LISTEN": "127.0.0.1:0",
            "OFFNDAT_OPS_LISTEN": "127.0.0.1:0",
            "OFFNDAT_PUBLIC_BASE_URL": "http://offndat-bench.test",
            "OFFNDAT_DATABASE_URL": self.cfg.database_url,
            "OFFNDAT_API_KEYS": self.api_key,
            "OFFNDAT_AMQP_NAMESPACE": self.namespace,
            "OFFNDAT_REDIS_KEY_PREFIX": self.redis_prefix,
            "OFFNDAT_RATE_LIMIT_ENABLED": "false",
            "OFFNDAT_WORKER_LISTEN": "127.0.0.1:0",
            # Logging as the container image runs it, so the per-request span
            # (request and trace ids on every line) is part of what is measured.
            # Plus the INFO line of each binary's `app` module that reports the
            # ports it bound, whatever LT_SERVICE_LOG filters out.
            "OFFNDAT_LOG": env_str("LT_SERVICE_LOG", "info") + ",offndat_api::app=info,offndat_worker::app=info",
            "OFFNDAT_LOG_FORMAT": env_str("LT_SERVICE_LOG_FORMAT", "json"),
        })
        # LT_SERVICE_ENV="OFFNDAT_VISIT_LOG=full ...": settings for both binaries,
        # e.g. to measure the full visit log's ingest ceiling.
        for setting in env_str("LT_SERVICE_ENV", "").split():
            name, _, value = setting.partition("=")
            if name.startswith("OFFNDAT_"):
                env[name] = value
        env.update(extra)
        return env

    def start_api(self, config: str, extra: dict[str, str]) -> None:
        if self.api is not None:
            self.api_stops.append({"config": self.api_config, **self.api.stop()})
            self.api = None
        self.api_config = config
        started = time.monotonic()
        self.api = Proc("offndat-api", [str(self.cfg.target / "offndat-api")], self.api_env(extra),
                        self.work / "api.log")
        self.api_addr = self.api.listening("offndat-api listening", "address")
        self.api_ops_addr = self.api.listening("offndat-api listening", "ops_address")
        wait_ready(self.api, f"http://{self.api_ops_addr}/health/ready")
        took = time.monotonic() - started
        log(f"API ({config}) ready on {self.api_addr} in {took:.1f}s (pid {self.api.pid})")

    def start_worker(self) -> None:
        started = time.monotonic()
        self.worker = Proc("offndat-worker", [str(self.cfg.target / "offndat-worker")], self.api_env({}),
                           self.work / "worker.log")
        self.worker_addr = self.worker.listening("offndat-worker listening", "address")
        wait_ready(self.worker, f"http://{self.worker_addr}/health/ready")
        took = time.monotonic() - started
        log(f"worker ready on {self.worker_addr} in {took:.1f}s (pid {self.worker.pid})")

    def start_ceiling(self) -> None:
        self.ceiling = Proc("offndat-ceiling",
                            [str(self.cfg.target / "offndat-ceiling"), "127.0.0.1:0", str(self.links_file)],
                            dict(os.environ), self.work / "ceiling.log")
        self.ceiling_addr = self.ceiling.listening("offndat-ceiling listening", "address")
        wait_ready(self.ceiling, f"http://{self.ceiling_addr}/health/ready")
        log(f"ceiling ready on {self.ceiling_addr} (pid {self.ceiling.pid})")

    def api_metrics(self) -> dict[str, float]:
        try:
            return parse_metrics(http_get(f"http://{self.api_ops_addr}/metrics")[1])
        except OSError:
            return {}

    def worker_metrics(self) -> dict[str, float] | None:
        try:
            status, text = http_get(f"http://{self.worker_addr}/metrics")
        except OSError:
            return None
        return parse_metrics(text) if status == 200 else None

    def worker_transactions(self) -> float | None:
        """The worker's PostgreSQL transactions so far: one per settled batch (the
        histogram's count; absent until the first batch)."""
        metrics = self.worker_metrics()
        if metrics is None:
            return None
        return metric_total(metrics, "offndat_worker_batch_duration_seconds_count")

    def rss(self) -> dict:
        return {"api": rss_mb(self.api.pid if self.api else None),
                "worker": rss_mb(self.worker.pid if self.worker else None)}

    def api_supports(self, variable: str) -> bool:
        if not self.api_help:
            r = subprocess.run([str(self.cfg.target / "offndat-api"), "--help"], capture_output=True, text=True,
                               timeout=30, env=self.api_env({}))
            self.api_help = r.stdout + r.stderr
        return variable in self.api_help

    # ---- load generators

    def wrk(self, url: str, script: str, env: dict[str, str], connections: int, duration: int,
            count_status: bool, threads: int | None = None, summary: bool = True) -> dict:
        self.run_seq += 1
        out = self.work / f"wrk-{self.run_seq:02d}.json"
        threads = min(threads or self.cfg.threads, connections)
        run_env = dict(os.environ)
        run_env.update({"LT_SCRIPTS": str(SCRIPTS), "LT_OUT": str(out), "LT_LINKS": str(self.links_file),
                        "LT_API_KEY": self.api_key, "LT_COUNT_STATUS": "1" if count_status else "0",
                        "LT_ZIPF_S": str(self.cfg.zipf_s), "LT_MISS_POOL": str(self.cfg.miss_pool)})
        run_env.update(env)
        argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--timeout", "5s",
                "-s", str(SCRIPTS / script), url]
        try:
            r = subprocess.run(argv, env=run_env, capture_output=True, text=True, timeout=duration + 60)
        except subprocess.TimeoutExpired as e:
            raise BenchError(f"wrk did not finish: {' '.join(argv)}") from e
        finally:
            self.last_load_end = time.monotonic()
        if r.returncode != 0 or (summary and not out.exists()):
            raise BenchError(f"wrk failed ({r.returncode}): {r.stderr.strip()[-500:]}")
        if not summary:
            return {}
        result = json.loads(out.read_text())
        result["threads"] = threads
        return result

    def pgbench(self, connections: int, duration: int) -> dict:
        c = self.cfg
        prefix = self.work / f"pgbench-c{connections}"
        for old in glob.glob(f"{prefix}.*"):
            os.unlink(old)
        argv = ["pgbench", "-n", "-M", "prepared", "-c", str(connections), "-j", str(min(c.threads, connections)),
                "-T", str(duration), "-f", str(SCRIPTS / "create.pgbench"), "-l", f"--log-prefix={prefix}",
                "-h", c.pg_host, "-p", c.pg_port, "-U", c.pg_user, c.db]
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, cwd=self.work)
        finally:
            self.last_load_end = time.monotonic()
        text = r.stdout + r.stderr
        (self.work / f"pgbench-c{connections}.txt").write_text(text)
        tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", text)
        done = re.search(r"number of transactions actually processed: (\d+)", text)
        failed = re.search(r"number of failed transactions: (\d+)", text)
        if r.returncode != 0 or not tps:
            raise BenchError(f"pgbench failed ({r.returncode}): {text.strip()[-600:]}")
        latencies = []
        for path in glob.glob(f"{prefix}.*"):
            with open(path) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 3 and parts[2].isdigit():
                        latencies.append(int(parts[2]))
            os.unlink(path)
        latencies.sort()

        def pct(q: float) -> float | None:
            if not latencies:
                return None
            return round(latencies[min(len(latencies) - 1, int(q / 100 * len(latencies)))] / 1000, 3)

        aborted = re.search(r"number of (?:failed|aborted) transactions?: (\d+)", text)
        return {
            "requests": int(done.group(1)) if done else len(latencies),
            "duration_s": duration,
            "rps": float(tps.group(1)),
            "latency_ms": {"p50": pct(50), "p90": pct(90), "p95": pct(95), "p99": pct(99), "p999": pct(99.9),
                           "max": round(latencies[-1] / 1000, 3) if latencies else None,
                           "mean": round(statistics.fmean(latencies) / 1000, 3) if latencies else None},
            "errors": {"failed_transactions": int(failed.group(1)) if failed else 0,
                       "aborted": int(aborted.group(1)) if aborted else 0},
            "statuses": None,
            "threads": min(c.threads, connections),
        }

    def sample_redirect_statuses(self, base: str, phrases: list[str]) -> dict[str, int]:
        """A few plain requests (no redirect following) to see the real status codes."""
        host, port = base.split(":")
        counts: dict[str, int] = {}
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            for p in phrases:
                conn.request("GET", "/" + p)
                r = conn.getresponse()
                r.read()
                counts[str(r.status)] = counts.get(str(r.status), 0) + 1
        finally:
            conn.close()
        return counts

    # ---- one scenario run

    def record(self, scenario: str, variant: str, target: str, connections: int, result: dict,
               expected: list[int], extra: dict | None = None, rss_before: dict | None = None,
               metrics_before: dict | None = None, baseline: str | None = None,
               unexpected_override: tuple[int, str] | None = None) -> dict:
        statuses = result.get("statuses")
        errors = result.get("errors", {})
        if unexpected_override is not None:
            unexpected, unexpected_basis = unexpected_override
        elif statuses is not None:
            unexpected = sum(n for code, n in statuses.items() if int(code) not in expected)
            unexpected_basis = "exact (response hook)"
        elif "status" in errors and expected and min(expected) >= 400:
            unexpected = result.get("requests", 0) - errors.get("status", 0)
            unexpected_basis = "status < 400 only (wrk counter)"
        elif "status" in errors:
            unexpected = errors.get("status", 0)
            unexpected_basis = "status >= 400 only (wrk counter)"
        else:
            unexpected = errors.get("failed_transactions", 0) + errors.get("aborted", 0)
            unexpected_basis = "failed transactions"
        socket_errors = sum(errors.get(k, 0) for k in ("connect", "read", "write", "timeout"))
        entry = {
            "id": f"{scenario}/{variant}#{len(self.runs) + 1}",
            "scenario": scenario,
            "variant": variant,
            "target": target,
            "api_config": self.api_config if target == "api" else None,
            "connections": connections,
            "threads": result.get("threads"),
            "duration_s": round(result.get("duration_s", 0), 2),
            "requests": result.get("requests"),
            "rps": round(result.get("rps", 0), 1),
            "latency_ms": result.get("latency_ms"),
            "errors": errors,
            "socket_errors": socket_errors,
            "statuses": statuses,
            "expected_statuses": expected,
            "unexpected": unexpected,
            "unexpected_basis": unexpected_basis,
            "baseline": baseline,
            "at_s": round(time.monotonic() - T0, 1),
        }
        if target == "api":
            entry["rss_mb"] = {"api_before": (rss_before or {}).get("api"), "worker_before": (rss_before or {}).get("worker"),
                               **{f"{k}_after": v for k, v in self.rss().items()}}
            if metrics_before is not None:
                after = self.api_metrics()
                entry["metrics_delta"] = {k: round(after.get(k, 0) - metrics_before.get(k, 0), 3)
                                          for k in sorted(set(after) | set(metrics_before))
                                          if k.startswith("offndat_") and "{*}" not in k
                                          and not k.endswith(("_bucket", "_sum", "_count"))
                                          and abs(after.get(k, 0) - metrics_before.get(k, 0)) > 0}
        if extra:
            entry.update(extra)
        self.runs.append(entry)
        lat = entry["latency_ms"] or {}
        log(f"  {entry['id']:<28} {entry['rps']:>10,.0f} req/s  p50 {lat.get('p50')} p99 {lat.get('p99')} ms  "
            f"unexpected {unexpected}  socket errors {socket_errors}")
        return entry

    def last_ceiling(self, variant: str) -> str | None:
        for run in reversed(self.runs):
            if run["target"] == "ceiling" and run["variant"] == variant:
                return run["id"]
        return None

    def ceiling_run(self, variants: list[str], label: str) -> None:
        if not self.cfg.wants("ceiling"):
            return
        for variant in variants:
            result = self.wrk(f"http://{self.ceiling_addr}", "redirect.lua",
                              {"LT_MODE": variant, "LT_NONCE": f"c{self.run_seq}"}, self.cfg.connections,
                              self.cfg.duration, self.cfg.redirect_count_status)
            self.record("ceiling", variant, "ceiling", self.cfg.connections, result,
                        [404] if variant == "miss" else [301], extra={"round": label})

    def warm_up(self, kind: str | None, variant: str) -> None:
        """sweep: every seeded link once (fills the caches); timed: LT_WARMUP seconds of the variant."""
        c = self.cfg
        url = f"http://{self.api_addr}"
        started = time.monotonic()
        if kind == "sweep" and c.sweep:
            self.wrk(url, "redirect.lua", {"LT_MODE": "sweep"}, c.connections, 120, False, threads=1, summary=False)
            log(f"  warm-up: swept {c.links} links in {time.monotonic() - started:.1f}s")
        elif kind is not None and c.warmup > 0:
            self.wrk(url, "redirect.lua", {"LT_MODE": variant}, c.connections, c.warmup, False, summary=False)

    def redirect_run(self, scenario: str, variant: str, warmup: str | None) -> dict:
        c = self.cfg
        url = f"http://{self.api_addr}"
        env = {"LT_MODE": variant}
        self.warm_up(warmup, variant)
        self.settle(f"{scenario}/{variant}")
        before_rss, before_metrics = self.rss(), self.api_metrics()
        result = self.wrk(url, "redirect.lua", env, c.connections, c.duration, c.redirect_count_status)
        extra = {}
        if not c.redirect_count_status:
            phrases = [f"bench-{g}-walrus" for g in (1, 2, 3, c.links // 2, c.links)]
            extra["status_sample"] = self.sample_redirect_statuses(self.api_addr, phrases * 4)
        return self.record(scenario, variant, "api", c.connections, result, [301], extra=extra,
                           rss_before=before_rss, metrics_before=before_metrics, baseline=self.last_ceiling(variant))

    # ---- scenarios

    def scenario_cached(self, scenario: str, config: str, extra_env: dict[str, str], needs: list[str]) -> None:
        missing = [v for v in needs if not self.api_supports(v)]
        if missing:
            reason = f"setting unavailable: {', '.join(missing)} not in offndat-api --help"
            log(f"{scenario}: {reason}")
            for variant in ("uniform", "zipf"):
                self.runs.append({"id": f"{scenario}/{variant}#skipped", "scenario": scenario, "variant": variant,
                                  "target": "api", "skipped": reason})
            return
        self.start_api(config, extra_env)
        for i, variant in enumerate(("uniform", "zipf")):
            self.redirect_run(scenario, variant, warmup=("sweep" if i == 0 else None))

    def scenario_miss(self) -> None:
        c = self.cfg
        self.ceiling_run(["miss"], "before redirect-miss")
        url = f"http://{self.api_addr}"
        rates = []
        duration = max(c.duration, 5)  # the DB sampling needs a steady middle
        for connections in (c.connections, c.miss_low_connections):
            self.settle("redirect-miss")
            before_rss, before_metrics = self.rss(), self.api_metrics()
            with DbSampler(self) as sampler:
                result = self.wrk(url, "redirect.lua",
                                  {"LT_MODE": "miss", "LT_NONCE": f"m{self.run_seq}x{connections}"},
                                  connections, duration, False)
            series = per_second(sampler.samples, "xact_commit")
            window = sampler.window()
            first, last = window[0], window[-1]
            seconds = max(last["t"] - first["t"], 0.001)
            xact_rate = (last["xact_commit"] - first["xact_commit"]) / seconds
            db = {
                "xact_per_s": round(xact_rate, 1),
                "tup_fetched_per_s": round((last["tup_fetched"] - first["tup_fetched"]) / seconds, 1),
                "xact_per_request": round(xact_rate / max(result["rps"], 1), 5),
                "window_s": round(seconds, 2),
                "xact_per_s_series": series,
            }
            sample = self.sample_redirect_statuses(self.api_addr, [f"lt-sample-{k}-nobody" for k in range(10)])
            self.record("redirect-miss", f"c{connections}", "api", connections, result, [404],
                        extra={"db": db, "status_sample": sample}, rss_before=before_rss,
                        metrics_before=before_metrics,
                        baseline=self.last_ceiling("miss") if connections == c.connections else None)
            log(f"    DB: {db['xact_per_s']} xact/s during the load, {db['xact_per_request']} per request "
                f"(per second: {series})")

    def scenario_create(self) -> None:
        c = self.cfg
        url = f"http://{self.api_addr}"
        for connections in c.create_connections:
            self.settle("create")
            before_rss, before_metrics = self.rss(), self.api_metrics()
            n0 = int(self.psql("SELECT count(*) FROM links"))
            result = self.wrk(url, "create.lua", {}, connections, c.duration, True)
            created = int(self.psql("SELECT count(*) FROM links")) - n0
            drain = self.settle("create")
            self.record("create", f"c{connections}", "api", connections, result, [201],
                        extra={"links_created": created, "outbox_drain_s": drain}, rss_before=before_rss,
                        metrics_before=before_metrics)
            self.runs[-1]["baseline"] = None  # set after the pgbench run below
            api_id = self.runs[-1]["id"]
            if c.wants("pgbench"):
                try:
                    pg = self.pgbench(connections, c.duration)
                    drain = self.settle("pgbench")
                    self.record("pgbench-create", f"c{connections}", "pgbench", connections, pg, [],
                                extra={"outbox_drain_s": drain})
                    for run in self.runs:
                        if run["id"] == api_id:
                            run["baseline"] = self.runs[-1]["id"]
                except BenchError as e:
                    log(f"pgbench c{connections}: {e}")
                    self.notes.append(f"pgbench c{connections} failed: {str(e)[:300]}")

    def scenario_simple(self, scenario: str, script: str, expected: list[int], count_status: bool) -> None:
        c = self.cfg
        self.settle(scenario)
        before_rss, before_metrics = self.rss(), self.api_metrics()
        result = self.wrk(f"http://{self.api_addr}", script, {}, c.connections, c.duration, count_status)
        self.record(scenario, "default", "api", c.connections, result, expected, rss_before=before_rss,
                    metrics_before=before_metrics, baseline=self.last_ceiling("zipf") if scenario == "mixed" else None)

    def ingest_run(self, variant: str, duration: int) -> None:
        """visit-ingest: redirects at full speed, then how long until every 301 is counted."""
        c = self.cfg
        url = f"http://{self.api_addr}"
        label = f"visit-ingest {variant}"
        if variant == "uniform":
            # Links in the caches, so the API's transactions are its visit writes, not
            # link reads (quick mode does not sweep: its uniform run reads PostgreSQL).
            self.warm_up("sweep", variant)
        self.settle(label)
        drain_s = self.drain_visits(label)
        quiet_s = self.wait_db_quiet(label)
        api0 = self.api_metrics()
        sum0, size0, before_rss = self.visit_sum(), self.db_size(), self.rss()
        # Each wrk thread asks for seeded links for this long, then for an unknown
        # phrase (404s, no visits) until wrk stops, so no counted request is still in
        # flight when wrk stops counting (see scripts/redirect.lua).
        load_s = max(duration - c.ingest_clean_stop, duration / 2)
        env = {"LT_MODE": variant, "LT_CLEAN_STOP_S": f"{load_s:g}", "LT_NONCE": f"i{self.run_seq}"}
        with DbSampler(self, worker=True) as sampler:
            result = self.wrk(url, "redirect.lua", env, c.connections, duration, c.redirect_count_status)
        wrk_exit = time.monotonic()
        api1 = self.api_metrics()
        tail = int(result.get("tail_sent") or 0)
        statuses = result.get("statuses")
        if statuses:
            served = statuses.get("301", 0)
            unexpected = (sum(n for code, n in statuses.items() if code not in ("301", "404"))
                          + max(statuses.get("404", 0) - tail, 0))
            basis = "exact (response hook), the closing 404s left out"
        else:
            served = result["requests"] - result["errors"]["status"]
            unexpected = max(result["errors"]["status"] - tail, 0)
            basis = "status >= 400 (wrk counter) less the closing 404s"
        answered = int(metric_matching(api1, "http_requests_total", 'status="301"')
                       - metric_matching(api0, "http_requests_total", 'status="301"'))
        last_load = result.get("last_load_request_unix")

        # Every 100 ms until sum(total_visits) has grown by exactly the 301s received.
        counted_after = None
        growth = 0
        polls = 0
        while True:
            polled = time.monotonic()
            growth = self.visit_sum() - sum0
            seen_wall, seen = time.time(), time.monotonic()
            polls += 1
            if growth >= served:
                counted_after = seen_wall - last_load if last_load else seen - wrk_exit
                break
            if seen - wrk_exit >= c.ingest_timeout:
                break
            time.sleep(max(0.0, 0.1 - (time.monotonic() - polled)))
        first_growth = growth
        # A visit counted late (or twice) would show up after the match: look again
        # once a flush interval and a worker batch later.
        time.sleep(1.5)
        final_growth = self.visit_sum() - sum0
        size1 = self.db_size()
        api2 = self.api_metrics()

        def delta(name: str) -> int:
            return int(metric_total(api2, name) - metric_total(api0, name))

        # PostgreSQL transactions during the load: all, the worker's (one per batch)
        # and the rest, the API's.
        samples = sampler.samples
        window = sampler.window()
        total_series = per_second(samples, "xact_commit")
        worker_series = per_second(samples, "worker_xact")
        api_series = [round(t - w, 1) for t, w in zip(total_series, worker_series)]

        def api_rate(a: dict, b: dict) -> float:
            return ((b["xact_commit"] - a["xact_commit"]) - (b["worker_xact"] - a["worker_xact"])) / max(b["t"] - a["t"], 0.001)

        first, last = window[0], window[-1]
        seconds = max(last["t"] - first["t"], 0.001)
        # Flat: the API's rate in the first third of the load against the last third.
        points = window if len(window) >= 3 else samples
        n = len(points) - 1
        flat = None
        if n >= 2:
            third = max(n // 3, 1)
            flat = {"first_third_per_s": round(api_rate(points[0], points[third]), 2),
                    "last_third_per_s": round(api_rate(points[n - third], points[n]), 2),
                    "third_s": round(points[third]["t"] - points[0]["t"], 1)}
        api_processes = 1
        growth_bytes = size1 - size0
        ingest = {
            "served_301": served,
            "api_answered_301": answered,
            "tail_404_sent": tail,
            "load_s": round(load_s, 2),
            "visits_counted": final_growth,
            "counted_at_match": first_growth,
            "overshoot": max(final_growth - served, 0),
            "counted_after_load_s": round(counted_after, 2) if counted_after is not None else None,
            "counted_after_basis": "since the last counted request was sent" if last_load else "since wrk exited",
            "timed_out_after_s": None if counted_after is not None else c.ingest_timeout,
            "polls": polls,
            "drain_before_s": drain_s,
            "quiet_before_s": quiet_s,
            "dropped_metric": delta("offndat_visits_dropped_total"),
            "recorded_metric": delta("offndat_visits_recorded_total"),
            "uncounted_metric": delta("offndat_visits_uncounted_total"),
            "orphan_metric": delta("offndat_orphan_visits_total"),
            # One transaction each: the API's visit writes during the load.
            "flushes_during_load": int(metric_total(api1, "offndat_visit_flushes_total")
                                       - metric_total(api0, "offndat_visit_flushes_total")),
            "sustained_visits_per_s": (round(final_growth / (load_s + counted_after), 1)
                                       if counted_after is not None and load_s + counted_after > 0 else None),
            "db_growth_mb": round(growth_bytes / 1048576, 2),
            "db_mb_per_million_visits": round(growth_bytes / 1048576 / (served / 1e6), 2) if served else None,
            "db": {
                "window_s": round(seconds, 2),
                "xact_per_s": round((last["xact_commit"] - first["xact_commit"]) / seconds, 1),
                "worker_xact_per_s": round((last["worker_xact"] - first["worker_xact"]) / seconds, 1),
                "api_xact_per_s": round(api_rate(first, last), 2),
                "api_processes": api_processes,
                "api_xact_per_s_per_process": round(api_rate(first, last) / api_processes, 2),
                "api_flat": flat,
                "xact_per_s_series": total_series,
                "worker_xact_per_s_series": worker_series,
                "api_xact_per_s_series": api_series,
            },
        }
        phrases = ["bench-1-walrus"] * 20 if variant == "hot" else [f"bench-{g}-walrus" for g in range(1, 21)]
        sample = self.sample_redirect_statuses(self.api_addr, phrases)
        self.record("visit-ingest", variant, "api", c.connections, result, [301],
                    extra={"ingest": ingest, "status_sample": sample}, rss_before=before_rss, metrics_before=api0,
                    baseline=self.last_ceiling(variant), unexpected_override=(unexpected, basis))
        db = ingest["db"]
        log(f"    ingest {variant}: {served} 301s (API answered {answered}), {final_growth} counted "
            f"{ingest['counted_after_load_s']}s after the load, dropped {ingest['dropped_metric']}, "
            f"DB +{ingest['db_growth_mb']} MB, {db['xact_per_s']} xact/s = worker {db['worker_xact_per_s']} "
            f"+ API {db['api_xact_per_s']}")

    # ---- rollup stats

    ROLLUP_PHRASE = "bench-rollups-walrus"
    # (value, human weight, bot weight) per dimension: 0 referrer host ('' = none),
    # 1 browser, 2 OS, 3 device class. Bots are 5 % of every hour.
    ROLLUP_VALUES = {
        0: [("", 30, 8), ("www.google.com", 24, 1), ("t.co", 16, 0), ("news.ycombinator.com", 12, 0),
            ("www.reddit.com", 10, 0), ("www.facebook.com", 9, 0), ("l.instagram.com", 8, 0),
            ("www.linkedin.com", 7, 0), ("duckduckgo.com", 6, 0), ("www.bing.com", 5, 1), ("github.com", 5, 0),
            ("stackoverflow.com", 4, 0), ("www.youtube.com", 4, 0), ("mail.example.com", 3, 0),
            ("blog.example.org", 3, 0), ("news.example", 2, 0), ("forum.example.net", 2, 0),
            ("docs.example.com", 2, 0), ("slack.com", 1, 0), ("discord.com", 1, 0)],
        1: [("Chrome", 50, 0), ("Safari", 20, 0), ("Firefox", 8, 0), ("Edge", 8, 0), ("Samsung Internet", 4, 0),
            ("Opera", 2, 0), ("Other", 3, 1), ("Googlebot", 0, 4)],
        2: [("Windows", 35, 0), ("Android", 30, 0), ("iOS", 20, 0), ("Mac OS X", 10, 0), ("Linux", 3, 1),
            ("Other", 2, 4)],
        3: [("desktop", 48, 0), ("mobile", 42, 0), ("tablet", 8, 0), ("other", 2, 0), ("bot", 0, 1)],
    }

    def seed_rollups(self) -> dict:
        """Hourly rows for every hour of the last 365 days and the daily rows they sum
        to (today's pending, read from its hours), for one link of its own,
        `rollup_visits` visits in all (a diurnal and weekly shape), each
        dimension's values summing to every bucket's total. Integer shares of
        cumulative weights make every sum exact."""
        c = self.cfg
        hours = 365 * 24
        phrase = self.ROLLUP_PHRASE
        values = ", ".join(f"({dim}, {ordinal}, '{value}', {human}, {bot})"
                           for dim, rows in self.ROLLUP_VALUES.items()
                           for ordinal, (value, human, bot) in enumerate(rows, 1))
        started = time.monotonic()
        self.psql(f"""
            BEGIN;
            SET LOCAL TIME ZONE 'UTC';
            INSERT INTO links (id, phrase, target_url, language_id, theme_id, created_at)
            VALUES (gen_random_uuid(), '{phrase}', 'https://example.com/bench/rollups', 0, 0, now() - interval '400 days')
            ON CONFLICT (phrase) DO NOTHING;
            INSERT INTO visit_summaries (link_id) SELECT id FROM links WHERE phrase = '{phrase}' ON CONFLICT DO NOTHING;
            CREATE TEMP TABLE lt_rollup ON COMMIT DROP AS
            WITH hours AS (
                SELECT b AS bucket, row_number() OVER (ORDER BY b) AS i
                FROM generate_series(date_trunc('hour', now()) - interval '{hours - 1} hours',
                                     date_trunc('hour', now()), interval '1 hour') AS b
            ), weighted AS (
                SELECT bucket, round(100 + 60 * sin(2 * pi() * (extract(hour FROM bucket)::float8 - 9) / 24)
                                     + CASE WHEN extract(isodow FROM bucket) < 6 THEN 20 ELSE 0 END
                                     + 40.0 * i / {hours})::bigint AS w
                FROM hours
            ), cumulative AS (
                SELECT bucket, w, sum(w) OVER (ORDER BY bucket)::bigint AS upto, sum(w) OVER ()::bigint AS total
                FROM weighted
            ), per_hour AS (
                SELECT bucket, ({c.rollup_visits}::bigint * upto) / total
                               - ({c.rollup_visits}::bigint * (upto - w)) / total AS visits
                FROM cumulative
            ), split AS (
                SELECT bucket, visits - visits / 20 AS human, visits / 20 AS bot FROM per_hour
            ), vals AS (
                SELECT dimension::smallint AS dimension, value, hw::bigint AS hw, bw::bigint AS bw,
                       sum(hw) OVER (PARTITION BY dimension ORDER BY ordinal)::bigint AS hup,
                       sum(hw) OVER (PARTITION BY dimension)::bigint AS htot,
                       sum(bw) OVER (PARTITION BY dimension ORDER BY ordinal)::bigint AS bup,
                       sum(bw) OVER (PARTITION BY dimension)::bigint AS btot
                FROM (VALUES {values}) AS v (dimension, ordinal, value, hw, bw)
            )
            SELECT s.bucket, v.dimension, v.value,
                   (s.human * v.hup) / v.htot - (s.human * (v.hup - v.hw)) / v.htot AS human,
                   (s.bot * v.bup) / v.btot - (s.bot * (v.bup - v.bw)) / v.btot AS bot
            FROM split s CROSS JOIN vals v;
            DELETE FROM lt_rollup WHERE human = 0 AND bot = 0;
            -- As the worker writes them: one row per link and bucket, the values' counts
            -- in JSON objects keyed by dimension id and value.
            INSERT INTO link_rollups_hourly (link_id, bucket, human, bot, human_by, bot_by)
            SELECT l.id, r.bucket,
                   COALESCE(sum(r.human) FILTER (WHERE r.dimension = 0), 0),
                   COALESCE(sum(r.bot) FILTER (WHERE r.dimension = 0), 0),
                   COALESCE(jsonb_object_agg(r.dimension || r.value, r.human) FILTER (WHERE r.human > 0), '{{}}'),
                   COALESCE(jsonb_object_agg(r.dimension || r.value, r.bot) FILTER (WHERE r.bot > 0), '{{}}')
            FROM lt_rollup r CROSS JOIN links l WHERE l.phrase = '{phrase}'
            GROUP BY l.id, r.bucket
            ON CONFLICT (link_id, bucket) DO UPDATE
                SET human = link_rollups_hourly.human + excluded.human, bot = link_rollups_hourly.bot + excluded.bot,
                    human_by = offndat_add_counts(link_rollups_hourly.human_by, excluded.human_by),
                    bot_by = offndat_add_counts(link_rollups_hourly.bot_by, excluded.bot_by);
            INSERT INTO link_rollups_daily (link_id, bucket, human, bot, human_by, bot_by)
            SELECT l.id, r.bucket,
                   COALESCE(sum(r.human) FILTER (WHERE r.dimension = 0), 0),
                   COALESCE(sum(r.bot) FILTER (WHERE r.dimension = 0), 0),
                   COALESCE(jsonb_object_agg(r.dimension || r.value, r.human) FILTER (WHERE r.human > 0), '{{}}'),
                   COALESCE(jsonb_object_agg(r.dimension || r.value, r.bot) FILTER (WHERE r.bot > 0), '{{}}')
            FROM (SELECT date_trunc('day', bucket) AS bucket, dimension, value, sum(human) AS human, sum(bot) AS bot
                  FROM lt_rollup GROUP BY 1, 2, 3) r
                 CROSS JOIN links l WHERE l.phrase = '{phrase}'
            GROUP BY l.id, r.bucket
            ON CONFLICT (link_id, bucket) DO UPDATE
                SET human = link_rollups_daily.human + excluded.human, bot = link_rollups_daily.bot + excluded.bot,
                    human_by = offndat_add_counts(link_rollups_daily.human_by, excluded.human_by),
                    bot_by = offndat_add_counts(link_rollups_daily.bot_by, excluded.bot_by);
            -- Today pending, as the worker's compaction leaves an active link: a
            -- year by day reads today from its hours, the days before from daily rows.
            UPDATE visit_summaries
            SET total_visits = total_visits + (SELECT sum(human + bot) FROM lt_rollup WHERE dimension = 0),
                bot_visits = bot_visits + (SELECT sum(bot) FROM lt_rollup WHERE dimension = 0),
                daily_pending_from = date_trunc('day', now())
            WHERE link_id = (SELECT id FROM links WHERE phrase = '{phrase}');
            COMMIT;
            ANALYZE link_rollups_hourly; ANALYZE link_rollups_daily;""", timeout=600)
        seeded_s = time.monotonic() - started
        # Per table and dimension: rows, visits of its values, bot visits of its values.
        check = self.psql(f"""
            SELECT d.name, d.dimension, count(DISTINCT d.bucket), sum(d.human + d.bot), sum(d.bot)
            FROM (SELECT 'hourly' AS name, r.bucket, left(e.key, 1) AS dimension, e.human, e.bot
                  FROM link_rollups_hourly r,
                       LATERAL (SELECT key, value::bigint AS human, 0::bigint AS bot FROM jsonb_each(r.human_by)
                                UNION ALL SELECT key, 0, value::bigint FROM jsonb_each(r.bot_by)) e
                  WHERE r.link_id = (SELECT id FROM links WHERE phrase = '{phrase}')
                  UNION ALL
                  SELECT 'daily', r.bucket, left(e.key, 1), e.human, e.bot
                  FROM link_rollups_daily r,
                       LATERAL (SELECT key, value::bigint AS human, 0::bigint AS bot FROM jsonb_each(r.human_by)
                                UNION ALL SELECT key, 0, value::bigint FROM jsonb_each(r.bot_by)) e
                  WHERE r.link_id = (SELECT id FROM links WHERE phrase = '{phrase}')) d
            GROUP BY d.name, d.dimension ORDER BY 1 DESC, 2""")
        sums: dict[str, dict[str, list[int]]] = {}
        for line in check.splitlines():
            name, dim, rows, visits, bots = line.split("|")
            sums.setdefault(name, {})[dim] = [int(rows), int(visits), int(bots)]
        per_dim = {(name, dim): v[1] for name, dims in sums.items() for dim, v in dims.items()}
        consistent = (len(per_dim) == 8 and len(set(per_dim.values())) == 1
                      and len({v[2] for dims in sums.values() for v in dims.values()}) == 1)
        info = {
            "phrase": phrase,
            "visits": c.rollup_visits,
            "hours": hours,
            "seed_s": round(seeded_s, 2),
            # One row per bucket (every bucket has dimension 0 values).
            "hourly_rows": sums.get("hourly", {}).get("0", [0])[0],
            "daily_rows": sums.get("daily", {}).get("0", [0])[0],
            "visits_per_dimension": sorted(set(per_dim.values())),
            "bot_visits": sorted({v[2] for dims in sums.values() for v in dims.values()}),
            "consistent": consistent and per_dim.get(("hourly", "0")) == c.rollup_visits,
        }
        if not info["consistent"]:
            self.notes.append(f"rollup-stats: seeded rollups are not consistent: {sums}")
        log(f"  rollups: {info['hourly_rows']} hourly + {info['daily_rows']} daily rows, "
            f"{c.rollup_visits} visits, in {seeded_s:.1f}s (consistent: {info['consistent']})")
        return info

    def scenario_rollup_stats(self) -> None:
        """GET /v1/links/{phrase}/stats over a year of days and a week of hours."""
        c = self.cfg
        url = f"http://{self.api_addr}"
        variants = [("day-365d", "day", dt.timedelta(days=365)), ("hour-7d", "hour", dt.timedelta(days=7))]
        try:
            info = self.seed_rollups()
        except (BenchError, subprocess.TimeoutExpired, ValueError) as e:
            for variant, _, _ in variants:
                self.runs.append({"id": f"rollup-stats/{variant}#failed", "scenario": "rollup-stats", "variant": variant,
                                  "target": "api", "skipped": f"seeding failed: {str(e)[:300]}", "failed": True})
            return
        for variant, granularity, span in variants:
            now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
            stamp = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
            path = (f"/v1/links/{self.ROLLUP_PHRASE}/stats?granularity={granularity}"
                    f"&from={stamp(now - span)}&to={stamp(now)}")
            # One response first: a broken route must not be benchmarked as fast 4xx.
            check: dict = {"path": path}
            try:
                asked = time.monotonic()
                status, body = http_get(url + path, timeout=10, headers={"X-Offnd-Api-Key": self.api_key})
                check["ms"] = round((time.monotonic() - asked) * 1000, 1)
                check["status"] = status
                doc = json.loads(body) if status == 200 else {}
                check["visits"] = (doc.get("totals") or {}).get("visits")
                check["buckets"] = len(doc.get("buckets") or [])
                check["bytes"] = len(body.encode())
            except (OSError, ValueError) as e:
                check.setdefault("status", None)
                check["error"] = str(e)[:200]
            if check.get("status") != 200 or not isinstance(check.get("visits"), int) or check["visits"] <= 0:
                reason = f"check failed: status {check.get('status')}, totals.visits {check.get('visits')}"
                log(f"  rollup-stats {variant}: {reason}")
                self.runs.append({"id": f"rollup-stats/{variant}#failed", "scenario": "rollup-stats",
                                  "variant": variant, "target": "api", "skipped": reason, "failed": True,
                                  "check": check, "rollups": info})
                continue
            if granularity == "day" and check["visits"] != c.rollup_visits:
                self.notes.append(f"rollup-stats {variant}: totals.visits {check['visits']}, "
                                  f"seeded {c.rollup_visits}")
            self.settle(f"rollup-stats {variant}")
            before_rss, before_metrics = self.rss(), self.api_metrics()
            result = self.wrk(url, "link_stats.lua", {"LT_PATH": path}, c.rollup_connections, c.duration, True)
            self.record("rollup-stats", variant, "api", c.rollup_connections, result, [200],
                        extra={"check": check, "rollups": info}, rss_before=before_rss,
                        metrics_before=before_metrics)

    # ---- the whole run

    def run(self) -> Path:
        c = self.cfg
        meta = {"started": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "quick": c.quick,
                "machine": machine_info(), "namespace": self.namespace,
                "settings": {"duration_s": c.duration, "warmup_s": c.warmup, "connections": c.connections,
                             "threads": c.threads, "create_connections": c.create_connections,
                             "miss_low_connections": c.miss_low_connections, "miss_pool": c.miss_pool,
                             "ingest_duration_s": c.ingest_duration, "ingest_hot_duration_s": c.ingest_hot_duration,
                             "rollup_visits": c.rollup_visits, "rollup_connections": c.rollup_connections,
                             "links": c.links, "zipf_s": c.zipf_s,
                             "redirect_count_status": c.redirect_count_status,
                             "scenarios": sorted(c.only) if c.only else "all"}}
        try:
            if os.environ.get("LT_BUILD_S", "").isdigit():
                self.phases["build_s"] = int(os.environ["LT_BUILD_S"])
            phase = time.monotonic()
            self.create_database()
            self.start_api("default", {})  # migrates at start
            self.seed()
            self.start_worker()
            self.start_ceiling()
            self.phases["setup_s"] = round(time.monotonic() - phase, 1)
            log(f"seeded {c.links} links; scenarios start")
            phase = time.monotonic()

            if c.wants("redirect-hot"):
                self.ceiling_run(["hot"], "before redirect-hot")
                self.redirect_run("redirect-hot", "hot", warmup="timed")
            if c.wants("redirect-l1"):
                self.ceiling_run(["uniform", "zipf", "uniform1k"], "before redirect-l1")
                self.redirect_run("redirect-l1", "uniform", warmup="sweep")
                self.redirect_run("redirect-l1", "zipf", warmup=None)
                self.redirect_run("redirect-l1", "uniform1k", warmup="timed")
            if c.wants("redirect-l2"):
                self.scenario_cached("redirect-l2", "L1 off", {"OFFNDAT_CACHE_L1_ENABLED": "false"},
                                     ["OFFNDAT_CACHE_L1_ENABLED"])
            if c.wants("redirect-db"):
                self.scenario_cached("redirect-db", "L1 and L2 off", {"OFFNDAT_CACHE_L1_ENABLED": "false",
                                                                      "OFFNDAT_CACHE_L2_ENABLED": "false"},
                                     ["OFFNDAT_CACHE_L1_ENABLED", "OFFNDAT_CACHE_L2_ENABLED"])
            if self.api_config != "default":
                self.start_api("default", {})
            if c.wants("redirect-miss"):
                self.scenario_miss()
            if c.wants("create"):
                self.scenario_create()
            if c.wants("stats"):
                self.scenario_simple("stats", "stats.lua", [200], True)
            if c.wants("rollup-stats"):
                self.scenario_rollup_stats()
            if c.wants("mixed"):
                self.scenario_simple("mixed", "mixed.lua", [301, 201], c.redirect_count_status)
            if c.wants("visit-ingest"):
                self.ingest_run("uniform", c.ingest_duration)
                self.ingest_run("hot", c.ingest_hot_duration)
            self.ceiling_run(["hot", "uniform", "zipf", "uniform1k"], "end")
            self.phases["scenarios_s"] = round(time.monotonic() - phase, 1)
            meta["final_rss_mb"] = self.rss()
            meta["final_api_config"] = self.api_config
        finally:
            phase = time.monotonic()
            meta["shutdown"] = self.teardown()
            self.phases["teardown_s"] = round(time.monotonic() - phase, 1)
            meta["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
            meta["phases"] = self.phases
            meta["wall_s"] = round(time.monotonic() - T0, 1)
            meta["notes"] = self.notes
            out = self.results_dir / f"{self.stamp}.json"
            out.write_text(json.dumps({"meta": meta, "runs": self.runs}, indent=2) + "\n")
            self.out = out
            log(f"results: {out.relative_to(REPO)} (logs in {self.work.relative_to(REPO)}/)")
        return out

    def teardown(self) -> dict:
        shutdown: dict = {}
        if self.api is not None:
            self.api_stops.append({"config": self.api_config, **self.api.stop()})
        shutdown["api"] = self.api_stops
        for name in ("worker", "ceiling"):
            proc = getattr(self, name)
            if proc is not None:
                shutdown[name] = proc.stop()
        if self.db_created and env_str("LT_KEEP_DB", "0") != "1":
            try:
                self.psql(f'DROP DATABASE IF EXISTS "{self.cfg.db}" WITH (FORCE)', db="postgres")
            except (BenchError, subprocess.TimeoutExpired) as e:
                self.notes.append(f"could not drop {self.cfg.db}: {e}")
        shutdown["redis_keys_deleted"] = self.cleanup_redis()
        shutdown["amqp_cleanup"] = self.cleanup_amqp()
        self.links_file.unlink(missing_ok=True)  # 4 MB, rebuilt by every run
        return shutdown

    def cleanup_redis(self) -> int | None:
        if not shutil.which("redis-cli"):
            return None
        try:
            r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "--scan", "--pattern", f"{self.redis_prefix}*"],
                               capture_output=True, text=True, timeout=30)
            keys = r.stdout.split()
            for i in range(0, len(keys), 500):
                subprocess.run(["redis-cli", "-h", "127.0.0.1", "UNLINK", *keys[i:i + 500]],
                               capture_output=True, timeout=30)
            return len(keys)
        except (OSError, subprocess.TimeoutExpired):
            return None

    def cleanup_amqp(self) -> str:
        """Deletes this run's queues and exchanges (pika from load-tests/.venv if present)."""
        venv_python = HERE / ".venv" / "bin" / "python"
        if venv_python.exists():
            r = subprocess.run([str(venv_python), str(HERE / "amqp_cleanup.py"), self.namespace],
                               capture_output=True, text=True, timeout=60)
            if r.returncode == 0:
                return r.stdout.strip() or "deleted"
            self.notes.append(f"AMQP cleanup failed: {r.stderr.strip()[-300:]}")
            return "failed"
        self.notes.append(f"RabbitMQ namespace {self.namespace} left in place (no load-tests/.venv with pika)")
        return "skipped (no pika)"


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    cfg = Config(quick)
    for tool in ("wrk", "psql", "pgbench"):
        if not shutil.which(tool):
            print(f"bench: {tool} not found (apt-get install wrk postgresql-client)", file=sys.stderr)
            return 2
    for binary in ("offndat-api", "offndat-worker", "offndat-ceiling"):
        if not (cfg.target / binary).exists():
            print(f"bench: {cfg.target / binary} missing: run load-tests/run.sh (it builds first)", file=sys.stderr)
            return 2

    def on_term(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    bench = Bench(cfg)
    status = 0
    try:
        bench.run()
    except BenchError as e:
        log(f"bench failed: {e}")
        status = 1
    except KeyboardInterrupt:
        log("interrupted; stopped what was started")
        return 130
    if bench.out is None:
        return 1
    argv = [str(bench.out)]
    if cfg.update_docs and status == 0:
        argv += ["--docs", str(REPO / "docs" / "benchmarks.md")]
    return report.main(argv) or status


if __name__ == "__main__":
    sys.exit(main())
