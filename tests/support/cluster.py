"""Several real `manage.py rungrpc` replica processes sharing one redis-server and database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .ports import free_port

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_TOKEN = "cluster-operator-token"
FAST_ENV = {
    "CRYPTO_REPLICA_BEAT_INTERVAL": "1",
    "CRYPTO_CLIENT_DISCONNECT_GRACE": "3",
    "CRYPTO_DRAIN_WINDOW": "1",
    "GRPC_SHUTDOWN_GRACE": "8",
    "CRYPTO_ACK_TIMEOUT": "5",
    "CRYPTO_SEND_TIMEOUT": "3",
    "CRYPTO_REDIS_SOCKET_TIMEOUT": "1",
}


@dataclass
class ReplicaProcess:
    replica_id: str
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "ReplicaProcess":
        env = {**self.env, "REPLICA_ID": self.replica_id, "GRPC_PORT": str(self.port),
               "METRICS_PORT": str(self.metrics_port)}
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "-W", "ignore", "manage.py", "rungrpc", "--host",
                                         "127.0.0.1"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout: float = 60.0, service: str = "readiness") -> None:
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"replica {self.replica_id} exited: {self.log_tail()}")
            if health_status(self.target, service) == health_pb2.HealthCheckResponse.SERVING:
                return
            time.sleep(0.1)
        raise RuntimeError(f"replica {self.replica_id} not ready: {self.log_tail()}")

    def terminate(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def wait_exit(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def health_status(target: str, service: str) -> int | None:
    try:
        with grpc.insecure_channel(target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1).status
    except grpc.RpcError:
        return None


def replica_env(redis_url: str, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(FAST_ENV)
    env.update(REDIS_URL=redis_url, DATABASE_URL=database_url, CRYPTO_AUTH="on",
               CRYPTO_OPERATOR_TOKENS=OPERATOR_TOKEN, CENTRIFUGO_API_URL="", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env
