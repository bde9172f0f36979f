#!/usr/bin/env python3
"""The offndat benchmark driver (Python 3 standard library only).

`load-tests/run.sh` builds the binaries, then runs this. It starts a fresh
database, the API, the worker and the ceiling server on free loopback ports, seeds
the links, runs every scenario with wrk (and pgbench), writes
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
import socket
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
        self.ingest_duration = env_int("LT_INGEST_DURATION", 4 if quick else 20)
        self.ingest_timeout = env_int("LT_INGEST_TIMEOUT", 20 if quick else 40)
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
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
        self.popen = subprocess.Popen(argv, env=env, stdout=self.log_file, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

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
        self.api_key = "bench-" + secrets.token_hex(12)
        self.api: Proc | None = None
        self.worker: Proc | None = None
        self.ceiling: Proc | None = None
        self.api_addr = ""
        self.api_config = "default"
        self.worker_addr = f"127.0.0.1:{free_port()}"
        self.ceiling_addr = f"127.0.0.1:{free_port()}"
        self.runs: list[dict] = []
        self.notes: list[str] = []
        self.phases: dict[str, float] = {}
        self.api_stops: list[dict] = []
        self.api_help = ""
        self.db_created = False
        self.run_seq = 0
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

    def visit_totals(self, id0: int = 0) -> tuple[int, int, int]:
        row = self.psql("SELECT (SELECT coalesce(sum(total_visits), 0) FROM visit_summaries), "
                        f"(SELECT count(*) FROM visits WHERE id > {id0}), (SELECT coalesce(max(id), 0) FROM visits)")
        a, b, c = row.split("|")
        return int(a), int(b), int(c)

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
            "OFFNDAT_LISTEN": self.api_addr,
            "OFFNDAT_PUBLIC_BASE_URL": f"http://{self.api_addr}",
            "OFFNDAT_DATABASE_URL": self.cfg.database_url,
            "OFFNDAT_API_KEYS": self.api_key,
            "OFFNDAT_AMQP_NAMESPACE": self.namespace,
            "OFFNDAT_REDIS_KEY_PREFIX": self.redis_prefix,
            "OFFNDAT_RATE_LIMIT_ENABLED": "false",
            "OFFNDAT_WORKER_LISTEN": self.worker_addr,
            # Logging as the container image runs it, so the per-request span
            # (request and trace ids on every line) is part of what is measured.
            "OFFNDAT_LOG": env_str("LT_SERVICE_LOG", "info"),
            "OFFNDAT_LOG_FORMAT": env_str("LT_SERVICE_LOG_FORMAT", "json"),
        })
        env.update(extra)
        return env

    def start_api(self, config: str, extra: dict[str, str]) -> None:
        if self.api is not None:
            self.api_stops.append({"config": self.api_config, **self.api.stop()})
            self.api = None
        self.api_addr = f"127.0.0.1:{free_port()}"
        self.api_config = config
        self.api = Proc("offndat-api", [str(self.cfg.target / "offndat-api")], self.api_env(extra),
                        self.work / "api.log")
        took = wait_ready(self.api, f"http://{self.api_addr}/health/ready")
        log(f"API ({config}) ready on {self.api_addr} in {took:.1f}s (pid {self.api.pid})")

    def start_worker(self) -> None:
        self.worker = Proc("offndat-worker", [str(self.cfg.target / "offndat-worker")], self.api_env({}),
                           self.work / "worker.log")
        took = wait_ready(self.worker, f"http://{self.worker_addr}/health/ready")
        log(f"worker ready on {self.worker_addr} in {took:.1f}s (pid {self.worker.pid})")

    def start_ceiling(self) -> None:
        self.ceiling = Proc("offndat-ceiling",
                            [str(self.cfg.target / "offndat-ceiling"), self.ceiling_addr, str(self.links_file)],
                            dict(os.environ), self.work / "ceiling.log")
        wait_ready(self.ceiling, f"http://{self.ceiling_addr}/health/ready")
        log(f"ceiling ready on {self.ceiling_addr} (pid {self.ceiling.pid})")

    def api_metrics(self) -> dict[str, float]:
        try:
            return parse_metrics(http_get(f"http://{self.api_addr}/metrics")[1])
        except OSError:
            return {}

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
        r = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, cwd=self.work)
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
               metrics_before: dict | None = None, baseline: str | None = None) -> dict:
        statuses = result.get("statuses")
        errors = result.get("errors", {})
        if statuses is not None:
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
            samples: list[dict] = []
            stop = threading.Event()

            def sampler() -> None:
                while not stop.wait(1.0):
                    try:
                        samples.append(self.pg_stat())
                    except (BenchError, subprocess.TimeoutExpired):
                        pass

            before_rss, before_metrics = self.rss(), self.api_metrics()
            samples.append(self.pg_stat())
            thread = threading.Thread(target=sampler, daemon=True)
            thread.start()
            result = self.wrk(url, "redirect.lua", {"LT_MODE": "miss", "LT_NONCE": f"m{self.run_seq}x{connections}"},
                              connections, duration, False)
            stop.set()
            thread.join()
            # Backends report statistics at most once a second while busy (and idle
            # ones only after 10 s), so the edges of the run are lumpy: the rate is
            # taken between the second and the second-to-last sample.
            series = [round((b["xact_commit"] - a["xact_commit"]) / max(b["t"] - a["t"], 0.001), 1)
                      for a, b in zip(samples, samples[1:])]
            window = samples[1:-1] if len(samples) >= 4 else samples
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

    def scenario_ingest(self) -> None:
        c = self.cfg
        self.settle("visit-ingest")
        time.sleep(0.5)  # visits still in the API's buffer reach the database
        self.settle("visit-ingest")
        # The worker must have counted every earlier visit, or those would count here.
        started = time.monotonic()
        while time.monotonic() - started < c.settle_timeout:
            total, rows, _ = self.visit_totals()
            if total >= rows:
                break
            time.sleep(0.5)
        else:
            self.notes.append(f"visit-ingest: the worker was still {rows - total} visits behind before the run")
        dropped0 = self.api_metrics().get("offndat_visits_dropped_total{*}", 0.0)
        sum0, _, id0 = self.visit_totals()
        before_rss, before_metrics = self.rss(), self.api_metrics()
        started = time.monotonic()
        # No response() hook: it would take wrk's CPU from the service on these shared
        # cores. Every response below 400 is a 301 here (the status sample checks).
        result = self.wrk(f"http://{self.api_addr}", "redirect.lua", {"LT_MODE": "uniform"}, c.connections,
                          c.ingest_duration, c.redirect_count_status)
        load_stopped = time.monotonic()
        if result.get("statuses"):
            served = result["statuses"].get("301", 0)
        else:
            served = result["requests"] - result["errors"]["status"]
        counted_after = None
        summed = rows = 0
        while time.monotonic() - load_stopped < c.ingest_timeout:
            total, rows, _ = self.visit_totals(id0)
            summed = total - sum0
            if summed >= served and summed >= rows:
                counted_after = time.monotonic() - load_stopped
                break
            time.sleep(0.25)
        if counted_after is None:
            total, rows, _ = self.visit_totals(id0)
            summed = total - sum0
        dropped = self.api_metrics().get("offndat_visits_dropped_total{*}", 0.0) - dropped0
        wall = result["duration_s"] + (counted_after if counted_after is not None else c.ingest_timeout)
        ingest = {
            "served_301": served,
            "visits_counted": summed,
            "visit_rows": rows,
            "dropped_metric": int(dropped),
            "rows_missing": max(served - rows, 0),
            "counted_after_load_s": round(counted_after, 2) if counted_after is not None else None,
            "load_s": round(result["duration_s"], 2),
            "sustained_visits_per_s": round(summed / wall, 1) if wall > 0 else None,
            "timed_out_after_s": None if counted_after is not None else c.ingest_timeout,
        }
        ingest_sample = self.sample_redirect_statuses(self.api_addr, [f"bench-{g}-walrus" for g in range(1, 21)])
        self.record("visit-ingest", "uniform", "api", c.connections, result, [301],
                    extra={"ingest": ingest, "status_sample": ingest_sample},
                    rss_before=before_rss, metrics_before=before_metrics, baseline=self.last_ceiling("uniform"))
        log(f"    ingest: {served} served, {summed} counted, {rows} rows, dropped {int(dropped)}, "
            f"counted {ingest['counted_after_load_s']}s after the load, {ingest['sustained_visits_per_s']} visits/s")

    # ---- the whole run

    def run(self) -> Path:
        c = self.cfg
        meta = {"started": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "quick": c.quick,
                "machine": machine_info(), "namespace": self.namespace,
                "settings": {"duration_s": c.duration, "warmup_s": c.warmup, "connections": c.connections,
                             "threads": c.threads, "create_connections": c.create_connections,
                             "miss_low_connections": c.miss_low_connections, "miss_pool": c.miss_pool,
                             "ingest_duration_s": c.ingest_duration, "links": c.links, "zipf_s": c.zipf_s,
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
                self.ceiling_run(["uniform", "zipf"], "before redirect-l1")
                self.redirect_run("redirect-l1", "uniform", warmup="sweep")
                self.redirect_run("redirect-l1", "zipf", warmup=None)
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
            if c.wants("mixed"):
                self.scenario_simple("mixed", "mixed.lua", [301, 201], c.redirect_count_status)
            if c.wants("visit-ingest"):
                self.scenario_ingest()
            self.ceiling_run(["hot", "uniform", "zipf"], "end")
            self.phases["scenarios_s"] = round(time.monotonic() - phase, 1)
            meta["final_rss_mb"] = self.rss()
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
