"""StreamSession without a server: lean while idle, writer on demand, close() interrupts the right task."""

from __future__ import annotations

import asyncio

import grpc

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services.streaming.reasons import CloseReason
from apps.crypto.grpc.services.streaming.session import StreamSession
from apps.crypto.grpc.services.streaming.stream import _consume_close_cancel

TAKEN_OVER = CloseReason(grpc.StatusCode.ABORTED, "replaced", "takeover")


def command(n: int) -> pb2.DjangoCommand:
    return pb2.DjangoCommand(command_id=f"cmd{n}", ping=pb2.PingCommand(sequence=n))


class FakeSink:
    """Stands in for the gRPC context the writer writes to."""

    def __init__(self) -> None:
        self.written: list[str] = []


def writer_factory(session: StreamSession, sink: FakeSink) -> asyncio.Task[None]:
    async def drain() -> None:
        try:
            while (cmd := session.next_command()) is not None:
                await asyncio.sleep(0)
                sink.written.append(cmd.command_id)
        finally:
            session.writer_done()

    return asyncio.get_running_loop().create_task(drain())


async def test_idle_session_keeps_no_queue_writer_or_inflight_map():
    session = StreamSession("c1", queue_limit=4)
    assert session.pending() == [] and session.writer is None
    assert "_queue" in StreamSession.__slots__ and not hasattr(session, "__dict__")
    assert session.offer(command(1))  # queued before serving: kept for the writer
    assert [c.command_id for c in session.pending()] == ["cmd1"] and session.writer is None


async def test_writer_exists_only_while_commands_wait():
    session, sink = StreamSession("c1", queue_limit=4), FakeSink()
    session.offer(command(1))
    session.serve(writer_factory, sink)  # type: ignore[arg-type]
    writer = session.writer
    assert writer is not None
    session.offer(command(2))
    assert session.writer is writer  # one writer at a time
    await writer
    assert sink.written == ["cmd1", "cmd2"] and session.writer is None and session.pending() == []
    session.offer(command(3))
    assert session.writer is not None
    await session.writer
    assert sink.written == ["cmd1", "cmd2", "cmd3"]


async def test_full_queue_closes_as_slow_reader():
    session = StreamSession("c1", queue_limit=2)
    assert session.offer(command(1)) and session.offer(command(2))
    assert not session.offer(command(3))
    assert session.close_reason is not None and session.close_reason.label == "slow_reader"


async def test_close_from_elsewhere_interrupts_the_reader_and_only_that_is_withdrawn():
    session = StreamSession("c1", queue_limit=4)
    outcome: list[bool] = []

    async def reader() -> None:
        session.serve(writer_factory, FakeSink())  # type: ignore[arg-type]
        try:
            await asyncio.Event().wait()  # blocked in a read
        except asyncio.CancelledError:
            outcome.append(_consume_close_cancel(session, delivered=True))

    task = asyncio.create_task(reader())
    await asyncio.sleep(0)
    session.close(TAKEN_OVER)
    await task
    assert outcome == [True] and session.reader_cancelled and not task.cancelled()
    assert session.close_reason is TAKEN_OVER


async def test_grpc_cancelling_as_well_is_not_swallowed():
    session = StreamSession("c1", queue_limit=4)
    outcome: list[bool] = []

    async def reader() -> None:
        session.serve(writer_factory, FakeSink())  # type: ignore[arg-type]
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            outcome.append(_consume_close_cancel(session, delivered=True))

    task = asyncio.create_task(reader())
    await asyncio.sleep(0)
    task.cancel()  # gRPC: the client went away
    session.close(TAKEN_OVER)
    await asyncio.gather(task, return_exceptions=True)
    assert outcome == [False]


async def test_reader_closing_its_own_session_is_not_cancelled():
    session = StreamSession("c1", queue_limit=4)

    async def reader() -> bool:
        session.serve(writer_factory, FakeSink())  # type: ignore[arg-type]
        session.close(TAKEN_OVER)
        await asyncio.sleep(0)
        return True

    assert await asyncio.create_task(reader())
    assert not session.reader_cancelled


async def test_inflight_map_is_created_on_first_use_and_replaceable():
    session = StreamSession("c1", queue_limit=4)
    session.inflight["cmd1"] = "A"
    inflight, session.inflight = session.inflight, {}
    assert inflight == {"cmd1": "A"} and session.inflight == {}
