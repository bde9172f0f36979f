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
   the postgres-setup and migrate jobs and the depends_on conditions, only
   nginx published in the default profile, the observability profile,
   bind-mounted files exist, Prometheus discovers every replica, and:
   - hardening: every default-profile container runs as a named or numeric
     non-root user, with read_only: true, cap_drop [ALL] and
     no-new-privileges (observability containers: the last two);
   - credentials: every password, key and credential-carrying URL takes its
     secret from a variable (`${VAR:-placeholder}`), never a literal; the app
     connects to PostgreSQL as its own role, not the superuser; Redis requires
     a password; and each service's password and the app's URL for it come
     from the same variable (checked by interpolating once more with every
     variable set to a distinct value);
   - trusted proxies: only single addresses (/32, /128), exactly nginx's fixed
     address, which lies in the subnet and outside Docker's dynamic range.

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

REQUIRED = ["postgres", "redis", "rabbitmq", "postgres-setup", "migrate", "api", "worker", "nginx"]
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
    if not any(str(p).endswith(":8080") or (isinstance(p, dict) and str(p.get("target")) == "8080") for p in nginx.get("ports") or []):
        problem("nginx: must publish container port 8080 (it runs unprivileged), e.g. 8080:8080")

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
    setup = services["postgres-setup"]
    if str(setup.get("restart", "no")) != "no":
        problem("postgres-setup: a one-shot job must not restart")
    if depends_on(setup).get("postgres") != "service_healthy":
        problem("postgres-setup: must wait for postgres: service_healthy")
    setup_cmd = [str(c) for c in (setup.get("entrypoint") or [])] + command_of(setup)
    if setup_cmd[:1] != ["psql"] or "/setup/app-role.sql" not in setup_cmd:
        problem(f"postgres-setup: must run psql -f /setup/app-role.sql, runs {setup_cmd}")
    if not any("deploy/compose/postgres/app-role.sql:/setup/app-role.sql" in str(v) for v in setup.get("volumes") or []):
        problem("postgres-setup: must mount deploy/compose/postgres/app-role.sql at /setup/app-role.sql")
    if depends_on(migrate).get("postgres-setup") != "service_completed_successfully":
        problem("migrate: must wait for postgres-setup: service_completed_successfully (the app role must exist)")

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

    check_trusted_proxies(compose, services, api_env)
    check_hardening(services)

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


def check_trusted_proxies(compose: dict, services: dict, api_env: dict[str, str]) -> None:
    """Trusted proxies are nginx's own fixed address, never a network."""
    subnets, ranges = [], []
    for net in (compose.get("networks") or {}).values():
        for cfg in ((net or {}).get("ipam") or {}).get("config") or []:
            try:
                if cfg.get("subnet"):
                    subnets.append(ipaddress.ip_network(cfg["subnet"]))
                if cfg.get("ip_range"):
                    ranges.append(ipaddress.ip_network(cfg["ip_range"]))
            except ValueError as error:
                problem(f"networks: {error}")
    if not subnets:
        problem("networks: define the network with a fixed subnet (ipam.config[].subnet)")
    if not ranges:
        problem("networks: set ipam.config[].ip_range, so Docker never hands nginx's fixed address to another container")
    for dynamic in ranges:
        if not any(dynamic.subnet_of(net) for net in subnets if net.version == dynamic.version):
            problem(f"networks: ip_range {dynamic} is outside the subnet")
    nginx_networks = services["nginx"].get("networks") or {}
    addresses = []
    if isinstance(nginx_networks, dict):
        for spec in nginx_networks.values():
            for field in ("ipv4_address", "ipv6_address"):
                if (spec or {}).get(field):
                    try:
                        addresses.append(ipaddress.ip_address(spec[field]))
                    except ValueError:
                        problem(f"nginx: {field} {spec[field]!r} is no address")
    if not addresses:
        problem("nginx: needs a fixed address (networks.<net>.ipv4_address): the api trusts that address only")
    for address in addresses:
        if subnets and not any(address in net for net in subnets):
            problem(f"nginx: address {address} is outside the network's subnet {[str(n) for n in subnets]}")
        if any(address in dynamic for dynamic in ranges):
            problem(f"nginx: address {address} lies in the dynamic ip_range; another container may take it first")
    trusted = [t.strip() for t in api_env.get("OFFNDAT_TRUSTED_PROXIES", "").split(",") if t.strip()]
    if not trusted:
        problem("api: OFFNDAT_TRUSTED_PROXIES must hold nginx's address")
    for entry in trusted:
        try:
            net = ipaddress.ip_network(entry, strict=True)
        except ValueError:
            problem(f"api: OFFNDAT_TRUSTED_PROXIES entry {entry!r} is no IP address or CIDR")
            continue
        if net.num_addresses != 1:
            problem(f"api: trusted proxy {entry} is a whole network; trust only the proxy's own address (/32 or /128)")
        elif net.network_address not in addresses:
            problem(f"api: trusted proxy {entry} is not nginx's address {[str(a) for a in addresses]}")


HARDENED_DEFAULT = ["postgres", "redis", "rabbitmq", "postgres-setup", "migrate", "api", "worker", "nginx"]


def check_hardening(services: dict) -> None:
    for name, service in services.items():
        default_profile = not service.get("profiles")
        if "ALL" not in [str(c).upper() for c in service.get("cap_drop") or []]:
            problem(f"{name}: must drop every capability (cap_drop: [ALL])")
        if not any(str(o).replace("=", ":") in ("no-new-privileges:true", "no-new-privileges")
                   for o in service.get("security_opt") or []):
            problem(f"{name}: needs security_opt no-new-privileges:true")
        if service.get("cap_add"):
            problem(f"{name}: adds capabilities {service['cap_add']}")
        if service.get("privileged"):
            problem(f"{name}: must not be privileged")
        if not default_profile:
            continue
        if service.get("read_only") is not True:
            problem(f"{name}: needs read_only: true (tmpfs where it must write)")
        user = str(service.get("user", "")).split(":")[0]
        if not user or user in ("root", "0"):
            problem(f"{name}: must run as a non-root user (user: NAME or UID), is {service.get('user')!r}")
    for name in HARDENED_DEFAULT:
        if name in services and services[name].get("profiles"):
            problem(f"{name}: must be in the default profile")
    # Read-only roots: offndat writes its generated API key file to the temp dir.
    for name in ("migrate", "api", "worker"):
        mounts = [str(t).split(":")[0] for t in services.get(name, {}).get("tmpfs") or []]
        if "/tmp" not in mounts:
            problem(f"{name}: needs tmpfs /tmp (read-only root; the generated API key file goes to the temp dir)")


SECRET_ENV = re.compile(r"PASSWORD|PASS$|API_KEYS|SECRET|TOKEN")
URL_ENV = ("OFFNDAT_DATABASE_URL", "OFFNDAT_REDIS_URL", "OFFNDAT_AMQP_URL")
_INTERPOLATION_ONLY = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-[^}]*)?\}(/\d+)?$")
_URL_SECRET = re.compile(r"^[a-z]+://(?P<user>[^:@/]*)(?::(?P<password>[^@/]*))?@")


def check_credentials(raw: dict, resolved: dict, wired: dict) -> None:
    """Credentials come from variables, and each side of a connection from the same one.

    raw: the file before interpolation; resolved: interpolated from an empty
    environment (the placeholders); wired: interpolated with every variable set
    to a distinct value.
    """
    raw_services = raw.get("services") or {}
    for name, service in raw_services.items():
        for key, value in env_of(service).items():
            if SECRET_ENV.search(key) and value and not _INTERPOLATION_ONLY.match(value):
                problem(f"{name}: {key} is written into the file; take it from a variable (${{VAR:-placeholder}})")
            if key in URL_ENV and value:
                match = _URL_SECRET.match(value)
                if key != "OFFNDAT_AMQP_URL" or match:
                    password = (match.group("password") if match else None) or ""
                    if not _INTERPOLATION_ONLY.match(password):
                        problem(f"{name}: {key} must carry its password as a variable (scheme://user:${{VAR:-placeholder}}@host), "
                                f"has {password!r}")
    services = resolved.get("services") or {}
    wired_services = wired.get("services") or {}

    def url_parts(env: dict[str, str], key: str) -> tuple[str, str]:
        match = _URL_SECRET.match(env.get(key, ""))
        return (match.group("user"), match.group("password") or "") if match else ("", "")

    for name in ("api", "worker", "migrate"):
        env = env_of(services.get(name, {}))
        user, _ = url_parts(env, "OFFNDAT_DATABASE_URL")
        if user in ("", "postgres"):
            problem(f"{name}: OFFNDAT_DATABASE_URL must use the app's own role (offndat), not {user or 'no user'!r}")
    for name in ("api", "worker"):
        wired_env = env_of(wired_services.get(name, {}))
        pairs = [
            ("OFFNDAT_DATABASE_URL", "postgres-setup", "OFFNDAT_DATABASE_PASSWORD"),
            ("OFFNDAT_AMQP_URL", "rabbitmq", "RABBITMQ_DEFAULT_PASS"),
        ]
        if name == "api":
            pairs.append(("OFFNDAT_REDIS_URL", "redis", "REDIS_PASSWORD"))
        for url_key, service, password_key in pairs:
            _, password = url_parts(wired_env, url_key)
            expected = env_of(wired_services.get(service, {})).get(password_key)
            if not password:
                problem(f"{name}: {url_key} has no password")
            elif password != expected:
                problem(f"{name}: the password in {url_key} and {service}'s {password_key} come from different variables")
    setup_env = env_of(wired_services.get("postgres-setup", {}))
    postgres_env = env_of(wired_services.get("postgres", {}))
    if setup_env.get("PGPASSWORD") != postgres_env.get("POSTGRES_PASSWORD"):
        problem("postgres-setup: PGPASSWORD must come from the same variable as postgres's POSTGRES_PASSWORD")
    redis = services.get("redis", {})
    if "requirepass" not in " ".join(command_of(redis)):
        problem("redis: must require a password (requirepass)")
    if "REDISCLI_AUTH" not in json.dumps((redis.get("healthcheck") or {}).get("test")):
        problem("redis: the healthcheck must authenticate (REDISCLI_AUTH, keeping the password off the command line)")


def variables_of(node, found: set[str]) -> set[str]:
    if isinstance(node, dict):
        for value in node.values():
            variables_of(value, found)
    elif isinstance(node, list):
        for value in node:
            variables_of(value, found)
    elif isinstance(node, str):
        for match in _VAR.finditer(node):
            name = match.group("braced") or match.group("plain")
            if name:
                found.add(name)
    return found


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
    if not PROBLEMS:
        # Every variable set to its own value: shows which settings share one.
        sample = {name: f"v-{name.lower()}" for name in variables_of(raw, set())}
        for name in ("OFFNDAT_SUBNET", "OFFNDAT_DYNAMIC_RANGE", "OFFNDAT_NGINX_ADDRESS", "OFFNDAT_HTTP_PORT"):
            sample.pop(name, None)  # addresses and ports keep their defaults
        wired = interpolate_tree(raw, sample)
        check_credentials(raw, resolved, wired)

    if PROBLEMS:
        for message in PROBLEMS:
            print(f"compose: {path}: {message}", file=sys.stderr)
        return 1
    services = resolved.get("services") or {}
    print(f"compose: {path}: ok ({len(services)} services; api/worker scalable; hardened; credentials from variables; "
          "trusted proxy = nginx's address; profile observability: "
          + ", ".join(sorted(n for n, s in services.items() if "observability" in (s.get("profiles") or []))) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
