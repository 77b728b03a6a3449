"""The committed generated code matches protos/, and the contract keeps the guide's numbers."""

from __future__ import annotations

import subprocess
import sys

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from tests.support.cluster import ROOT


def test_generated_code_is_not_stale():
    result = subprocess.run([sys.executable, "scripts/generate_protos.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def numbers(message) -> dict[str, int]:
    return {f.name: f.number for f in message.DESCRIPTOR.fields}


def test_field_numbers_are_the_released_ones():
    assert numbers(pb2.ClientMessage) == {
        "client_id": 1, "message_id": 2, "timestamp": 3, "register": 10, "wallet_update": 11,
        "transaction": 12, "status": 13, "heartbeat": 14, "error": 15, "log": 16, "command_ack": 17}
    assert numbers(pb2.DjangoCommand) == {
        "command_id": 1, "timestamp": 2, "ping": 10, "pause": 11, "resume": 12, "sync_wallets": 13,
        "request_status": 14, "retry": 3, "receipt": 15}
    assert numbers(pb2.ClientRegistration) == {
        "client_name": 1, "client_type": 2, "version": 3, "api_url": 4, "wants_receipts": 5}
    assert numbers(pb2.MessageReceipt) == {"message_ids": 1}  # pinned by #14: outside bots code against it
    assert numbers(common_pb2.CommandAck) == {
        "command_id": 1, "success": 2, "message": 3, "error": 4, "current_status": 5, "timestamp": 6}
    assert dict(common_pb2.ClientStatus.items()) == {
        "CLIENT_STATUS_UNKNOWN": 0, "CLIENT_STATUS_ACTIVE": 1, "CLIENT_STATUS_PAUSED": 2,
        "CLIENT_STATUS_ERROR": 3, "CLIENT_STATUS_STOPPED": 4}
    assert numbers(pb2.SendCommandRequest) == {"client_id": 1, "command": 2}
    assert numbers(pb2.SendCommandResponse) == {"success": 1, "error": 2, "command_id": 3}


def test_service_methods_are_the_released_ones():
    service = pb2.DESCRIPTOR.services_by_name["CryptoStreamingService"]
    assert pb2.DESCRIPTOR.package == "crypto"
    methods = {m.name: (m.input_type.name, m.output_type.name, m.client_streaming, m.server_streaming)
               for m in service.methods}
    assert methods == {
        "ConnectClient": ("ClientMessage", "DjangoCommand", True, True),
        "SendCommandToClient": ("SendCommandRequest", "SendCommandResponse", False, False),
        "ExecuteCommandSync": ("SendCommandRequest", "CommandAck", False, False),
        "BroadcastCommand": ("BroadcastCommandRequest", "BroadcastResult", False, True)}  # pinned by #16


def test_broadcast_messages_are_the_pinned_ones():
    """#16 pins these names and numbers: outside clients code against them."""
    assert numbers(pb2.ClientSelector) == {"client_ids": 1, "client_type": 2, "all_connected": 3}
    assert numbers(pb2.BroadcastCommandRequest) == {"selector": 1, "command": 2}
    assert numbers(pb2.BroadcastClientResult) == {"client_id": 1, "ack": 2}
    assert numbers(pb2.BroadcastSummary) == {"broadcast_id": 1, "targeted": 2, "acked": 3, "failed": 4}
    assert numbers(pb2.BroadcastResult) == {"client": 1, "summary": 2}
    oneofs = {o.name: [f.name for f in o.fields] for o in pb2.BroadcastResult.DESCRIPTOR.oneofs}
    assert oneofs == {"result": ["client", "summary"]}
    fields = pb2.BroadcastCommandRequest.DESCRIPTOR.fields_by_name
    assert fields["selector"].message_type.name == "ClientSelector"
    assert fields["command"].message_type.name == "DjangoCommand"
    assert pb2.BroadcastClientResult.DESCRIPTOR.fields_by_name["ack"].message_type.full_name == "crypto.CommandAck"
    assert pb2.ClientSelector.DESCRIPTOR.fields_by_name["client_ids"].is_repeated
