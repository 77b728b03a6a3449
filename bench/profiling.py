"""Sample a replica with py-spy (when installed) and boil the collapsed stacks down to hot spots."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from .procs import guarded

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
PROJECT_MARKERS = ("apps/", "config/")
RATE = 100  # samples per second
# Leaf frames that mean "waiting", not "working": dropped so percentages are of busy samples.
IDLE_LEAVES = {("EpollSelector.select", "selectors.py"), ("Condition.wait", "threading.py"),
               ("_worker", "concurrent/futures/thread.py"), ("Thread.run", "threading.py")}


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start(pid: int, out: Path, seconds: float, rate: int = RATE, native: bool = False
          ) -> subprocess.Popen[bytes] | None:
    """py-spy record in collapsed-stack format (loadable in speedscope); None when py-spy is missing.
    `native` adds C frames (gRPC's core and Cython), which shows what the Python frames only call;
    py-spy then pauses the process for each sample (it cannot read native stacks without blocking)."""
    binary = py_spy()
    if binary is None:
        return None
    args = [binary, "record", "--pid", str(pid), "--rate", str(rate), "--duration", str(int(seconds)),
            "--format", "raw", "--output", str(out)] + (["--native"] if native else ["--nonblocking"])
    return subprocess.Popen(guarded(args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def finish(process: subprocess.Popen[bytes] | None, timeout: float = 60.0) -> None:
    if process is None:
        return
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def _frames(stack: str) -> list[tuple[str, str, str]]:
    frames = []
    for raw in stack.split(";"):
        match = FRAME.match(raw.strip())
        if match:
            frames.append((match["func"], _short(match["file"]), match["line"] or ""))
    return frames


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _package(file: str) -> str:
    if file.startswith(PROJECT_MARKERS):
        return "project (apps/, config/)"
    head = file.split("/", 1)[0]
    return {"asyncio": "asyncio event loop", "django": "django ORM", "redis": "redis-py", "grpc": "grpc",
            "asgiref": "asgiref sync_to_async", "concurrent": "thread pool", "threading": "threading",
            "json": "json", "google": "protobuf"}.get(head, head)


def summarize(raw: Path, top: int = 20) -> dict[str, Any]:
    """Busy samples (all threads; a thread waiting in select/queue.get is idle) boiled down to:
    self time per source line, self time per package, inclusive time per project function, and the
    innermost project frame of each sample (what project code led to the work)."""
    self_lines: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    project_inclusive: Counter[str] = Counter()
    project_lines: Counter[str] = Counter()
    total = idle = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit() or not stack:
            continue
        count = int(count_text)
        frames = _frames(stack)
        if not frames:
            continue
        func, file, lineno = frames[-1]
        if (func, file) in IDLE_LEAVES:
            idle += count
            continue
        total += count
        self_lines[f"{func} ({file}:{lineno})"] += count
        packages[_package(file)] += count
        own = [(f, p, n) for f, p, n in frames if p.startswith(PROJECT_MARKERS) and "management/commands" not in p]
        for name in {f"{f} ({p})" for f, p, _ in own}:
            project_inclusive[name] += count
        if own:
            project_lines[f"{own[-1][0]} ({own[-1][1]}:{own[-1][2]})"] += count

    def share(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"where": k, "samples": v, "pct": round(100 * v / max(1, total), 1)}
                for k, v in counter.most_common(top)]

    return {"busy_samples": total, "idle_samples": idle, "self": share(self_lines), "packages": share(packages),
            "project_inclusive": share(project_inclusive), "project_innermost": share(project_lines)}
