"""Issue 15: on a fresh clone (no collectstatic) the admin's login page renders, a login lands on the admin,
its home page answers, and a login logs no error. Django's test client, the real settings and STORAGES."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client as HttpClient
from django.test import override_settings

from tests.webtier.conftest import Operator, make_operator

HOST = "localhost"  # the default DJANGO_ALLOWED_HOSTS; "testserver" is not in it


@pytest.fixture(autouse=True)
def nothing_collected(tmp_path: Path) -> Iterator[None]:
    """STATIC_ROOT as on a fresh clone: collectstatic never ran, there is no manifest."""
    with override_settings(STATIC_ROOT=str(tmp_path / "staticfiles")):
        yield


def login(browser: HttpClient, who: Operator):
    return browser.post("/admin/login/", {"username": who.email, "password": who.password})


def stylesheets_served(browser: HttpClient) -> list[str]:
    """The login page's stylesheets, each fetched (200, not empty)."""
    page = browser.get("/admin/login/")
    assert page.status_code == 200
    stylesheets = re.findall(r'href="(/staticfiles/[^"]+\.css)"', page.content.decode())
    for url in stylesheets:
        asset = browser.get(url)
        assert asset.status_code == 200, url
        assert b"".join(asset.streaming_content), url
    return stylesheets


def test_login_page_renders_and_its_assets_are_served_without_collectstatic_and_after_it():
    assert "/staticfiles/unfold/fonts/inter/styles.css" in stylesheets_served(HttpClient(HTTP_HOST=HOST))
    # The image runs collectstatic: then the names are hashed (cached for ever) and served all the same.
    call_command("collectstatic", interactive=False, verbosity=0)
    hashed = stylesheets_served(HttpClient(HTTP_HOST=HOST))
    assert any(re.fullmatch(r"/staticfiles/unfold/fonts/inter/styles\.[0-9a-f]{12}\.css", url) for url in hashed)


def test_a_login_lands_on_the_admin_home_page(operator: Operator):
    browser = HttpClient(HTTP_HOST=HOST)
    response = login(browser, operator)
    assert response.status_code == 302 and response["Location"] == "/admin/"
    home = browser.get("/admin/")
    assert home.status_code == 200
    assert "/admin/crypto/client/" in home.content.decode()
    # A deep link's login still goes back to it.
    browser = HttpClient(HTTP_HOST=HOST)
    response = browser.post("/admin/login/?next=/admin/crypto/commandrecord/",
                            {"username": operator.email, "password": operator.password})
    assert response.status_code == 302 and response["Location"] == "/admin/crypto/commandrecord/"


def test_home_page_answers_a_staff_user_without_permissions():
    browser = HttpClient(HTTP_HOST=HOST)
    assert login(browser, make_operator(superuser=False)).status_code == 302
    assert browser.get("/admin/").status_code == 200


def test_a_login_logs_no_error(operator: Operator, error_logs: list[logging.LogRecord]):
    browser = HttpClient(HTTP_HOST=HOST)
    assert login(browser, operator).status_code == 302
    assert browser.get("/admin/").status_code == 200
    assert [f"{r.name}: {r.getMessage()}" for r in error_logs] == []


def test_a_failed_login_logs_no_error(operator: Operator, error_logs: list[logging.LogRecord]):
    browser = HttpClient(HTTP_HOST=HOST)
    response = browser.post("/admin/login/", {"username": operator.email, "password": "wrong"})
    assert response.status_code == 200  # the form again, with its error
    assert [f"{r.name}: {r.getMessage()}" for r in error_logs] == []


def test_login_required_pages_send_to_the_admin_login():
    from django.conf import settings
    from django.shortcuts import resolve_url

    assert resolve_url(settings.LOGIN_URL) == "/admin/login/"
    assert resolve_url(settings.LOGIN_REDIRECT_URL) == "/admin/"
