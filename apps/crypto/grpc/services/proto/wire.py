"""Request bytes that do not parse become a Malformed value, never an exception inside gRPC.

grpc.aio turns a deserializer that raises into UNKNOWN ("Unexpected DecodeError") before any of our
code runs; a deserializer that returns Malformed lets the RPC answer INVALID_ARGUMENT itself.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Malformed:
    """Bytes that are not a valid message of the expected type; `error` says why (safe to show)."""

    type_name: str
    error: str

    @property
    def details(self) -> str:
        return f"malformed {self.type_name}: {self.error}"
