#!/usr/bin/env python3
"""Offline checks of deploy/ (run by scripts/validate-deploy.sh).

  validate_deploy.py kubernetes DIR [--rendered FILE] [--k8s-versions 1.29.0,1.37.0]
      Renders DIR/kustomization.yaml with this file's own small renderer
      (namespace, images, resources: the only features the kustomization may
      use), compares it with FILE (the `kubectl kustomize` output) when given,
      validates every document against the Kubernetes OpenAPI schemas shipped by
      the `kubernetes-validate` package in strict mode (unknown fields are
      errors) for each version, then checks offndat's own rules (probes, ports,
      grace periods, selectors, references) and, for EVERY workload (the data
      services' too): non-root, read-only root filesystem, capabilities
      dropped, no privilege escalation, no service-account token; credentials
      only through Secret references (never a literal env value, never in a
      ConfigMap), every reference resolving, placeholders in the repository's
      Secrets; the app connecting as its own database role; a NetworkPolicy
      selecting each workload in both directions, behind a namespace-wide
      default deny, admitting only the ports and peers each component needs;
      trusted proxies no wider than one address (/32, /128). Also checks the
      optional KEDA manifests in DIR/optional/ structurally (their CRD schemas
      are not available offline).

  validate_deploy.py dashboard FILE [--alerts FILE]
      The Grafana dashboard parses, is well formed, and its PromQL uses only
      offndat's metric names (and every one of them at least once); the alert
      rules use only offndat's metric names plus `up` and RabbitMQ's queue
      metric.

  validate_deploy.py otel FILE
      The OpenTelemetry collector config parses and its pipelines reference
      only defined receivers, processors, exporters and extensions.

  validate_deploy.py grafana-provisioning DIR
      Grafana's provisioning files parse and have the expected shape.
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import json
import re
import sys
from pathlib import Path

import yaml

PROBLEMS: list[str] = []


def problem(message: str) -> None:
    PROBLEMS.append(message)


def finish(label: str, ok_message: str) -> int:
    if PROBLEMS:
        for message in PROBLEMS:
            print(f"{label}: {message}", file=sys.stderr)
        return 1
    print(f"{label}: {ok_message}")
    return 0


# =============================================================================
# Kubernetes
# =============================================================================

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PersistentVolume", "StorageClass", "IngressClass", "PriorityClass",
                  "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}
SUPPORTED_KUSTOMIZATION_KEYS = {"apiVersion", "kind", "namespace", "images", "resources"}


def load_documents(path: Path) -> list[dict]:
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def render(directory: Path) -> list[dict]:
    """A deliberately small kustomize: namespace, images, resources."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - SUPPORTED_KUSTOMIZATION_KEYS
    if unsupported:
        problem(f"{directory}/kustomization.yaml uses {sorted(unsupported)}; keep it to "
                f"{sorted(SUPPORTED_KUSTOMIZATION_KEYS)} (or teach scripts/validate_deploy.py)")
    documents: list[dict] = []
    for entry in kustomization.get("resources") or []:
        path = directory / entry
        if path.is_dir():
            documents.extend(render(path))
        elif path.is_file():
            documents.extend(load_documents(path))
        else:
            problem(f"{directory}/kustomization.yaml: resource {entry} does not exist")
    namespace = kustomization.get("namespace")
    for doc in documents:
        if namespace and doc.get("kind") not in CLUSTER_SCOPED:
            doc.setdefault("metadata", {})["namespace"] = namespace
        for pod_spec in pod_specs(doc):
            for container in pod_spec.get("containers", []) + pod_spec.get("initContainers", []):
                for image in kustomization.get("images") or []:
                    name, tag = split_image(container.get("image", ""))
                    if name == image["name"]:
                        new_name = image.get("newName", name)
                        new_tag = image.get("newTag", tag)
                        container["image"] = f"{new_name}:{new_tag}" if new_tag else new_name
                        if image.get("digest"):
                            container["image"] = f"{new_name}@{image['digest']}"
    return documents


def split_image(image: str) -> tuple[str, str | None]:
    if "@" in image:
        return image.split("@", 1)[0], None
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        return image.rsplit(":", 1)[0], image.rsplit(":", 1)[1]
    return image, None


def pod_specs(doc: dict) -> list[dict]:
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return [spec.setdefault("template", {}).setdefault("spec", {})]
    if kind == "CronJob":
        return [spec.setdefault("jobTemplate", {}).setdefault("spec", {}).setdefault("template", {}).setdefault("spec", {})]
    if kind == "Pod":
        return [spec]
    return []


def key(doc: dict) -> tuple[str, str, str]:
    meta = doc.get("metadata") or {}
    return doc.get("kind", "?"), meta.get("namespace", ""), meta.get("name", "?")


def compare(ours: list[dict], theirs: list[dict]) -> None:
    mine = {key(d): d for d in ours}
    kubectl = {key(d): d for d in theirs}
    for missing in sorted(set(kubectl) - set(mine)):
        problem(f"renderer mismatch: kubectl kustomize produced {missing}, the fallback renderer did not")
    for extra in sorted(set(mine) - set(kubectl)):
        problem(f"renderer mismatch: the fallback renderer produced {extra}, kubectl kustomize did not")
    for k in sorted(set(mine) & set(kubectl)):
        if normalise(mine[k]) != normalise(kubectl[k]):
            problem(f"renderer mismatch on {k}: the fallback renderer and kubectl kustomize differ")


def normalise(doc: dict) -> str:
    return json.dumps(doc, sort_keys=True)


def schema_validate(documents: list[dict], versions: list[str]) -> None:
    try:
        import kubernetes_validate  # type: ignore[import-not-found]
        from kubernetes_validate.utils import SchemaNotFoundError, ValidationError  # type: ignore
    except ImportError:
        problem("kubernetes-validate is not installed (scripts/validate-deploy.sh installs it)")
        return
    for version in versions:
        for doc in documents:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except ValidationError as error:
                problem(f"{version} {key(doc)}: {error.message if hasattr(error, 'message') else error}")
            except SchemaNotFoundError as error:
                problem(f"{version} {key(doc)}: no schema: {error}")
            except Exception as error:  # InvalidSchemaError and the like
                problem(f"{version} {key(doc)}: {type(error).__name__}: {error}")


def find(documents: list[dict], kind: str, name: str) -> dict | None:
    for doc in documents:
        if doc.get("kind") == kind and (doc.get("metadata") or {}).get("name") == name:
            return doc
    return None


def seconds(text: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in re.findall(r"([0-9.]+)(ms|h|m|s)", str(text)))


def selector_matches(selector: dict, labels: dict) -> bool:
    match = (selector or {}).get("matchLabels", selector or {})
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def check_workload(doc: dict, documents: list[dict], config: dict, secrets: set[str], *, port: int,
                   probes: bool, shutdown: float) -> None:
    name = key(doc)
    spec = doc.get("spec") or {}
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if doc["kind"] in ("Deployment", "StatefulSet") and not selector_matches(spec.get("selector"), labels):
        problem(f"{name}: selector does not match the pod labels")
    pod = template.get("spec") or {}
    containers = pod.get("containers") or []
    if not containers:
        problem(f"{name}: no containers")
        return
    # Hardening and resources: check_pod_hardening, for every workload.
    for container in containers:
        where = f"{name} container {container.get('name')}"
        # The root is read-only: the generated API key file and other temp
        # files (OFFNDAT_GENERATED_API_KEY_FILE defaults to the temp dir) need /tmp.
        if not any(m.get("mountPath") == "/tmp" for m in container.get("volumeMounts") or []):
            problem(f"{where}: needs a writable /tmp (emptyDir): the root filesystem is read-only")
        image = container.get("image", "")
        if split_image(image)[1] is None and "@" not in image:
            problem(f"{where}: image {image!r} has no tag (kustomization images: newTag)")
        for source in container.get("envFrom") or []:
            if "configMapRef" in source and not find(documents, "ConfigMap", source["configMapRef"]["name"]):
                problem(f"{where}: envFrom ConfigMap {source['configMapRef']['name']} is not in the kustomization")
            if "secretRef" in source and source["secretRef"]["name"] not in secrets:
                problem(f"{where}: envFrom Secret {source['secretRef']['name']} is not in the kustomization")
        if not probes:
            continue
        ports = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
        if port not in ports.values():
            problem(f"{where}: containerPort {port} is not declared")
        expected = {"readinessProbe": "/health/ready", "livenessProbe": "/health/live", "startupProbe": None}
        for probe_name, path in expected.items():
            probe = container.get(probe_name)
            if not probe:
                problem(f"{where}: {probe_name} is missing")
                continue
            http = probe.get("httpGet") or {}
            if path and http.get("path") != path:
                problem(f"{where}: {probe_name} must GET {path}, gets {http.get('path')}")
            probe_port = http.get("port")
            resolved = ports.get(probe_port) if isinstance(probe_port, str) else probe_port
            if resolved != port:
                problem(f"{where}: {probe_name} probes port {probe_port} ({resolved}), not {port}")
        annotations = (template.get("metadata") or {}).get("annotations") or {}
        if annotations.get("prometheus.io/scrape") != "true" or annotations.get("prometheus.io/port") != str(port) \
                or annotations.get("prometheus.io/path", "/metrics") != "/metrics":
            problem(f"{name}: pod needs prometheus.io/scrape \"true\", prometheus.io/port \"{port}\", prometheus.io/path /metrics")
        pre_stop = 0.0
        exec_command = (((container.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command") or []
        sleep_action = (((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds")
        if exec_command[:1] == ["sleep"] and len(exec_command) == 2:
            pre_stop = float(exec_command[1])
        elif sleep_action:
            pre_stop = float(sleep_action)
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if doc["metadata"]["name"].endswith("-api"):
            if pre_stop <= 0:
                problem(f"{where}: needs a preStop sleep so endpoints drain before SIGTERM")
            need = pre_stop + shutdown + 10
            if grace <= need:
                problem(f"{name}: terminationGracePeriodSeconds {grace} must exceed preStop {pre_stop:.0f}s + "
                        f"OFFNDAT_SHUTDOWN_TIMEOUT {shutdown:.0f}s + ~10s drain")
        elif grace <= shutdown:
            problem(f"{name}: terminationGracePeriodSeconds {grace} must exceed OFFNDAT_SHUTDOWN_TIMEOUT {shutdown:.0f}s")


def check_kubernetes(documents: list[dict]) -> None:
    names = {key(d) for d in documents}
    required = [("Namespace", "", "offndat"), ("ConfigMap", "offndat", "offndat-config"),
                ("Secret", "offndat", "offndat-secrets"), ("Deployment", "offndat", "offndat-api"),
                ("Service", "offndat", "offndat-api"), ("Ingress", "offndat", "offndat"),
                ("HorizontalPodAutoscaler", "offndat", "offndat-api"), ("PodDisruptionBudget", "offndat", "offndat-api"),
                ("Deployment", "offndat", "offndat-worker"), ("PodDisruptionBudget", "offndat", "offndat-worker"),
                ("Job", "offndat", "offndat-migrate")]
    for item in required:
        if item not in names:
            problem(f"missing {item}")
    for doc in documents:
        if doc.get("kind") not in CLUSTER_SCOPED and (doc.get("metadata") or {}).get("namespace") != "offndat":
            problem(f"{key(doc)}: must be in namespace offndat")
    if len(names) != len(documents):
        problem("duplicate resources")

    config_doc = find(documents, "ConfigMap", "offndat-config") or {}
    config = config_doc.get("data") or {}
    secret_doc = find(documents, "Secret", "offndat-secrets") or {}
    secret = {**(secret_doc.get("stringData") or {}), **(secret_doc.get("data") or {})}
    secrets = {d["metadata"]["name"] for d in documents if d.get("kind") == "Secret"}

    expect = {"OFFNDAT_LISTEN": "0.0.0.0:8090", "OFFNDAT_OPS_LISTEN": "0.0.0.0:8092",
              "OFFNDAT_WORKER_LISTEN": "0.0.0.0:8091",
              "OFFNDAT_MIGRATE_ON_START": "false", "OFFNDAT_LOG_FORMAT": "json"}
    for k, v in expect.items():
        if config.get(k) != v:
            problem(f"ConfigMap offndat-config: {k} must be {v!r}, is {config.get(k)!r}")
    for k in config:
        if SECRET_NAME.search(k) or re.search(r"DATABASE_URL|AMQP_URL|REDIS_URL", k) or URL_WITH_PASSWORD.search(str(config[k])):
            problem(f"ConfigMap offndat-config: {k} is secret; it belongs in the Secret")
    trusted = [t.strip() for t in config.get("OFFNDAT_TRUSTED_PROXIES", "").split(",") if t.strip()]
    if not trusted:
        problem("ConfigMap offndat-config: OFFNDAT_TRUSTED_PROXIES must hold the ingress controller's CIDR")
    for entry in trusted:
        try:
            net = ipaddress.ip_network(entry, strict=True)
        except ValueError:
            problem(f"ConfigMap offndat-config: OFFNDAT_TRUSTED_PROXIES entry {entry!r} is no IP address or CIDR")
            continue
        if net.num_addresses != 1:
            problem(f"ConfigMap offndat-config: OFFNDAT_TRUSTED_PROXIES entry {entry} is a network; list the ingress "
                    "controller's own addresses (/32 or /128), never a pod CIDR")
    for k in ("OFFNDAT_API_KEYS", "OFFNDAT_DATABASE_URL", "OFFNDAT_REDIS_URL", "OFFNDAT_AMQP_URL"):
        if k not in secret:
            problem(f"Secret offndat-secrets: {k} is missing")
        elif "stringData" in secret_doc and "CHANGE-ME" not in str(secret.get(k)):
            problem(f"Secret offndat-secrets: {k} must stay an obvious placeholder (CHANGE-ME) in the repository")
    shutdown = seconds(config.get("OFFNDAT_SHUTDOWN_TIMEOUT", "30s"))

    api = find(documents, "Deployment", "offndat-api")
    worker = find(documents, "Deployment", "offndat-worker")
    job = find(documents, "Job", "offndat-migrate")
    if api:
        # Probes and metrics on the operations listener, not the public port.
        check_workload(api, documents, config, secrets, port=8092, probes=True, shutdown=shutdown)
        command = api["spec"]["template"]["spec"]["containers"][0].get("command") or []
        if command[:1] != ["offndat-api"] or "migrate" in command:
            problem(f"Deployment offndat-api: command must be offndat-api (serve), is {command}")
    if worker:
        check_workload(worker, documents, config, secrets, port=8091, probes=True, shutdown=shutdown)
        command = worker["spec"]["template"]["spec"]["containers"][0].get("command") or []
        if command[:1] != ["offndat-worker"]:
            problem(f"Deployment offndat-worker: command must be offndat-worker, is {command}")
    if job:
        check_workload(job, documents, config, secrets, port=0, probes=False, shutdown=shutdown)
        command = job["spec"]["template"]["spec"]["containers"][0].get("command") or []
        if command != ["offndat-api", "migrate"]:
            problem(f"Job offndat-migrate: command must be [offndat-api, migrate], is {command}")

    for doc in documents:
        if pod_specs(doc):
            check_pod_hardening(doc)
            check_secret_references(doc, documents)
    check_credentials(documents)
    check_network_policies(documents)

    pod_labels = {d["metadata"]["name"]: (d["spec"]["template"].get("metadata") or {}).get("labels") or {}
                  for d in documents if d.get("kind") == "Deployment"}
    service = find(documents, "Service", "offndat-api")
    if service and api:
        if not selector_matches(service["spec"].get("selector"), pod_labels["offndat-api"]):
            problem("Service offndat-api: selector does not select the api pods")
        if selector_matches(service["spec"].get("selector"), pod_labels.get("offndat-worker", {})):
            problem("Service offndat-api: selector also selects the worker pods")
        container_ports = {p.get("name"): p.get("containerPort") for p in api["spec"]["template"]["spec"]["containers"][0].get("ports") or []}
        for port in service["spec"].get("ports") or []:
            target = port.get("targetPort")
            if (isinstance(target, str) and target not in container_ports) or (isinstance(target, int) and target not in container_ports.values()):
                problem(f"Service offndat-api: targetPort {target} is not a port of the api container")
    ingress = find(documents, "Ingress", "offndat")
    if ingress:
        if ingress["spec"].get("ingressClassName") != "nginx":
            problem("Ingress offndat: ingressClassName must be nginx")
        for rule in ingress["spec"].get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                backend = (path.get("backend") or {}).get("service") or {}
                target = find(documents, "Service", backend.get("name"))
                if not target:
                    problem(f"Ingress offndat: backend service {backend.get('name')} does not exist")
                    continue
                port = backend.get("port") or {}
                ports = target["spec"].get("ports") or []
                if not any(p.get("name") == port.get("name") or p.get("port") == port.get("number") for p in ports):
                    problem(f"Ingress offndat: backend port {port} is not a port of Service {backend.get('name')}")
    hpa = find(documents, "HorizontalPodAutoscaler", "offndat-api")
    if hpa:
        target = hpa["spec"].get("scaleTargetRef") or {}
        if (target.get("kind"), target.get("name")) != ("Deployment", "offndat-api"):
            problem(f"HorizontalPodAutoscaler offndat-api: scales {target}, not Deployment offndat-api")
        if not any((m.get("resource") or {}).get("name") == "cpu" for m in hpa["spec"].get("metrics") or []):
            problem("HorizontalPodAutoscaler offndat-api: must scale on CPU")
        if hpa["spec"].get("minReplicas", 1) < 2:
            problem("HorizontalPodAutoscaler offndat-api: minReplicas must be at least 2 (PDB, rolling nodes)")
        if api and "replicas" in api["spec"]:
            problem("Deployment offndat-api: drop spec.replicas, the HPA owns it")
    for component in ("api", "worker"):
        pdb = find(documents, "PodDisruptionBudget", f"offndat-{component}")
        if pdb and not selector_matches(pdb["spec"].get("selector"), pod_labels.get(f"offndat-{component}", {})):
            problem(f"PodDisruptionBudget offndat-{component}: selector does not select the {component} pods")


SECRET_NAME = re.compile(r"PASSWORD|_PASS$|API_KEYS|SECRET|TOKEN")
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/@\s:]*:[^/@\s]+@")
CREDENTIAL_URLS = ("OFFNDAT_DATABASE_URL", "OFFNDAT_REDIS_URL", "OFFNDAT_AMQP_URL")


def check_pod_hardening(doc: dict) -> None:
    """Every workload, offndat's or a data service's: no root, no writes to the image, no privileges."""
    name = key(doc)
    pod = pod_specs(doc)[0]
    pod_security = pod.get("securityContext") or {}
    if pod.get("automountServiceAccountToken") is not False:
        problem(f"{name}: automountServiceAccountToken must be false (nothing here talks to the API server)")
    if (pod_security.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problem(f"{name}: pod securityContext.seccompProfile.type must be RuntimeDefault")
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            problem(f"{name}: {field} must not be set")
    for container in (pod.get("initContainers") or []) + (pod.get("containers") or []):
        where = f"{name} container {container.get('name')}"
        security = container.get("securityContext") or {}
        uid = security.get("runAsUser", pod_security.get("runAsUser"))
        if not (security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True and isinstance(uid, int) and uid > 0):
            problem(f"{where}: must run as a numeric non-root user (runAsNonRoot: true, runAsUser > 0)")
        if security.get("readOnlyRootFilesystem") is not True:
            problem(f"{where}: readOnlyRootFilesystem must be true (emptyDir where it must write)")
        if security.get("allowPrivilegeEscalation") is not False:
            problem(f"{where}: allowPrivilegeEscalation must be false")
        if security.get("privileged"):
            problem(f"{where}: must not be privileged")
        capabilities = security.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problem(f"{where}: capabilities must drop ALL")
        if capabilities.get("add"):
            problem(f"{where}: adds capabilities {capabilities['add']}")
        resources = container.get("resources") or {}
        for section in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in (resources.get(section) or {}):
                    problem(f"{where}: resources.{section}.{resource} is missing")


def check_secret_references(doc: dict, documents: list[dict]) -> None:
    """Credentials reach containers only by reference to a Secret of the kustomization."""
    name = key(doc)
    pod = pod_specs(doc)[0]
    secrets = {d["metadata"]["name"]: d for d in documents if d.get("kind") == "Secret"}
    for container in (pod.get("initContainers") or []) + (pod.get("containers") or []):
        where = f"{name} container {container.get('name')}"
        for env in container.get("env") or []:
            var = env.get("name", "")
            value = env.get("value")
            if value is not None and (SECRET_NAME.search(var) or var in CREDENTIAL_URLS or URL_WITH_PASSWORD.search(str(value))):
                problem(f"{where}: {var} is written into the manifest; reference a Secret (valueFrom.secretKeyRef)")
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                secret = secrets.get(ref.get("name"))
                keys = set((secret or {}).get("stringData") or {}) | set((secret or {}).get("data") or {})
                if not secret:
                    problem(f"{where}: {var} refers to Secret {ref.get('name')}, which is not in the kustomization")
                elif ref.get("key") not in keys:
                    problem(f"{where}: {var} refers to key {ref.get('key')} of Secret {ref.get('name')}, which has no such key")
        for source in container.get("envFrom") or []:
            if "secretRef" in source and source["secretRef"].get("name") not in secrets:
                problem(f"{where}: envFrom Secret {source['secretRef'].get('name')} is not in the kustomization")
    for volume in pod.get("volumes") or []:
        if "secret" in volume and volume["secret"].get("secretName") not in secrets:
            problem(f"{name}: volume {volume.get('name')} mounts Secret {volume['secret'].get('secretName')}, not in the kustomization")


def url_credentials(url: str) -> tuple[str, str]:
    match = re.match(r"^[a-z][a-z0-9+.-]*://(?P<user>[^:@/]*)(?::(?P<password>[^@/]*))?@", str(url))
    return (match.group("user"), match.group("password") or "") if match else ("", "")


def check_credentials(documents: list[dict]) -> None:
    """Placeholders in the repository's Secrets; the app's own database role; passwords that pair up."""
    secrets = {d["metadata"]["name"]: {**(d.get("stringData") or {}), **(d.get("data") or {})}
               for d in documents if d.get("kind") == "Secret"}
    for secret_name, values in secrets.items():
        doc = find(documents, "Secret", secret_name) or {}
        if doc.get("data"):
            problem(f"Secret {secret_name}: use stringData with CHANGE-ME placeholders in the repository, not data")
        for k, v in values.items():
            if (SECRET_NAME.search(k) or k in CREDENTIAL_URLS) and "CHANGE-ME" not in str(v):
                problem(f"Secret {secret_name}: {k} must stay an obvious placeholder (CHANGE-ME) in the repository")
    app = secrets.get("offndat-secrets", {})
    user, _ = url_credentials(app.get("OFFNDAT_DATABASE_URL", ""))
    if user in ("", "postgres"):
        problem(f"Secret offndat-secrets: OFFNDAT_DATABASE_URL must use the app's own role (offndat), not {user or 'no user'!r}")
    for url_key in CREDENTIAL_URLS:
        if url_key in app and not url_credentials(app[url_key])[1]:
            problem(f"Secret offndat-secrets: {url_key} carries no password")
    # With the in-cluster data services, their passwords and the app's URLs pair up.
    pairs = [("OFFNDAT_DATABASE_URL", "offndat-postgres", "OFFNDAT_DATABASE_PASSWORD"),
             ("OFFNDAT_REDIS_URL", "offndat-redis", "REDIS_PASSWORD"),
             ("OFFNDAT_AMQP_URL", "offndat-rabbitmq", "RABBITMQ_DEFAULT_PASS")]
    for url_key, secret_name, password_key in pairs:
        if secret_name in secrets and url_credentials(app.get(url_key, ""))[1] != secrets[secret_name].get(password_key):
            problem(f"Secret offndat-secrets: the password in {url_key} differs from {secret_name} {password_key}")
    rabbit = secrets.get("offndat-rabbitmq")
    if rabbit and url_credentials(app.get("OFFNDAT_AMQP_URL", ""))[0] != rabbit.get("RABBITMQ_DEFAULT_USER"):
        problem("Secret offndat-secrets: the user in OFFNDAT_AMQP_URL differs from offndat-rabbitmq RABBITMQ_DEFAULT_USER")
    redis = find(documents, "Deployment", "redis") or find(documents, "StatefulSet", "redis")
    if redis and "requirepass" not in json.dumps(pod_specs(redis)[0].get("containers")):
        problem(f"{key(redis)}: Redis must require a password (requirepass)")
    setup = find(documents, "ConfigMap", "offndat-postgres-setup")
    if setup:
        canonical = Path(__file__).resolve().parent.parent / "deploy/compose/postgres/app-role.sql"
        if (setup.get("data") or {}).get("app-role.sql") != canonical.read_text():
            problem("ConfigMap offndat-postgres-setup: app-role.sql differs from deploy/compose/postgres/app-role.sql")


# What each component may receive (port -> peers: component names, or
# "namespace:NAME" for a namespaceSelector) and the ports it may send to.
NETWORK = {
    "api": {"ingress": {8090: {"namespace:ingress-nginx"}, 8092: {"namespace:monitoring"}},
            "egress": {5432, 6379, 5672, 53}},
    "worker": {"ingress": {8091: {"namespace:monitoring"}}, "egress": {5432, 5672, 53}},
    "migrate": {"ingress": {}, "egress": {5432, 53}},
    "postgres-setup": {"ingress": {}, "egress": {5432, 53}},
    "postgres": {"ingress": {5432: {"api", "worker", "migrate", "postgres-setup"}}, "egress": set()},
    "redis": {"ingress": {6379: {"api"}}, "egress": set()},
    "rabbitmq": {"ingress": {5672: {"api", "worker"}, 15692: {"namespace:monitoring"}}, "egress": {53}},
}


def peer_names(peer: dict) -> set[str]:
    if "ipBlock" in peer:
        return {f"ipBlock:{peer['ipBlock'].get('cidr')}"}
    names = set()
    namespace = ((peer.get("namespaceSelector") or {}).get("matchLabels") or {}).get("kubernetes.io/metadata.name")
    if "namespaceSelector" in peer:
        names.add(f"namespace:{namespace or '*'}")
    elif "podSelector" in peer:
        labels = (peer.get("podSelector") or {}).get("matchLabels") or {}
        names.add(labels.get("app.kubernetes.io/component", "*"))
    return names


def check_network_policies(documents: list[dict]) -> None:
    policies = [d for d in documents if d.get("kind") == "NetworkPolicy"]
    default_deny = [p for p in policies if not (p["spec"].get("podSelector") or {}).get("matchLabels")
                    and not (p["spec"].get("podSelector") or {}).get("matchExpressions")
                    and set(p["spec"].get("policyTypes") or []) == {"Ingress", "Egress"}
                    and not p["spec"].get("ingress") and not p["spec"].get("egress")]
    if not default_deny:
        problem("NetworkPolicy: needs a default deny (podSelector {}, policyTypes [Ingress, Egress], no rules)")
    for policy in policies:
        name = key(policy)
        for direction, peer_field in (("ingress", "from"), ("egress", "to")):
            for rule in policy["spec"].get(direction) or []:
                if not rule.get(peer_field):
                    problem(f"{name}: an {direction} rule without `{peer_field}` admits every peer")
                if not rule.get("ports"):
                    problem(f"{name}: an {direction} rule without `ports` admits every port")
                for peer in rule.get(peer_field) or []:
                    cidr = (peer.get("ipBlock") or {}).get("cidr", "")
                    if cidr in ("0.0.0.0/0", "::/0"):
                        problem(f"{name}: {direction} to/from {cidr} (anywhere)")
                    if "namespaceSelector" in peer and not ((peer["namespaceSelector"] or {}).get("matchLabels")
                                                            or (peer["namespaceSelector"] or {}).get("matchExpressions")):
                        problem(f"{name}: an empty namespaceSelector admits every namespace")
    for doc in documents:
        if not pod_specs(doc):
            continue
        template = (doc.get("spec") or {}).get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        component = labels.get("app.kubernetes.io/component")
        selecting = [p for p in policies if selector_matches(p["spec"].get("podSelector"), labels)]
        if not selecting:
            problem(f"{key(doc)}: no NetworkPolicy selects its pods")
            continue
        for direction in ("Ingress", "Egress"):
            if not any(direction in (p["spec"].get("policyTypes") or []) for p in selecting):
                problem(f"{key(doc)}: no NetworkPolicy restricts its {direction.lower()}")
        expected = NETWORK.get(component)
        if expected is None:
            problem(f"{key(doc)}: component {component!r} has no expected network rules in scripts/validate_deploy.py")
            continue
        for policy in selecting:
            for rule in policy["spec"].get("ingress") or []:
                peers = set().union(*(peer_names(p) for p in rule.get("from") or [])) if rule.get("from") else {"*"}
                for port in rule.get("ports") or []:
                    allowed = expected["ingress"].get(port.get("port"))
                    if allowed is None:
                        problem(f"{key(policy)}: admits port {port.get('port')} to {component}, which needs only "
                                f"{sorted(expected['ingress']) or 'no ingress'}")
                    elif not peers <= allowed:
                        problem(f"{key(policy)}: admits {sorted(peers - allowed)} to {component} port {port.get('port')}; "
                                f"only {sorted(allowed)} need it")
            for rule in policy["spec"].get("egress") or []:
                for port in rule.get("ports") or []:
                    if port.get("port") not in expected["egress"]:
                        problem(f"{key(policy)}: lets {component} send to port {port.get('port')}; it needs only "
                                f"{sorted(expected['egress']) or 'no egress'}")


def check_keda(path: Path, documents: list[dict]) -> None:
    try:
        extra = load_documents(path)
    except (OSError, yaml.YAMLError) as error:
        problem(f"{path}: {error}")
        return
    auths = {d["metadata"]["name"]: d for d in extra if d.get("kind") == "TriggerAuthentication"}
    scaled = [d for d in extra if d.get("kind") == "ScaledObject"]
    if not scaled:
        problem(f"{path}: no ScaledObject")
    secret_doc = find(documents, "Secret", "offndat-secrets") or {}
    secret_keys = set(secret_doc.get("stringData") or {}) | set(secret_doc.get("data") or {})
    for doc in extra:
        if doc.get("apiVersion") != "keda.sh/v1alpha1":
            problem(f"{path}: {key(doc)} apiVersion must be keda.sh/v1alpha1")
    for auth in auths.values():
        for ref in auth["spec"].get("secretTargetRef") or []:
            if ref.get("name") != "offndat-secrets" or ref.get("key") not in secret_keys:
                problem(f"{path}: TriggerAuthentication refers to {ref.get('name')}/{ref.get('key')}, not a key of offndat-secrets")
    for obj in scaled:
        target = obj["spec"].get("scaleTargetRef") or {}
        if not find(documents, "Deployment", target.get("name")):
            problem(f"{path}: ScaledObject scales {target.get('name')}, which is no Deployment of the kustomization")
        if obj["spec"].get("minReplicaCount", 0) < 1:
            problem(f"{path}: minReplicaCount below 1 would stop counting visits when idle")
        for trigger in obj["spec"].get("triggers") or []:
            meta = trigger.get("metadata") or {}
            if trigger.get("type") != "rabbitmq" or meta.get("queueName") != "offndat.link-visited":
                problem(f"{path}: trigger must be rabbitmq on queue offndat.link-visited, is {trigger.get('type')} {meta.get('queueName')}")
            if meta.get("mode") not in ("QueueLength", "MessageRate") or not str(meta.get("value", "")).isdigit():
                problem(f"{path}: trigger needs mode QueueLength/MessageRate and a numeric value")
            ref = (trigger.get("authenticationRef") or {}).get("name")
            if ref not in auths:
                problem(f"{path}: authenticationRef {ref} is not defined in the file")
        if find(documents, "HorizontalPodAutoscaler", target.get("name", "")):
            problem(f"{path}: {target.get('name')} already has an HPA in the kustomization")


def cmd_kubernetes(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    ours = render(directory)
    rendered = ours
    if args.rendered:
        theirs = load_documents(Path(args.rendered))
        compare(copy.deepcopy(ours), theirs)
        rendered = theirs
    versions = [v.strip() for v in args.k8s_versions.split(",") if v.strip()]
    schema_validate(rendered, versions)
    check_kubernetes(rendered)
    optional = sorted((directory / "optional").glob("*.yaml")) if (directory / "optional").is_dir() else []
    for path in optional:
        check_keda(path, rendered)
    kinds = sorted({d.get("kind") for d in rendered})
    return finish("kubernetes", f"{len(rendered)} resources valid against Kubernetes {', '.join(versions)} "
                  f"(strict) and offndat's rules [{', '.join(kinds)}]"
                  + (f"; {len(optional)} optional KEDA file(s) checked structurally" if optional else ""))


# =============================================================================
# Grafana dashboard and alert rules
# =============================================================================

METRICS = {
    "http_requests_total", "http_request_duration_seconds", "offndat_redirect_lookups_total",
    "offndat_links_created_total", "offndat_visits_recorded_total", "offndat_visits_dropped_total",
    "offndat_outbox_pending", "offndat_outbox_published_total", "offndat_outbox_relay_errors_total",
    "offndat_worker_messages_total", "offndat_worker_visits_total", "offndat_worker_batch_duration_seconds",
}
HISTOGRAMS = {"http_request_duration_seconds", "offndat_worker_batch_duration_seconds"}
ALERT_EXTRA = {"up", "rabbitmq_detailed_queue_messages_ready"}
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
            "offset", "bool", "inf", "nan", "atan2", "start", "end"}


def metric_names(expr: str) -> set[str]:
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # strings
    text = re.sub(r"\{[^{}]*\}", " ", text)                                       # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)                                       # ranges, subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)                                       # Grafana variables
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word in KEYWORDS:
            continue
        names.add(word)
    return names


def base_metric(name: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in HISTOGRAMS:
            return name[: -len(suffix)]
    return name


def cmd_dashboard(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        dashboard = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        problem(f"{path}: does not parse: {error}")
        return finish("dashboard", "")
    for field in ("uid", "title", "panels", "schemaVersion"):
        if field not in dashboard:
            problem(f"{path}: top-level {field!r} is missing")
    variables = {v.get("name") for v in (dashboard.get("templating") or {}).get("list") or []}
    used: set[str] = set()
    ids: set[int] = set()
    panels = list(dashboard.get("panels") or [])
    for panel in list(panels):
        panels.extend(panel.get("panels") or [])
    queries = 0
    for panel in panels:
        title = panel.get("title", "?")
        if panel.get("id") in ids:
            problem(f"{path}: panel id {panel.get('id')} is used twice")
        ids.add(panel.get("id"))
        grid = panel.get("gridPos") or {}
        if not all(isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")) or grid.get("x", 0) + grid.get("w", 0) > 24:
            problem(f"{path}: panel {title!r} has a bad gridPos {grid}")
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets") or []
        if not targets:
            problem(f"{path}: panel {title!r} has no query")
        datasource = json.dumps(panel.get("datasource"))
        for ref in re.findall(r"\$\{?(\w+)\}?", datasource):
            if ref not in variables:
                problem(f"{path}: panel {title!r} uses datasource variable {ref!r}, which is not defined")
        for target in targets:
            expr = target.get("expr", "")
            if not expr.strip():
                problem(f"{path}: panel {title!r} has an empty query")
                continue
            queries += 1
            if expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}"):
                problem(f"{path}: panel {title!r}: unbalanced brackets in {expr!r}")
            for name in metric_names(expr):
                metric = base_metric(name)
                if metric not in METRICS:
                    problem(f"{path}: panel {title!r} uses unknown metric {name!r}")
                used.add(metric)
    for missing in sorted(METRICS - used):
        problem(f"{path}: no panel shows {missing}")

    rules = 0
    if args.alerts:
        alerts_path = Path(args.alerts)
        try:
            alerts = yaml.safe_load(alerts_path.read_text())
        except (OSError, yaml.YAMLError) as error:
            problem(f"{alerts_path}: {error}")
            alerts = {}
        for group in alerts.get("groups") or []:
            for rule in group.get("rules") or []:
                rules += 1
                for name in metric_names(str(rule.get("expr", ""))):
                    if base_metric(name) not in METRICS | ALERT_EXTRA:
                        problem(f"{alerts_path}: rule {rule.get('alert')} uses unknown metric {name!r}")
    return finish("dashboard", f"{len(panels)} panels, {queries} queries using all {len(METRICS)} offndat metrics"
                  + (f"; {rules} alert rules use known metrics" if args.alerts else ""))


# =============================================================================
# OpenTelemetry collector, Grafana provisioning
# =============================================================================


def cmd_otel(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        problem(f"{path}: {error}")
        return finish("otel-collector", "")
    service = config.get("service") or {}
    pipelines = service.get("pipelines") or {}
    if not pipelines:
        problem(f"{path}: service.pipelines is empty")
    if "traces" not in {p.split("/")[0] for p in pipelines}:
        problem(f"{path}: no traces pipeline")
    for pipeline, spec in pipelines.items():
        if pipeline.split("/")[0] not in ("traces", "metrics", "logs"):
            problem(f"{path}: unknown pipeline type {pipeline}")
        for section in ("receivers", "processors", "exporters"):
            for component in spec.get(section) or []:
                if component not in (config.get(section) or {}):
                    problem(f"{path}: pipeline {pipeline} uses {section[:-1]} {component!r}, which is not defined")
        if not spec.get("receivers") or not spec.get("exporters"):
            problem(f"{path}: pipeline {pipeline} needs receivers and exporters")
    for extension in service.get("extensions") or []:
        if extension not in (config.get("extensions") or {}):
            problem(f"{path}: extension {extension!r} is not defined")
    if "otlp" not in (config.get("receivers") or {}):
        problem(f"{path}: needs the otlp receiver (the services export OTLP)")
    return finish("otel-collector", f"{len(pipelines)} pipelines reference defined components")


def cmd_grafana_provisioning(args: argparse.Namespace) -> int:
    root = Path(args.directory)
    datasources = list((root / "datasources").glob("*.y*ml"))
    dashboards = list((root / "dashboards").glob("*.y*ml"))
    if not datasources or not dashboards:
        problem(f"{root}: needs datasources/*.yaml and dashboards/*.yaml")
    for path in datasources + dashboards:
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as error:
            problem(f"{path}: {error}")
            continue
        if data.get("apiVersion") != 1:
            problem(f"{path}: apiVersion must be 1")
    for path in datasources:
        for ds in yaml.safe_load(path.read_text()).get("datasources") or []:
            if ds.get("type") == "prometheus" and not str(ds.get("url", "")).startswith("http://prometheus:"):
                problem(f"{path}: the Prometheus datasource must point at the compose prometheus service")
    for path in dashboards:
        for provider in yaml.safe_load(path.read_text()).get("providers") or []:
            if not (provider.get("options") or {}).get("path"):
                problem(f"{path}: provider {provider.get('name')} has no options.path")
    return finish("grafana-provisioning", f"{len(datasources)} datasource and {len(dashboards)} dashboard provider file(s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    k8s = sub.add_parser("kubernetes")
    k8s.add_argument("directory")
    k8s.add_argument("--rendered", help="`kubectl kustomize` output to validate and compare with")
    k8s.add_argument("--k8s-versions", default="1.29.0,1.37.0")
    k8s.set_defaults(func=cmd_kubernetes)
    dash = sub.add_parser("dashboard")
    dash.add_argument("file")
    dash.add_argument("--alerts")
    dash.set_defaults(func=cmd_dashboard)
    otel = sub.add_parser("otel")
    otel.add_argument("file")
    otel.set_defaults(func=cmd_otel)
    prov = sub.add_parser("grafana-provisioning")
    prov.add_argument("directory")
    prov.set_defaults(func=cmd_grafana_provisioning)
    args = parser.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
