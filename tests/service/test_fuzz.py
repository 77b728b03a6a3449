"""Fuzzing every RPC from outside, with raw bytes (identity serializers), as issue 11 asks.

Garbage bytes, truncated and bit-flipped valid messages, oversize fields and bad credentials on
ConnectClient, SendCommandToClient and ExecuteCommandSync. Every call must end with the status an oracle
computes from the bytes alone (parsed locally with the same protobuf): INVALID_ARGUMENT for what does not
parse or breaks a bound, RESOURCE_EXHAUSTED over max_message_bytes, UNAUTHENTICATED / PERMISSION_DENIED for
credentials, ALREADY_EXISTS for a caller-chosen command_id used before, OK for a valid request; never UNKNOWN
or INTERNAL. Meanwhile a witness bot on the same replica is sent a command (ExecuteCommandSync) every 50 ms
and must ack every one, during and after.

The bulk runs against an in-process replica; test_real_replica_* runs against a `manage.py rungrpc`
process on a real redis-server and checks that the process is still alive afterwards.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services.auth import create_client_key
from apps.crypto.grpc.services.errors import InvalidRequest
from apps.crypto.grpc.services.proto.validation import validate_request
from apps.crypto.models import RejectedMessage, Wallet
from tests.service.test_streaming import ping_request
from tests.support.cluster import OPERATOR_TOKEN as REPLICA_OPERATOR_TOKEN
from tests.support.cluster import ReplicaProcess, replica_env
from tests.support.grpc_server import running_server
from tests.support.rawbot import RawBot, heartbeat, message
from tests.support.redis_server import RedisServer
from tests.support.waiting import eventually

Code = grpc.StatusCode
SERVICE = "/crypto.CryptoStreamingService/"
CONNECT = SERVICE + "ConnectClient"
SEND = SERVICE + "SendCommandToClient"
EXECUTE = SERVICE + "ExecuteCommandSync"
UNARY = (SEND, EXECUTE)
NEVER = {Code.UNKNOWN, Code.INTERNAL}
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # the default max_message_bytes, used by both replicas here
CALL_TIMEOUT = 8.0
Metadata = tuple[tuple[str, str], ...]


# ------------------------------------------------------------------------------------------ raw calls


@dataclass(frozen=True)
class Outcome:
    code: Code
    details: str


async def unary_raw(channel: grpc.aio.Channel, method: str, payload: bytes, metadata: Metadata) -> Outcome:
    call = channel.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    try:
        await call(payload, metadata=metadata, timeout=CALL_TIMEOUT)
        return Outcome(Code.OK, "")
    except grpc.aio.AioRpcError as exc:
        return Outcome(exc.code(), exc.details() or "")


def stream_raw(channel: grpc.Channel, frames: list[bytes], metadata: Metadata) -> Outcome:
    """ConnectClient with frames sent as they are, then a half-close; reads until the status.

    A blocking (sync API) call, run in a thread: when the server ends the stream while the client still
    has frames to write, a grpc.aio client reports its own failed write as INTERNAL "Internal error from
    Core" instead of the server's status (grpc/grpc#36066); the sync client reports what the server sent.
    """
    call = channel.stream_stream(CONNECT, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    try:
        for _ in call(iter(frames), metadata=metadata, timeout=CALL_TIMEOUT):
            pass
        return Outcome(Code.OK, "")
    except grpc.RpcError as exc:
        return Outcome(exc.code(), exc.details() or "")


# ------------------------------------------------------------------------------------------ oracles


def parsed(message_type: type, data: bytes):
    try:
        return message_type.FromString(data)
    except DecodeError:
        return None


def expected_unary(payload: bytes, reserved: set[str]) -> Code:
    """With a valid operator token: INVALID_ARGUMENT unless the bytes are a request within the bounds;
    ALREADY_EXISTS for a caller-chosen command_id that an earlier valid request used (`reserved`, updated)."""
    if len(payload) > MAX_MESSAGE_BYTES:
        return Code.RESOURCE_EXHAUSTED
    request = parsed(pb2.SendCommandRequest, payload)
    if request is None:
        return Code.INVALID_ARGUMENT
    try:
        validate_request(request)
    except InvalidRequest:
        return Code.INVALID_ARGUMENT
    command_id = request.command.command_id
    if command_id in reserved:
        return Code.ALREADY_EXISTS
    if command_id:
        reserved.add(command_id)
    return Code.OK  # reached the target or not: success=false in the answer, still OK


def expected_stream(frames: list[bytes], client_id: str) -> Code:
    """With a valid key for client_id: the status the frames end the stream with after the half-close."""
    for index, frame in enumerate(frames):
        if len(frame) > MAX_MESSAGE_BYTES:
            return Code.RESOURCE_EXHAUSTED
        msg = parsed(pb2.ClientMessage, frame)
        if msg is None:
            return Code.INVALID_ARGUMENT
        if index == 0:
            if not msg.client_id or len(msg.client_id) > 128:
                return Code.INVALID_ARGUMENT
            if msg.client_id != client_id:
                return Code.PERMISSION_DENIED  # the key is client_id's
        elif msg.client_id != client_id:
            return Code.INVALID_ARGUMENT  # client_id changed mid-stream
    return Code.OK  # bad payloads become RejectedMessages; the stream goes on


# ------------------------------------------------------------------------------------------ inputs


def seed_messages(client_id: str) -> list[bytes]:
    return [m.SerializeToString() for m in (
        message(client_id, wallet_update=pb2.WalletUpdate(wallet_id="w", symbol="BTC", balance_available="1.5",
                                                          balance_locked="0")),
        message(client_id, transaction=pb2.TransactionReport(transaction_id="t", type="deposit", symbol="BTC",
                                                             amount="2")),
        message(client_id, register=pb2.ClientRegistration(client_name="n", client_type="t", version="1")),
        message(client_id, heartbeat=pb2.HeartbeatUpdate()),
    )]


def seed_requests(witness_id: str) -> list[bytes]:
    """Valid command requests: to clients that are not connected, and one to the witness (it acks pauses)."""
    offline = f"fuzz-offline-{uuid.uuid4().hex[:8]}"
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return [r.SerializeToString() for r in (
        pb2.SendCommandRequest(client_id=offline, command=pb2.DjangoCommand(
            command_id=uuid.uuid4().hex, pause=pb2.PauseClientCommand(reason="seed"))),
        pb2.SendCommandRequest(client_id=offline, command=pb2.DjangoCommand(
            command_id=uuid.uuid4().hex, timestamp=stamp, sync_wallets=pb2.SyncWalletsCommand(symbols=["BTC", "ETH"]))),
        pb2.SendCommandRequest(client_id=offline, command=pb2.DjangoCommand(
            request_status=pb2.RequestStatusCommand(include_stats=True))),
        pb2.SendCommandRequest(client_id=witness_id, command=pb2.DjangoCommand(
            command_id=uuid.uuid4().hex, pause=pb2.PauseClientCommand(reason="fuzzed, for the witness"))),
    )]


def flip_bits(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    buf = bytearray(data)
    for position, bit in flips:
        if buf:
            buf[position % len(buf)] ^= 1 << bit
    return bytes(buf)


def set_bytes(data: bytes, writes: list[tuple[int, int]]) -> bytes:
    buf = bytearray(data)
    for position, value in writes:
        if buf:
            buf[position % len(buf)] = value
    return bytes(buf)


# A recipe picks a seed by index and turns it into bytes; seeds are made fresh per example (new ids).
positions = st.integers(0, 4096)
recipe = st.one_of(
    st.tuples(st.just("garbage"), st.binary(max_size=96)),
    st.tuples(st.just("truncated"), st.integers(0, 9), st.integers(0, 4096)),
    st.tuples(st.just("bitflip"), st.integers(0, 9), st.lists(st.tuples(positions, st.integers(0, 7)),
                                                              min_size=1, max_size=4)),
    st.tuples(st.just("bytes"), st.integers(0, 9), st.lists(st.tuples(positions, st.integers(0, 255)),
                                                            min_size=1, max_size=4)),
)


def cook(item: tuple, seeds: list[bytes]) -> bytes:
    kind, *args = item
    if kind == "garbage":
        return args[0]
    seed = seeds[args[0] % len(seeds)]
    if kind == "truncated":
        return seed[: args[1] % max(len(seed), 1)]  # strictly shorter than the seed
    if kind == "bitflip":
        return flip_bits(seed, args[1])
    return set_bytes(seed, args[1])


unary_case = st.tuples(st.sampled_from(UNARY), recipe)
# Streams: the first frame is usually a valid seed (so the later frames are read), sometimes fuzzed too.
stream_case = st.tuples(st.one_of(st.integers(0, 3), recipe), st.lists(st.one_of(st.integers(0, 3), recipe),
                                                                         max_size=5))



# ------------------------------------------------------------------------------------------ the replica under attack


@dataclass
class Witness:
    """A connected bot, sent a command every 50 ms through the replica under attack; it must ack each one."""

    target: str
    operator: Metadata
    bot: RawBot
    acked: int = 0
    failures: list[str] = field(default_factory=list)
    task: asyncio.Task | None = None

    async def ping(self, channel: grpc.aio.Channel) -> bool:
        call = channel.unary_unary(EXECUTE, request_serializer=pb2.SendCommandRequest.SerializeToString,
                                   response_deserializer=common_pb2.CommandAck.FromString)
        try:
            ack = await call(ping_request(self.bot.client_id), metadata=self.operator, timeout=5)
        except grpc.aio.AioRpcError as exc:
            self.failures.append(f"{exc.code().name}: {exc.details()}")
            return False
        if not ack.success:
            self.failures.append(f"ack failed: {ack.error}")
            return False
        self.acked += 1
        return True

    async def _loop(self) -> None:
        async with grpc.aio.insecure_channel(self.target) as channel:
            while True:
                await self.ping(channel)
                await asyncio.sleep(0.05)

    def start(self) -> None:
        self.task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.bot.__aexit__()

    async def assert_served(self, minimum: int) -> None:
        """Every command so far was acked, at least `minimum` of them, and one more is acked now."""
        async with grpc.aio.insecure_channel(self.target) as channel:
            assert await self.ping(channel), self.failures[-3:]
        assert not self.failures, self.failures[:5]
        assert self.acked >= minimum, self.acked
        assert not self.bot.task.done(), (self.bot.status, self.bot.details)


async def connect_witness(target: str, operator: Metadata) -> Witness:
    client_id = f"witness-{uuid.uuid4().hex[:8]}"
    bot = RawBot(target, client_id, await create_client_key(client_id))
    await bot.__aenter__()
    bot.send(heartbeat(client_id))
    witness = Witness(target, operator, bot)
    async with grpc.aio.insecure_channel(target) as channel:
        await eventually(lambda: witness.ping(channel), message="witness served")
    witness.failures.clear()
    return witness


@dataclass
class Attack:
    """The replica under attack, its witness, and every outcome seen."""

    target: str
    operator: Metadata
    witness: Witness
    channel: grpc.aio.Channel
    sync_channel: grpc.Channel
    loop: asyncio.AbstractEventLoop
    seen: list[tuple[str, frozenset[Code], Outcome]] = field(default_factory=list)
    reserved: set[str] = field(default_factory=set)  # caller-chosen command_ids of valid requests sent so far

    def run(self, work: Awaitable[object]) -> object:
        """Run a coroutine on the test's loop from hypothesis's thread."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(30)

    async def unary(self, method: str, payload: bytes, metadata: Metadata | None = None) -> Outcome:
        return await unary_raw(self.channel, method, payload, self.operator if metadata is None else metadata)

    async def stream(self, frames: list[bytes], metadata: Metadata) -> Outcome:
        return await asyncio.to_thread(stream_raw, self.sync_channel, frames, metadata)

    def record(self, case: str, allowed: set[Code], outcome: Outcome) -> None:
        self.seen.append((case, frozenset(allowed), outcome))

    def failures(self) -> list[str]:
        return [f"{case}: expected {'/'.join(sorted(c.name for c in allowed))}, got {got.code.name} {got.details!r}"
                for case, allowed, got in self.seen if got.code not in allowed or got.code in NEVER]

    def assert_precise(self) -> None:
        failures = self.failures()
        assert not failures, f"{len(failures)} of {len(self.seen)} calls:\n" + "\n".join(failures[:40])


@asynccontextmanager
async def attack_on(target: str, operator: Metadata) -> AsyncIterator[Attack]:
    witness = await connect_witness(target, operator)
    witness.start()
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            with grpc.insecure_channel(target) as sync_channel:
                yield Attack(target, operator, witness, channel, sync_channel, asyncio.get_running_loop())
    finally:
        await witness.stop()


def short(data: bytes) -> str:
    return data[:48].hex() + ("..." if len(data) > 48 else "") + f" ({len(data)} bytes)"


async def fuzz_unary(attack: Attack, examples: int) -> None:
    """Garbage, truncated, bit-flipped and byte-overwritten SendCommandRequests on both unary RPCs."""

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(unary_case)
    def run(case: tuple) -> None:
        method, item = case
        payload = cook(item, seed_requests(attack.witness.bot.client_id))
        outcome = attack.run(attack.unary(method, payload))
        expected = expected_unary(payload, attack.reserved)
        attack.record(f"{method.rsplit('/', 1)[1]} {item[0]} {short(payload)}", {expected}, outcome)

    await asyncio.to_thread(run)


async def fuzz_streams(attack: Attack, examples: int) -> None:
    """ConnectClient with a valid key and frames that are seeds, garbage, truncated or mutated seeds."""

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(stream_case)
    def run(case: tuple) -> None:
        first, rest = case
        client_id = f"fuzz-{uuid.uuid4().hex[:8]}"
        metadata = attack.run(bot_key(client_id))
        seeds = seed_messages(client_id)
        frames = [seeds[item] if isinstance(item, int) else cook(item, seeds) for item in (first, *rest)]
        outcome = attack.run(attack.stream(frames, metadata))
        kinds = ",".join("seed" if isinstance(item, int) else item[0] for item in (first, *rest))
        attack.record(f"ConnectClient [{kinds}] {[short(f) for f in frames]}", {expected_stream(frames, client_id)},
                      outcome)

    await asyncio.to_thread(run)


async def bot_key(client_id: str) -> Metadata:
    return (("x-api-key", await create_client_key(client_id)),)


def request(client_id: str = "", **command: object) -> pb2.SendCommandRequest:
    return pb2.SendCommandRequest(client_id=client_id or f"offline-{uuid.uuid4().hex[:8]}",
                                  command=pb2.DjangoCommand(**command))


def pause(reason: str = "fuzz") -> dict[str, object]:
    return {"pause": pb2.PauseClientCommand(reason=reason)}


def unknown_field(size: int) -> bytes:
    """A length-delimited field 1000 of `size` bytes: DjangoCommand has no such field, so it is kept as unknown."""
    return varint(1000 << 3 | 2) + varint(size) + b"u" * size


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


async def oversize_and_credentials(attack: Attack) -> str:
    """The fixed cases: oversize fields and messages, wrong or missing credentials, on every RPC.
    Returns the client_id whose stream carried a 1 MB text (a RejectedMessage must record it)."""
    over = MAX_MESSAGE_BYTES + 1024
    bloated = request(**pause())
    bloated.command.MergeFromString(unknown_field(1024 * 1024))
    unary_cases: list[tuple[str, bytes, Metadata | None, set[Code]]] = [
        ("client_id of 10,000 chars", request("c" * 10_000, **pause()).SerializeToString(), None,
         {Code.INVALID_ARGUMENT}),
        ("command_id of 10,000 chars", request(command_id="i" * 10_000, **pause()).SerializeToString(), None,
         {Code.INVALID_ARGUMENT}),
        ("pause reason of 1 MB", request(**pause("r" * 1_000_000)).SerializeToString(), None, {Code.INVALID_ARGUMENT}),
        ("resume message of 1 MB", request(resume=pb2.ResumeClientCommand(message="m" * 1_000_000))
         .SerializeToString(), None, {Code.INVALID_ARGUMENT}),
        ("10,001 symbols", request(sync_wallets=pb2.SyncWalletsCommand(symbols=["BTC"] * 10_001))
         .SerializeToString(), None, {Code.INVALID_ARGUMENT}),
        ("a symbol of 100,000 chars", request(sync_wallets=pb2.SyncWalletsCommand(symbols=["S" * 100_000]))
         .SerializeToString(), None, {Code.INVALID_ARGUMENT}),
        ("1 MB of unknown fields in the command", bloated.SerializeToString(), None, {Code.INVALID_ARGUMENT}),
        ("pause reason over max_message_bytes", request(**pause("r" * over)).SerializeToString(), None,
         {Code.RESOURCE_EXHAUSTED}),
        ("garbage over max_message_bytes", b"\xff" * over, None, {Code.RESOURCE_EXHAUSTED}),
        ("no authorization", request(**pause()).SerializeToString(), (), {Code.UNAUTHENTICATED}),
        ("wrong bearer token", request(**pause()).SerializeToString(), (("authorization", "Bearer wrong"),),
         {Code.UNAUTHENTICATED}),
        ("empty bearer token", request(**pause()).SerializeToString(), (("authorization", "Bearer "),),
         {Code.UNAUTHENTICATED}),
        ("basic auth", request(**pause()).SerializeToString(), (("authorization", "Basic dXNlcjpwYXNz"),),
         {Code.UNAUTHENTICATED}),
        ("token without Bearer", request(**pause()).SerializeToString(),
         (("authorization", attack.operator[0][1].removeprefix("Bearer ")),), {Code.UNAUTHENTICATED}),
        ("a bot key instead of a token", request(**pause()).SerializeToString(), (("x-api-key", "ck_nope"),),
         {Code.UNAUTHENTICATED}),
        # Both are precise: which check comes first is a choice (today the bytes: Malformed, before the method).
        ("garbage without authorization", b"\xff\xff\xff", (), {Code.INVALID_ARGUMENT, Code.UNAUTHENTICATED}),
        ("garbage with a wrong token", b"\x0a\x05\xff\xfe", (("authorization", "Bearer wrong"),),
         {Code.INVALID_ARGUMENT, Code.UNAUTHENTICATED}),
    ]
    for method in UNARY:
        for name, payload, metadata, allowed in unary_cases:
            attack.record(f"{method.rsplit('/', 1)[1]} {name}", allowed, await attack.unary(method, payload, metadata))

    client_id, other = f"fuzz-big-{uuid.uuid4().hex[:8]}", f"fuzz-other-{uuid.uuid4().hex[:8]}"
    key, other_key = await bot_key(client_id), await bot_key(other)
    hello = heartbeat(client_id).SerializeToString()
    huge_log = message(client_id, log=pb2.LogEntry(level="info", message="L" * 1_000_000)).SerializeToString()
    stream_cases: list[tuple[str, list[bytes], Metadata, set[Code]]] = [
        ("client_id of 10,000 chars", [heartbeat("c" * 10_000).SerializeToString()], key, {Code.INVALID_ARGUMENT}),
        ("first message over max_message_bytes",
         [message(client_id, log=pb2.LogEntry(message="L" * over)).SerializeToString()], key,
         {Code.RESOURCE_EXHAUSTED}),
        ("garbage over max_message_bytes", [b"\xff" * over], key, {Code.RESOURCE_EXHAUSTED}),
        ("a later message over max_message_bytes", [hello, b"\x0a" * over], key, {Code.RESOURCE_EXHAUSTED}),
        ("a log text of 1 MB (stored as a RejectedMessage)", [hello, huge_log, hello], key, {Code.OK}),
        ("no key", [hello], (), {Code.UNAUTHENTICATED}),
        ("unknown key", [hello], (("x-api-key", "ck_not-a-key"),), {Code.UNAUTHENTICATED}),
        ("operator token instead of a key", [hello], attack.operator, {Code.UNAUTHENTICATED}),
        ("key of another client", [hello], other_key, {Code.PERMISSION_DENIED}),
        ("garbage without a key", [b"\xff\xff\xff"], (), {Code.INVALID_ARGUMENT, Code.UNAUTHENTICATED}),
        ("no message and no key", [], (), {Code.INVALID_ARGUMENT, Code.UNAUTHENTICATED}),
        ("garbage first frame", [b"\x0a\x02\xff\xfe"], key, {Code.INVALID_ARGUMENT}),
        ("garbage after the first message", [hello, b"\xff\xff\xff", hello], key, {Code.INVALID_ARGUMENT}),
        ("truncated message after the first", [hello, huge_log[:1000]], key, {Code.INVALID_ARGUMENT}),
    ]
    for name, frames, metadata, allowed in stream_cases:
        attack.record(f"ConnectClient {name}", allowed, await attack.stream(frames, metadata))
    return client_id


async def assert_replica_serving(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        for service in ("", "readiness"):
            status = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert status.status == health_pb2.HealthCheckResponse.SERVING, service


# ------------------------------------------------------------------------------------------ tests


async def test_fuzzed_command_rpcs_get_precise_statuses_and_the_witness_stays_served():
    async with running_server(ack_timeout=1.0, send_timeout=1.0) as server:
        async with attack_on(server.target, server.operator_metadata()) as attack:
            await fuzz_unary(attack, examples=150)
            attack.assert_precise()
            await attack.witness.assert_served(minimum=3)
        await assert_replica_serving(server.target)


async def test_fuzzed_streams_get_precise_statuses_and_the_witness_stays_served():
    async with running_server(ack_timeout=1.0, send_timeout=1.0) as server:
        async with attack_on(server.target, server.operator_metadata()) as attack:
            bystander = attack.witness.bot
            bystander.send(message(bystander.client_id, wallet_update=pb2.WalletUpdate(
                wallet_id="keep", symbol="ETH", balance_available="7.25", balance_locked="0.5")))
            await fuzz_streams(attack, examples=80)
            attack.assert_precise()
            await attack.witness.assert_served(minimum=3)
            wallet = await Wallet.objects.aget(client__client_id=bystander.client_id, wallet_id="keep")
            assert str(wallet.balance_available).rstrip("0") == "7.25" and wallet.symbol == "ETH"
        await assert_replica_serving(server.target)
        async for fuzzed in Wallet.objects.filter(client__client_id__startswith="fuzz-"):
            assert fuzzed.balance_available >= 0 and fuzzed.balance_locked >= 0


async def test_oversize_fields_and_bad_credentials_get_precise_statuses_on_every_rpc():
    async with running_server(ack_timeout=1.0, send_timeout=1.0) as server:
        async with attack_on(server.target, server.operator_metadata()) as attack:
            big_text_client = await oversize_and_credentials(attack)
            attack.assert_precise()
            await attack.witness.assert_served(minimum=3)
        await assert_replica_serving(server.target)
        await eventually(lambda: RejectedMessage.objects.filter(client_id=big_text_client,
                                                                reason__contains="too long").aexists(),
                         message="the 1 MB log text stored as a RejectedMessage")


@pytest.fixture
def replica_process(tmp_path: Path) -> Iterator[ReplicaProcess]:
    """One `manage.py rungrpc` process on a real redis-server and the suite's database, auth on."""
    redis = RedisServer().start()
    env = replica_env(redis.url, os.environ["DATABASE_URL"], CRYPTO_ACK_TIMEOUT="1", CRYPTO_SEND_TIMEOUT="1")
    replica = ReplicaProcess(f"fuzz-{uuid.uuid4().hex[:6]}", env, tmp_path / "replica.log").start()
    try:
        replica.wait_ready()
        yield replica
    finally:
        replica.terminate()
        try:
            replica.wait_exit(15)
        except Exception:
            replica.kill()
        redis.stop()


async def test_real_replica_survives_fuzzing_of_every_rpc_with_precise_statuses(replica_process: ReplicaProcess):
    operator = (("authorization", f"Bearer {REPLICA_OPERATOR_TOKEN}"),)
    async with attack_on(replica_process.target, operator) as attack:
        await fuzz_unary(attack, examples=40)
        await fuzz_streams(attack, examples=30)
        await oversize_and_credentials(attack)
        alive = replica_process.process is not None and replica_process.process.poll() is None
        assert alive, replica_process.log_tail()
        attack.assert_precise()
        await attack.witness.assert_served(minimum=3)
    await assert_replica_serving(replica_process.target)
    assert replica_process.process.poll() is None, replica_process.log_tail()
