import json

import pytest
from cent.exceptions import CentDecodeError

from apps.crypto.publishing.wire import MISSING_REPLY_CODE, batch_payload, broadcast_command, parse_batch_reply


def test_request_shapes_follow_the_http_api() -> None:
    command = broadcast_command(("crypto:a:updates", "crypto:all"), {"type": "x"}, "r:i:1")
    assert command == {"broadcast": {"channels": ["crypto:a:updates", "crypto:all"], "data": {"type": "x"},
                                     "idempotency_key": "r:i:1"}}
    assert batch_payload([command]) == {"commands": [command], "parallel": False}


def test_parse_reads_per_channel_and_per_command_errors() -> None:
    text = json.dumps({"replies": [
        {"broadcast": {"responses": [{"result": {}}, {"result": {"offset": 3, "epoch": "e"}}]}},
        {"broadcast": {"responses": [{"result": {}}, {"error": {"code": 102, "message": "unknown channel"}}]}},
        {"error": {"code": 107, "message": "bad request"}},
    ]})
    assert parse_batch_reply(text, [2, 2, 2]) == [[None, None], [None, 102], [107, 107]]


@pytest.mark.parametrize(
    "replies",
    [
        [],  # reply missing
        [None],
        [{"broadcast": {"responses": [{"result": {}}]}}],  # too short for two channels
        [{"broadcast": {}}],
        [{"publish": {}}],
    ],
)
def test_missing_or_short_replies_count_as_temporary(replies: list) -> None:
    assert parse_batch_reply(json.dumps({"replies": replies}), [2]) == [[MISSING_REPLY_CODE] * 2]


@pytest.mark.parametrize("text", ["", "<html>proxy</html>", "[]", '{"error": {"code": 100}}', '{"replies": {}}'])
def test_undecodable_reply_raises_cents_decode_error(text: str) -> None:
    with pytest.raises(CentDecodeError):
        parse_batch_reply(text, [1])
