"""Receipt tests share the handler tests' helpers (own client_id per test, real buffer on the test DB)."""

from tests.handlers.conftest import client_id, context, dispatch, ingest  # noqa: F401  (fixtures)
