"""A stand-in for Centrifugo's server HTTP API (v5/v6), faithful to /work/shared/centrifugo-api.md.

No Centrifugo binary runs on these machines, so this aiohttp server reproduces the parts of the
contract the publisher relies on (publish, broadcast, batch; auth; error shapes; idempotency)
and adds knobs to misbehave on purpose: go down, answer slowly, answer 5xx, answer API errors.
tests/publishing/test_fake_centrifugo.py proves the double against the contract notes.

Sources of the behaviour (Centrifugo internal/api, internal/apiproto, internal/middleware):
  * POST {prefix}/{method}; any other HTTP method -> 405 with an empty body.
  * auth: X-API-Key, else `Authorization: apikey <key>`, else ?api_key=; failure -> 401, empty body.
    An empty server key refuses everything unless the server is insecure.
  * undecodable JSON or wrong field types -> 400 "Bad Request" (text/plain); unknown fields ignored;
    JSON null for a field leaves it unset (Go semantics). `"data": null` is kept as the 4-byte
    JSON `null`, which is non-empty, so it publishes (Go's RawMessage behaviour).
  * publish checks, in order: channel required (107), data required (107), namespace known (102).
  * broadcast: empty channels -> top-level 107; missing data -> top-level 107; per-channel errors
    (blank channel 107, unknown namespace 102) go inside `responses`, one item per channel.
  * batch: replies without a `result` wrapper; a null command -> 107; a command naming no known
    method -> 104; commands run in order.
  * idempotency_key: a repeat on the same channel within 300 s returns the first result and is
    not delivered again.
  * transport error mode (server-wide or X-Centrifugo-Error-Mode: transport) maps API errors to
    HTTP statuses for publish and broadcast's top-level errors; never for batch.
Not modelled: methods other than publish/broadcast/batch (501 here), b64data decoding
(accepted as data), case-insensitive JSON keys, delta, history queries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

ERROR_MESSAGES = {
    100: "internal server error",
    102: "unknown channel",
    104: "not found",
    107: "bad request",
    108: "not available",
    112: "unrecoverable position",
    113: "conflict",
}
# MapErrorToHTTPCode in Centrifugo's apiproto: used only in transport error mode.
TRANSPORT_STATUS = {100: 500, 102: 404, 104: 404, 107: 400, 108: 400, 112: 416, 113: 409}
KNOWN_METHODS = frozenset({
    "publish", "broadcast", "batch", "subscribe", "unsubscribe", "disconnect", "presence",
    "presence_stats", "history", "history_remove", "info", "channels", "refresh", "rpc",
})
IDEMPOTENCY_WINDOW = 300.0

_ABSENT = object()
_COMMON_FIELDS: dict[str, Callable[[Any], bool]] = {
    "data": lambda v: True,
    "b64data": lambda v: isinstance(v, str),
    "skip_history": lambda v: isinstance(v, bool),
    "tags": lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
    "idempotency_key": lambda v: isinstance(v, str),
    "delta": lambda v: isinstance(v, bool),
}
_SCHEMAS: dict[str, dict[str, Callable[[Any], bool]]] = {
    "publish": {"channel": lambda v: isinstance(v, str), **_COMMON_FIELDS},
    "broadcast": {
        "channels": lambda v: isinstance(v, list) and all(isinstance(c, str) or c is None for c in v),
        **_COMMON_FIELDS,
    },
    "batch": {
        "commands": lambda v: isinstance(v, list) and all(c is None or isinstance(c, dict) for c in v),
        "parallel": lambda v: isinstance(v, bool),
    },
}


class ApiError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code

    def as_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": ERROR_MESSAGES.get(self.code, "error")}


class _BadRequest(Exception):
    """Undecodable body: the whole HTTP request fails with 400."""


@dataclass(frozen=True)
class Publication:
    """A publication that reached a channel (duplicates by idempotency key are not recorded)."""

    channel: str
    data: Any
    idempotency_key: str = ""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    http_method: str
    status: int
    body: Any
    at: float  # time.monotonic() when the request arrived


class FakeCentrifugo:
    """Run with `async with FakeCentrifugo() as fake:`; point the client at `fake.url`."""

    def __init__(
        self,
        api_key: str = "test-api-key",
        *,
        namespaces: tuple[str, ...] = ("crypto",),
        history_namespaces: tuple[str, ...] = (),
        insecure: bool = False,
        transport_error_mode: bool = False,
        prefix: str = "/api",
    ) -> None:
        self.api_key = api_key
        self.namespaces = set(namespaces) | set(history_namespaces)
        self.history_namespaces = set(history_namespaces)
        self.insecure = insecure
        self.transport_error_mode = transport_error_mode
        self.prefix = prefix.rstrip("/")
        # knobs
        self.delay = 0.0
        self.http_status: int | None = None
        self._status_script: list[int] = []
        self.channel_errors: dict[str, int] = {}
        self._command_errors: list[int] = []
        # records
        self.publications: list[Publication] = []
        self.requests: list[RecordedRequest] = []  # completed requests, in completion order
        self.in_flight = 0  # requests received but not answered yet
        self.duplicates = 0
        self._seen_keys: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._offsets: dict[str, int] = {}
        self._epoch = secrets.token_hex(2)
        self._changed: asyncio.Condition | None = None
        self._released: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> "FakeCentrifugo":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._changed = asyncio.Condition()
        self._released = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        await self._listen()

    async def stop(self) -> None:
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._site = None

    async def go_down(self) -> None:
        """Stop listening: clients get connection refused (open connections are closed too)."""
        if self._site is not None:
            await self._site.stop()
            self._site = None
        assert self._runner is not None and self._runner.server is not None
        for connection in self._runner.server.connections:
            connection.force_close()  # keep-alive connections would otherwise still be served

    async def come_up(self) -> None:
        """Listen again on the same port."""
        if self._site is None:
            await self._listen()

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()
        if not self.port:
            self.port = self._runner.addresses[0][1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    # ------------------------------------------------------------------ knobs

    def release(self) -> None:
        """End every pending `delay` now and stop delaying (the server "recovers")."""
        self.delay = 0.0
        if self._released is not None:
            self._released.set()

    def slow(self, seconds: float) -> None:
        """Answer every request after `seconds` (a large value behaves as a hung server)."""
        self.delay = seconds
        if self._released is not None:
            self._released.clear()

    def fail_next(self, count: int, status: int = 503) -> None:
        """The next `count` authorised API requests answer HTTP `status` (Centrifugo unhealthy/proxy)."""
        self._status_script.extend([status] * count)

    def reply_error_next(self, code: int, count: int = 1) -> None:
        """The next `count` publish/broadcast commands answer a top-level API error `code`, unexecuted."""
        self._command_errors.extend([code] * count)

    # ------------------------------------------------------------------ observation

    def data_on(self, channel: str) -> list[Any]:
        return [p.data for p in self.publications if p.channel == channel]

    def count_requests(self, status: int | None = None, path: str | None = None) -> int:
        return sum(
            1 for r in self.requests
            if (status is None or r.status == status) and (path is None or r.path == path)
        )

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait for the recorded state to satisfy `predicate` (no polling sleeps)."""
        assert self._changed is not None
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(predicate)

    async def wait_for_publications(self, count: int, timeout: float = 5.0) -> None:
        await self.wait_until(lambda: len(self.publications) >= count, timeout)

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    # ------------------------------------------------------------------ HTTP

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        self.in_flight += 1
        await self._notify()
        try:
            body = await request.read()
            response = await self._respond(request, body)
        finally:
            self.in_flight -= 1
        self.requests.append(
            RecordedRequest(request.path, request.method, response.status, _maybe_json(body), arrived)
        )
        await self._notify()
        return response

    async def _respond(self, request: web.Request, body: bytes) -> web.StreamResponse:
        method = _api_method(request.path, self.prefix)
        if method is None:
            return web.Response(status=404, text="404 page not found\n")
        await self._slow_down()
        if request.method != "POST":
            return web.Response(status=405)
        if not self._authorised(request):
            return web.Response(status=401)
        status = self._status_script.pop(0) if self._status_script else self.http_status
        if status is not None:
            return web.Response(status=status, text=f"{status} fake failure\n")
        return self._api_response(request, method, body)

    async def _slow_down(self) -> None:
        """Honour `delay`, but let stop() / go_down() / release() cut it short."""
        if self.delay and self._released is not None and not self._released.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), self.delay)

    def _authorised(self, request: web.Request) -> bool:
        if self.insecure:
            return True
        if not self.api_key:
            return False
        header = request.headers.get("X-API-Key", "")
        if header:
            valid = secrets.compare_digest(header, self.api_key)
        else:
            parts = request.headers.get("Authorization", "").split()
            valid = len(parts) == 2 and parts[0].lower() == "apikey" and secrets.compare_digest(parts[1], self.api_key)
        if not valid and request.query_string:
            valid = secrets.compare_digest(request.query.get("api_key", ""), self.api_key)
        return valid

    def _api_response(self, request: web.Request, method: str, body: bytes) -> web.Response:
        handler = self._METHODS.get(method)
        if handler is None:
            return web.Response(status=501, text=f"{method} is not implemented by FakeCentrifugo\n")
        try:
            params = _decode(body, _SCHEMAS[method])
        except _BadRequest:
            return web.Response(status=400, text="Bad Request\n")
        transport = self.transport_error_mode or request.headers.get("X-Centrifugo-Error-Mode") == "transport"
        return handler(self, params, transport)

    # ------------------------------------------------------------------ API methods

    def _http_publish(self, params: dict[str, Any], transport: bool) -> web.Response:
        return _reply(self._run_command("publish", params), transport)

    def _http_broadcast(self, params: dict[str, Any], transport: bool) -> web.Response:
        return _reply(self._run_command("broadcast", params), transport)

    def _http_batch(self, params: dict[str, Any], transport: bool) -> web.Response:
        commands = params.get("commands") or []
        return web.json_response({"replies": [self._batch_reply(command) for command in commands]})

    def _batch_reply(self, command: dict[str, Any] | None) -> dict[str, Any]:
        if command is None:
            return {"error": ApiError(107).as_json()}
        method = next((m for m in ("publish", "broadcast") if command.get(m) is not None), None)
        if method is None:
            return {"error": ApiError(104).as_json()}
        outcome = self._run_command(method, command[method])
        return {"error": outcome.as_json()} if isinstance(outcome, ApiError) else {method: outcome}

    def _run_command(self, method: str, params: dict[str, Any]) -> dict[str, Any] | ApiError:
        if self._command_errors:
            return ApiError(self._command_errors.pop(0))
        try:
            return self._COMMANDS[method](self, params)
        except ApiError as exc:
            return exc

    def _publish(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel") or ""
        if not channel or _data_missing(params):
            raise ApiError(107)
        return self._deliver(channel, params)

    def _broadcast(self, params: dict[str, Any]) -> dict[str, Any]:
        channels = params.get("channels") or []
        if not channels or _data_missing(params):
            raise ApiError(107)
        return {"responses": [self._broadcast_one(channel or "", params) for channel in channels]}

    def _broadcast_one(self, channel: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            if not channel:
                raise ApiError(107)
            return {"result": self._deliver(channel, params)}
        except ApiError as exc:
            return {"error": exc.as_json()}

    def _deliver(self, channel: str, params: dict[str, Any]) -> dict[str, Any]:
        namespace = channel.split(":", 1)[0] if ":" in channel else ""
        if namespace and namespace not in self.namespaces:
            raise ApiError(102)
        if channel in self.channel_errors:
            raise ApiError(self.channel_errors[channel])
        key = params.get("idempotency_key") or ""
        cached = self._cached_result(channel, key)
        if cached is not None:
            self.duplicates += 1
            return cached
        result = self._position(channel, namespace)
        self.publications.append(Publication(channel, _published_data(params), key, params.get("tags") or {}))
        if key:
            self._seen_keys[(channel, key)] = (time.monotonic(), result)
        return result

    def _cached_result(self, channel: str, key: str) -> dict[str, Any] | None:
        seen = self._seen_keys.get((channel, key)) if key else None
        if seen is None or time.monotonic() - seen[0] > IDEMPOTENCY_WINDOW:
            return None
        return seen[1]

    def _position(self, channel: str, namespace: str) -> dict[str, Any]:
        """Zero values are omitted, so channels without history answer {}."""
        if namespace not in self.history_namespaces:
            return {}
        self._offsets[channel] = self._offsets.get(channel, 0) + 1
        return {"offset": self._offsets[channel], "epoch": self._epoch}

    _METHODS: dict[str, Callable[["FakeCentrifugo", dict[str, Any], bool], web.Response]] = {
        "publish": _http_publish,
        "broadcast": _http_broadcast,
        "batch": _http_batch,
    }
    _COMMANDS: dict[str, Callable[["FakeCentrifugo", dict[str, Any]], dict[str, Any]]] = {
        "publish": _publish,
        "broadcast": _broadcast,
    }


def _api_method(path: str, prefix: str) -> str | None:
    if not path.startswith(prefix + "/"):
        return None
    method = path[len(prefix) + 1:]
    return method if method in KNOWN_METHODS else None


def _decode(body: bytes, schema: dict[str, Callable[[Any], bool]]) -> dict[str, Any]:
    """Go-like decoding: object required, known fields type-checked, unknown ignored, null = unset."""
    try:
        params = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _BadRequest from None
    _check(params, schema)
    for command in params.get("commands") or []:
        for method in ("publish", "broadcast"):
            if (command or {}).get(method) is not None:
                _check(command[method], _SCHEMAS[method])
    return params


def _check(params: Any, schema: dict[str, Callable[[Any], bool]]) -> None:
    if not isinstance(params, dict):
        raise _BadRequest
    for name, valid in schema.items():
        value = params.get(name, _ABSENT)
        if value is not _ABSENT and value is not None and not valid(value):
            raise _BadRequest


def _data_missing(params: dict[str, Any]) -> bool:
    return "data" not in params and not params.get("b64data")


def _published_data(params: dict[str, Any]) -> Any:
    return params["data"] if "data" in params else params.get("b64data")


def _reply(outcome: dict[str, Any] | ApiError, transport: bool) -> web.Response:
    if not isinstance(outcome, ApiError):
        return web.json_response({"result": outcome})
    if transport:
        return web.json_response(outcome.as_json(), status=TRANSPORT_STATUS.get(outcome.code, 500))
    return web.json_response({"error": outcome.as_json()})


def _maybe_json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        return body


async def _serve_stdin(fake: FakeCentrifugo) -> None:
    """Line commands on stdin: `slow SECONDS`, `release`, `fail STATUS COUNT`, `stats`, `quit`."""
    loop = asyncio.get_running_loop()
    commands: dict[str, Callable[..., Any]] = {
        "slow": lambda seconds: fake.slow(float(seconds)),
        "release": fake.release,
        "fail": lambda status, count: fake.fail_next(int(count), int(status)),
        "stats": lambda: print(f"publications={len(fake.publications)} requests={len(fake.requests)} "
                               f"duplicates={fake.duplicates}", flush=True),
    }
    while (line := (await loop.run_in_executor(None, sys.stdin.readline)).split()) and line[0] != "quit":
        commands.get(line[0], lambda *_: print(f"unknown command {line[0]}", flush=True))(*line[1:])


async def _main(argv: list[str]) -> None:
    key = argv[0] if argv else "test-api-key"
    async with FakeCentrifugo(api_key=key) as fake:
        print(fake.url, flush=True)
        await _serve_stdin(fake)


if __name__ == "__main__":  # python -m tests.support.fake_centrifugo [API_KEY]: prints its URL
    asyncio.run(_main(sys.argv[1:]))
