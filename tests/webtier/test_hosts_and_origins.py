"""Issue 15: DJANGO_ALLOWED_HOSTS and DJANGO_CSRF_TRUSTED_ORIGINS decide, in Django's own syntax, which hosts
and cross-origin form posts the web tier accepts. Run against `uvicorn config.asgi:application` with DEBUG
off, as production runs it (and as docs/http-api.md starts it), on a tree where collectstatic never ran."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from config.env import Environment
from tests.webtier.conftest import Operator
from tests.webtier.server import WebTier, web_tier

HOSTS = "crypto.example.com,.example.org,10.1.2.3,crypto-grpc-web"
TRUSTED = "https://ops.example.com"


@pytest.fixture(scope="module")
def server() -> Iterator[WebTier]:
    with web_tier(DJANGO_DEBUG="off", DJANGO_ALLOWED_HOSTS=HOSTS, DJANGO_CSRF_TRUSTED_ORIGINS=TRUSTED) as web:
        yield web


def get(server: WebTier, path: str, host: str, **kwargs) -> httpx.Response:
    return httpx.get(server.url + path, headers={"Host": host, **kwargs.pop("headers", {})}, timeout=30, **kwargs)


@pytest.mark.parametrize("host", ["crypto.example.com", "example.org", "ops.example.org", "10.1.2.3",
                                  "crypto-grpc-web", "crypto-grpc-web:8000"])
def test_listed_hosts_are_served(server: WebTier, host: str):
    assert get(server, "/admin/login/", host).status_code == 200


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "evil.example.com", "crypto.example.com.evil.net",
                                  "10.1.2.4", "172.17.0.2", "192.168.1.10", "x.cluster.local", "x.svc"])
def test_other_hosts_get_400(server: WebTier, host: str):
    # The list replaces the defaults (localhost) and django-cfg's private-range regexes and .svc suffixes.
    assert get(server, "/admin/login/", host).status_code == 400


def login_form(server: WebTier, host: str) -> tuple[str, str]:
    """(csrftoken cookie, form token) of the login page. The cookie is Secure with DEBUG off: httpx would
    not send it back over plain HTTP, so the tests carry it by hand."""
    page = get(server, "/admin/login/", host)
    assert page.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text[:500]
    return page.cookies["csrftoken"], token.group(1)


def post_login(server: WebTier, operator: Operator, *, host: str, origin: str) -> httpx.Response:
    cookie, token = login_form(server, host)
    return httpx.post(server.url + "/admin/login/", timeout=30,
                      data={"csrfmiddlewaretoken": token, "username": operator.email, "password": operator.password},
                      headers={"Host": host, "Origin": origin, "Cookie": f"csrftoken={cookie}"})


def test_a_login_from_a_trusted_origin_lands_on_the_admin(server: WebTier, operator: Operator):
    response = post_login(server, operator, host="crypto-grpc-web", origin=TRUSTED)
    assert response.status_code == 302 and response.headers["location"] == "/admin/"
    session = response.cookies["sessionid"]
    home = get(server, "/admin/", "crypto-grpc-web", headers={"Cookie": f"sessionid={session}"})
    assert home.status_code == 200 and "/admin/crypto/client/" in home.text


def test_a_login_from_the_host_itself_needs_no_trusted_origin(server: WebTier, operator: Operator):
    response = post_login(server, operator, host="crypto.example.com", origin="http://crypto.example.com")
    assert response.status_code == 302 and response.headers["location"] == "/admin/"


@pytest.mark.parametrize("origin", ["https://evil.example.com", "http://ops.example.com", "https://crypto.example.com",
                                    "http://localhost:3000", "http://localhost:8000"])
def test_a_login_from_an_untrusted_origin_is_refused(server: WebTier, operator: Operator, origin: str):
    # django-cfg's generated list trusted thousands of localhost ports, among others.
    assert post_login(server, operator, host="crypto-grpc-web", origin=origin).status_code == 403


def test_static_files_are_served_and_nothing_was_logged_as_an_error(server: WebTier, operator: Operator):
    seen = len(server.log)  # the refused hosts above are logged as errors (django.security.DisallowedHost)
    page = get(server, "/admin/login/", "crypto.example.com")
    for url in re.findall(r'(/staticfiles/[^"]+\.(?:css|js))"', page.text):
        assert get(server, url, "crypto.example.com").status_code == 200, url
    assert post_login(server, operator, host="crypto.example.com", origin="http://crypto.example.com").status_code == 302
    errors = [line for line in server.log[seen:].splitlines() if " ERROR " in line or "Traceback" in line]
    assert errors == []


@pytest.mark.parametrize("value", [r"^10\.\d{1,3}\.\d{1,3}\.\d{1,3}$", "https://crypto.example.com",
                                   "crypto.example.com:443", "crypto.example.com/admin"])
def test_what_django_would_never_match_is_refused_at_start_up(value: str):
    with pytest.raises(ValueError, match="DJANGO_ALLOWED_HOSTS"):
        Environment.from_mapping({"DJANGO_ALLOWED_HOSTS": f"localhost,{value}"})


@pytest.mark.parametrize("value", ["ops.example.com", "https://ops.example.com/admin/", "ftp://ops.example.com"])
def test_an_origin_without_scheme_or_with_a_path_is_refused_at_start_up(value: str):
    with pytest.raises(ValueError, match="DJANGO_CSRF_TRUSTED_ORIGINS"):
        Environment.from_mapping({"DJANGO_CSRF_TRUSTED_ORIGINS": value})


def test_defaults_are_local_and_trust_no_other_origin():
    env = Environment.from_mapping({})
    assert env.allowed_hosts == ("localhost", "127.0.0.1", "[::1]")
    assert env.csrf_trusted_origins == ()
    assert Environment.from_mapping({"DJANGO_ALLOWED_HOSTS": ""}).allowed_hosts == env.allowed_hosts
