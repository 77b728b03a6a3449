"""The operator console in a real browser (issue #15, item 7).

Headless Debian Chromium against the web tier (`uvicorn config.asgi:application`) with one replica and
a real redis-server behind it, and a real bot (the example BotClient) connected to that replica. The
operator logs in through the login form, opens the admin home and every model page the admin links
to (each list, and a row's change page where there is a row), the live list, and runs the ping action
on the bot. Screenshots of every page: tests/results/browser/ (numbered in the order visited).
"""

from __future__ import annotations

import re
import time

import pytest
from django.apps import apps
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.web.conftest import Stack
from tests.web.console import MODEL_LIST, Console, Page

HOME = "/admin/"
APP_INDEX = "/admin/crypto/"
# The live list: the client list with its "live connection" column (replica, heartbeat age) from Redis.
LIVE_LIST = "/admin/crypto/client/"
COMMANDS = "/admin/crypto/commandrecord/"
LOGIN = f"/admin/login/?next={LIVE_LIST}"  # a deep link; test_login_without_next_lands_on_the_admin covers /admin/
HEADER_CHARS = 200  # the breadcrumbs at the top of the main part
CRYPTO_MODELS = {"client", "clientapikey", "wallet", "transaction", "statuschange", "errorreport", "logentry",
                 "rejectedmessage", "commandrecord"}


@pytest.fixture(scope="module")
def console(stack: Stack, driver, screenshots) -> Console:
    return Console(driver, stack.web, screenshots)


@pytest.fixture(scope="module")
def logged_in(console: Console, stack: Stack) -> tuple[Page, Page, list[str]]:
    """The operator's session, signed in through the login form: (login page, landing page, ERROR log lines)."""
    return console.log_in(LOGIN, stack.username, stack.password)


def names_of(path: str, link_text: str) -> set[str]:
    """How a model's page may name it: its verbose names (from the app registry) and its link's text."""
    names = {link_text.lower()} if link_text else set()
    match = MODEL_LIST.match(path)
    if match:
        try:
            meta = apps.get_model(match["app"], match["model"])._meta
        except LookupError:
            return names
        names |= {str(meta.verbose_name).lower(), str(meta.verbose_name_plural).lower()}
    return names


def shows_name(page: Page, names: set[str]) -> bool:
    """The model's name in the page title or its header (breadcrumbs), the top of the main part."""
    shown = f"{page.title}\n{page.text[:HEADER_CHARS]}".lower()
    return any(name and name in shown for name in names)


def test_login_form_signs_the_operator_in(logged_in: tuple[Page, Page, list[str]], stack: Stack):
    form_page, landing, _ = logged_in
    assert form_page.status == 200 and "log in" in form_page.title.lower(), form_page
    assert not landing.problem, landing.problem
    assert landing.path == LIVE_LIST, f"landed on {landing.path}: {landing.title}"
    assert stack.bot.client_id in landing.text  # the operator sees the fleet


def test_live_list_shows_the_connected_bot(console: Console, logged_in, stack: Stack):
    page = console.open(f"{LIVE_LIST}?q={stack.bot.client_id}", "live-list")
    assert not page.problem, page.problem
    row = console.driver.find_element(By.XPATH, f"//table[@id='result_list']//tr[.//*[contains(., "
                                                f"'{stack.bot.client_id}')]]")
    cells = row.text
    state = row.find_element(By.CSS_SELECTOR, "span.live-state")
    assert state.get_attribute("data-state") == "connected" and "heartbeat" in cells, cells
    assert row.find_element(By.CSS_SELECTOR, "a.live-replica").text == stack.replica.replica_id, cells
    assert "1.0.0" in cells, cells  # the version the bot registered with
    # the per-replica summary above the list, and the self-refresh
    summary = console.driver.find_element(
        By.CSS_SELECTOR, f"table#replica-summary tr[data-replica='{stack.replica.replica_id}']")
    assert int(summary.get_attribute("data-streams")) >= 1 and summary.get_attribute("data-answered") == "yes"
    assert "ago" in summary.find_element(By.CSS_SELECTOR, ".replica-beat").text
    live = console.driver.find_element(By.CSS_SELECTOR, "section#live-console")
    assert live.get_attribute("data-refresh-seconds") == "10"
    # filtered by live state and by replica, the bot is still listed; filtered away, it is not
    for query, listed in ((f"live=connected&replica={stack.replica.replica_id}", True), ("live=disconnected", False)):
        filtered = console.open(f"{LIVE_LIST}?q={stack.bot.client_id}&{query}", f"live-list-{query[:15]}")
        assert not filtered.problem, filtered.problem
        assert (stack.bot.client_id in filtered.text) is listed, (query, filtered.text[:300])


def test_ping_action_reaches_the_bot_and_the_page_shows_its_ack(console: Console, logged_in, stack: Stack):
    client_id = stack.bot.client_id
    page = console.open(f"{LIVE_LIST}?q={client_id}", "before-ping")
    assert not page.problem, page.problem
    driver = console.driver
    row = driver.find_element(By.XPATH, f"//table[@id='result_list']//tr[.//*[contains(., '{client_id}')]]")
    row.find_element(By.CSS_SELECTOR, "input.action-select").click()
    Select(driver.find_element(By.NAME, "action")).select_by_value("send_ping")
    run = driver.find_element(By.CSS_SELECTOR, "#changelist-actions button[type=submit][name=index]")
    WebDriverWait(driver, 5).until(lambda _: run.is_displayed(), "the Run button did not appear after choosing ping")
    mark = console.log_mark()
    html = driver.find_element(By.TAG_NAME, "html")
    run.click()
    console.wait_for_new_page(html)
    result = console.judge("after-ping", mark)
    assert not result.problem, result.problem
    acked = re.search(rf"{re.escape(client_id)}: ping acked: pong from {re.escape(client_id)} "
                      r"\(status CLIENT_STATUS_ACTIVE, command (?P<command_id>[0-9a-f-]+:[^\s)]+)\)", result.text)
    assert acked, f"no ping ack in the page: {result.text[:1500]}"
    command_id = acked["command_id"]
    assert command_id in stack.bot.ping_ids(), (command_id, stack.bot.ping_ids())

    until = time.monotonic() + 15  # the journal writes the record in batches
    while True:
        record = console.open(f"{COMMANDS}?q={command_id}", "command-record")
        assert not record.problem, record.problem
        rows = [row.text for row in driver.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")]
        if any(command_id in row and "acked" in row.lower() and "ping" in row for row in rows):
            break
        assert time.monotonic() < until, f"command {command_id} is not listed as an acked ping: {rows}"
        time.sleep(0.5)


def discover_model_pages(console: Console) -> tuple[dict[str, str], str]:
    """Model list pages linked from the admin home; (path -> link text, where they were found)."""
    home = console.open(HOME, "home-for-links")
    assert not home.problem, f"the admin home failed: {home.problem}"
    return console.model_links(), HOME


def test_every_admin_model_page_opens_and_names_its_model(console: Console, logged_in):
    models, source = discover_model_pages(console)
    found = {MODEL_LIST.match(path)["model"] for path in models}
    assert CRYPTO_MODELS <= found, f"links from {source} miss {CRYPTO_MODELS - found}"
    failures: list[str] = []
    opened = 0
    for path, text in sorted(models.items()):
        names = names_of(path, text)
        listing = console.open(path, path)
        opened += 1
        if listing.problem:
            failures.append(f"{path}: {listing.problem}")
            continue
        if not shows_name(listing, names):
            failures.append(f"{path}: title {listing.title!r} names none of {sorted(names)}")
        match = MODEL_LIST.match(path)
        changes = console.change_links(path)
        if not changes:
            if match["model"] in CRYPTO_MODELS and match["app"] == "crypto":
                failures.append(f"{path}: no row links to a change page (the bot's reports should be listed)")
            continue
        change = console.open(changes[0], changes[0])
        opened += 1
        if change.problem:
            failures.append(f"{changes[0]}: {change.problem}")
        elif not shows_name(change, names):
            failures.append(f"{changes[0]}: title {change.title!r} names none of {sorted(names)}")
    assert not failures, (f"{len(failures)} of {opened} admin pages (models linked from {source}) failed:\n"
                          + "\n".join(failures))


def test_admin_home_opens_and_links_every_crypto_model(console: Console, logged_in):
    home = console.open(HOME, "home")
    assert not home.problem, home.problem
    found = {MODEL_LIST.match(path)["model"] for path in console.model_links()}
    assert CRYPTO_MODELS <= found, f"the admin home does not link {CRYPTO_MODELS - found}"


def test_login_logs_no_error(logged_in: tuple[Page, Page, list[str]]):
    _, _, errors = logged_in
    assert not errors, "the web tier logged errors on a normal login:\n" + "\n".join(errors)


def test_login_without_next_lands_on_the_admin(console: Console, stack: Stack):
    console.log_out()
    _, landing, _ = console.log_in("/admin/login/", stack.username, stack.password)
    assert landing.path == HOME and not landing.problem, f"landed on {landing.path}: {landing.problem}"
