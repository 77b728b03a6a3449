"""Request bytes that do not parse become a Malformed value, never an exception inside gRPC.

grpc.aio turns a deserializer that raises into UNKNOWN ("Unexpected DecodeError") before any of our
code runs; a deserializer that returns Malformed lets the RPC answer INVALID_ARGUMENT itself.

add_service() registers CryptoStreamingService like the generated add_..._to_server, but builds the
method handlers from the service descriptor with such deserializers (the generated code stays as
scripts/generate_protos.py writes it). Unary methods get the Malformed as their request (errors.rpc_boundary
answers it); ConnectClient gets it from context.read().
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message

from ...generated import crypto_streaming_pb2

SERVICE: Final[ServiceDescriptor] = crypto_streaming_pb2.DESCRIPTOR.services_by_name["CryptoStreamingService"]
MAX_ERROR_CHARS: Final = 200  # a parser message is short; bound it anyway, it ends up in a status


@dataclass(frozen=True, slots=True)
class Malformed:
    """Bytes that are not a valid message of the expected type; `error` says why (safe to show)."""

    type_name: str
    error: str

    @property
    def details(self) -> str:
        return f"malformed {self.type_name}: {self.error}"


def _parse_error(type_name: str, exc: Exception) -> str:
    """The parser's reason without its "Error parsing message with type 'X': " prefix; never the input bytes."""
    if not isinstance(exc, DecodeError):
        return f"cannot parse ({type(exc).__name__})"
    text = str(exc)
    prefix = f"Error parsing message with type '{type_name}'"
    if text.startswith(prefix):
        text = text[len(prefix):].lstrip(": ")
    return text[:MAX_ERROR_CHARS] or "cannot parse"


def safe_deserializer(message_type: Descriptor) -> Callable[[bytes], Message | Malformed]:
    """FromString of the message class, except that a failure returns Malformed instead of raising."""
    parse = message_factory.GetMessageClass(message_type).FromString
    type_name = message_type.full_name

    def deserialize(data: bytes) -> Message | Malformed:
        try:
            return parse(data)
        except Exception as exc:  # anything raised here would reach the caller as UNKNOWN
            return Malformed(type_name, _parse_error(type_name, exc))

    return deserialize


def _serializer(message_type: Descriptor) -> Callable[[Message], bytes]:
    return message_factory.GetMessageClass(message_type).SerializeToString


_HANDLER_FACTORIES: Final = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def method_handlers(servicer: Any, service: ServiceDescriptor = SERVICE) -> dict[str, grpc.RpcMethodHandler]:
    """One handler per method of `service`, bound to the servicer's method of the same name."""
    handlers = {}
    for method in service.methods:
        factory = _HANDLER_FACTORIES[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = factory(getattr(servicer, method.name),
                                        request_deserializer=safe_deserializer(method.input_type),
                                        response_serializer=_serializer(method.output_type))
    return handlers


def add_service(servicer: Any, server: Any, service: ServiceDescriptor = SERVICE) -> None:
    """Register `servicer` for `service` on `server` (what the generated add_..._to_server does)."""
    handlers = method_handlers(servicer, service)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)  # a replica's server drops it: serving.py


__all__ = ["Malformed", "SERVICE", "add_service", "method_handlers", "safe_deserializer"]
