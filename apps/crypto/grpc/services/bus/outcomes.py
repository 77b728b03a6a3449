"""What a command attempt ends as (pure data + failure-ack builder)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ...generated import common_pb2


@dataclass(frozen=True)
class Delivery:
    """Whether a command reached the client's live stream, where, and when this was known."""

    delivered: bool
    error: str = ""
    routed_to: str = ""
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Answer:
    """How an ExecuteCommandSync ended: the ack to return and where it came from."""

    ack: common_pb2.CommandAck
    delivery: Delivery
    from_stream: bool = False  # the ack travelled back from the client's stream (already published there)
    timed_out: bool = False


def failure_ack(command_id: str, error: str, message: str = "") -> common_pb2.CommandAck:
    """The CommandAck a caller gets when the client never acknowledged."""
    ack = common_pb2.CommandAck(command_id=command_id, success=False, error=error, message=message)
    ack.timestamp.GetCurrentTime()
    return ack
