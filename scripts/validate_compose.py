#!/usr/bin/env python3
"""Offline checks of docker-compose.yaml (run by scripts/validate-deploy.sh).

1. YAML parses (PyYAML, with merge keys `<<:` applied as compose does).
2. Variables are interpolated the way compose does (${VAR}, ${VAR:-default},
   ${VAR-default}, ${VAR:?err}, ${VAR:+alt}, $VAR, $$) from an EMPTY
   environment, so the file must work with no .env: a variable without a
   default is an error.
3. The result is parsed by the `compose-spec` package (PyPI; Python bindings of
   the compose_spec crate), which rejects unknown keys, wrong types and invalid
   values (durations, depends_on conditions, port syntax...) per the Compose
   Specification. It does not check references between services; step 4 does.
4. offndat's own rules: required services, scalable api/worker (no
   container_name, no hostname, no published ports), healthchecks,
   the migrate job and the depends_on conditions, only nginx published in the
   default profile, the observability profile, trusted proxies = the network's
   subnet, bind-mounted files exist, Prometheus discovers every replica.

Exit status 0 when everything holds; otherwise every problem is printed and the
status is 1.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import sys
from pathlib import Path

import yaml

PROBLEMS: list[str] = []


def problem(message: str) -> None:
    PROBLEMS.append(message)


# --- interpolation -----------------------------------------------------------

_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<invalid>))"
)


def interpolate(value: str, env: dict[str, str], where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        if match.group("invalid") is not None and not match.group("braced") and not match.group("plain"):
            problem(f"{where}: invalid interpolation in {value!r} (write $$ for a literal $)")
            return ""
        name = match.group("braced") or match.group("plain")
        op, arg = match.group("op"), match.group("arg") or ""
        present, current = name in env, env.get(name, "")
        if op == ":-":
            return current if current else arg
        if op == "-":
            return current if present else arg
        if op in (":?", "?"):
            if (op == ":?" and not current) or (op == "?" and not present):
                problem(f"{where}: required variable {name} is not set ({arg})")
            return current
        if op == ":+":
            return arg if current else ""
        if op == "+":
            return arg if present else ""
        if not present:
            problem(f"{where}: variable {name} has no default; the file must work without an .env")
        return current

    return _VAR.sub(replace, value)


def interpolate_tree(node, env: dict[str, str], where: str = ""):
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env, f"{where}.{key}" if where else str(key)) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(value, env, f"{where}[{i}]") for i, value in enumerate(node)]
    if isinstance(node, str):
        return interpolate(node, env, where)
    return node


# --- helpers -------------------------------------------------------------------


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            key, _, value = str(item).partition("=")
            out[key] = value
        return out
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def depends_on(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def command_of(service: dict) -> list[str]:
    command = service.get("command")
    if command is None:
        return []
    return command.split() if isinstance(command, str) else [str(c) for c in command]


def published_ports(service: dict) -> list[str]:
    out = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            if port.get("published") is not None:
                out.append(f"{port.get('published')}:{port.get('target')}")
        else:
            text = str(port)
            # "80" alone publishes on a random host port: still published.
            out.append(text)
    return out


def duration_seconds(text) -> float:
    total, rest = 0.0, str(text)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    for number, unit in re.findall(r"([0-9.]+)(ms|us|h|m|s)", rest):
        total += float(number) * units[unit]
    return total


# --- checks --------------------------------------------------------------------

REQUIRED = ["postgres", "redis", "rabbitmq", "migrate", "api", "worker", "nginx"]
OBSERVABILITY = ["otel-collector", "prometheus", "grafana"]
SCALABLE = ["api", "worker"]


def check(compose: dict, root: Path) -> None:
    services: dict[str, dict] = compose.get("services") or {}
    for name in REQUIRED:
        if name not in services:
            problem(f"service {name!r} is missing")
    for name in OBSERVABILITY:
        if name not in services:
            problem(f"service {name!r} (observability profile) is missing")
        elif "observability" not in (services[name].get("profiles") or []):
            problem(f"service {name!r} must be in the 'observability' profile")
    if any(n not in services for n in REQUIRED):
        return

    # References between services, and profile consistency.
    for name, service in services.items():
        for dep in depends_on(service):
            if dep not in services:
                problem(f"{name}: depends_on unknown service {dep!r}")
            elif not service.get("profiles") and services[dep].get("profiles"):
                problem(f"{name} (default profile) depends on {dep}, which only runs in profile(s) {services[dep]['profiles']}")
        if not service.get("image") and not service.get("build"):
            problem(f"{name}: neither image nor build")

    # Scalable services: `docker compose up --scale api=3 --scale worker=2`.
    for name in SCALABLE:
        service = services[name]
        if "container_name" in service:
            problem(f"{name}: container_name prevents --scale {name}=N")
        if "hostname" in service:
            problem(f"{name}: a fixed hostname makes every replica answer to one name")
        if service.get("ports"):
            problem(f"{name}: publishes host ports {published_ports(service)}; replicas would collide (nginx is the entry point)")
        if service.get("profiles"):
            problem(f"{name}: must be in the default profile")

    # Only nginx is published by the default profile.
    for name, service in services.items():
        if service.get("profiles"):
            continue
        if name != "nginx" and service.get("ports"):
            problem(f"{name}: publishes {published_ports(service)}; only nginx is published in the default profile")
    nginx = services["nginx"]
    if not any(str(p).endswith(":80") or (isinstance(p, dict) and str(p.get("target")) == "80") for p in nginx.get("ports") or []):
        problem("nginx: must publish container port 80 (e.g. 8080:80)")

    # Healthchecks on the backing services.
    for name in ["postgres", "redis", "rabbitmq"]:
        health = services[name].get("healthcheck") or {}
        test = health.get("test")
        if not test or health.get("disable") or test in (["NONE"], "NONE"):
            problem(f"{name}: needs a healthcheck (api/worker wait for service_healthy)")

    # The one-shot migration.
    migrate = services["migrate"]
    if command_of(migrate)[-2:] != ["offndat-api", "migrate"]:
        problem(f"migrate: command must be offndat-api migrate, is {command_of(migrate)}")
    if str(migrate.get("restart", "no")) != "no":
        problem("migrate: a one-shot job must not restart")
    if depends_on(migrate).get("postgres") != "service_healthy":
        problem("migrate: must wait for postgres: service_healthy")

    # api and worker start after the migration and the healthy dependencies.
    wanted = {
        "api": {"migrate": "service_completed_successfully", "postgres": "service_healthy",
                "redis": "service_healthy", "rabbitmq": "service_healthy"},
        "worker": {"migrate": "service_completed_successfully", "postgres": "service_healthy",
                   "rabbitmq": "service_healthy"},
        "nginx": {"api": "service_healthy"},
    }
    for name, deps in wanted.items():
        actual = depends_on(services[name])
        for dep, condition in deps.items():
            if actual.get(dep) != condition:
                problem(f"{name}: depends_on {dep} must have condition {condition}, has {actual.get(dep)}")

    api_cmd, worker_cmd = command_of(services["api"]), command_of(services["worker"])
    if api_cmd and api_cmd[0] != "offndat-api":
        problem(f"api: command must run offndat-api, is {api_cmd}")
    if worker_cmd[:1] != ["offndat-worker"]:
        problem(f"worker: command must be offndat-worker, is {worker_cmd}")

    # Settings the containers need.
    api_env, worker_env = env_of(services["api"]), env_of(services["worker"])
    expect = {
        ("api", "OFFNDAT_LISTEN"): "0.0.0.0:8090",
        ("api", "OFFNDAT_OPS_LISTEN"): "0.0.0.0:8092",
        ("api", "OFFNDAT_MIGRATE_ON_START"): "false",
        ("api", "OFFNDAT_LOG_FORMAT"): "json",
        ("worker", "OFFNDAT_WORKER_LISTEN"): "0.0.0.0:8091",
        ("worker", "OFFNDAT_LOG_FORMAT"): "json",
    }
    for (name, key), value in expect.items():
        env = api_env if name == "api" else worker_env
        if env.get(key) != value:
            problem(f"{name}: {key} must be {value!r}, is {env.get(key)!r}")
    for name, env in (("api", api_env), ("worker", worker_env), ("migrate", env_of(migrate))):
        for key in ("OFFNDAT_DATABASE_URL", "OFFNDAT_AMQP_URL"):
            if not env.get(key):
                problem(f"{name}: {key} is not set")
    if not api_env.get("OFFNDAT_API_KEYS"):
        problem("api: OFFNDAT_API_KEYS must have a (local) default")
    for name, env in (("api", api_env), ("worker", worker_env)):
        for key in ("OFFNDAT_DATABASE_URL", "OFFNDAT_REDIS_URL", "OFFNDAT_AMQP_URL"):
            host = re.sub(r"^[a-z]+://(?:[^@/]*@)?([^:/]+).*$", r"\1", env.get(key, ""))
            if env.get(key) and host not in services:
                problem(f"{name}: {key} points at host {host!r}, which is no service")

    # Trusted proxies = the compose network's subnet, where nginx lives.
    subnets = []
    for net_name, net in (compose.get("networks") or {}).items():
        for cfg in ((net or {}).get("ipam") or {}).get("config") or []:
            if cfg.get("subnet"):
                subnets.append(cfg["subnet"])
    if not subnets:
        problem("networks: define the network with a fixed subnet (ipam.config[].subnet)")
    trusted = [t.strip() for t in api_env.get("OFFNDAT_TRUSTED_PROXIES", "").split(",") if t.strip()]
    if not trusted:
        problem("api: OFFNDAT_TRUSTED_PROXIES must hold the compose network's subnet")
    for entry in trusted:
        try:
            net = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            problem(f"api: OFFNDAT_TRUSTED_PROXIES entry {entry!r} is no IP or CIDR")
            continue
        if subnets and not any(net.subnet_of(ipaddress.ip_network(s)) or net == ipaddress.ip_network(s) for s in subnets):
            problem(f"api: trusted proxy {entry} is outside the compose network {subnets}")

    # Graceful stop: above the API's shutdown timeout plus the drains.
    grace = duration_seconds(services["api"].get("stop_grace_period", "10s"))
    shutdown = duration_seconds(api_env.get("OFFNDAT_SHUTDOWN_TIMEOUT", "30s"))
    if grace < shutdown + 10:
        problem(f"api: stop_grace_period {grace:.0f}s must exceed OFFNDAT_SHUTDOWN_TIMEOUT ({shutdown:.0f}s) + ~10s drain")

    # Bind mounts point at files that exist.
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source = volume.get("source") if isinstance(volume, dict) else str(volume).split(":")[0]
            if source and (source.startswith("./") or source.startswith("../")) and not (root / source).exists():
                problem(f"{name}: bind mount source {source} does not exist")
    mounts = " ".join(str(v) for v in nginx.get("volumes") or [])
    if "deploy/compose/nginx.conf" not in mounts:
        problem("nginx: must mount deploy/compose/nginx.conf")
    grafana_mounts = " ".join(str(v) for v in services["grafana"].get("volumes") or [])
    if "deploy/grafana/offndat-dashboard.json" not in grafana_mounts or "provisioning" not in grafana_mounts:
        problem("grafana: must mount the provisioning directory and deploy/grafana/offndat-dashboard.json")

    check_prometheus(root / "deploy/compose/prometheus.yml")


def check_prometheus(path: Path) -> None:
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        problem(f"{path}: {error}")
        return
    found = {}
    for job in config.get("scrape_configs") or []:
        for sd in job.get("dns_sd_configs") or []:
            if sd.get("type") == "A":
                for name in sd.get("names") or []:
                    found[name] = sd.get("port")
    for name, port in (("api", 8092), ("worker", 8091)):
        if found.get(name) != port:
            problem(f"{path}: needs dns_sd_configs type A on {name!r} port {port} (every replica), found {found}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", default="docker-compose.yaml")
    parser.add_argument("--use-environment", action="store_true",
                        help="interpolate from this process's environment instead of an empty one")
    args = parser.parse_args()
    path = Path(args.file)
    root = path.resolve().parent
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        print(f"compose: {path}: {error}", file=sys.stderr)
        return 1
    if not isinstance(raw, dict):
        print(f"compose: {path}: not a mapping", file=sys.stderr)
        return 1

    env = dict(os.environ) if args.use_environment else {}
    resolved = interpolate_tree(raw, env)

    try:
        from compose_spec import PyCompose  # type: ignore[import-not-found]
    except ImportError:
        problem("the compose-spec package is not installed (scripts/validate-deploy.sh installs it)")
    else:
        try:
            # JSON goes straight to the Rust parser; validate() also checks that
            # services reference defined networks, volumes, configs and secrets.
            PyCompose.from_json(json.dumps(resolved)).validate()
        except Exception as error:  # the bindings raise ValueError; be broad
            problem(f"Compose Specification: {error}")

    check(resolved, root)

    if PROBLEMS:
        for message in PROBLEMS:
            print(f"compose: {path}: {message}", file=sys.stderr)
        return 1
    services = resolved.get("services") or {}
    print(f"compose: {path}: ok ({len(services)} services; api/worker scalable; profile observability: "
          + ", ".join(sorted(n for n, s in services.items() if "observability" in (s.get("profiles") or []))) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
