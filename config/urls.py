"""HTTP routes: the Django admin and the operator API (served under ASGI by the optional web tier)."""

from django.contrib import admin
from django.urls import include, path

from apps.crypto.api.urls import PREFIX as CRYPTO_API_PREFIX

urlpatterns = [
    path("admin/", admin.site.urls),
    path(CRYPTO_API_PREFIX, include("apps.crypto.api.urls")),
]
