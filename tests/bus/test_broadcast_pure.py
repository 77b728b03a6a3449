"""bus/broadcast.py's pure parts: the per-bot command_id and the result batches on the wire."""

from __future__ import annotations

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.services.bus.broadcast import MAX_COMMAND_ID, bot_command_id, decode_batch, encode_batch
from apps.crypto.grpc.services.proto.validation import MAX_BROADCAST_ID, MAX_COMMAND_ID as COLUMN


def test_a_bots_command_id_is_the_broadcasts_and_its_own_within_the_column():
    assert MAX_COMMAND_ID == COLUMN
    assert bot_command_id("b1", "bot-7") == "b1:bot-7"
    long_id = bot_command_id("b" * MAX_BROADCAST_ID, "c" * 128)
    assert long_id.startswith("b" * MAX_BROADCAST_ID + ":") and len(long_id) <= MAX_COMMAND_ID
    assert long_id != bot_command_id("b" * MAX_BROADCAST_ID, "c" * 127 + "d")  # distinct clients, distinct ids


def test_batches_round_trip():
    ack = common_pb2.CommandAck(command_id="b:c1", success=True, message="done")
    batch = decode_batch(encode_batch("r1", ["c1", "c2"], [("c1", ack)], done=False))
    assert (batch.replica, batch.targets, batch.done) == ("r1", ["c1", "c2"], False)
    assert batch.results == [("c1", ack)]
    later = decode_batch(encode_batch("r1", None, [], done=True))
    assert later.targets is None and later.results == [] and later.done
