"""proto.wire: undecodable request bytes become a Malformed value (never an exception inside grpc.aio), and
add_service registers every RPC of the contract from its descriptor."""

from __future__ import annotations

import grpc
import pytest

from apps.crypto.apps import crypto_app
from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services.handlers import grpc_handlers
from apps.crypto.grpc.services.proto.wire import SERVICE, Malformed, add_service, method_handlers, safe_deserializer


class Servicer:
    def ConnectClient(self, requests, context): ...
    def SendCommandToClient(self, request, context): ...
    def ExecuteCommandSync(self, request, context): ...
    def BroadcastCommand(self, request, context): ...


def test_valid_bytes_parse_to_the_message():
    request = pb2.SendCommandRequest(client_id="bot", command=pb2.DjangoCommand(ping=pb2.PingCommand(sequence=3)))
    parsed = safe_deserializer(pb2.SendCommandRequest.DESCRIPTOR)(request.SerializeToString())
    assert isinstance(parsed, pb2.SendCommandRequest) and parsed == request


def test_garbage_and_bad_utf8_become_malformed_with_a_safe_reason():
    deserialize = safe_deserializer(pb2.ClientMessage.DESCRIPTOR)
    corrupt = deserialize(b"\xff\xff\xff")
    assert corrupt == Malformed("crypto.ClientMessage", "Wire format was corrupt")
    assert corrupt.details == "malformed crypto.ClientMessage: Wire format was corrupt"
    bad_text = deserialize(b"\x0a\x02\xff\xfe")  # client_id with invalid UTF-8
    assert isinstance(bad_text, Malformed) and "UTF-8" in bad_text.error and "\xff" not in bad_text.details


def test_truncated_message_becomes_malformed():
    data = pb2.ClientMessage(client_id="bot-1", message_id="m").SerializeToString()
    assert isinstance(safe_deserializer(pb2.ClientMessage.DESCRIPTOR)(data[:-2]), Malformed)


def test_handlers_follow_the_descriptor_with_safe_deserializers_and_normal_serializers():
    handlers = method_handlers(Servicer())
    assert set(handlers) == {method.name for method in SERVICE.methods}
    connect, send, execute = (handlers[name] for name in ("ConnectClient", "SendCommandToClient", "ExecuteCommandSync"))
    assert connect.request_streaming and connect.response_streaming
    assert not send.request_streaming and not send.response_streaming and not execute.request_streaming
    assert isinstance(connect.request_deserializer(b"\xff"), Malformed)
    assert isinstance(execute.request_deserializer(b"\xff"), Malformed)
    broadcast = handlers["BroadcastCommand"]  # #16: one request, a stream of results
    assert not broadcast.request_streaming and broadcast.response_streaming
    assert isinstance(broadcast.request_deserializer(b"\xff"), Malformed)
    ack = common_pb2.CommandAck(command_id="c", success=True)
    assert execute.response_serializer(ack) == ack.SerializeToString()
    command = pb2.DjangoCommand(command_id="c", ping=pb2.PingCommand())
    assert connect.response_serializer(command) == command.SerializeToString()


def test_add_service_registers_generic_and_registered_handlers():
    class FakeServer:
        def __init__(self):
            self.generic, self.registered = [], {}

        def add_generic_rpc_handlers(self, handlers):
            self.generic.extend(handlers)

        def add_registered_method_handlers(self, name, handlers):
            self.registered[name] = handlers

    server = FakeServer()
    add_service(Servicer(), server)
    assert set(server.registered["crypto.CryptoStreamingService"]) == {
        "ConnectClient", "SendCommandToClient", "ExecuteCommandSync", "BroadcastCommand"}
    details = type("D", (), {"method": "/crypto.CryptoStreamingService/ExecuteCommandSync",
                             "invocation_metadata": ()})()
    assert isinstance(server.generic[0].service(details), grpc.RpcMethodHandler)


async def test_grpc_handlers_without_a_server_names_the_service_and_its_registration():
    from tests.support.grpc_server import running_server

    async with running_server(auth=False):
        [(service, register)] = grpc_handlers(None)
    assert service.__name__ == "CryptoStreamingService" and register is add_service


def test_grpc_handlers_before_a_replica_is_started_says_so(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(crypto_app(), "servicer", None)
    with pytest.raises(RuntimeError, match="start_replica"):
        grpc_handlers(None)
