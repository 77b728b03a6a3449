"""The console as an operator meets it: web tier, replica and real Redis as processes, headless Chromium.

Everything is module-scoped: one stack and one browser for the whole module (a few seconds to start).
The browser tests skip, with the reason, only when no chromium/chromedriver is installed
(scripts/browser.sh installs them with apt-get where apt is available).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from apps.crypto.grpc.services.auth import create_client_key
from tests.support.cluster import OPERATOR_TOKEN, ReplicaProcess, replica_env
from tests.support.redis_server import RedisServer
from tests.support.web import BotThread, WebTier, find_chromium, web_env

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("CRYPTO_BROWSER_SCREENSHOTS") or ROOT / "tests" / "results" / "browser")
WINDOW = (1440, 1000)


@dataclass
class Stack:
    web: WebTier
    replica: ReplicaProcess
    bot: BotThread
    username: str  # the superuser's login (its email: the user model's USERNAME_FIELD)
    password: str
    logs: Path


@pytest.fixture(scope="module")
def chromium() -> tuple[str, str]:
    found = find_chromium()
    if isinstance(found, str):
        pytest.skip(found)
    return found


def make_superuser() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:10]
    email, password = f"operator-{tag}@example.com", f"pw-{tag}-{uuid.uuid4().hex}"
    get_user_model().objects.create_superuser(email=email, username=f"operator-{tag}", password=password)
    return email, password


def wait_for_reports(client_id: str, timeout: float = 20.0) -> None:
    """Until the replica stored what the bot reported (write-behind): every crypto model has a row to show."""
    from apps.crypto.models import Client, ErrorReport, LogEntry, RejectedMessage, StatusChange, Transaction, Wallet

    rows = [Client.objects.filter(client_id=client_id), RejectedMessage.objects.filter(client_id=client_id)]
    rows += [model.objects.filter(client__client_id=client_id)
             for model in (Wallet, Transaction, StatusChange, LogEntry, ErrorReport)]
    until = time.monotonic() + timeout
    while missing := [query.model.__name__ for query in rows if not query.exists()]:
        if time.monotonic() > until:
            raise AssertionError(f"the bot's reports were not stored within {timeout}s: no {missing}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def stack(chromium: tuple[str, str], screenshots: Path) -> Iterator[Stack]:
    """redis-server, one `manage.py rungrpc` replica, a connected bot and the web tier, all on one database.

    Their logs (web.log, replica.log, chromedriver.log) are kept beside the screenshots."""
    logs = screenshots
    redis = RedisServer().start()
    env = replica_env(redis.url, os.environ["DATABASE_URL"])
    replica = ReplicaProcess(f"web-{uuid.uuid4().hex[:6]}", env, logs / "replica.log").start()
    web = WebTier(web_env(env, replica.target, OPERATOR_TOKEN), logs / "web.log")
    bot: BotThread | None = None
    try:
        web.start()
        replica.wait_ready()
        client_id = f"browser-bot-{uuid.uuid4().hex[:8]}"
        bot = BotThread(replica.target, client_id, asyncio.run(create_client_key(client_id))).start()
        username, password = make_superuser()
        wait_for_reports(client_id)
        web.wait_ready()
        yield Stack(web, replica, bot, username, password, logs)
    finally:
        if bot:
            bot.stop()
        web.stop()
        replica.terminate()
        try:
            replica.wait_exit(15)
        except Exception:
            replica.kill()
        redis.stop()


@pytest.fixture(scope="module")
def screenshots() -> Path:
    """tests/results/browser/ (git-ignored): this run's screenshots and the processes' logs."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in [*SCREENSHOTS.glob("*.png"), *SCREENSHOTS.glob("*.log")]:
        old.unlink()
    return SCREENSHOTS


@pytest.fixture(scope="module")
def driver(chromium: tuple[str, str], stack: Stack) -> Iterator[object]:
    """A headless Debian Chromium driven by its own chromedriver (no Selenium Manager, no download)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, chromedriver = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--disable-extensions", "--no-first-run", f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(arg)
    service = Service(executable_path=chromedriver, log_output=str(stack.logs / "chromedriver.log"))
    chrome = webdriver.Chrome(options=options, service=service)
    chrome.set_page_load_timeout(30)
    try:
        yield chrome
    finally:
        chrome.quit()
