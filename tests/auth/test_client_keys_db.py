"""Keys stored through the ORM: hashed, bound to a client_id, checked by the default DjangoKeyStore."""

from __future__ import annotations

import uuid
from io import StringIO

import grpc
import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.crypto.grpc.services.auth import AuthError, Authenticator, create_client_key, hash_key
from apps.crypto.models import ClientApiKey


def unique_id(prefix: str = "bot") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def test_create_client_key_stores_only_hash_and_prefix() -> None:
    client_id = unique_id()
    key = await create_client_key(client_id)
    row = await ClientApiKey.objects.aget(client_id=client_id)
    assert row.key_hash == hash_key(key)
    assert key.startswith(row.prefix) and len(row.prefix) < len(key) // 3
    assert key not in {row.client_id, row.key_hash, row.prefix}


async def test_create_client_key_validates_client_id() -> None:
    with pytest.raises(ValueError):
        await create_client_key("")


async def test_db_backed_authentication_accepts_binds_and_revokes() -> None:
    client_id = unique_id()
    key = await create_client_key(client_id)
    await Authenticator(True, ["t"]).authenticate_client({"x-api-key": key}, client_id)
    with pytest.raises(AuthError) as err:
        await Authenticator(True, ["t"]).authenticate_client({"x-api-key": key}, unique_id("other"))
    assert err.value.code == grpc.StatusCode.PERMISSION_DENIED
    await ClientApiKey.objects.filter(key_hash=hash_key(key)).aupdate(revoked=True)
    with pytest.raises(AuthError) as err:
        await Authenticator(True, ["t"]).authenticate_client({"x-api-key": key}, client_id)
    assert err.value.code == grpc.StatusCode.UNAUTHENTICATED


async def test_two_keys_for_one_client_both_work() -> None:
    client_id = unique_id()
    keys = [await create_client_key(client_id), await create_client_key(client_id)]
    auth = Authenticator(True, ["t"])
    for key in keys:
        await auth.authenticate_client({"x-api-key": key}, client_id)


# ---------------------------------------------------------------------------- management command


def run_create(client_id: str) -> list[str]:
    out = StringIO()
    call_command("create_client_key", client_id, stdout=out)
    return out.getvalue().splitlines()


def test_command_prints_the_key_once_with_a_usage_hint() -> None:
    client_id = unique_id()
    lines = run_create(client_id)
    assert len(lines) == 2
    key, hint = lines
    assert key.startswith("ck_")
    assert "x-api-key" in hint and client_id in hint and key not in hint
    row = ClientApiKey.objects.get(client_id=client_id)
    assert row.key_hash == hash_key(key) and not row.revoked


async def test_command_key_authenticates() -> None:
    client_id = unique_id()
    key, _ = await sync_to_async(run_create)(client_id)
    await Authenticator(True, ["t"]).authenticate_client({"x-api-key": key}, client_id)


@pytest.mark.parametrize("client_id", ["", "x" * 129])
def test_command_rejects_bad_client_ids(client_id: str) -> None:
    before = ClientApiKey.objects.count()
    with pytest.raises(CommandError):
        run_create(client_id)
    assert ClientApiKey.objects.count() == before
