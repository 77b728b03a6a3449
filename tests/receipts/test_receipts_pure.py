"""Which writes a batch stores and receipts for a receipting bot: pure rules, no database."""

from __future__ import annotations

from dataclasses import replace

from apps.crypto.grpc.services.handlers.heartbeat import HeartbeatWrite
from apps.crypto.grpc.services.inbound import Refusal
from apps.crypto.grpc.services.ingest.receipts import by_client, keep_new, keys_of

from .conftest import context


def receipted(client_id: str, message_id: str) -> HeartbeatWrite:
    return HeartbeatWrite(replace(context(client_id), message_id=message_id, receipt=True), 1)


def test_keys_are_the_receipted_writes_each_once_in_message_order() -> None:
    plain = HeartbeatWrite(context("a"), 1)  # a bot that never asked: no key, whatever its message_id
    no_id = Refusal(replace(context("a"), message_id="", receipt=True), "log", "message_id: required")
    writes = [receipted("a", "m2"), plain, receipted("b", "m1"), receipted("a", "m2"), no_id, receipted("a", "m1")]
    assert keys_of(writes) == [("a", "m2"), ("b", "m1"), ("a", "m1")]
    assert by_client(keys_of(writes)) == {"a": ["m2", "m1"], "b": ["m1"]}


def test_only_the_first_write_of_a_new_key_is_kept_and_resends_are_dropped() -> None:
    first, again, old = receipted("a", "m1"), receipted("a", "m1"), receipted("a", "m0")
    plain = HeartbeatWrite(context("a"), 1)
    assert keep_new([first, plain, again, old], new={("a", "m1")}) == [first, plain]
    assert keep_new([old], new=set()) == []
