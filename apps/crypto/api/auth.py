"""Operator bearer tokens for the HTTP API: the same CRYPTO_OPERATOR_TOKENS the gRPC command RPCs accept.

Tokens are compared by digest in constant time (auth.OperatorTokens); the principal carries only the
non-secret identity (`operator:<digest prefix>`) and the token itself, which the command view
forwards to gRPC so the CommandRecord names the operator who really sent it.
The HTTP API always requires a token, even when CRYPTO_AUTH=off relaxes the gRPC side.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache

from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated
from rest_framework.request import Request

from apps.crypto.grpc.services.auth import OperatorTokens
from apps.crypto.grpc.services.commands.base_client import TOKENS_ENV
from config.env import split_list

logger = logging.getLogger(__name__)

SCHEME = "Bearer"


class Operator:
    """The authenticated caller; what DRF puts in request.user."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, identity: str) -> None:
        self.identity = identity

    def __str__(self) -> str:
        return self.identity


def accepted_tokens() -> tuple[str, ...]:
    """CRYPTO_OPERATOR_TOKENS as the environment says now (read per request, so rotation needs no reload)."""
    return split_list(os.environ.get(TOKENS_ENV, ""))


@lru_cache(maxsize=8)
def _operators(tokens: tuple[str, ...]) -> OperatorTokens:
    return OperatorTokens(tokens)


def presented_token(header: str) -> str:
    """The token of an `Authorization: Bearer <token>` header; NotAuthenticated when absent or malformed."""
    if not header:
        raise NotAuthenticated(f"missing Authorization header; send 'Authorization: {SCHEME} <operator token>'")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != SCHEME.lower() or not token.strip():
        raise NotAuthenticated(f"the Authorization header must have the form '{SCHEME} <operator token>'")
    return token.strip()


class OperatorTokenAuthentication(BaseAuthentication):
    """Accepts exactly the configured operator tokens; anything else is a 401."""

    def authenticate(self, request: Request) -> tuple[Operator, str]:
        operators = _operators(accepted_tokens())
        if not operators:
            raise AuthenticationFailed(f"no operator tokens are configured on this server ({TOKENS_ENV})")
        token = presented_token(request.headers.get("Authorization", ""))
        identity = operators.identify(token)
        if identity is None:
            logger.info("api.auth_rejected path=%s reason=unknown_token", request.path)
            raise AuthenticationFailed("operator token not recognised")
        return Operator(identity), token

    def authenticate_header(self, request: Request) -> str:
        return f'{SCHEME} realm="crypto-grpc"'
