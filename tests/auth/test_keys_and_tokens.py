"""Bot API keys and operator tokens: pure helpers and the Authenticator against an in-memory store."""

from __future__ import annotations

import hashlib
import logging

import grpc
import pytest

from apps.crypto.grpc.services.auth import (
    ANONYMOUS,
    AuthError,
    Authenticator,
    KeyRecord,
    OperatorTokens,
    TtlCache,
    bearer_token,
    generate_key,
    hash_key,
    key_prefix,
    validate_client_id,
)
from tests.commands.fake_service import MemoryKeyStore

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def authenticator(store: MemoryKeyStore, clock: Clock | None = None, tokens: tuple[str, ...] = ("tok-a",),
                  enabled: bool = True) -> Authenticator:
    return Authenticator(enabled, tokens, store=store, clock=clock or Clock())


# ---------------------------------------------------------------------------- keys


def test_generated_keys_are_marked_long_and_unique() -> None:
    keys = {generate_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(key.startswith("ck_") and len(key) >= 40 for key in keys)


def test_hash_is_sha256_hex_and_prefix_fits_the_model() -> None:
    key = generate_key()
    assert hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert len(hash_key(key)) == 64
    assert key.startswith(key_prefix(key)) and len(key_prefix(key)) <= 12


@pytest.mark.parametrize("client_id", ["", "   ", " bot", "bot ", "x" * 129])
def test_invalid_client_ids(client_id: str) -> None:
    with pytest.raises(ValueError):
        validate_client_id(client_id)


def test_longest_client_id_is_valid() -> None:
    assert validate_client_id("x" * 128) == "x" * 128


# ---------------------------------------------------------------------------- client streams


async def test_key_bound_to_its_client_is_accepted() -> None:
    store = MemoryKeyStore()
    key = store.add("bot-a")
    await authenticator(store).authenticate_client({"x-api-key": key}, "bot-a")


async def test_key_for_another_client_is_permission_denied_without_echoing_the_key() -> None:
    store = MemoryKeyStore()
    key = store.add("bot-a")
    with pytest.raises(AuthError) as err:
        await authenticator(store).authenticate_client({"x-api-key": key}, "bot-b")
    assert err.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert "bot-b" in err.value.details and key not in err.value.details


@pytest.mark.parametrize("metadata", [{}, {"x-api-key": ""}, {"x-api-key": "   "}])
async def test_missing_key_is_unauthenticated(metadata: dict[str, str]) -> None:
    with pytest.raises(AuthError) as err:
        await authenticator(MemoryKeyStore()).authenticate_client(metadata, "bot-a")
    assert err.value.code == UNAUTHENTICATED and "x-api-key" in err.value.details


async def test_unknown_key_is_unauthenticated() -> None:
    key = generate_key()
    with pytest.raises(AuthError) as err:
        await authenticator(MemoryKeyStore()).authenticate_client({"x-api-key": key}, "bot-a")
    assert err.value.code == UNAUTHENTICATED and key not in err.value.details


async def test_revoked_key_is_unauthenticated() -> None:
    store = MemoryKeyStore()
    key = store.add("bot-a", revoked=True)
    with pytest.raises(AuthError) as err:
        await authenticator(store).authenticate_client({"x-api-key": key}, "bot-a")
    assert err.value.code == UNAUTHENTICATED and "revoked" in err.value.details


async def test_verified_keys_are_cached_until_the_ttl_then_revocation_applies() -> None:
    store, clock = MemoryKeyStore(), Clock()
    key = store.add("bot-a")
    auth = authenticator(store, clock)
    for _ in range(5):
        await auth.authenticate_client({"x-api-key": key}, "bot-a")
    assert store.lookups == 1
    store.records[hash_key(key)] = KeyRecord("bot-a", revoked=True)
    clock.now += 29.0
    await auth.authenticate_client({"x-api-key": key}, "bot-a")  # still within the documented TTL
    clock.now += 1.0
    with pytest.raises(AuthError):
        await auth.authenticate_client({"x-api-key": key}, "bot-a")


async def test_cached_key_still_refuses_impersonation() -> None:
    store = MemoryKeyStore()
    key = store.add("bot-a")
    auth = authenticator(store)
    await auth.authenticate_client({"x-api-key": key}, "bot-a")
    with pytest.raises(AuthError) as err:
        await auth.authenticate_client({"x-api-key": key}, "bot-b")
    assert err.value.code == grpc.StatusCode.PERMISSION_DENIED


async def test_failures_are_not_cached() -> None:
    store = MemoryKeyStore()
    auth = authenticator(store)
    for _ in range(3):
        with pytest.raises(AuthError):
            await auth.authenticate_client({"x-api-key": "ck_nope"}, "bot-a")
    assert store.lookups == 3


async def test_a_failing_store_refuses_with_unavailable() -> None:
    class Broken:
        async def find(self, key_hash: str) -> KeyRecord | None:
            raise ConnectionError("db down")

    auth = Authenticator(True, ["t"], store=Broken())
    with pytest.raises(AuthError) as err:
        await auth.authenticate_client({"x-api-key": "ck_x"}, "bot-a")
    assert err.value.code == grpc.StatusCode.UNAVAILABLE


def test_ttl_cache_is_bounded_lru() -> None:
    clock = Clock()
    cache = TtlCache(ttl=30.0, max_size=2, clock=clock)
    cache.put("a", "1")
    cache.put("b", "2")
    assert cache.get("a") == "1"  # "b" is now least recently used
    cache.put("c", "3")
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("1", None, "3")
    clock.now += 30.0
    assert cache.get("a") is None and len(cache) == 1


# ---------------------------------------------------------------------------- operators


def test_operator_token_returns_a_non_secret_identity() -> None:
    identity = authenticator(MemoryKeyStore(), tokens=("tok-a", "tok-b")).authenticate_operator(
        {"authorization": "Bearer tok-b"})
    assert identity == f"operator:{hash_key('tok-b')[:6]}"
    assert "tok-b" not in identity


@pytest.mark.parametrize("value", ["bearer tok-a", "Bearer   tok-a  ", "BEARER tok-a"])
def test_bearer_scheme_is_case_insensitive_and_trimmed(value: str) -> None:
    assert authenticator(MemoryKeyStore()).authenticate_operator({"authorization": value}).startswith("operator:")


@pytest.mark.parametrize("metadata", [
    {},
    {"authorization": "tok-a"},
    {"authorization": "Basic tok-a"},
    {"authorization": "Bearer"},
    {"authorization": "Bearer "},
    {"authorization": "Bearer tok-wrong"},
    {"x-api-key": "tok-a"},
])
def test_bad_operator_credentials_are_unauthenticated(metadata: dict[str, str]) -> None:
    with pytest.raises(AuthError) as err:
        authenticator(MemoryKeyStore()).authenticate_operator(metadata)
    assert err.value.code == UNAUTHENTICATED
    assert "tok-a" not in err.value.details and "tok-wrong" not in err.value.details


def test_no_configured_tokens_rejects_every_operator(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        auth = authenticator(MemoryKeyStore(), tokens=())
    assert "auth.no_operator_tokens" in caplog.text
    with pytest.raises(AuthError) as err:
        auth.authenticate_operator({"authorization": "Bearer anything"})
    assert "CRYPTO_OPERATOR_TOKENS" in err.value.details


def test_operator_tokens_ignore_empty_entries() -> None:
    tokens = OperatorTokens(["", "real"])
    assert tokens.identify("") is None and tokens.identify("real") is not None


def test_bearer_token_parsing() -> None:
    assert bearer_token({"authorization": "Bearer abc.def"}) == "abc.def"


# ---------------------------------------------------------------------------- auth off


async def test_auth_off_lets_everyone_in_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryKeyStore()
    with caplog.at_level(logging.WARNING):
        auth = authenticator(store, enabled=False)
    assert "auth.disabled" in caplog.text
    await auth.authenticate_client({}, "anyone")
    assert auth.authenticate_operator({}) == ANONYMOUS
    assert store.lookups == 0
