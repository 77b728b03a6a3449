"""WORKAROUND(#15): the project's settings, with static files served straight from the apps' folders.

Today the web tier renders no admin page until `manage.py collectstatic` has filled STATIC_ROOT (the
manifest storage 500s with "Missing staticfiles manifest entry for 'unfold/fonts/inter/styles.css'"),
and only the Dockerfile runs it. Collecting takes 5-15 s per run, so the browser tests instead let
WhiteNoise (already in the middleware) find the files in the apps, as `runserver` would, with plain
static URLs. Remove this module (WEB_SETTINGS in tests/support/web.py) once the web tier's documented
command serves static files without a manual step.
"""

from config.settings import *  # noqa: F403

STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = False
