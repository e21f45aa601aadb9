"""The daemon's test harness: a local feed server whose feeds a test changes while the daemon runs, and
the daemon itself as operators run it (`python -m aggregator daemon` in a subprocess), with ways to read
its archive beside it. The fixtures are registered for tests/daemon/ by conftest.py."""

from __future__ import annotations

import contextlib
import itertools
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, write_config
from tests.feeds import item, rss

MIN_INTERVAL = 1
DEADLINE = 20.0


# --- a feed server whose feeds the test changes while the daemon runs ------------------------------


@dataclass
class Route:
    items: list[dict[str, str]] = field(default_factory=list)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    once: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # (status, headers) answered first


class FeedServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server.lock:
                    server.requests.setdefault(self.path, []).append(time.monotonic())
                    route = server.routes.get(self.path)
                    once = route.once.pop(0) if route and route.once else None
                if route is None:
                    self.send_error(404)
                    return
                if route.delay:
                    time.sleep(route.delay)
                status, headers = once or (route.status, route.headers)
                body = rss(route.items) if status == 200 else b"error"
                self.send_response(status)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                # The daemon under test may be stopped mid-request, on purpose.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def hits(self, path: str) -> list[float]:
        with self.lock:
            return list(self.requests.get(path, []))


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def fresh_item(n: int) -> dict[str, str]:
    """An item published just now: the adaptive interval keeps a feed that posts often at min_interval."""
    return item(n, pubDate=format_datetime(datetime.now(UTC) - timedelta(seconds=n)))


# --- running the daemon ------------------------------------------------------------------------------


def daemon_config(directory: Path, feeds: list[dict[str, Any]], **settings: Any) -> Path:
    defaults: dict[str, Any] = {
        "min_interval": f"{MIN_INTERVAL}s",
        "default_interval": "1s",
        "max_interval": "2s",
        "publish": False,
        "parse_workers": 1,
        "per_host_delay": 0,
    }
    return write_config(directory, feeds, **{**defaults, **settings})


def aggregator(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "aggregator", "--config", str(config), *args]


@pytest.fixture
def start_daemon() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(config: Path, *args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            aggregator(config, "daemon", *args), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate()


def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str]:
    process.send_signal(sig)
    _out, err = process.communicate(timeout=60)
    return process.returncode, err


def query(config: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    database = config.parent / "archive" / "aggregator.db"
    if not database.exists():
        return []
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as conn:
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError:  # the daemon is still creating the schema
            return []


def entries(config: Path, url: str) -> int:
    rows = query(config, "SELECT count(*) FROM entries WHERE feed_url = ?", url)
    return rows[0][0] if rows else 0


def wait_until(condition: Callable[[], bool], process: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            pytest.fail(f"daemon exited ({process.returncode}) before {what}: {process.communicate()[1]}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def wait_started(config: Path, process: subprocess.Popen[str]) -> None:
    """Until the daemon holds its lock (its pid in daemon.lock): from then on a SIGHUP reloads it, where
    before (Python still importing, under load more than a second) it would end the process."""
    lock = config.parent / "archive" / "daemon.lock"
    wait_until(lambda: lock.is_file() and lock.read_text().strip() == str(process.pid), process, "the daemon's start")


def gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(times)]
