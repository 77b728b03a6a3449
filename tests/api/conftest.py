from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import override_settings

from tests.ops.support import redis_server  # noqa: F401 (fixture)


@pytest.fixture(autouse=True)
def testserver_host() -> Iterator[None]:
    """AsyncClient always sends Host: testserver (an extra Host header is appended, not replaced)."""
    with override_settings(ALLOWED_HOSTS=[*settings.ALLOWED_HOSTS, "testserver"]):
        yield
