"""OpenAPI for the operator API: its bearer scheme and the schema view limited to /api/crypto/."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.views import SpectacularAPIView

SCHEMA_SETTINGS: dict[str, Any] = {
    "TITLE": "crypto-grpc operator API",
    "DESCRIPTION": "Clients with their live connection state, and commands to them through the gRPC "
                   "command path. Authenticate with `Authorization: Bearer <operator token>` "
                   "(CRYPTO_OPERATOR_TOKENS). Errors are `{\"error\": ..., \"detail\": ...}`.",
    "VERSION": "1.0.0",
    "SCHEMA_PATH_PREFIX": r"/api/crypto",
    # 3.1: django-cfg's pagination schema uses 3.1 null unions (`type: [integer, "null"]`)
    "OAS_VERSION": "3.1.0",
}


class OperatorTokenScheme(OpenApiAuthenticationExtension):
    """Registered on import: documents OperatorTokenAuthentication as HTTP bearer."""

    target_class = "apps.crypto.api.auth.OperatorTokenAuthentication"
    name = "operatorToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "an operator token from CRYPTO_OPERATOR_TOKENS"}


def schema_view(patterns: list[Any]) -> Any:
    """The schema of exactly `patterns` (public: it documents the API, it holds no secret)."""
    return SpectacularAPIView.as_view(patterns=patterns, custom_settings=SCHEMA_SETTINGS)
