from tests.ops.support import redis_server  # noqa: F401 (fixture)
