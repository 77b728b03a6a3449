"""Routes of the operator API; config/urls.py mounts them under PREFIX."""

from __future__ import annotations

from django.urls import include, path

from .schema import schema_view
from .views import BroadcastView, ClientCommandView, ClientDetailView, ClientListView

PREFIX = "api/crypto/"
app_name = "crypto-api"

api_patterns = [
    path("clients/", ClientListView.as_view(), name="clients"),
    path("clients/<str:client_id>/", ClientDetailView.as_view(), name="client"),
    path("clients/<str:client_id>/commands/", ClientCommandView.as_view(), name="client-commands"),
    path("broadcast/", BroadcastView.as_view(), name="broadcast"),
]

urlpatterns = [
    *api_patterns,
    path("schema/", schema_view([path(PREFIX, include((api_patterns, app_name)))]), name="schema"),
]
