"""Django settings, produced by a django-cfg DjangoConfig from the environment."""

from __future__ import annotations

import os

from django_cfg import DatabaseConfig, DjangoConfig
from django_cfg.core.types.enums import EnvironmentMode, StartupInfoMode
from django_cfg.models import AnalyticsConfig, StorageConfig

from config.env import BASE_DIR, DEFAULT_ALLOWED_HOSTS, ENV, django_secret_key
from config.logging import build_logging, lean_records

# django-cfg would otherwise mirror every DEBUG line into an ever-growing /tmp/djangocfg/debug.log.
os.environ.setdefault("DJANGO_LOG_TO_TMP", "false")

# Production sets DJANGO_SECRET_KEY; without it only DEBUG or DJANGO_ALLOW_DEV_SECRET_KEY (development,
# tests) admit the public development key. Anything else stops here with one line saying how to fix it.
try:
    _SECRET_KEY = django_secret_key(ENV)
except ValueError as exc:
    raise SystemExit(f"crypto-grpc: {exc}") from None


# Several replica processes may share one SQLite file in development and tests.
SQLITE_OPTIONS = {"timeout": 30, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                  "transaction_mode": "IMMEDIATE"}


# No psycopg connection pool (django-cfg turns one on for PostgreSQL: min 10, max 50, 30 s checkout).
# A replica runs all its ORM code on one thread (sync_to_async, thread_sensitive), which keeps one
# connection open until the ingest writer closes it after a transient error; the pool only held ten
# idle spares that a restart or failover kills with it. Its checkout then tries them one by one,
# sleeping 1, 2, 4, 8, 16 s between dead ones (psycopg_pool's fixed backoff) on that one thread:
# nothing was stored for 30 s and more. Without the pool the next retry simply connects afresh.
# CONN_MAX_AGE stays 0: the web tier (ASGI admin) connects per request; rungrpc sends no request
# signals, so its thread's connection lives until it fails.
POSTGRES_OPTIONS = {"pool": False}


def database_config(url: str) -> DatabaseConfig:
    """SQLite paths are taken literally; other URLs (postgresql://...) go to django-cfg's parser."""
    if url.startswith("sqlite:///"):
        return DatabaseConfig(engine="django.db.backends.sqlite3", name=url.removeprefix("sqlite:///"),
                              options=SQLITE_OPTIONS)
    if url.startswith(("postgres://", "postgresql://")):
        return DatabaseConfig.from_url(url, options=POSTGRES_OPTIONS)
    return DatabaseConfig.from_url(url)


# DJANGO_DEBUG alone decides DEBUG. django-cfg forces DEBUG off outside its development mode (and warns),
# so DEBUG on runs in that mode: tracebacks, unhashed static names, session and CSRF cookies without the
# Secure flag (plain HTTP). DJANGO_ENV, ENVIRONMENT and ENV, which django-cfg would read, are not.
MODE = EnvironmentMode.DEVELOPMENT if ENV.debug else EnvironmentMode.PRODUCTION


class CryptoConfig(DjangoConfig):
    """The project's typed settings; every operator knob comes from config.env.ENV."""

    project_name: str = "crypto-grpc"
    secret_key: str = _SECRET_KEY
    debug: bool = ENV.debug
    env_mode: EnvironmentMode = MODE
    # Only feeds django-cfg's generated host/origin lists, which are replaced below by DJANGO_ALLOWED_HOSTS
    # and DJANGO_CSRF_TRUSTED_ORIGINS; it must not be empty in production mode.
    security_domains: list[str] = list(DEFAULT_ALLOWED_HOSTS[:2])
    project_apps: list[str] = ["apps.crypto", "config.apps.WebTierConfig"]
    # The django-cfg features this service does not use and can switch off (README "Web tier").
    # Analytics also put a dashboard tab on the admin home page that reverses URLs not routed here (500).
    analytics: AnalyticsConfig = AnalyticsConfig(enabled=False)
    storage: StorageConfig | None = StorageConfig(enabled=False)  # no uploaded media to clean up
    enable_drf_tailwind: bool = False
    startup_info_mode: StartupInfoMode = StartupInfoMode.NONE
    show_ai_hints: bool = False
    root_urlconf: str | None = "config.urls"
    databases: dict[str, DatabaseConfig] = {"default": database_config(ENV.database_url)}


config = CryptoConfig()
if config.env_mode is not MODE:  # DjangoConfig switched it by DJANGO_ENV, ENVIRONMENT or ENV
    config.env_mode = MODE
globals().update(config.get_all_settings())

# django-cfg installs these whatever its switches say. This service uses none of them: no end-user
# accounts API, OAuth, mail, LLM, sitemap, client generation, dashboard or command API, monitor,
# constance, import/export, JWT blacklist or DRF tokens (the API has its own bearer tokens), CORS (the
# API is not called from other origins' pages). What stays, and why, is in the README ("Web tier").
UNUSED_APPS = frozenset({
    "django_cfg.apps.system.mailer",
    "django_cfg.modules.django_llm", "django_cfg.modules.django_generator", "django_cfg.modules.django_sitemap",
    "django_cfg.modules.django_tailwind", "django_cfg.modules.django_monitor",
    "django_cfg.apps.api.health", "django_cfg.apps.api.commands", "django_cfg.apps.api.dashboard",
    "import_export", "unfold.contrib.import_export", "unfold.contrib.guardian", "unfold.contrib.simple_history",
    "unfold.contrib.location_field", "unfold.contrib.constance", "constance", "constance.backends.database",
    "rest_framework.authtoken", "rest_framework_simplejwt.token_blacklist", "rest_framework_nested", "adrf",
    "corsheaders", "django_extensions", "django_json_widget", "drf_spectacular_sidecar",
    # DEBUG adds it, but its script needs URLs this project does not route: every page would fail.
    "django_browser_reload",
})
UNUSED_MIDDLEWARE = frozenset({
    "corsheaders.middleware.CorsMiddleware", "django_cfg.core.middleware.PublicAPICORSMiddleware",
    "django_browser_reload.middleware.BrowserReloadMiddleware",
})
INSTALLED_APPS = [app for app in INSTALLED_APPS if app not in UNUSED_APPS]
MIDDLEWARE = list(dict.fromkeys(m for m in MIDDLEWARE if m not in UNUSED_MIDDLEWARE))

# Hosts, origins and debug are plain settings from the environment (config/env.py), never generated.
DEBUG = ENV.debug
ALLOWED_HOSTS = list(ENV.allowed_hosts)
CSRF_TRUSTED_ORIGINS = list(ENV.csrf_trusted_origins)

# No transaction around every web request (django-cfg turns ATOMIC_REQUESTS on). An admin action or an API
# command with wait=true spends up to 10 s (API: its timeout, up to 120 s) waiting for bots' acks over gRPC;
# on SQLite, whose transactions begin IMMEDIATE here, that held the database's write lock all along, and the
# replica sharing the file could store nothing meanwhile. The admin's own add/change/delete views are atomic.
for _database in DATABASES.values():
    _database["ATOMIC_REQUESTS"] = False

# A login lands on the admin; pages that need a login send the user to the admin's login page.
LOGIN_URL = "admin:login"
LOGIN_REDIRECT_URL = "admin:index"

# Static files: hashed once `collectstatic` ran (the image), straight from the packages before that.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "config.static.CollectedOrFoundStaticFilesStorage"}}
WHITENOISE_USE_FINDERS = True

LOGGING = build_logging(ENV.log_format, ENV.log_level, ENV.replica_id)
lean_records()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_ROOT = str(BASE_DIR / "staticfiles")
# django-cfg's own defaults, not this project's: its file cache path and its accounts model.
SILENCED_SYSTEM_CHECKS = ["caches.W003", "auth.W004"]
