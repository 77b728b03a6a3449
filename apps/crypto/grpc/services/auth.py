"""Who may open a stream as a client_id (bot API keys) and who may send commands (operator tokens).

Bot keys are random, shown once by `manage.py create_client_key`, and stored only as a SHA-256 hex
digest bound to one client_id. Verified key hashes are cached in memory for CACHE_TTL seconds so a
reconnect storm does not query the database once per stream; the price is that revoking a key takes
effect on new streams within CACHE_TTL seconds (streams already open are not cut).

Operator tokens (CRYPTO_OPERATOR_TOKENS) are compared by digest in constant time; the identity
returned to callers is a short digest prefix, never the token. Error details never echo a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc

from apps.crypto.limits import ID_MAX as MAX_CLIENT_ID

logger = logging.getLogger(__name__)

API_KEY_HEADER = "x-api-key"
AUTHORIZATION_HEADER = "authorization"
KEY_MARKER = "ck_"  # makes a leaked key recognisable to secret scanners and humans
KEY_BYTES = 32
PREFIX_CHARS = 10  # stored to recognise a key; fits ClientApiKey.prefix (max 12)
CACHE_TTL = 30.0  # seconds; upper bound for a revocation to reach new streams
CACHE_SIZE = 10_000
ANONYMOUS = "anonymous"
OPERATOR_ID_CHARS = 6

_UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


class AuthError(Exception):
    """A refused call: `code` is the gRPC status to end it with, `details` a message safe to show."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


# ---------------------------------------------------------------------------- keys (pure)


def generate_key() -> str:
    return KEY_MARKER + secrets.token_urlsafe(KEY_BYTES)


def hash_key(key: str) -> str:
    """SHA-256 hex: keys carry 256 random bits, so a slow password hash buys nothing."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_prefix(key: str) -> str:
    return key[:PREFIX_CHARS]


def validate_client_id(client_id: str) -> str:
    """The rules a bot's client_id must follow; raises ValueError with the broken one."""
    if not client_id or not client_id.strip():
        raise ValueError("client_id must not be empty")
    if client_id != client_id.strip():
        raise ValueError("client_id must not start or end with whitespace")
    if len(client_id) > MAX_CLIENT_ID:
        raise ValueError(f"client_id must be at most {MAX_CLIENT_ID} characters, got {len(client_id)}")
    return client_id


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


# ---------------------------------------------------------------------------- key storage


def _new_key(client_id: str) -> tuple[str, dict[str, str]]:
    validate_client_id(client_id)
    key = generate_key()
    return key, {"client_id": client_id, "key_hash": hash_key(key), "prefix": key_prefix(key)}


def issue_client_key(client_id: str) -> str:
    """Sync variant for management commands: store hash and prefix, return the plaintext once."""
    from apps.crypto.models import ClientApiKey  # models load after django.setup()

    key, fields = _new_key(client_id)
    ClientApiKey.objects.create(**fields)
    return key


async def create_client_key(client_id: str) -> str:
    """Store a new key for client_id (hash and prefix only) and return the plaintext, once."""
    from apps.crypto.models import ClientApiKey

    key, fields = _new_key(client_id)
    await ClientApiKey.objects.acreate(**fields)
    return key


@dataclass(frozen=True, slots=True)
class KeyRecord:
    client_id: str
    revoked: bool


class KeyStore(Protocol):
    """Where key hashes live; the Django model in production, a dict in tests."""

    async def find(self, key_hash: str) -> KeyRecord | None: ...


class DjangoKeyStore:
    async def find(self, key_hash: str) -> KeyRecord | None:
        from apps.crypto.models import ClientApiKey

        row = await ClientApiKey.objects.filter(key_hash=key_hash).values_list("client_id", "revoked").afirst()
        return None if row is None else KeyRecord(client_id=row[0], revoked=row[1])


# ---------------------------------------------------------------------------- cache (pure)


class TtlCache:
    """Bounded LRU of key hash -> bound client_id; entries expire `ttl` seconds after they were stored."""

    def __init__(self, ttl: float, max_size: int, clock: Callable[[], float] = time.monotonic) -> None:
        if ttl < 0 or max_size < 0:
            raise ValueError("ttl and max_size must be >= 0")
        self.ttl, self.max_size, self._clock = ttl, max_size, clock
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def get(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if self._clock() >= expires_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: str, value: str) -> None:
        if self.max_size == 0 or self.ttl == 0:
            return
        self._entries[key] = (value, self._clock() + self.ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


# ---------------------------------------------------------------------------- operator tokens (pure)


class OperatorTokens:
    """The configured operator tokens, kept only as digests."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self._digests = tuple(hash_key(token) for token in tokens if token)

    def __bool__(self) -> bool:
        return bool(self._digests)

    def identify(self, token: str) -> str | None:
        """`operator:<digest prefix>` for a known token, else None; checks every digest (no early exit)."""
        presented = hash_key(token)
        match = None
        for digest in self._digests:
            if hmac.compare_digest(digest, presented):
                match = digest
        return None if match is None else f"operator:{match[:OPERATOR_ID_CHARS]}"


def bearer_token(metadata: Mapping[str, str]) -> str:
    """The token of an `authorization: Bearer <token>` entry; AuthError when absent or malformed."""
    raw = metadata.get(AUTHORIZATION_HEADER)
    if raw is None:
        raise AuthError(_UNAUTHENTICATED, "missing 'authorization' metadata; send 'authorization: Bearer <token>'")
    scheme, _, token = raw.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError(_UNAUTHENTICATED, "'authorization' metadata must have the form 'Bearer <token>'")
    return token.strip()


def api_key(metadata: Mapping[str, str]) -> str:
    key = (metadata.get(API_KEY_HEADER) or "").strip()
    if not key:
        raise AuthError(_UNAUTHENTICATED, f"missing '{API_KEY_HEADER}' metadata; create a key with "
                                          "'manage.py create_client_key <client_id>'")
    return key


# ---------------------------------------------------------------------------- the authenticator


class Authenticator:
    """Checks bot streams (x-api-key bound to client_id) and operator RPCs (bearer token)."""

    def __init__(self, enabled: bool, operator_tokens: Sequence[str], *, store: KeyStore | None = None,
                 cache_ttl: float = CACHE_TTL, cache_size: int = CACHE_SIZE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = enabled
        self._operators = OperatorTokens(operator_tokens)
        self._store: KeyStore = store if store is not None else DjangoKeyStore()
        self._cache = TtlCache(cache_ttl, cache_size, clock)
        self._log_mode()

    def _log_mode(self) -> None:
        if not self.enabled:
            logger.warning("auth.disabled setting=CRYPTO_AUTH value=off "
                           "effect=any_client_may_connect_as_any_client_id_and_send_commands")
        elif not self._operators:
            logger.warning("auth.no_operator_tokens setting=CRYPTO_OPERATOR_TOKENS "
                           "effect=SendCommandToClient_and_ExecuteCommandSync_reject_every_call")

    async def authenticate_client(self, metadata: Mapping[str, str], client_id: str) -> None:
        """Raise AuthError unless metadata carries a live key bound to client_id."""
        self.check_bound(await self.client_for(metadata), client_id)

    async def client_for(self, metadata: Mapping[str, str]) -> str | None:
        """The client_id the stream's key is bound to, from the metadata alone (None when auth is off):
        a stream without a valid key is refused before it may send anything."""
        if not self.enabled:
            return None
        try:
            return await self._bound_client(hash_key(api_key(metadata)))
        except AuthError as exc:
            logger.info("auth.client_rejected code=%s details=%s", exc.code.name, exc.details)
            raise

    @staticmethod
    def check_bound(bound: str | None, client_id: str) -> None:
        """The stream's first message must name the client its key is bound to."""
        if bound is not None and not _equal(bound, client_id):
            logger.info("auth.client_rejected client_id=%s code=PERMISSION_DENIED", client_id)
            raise AuthError(grpc.StatusCode.PERMISSION_DENIED, f"API key is not valid for client_id {client_id!r}")

    async def _bound_client(self, key_hash: str) -> str:
        cached = self._cache.get(key_hash)
        if cached is not None:
            return cached
        record = await self._lookup(key_hash)
        if record is None:
            raise AuthError(_UNAUTHENTICATED, "API key not recognised")
        if record.revoked:
            raise AuthError(_UNAUTHENTICATED, "API key has been revoked")
        self._cache.put(key_hash, record.client_id)
        return record.client_id

    async def _lookup(self, key_hash: str) -> KeyRecord | None:
        """A failing key store refuses the stream with UNAVAILABLE (the bot retries), never lets it in."""
        try:
            return await self._store.find(key_hash)
        except Exception as exc:
            logger.warning("auth.key_store_failed error=%s", type(exc).__name__, exc_info=True)
            raise AuthError(grpc.StatusCode.UNAVAILABLE, "API key store unavailable; retry later") from None

    def authenticate_operator(self, metadata: Mapping[str, str]) -> str:
        """The caller's non-secret identity (`operator:<digest prefix>`, or `anonymous` when auth is off)."""
        if not self.enabled:
            return ANONYMOUS
        if not self._operators:
            raise AuthError(_UNAUTHENTICATED, "no operator tokens configured on the server (CRYPTO_OPERATOR_TOKENS)")
        identity = self._operators.identify(bearer_token(metadata))
        if identity is None:
            raise AuthError(_UNAUTHENTICATED, "operator token not recognised")
        return identity

    def forget_cached_keys(self) -> None:
        """Drop every cached verification, e.g. right after revoking keys in this process."""
        self._cache.clear()


__all__ = [
    "ANONYMOUS", "API_KEY_HEADER", "AUTHORIZATION_HEADER", "CACHE_TTL", "AuthError", "Authenticator",
    "DjangoKeyStore", "KeyRecord", "KeyStore", "OperatorTokens", "TtlCache", "api_key", "bearer_token",
    "create_client_key", "generate_key", "hash_key", "issue_client_key", "key_prefix", "validate_client_id",
]
