"""What an operator's browser does and sees: open a page, judge it, keep a screenshot, find links.

A page's HTTP status comes from the browser itself (the Navigation Timing entry's responseStatus),
so each page is fetched once, as a browser fetches it; for a 4xx/5xx the web tier's log names the
exception behind it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.web import WebTier

# A model's list page: /admin/<app_label>/<model_name>/
MODEL_LIST = re.compile(r"^/admin/(?P<app>\w+)/(?P<model>\w+)/$")
# Titles and texts of error pages (Django's own, debug or not, and django-cfg's)
ERROR_TITLES = ("Server Error", "Not Found", "Bad Request", "Forbidden", "Page not found")
ERROR_TEXTS = ("Traceback (most recent call last)", "NoReverseMatch", "TemplateDoesNotExist",
               "TemplateSyntaxError", "OperationalError", "ProgrammingError", "FieldError")
# The last line of a logged traceback: "  django.urls.exceptions.NoReverseMatch: Reverse for ..."
EXCEPTION_LINE = re.compile(r"^\s*((?:[a-z_]\w*\.)+[A-Z]\w*|[A-Z]\w*(?:Error|Exception)): (.+)$")
# A record at level ERROR in the text log format: "2026-12-06 21:43:10,019 ERROR logger replica=..."
ERROR_RECORD = re.compile(r"^\d{4}-\d\d-\d\d [\d:,.]+ (ERROR|CRITICAL) ")
ALL_LINKS = "return [...document.querySelectorAll('a[href]')].map(a => [a.href, a.textContent])"
# The HTTP status of the document as the browser got it, its title, the text of its main part
# (unfold's #main holds the header with the breadcrumbs and the content, not the sidebar), and the
# page's own assets (stylesheets, scripts, fonts, images from this server) that failed to load.
PAGE_FACTS = """
const nav = performance.getEntriesByType('navigation')[0];
const main = document.querySelector('#main') || document.body;
const failed = performance.getEntriesByType('resource')
    .filter(r => r.name.startsWith(location.origin) && r.responseStatus >= 400)
    .filter(r => new URL(r.name).pathname !== '/favicon.ico')  // the browser's own guess, not the page's
    .map(r => r.responseStatus + ' ' + new URL(r.name).pathname);
return [nav ? nav.responseStatus : 0, document.title, main ? main.innerText : '', failed];
"""


@dataclass
class Page:
    path: str  # where the browser ended up (after redirects)
    status: int
    title: str
    text: str  # the main part's text (the whole body's on pages without unfold's #main)
    problem: str  # empty when the page is fine
    screenshot: Path


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:80] or "page"


class Console:
    """One logged-in (or not yet) browser on the web tier; numbered screenshots under `shots`."""

    def __init__(self, driver: WebDriver, web: WebTier, shots: Path) -> None:
        self.driver, self.web, self.shots = driver, web, shots
        self._count = 0

    # ------------------------------------------------------------------ pages

    def open(self, path: str, name: str = "") -> Page:
        mark = self.log_mark()
        self.driver.get(self.web.url(path))
        return self.judge(name or path, mark)

    def judge(self, name: str, mark: int) -> Page:
        """The page now shown: status, title, text, what is wrong with it, and its screenshot."""
        driver = self.driver
        status, title, text, failed_assets = driver.execute_script(PAGE_FACTS)
        status = int(status or 0)
        self._count += 1
        shot = self.shots / f"{self._count:03d}-{slug(name)}.png"
        driver.save_screenshot(str(shot))
        problem = ""
        if status >= 400:
            problem = f"HTTP {status} ({title}): {self._logged_error(mark) or text[:200]}"
        elif marker := next((m for m in ERROR_TITLES if m.lower() in title.lower()), None):
            problem = f"error page {title!r}: {self._logged_error(mark) or text[:200]}"
        elif marker := next((m for m in ERROR_TEXTS if m in text), None):
            problem = f"page shows {marker!r}: {self._logged_error(mark) or text[:200]}"
        elif failed_assets:
            problem = f"assets failed to load: {', '.join(failed_assets[:5])}"
        return Page(urlsplit(driver.current_url).path, status, title, text, problem, shot)

    def log_mark(self) -> int:
        """Where the web tier's log ends now: judge() reports what it logged after this."""
        try:
            return self.web.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def logged_since(self, mark: int) -> str:
        with open(self.web.log_path, "rb") as log:
            log.seek(mark)
            return log.read().decode(errors="replace")

    def error_lines(self, mark: int) -> list[str]:
        """The ERROR records the web tier logged since `mark` (text log format), first line of each."""
        return [line for line in self.logged_since(mark).splitlines() if ERROR_RECORD.match(line)]

    def _logged_error(self, mark: int) -> str:
        """The last exception the web tier logged since `mark`, as `Name: message`."""
        found = [m for line in self.logged_since(mark).splitlines() if (m := EXCEPTION_LINE.match(line))]
        if not found:
            return ""
        name, message = found[-1].groups()
        return f"{name.rsplit('.', 1)[-1]}: {message[:300]}"

    def wait_for_new_page(self, old: object, timeout: float = 20.0) -> None:
        """After a click that submits a form: until the old page is gone and the new one loaded."""
        WebDriverWait(self.driver, timeout).until(expected_conditions.staleness_of(old))
        WebDriverWait(self.driver, timeout).until(
            lambda d: d.execute_script("return document.readyState") == "complete")

    # ------------------------------------------------------------------ login

    def log_in(self, login_path: str, username: str, password: str) -> tuple[Page, Page, list[str]]:
        """Fill and submit the login form: (the login page, the page it led to, ERROR lines logged meanwhile)."""
        form_page = self.open(login_path, "login")
        assert not form_page.problem, f"login page: {form_page.problem}"
        driver = self.driver
        driver.find_element(By.NAME, "username").send_keys(username)
        driver.find_element(By.NAME, "password").send_keys(password)
        form = driver.find_element(By.TAG_NAME, "form")
        mark = self.log_mark()
        form.find_element(By.CSS_SELECTOR, "[type=submit]").click()
        try:
            self.wait_for_new_page(form)
        except TimeoutException:
            pass  # judged as it is
        landing = self.judge("after-login", mark)
        return form_page, landing, self.error_lines(mark)

    def log_out(self) -> None:
        self.driver.delete_all_cookies()

    # ------------------------------------------------------------------ links

    def links(self) -> dict[str, str]:
        """path -> text of every same-site link on the page shown."""
        found: dict[str, str] = {}
        here = urlsplit(self.web.base_url).netloc
        for href, text in self.driver.execute_script(ALL_LINKS):
            parts = urlsplit(href)
            if parts.netloc == here and not found.get(parts.path):
                found[parts.path] = text.strip()
        return found

    def model_links(self) -> dict[str, str]:
        """path -> link text of each model list page linked from the page shown."""
        return {path: text for path, text in self.links().items() if MODEL_LIST.match(path)}

    def change_links(self, model_path: str) -> list[str]:
        """Links of the list shown to its rows' change pages."""
        change = re.compile(rf"^{re.escape(model_path)}[^/]+/change/$")
        return [path for path in self.links() if change.match(path)]
