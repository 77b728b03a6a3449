"""Test session set-up: a throw-away SQLite database (or TEST_DATABASE_URL), migrated once."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_TMP = Path(tempfile.mkdtemp(prefix="crypto-tests-"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["DATABASE_URL"] = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{_TMP / 'test.sqlite3'}"
os.environ.setdefault("CRYPTO_AUTH", "on")
# No DJANGO_SECRET_KEY in tests: admit the public development key here and in every replica process
# the suite spawns (they inherit os.environ); without it the settings refuse to load.
os.environ["DJANGO_ALLOW_DEV_SECRET_KEY"] = "on"
os.environ.pop("REDIS_URL", None)
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

call_command("migrate", verbosity=0, interactive=False)
