"""The Helm chart: lint, Kubernetes schemas, and the properties a rollout relies on."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from .k8s_helpers import (
    CHART,
    CI_VALUES,
    K8S_VERSIONS,
    RELEASE,
    SECRET_VARS,
    VALUE_SETS,
    Helm,
    env_of,
    find,
    pod_specs,
)

GRPC_CONFIG_VARS = {
    "CRYPTO_AUTH",
    "LOG_FORMAT",
    "LOG_LEVEL",
    "GRPC_HOST",
    "GRPC_PORT",
    "GRPC_SHUTDOWN_GRACE",
    "METRICS_PORT",
}
GRPC_OPTION_VARS = {
    "GRPC_KEEPALIVE_TIME_MS",
    "GRPC_KEEPALIVE_TIMEOUT_MS",
    "GRPC_MAX_CONNECTION_AGE_MS",
    "GRPC_MAX_CONNECTION_AGE_GRACE_MS",
    "GRPC_MAX_MESSAGE_BYTES",
}


def grpc_deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return find(docs, "Deployment", RELEASE)


def grpc_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = grpc_deployment(docs)["spec"]["template"]["spec"]["containers"]
    return container


def config_data(docs: list[dict[str, Any]]) -> dict[str, str]:
    return find(docs, "ConfigMap", RELEASE)["data"]


# --- helm lint / template / Kubernetes schemas ------------------------------


def test_helm_lint(helm: Helm, values_name: str) -> None:
    args = ["lint", "--strict", str(CHART)]
    for path in VALUE_SETS[values_name]:
        args += ["-f", str(path)]
    proc = helm.run(*args)
    assert "0 chart(s) failed" in proc.stdout


def test_ci_values_switch_on_every_optional_object(helm: Helm) -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in helm.render(values=(CI_VALUES,))}
    assert kinds >= {
        ("Service", f"{RELEASE}-headless"),
        ("HorizontalPodAutoscaler", RELEASE),
        ("ServiceMonitor", RELEASE),
        ("NetworkPolicy", RELEASE),
        ("Deployment", f"{RELEASE}-web"),
        ("Service", f"{RELEASE}-web"),
        ("Job", f"{RELEASE}-migrate"),
        ("Pod", f"{RELEASE}-test-grpc-health"),
        ("PodDisruptionBudget", RELEASE),
        ("PodDisruptionBudget", f"{RELEASE}-web"),
        ("Ingress", f"{RELEASE}-web"),
    }


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
def test_rendered_objects_match_kubernetes_schemas(docs: list[dict[str, Any]], k8s_version: str) -> None:
    """Strict schemas: wrong types and unknown fields fail, as the API server would reject them."""
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate (dev dependency) ships the Kubernetes JSON schemas"
    )
    validated = 0
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD; checked in test_service_monitor
        kubernetes_validate.validate(doc, k8s_version, strict=True)
        validated += 1
    assert validated >= 6


def test_notes_render(helm: Helm) -> None:
    proc = helm.run(
        "install", RELEASE, str(CHART), "-f", str(CI_VALUES), "--dry-run=client", "--namespace", "trading"
    )
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert "kubectl -n trading rollout status deployment/crypto-grpc" in notes
    assert "preStop 7s + drain 45s + margin 15s = terminationGracePeriodSeconds 67s" in notes
    assert "Admin through the Ingress:\n  https://crypto.example.com/admin/\n\n" in notes  # no wildcard host


# --- probes, ports, strategy, shutdown budget -------------------------------


def test_native_grpc_probes_on_numeric_port(docs: list[dict[str, Any]], values: dict[str, Any]) -> None:
    container = grpc_container(docs)
    port = values["grpc"]["port"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["grpc"] == port
    assert config_data(docs)["GRPC_PORT"] == str(port)
    expected = {"startupProbe": "liveness", "readinessProbe": "readiness", "livenessProbe": "liveness"}
    for probe_name, service in expected.items():
        probe = container[probe_name]
        assert set(probe) & {"httpGet", "tcpSocket", "exec"} == set()
        assert probe["grpc"] == {"port": port, "service": service}
        assert isinstance(probe["grpc"]["port"], int)


def test_rolling_update_never_drops_capacity(docs: list[dict[str, Any]], values: dict[str, Any]) -> None:
    spec = grpc_deployment(docs)["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    assert spec["minReadySeconds"] > 0
    if values["autoscaling"]["enabled"]:
        assert "replicas" not in spec  # the HPA owns the count
        assert find(docs, "HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 2
    else:
        assert spec["replicas"] == values["replicaCount"] >= 2


def test_default_replica_count_is_three(helm: Helm) -> None:
    assert grpc_deployment(helm.render())["spec"]["replicas"] == 3


def test_termination_grace_is_prestop_plus_drain_plus_margin(
    docs: list[dict[str, Any]], values: dict[str, Any]
) -> None:
    pod = grpc_deployment(docs)["spec"]["template"]["spec"]
    prestop = grpc_container(docs)["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = int(config_data(docs)["GRPC_SHUTDOWN_GRACE"])
    margin = values["drain"]["marginSeconds"]
    assert prestop == values["preStop"]["sleepSeconds"]
    assert drain == values["drain"]["graceSeconds"]
    assert pod["terminationGracePeriodSeconds"] == prestop + drain + margin


@pytest.mark.parametrize(("prestop", "drain", "margin"), [(1, 1, 1), (5, 20, 10), (15, 300, 30)])
def test_termination_grace_follows_values(helm: Helm, prestop: int, drain: int, margin: int) -> None:
    docs = helm.render(
        sets=(f"preStop.sleepSeconds={prestop}", f"drain.graceSeconds={drain}", f"drain.marginSeconds={margin}")
    )
    assert grpc_deployment(docs)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == prestop + drain + margin
    assert config_data(docs)["GRPC_SHUTDOWN_GRACE"] == str(drain)


def test_defaults_of_the_shutdown_budget(helm: Helm) -> None:
    docs = helm.render()
    assert grpc_container(docs)["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}
    assert config_data(docs)["GRPC_SHUTDOWN_GRACE"] == "20"
    assert grpc_deployment(docs)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 35


# --- security -------------------------------------------------------------------


def test_every_pod_is_locked_down(docs: list[dict[str, Any]]) -> None:
    specs = dict(pod_specs(docs))
    assert RELEASE in specs and f"{RELEASE}-migrate" in specs and f"{RELEASE}-test-grpc-health" in specs
    for name, spec in specs.items():
        assert spec["automountServiceAccountToken"] is False, name
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] == 10001, name
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        tmp_volumes = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts.get("/tmp") in tmp_volumes, f"{name}: /tmp must be an emptyDir"


def test_service_account_token_not_mounted(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        if doc["kind"] == "ServiceAccount":
            assert doc["automountServiceAccountToken"] is False


# --- configuration and secrets ------------------------------------------------


def test_replica_id_is_the_pod_name(docs: list[dict[str, Any]]) -> None:
    entry = env_of(grpc_container(docs))["REPLICA_ID"]
    assert entry["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_grpc_container_sees_every_app_variable(docs: list[dict[str, Any]], values: dict[str, Any]) -> None:
    container = grpc_container(docs)
    assert container["envFrom"] == [{"configMapRef": {"name": RELEASE}}]
    names = set(env_of(container)) | set(config_data(docs))
    expected = GRPC_CONFIG_VARS | set(SECRET_VARS) | {"REPLICA_ID"}
    assert expected <= names
    options = {k for k, v in values["grpc"].items() if v is not None and k not in {"host", "port", "experiments"}}
    assert len(names & GRPC_OPTION_VARS) == len(options)
    if values["config"]["centrifugoApiUrl"]:
        assert "CENTRIFUGO_API_URL" in names


def test_grpc_options_are_rendered_as_integers(helm: Helm) -> None:
    data = config_data(helm.render(values=(CI_VALUES,)))
    assert data["GRPC_MAX_CONNECTION_AGE_MS"] == "1800000"
    assert data["GRPC_MAX_MESSAGE_BYTES"] == "4194304"
    assert data["GRPC_KEEPALIVE_TIME_MS"] == "30000"
    assert data["CRYPTO_AUTH"] == "off"
    assert data["GRPC_EXPERIMENTS"] == "ph2_server"


def test_unset_grpc_options_leave_app_defaults(helm: Helm) -> None:
    data = config_data(helm.render())
    assert not set(data) & (GRPC_OPTION_VARS | {"CRYPTO_DRAIN_WINDOW", "CENTRIFUGO_API_URL", "GRPC_EXPERIMENTS"})


def test_grpc_experiments_must_be_a_list_of_names(helm: Helm) -> None:
    proc = helm.run(*helm.template_cmd(sets=("grpc.experiments=ph2_server;true",)), check=False)
    assert proc.returncode != 0 and "experiments" in proc.stderr


def test_drain_window(helm: Helm) -> None:
    assert config_data(helm.render(values=(CI_VALUES,)))["CRYPTO_DRAIN_WINDOW"] == "7.5"
    assert config_data(helm.render(sets=("drain.windowSeconds=3",)))["CRYPTO_DRAIN_WINDOW"] == "3"
    proc = helm.run(*helm.template_cmd(sets=("drain.windowSeconds=20",)), check=False)
    assert proc.returncode != 0
    assert "drain.windowSeconds must be shorter than drain.graceSeconds" in proc.stderr


def test_secrets_come_only_from_the_existing_secret(docs: list[dict[str, Any]], values: dict[str, Any]) -> None:
    assert not [d for d in docs if d["kind"] == "Secret"], "the chart must not create Secrets"
    assert not set(config_data(docs)) & set(SECRET_VARS)
    secret = values["secret"]
    for name, spec in pod_specs(docs):
        for container in spec["containers"]:
            env = env_of(container)
            for var, entry in env.items():
                if var in SECRET_VARS:
                    assert "value" not in entry, f"{name}: {var} inlined"
                    ref = entry["valueFrom"]["secretKeyRef"]
                    assert ref["name"] == secret["name"]
                    assert ref["key"] == secret["keys"][var]
                    assert ref.get("optional", False) == (var in secret["optional"])
            for source in container.get("envFrom", []):
                assert "secretRef" not in source or source["secretRef"]["name"] == secret["name"]


def test_server_pods_get_all_secrets(docs: list[dict[str, Any]]) -> None:
    assert set(SECRET_VARS) <= set(env_of(grpc_container(docs)))
    (migrate,) = find(docs, "Job")["spec"]["template"]["spec"]["containers"]
    assert set(SECRET_VARS) <= set(env_of(migrate))


def test_no_secret_value_reaches_any_manifest(helm: Helm) -> None:
    """Secret-looking values cannot be passed in: the schema has no place for them."""
    sentinel = "s3cr3t-sentinel-value"
    attempts = [
        f"secret.value={sentinel}",
        f"secret.data.DATABASE_URL={sentinel}",
        f"extraEnv[0].name=DATABASE_URL,extraEnv[0].value={sentinel}",
        f"extraEnv[0].name=DJANGO_SECRET_KEY,extraEnv[0].value={sentinel}",
        f"config.redisUrl={sentinel}",
    ]
    for attempt in attempts:
        proc = helm.run(*helm.template_cmd(sets=(attempt,)), check=False)
        assert proc.returncode != 0, attempt
        assert sentinel not in proc.stdout
    rendered = helm.template(values=(CI_VALUES,))
    for scheme in ("postgres://", "postgresql://", "redis://", "rediss://"):
        assert scheme not in rendered


def test_config_change_rolls_the_pods(helm: Helm) -> None:
    def checksum(*sets: str) -> str:
        docs = helm.render(sets=sets)
        annotations = grpc_deployment(docs)["spec"]["template"]["metadata"]["annotations"]
        return annotations["checksum/config"]

    base = checksum()
    assert len(base) == 64 and base == checksum()
    assert checksum("config.logFormat=text") != base
    assert checksum("drain.graceSeconds=30") != base


# --- services, disruption, scaling ---------------------------------------------


def test_grpc_service(docs: list[dict[str, Any]], values: dict[str, Any]) -> None:
    service = find(docs, "Service", RELEASE)
    assert service["spec"]["type"] == "ClusterIP"
    grpc_port = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
    assert grpc_port == {
        "name": "grpc",
        "port": values["service"]["port"],
        "targetPort": "grpc",
        "protocol": "TCP",
        "appProtocol": "grpc",
    }
    pod_labels = grpc_deployment(docs)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_headless_service_is_optional(helm: Helm) -> None:
    assert not [d for d in helm.render() if d["metadata"]["name"] == f"{RELEASE}-headless"]
    headless = find(helm.render(values=(CI_VALUES,)), "Service", f"{RELEASE}-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["ports"][0]["appProtocol"] == "grpc"


def test_pod_disruption_budget(docs: list[dict[str, Any]]) -> None:
    pdb = find(docs, "PodDisruptionBudget", RELEASE)
    assert pdb["spec"]["maxUnavailable"] == 1
    pod_labels = grpc_deployment(docs)["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_hpa_scales_down_slowly(helm: Helm) -> None:
    hpa = find(helm.render(values=(CI_VALUES,)), "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": RELEASE}
    down = hpa["spec"]["behavior"]["scaleDown"]
    assert down["stabilizationWindowSeconds"] >= 300
    assert down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 300}]
    assert not [d for d in helm.render() if d["kind"] == "HorizontalPodAutoscaler"]
    assert [m["type"] for m in hpa["spec"]["metrics"]] == ["Resource"]


def test_hpa_can_scale_on_active_streams_per_pod(helm: Helm) -> None:
    hpa = find(helm.render(values=(CI_VALUES,), sets=("autoscaling.activeStreamsPerPod=2000",)),
               "HorizontalPodAutoscaler")
    pods = [m["pods"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert pods == [{"metric": {"name": "crypto_active_streams"},
                     "target": {"type": "AverageValue", "averageValue": "2000"}}]


def test_topology_spread(docs: list[dict[str, Any]]) -> None:
    spec = grpc_deployment(docs)["spec"]["template"]["spec"]
    keys = {c["topologyKey"] for c in spec["topologySpreadConstraints"]}
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}


# --- hooks, metrics, web tier, network policy -----------------------------------


def test_migrations_run_as_pre_install_and_pre_upgrade_hook(docs: list[dict[str, Any]]) -> None:
    job = find(docs, "Job", f"{RELEASE}-migrate")
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "manage.py", "migrate", "--noinput"]
    # A pre-install hook runs before the ConfigMap exists: config is inline.
    assert "envFrom" not in container
    assert GRPC_CONFIG_VARS <= set(env_of(container))


def test_helm_test_checks_grpc_health(docs: list[dict[str, Any]], values: dict[str, Any]) -> None:
    pod = find(docs, "Pod", f"{RELEASE}-test-grpc-health")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    assert container["command"][:2] == ["python", "-c"]
    assert "grpc_health.v1" in container["command"][2]
    assert container["command"][3:] == [f"{RELEASE}:{values['service']['port']}", "readiness"]


def test_helm_test_script_is_valid_python(docs: list[dict[str, Any]]) -> None:
    (container,) = find(docs, "Pod", f"{RELEASE}-test-grpc-health")["spec"]["containers"]
    compile(container["command"][2], "helm-test", "exec")


def test_helm_test_script_against_a_health_server(helm: Helm) -> None:
    """Run the helm test pod's script here, against a local grpc.health.v1 server."""
    from concurrent import futures

    grpc = pytest.importorskip("grpc")
    health_mod = pytest.importorskip("grpc_health.v1.health")
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    (container,) = find(helm.render(), "Pod", f"{RELEASE}-test-grpc-health")["spec"]["containers"]
    script = container["command"][2]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health_mod.HealthServicer()
    servicer.set("readiness", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("liveness", health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        def run(service: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-c", script, f"127.0.0.1:{port}", service],
                capture_output=True, text=True, timeout=60,
            )

        ok = run("readiness")
        assert ok.returncode == 0, ok.stderr
        assert "SERVING" in ok.stdout
        assert run("liveness").returncode == 1
        assert run("unknown-service").returncode != 0
    finally:
        server.stop(None)


def test_metrics_port_and_service_monitor(docs: list[dict[str, Any]], values: dict[str, Any]) -> None:
    port = values["metrics"]["port"]
    assert config_data(docs)["METRICS_PORT"] == str(port)
    assert {"name": "metrics", "containerPort": port, "protocol": "TCP"} in grpc_container(docs)["ports"]
    service_ports = {p["name"] for p in find(docs, "Service", RELEASE)["spec"]["ports"]}
    assert "metrics" in service_ports
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert len(monitors) == int(values["metrics"]["serviceMonitor"]["enabled"])
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
        assert monitor["spec"]["selector"]["matchLabels"].items() <= find(docs, "Service", RELEASE)["metadata"][
            "labels"
        ].items()


def test_metrics_off(helm: Helm) -> None:
    docs = helm.render(values=(CI_VALUES,), sets=("metrics.port=0",))
    assert config_data(docs)["METRICS_PORT"] == "0"
    assert [p["name"] for p in grpc_container(docs)["ports"]] == ["grpc"]
    assert [p["name"] for p in find(docs, "Service", RELEASE)["spec"]["ports"]] == ["grpc"]
    assert not [d for d in docs if d["kind"] == "ServiceMonitor"]


def test_web_tier(helm: Helm) -> None:
    assert not [d for d in helm.render() if d["metadata"]["name"] == f"{RELEASE}-web"]
    docs = helm.render(values=(CI_VALUES,))
    web = find(docs, "Deployment", f"{RELEASE}-web")
    (container,) = web["spec"]["template"]["spec"]["containers"]
    assert container["command"] == [
        "python", "-m", "uvicorn", "config.asgi:application", "--host", "0.0.0.0", "--port", "8000",
    ]
    assert env_of(container)["CRYPTO_GRPC_TARGET"]["value"] == f"{RELEASE}:50051"
    service = find(docs, "Service", f"{RELEASE}-web")
    assert service["spec"]["selector"].items() <= web["spec"]["template"]["metadata"]["labels"].items()
    # The two Deployments must not select each other's pods.
    grpc_selector = grpc_deployment(docs)["spec"]["selector"]["matchLabels"]
    assert not grpc_selector.items() <= web["spec"]["template"]["metadata"]["labels"].items()


def test_network_policy_admits_the_chart_clients(helm: Helm) -> None:
    docs = helm.render(values=(CI_VALUES,))
    policy = find(docs, "NetworkPolicy")
    grpc_rule = next(r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == "grpc")
    web_labels = find(docs, "Deployment", f"{RELEASE}-web")["spec"]["template"]["metadata"]["labels"]
    selectors = [p["podSelector"]["matchLabels"] for p in grpc_rule["from"] if set(p) == {"podSelector"}]
    assert any(sel.items() <= web_labels.items() for sel in selectors)


# --- values schema ----------------------------------------------------------------


# Keywords whose subschemas only add constraints to an object defined (and
# closed) elsewhere, e.g. "if mode is sentinel then masterName is required".
_CONDITIONAL_KEYWORDS = {"if", "then", "else", "allOf", "anyOf", "oneOf", "not"}


def _object_nodes(node: Any, path: str = "$") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        if node.get("type") == "object" or "properties" in node:
            found.append((path, node))
        for key, child in node.items():
            if key in _CONDITIONAL_KEYWORDS and isinstance(child, (dict, list)):
                continue
            found += _object_nodes(child, f"{path}.{key}")
    elif isinstance(node, list):
        for i, child in enumerate(node):
            found += _object_nodes(child, f"{path}[{i}]")
    return found


# Kubernetes objects passed through whole (containers, volumes, affinity terms): too large to
# restate here; the rendered objects are checked against the Kubernetes schemas
# (test_k8s_chart_extras.py) and by the API server.
_PASSED_THROUGH = {
    "$.definitions.kubernetesContainer",
    "$.definitions.kubernetesVolume",
    "$.definitions.kubernetesObject",
}


def test_schema_closes_every_object(values_schema: dict[str, Any]) -> None:
    """Objects with fixed keys reject unknown ones; free-form maps (labels,
    annotations, nodeSelector) accept string values only."""
    nodes = _object_nodes(values_schema)
    assert len(nodes) > 30
    passed_through = {path for path, _ in nodes if path in _PASSED_THROUGH}
    assert passed_through == _PASSED_THROUGH
    # global: whatever a parent chart shares; a subchart must accept it (helm/helm#10392).
    global_schema = values_schema["properties"]["global"]
    assert global_schema["type"] == "object" and set(global_schema) <= {"type", "description"}
    for path, node in nodes:
        if path == "$.properties.global":
            continue
        if path in _PASSED_THROUGH:
            assert "properties" not in node and (node.get("required") or node.get("minProperties")), path
            continue
        extra = node.get("additionalProperties")
        if "properties" in node:
            assert extra is False, f"{path} allows unknown keys"
        else:
            assert extra == {"type": "string"}, f"{path} is an open object"


@pytest.mark.parametrize(
    "setting",
    [
        "unknownTopLevel=1",
        "image.digest=sha256:0",
        "grpc.keepaliveMs=1",
        "probes.readiness.httpGet=x",
        "autoscaling.scaleDown.percent=10",
        "web.service.nodePort=30000",
        "metrics.serviceMonitor.namespace=x",
        "secret.keys.OTHER=x",
    ],
)
def test_schema_rejects_unknown_keys(helm: Helm, setting: str) -> None:
    proc = helm.run(*helm.template_cmd(sets=(setting,)), check=False)
    assert proc.returncode != 0
    assert "additional properties" in proc.stderr


@pytest.mark.parametrize(
    "setting",
    ["replicaCount=1", "grpc.port=0", "config.logFormat=xml", "drain.graceSeconds=0", "web.port=80"],
)
def test_schema_rejects_bad_values(helm: Helm, setting: str) -> None:
    assert helm.run(*helm.template_cmd(sets=(setting,)), check=False).returncode != 0


def test_values_file_matches_schema_keys(values_schema: dict[str, Any]) -> None:
    """Every top-level key of values.yaml is documented in the schema and vice versa."""
    import yaml

    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(defaults) == set(values_schema["properties"])
