"""Issue 15: the Helm chart sets the web tier's hosts and trusted origins from its values."""

from __future__ import annotations

import pytest
from django.http.request import validate_host

from config.env import Environment
from tests.deploy.conftest import helm, helm_bin  # noqa: F401 (fixtures)
from tests.deploy.k8s_helpers import CI_VALUES, RELEASE, Helm, env_of, find


def web_env(helm: Helm, *sets: str) -> dict[str, str]:  # noqa: F811
    docs = helm.render(values=(CI_VALUES,), sets=sets)
    (container,) = find(docs, "Deployment", f"{RELEASE}-web")["spec"]["template"]["spec"]["containers"]
    return {name: entry.get("value") for name, entry in env_of(container).items()}


def test_the_web_service_and_port_forwards_are_allowed_by_default(helm: Helm):  # noqa: F811
    env = web_env(helm, "web.ingress.enabled=false")  # the CI values turn an Ingress on (its hosts: below)
    hosts = Environment.from_mapping(env).allowed_hosts  # what the web tier would read
    for host in ("crypto-grpc-web", "crypto-grpc-web.default.svc.cluster.local", "localhost", "127.0.0.1"):
        assert validate_host(host, hosts), host
    for host in ("crypto.example.com", "10.1.2.3", "evil.example.com"):
        assert not validate_host(host, hosts), host
    assert "DJANGO_CSRF_TRUSTED_ORIGINS" not in env


def test_an_ingress_host_is_allowed(helm: Helm):  # noqa: F811
    hosts = Environment.from_mapping(web_env(helm)).allowed_hosts  # CI values: an Ingress for crypto.example.com
    assert validate_host("crypto.example.com", hosts)
    assert not validate_host("evil.example.com", hosts)


def test_values_add_hosts_and_trusted_origins(helm: Helm):  # noqa: F811
    env = web_env(helm, "web.allowedHosts={crypto.example.com,.example.org}",
                  "web.csrfTrustedOrigins={https://ops.example.com,https://*.example.org}")
    parsed = Environment.from_mapping(env)
    assert validate_host("crypto.example.com", parsed.allowed_hosts)
    assert validate_host("admin.example.org", parsed.allowed_hosts)
    assert validate_host("crypto-grpc-web", parsed.allowed_hosts)
    assert parsed.csrf_trusted_origins == ("https://ops.example.com", "https://*.example.org")


@pytest.mark.parametrize("item", ["web.allowedHosts={https://crypto.example.com}", "web.allowedHosts={crypto.example.com:443}",
                                  "web.allowedHosts={^10\\.\\d+$}", "web.csrfTrustedOrigins={ops.example.com}",
                                  "web.csrfTrustedOrigins={https://ops.example.com/admin}"])
def test_values_django_would_never_match_are_refused(helm: Helm, item: str):  # noqa: F811
    proc = helm.run(*helm.template_cmd((CI_VALUES,), (item,)), check=False)
    assert proc.returncode != 0 and "does not match pattern" in proc.stderr, proc.stderr
