"""The lean runtime (issue #18): requirements/runtime.txt, installed as the Dockerfile installs it
(`pip install --require-hashes --no-deps`, then the project with --no-deps), runs the service without the
django-cfg requirements that requirements/lean-excludes.txt leaves out.

One venv is built from the lock in a temporary folder, and the project is installed into it from a copy
of exactly the Docker build context (.dockerignore's allow-list). In that venv, from that copy: the left-out
packages are absent, `manage.py migrate` makes a fresh SQLite file, `collectstatic` runs as in the image
build, every module of apps/ imports, a real
`manage.py rungrpc` replica serves and drains, and the web tier (uvicorn) serves the admin's login page,
a login, the admin home and a model list over HTTP.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from grpc_health.v1 import health_pb2

from tests.support.cluster import health_status
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_LOCK = ROOT / "requirements" / "runtime.txt"
EXCLUDES = ROOT / "requirements" / "lean-excludes.txt"
# Import names of packages django-cfg 2.3 requires and this service never imports (the list and
# the rest of lean-excludes.txt). pyTelegramBotAPI and pillow are not here: django-cfg imports telebot
# whenever it is imported, and telebot imports PIL; nor qrcode: the admin's user list imports it (through
# django-cfg's TOTP service). lean-excludes.txt says what else stays and why.
ABSENT_MODULES = (
    "openai", "tiktoken", "mypy", "faker", "geopy", "pgvector", "pywebpush", "lxml", "bs4",
    "questionary", "loguru", "colorlog", "email_validator", "cryptography", "toml",
    "json_repair", "pydantic_yaml", "ua_parser", "constance", "corsheaders", "django_extensions",
    "django_redis", "simple_history", "tailwind", "rest_framework_nested", "drf_spectacular_sidecar",
    "adrf", "django_json_widget", "django_ratelimit", "django_stubs_ext", "mypy_django_plugin",
)
OPERATOR_TOKEN = "lean-operator-token"

pytestmark = pytest.mark.timeout(600)


def excluded_distributions() -> list[str]:
    names = []
    for line in EXCLUDES.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    return names


@dataclass
class Runtime:
    python: Path
    app: Path  # the image's /app: a copy of the Docker build context
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(self.python), "-W", "ignore", *args], cwd=self.app, env=self.env,
                                capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        return result

    def start(self, *args: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
        with open(log, "wb") as out:
            return subprocess.Popen([str(self.python), "-W", "ignore", *args], cwd=self.app,
                                    env={**self.env, **env}, stdout=out, stderr=subprocess.STDOUT)


def docker_context(dest: Path) -> None:
    """Copy what .dockerignore lets into the image's build context (its `!name` lines)."""
    allowed = [line[1:].strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")]
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.sqlite3*")
    dest.mkdir()
    for name in allowed:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=ignore)
        else:
            shutil.copy2(source, dest / name)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    base = tmp_path_factory.mktemp("lean-runtime")
    venv, app = base / "venv", base / "app"
    docker_context(app)
    pip_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # pip from the test venv drives the install into the new one (--python), as fast as a local pip.
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "--disable-pip-version-check",
           "--quiet", "install", "--no-deps"]
    for args in (["--require-hashes", "-r", str(app / "requirements" / "runtime.txt")],
                 ["--no-build-isolation", str(app)]):
        done = subprocess.run(pip + args, cwd=app, env=pip_env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"pip install {args} failed:\n{done.stdout}\n{done.stderr}"
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "PYTHONPATH", "VIRTUAL_ENV") and not k.startswith(("DJANGO_", "CRYPTO_"))}
    env.update(DJANGO_ALLOW_DEV_SECRET_KEY="on", DATABASE_URL=f"sqlite:///{app / 'lean.sqlite3'}",
               CRYPTO_OPERATOR_TOKENS=OPERATOR_TOKEN, METRICS_PORT="0")
    return Runtime(venv / "bin" / "python", app, env)


def test_left_out_packages_are_absent(runtime: Runtime):
    probe = (
        "import importlib.metadata as md, importlib.util as u, json, sys\n"
        "mods, dists = json.loads(sys.argv[1]), json.loads(sys.argv[2])\n"
        "def installed(d):\n"
        "    try:\n        md.distribution(d)\n        return True\n"
        "    except md.PackageNotFoundError:\n        return False\n"
        "print(json.dumps({'modules': [m for m in mods if u.find_spec(m) is not None],\n"
        "                  'distributions': [d for d in dists if installed(d)],\n"
        "                  'count': len({d.metadata['Name'].lower() for d in md.distributions()})}))\n"
    )
    found = json.loads(runtime.run("-c", probe, json.dumps(ABSENT_MODULES),
                                   json.dumps(excluded_distributions())).stdout)
    assert found["modules"] == [] and found["distributions"] == []
    # django-cfg 2.3's full tree is ~150 packages; the lean one is about half that.
    assert found["count"] < 100, found["count"]


def test_project_runs_from_the_installed_copy(runtime: Runtime):
    where = runtime.run("-c", "import apps, config; print(apps.__file__); print(config.__file__)").stdout
    assert str(ROOT) not in where


def test_migrate_on_a_fresh_sqlite_file(runtime: Runtime):
    database = runtime.app / "lean.sqlite3"
    database.unlink(missing_ok=True)
    runtime.run("manage.py", "migrate", "--noinput", "-v", "0")
    assert database.stat().st_size > 0
    runtime.run("manage.py", "check")
    shown = runtime.run("manage.py", "showmigrations", "crypto").stdout
    assert "[X]" in shown and "[ ]" not in shown


def test_collectstatic_as_the_image_build_runs_it(runtime: Runtime):
    runtime.run("manage.py", "collectstatic", "--noinput", "-v", "0")
    assert (runtime.app / "staticfiles" / "staticfiles.json").stat().st_size > 0


def test_every_module_of_apps_imports(runtime: Runtime):
    script = (
        "import importlib, os, pkgutil\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings')\n"
        "import django; django.setup()\n"
        "import apps\n"
        "names = [m.name for m in pkgutil.walk_packages(apps.__path__, 'apps.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "print(len(names))\n"
    )
    imported = int(runtime.run("-c", script).stdout.strip().splitlines()[-1])
    on_disk = [p for p in (ROOT / "apps").rglob("*.py") if p.name != "__init__.py"]
    assert imported >= len(on_disk) > 50


def test_a_replica_serves_and_drains(runtime: Runtime, tmp_path: Path):
    runtime.run("manage.py", "migrate", "--noinput", "-v", "0")
    port, log = free_port(), tmp_path / "replica.log"
    replica = runtime.start("manage.py", "rungrpc", "--host", "127.0.0.1", "--port", str(port), log=log,
                            REPLICA_ID="lean-1", METRICS_PORT=str(free_port()))
    try:
        until = time.monotonic() + 60
        while health_status(f"127.0.0.1:{port}", "readiness") != health_pb2.HealthCheckResponse.SERVING:
            assert replica.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < until, "replica not ready:\n" + log.read_text(errors="replace")
            time.sleep(0.2)
        replica.send_signal(signal.SIGTERM)
        assert replica.wait(30) == 0, log.read_text(errors="replace")
    finally:
        if replica.poll() is None:
            replica.kill()
            replica.wait()
    assert "replica.started" in log.read_text(errors="replace")


@pytest.fixture
def web_tier(runtime: Runtime, tmp_path: Path) -> Iterator[str]:
    runtime.run("manage.py", "migrate", "--noinput", "-v", "0")
    port, log = free_port(), tmp_path / "web.log"
    web = runtime.start("-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port),
                        "--lifespan", "off", log=log, DJANGO_DEBUG="on")  # as scripts/web.sh: cookies over HTTP
    url = f"http://127.0.0.1:{port}"
    try:
        until = time.monotonic() + 60
        while True:
            assert web.poll() is None, log.read_text(errors="replace")
            try:
                httpx.get(url + "/", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < until, "web tier not serving:\n" + log.read_text(errors="replace")
                time.sleep(0.2)
        yield url
    finally:
        web.terminate()
        try:
            web.wait(10)
        except subprocess.TimeoutExpired:
            web.kill()
            web.wait()


def test_admin_login_page_and_a_login_over_http(runtime: Runtime, web_tier: str):
    email, password = "lean-admin@example.com", "lean-admin-password"
    admin_lists = runtime.run("-c", (
        "import os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings')\n"
        "import django; django.setup()\n"
        "from django.contrib import admin\n"
        "from django.contrib.auth import get_user_model\n"
        "User = get_user_model()\n"
        f"User.objects.filter(email={email!r}).delete()\n"
        f"user = User.objects.create_superuser(email={email!r}, username='lean-admin', password={password!r})\n"
        "print(f'/admin/{user._meta.app_label}/{user._meta.model_name}/{user.pk}/change/')\n"
        "for model in admin.site._registry: print(f'/admin/{model._meta.app_label}/{model._meta.model_name}/')\n"
    )).stdout.split()
    assert "/admin/crypto/client/" in admin_lists and len(admin_lists) > 10
    with httpx.Client(base_url=web_tier, timeout=30) as browser:
        page = browser.get("/admin/login/")
        assert page.status_code == 200
        assert 'name="password"' in page.text
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token, page.text[:2000]
        done = browser.post("/admin/login/", data={"username": email, "password": password,
                                                   "csrfmiddlewaretoken": token.group(1), "next": "/admin/"})
        assert done.status_code == 302 and done.headers["location"] == "/admin/", done.text[:2000]
        assert browser.get("/admin/").status_code == 200
        # Every model's list in the admin (django-cfg's user and activity admins among them), and the user's
        # own change page.
        for path in admin_lists:
            response = browser.get(path)
            assert response.status_code == 200, (path, response.status_code, response.text[:2000])
        api = browser.get("/api/crypto/clients/", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
        assert api.status_code == 200, api.text[:2000]
