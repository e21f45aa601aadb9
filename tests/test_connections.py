"""How the fetcher uses connections: keep-alive across conditional GETs, and environment proxies.

A stdlib HTTP/1.1 server in a thread counts the TCP connections it accepts (pytest-httpserver's
werkzeug server closes every connection, so it cannot show reuse)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from aggregator.models import Config

from .conftest import run_update
from .feeds import item, rss


class CountingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FeedHandler)
        self.connections = 0
        self.paths: list[str] = []
        self.lock = threading.Lock()

    def get_request(self):  # type: ignore[no-untyped-def]
        with self.lock:
            self.connections += 1
        return super().get_request()


class FeedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server: CountingServer

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.paths.append(self.path)
        name = self.path.rsplit("/", 1)[-1]
        etag = f'"{name}-v1"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        body = rss([item(1, guid=f"{name}-1")])
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@contextmanager
def counting_server() -> Iterator[CountingServer]:
    server = CountingServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_conditional_gets_answered_304_reuse_connections(make_config: Callable[..., Config]) -> None:
    with counting_server() as server:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        config = make_config(
            [{"url": f"{base}/feed/{n}.xml", "category": "news"} for n in range(40)],
            concurrency=4,
            per_host_concurrency=4,
        )
        first = run_update(config)
        assert first.count("ok") == 40
        before = server.connections
        second = run_update(config)
        assert second.count("not_modified") == 40
        # At most one connection per request slot: a 304 left unread would have cost one per feed.
        assert server.connections - before <= 4


def test_environment_proxy_is_used(make_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch) -> None:
    with counting_server() as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        # The host does not exist: only a proxy can answer for it.
        config = make_config([{"url": "http://feeds.example.invalid/feed/proxied.xml", "category": "news"}])
        summary = run_update(config)
        assert summary.count("ok") == 1, summary.outcomes
        assert proxy.paths == ["http://feeds.example.invalid/feed/proxied.xml"]
