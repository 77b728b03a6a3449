"""The chart's Redis modes: REDIS_URL built from redis.* (single, Sentinel, Cluster) or read whole from the Secret."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

import pytest

from .k8s_helpers import CHART, K8S_VERSIONS, RELEASE, ROOT, Helm, env_of, find, pod_specs

CI_DIR = CHART / "ci"
SINGLE = CI_DIR / "redis-single-values.yaml"
SENTINEL = CI_DIR / "redis-sentinel-values.yaml"
CLUSTER = CI_DIR / "redis-cluster-values.yaml"
MODE_FILES = {"single": SINGLE, "sentinel": SENTINEL, "cluster": CLUSTER}

# What each ci/redis-*-values.yaml must render into every pod that talks to Redis.
EXPECTED: dict[str, dict[str, Any]] = {
    "single": {
        "url": "redis://crypto@redis-master.redis.svc.cluster.local:6379/3",
        "passwords": {"REDIS_PASSWORD": ("redis-auth", "redis-password")},
    },
    "sentinel": {
        "url": "rediss+sentinel://redis-node-0.redis-headless.redis.svc.cluster.local:26379,"
               "redis-node-1.redis-headless.redis.svc.cluster.local:26379,"
               "redis-node-2.redis-headless.redis.svc.cluster.local:26379/mymaster/1",
        "passwords": {
            "REDIS_PASSWORD": ("crypto-grpc", "redis-password"),
            "REDIS_SENTINEL_PASSWORD": ("crypto-grpc", "redis-sentinel-password"),
        },
    },
    "cluster": {
        "url": "redis+cluster://redis-cluster-0.redis-cluster-headless.redis.svc.cluster.local:6379,"
               "redis-cluster-1.redis-cluster-headless.redis.svc.cluster.local:6379,[fd00::12]:6379",
        "passwords": {"REDIS_PASSWORD": ("redis-cluster-auth", "password")},
    },
}
REDIS_VARS = ("REDIS_URL", "REDIS_PASSWORD", "REDIS_SENTINEL_PASSWORD")
# Every object that runs the app (the helm test pod only calls the health service).
APP_PODS = (RELEASE, f"{RELEASE}-migrate", f"{RELEASE}-web")


def app_containers(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {}
    for name, spec in pod_specs(docs):
        if name in APP_PODS:
            (container,) = spec["containers"]
            found[name] = container
    assert set(found) == set(APP_PODS), f"missing app pods: {set(APP_PODS) - set(found)}"
    return found


def redis_env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    names = [e["name"] for e in container["env"]]
    for var in REDIS_VARS:
        assert names.count(var) <= 1, f"{var} set {names.count(var)} times"
    return {k: v for k, v in env_of(container).items() if k in REDIS_VARS}


def render_mode(helm: Helm, mode: str, *sets: str) -> list[dict[str, Any]]:
    return helm.render(values=(MODE_FILES[mode],), sets=("web.enabled=true", *sets))


def built_url(helm: Helm, *sets: str) -> str:
    container = app_containers(helm.render(sets=("web.enabled=true", *sets)))[RELEASE]
    entry = redis_env(container)["REDIS_URL"]
    assert set(entry) == {"name", "value"}, entry
    return entry["value"]


def template_error(helm: Helm, *sets: str) -> str:
    proc = helm.run(*helm.template_cmd(sets=sets), check=False)
    assert proc.returncode != 0, f"accepted: {sets}"
    assert "kind: Deployment" not in proc.stdout
    return proc.stderr


# --- each mode, from its ci values file -------------------------------------------


@pytest.mark.parametrize("mode", sorted(MODE_FILES))
def test_helm_lint_redis_mode(helm: Helm, mode: str) -> None:
    proc = helm.run("lint", "--strict", str(CHART), "-f", str(MODE_FILES[mode]))
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("mode", sorted(MODE_FILES))
def test_redis_mode_builds_url_and_password_refs(helm: Helm, mode: str) -> None:
    expected = EXPECTED[mode]
    for name, container in app_containers(render_mode(helm, mode)).items():
        env = redis_env(container)
        assert env["REDIS_URL"] == {"name": "REDIS_URL", "value": expected["url"]}, name
        assert set(env) == {"REDIS_URL", *expected["passwords"]}, name
        for var, (secret, key) in expected["passwords"].items():
            assert env[var] == {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}, name


@pytest.mark.parametrize("mode", sorted(MODE_FILES))
def test_redis_mode_never_reads_redis_url_from_the_secret(helm: Helm, mode: str) -> None:
    """secret.keys.REDIS_URL is ignored once the chart builds the URL (sentinel and cluster files keep the key)."""
    docs = render_mode(helm, mode)
    assert not [d for d in docs if d["kind"] == "Secret"]
    assert "REDIS_URL" not in find(docs, "ConfigMap", RELEASE)["data"]
    for name, container in app_containers(docs).items():
        refs = [e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})]
        assert "REDIS_URL" not in refs and "redis-url" not in refs, name
        assert "DATABASE_URL" in refs, name  # the other secrets are still read


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
@pytest.mark.parametrize("mode", sorted(MODE_FILES))
def test_redis_mode_objects_match_kubernetes_schemas(helm: Helm, mode: str, k8s_version: str) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate (dev dependency) ships the Kubernetes JSON schemas"
    )
    validated = 0
    for doc in render_mode(helm, mode):
        kubernetes_validate.validate(doc, k8s_version, strict=True)
        validated += 1
    assert validated >= 6


def test_notes_show_the_built_url_and_password_keys(helm: Helm) -> None:
    proc = helm.run("install", RELEASE, str(CHART), "-f", str(SENTINEL), "--dry-run=client")
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert f"Redis (sentinel): REDIS_URL={EXPECTED['sentinel']['url']}" in notes
    assert "REDIS_PASSWORD<-redis-password REDIS_SENTINEL_PASSWORD<-redis-sentinel-password" in notes


# --- URL shapes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sets", "url"),
    [
        (("redis.mode=single", "redis.hosts={redis:6379}"), "redis://redis:6379/0"),
        (("redis.mode=single", "redis.hosts={[fd00::1]:6380}", "redis.tls=true", "redis.db=15"),
         "rediss://[fd00::1]:6380/15"),
        (("redis.mode=sentinel", "redis.hosts={s1:26379,s2:26379}", "redis.masterName=mymaster"),
         "redis+sentinel://s1:26379,s2:26379/mymaster/0"),
        (("redis.mode=sentinel", "redis.hosts={s1:26379}", "redis.masterName=m-1", "redis.tls=true",
          "redis.username=app", "redis.db=4"),
         "rediss+sentinel://app@s1:26379/m-1/4"),
        (("redis.mode=cluster", "redis.hosts={c1:6379,c2:6379,c3:6379}"), "redis+cluster://c1:6379,c2:6379,c3:6379"),
        (("redis.mode=cluster", "redis.hosts={c1:7000}", "redis.tls=true", "redis.username=app"),
         "rediss+cluster://app@c1:7000"),
    ],
)
def test_built_url_shapes(helm: Helm, sets: tuple[str, ...], url: str) -> None:
    assert built_url(helm, *sets) == url


def _app_url_parser() -> Any:
    """The app's REDIS_URL parser, loaded from its file (no Django setup needed); skip where it is absent."""
    path = ROOT / "apps" / "crypto" / "grpc" / "services" / "bus" / "redis_url.py"
    if not path.exists():
        pytest.skip(f"{path.relative_to(ROOT)} not in this checkout")
    spec = importlib.util.spec_from_file_location("_chart_test_redis_url", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("mode", sorted(MODE_FILES))
def test_built_urls_parse_as_the_app_reads_them(helm: Helm, mode: str) -> None:
    """The contract with the app: what the chart builds is what the bus parses, with the passwords from env."""
    parser = _app_url_parser()
    url = EXPECTED[mode]["url"]
    assert redis_env(app_containers(render_mode(helm, mode))[RELEASE])["REDIS_URL"]["value"] == url
    target = parser.parse_redis_url(url, password="pw", sentinel_password="spw")
    assert str(target.mode) == mode
    assert target.password == "pw"
    hosts = url.split("://", 1)[1].rpartition("@")[2].split("/", 1)[0]
    assert ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in target.nodes) == hosts
    if mode == "sentinel":
        assert (target.master_name, target.db, target.tls, target.sentinel_password) == ("mymaster", 1, True, "spw")
    elif mode == "single":
        assert (target.db, target.username, target.tls) == (3, "crypto", False)
    else:
        assert (target.db, target.tls) == (0, False)


# --- mode "url": the whole URL from the Secret (the default) -----------------------------


def test_url_mode_reads_redis_url_from_the_secret(helm: Helm) -> None:
    for name, container in app_containers(helm.render(sets=("web.enabled=true",))).items():
        env = redis_env(container)
        assert env == {"REDIS_URL": {"name": "REDIS_URL", "valueFrom": {
            "secretKeyRef": {"name": "crypto-grpc", "key": "REDIS_URL"}}}}, name


def test_url_mode_can_add_password_keys(helm: Helm) -> None:
    """REDIS_PASSWORD (URL without one) and REDIS_SENTINEL_PASSWORD (a redis+sentinel:// URL) work in mode url too."""
    docs = helm.render(sets=(
        "web.enabled=true", "secret.name=app-secrets", "secret.keys.REDIS_URL=redis-url",
        "redis.existingSecretPasswordKey=redis-password", "redis.existingSecretSentinelPasswordKey=sentinel-password",
    ))
    for name, container in app_containers(docs).items():
        env = redis_env(container)
        assert env["REDIS_URL"]["valueFrom"] == {"secretKeyRef": {"name": "app-secrets", "key": "redis-url"}}, name
        assert env["REDIS_PASSWORD"]["valueFrom"] == {
            "secretKeyRef": {"name": "app-secrets", "key": "redis-password"}}, name
        assert env["REDIS_SENTINEL_PASSWORD"]["valueFrom"] == {
            "secretKeyRef": {"name": "app-secrets", "key": "sentinel-password"}}, name


def test_redis_url_may_be_optional_in_url_mode(helm: Helm) -> None:
    """secret.optional still applies (an unset REDIS_URL means the single-replica in-process stand-in)."""
    container = app_containers(helm.render(sets=("web.enabled=true", "secret.optional={REDIS_URL}")))[RELEASE]
    assert redis_env(container)["REDIS_URL"]["valueFrom"]["secretKeyRef"]["optional"] is True


# --- values schema --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        # The mode's own needs.
        (("redis.mode=sentinel", "redis.hosts={s1:26379}"), "/redis/masterName"),
        (("redis.mode=sentinel", "redis.masterName=m"), "/redis/hosts"),
        (("redis.mode=single",), "/redis/hosts"),
        (("redis.mode=cluster", "redis.hosts={c1:6379}", "redis.db=1"), "/redis/db"),
        (("redis.mode=cluster", "redis.hosts={c1:6379}", "redis.masterName=m"), "/redis/masterName"),
        (("redis.mode=cluster", "redis.hosts={c1:6379}", "redis.existingSecretSentinelPasswordKey=k"),
         "/redis/existingSecretSentinelPasswordKey"),
        (("redis.mode=single", "redis.hosts={r1:6379,r2:6379}"), "/redis/hosts"),
        (("redis.mode=single", "redis.hosts={r1:6379}", "redis.masterName=m"), "/redis/masterName"),
        (("redis.mode=single", "redis.hosts={r1:6379}", "redis.existingSecretSentinelPasswordKey=k"),
         "/redis/existingSecretSentinelPasswordKey"),
        # Shapes.
        (("redis.mode=standalone",), "/redis/mode"),
        (("redis.mode=single", "redis.hosts={redis}"), "/redis/hosts/0"),
        (("redis.mode=single", "redis.hosts={redis://r1:6379}"), "/redis/hosts/0"),
        (("redis.mode=cluster", "redis.hosts={c1:6379,c1:6379}"), "/redis/hosts"),
        (("redis.mode=sentinel", "redis.hosts={s1:26379}", "redis.masterName=a/b"), "/redis/masterName"),
        (("redis.mode=single", "redis.hosts={r1:6379}", "redis.username=a:b"), "/redis/username"),
        (("redis.mode=single", "redis.hosts={r1:6379}", "redis.db=-1"), "/redis/db"),
        # Mode url reads the whole URL from the Secret: URL-building values would be silently ignored.
        (("redis.hosts={r1:6379}",), "/redis/hosts"),
        (("redis.masterName=m",), "/redis/masterName"),
        (("redis.db=2",), "/redis/db"),
        (("redis.tls=true",), "/redis/tls"),
        (("redis.username=app",), "/redis/username"),
        (("secret.keys.REDIS_URL=null",), "REDIS_URL"),
    ],
)
def test_schema_rejects_invalid_redis_values(helm: Helm, sets: tuple[str, ...], message: str) -> None:
    assert message in template_error(helm, *sets)


@pytest.mark.parametrize("var", ["REDIS_PASSWORD", "REDIS_SENTINEL_PASSWORD", "REDIS_URL"])
def test_redis_secrets_cannot_be_passed_as_plain_values(helm: Helm, var: str) -> None:
    value = "s3cr3t-redis-value"
    for attempt in (f"extraEnv[0].name={var},extraEnv[0].value={value}", f"redis.password={value}"):
        proc = helm.run(*helm.template_cmd(sets=(attempt,)), check=False)
        assert proc.returncode != 0, attempt
        assert value not in proc.stdout


def test_schema_accepts_redis_url_dropped_when_the_chart_builds_it(helm: Helm) -> None:
    docs = helm.render(sets=("redis.mode=cluster", "redis.hosts={c1:6379}", "secret.keys.REDIS_URL=null"))
    (container,) = find(docs, "Deployment", RELEASE)["spec"]["template"]["spec"]["containers"]
    assert redis_env(container) == {"REDIS_URL": {"name": "REDIS_URL", "value": "redis+cluster://c1:6379"}}
