"""Auto-publishing of client traffic to Centrifugo channels, without ever slowing a stream.

    config = PublisherConfig.from_env(os.environ)
    publisher = build_publisher(config, replica_id)
    await publisher.start()
    publisher.publish_client_message(client_id, message)   # never blocks, never raises
    await publisher.close()

See README.md in this package for the envelope and the settings.
"""

from .base import NullPublisher, Publisher, PublisherStats
from .config import PublisherConfig
from .envelope import build_envelope, channels_for
from .factory import build_publisher
from .sender import CentrifugoPublisher

__all__ = [
    "CentrifugoPublisher",
    "NullPublisher",
    "Publisher",
    "PublisherConfig",
    "PublisherStats",
    "build_envelope",
    "build_publisher",
    "channels_for",
]
