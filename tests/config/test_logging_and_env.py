"""Log lines are structured; env and streaming config refuse nonsense with a clear message."""

from __future__ import annotations

import json
import logging

import pytest

from apps.crypto.grpc.services.config import CryptoStreamingConfig
from config.env import Environment
from config.logging import JsonFormatter, ReplicaFilter, render


def record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("x", logging.INFO, __file__, 1, msg, args or None, None)


def test_event_and_pairs_become_fields():
    line = render(record("stream.opened client_id=%s replica=%s epoch=%d", "bot-1", "r1", 3))
    assert (line.event, line.fields) == ("stream.opened", {"client_id": "bot-1", "replica": "r1", "epoch": "3"})
    line = render(record("message.rejected client_id=%s message_id=%r reason=%s", "c", "m 1", "x"))
    assert line.fields == {"client_id": "c", "message_id": "m 1", "reason": "x"}
    assert render(record("auth.disabled setting=CRYPTO_AUTH value=off")).fields == {"setting": "CRYPTO_AUTH",
                                                                                   "value": "off"}
    assert render(record("Plain sentence without event key=%s", "v")) == ("Plain sentence without event key=v",
                                                                          None, {})


def test_ordinary_values_read_as_before():
    """Bare `key=value` for ordinary values, %r of an ordinary string as before: only odd values get quoted."""
    for msg, args in [("stream.opened client_id=%s replica=%s epoch=%d", ("bot-1", "r1", 3)),
                      ("message.rejected client_id=%s message_id=%r payload=%s", ("c", "m-1", "transaction")),
                      ("replica.started address=%s:%d grpc_experiments=%s", ("[::]", 50051, "")),
                      ("bus.listener_error error=%s retry_in=%.2f", ("ConnectionError", 0.5)),
                      ("ingest.close_incomplete left=%d timeout=%.1f", (3, 8.0))]:
        rec = record(msg, *args)
        assert render(rec).text == rec.getMessage()


def test_simple_formats_render_as_the_general_path():
    """The bare-%s fast path (nearly every call site) gives the same text and fields as the general one."""
    from config.logging import _fill, _plan

    odd = ["bot-1", "m 1", 'say "hi"', "a=b", "tab\there", "new\nline", "", "back\\slash", "\x07bell", "ünï"]
    for values in [(v, v) for v in odd] + [(3, None), (True, 2.5), (b"raw", ("t", 1)), ([1, 2], {"k": "v"})]:
        for msg in ("command.executed client_id=%s command_id=%s", "plain %s and %s", "x.y a=%s b=%s"):
            plan = _plan(msg, True)
            assert plan.simple
            rec = record(msg, *values)
            assert render(rec) == _fill(plan, rec.args), (msg, values)
            assert render(rec, with_fields=False).text == render(rec).text
    assert not _plan("x.y a=%r b=%d", True).simple and not _plan("x.y address=%s:%s", True).simple


def test_json_lines_carry_replica_event_and_keys():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "command.sent client_id=%s command_id=%s",
                               ("c1", "k1"), None)
    ReplicaFilter("r-7").filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert (line["replica"], line["event"], line["client_id"], line["command_id"]) == ("r-7", "command.sent",
                                                                                      "c1", "k1")


@pytest.mark.parametrize("env, message", [
    ({"CRYPTO_AUTH": "maybe"}, "CRYPTO_AUTH must be on or off"),
    ({"GRPC_PORT": "http"}, "GRPC_PORT must be an integer"),
    ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be text or json"),
    ({"METRICS_PORT": "-1"}, "METRICS_PORT must be >= 0"),
    ({"GRPC_EXPERIMENTS": "ph2_server;rm -rf"}, "GRPC_EXPERIMENTS must be comma-separated experiment names"),
    ({"DJANGO_ALLOW_DEV_SECRET_KEY": "please"}, "DJANGO_ALLOW_DEV_SECRET_KEY must be on or off"),
])
def test_environment_refuses_nonsense(env, message):
    with pytest.raises(ValueError, match=message):
        Environment.from_mapping(env)


def test_environment_defaults_and_token_list():
    env = Environment.from_mapping({"CRYPTO_OPERATOR_TOKENS": " a, b ,,", "REDIS_URL": "redis://x"})
    assert env.operator_tokens == ("a", "b") and env.auth_enabled and env.grpc_port == 50051
    assert env.redis_url == "redis://x" and env.metrics_port == 7464 and env.metrics_host == ""
    assert env.grpc_experiments == ()
    assert not env.allow_dev_secret_key and not env.debug
    assert Environment.from_mapping({"GRPC_EXPERIMENTS": "ph2_server, -fuse_filters"}).grpc_experiments == (
        "ph2_server", "-fuse_filters")


def test_environment_blank_values_and_metrics_host():
    env = Environment.from_mapping({"GRPC_HOST": "", "DJANGO_ALLOWED_HOSTS": "", "METRICS_HOST": " 127.0.0.1 ",
                                    "METRICS_PORT": "9999", "LOG_LEVEL": "debug", "LOG_FORMAT": "JSON"})
    assert (env.grpc_host, env.allowed_hosts) == ("[::]", ("localhost", "127.0.0.1", "[::1]"))
    assert (env.metrics_host, env.metrics_port, env.log_level, env.log_format) == ("127.0.0.1", 9999, "DEBUG",
                                                                                    "json")
    for name in ("GRPC_PORT", "METRICS_PORT", "CRYPTO_AUTH"):  # blank is not unset for these: refused, named
        with pytest.raises(ValueError, match=f"^{name} must be"):
            Environment.from_mapping({name: ""})


def test_bad_values_fail_with_one_plain_message():
    """pydantic-settings reads the variables; the error is still one line naming the variable, no pydantic dump."""
    with pytest.raises(ValueError) as caught:
        Environment.from_mapping({"GRPC_PORT": "50051x"})
    assert str(caught.value) == "GRPC_PORT must be an integer, got '50051x'"
    with pytest.raises(ValueError) as caught:
        CryptoStreamingConfig.from_env({"CRYPTO_ACK_TIMEOUT": "soon"})
    assert str(caught.value) == "CRYPTO_ACK_TIMEOUT must be a number, got 'soon'"


@pytest.mark.parametrize("env, message", [
    ({"CRYPTO_HEARTBEAT_TIMEOUT": "10", "CRYPTO_HEARTBEAT_INTERVAL": "30"}, "heartbeat_timeout must exceed"),
    ({"CRYPTO_ACK_TIMEOUT": "0"}, "ack_timeout must be > 0"),
    ({"CRYPTO_OWNERSHIP_TTL": "3", "CRYPTO_OWNERSHIP_REFRESH": "2"}, "at least twice"),
    ({"CRYPTO_ENABLE_PING": "sometimes"}, "CRYPTO_ENABLE_PING must be on or off"),
    ({"CRYPTO_CENTRIFUGO_CHANNEL_PATTERN": "crypto:all"}, "must contain {client_id}"),
    ({"CRYPTO_INGEST_BATCH_SIZE": "0"}, "ingest_batch_size must be >= 1"),
    ({"CRYPTO_INGEST_BATCH_SIZE": "500", "CRYPTO_INGEST_BUFFER_LIMIT": "100"}, "at most ingest_buffer_limit"),
    ({"CRYPTO_INGEST_FLUSH_INTERVAL": "0"}, "ingest_flush_interval must be > 0"),
])
def test_streaming_config_refuses_nonsense(env, message):
    with pytest.raises(ValueError, match=message):
        CryptoStreamingConfig.from_env(env)


def test_streaming_config_reads_env_and_grpc_aliases():
    config = CryptoStreamingConfig.from_env({"CRYPTO_PING_INTERVAL": "5", "GRPC_SHUTDOWN_GRACE": "30",
                                             "CRYPTO_ENABLE_PING": "off"})
    assert (config.ping_interval, config.shutdown_grace, config.enable_ping) == (5.0, 30.0, False)


def test_streaming_config_reads_the_ingest_knobs():
    config = CryptoStreamingConfig.from_env({"CRYPTO_INGEST_BATCH_SIZE": "100", "CRYPTO_INGEST_FLUSH_INTERVAL": "0.5",
                                             "CRYPTO_INGEST_BUFFER_LIMIT": "1000"})
    assert (config.ingest_batch_size, config.ingest_flush_interval, config.ingest_buffer_limit) == (100, 0.5, 1000)
