"""Development only: make sure the admin has a superuser to log in with; print its e-mail and password.

The account (DEV_ADMIN_EMAIL, default admin@example.com) gets a fresh random password on every run,
like the development bot key: whoever runs the development server can log in, nobody else knows how.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402

email = os.environ.get("DEV_ADMIN_EMAIL") or "admin@example.com"
password = secrets.token_urlsafe(12)
User = get_user_model()
user = User.objects.filter(email=email).first()
if user is None:
    user = User.objects.create_superuser(email=email, username=email.partition("@")[0], password=password)
else:
    user.is_staff = user.is_superuser = user.is_active = True
    user.set_password(password)
    user.save()
print(email, password)
