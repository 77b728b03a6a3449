"""Issue 15: DJANGO_DEBUG does what the README says (django-cfg forced it off, and a warning filter hid it);
only the apps this service uses are installed, and the admin lists only what an operator needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.contrib import admin

from tests.webtier.server import ROOT, WEB_ENV_NAMES

PROBE = """
import json, django
django.setup()
from django.conf import settings
print(json.dumps({"DEBUG": settings.DEBUG, "SESSION_COOKIE_SECURE": settings.SESSION_COOKIE_SECURE,
                  "ALLOWED_HOSTS": settings.ALLOWED_HOSTS}))
"""


def settings_of(**env: str) -> tuple[dict, str]:
    """The settings a fresh process loads with `env`, and what it wrote to stderr."""
    base = {k: v for k, v in os.environ.items() if k not in WEB_ENV_NAMES}
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**base, "DJANGO_SETTINGS_MODULE": "config.settings", **env})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.mark.parametrize("env", [{"DJANGO_DEBUG": "on"}, {"DJANGO_DEBUG": "on", "DJANGO_ENV": "production"}])
def test_django_debug_on_turns_debug_on(env: dict[str, str]):
    loaded, stderr = settings_of(**env)
    assert loaded["DEBUG"] is True
    assert not loaded["SESSION_COOKIE_SECURE"]  # development: the admin works over plain HTTP
    assert "DEBUG=True is not allowed" not in stderr


@pytest.mark.parametrize("env", [{}, {"DJANGO_DEBUG": "off"}, {"DJANGO_ENV": "development"}, {"ENV": "dev"}])
def test_debug_is_off_unless_django_debug_says_on(env: dict[str, str]):
    loaded, _ = settings_of(**env)
    assert loaded["DEBUG"] is False and loaded["SESSION_COOKIE_SECURE"] is True
    assert loaded["ALLOWED_HOSTS"] == ["localhost", "127.0.0.1", "[::1]"]


def test_settings_filter_no_warnings():
    source = (ROOT / "config" / "settings.py").read_text()
    assert "filterwarnings" not in source


# django-cfg apps and packages this service does not use; django-cfg installed every one of them.
REMOVED = (
    "django_cfg.apps.system.mailer", "django_cfg.modules.django_llm", "django_cfg.apps.tools.analytics",
    "django_cfg.modules.django_monitor", "django_cfg.modules.django_sitemap", "django_cfg.modules.django_generator",
    "django_cfg.modules.django_tailwind", "django_cfg.modules.django_cleanup", "django_cfg.apps.api.dashboard",
    "django_cfg.apps.api.commands", "django_cfg.apps.api.health",
    "django_cfg.modules.django_drf_theme.apps.DjangoDRFThemeConfig", "constance", "constance.backends.database",
    "import_export", "rest_framework.authtoken", "rest_framework_simplejwt.token_blacklist", "corsheaders",
    "django_extensions", "django_browser_reload",
)


def test_unused_apps_are_not_installed():
    assert [app for app in REMOVED if app in settings.INSTALLED_APPS] == []
    assert len(settings.INSTALLED_APPS) <= 25  # 52 before issue 15
    assert "corsheaders.middleware.CorsMiddleware" not in settings.MIDDLEWARE


def test_the_apps_the_service_needs_stay():
    for app in ("apps.crypto", "django.contrib.admin", "django_cfg.apps.system.accounts", "axes", "rest_framework",
                "drf_spectacular", "unfold"):
        assert app in settings.INSTALLED_APPS


def test_the_admin_lists_only_what_an_operator_uses():
    listed = {model._meta.label for model in admin.site._registry}
    crypto = {label for label in listed if label.startswith("crypto.")}
    assert listed - crypto == {"django_cfg_accounts.CustomUser", "django_cfg_accounts.UserActivity", "auth.Group",
                               "axes.AccessAttempt", "axes.AccessFailureLog", "axes.AccessLog"}


def test_a_web_request_holds_no_transaction():
    # A request waiting for bots' acks must not hold a transaction (on SQLite: the write lock) meanwhile.
    assert [alias for alias, db in settings.DATABASES.items() if db.get("ATOMIC_REQUESTS")] == []
