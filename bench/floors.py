"""What this machine's stack costs before any service code runs: the floors the latency figures sit on.

Measured in the same run as the latency steps, because the machine's speed drifts (the same code
measured 1.6 and 2.4 ms cross-replica p50 on different hours of one day):

- gRPC: a bare grpc.aio server process (health service only) and the harness's aio client, one
  unary call at a time; the same-replica path is this plus one stream round trip plus the service.
- Redis: one pub/sub hop between two processes, both on redis-py asyncio as the replicas are,
  paced like a cross-replica command at 1 in flight; a cross-replica command adds two such hops.

Children: `python -m bench.floors grpc` (prints its port) and `python -m bench.floors redis-sub URL
CHANNEL` (prints "ready", then one JSON summary of the one-way delays after an "end" message).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

GAP = 0.0015  # seconds between samples: about one cross-replica command at 1 in flight
END = b"end"


async def serve_grpc() -> None:
    import grpc
    from grpc_health.v1 import health, health_pb2_grpc

    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


async def redis_sub(url: str, channel: str) -> None:
    from redis.asyncio import Redis

    delays: list[int] = []
    async with Redis.from_url(url).pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(channel)
        print("ready", flush=True)
        async for message in pubsub.listen():
            if message.get("type") != "message":
                continue
            if message["data"] == END:
                break
            delays.append(time.monotonic_ns() - int(message["data"]))
    print(json.dumps({"delays_s": [d / 1e9 for d in delays]}), flush=True)


async def _child(*args: str) -> asyncio.subprocess.Process:
    from .procs import ROOT, guarded

    return await asyncio.create_subprocess_exec(*guarded([sys.executable, "-m", "bench.floors", *args]), cwd=ROOT,
                                                stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)


async def _first_line(process: asyncio.subprocess.Process, timeout: float = 30.0) -> str:
    assert process.stdout is not None
    return (await asyncio.wait_for(process.stdout.readline(), timeout)).decode().strip()


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
    await process.wait()


async def grpc_unary(seconds: float) -> list[float]:
    """Round trips of one unary call at a time against a bare grpc.aio server process."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    server = await _child("grpc")
    try:
        port = int(await _first_line(server))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
            samples: list[float] = []
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                began = time.perf_counter()
                await stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
                samples.append(time.perf_counter() - began)
                await asyncio.sleep(GAP)
            return samples
    finally:
        await _stop(server)


async def redis_hop(url: str, seconds: float) -> list[float]:
    """One-way delays of PUBLISH -> subscriber callback between two redis-py asyncio processes."""
    from redis.asyncio import Redis

    channel = f"bench:floor:{time.monotonic_ns()}"
    subscriber = await _child("redis-sub", url, channel)
    redis = Redis.from_url(url)
    try:
        if await _first_line(subscriber) != "ready":
            raise RuntimeError("floor subscriber did not start")
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            await redis.publish(channel, str(time.monotonic_ns()))
            await asyncio.sleep(GAP)
        await redis.publish(channel, END)
        return json.loads(await _first_line(subscriber, 10))["delays_s"]
    finally:
        await redis.aclose()
        await _stop(subscriber)


async def measure(redis_url: str, seconds: float) -> dict[str, Any]:
    from .stats import summary_ms

    return {"grpc_unary": summary_ms(await grpc_unary(seconds)), "redis_hop": summary_ms(await redis_hop(redis_url,
                                                                                                        seconds))}


def main(argv: list[str]) -> None:
    if argv[:1] == ["grpc"]:
        asyncio.run(serve_grpc())
    elif argv[:1] == ["redis-sub"] and len(argv) == 3:
        asyncio.run(redis_sub(argv[1], argv[2]))
    else:
        raise SystemExit("usage: python -m bench.floors grpc | redis-sub URL CHANNEL")


if __name__ == "__main__":
    main(sys.argv[1:])
