"""Centrifugo HTTP API shapes as pure functions: the batch request we send, the verdicts in its reply.

Why not cent's request models and reply parsing: cent 5.2 builds a fresh pydantic TypeAdapter
for every reply of a batch (~0.2-0.6 ms of event-loop CPU per publication, measured), and a
batch reply holding an error surfaces as a bare KeyError that hides which command failed. The
shapes are small and documented, so we build and read them here and use cent for the transport
(URL, API key header, timeout, and its exception mapping).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cent.exceptions import CentDecodeError

MISSING_REPLY_CODE = 100  # a reply we did not get is treated like Centrifugo's temporary internal error


def broadcast_command(channels: Sequence[str], data: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
    """One publication to several channels, as a batch command."""
    return {"broadcast": {"channels": list(channels), "data": data, "idempotency_key": idempotency_key}}


def batch_payload(commands: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Sequential (parallel=false) so publications keep their order per client."""
    return {"commands": list(commands), "parallel": False}


def parse_batch_reply(text: str, expected: Sequence[int]) -> list[list[int | None]]:
    """Per command, the error code per target channel (None = that channel took it).

    `expected[i]` is how many channels command i addressed. A command-level {"error": ...}
    applies to all of its channels; replies missing or too short count as MISSING_REPLY_CODE.
    """
    replies = _replies(text)
    return [_command_codes(replies[i] if i < len(replies) else None, count) for i, count in enumerate(expected)]


def _replies(text: str) -> list[Any]:
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise CentDecodeError from exc
    replies = body.get("replies") if isinstance(body, dict) else None
    if not isinstance(replies, list):
        raise CentDecodeError
    return replies


def _command_codes(reply: Any, channels: int) -> list[int | None]:
    if not isinstance(reply, dict):
        return [MISSING_REPLY_CODE] * channels
    if reply.get("error"):
        return [_error_code(reply["error"])] * channels
    responses = (reply.get("broadcast") or {}).get("responses")
    if not isinstance(responses, list) or len(responses) < channels:
        return [MISSING_REPLY_CODE] * channels
    return [_error_code(item.get("error")) if isinstance(item, dict) and item.get("error") else None
            for item in responses[:channels]]


def _error_code(error: Any) -> int:
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, int) else MISSING_REPLY_CODE
