"""CryptoProtobufConverter and the client pk cache: pure logic, no database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.services.inbound import Rejected
from apps.crypto.grpc.services.handlers.clients import ClientPkCache
from apps.crypto.grpc.services.proto.converters import CryptoProtobufConverter as convert
from apps.crypto.models import ClientStatus

FIELD = "wallet_update.balance_available"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0", Decimal(0)),
        ("1.5", Decimal("1.5")),
        ("+2", Decimal(2)),
        ("12345678901234567890.123456789012345678", Decimal("12345678901234567890.123456789012345678")),
        ("1E-7", Decimal("0.0000001")),  # what str(Decimal) produces for small values
        ("1.5E+3", Decimal(1500)),
        ("1.500000000000000000000000", Decimal("1.5")),  # trailing zeros lose nothing
        ("-0", Decimal(0)),
    ],
)
def test_decimal_text_accepts(raw: str, expected: Decimal) -> None:
    value = Decimal(convert.decimal_text(raw, FIELD))
    assert value == expected
    assert not value.is_signed()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("abc", "wallet_update.balance_available: not a decimal: 'abc'"),
        ("", "wallet_update.balance_available: empty, expected a decimal"),
        ("NaN", "wallet_update.balance_available: not a decimal: 'NaN'"),
        ("sNaN", "wallet_update.balance_available: not a decimal: 'sNaN'"),
        ("Infinity", "wallet_update.balance_available: not a decimal: 'Infinity'"),
        ("-inf", "wallet_update.balance_available: not a decimal: '-inf'"),
        ("1e999", "wallet_update.balance_available: more than 20 integer digits: '1e999'"),
        ("1e-999", "wallet_update.balance_available: more than 18 decimal places: '1e-999'"),
        ("1" * 21, f"wallet_update.balance_available: more than 20 integer digits: '{'1' * 21}'"),
        ("0." + "1" * 19, f"wallet_update.balance_available: more than 18 decimal places: '0.{'1' * 19}'"),
        ("-1", "wallet_update.balance_available: negative: '-1'"),
        (" 1", "wallet_update.balance_available: not a decimal: ' 1'"),
        ("1,5", "wallet_update.balance_available: not a decimal: '1,5'"),
        ("1_000", "wallet_update.balance_available: not a decimal: '1_000'"),
        ("0x10", "wallet_update.balance_available: not a decimal: '0x10'"),
        (".5", "wallet_update.balance_available: not a decimal: '.5'"),
        ("\u0661", "wallet_update.balance_available: not a decimal: '\u0661'"),  # Arabic-Indic one
    ],
)
def test_decimal_text_rejects_with_precise_reason(raw: str, reason: str) -> None:
    with pytest.raises(Rejected) as caught:
        convert.decimal_text(raw, FIELD)
    assert caught.value.reason == reason


def test_decimal_text_quotes_long_input_bounded() -> None:
    with pytest.raises(Rejected) as caught:
        convert.decimal_text("9" * 5000, FIELD)
    assert len(caught.value.reason) < 120
    assert caught.value.reason.startswith(f"{FIELD}: not a decimal: '999")


def test_decimal_text_allows_negative_only_when_asked() -> None:
    assert convert.decimal_text("-1.25", "x", allow_negative=True) == "-1.25"


@given(st.decimals(min_value=0, max_value=Decimal(10**20) - 1, places=18, allow_nan=False, allow_infinity=False))
def test_every_storable_decimal_round_trips(value: Decimal) -> None:
    assert Decimal(convert.decimal_text(str(value), FIELD)) == value


def test_unset_timestamp_is_none() -> None:
    assert convert.to_datetime(Timestamp(), "f") is None


def test_timestamp_round_trip_is_aware_utc() -> None:
    when = datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=timezone(timedelta(hours=2)))
    stamp = Timestamp()
    stamp.FromDatetime(when)
    back = convert.to_datetime(stamp, "f")
    assert back == when
    assert back is not None and back.utcoffset() == timedelta(0)


def test_timestamp_out_of_range_is_rejected() -> None:
    with pytest.raises(Rejected, match=r"^wallet_update.last_sync: timestamp out of range"):
        convert.to_datetime(Timestamp(seconds=10**13), "wallet_update.last_sync")


def test_every_wire_status_maps_to_its_own_model_status() -> None:
    statuses = [convert.status_from_proto(value) for value in common_pb2.ClientStatus.values()]
    assert set(statuses) <= set(ClientStatus.values) and len(set(statuses)) == len(statuses)


def test_status_mapping_names() -> None:
    assert convert.status_from_proto(common_pb2.CLIENT_STATUS_PAUSED) == ClientStatus.PAUSED


def test_status_from_a_newer_contract_is_rejected() -> None:
    with pytest.raises(Rejected, match=r"^status.status: unknown client status 42$"):
        convert.status_from_proto(42, "status.status")


def test_check_text() -> None:
    assert convert.check_text("abc", "log.message", 3) == "abc"
    with pytest.raises(Rejected, match=r"^log.message: too long \(4 chars, max 3\)$"):
        convert.check_text("abcd", "log.message", 3)
    with pytest.raises(Rejected, match=r"^log.message: contains a NUL character$"):
        convert.check_text("a\x00", "log.message", 3)
    with pytest.raises(Rejected, match=r"^wallet_update.symbol: required$"):
        convert.check_text("", "wallet_update.symbol", 3, required=True)


def test_client_pk_cache_is_bounded_lru() -> None:
    cache = ClientPkCache(capacity=2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    cache.forget("a")
    assert cache.get("a") is None and len(cache) == 1
