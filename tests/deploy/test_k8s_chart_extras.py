"""The chart's extension points (issue #18): security contexts, extra env and
volumes, sidecars, scheduling, the web tier's Ingress/HTTPRoute and PDB, the
Secret checksum, and the chart as a subchart. Every check renders the real
chart with helm and validates the objects against the Kubernetes schemas."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from .k8s_helpers import (
    CHART,
    CI_VALUES,
    K8S_VERSIONS,
    RELEASE,
    Helm,
    SecretsAPI,
    env_of,
    find,
    load_docs,
    pod_specs,
)

EXTRAS = CHART / "ci" / "extras-values.yaml"
CRD_GROUPS = {"monitoring.coreos.com", "gateway.networking.k8s.io"}
APP_CONTAINERS = {RELEASE: "grpc", f"{RELEASE}-web": "web", f"{RELEASE}-migrate": "migrate"}

# Today's (and the default) restricted profile, exactly.
RESTRICTED_POD = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "privileged": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def validate(docs: list[dict[str, Any]]) -> int:
    """Strict Kubernetes schema validation of the built-in kinds; returns how many were checked."""
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate (dev dependency) ships the Kubernetes JSON schemas"
    )
    checked = 0
    for doc in docs:
        if doc["apiVersion"].split("/")[0] in CRD_GROUPS:
            continue  # no schema there; these tests check their fields one by one
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
        checked += 1
    return checked


def all_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


SCHEMA_ERROR = "don't meet the specifications of the schema"


def rejected(helm: Helm, *sets: str, values: tuple = (), by_schema: bool = True) -> str:
    """helm template fails on the settings (over the chart defaults or `values`)."""
    proc = helm.run(*helm.template_cmd(values=values, sets=sets), check=False)
    assert proc.returncode != 0, f"accepted: {sets}"
    if by_schema:
        assert SCHEMA_ERROR in proc.stderr, proc.stderr
    return proc.stderr


# --- security contexts -----------------------------------------------------------


@pytest.mark.parametrize("value_files", [(), (CI_VALUES,)], ids=["default", "ci"])
def test_defaults_are_exactly_todays_restricted_profile(helm: Helm, value_files: tuple) -> None:
    specs = dict(pod_specs(helm.render(values=value_files)))
    assert {RELEASE, f"{RELEASE}-migrate", f"{RELEASE}-test-grpc-health"} <= set(specs)
    for name, spec in specs.items():
        assert spec["securityContext"] == RESTRICTED_POD, name
        for container in all_containers(spec):
            assert container["securityContext"] == RESTRICTED_CONTAINER, f"{name}/{container['name']}"


def test_security_contexts_are_overridable(helm: Helm) -> None:
    docs = helm.render(
        values=(CI_VALUES,),
        sets=(
            "podSecurityContext.fsGroupChangePolicy=OnRootMismatch",
            "podSecurityContext.fsGroup=null",
            "containerSecurityContext.readOnlyRootFilesystem=false",
            "containerSecurityContext.capabilities.add={NET_BIND_SERVICE}",
        ),
    )
    validate(docs)
    specs = dict(pod_specs(docs))
    assert len(specs) == 4
    for name, spec in specs.items():
        assert spec["securityContext"] == {
            **{k: v for k, v in RESTRICTED_POD.items() if k != "fsGroup"},
            "fsGroupChangePolicy": "OnRootMismatch",
        }, name
        for container in spec["containers"]:
            assert container["securityContext"] == {
                **RESTRICTED_CONTAINER,
                "readOnlyRootFilesystem": False,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
            }, name


@pytest.mark.parametrize(
    "setting",
    [
        "containerSecurityContext.privilegd=true",
        "containerSecurityContext.runAsUser=-1",
        "podSecurityContext.seccompProfile.type=Other",
        "podSecurityContext.readOnlyRootFilesystem=true",  # a container field
    ],
)
def test_schema_checks_security_contexts(helm: Helm, setting: str) -> None:
    rejected(helm, setting)


# --- extraEnv, envFrom, extra volumes, sidecars, initContainers -------------------


@pytest.fixture(scope="module")
def extras() -> dict[str, Any]:
    return yaml.safe_load(EXTRAS.read_text())


@pytest.fixture(scope="module")
def extras_docs(helm: Helm) -> list[dict[str, Any]]:
    return helm.render(values=(EXTRAS,))


def app_container(spec: dict[str, Any], name: str) -> dict[str, Any]:
    (container,) = [c for c in spec["containers"] if c["name"] == name]
    return container


def test_extras_lint_and_validate(helm: Helm, extras_docs: list[dict[str, Any]]) -> None:
    assert "0 chart(s) failed" in helm.run("lint", "--strict", str(CHART), "-f", str(EXTRAS)).stdout
    assert validate(extras_docs) >= 8


def test_extra_env_and_env_from_reach_every_app_container(
    extras_docs: list[dict[str, Any]], extras: dict[str, Any]
) -> None:
    specs = dict(pod_specs(extras_docs))
    for pod, name in APP_CONTAINERS.items():
        container = app_container(specs[pod], name)
        env = env_of(container)
        for entry in extras["extraEnv"]:
            assert env[entry["name"]] == entry, f"{pod}: {entry['name']}"
        # The chart's own variables are still there, secrets by reference.
        assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "crypto-grpc"
        chart_sources = [] if name == "migrate" else [{"configMapRef": {"name": RELEASE}}]
        assert container["envFrom"] == chart_sources + extras["envFrom"], pod
    assert env_of(app_container(specs[RELEASE], "grpc"))["SENTRY_DSN"]["valueFrom"] == {
        "secretKeyRef": {"name": "sentry", "key": "dsn"}
    }
    # The helm test pod is not the app: it gets neither.
    (test_container,) = specs[f"{RELEASE}-test-grpc-health"]["containers"]
    assert "env" not in test_container and "envFrom" not in test_container


@pytest.mark.parametrize(
    "setting",
    [
        "extraEnv[0].name=DATABASE_URL,extraEnv[0].valueFrom.secretKeyRef.name=other,"
        "extraEnv[0].valueFrom.secretKeyRef.key=url",
        "extraEnv[0].name=REDIS_PASSWORD,extraEnv[0].valueFrom.secretKeyRef.name=other,"
        "extraEnv[0].valueFrom.secretKeyRef.key=pw",
        "extraEnv[0].name=X,extraEnv[0].value=1,extraEnv[0].valueFrom.fieldRef.fieldPath=metadata.name",
        "extraEnv[0].name=X,extraEnv[0].valueFrom.fieldRef.fieldPath=a,"
        "extraEnv[0].valueFrom.configMapKeyRef.name=b,extraEnv[0].valueFrom.configMapKeyRef.key=c",
        "extraEnv[0].name=X,extraEnv[0].valueFrom.secretKeyRef.name=s",
        "envFrom[0].secretRef.name=a,envFrom[0].configMapRef.name=b",
        "envFrom[0].prefix=X_",
        "extraVolumes[0].name=tmp,extraVolumes[0].emptyDir.medium=Memory",
        "extraVolumeMounts[0].name=v,extraVolumeMounts[0].mountPath=/tmp",
        "extraVolumeMounts[0].name=v,extraVolumeMounts[0].mountPath=relative",
        "sidecars[0].name=grpc,sidecars[0].image=x",
        "sidecars[0].name=no-image",
        "initContainers[0].image=no-name",
    ],
)
def test_schema_checks_the_extension_points(helm: Helm, setting: str) -> None:
    rejected(helm, setting)


def test_extra_volumes_and_mounts(extras_docs: list[dict[str, Any]], extras: dict[str, Any]) -> None:
    specs = dict(pod_specs(extras_docs))
    for pod, name in APP_CONTAINERS.items():
        spec = specs[pod]
        assert [v["name"] for v in spec["volumes"]] == ["tmp", "logs", "ca-bundle", "proxy-socket"], pod
        assert spec["volumes"][2:] == extras["extraVolumes"]
        mounts = app_container(spec, name)["volumeMounts"]
        assert [m["mountPath"] for m in mounts[:2]] == ["/tmp", "/app/logs"]
        assert mounts[2:] == extras["extraVolumeMounts"], pod


def test_sidecars_and_init_containers(extras_docs: list[dict[str, Any]], extras: dict[str, Any]) -> None:
    specs = dict(pod_specs(extras_docs))
    for pod, name in APP_CONTAINERS.items():
        spec = specs[pod]
        expected = [name] if name == "migrate" else [name, "log-shipper"]  # a sidecar would block the Job
        assert [c["name"] for c in spec["containers"]] == expected, pod
        assert [c["name"] for c in spec["initContainers"]] == ["cloud-sql-proxy", "wait"], pod
        proxy, wait = spec["initContainers"]
        # Without a securityContext of its own, an extra container gets the chart's.
        assert proxy["securityContext"] == RESTRICTED_CONTAINER
        assert proxy["restartPolicy"] == "Always"
        assert wait["securityContext"] == extras["initContainers"][1]["securityContext"]
        if name != "migrate":
            shipper = spec["containers"][1]
            assert shipper["securityContext"] == RESTRICTED_CONTAINER
            assert shipper["args"] == extras["sidecars"][0]["args"]


def test_extension_points_default_to_nothing(helm: Helm) -> None:
    for name, spec in pod_specs(helm.render(values=(CI_VALUES,))):
        assert "initContainers" not in spec, name
        assert len(spec["containers"]) == 1, name
        assert {v["name"] for v in spec["volumes"]} <= {"tmp", "logs"}, name


# --- scheduling -------------------------------------------------------------------


def test_affinity_and_topology_spread(extras_docs: list[dict[str, Any]], extras: dict[str, Any]) -> None:
    specs = dict(pod_specs(extras_docs))
    assert specs[RELEASE]["affinity"] == extras["affinity"]
    assert specs[f"{RELEASE}-migrate"]["affinity"] == extras["affinity"]
    assert specs[f"{RELEASE}-web"]["affinity"] == extras["web"]["affinity"]  # web's own wins
    # Set constraints replace the generated zone + hostname pair.
    assert specs[RELEASE]["topologySpreadConstraints"] == extras["topologySpreadConstraints"]
    assert specs[f"{RELEASE}-web"]["topologySpreadConstraints"] == extras["web"]["topologySpreadConstraints"]


def test_scheduling_defaults(helm: Helm) -> None:
    specs = dict(pod_specs(helm.render(values=(CI_VALUES,))))
    for name, spec in specs.items():
        assert "affinity" not in spec, name
    assert "topologySpreadConstraints" not in specs[f"{RELEASE}-web"]
    generated = specs[RELEASE]["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in generated] == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    # web.affinity empty: the web pods follow the top-level affinity.
    affinity = "affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]"
    docs = helm.render(
        values=(CI_VALUES,),
        sets=(
            f"{affinity}.weight=1",
            f"{affinity}.preference.matchExpressions[0].key=pool",
            f"{affinity}.preference.matchExpressions[0].operator=Exists",
        ),
    )
    validate(docs)
    affinities = {name: spec.get("affinity", {}) for name, spec in pod_specs(docs) if "test" not in name}
    assert len(affinities) == 3 and len({repr(a) for a in affinities.values()}) == 1
    assert affinities[RELEASE]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"] == 1


@pytest.mark.parametrize(
    "setting",
    [
        "affinity.nodeAfinity.x=1",
        "topologySpreadConstraints[0].topologyKey=zone",
        "web.affinity.podAntiAffinty.x=1",
    ],
)
def test_schema_checks_scheduling(helm: Helm, setting: str) -> None:
    rejected(helm, setting)


# --- web tier: PodDisruptionBudget ------------------------------------------------


def test_web_pod_disruption_budget(helm: Helm) -> None:
    assert not [d for d in helm.render() if d["kind"] == "PodDisruptionBudget" and "web" in d["metadata"]["name"]]
    docs = helm.render(values=(CI_VALUES,))
    validate(docs)
    pdb = find(docs, "PodDisruptionBudget", f"{RELEASE}-web")
    assert pdb["spec"]["maxUnavailable"] == 1
    web_labels = find(docs, "Deployment", f"{RELEASE}-web")["spec"]["template"]["metadata"]["labels"]
    grpc_labels = find(docs, "Deployment", RELEASE)["spec"]["template"]["metadata"]["labels"]
    selector = pdb["spec"]["selector"]["matchLabels"]
    assert selector.items() <= web_labels.items()
    assert not selector.items() <= grpc_labels.items()  # the two budgets do not overlap
    grpc_selector = find(docs, "PodDisruptionBudget", RELEASE)["spec"]["selector"]["matchLabels"]
    assert not grpc_selector.items() <= web_labels.items()
    off = helm.render(values=(CI_VALUES,), sets=("web.podDisruptionBudget.enabled=false",))
    assert [d["metadata"]["name"] for d in off if d["kind"] == "PodDisruptionBudget"] == [RELEASE]
    two = helm.render(values=(CI_VALUES,), sets=("web.podDisruptionBudget.maxUnavailable=2",))
    assert find(two, "PodDisruptionBudget", f"{RELEASE}-web")["spec"]["maxUnavailable"] == 2


# --- web tier: Ingress and HTTPRoute -------------------------------------------------


def allowed_hosts(docs: list[dict[str, Any]]) -> list[str]:
    web = app_container(find(docs, "Deployment", f"{RELEASE}-web")["spec"]["template"]["spec"], "web")
    return env_of(web)["DJANGO_ALLOWED_HOSTS"]["value"].split(",")


def test_no_ingress_or_route_by_default(helm: Helm) -> None:
    for docs in (helm.render(), helm.render(sets=("web.enabled=true",))):
        assert not [d for d in docs if d["kind"] in {"Ingress", "HTTPRoute"}]


def test_web_ingress(helm: Helm) -> None:
    docs = helm.render(values=(CI_VALUES,))
    validate(docs)
    ingress = find(docs, "Ingress", f"{RELEASE}-web")
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    assert ingress["metadata"]["labels"]["example.com/exposure"] == "public"
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [
        {"secretName": "crypto-example-com-tls", "hosts": ["crypto.example.com", "*.admin.example.com"]}
    ]
    backend = {"service": {"name": f"{RELEASE}-web", "port": {"name": "http"}}}
    assert spec["rules"] == [
        {"host": "crypto.example.com",
         "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}},
        {"host": "*.admin.example.com",
         "http": {"paths": [{"path": "/admin", "pathType": "Prefix", "backend": backend},
                            {"path": "/api/crypto", "pathType": "ImplementationSpecific", "backend": backend}]}},
    ]
    # The backend port name is the web Service's.
    service = find(docs, "Service", f"{RELEASE}-web")
    assert "http" in {p["name"] for p in service["spec"]["ports"]}
    # Django answers the routed hosts (a wildcard in Django's .domain form).
    assert {"crypto.example.com", ".admin.example.com"} <= set(allowed_hosts(docs))
    bare = find(helm.render(values=(CI_VALUES,), sets=("web.ingress.className=", "web.ingress.tls=null")),
                "Ingress", f"{RELEASE}-web")
    assert "ingressClassName" not in bare["spec"] and "tls" not in bare["spec"]


def test_web_http_route(helm: Helm, extras_docs: list[dict[str, Any]], extras: dict[str, Any]) -> None:
    route = find(extras_docs, "HTTPRoute", f"{RELEASE}-web")
    values = extras["web"]["httpRoute"]
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["metadata"]["annotations"] == values["annotations"]
    assert route["metadata"]["labels"]["example.com/exposure"] == "public"
    assert route["spec"] == {
        "parentRefs": values["parentRefs"],
        "hostnames": ["crypto.example.com", "*.crypto.example.com"],
        "rules": [{"backendRefs": [{"name": f"{RELEASE}-web", "port": 80}], "matches": values["matches"]}],
    }
    service = find(extras_docs, "Service", f"{RELEASE}-web")
    assert [p["port"] for p in service["spec"]["ports"]] == [80]
    hosts = allowed_hosts(extras_docs)
    assert {"crypto.example.com", ".crypto.example.com", "admin.internal.example.com"} <= set(hosts)
    assert len(hosts) == len(set(hosts))
    # Default match: every path; the backend follows web.service.port.
    docs = helm.render(sets=(
        "web.enabled=true", "web.httpRoute.enabled=true", "web.httpRoute.parentRefs[0].name=gw",
        "web.httpRoute.hostnames={crypto.example.com}", "web.service.port=8080",
    ))
    (rule,) = find(docs, "HTTPRoute")["spec"]["rules"]
    assert rule == {"backendRefs": [{"name": f"{RELEASE}-web", "port": 8080}],
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("web.enabled=false",), "web.ingress.enabled needs web.enabled"),
        (("web.ingress.hosts=null",), "web.ingress.hosts must list at least one host"),
        (("web.httpRoute.enabled=true", "web.httpRoute.hostnames={a.example.com}"),
         "web.httpRoute.parentRefs must name"),
        (("web.httpRoute.enabled=true", "web.httpRoute.parentRefs[0].name=gw"),
         "web.httpRoute.hostnames must list"),
    ],
)
def test_ingress_and_route_need_their_settings(helm: Helm, sets: tuple[str, ...], message: str) -> None:
    assert message in rejected(helm, *sets, values=(CI_VALUES,), by_schema=False)


@pytest.mark.parametrize(
    "setting",
    [
        "web.ingress.hosts[0].host=https://crypto.example.com",
        "web.ingress.hosts[0].host=Crypto.example.com",
        "web.ingress.hosts[0].host=a.example.com,web.ingress.hosts[0].paths[0].path=admin",
        "web.ingress.hosts[0].host=a.example.com,web.ingress.hosts[0].paths[0].path=/,"
        "web.ingress.hosts[0].paths[0].pathType=Regex",
        "web.ingress.tls[0].secretName=x",
        "web.ingress.class=nginx",
        "web.httpRoute.parentRefs[0].namespace=x",
        "web.httpRoute.matches[0].path.type=Prefix",
        "web.httpRoute.hostnames={crypto.example.com:443}",
        "web.ingress.labels.app\\.kubernetes\\.io/component=x",  # would duplicate the chart's label
    ],
)
def test_schema_checks_ingress_and_route(helm: Helm, setting: str) -> None:
    rejected(helm, setting)


# --- as a subchart -------------------------------------------------------------------


def make_parent(root: Path, child_values: dict[str, Any], global_values: dict[str, Any] | None) -> Path:
    """A throwaway umbrella chart with this chart in charts/ and its own template."""
    parent = root / "platform"
    shutil.copytree(CHART, parent / "charts" / "crypto-grpc")
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    (parent / "Chart.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v2",
        "name": "platform",
        "version": "1.0.0",
        "dependencies": [{"name": "crypto-grpc", "version": chart["version"],
                          "repository": "file://charts/crypto-grpc"}],
    }))
    values: dict[str, Any] = {"crypto-grpc": child_values}
    if global_values is not None:
        values["global"] = global_values
    (parent / "values.yaml").write_text(yaml.safe_dump(values))
    (parent / "templates").mkdir()
    (parent / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-platform\n"
        "data:\n  registry: {{ (.Values.global | default dict).imageRegistry | default \"none\" | quote }}\n"
    )
    return parent


GLOBALS = {
    "imageRegistry": "registry.example.com",
    "imagePullSecrets": [{"name": "registry-credentials"}],
    "storageClass": "fast",
    "labels": {"example.com/platform": "trading"},
}


@pytest.mark.parametrize("global_values", [GLOBALS, {}, None], ids=["global-set", "global-empty", "no-global"])
@pytest.mark.parametrize("child", ["ci", "extras"])
def test_renders_and_validates_as_a_subchart(
    helm: Helm, tmp_path: Path, child: str, global_values: dict[str, Any] | None
) -> None:
    child_values = yaml.safe_load({"ci": CI_VALUES, "extras": EXTRAS}[child].read_text())
    parent = make_parent(tmp_path, child_values, global_values)
    lint = helm.run("lint", "--strict", str(parent), check=False)
    assert lint.returncode == 0 and "0 chart(s) failed" in lint.stdout, lint.stdout + lint.stderr
    docs = helm.render_chart(parent, "platform", "--namespace", "trading")
    assert validate(docs) >= 10
    name = "platform-crypto-grpc"
    grpc = find(docs, "Deployment", name)
    web = find(docs, "Deployment", f"{name}-web")
    find(docs, "Job", f"{name}-migrate")
    find(docs, "PodDisruptionBudget", f"{name}-web")
    registry = "registry.example.com" if global_values else "none"
    assert find(docs, "ConfigMap", "platform-platform")["data"] == {"registry": registry}
    # The subchart's own names and values hold: the web tier targets this release's gRPC Service.
    web_env = env_of(app_container(web["spec"]["template"]["spec"], "web"))
    assert web_env["CRYPTO_GRPC_TARGET"]["value"] == f"{name}:{child_values.get('service', {}).get('port', 50051)}"
    assert "platform-crypto-grpc-web.trading.svc" in web_env["DJANGO_ALLOWED_HOSTS"]["value"].split(",")
    assert grpc["spec"]["template"]["spec"]["securityContext"] == RESTRICTED_POD
    if child == "ci":
        (path, *_) = find(docs, "Ingress", f"{name}-web")["spec"]["rules"][0]["http"]["paths"]
        assert path["backend"]["service"]["name"] == f"{name}-web"
    else:
        (rule,) = find(docs, "HTTPRoute", f"{name}-web")["spec"]["rules"]
        assert rule["backendRefs"][0]["name"] == f"{name}-web"


def test_subchart_values_are_still_checked(helm: Helm, tmp_path: Path) -> None:
    """Accepting global does not open the rest: a typo under the subchart's key still fails."""
    parent = make_parent(tmp_path, {"web": {"enabeld": True}}, GLOBALS)
    proc = helm.run("template", "platform", str(parent), check=False)
    assert proc.returncode != 0 and "enabeld" in proc.stderr


# --- checksum/secret: a rotated Secret rolls the pods -------------------------------

NAMESPACE = "trading"


@pytest.fixture
def cluster(helm: Helm, tmp_path: Path) -> Iterator[tuple[SecretsAPI, Helm]]:
    """The stand-in API server and a helm pointed at it (lookup works, nothing is written)."""
    with SecretsAPI() as api:
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig", NAMESPACE)
        yield api, Helm(helm.bin, {**helm.env, "KUBECONFIG": str(kubeconfig)})


def secret_checksums(cluster_helm: Helm, *sets: str, values: tuple = ()) -> dict[str, str | None]:
    """checksum/secret of each Deployment's pod template, rendered with lookup against the cluster."""
    args = [*cluster_helm.template_cmd(values=values, sets=sets),
            "--dry-run=server", "--disable-openapi-validation", "--namespace", NAMESPACE]
    docs = load_docs(cluster_helm.run(*args).stdout)
    assert not [d for d in docs if d["kind"] == "Secret"]
    return {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"].get("checksum/secret")
        for d in docs if d["kind"] == "Deployment"
    }


def test_a_secret_change_changes_the_checksum(cluster: tuple[SecretsAPI, Helm]) -> None:
    api, helm = cluster
    api.put_secret(NAMESPACE, "crypto-grpc", {"DATABASE_URL": "postgresql://a", "DJANGO_SECRET_KEY": "k1"})
    first = secret_checksums(helm, "web.enabled=true")
    assert set(first) == {RELEASE, f"{RELEASE}-web"}
    base = first[RELEASE]
    assert base is not None and len(base) == 64 and first[f"{RELEASE}-web"] == base
    assert f"/api/v1/namespaces/{NAMESPACE}/secrets/crypto-grpc" in api.requests
    assert secret_checksums(helm, "web.enabled=true")[RELEASE] == base  # stable: no needless rollout
    api.put_secret(NAMESPACE, "crypto-grpc", {"DATABASE_URL": "postgresql://a", "DJANGO_SECRET_KEY": "k2"})
    rotated = secret_checksums(helm, "web.enabled=true")
    assert rotated[RELEASE] != base and rotated[f"{RELEASE}-web"] == rotated[RELEASE]
    assert not [r for r in api.requests if not r.startswith("/")], "helm wrote to the cluster"


def test_checksum_covers_every_secret_the_pods_read(cluster: tuple[SecretsAPI, Helm]) -> None:
    api, helm = cluster
    api.put_secret(NAMESPACE, "crypto-grpc", {"DATABASE_URL": "postgresql://a"})
    api.put_secret(NAMESPACE, "redis-auth", {"password": "p1"})
    api.put_secret(NAMESPACE, "sentry", {"dsn": "https://d1"})
    api.put_secret(NAMESPACE, "crypto-grpc-extra", {"A": "1"})
    redis = ("redis.existingSecret=redis-auth", "redis.existingSecretPasswordKey=password")

    def checksum() -> str | None:
        return secret_checksums(helm, *redis, values=(EXTRAS,))[RELEASE]

    seen = {checksum()}
    for name, data in [("redis-auth", {"password": "p2"}), ("sentry", {"dsn": "https://d2"}),
                       ("crypto-grpc-extra", {"A": "2"}), ("crypto-grpc", {"DATABASE_URL": "postgresql://b"})]:
        api.put_secret(NAMESPACE, name, data)
        seen.add(checksum())
    assert None not in seen and len(seen) == 5, "each Secret's change must change the checksum"


def test_no_checksum_without_a_secret_or_when_off(cluster: tuple[SecretsAPI, Helm], helm: Helm) -> None:
    api, cluster_helm = cluster
    # Not there yet (created after the chart): nothing to hash, no annotation.
    assert secret_checksums(cluster_helm) == {RELEASE: None}
    api.put_secret(NAMESPACE, "crypto-grpc", {"DATABASE_URL": "postgresql://a"})
    assert secret_checksums(cluster_helm)[RELEASE] is not None
    api.requests.clear()
    assert secret_checksums(cluster_helm, "secret.checksum=false") == {RELEASE: None}
    assert not [r for r in api.requests if "/secrets/" in r], "secret.checksum=false must not look up"
    # Offline (helm template, GitOps renders, deploy/k8s/manifests): no lookup, no annotation.
    for doc in helm.render(values=(CI_VALUES,)):
        if doc["kind"] == "Deployment":
            assert "checksum/secret" not in doc["spec"]["template"]["metadata"]["annotations"]


def test_the_checksum_reveals_no_secret_value(cluster: tuple[SecretsAPI, Helm]) -> None:
    api, helm = cluster
    sentinel = "s3cr3t-sentinel-value"
    api.put_secret(NAMESPACE, "crypto-grpc", {"DJANGO_SECRET_KEY": sentinel})
    proc = helm.run(*helm.template_cmd(), "--dry-run=server", "--disable-openapi-validation", "-n", NAMESPACE)
    assert "checksum/secret" in proc.stdout
    assert sentinel not in proc.stdout
    assert base64.b64encode(sentinel.encode()).decode() not in proc.stdout
