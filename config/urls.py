"""HTTP routes: the Django admin (served under ASGI by the optional web tier)."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
