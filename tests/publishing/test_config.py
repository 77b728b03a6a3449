import pytest

from apps.crypto.publishing import PublisherConfig


def test_defaults_match_the_issue() -> None:
    config = PublisherConfig()
    assert (config.channel_pattern, config.all_channel) == ("crypto:{client_id}:updates", "crypto:all")
    assert (config.queue_size, config.batch_size, config.flush_interval) == (10_000, 100, 0.05)
    assert config.request_timeout == 3.0
    assert config.publish_commands and config.publish_acks
    assert not config.enabled


@pytest.mark.parametrize(
    ("url", "key", "enabled"),
    [("http://c:8000/api", "k", True), ("http://c:8000/api", "", False), ("", "k", False), ("", "", False)],
)
def test_enabled_needs_url_and_key(url: str, key: str, enabled: bool) -> None:
    assert PublisherConfig(api_url=url, api_key=key).enabled is enabled


def test_from_env_reads_url_key_and_overrides() -> None:
    config = PublisherConfig.from_env({
        "CENTRIFUGO_API_URL": " http://centrifugo:8000/api/ ",
        "CENTRIFUGO_API_KEY": "secret",
        "CENTRIFUGO_QUEUE_SIZE": "500",
        "CENTRIFUGO_BATCH_SIZE": "20",
        "CENTRIFUGO_FLUSH_INTERVAL": "0.2",
        "CENTRIFUGO_PUBLISH_ACKS": "off",
        "CENTRIFUGO_CHANNEL_PATTERN": "bots:{client_id}",
        "CENTRIFUGO_ALL_CHANNEL": "",
        "UNRELATED": "x",
    })
    assert config.api_url == "http://centrifugo:8000/api"
    assert config.api_key == "secret"
    assert (config.queue_size, config.batch_size, config.flush_interval) == (500, 20, 0.2)
    assert config.publish_acks is False and config.publish_commands is True
    assert (config.channel_pattern, config.all_channel) == ("bots:{client_id}", "")
    assert config.enabled


def test_from_empty_env_is_disabled_with_defaults() -> None:
    assert PublisherConfig.from_env({}) == PublisherConfig()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CENTRIFUGO_QUEUE_SIZE": "lots"}, "CENTRIFUGO_QUEUE_SIZE"),
        ({"CENTRIFUGO_PUBLISH_COMMANDS": "maybe"}, "CENTRIFUGO_PUBLISH_COMMANDS"),
        ({"CENTRIFUGO_QUEUE_SIZE": "0"}, "queue_size"),
        ({"CENTRIFUGO_API_URL": "centrifugo:8000"}, "http"),
    ],
)
def test_from_env_rejects_nonsense_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PublisherConfig.from_env(env)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"channel_pattern": "crypto:updates"},
        {"channel_pattern": "crypto:{client_id}:{client_id}"},
        {"channel_pattern": "crypto:{user}"},
        {"channel_pattern": "crypto:{client_id"},
        {"all_channel": "crypto:{client_id}"},
        {"queue_size": 0},
        {"batch_size": 0},
        {"batch_size": 20_000},
        {"flush_interval": -0.1},
        {"request_timeout": 0},
        {"max_retries": -1},
        {"backoff_base": 1.0, "backoff_max": 0.5},
        {"breaker_threshold": 0},
        {"breaker_cooldown": 0},
        {"auth_retry_interval": 0},
        {"close_timeout": float("nan")},
    ],
)
def test_validation_refuses_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PublisherConfig(**kwargs)  # type: ignore[arg-type]


def test_repr_never_shows_the_key() -> None:
    text = repr(PublisherConfig(api_url="http://c/api", api_key="s3cr3t-value"))
    assert "s3cr3t-value" not in text
    assert "api_key='***'" in text


def test_bad_override_message_is_one_line_naming_the_variable() -> None:
    with pytest.raises(ValueError) as caught:
        PublisherConfig.from_env({"CENTRIFUGO_QUEUE_SIZE": "lots"})
    assert str(caught.value) == "CENTRIFUGO_QUEUE_SIZE must be an integer, got 'lots'"
    with pytest.raises(ValueError) as caught:
        PublisherConfig.from_env({"CENTRIFUGO_PUBLISH_ACKS": "maybe"})
    assert str(caught.value) == "CENTRIFUGO_PUBLISH_ACKS must be on or off, got 'maybe'"
