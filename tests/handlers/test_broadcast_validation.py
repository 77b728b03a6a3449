"""validate_broadcast: a selector sets exactly one of its ways, within bounds; the command is checked as any."""

from __future__ import annotations

import grpc
import pytest

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services.errors import InvalidRequest, status_for
from apps.crypto.grpc.services.proto.validation import (
    MAX_BROADCAST_ID,
    MAX_CLIENT_TYPE,
    MAX_SELECTOR_IDS,
    validate_broadcast,
)


def request(selector: pb2.ClientSelector | None = None, command_id: str = "",
            command: pb2.DjangoCommand | None = None) -> pb2.BroadcastCommandRequest:
    command = command or pb2.DjangoCommand(command_id=command_id, pause=pb2.PauseClientCommand(reason="stop"))
    req = pb2.BroadcastCommandRequest(command=command)
    if selector is not None:
        req.selector.CopyFrom(selector)
    return req


def refused(req: pb2.BroadcastCommandRequest) -> str:
    with pytest.raises(InvalidRequest) as caught:
        validate_broadcast(req)
    assert status_for(caught.value)[0] == grpc.StatusCode.INVALID_ARGUMENT
    return str(caught.value)


@pytest.mark.parametrize("selector", [
    pb2.ClientSelector(client_ids=["a", "b"]), pb2.ClientSelector(client_type="grid"),
    pb2.ClientSelector(all_connected=True)])
def test_each_single_way_is_accepted(selector):
    validate_broadcast(request(selector))


def test_a_selector_with_no_way_set_is_refused():
    assert "found none" in refused(request(pb2.ClientSelector()))
    assert "selector is required" in refused(request(None))


@pytest.mark.parametrize("selector, found", [
    (pb2.ClientSelector(client_ids=["a"], all_connected=True), "client_ids and all_connected"),
    (pb2.ClientSelector(client_type="grid", all_connected=True), "client_type and all_connected"),
    (pb2.ClientSelector(client_ids=["a"], client_type="grid"), "client_ids and client_type"),
])
def test_a_selector_with_two_ways_is_refused_naming_them(selector, found):
    message = refused(request(selector))
    assert "exactly one of client_ids, client_type, all_connected" in message and found in message


def test_selector_bounds():
    assert "selector.client_ids[1] is empty" in refused(request(pb2.ClientSelector(client_ids=["a", ""])))
    assert "too many" in refused(request(pb2.ClientSelector(client_ids=["x"] * (MAX_SELECTOR_IDS + 1))))
    assert "selector.client_ids[0] too long" in refused(request(pb2.ClientSelector(client_ids=["x" * 129])))
    assert "selector.client_type too long" in refused(
        request(pb2.ClientSelector(client_type="t" * (MAX_CLIENT_TYPE + 1))))


def test_the_command_is_validated_like_any_other():
    everyone = pb2.ClientSelector(all_connected=True)
    assert "command must set one of" in refused(request(everyone, command=pb2.DjangoCommand()))
    receipt = pb2.DjangoCommand(receipt=pb2.MessageReceipt(message_ids=["m"]))
    assert "sent by the service itself" in refused(request(everyone, command=receipt))
    assert "keepalive-" in refused(request(everyone, command_id="keepalive-1"))
    assert "of a broadcast" in refused(request(everyone, command_id="b" * (MAX_BROADCAST_ID + 1)))
    validate_broadcast(request(everyone, command_id="b" * MAX_BROADCAST_ID))
