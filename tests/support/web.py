"""The web tier as a real process, a bot on a real replica in a thread, and a headless Chromium.

WebTier runs `uvicorn config.asgi:application` (the command docs/http-api.md gives) on a free port
against the suite's database and a real redis-server, with CRYPTO_GRPC_TARGET pointing at a replica,
so admin pages read the live view from Redis and admin actions go through the replica to the bot.
BotThread runs the example BotClient (the real bot library) on an event loop of its own, because the
browser tests are synchronous. find_chromium() says where Debian's chromium and chromedriver are, or
why the browser tests cannot run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from apps.crypto.grpc.examples.bot_client import BotClient, command_ack
from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2

from .ports import free_port

ROOT = Path(__file__).resolve().parents[2]
WEB_SETTINGS = "config.settings"  # static files are served without collectstatic (config/static.py)
WEB_APP = "config.asgi:application"

BROWSER_SETUP = "bash scripts/browser.sh"  # installs chromium and chromedriver with apt-get
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DRIVER_NAMES = ("chromedriver",)


def _first_on_path(names: tuple[str, ...], override: str) -> str | None:
    if os.environ.get(override):
        return shutil.which(os.environ[override]) or None
    return next((found for name in names if (found := shutil.which(name))), None)


def find_chromium() -> tuple[str, str] | str:
    """(browser, driver) paths, or the reason there is none (CHROMIUM_BINARY / CHROMEDRIVER override)."""
    browser = _first_on_path(CHROMIUM_NAMES, "CHROMIUM_BINARY")
    driver = _first_on_path(DRIVER_NAMES, "CHROMEDRIVER")
    if browser and driver:
        return browser, driver
    missing = " and ".join(name for name, path in (("chromium", browser), ("chromedriver", driver)) if not path)
    note = ""
    marker = ROOT / "tests" / "results" / "browser-setup.txt"
    if marker.exists():
        note = f"; {BROWSER_SETUP} said: {marker.read_text().strip()}"
    return f"no {missing} on PATH (install: {BROWSER_SETUP}, i.e. apt-get install chromium chromium-driver){note}"


def web_env(base: dict[str, str], grpc_target: str, operator_token: str) -> dict[str, str]:
    """The web tier's environment: the replica's database and Redis, commands to `grpc_target`, text logs
    (the browser tests read exceptions and ERROR records from them)."""
    return {**base, "DJANGO_SETTINGS_MODULE": WEB_SETTINGS, "CRYPTO_GRPC_TARGET": grpc_target,
            "CRYPTO_OPERATOR_TOKENS": operator_token, "DJANGO_ALLOW_DEV_SECRET_KEY": "on", "LOG_FORMAT": "text"}


@dataclass
class WebTier:
    """One uvicorn process serving the Django admin and HTTP API on a free loopback port."""

    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def start(self) -> "WebTier":
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-W", "ignore", "-m", "uvicorn", WEB_APP, "--host", "127.0.0.1", "--port",
             str(self.port), "--no-access-log"], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until the server answers HTTP at all (any status: the tests judge the pages)."""
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"web tier exited: {self.log_tail()}")
            try:
                urllib.request.urlopen(self.url("/admin/login/"), timeout=2).close()
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"web tier not answering on {self.base_url}: {self.log_tail()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def seed_messages(client_id: str) -> list[pb2.ClientMessage | object]:
    """One of each thing a bot reports, and one bad transaction (stored as a RejectedMessage)."""
    wallet = pb2.WalletUpdate(wallet_id=f"{client_id}-btc", symbol="BTC", balance_available="1.5",
                              balance_locked="0.25")
    wallet.last_sync.GetCurrentTime()
    return [
        wallet,
        pb2.TransactionReport(transaction_id=f"{client_id}-t1", type="deposit", symbol="BTC", amount="0.5",
                              status="completed"),
        pb2.TransactionReport(transaction_id=f"{client_id}-bad", type="deposit", symbol="BTC",
                              amount="not-a-number", status="completed"),
        pb2.StatusUpdate(status=common_pb2.CLIENT_STATUS_ACTIVE, details="browser test bot running"),
        pb2.LogEntry(level="info", message="browser test bot started"),
        pb2.ErrorReport(severity="warning", message="browser test bot: a sample error report"),
    ]


class BotThread:
    """The example BotClient on its own event loop: registers, reports seed data, answers ping with pong."""

    def __init__(self, target: str, client_id: str, api_key: str) -> None:
        self.target, self.client_id, self.api_key = target, client_id, api_key
        self.pings: list[pb2.DjangoCommand] = []
        self.error: BaseException | None = None
        self._connected = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name=f"bot-{client_id}", daemon=True)

    def start(self, timeout: float = 20.0) -> "BotThread":
        self._thread.start()
        if not self._connected.wait(timeout):
            raise RuntimeError(f"bot {self.client_id} did not connect to {self.target}: {self.error!r}")
        return self

    def stop(self) -> None:
        if self._loop and self._stop and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)

    def ping_ids(self) -> list[str]:
        return [command.command_id for command in list(self.pings)]

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start() or the test
            self.error = exc
            self._connected.set()

    async def _on_ping(self, command: pb2.DjangoCommand) -> common_pb2.CommandAck:
        self.pings.append(command)
        return command_ack(message=f"pong from {self.client_id}", status=common_pb2.CLIENT_STATUS_ACTIVE)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        registration = pb2.ClientRegistration(client_name=f"{self.client_id} (browser test)", client_type="bot",
                                              version="1.0.0")
        bot = BotClient(self.target, self.client_id, self.api_key, registration=registration,
                        heartbeat_interval=2.0, handlers={"ping": self._on_ping})
        runner = asyncio.create_task(bot.run())
        try:
            waiting = asyncio.create_task(bot.connected.wait())
            await asyncio.wait([waiting, runner], return_when=asyncio.FIRST_COMPLETED)
            if runner.done():
                runner.result()  # raises why the bot could not connect
            for payload in seed_messages(self.client_id):
                await bot.send(payload)
            self._connected.set()
            await self._stop.wait()
        finally:
            await bot.stop()
            await asyncio.gather(runner, return_exceptions=True)
