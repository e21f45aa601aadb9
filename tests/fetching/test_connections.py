"""How the fetcher uses connections: keep-alive across conditional GETs (plain and TLS), certificate
checks, and environment proxies.

A stdlib HTTP/1.1 server in a thread counts the TCP connections it accepts (pytest-httpserver's
werkzeug server closes every connection, so it cannot show reuse)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme

from aggregator.core.models import Config
from tests.conftest import run_update
from tests.feeds import item, rss
from tests.rawserver import raw_server


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
def counting_server(tls: ssl.SSLContext | None = None) -> Iterator[CountingServer]:
    server = CountingServer()
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def assert_second_run_reuses_connections(
    make_config: Callable[..., Config], server: CountingServer, base: str, feeds: int, slots: int
) -> None:
    """Two runs over `feeds` feeds with `slots` requests in flight: the second, all 304s, opens at most
    one connection per slot (a 304 left unread would have cost one per feed)."""
    config = make_config(
        [{"url": f"{base}/feed/{n}.xml", "category": "news"} for n in range(feeds)],
        concurrency=slots,
        per_host_concurrency=slots,
    )
    first = run_update(config)
    assert first.count("ok") == feeds, first.outcomes
    before = server.connections
    second = run_update(config)
    assert second.count("not_modified") == feeds, second.outcomes
    assert server.connections - before <= slots


def test_conditional_gets_answered_304_reuse_connections(make_config: Callable[..., Config]) -> None:
    with counting_server() as server:
        assert_second_run_reuses_connections(
            make_config, server, f"http://127.0.0.1:{server.server_address[1]}", feeds=40, slots=4
        )


def test_requests_run_on_the_asyncio_network_backend(make_config: Callable[..., Config]) -> None:
    # fetch.py swaps httpx's pool for one on netbackend.AsyncioBackend; if an httpx release renamed
    # what it swaps, requests would silently go back through anyio, at a quarter more CPU each.
    import asyncio

    from aggregator.fetching.backend import AsyncioStream
    from aggregator.fetching.client import HttpClient

    with counting_server() as server:
        config = make_config([])

        async def stream_type() -> type:
            async with (
                HttpClient(config.settings) as client,
                client.get(f"http://127.0.0.1:{server.server_address[1]}/feed/1.xml", {}) as response,
            ):
                return type(response.extensions["network_stream"])

        assert asyncio.run(stream_type()) is AsyncioStream


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


@pytest.fixture
def certificate_authority() -> trustme.CA:
    return trustme.CA()


def _tls_server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def test_https_feeds_are_fetched_and_reuse_tls_connections(
    make_config: Callable[..., Config],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    certificate_authority: trustme.CA,
) -> None:
    bundle = tmp_path / "ca.pem"
    certificate_authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # the test CA is the only one trusted
    with counting_server(_tls_server_context(certificate_authority)) as server:
        assert_second_run_reuses_connections(
            make_config, server, f"https://localhost:{server.server_address[1]}", feeds=12, slots=2
        )


def test_untrusted_certificate_is_a_clear_tls_error(
    make_config: Callable[..., Config], certificate_authority: trustme.CA
) -> None:
    # Signed by a CA nobody trusts: the feed fails with a one-line TLS error, nothing is stored.
    with counting_server(_tls_server_context(certificate_authority)) as server:
        url = f"https://localhost:{server.server_address[1]}/feed/untrusted.xml"
        summary = run_update(make_config([{"url": url, "category": "news"}]))
        [outcome] = summary.outcomes
        assert outcome.status == "error"
        assert outcome.error.startswith("TLS error:") and "certificate verify failed" in outcome.error
        assert "\n" not in outcome.error
        assert server.paths == []


def test_server_closing_after_each_response_without_saying_so(make_config: Callable[..., Config]) -> None:
    # HTTP/1.1 without "Connection: close", then the connection closed a moment later: the next request,
    # sent on what looked like a live keep-alive connection, meets a reset. It is sent again on a new
    # connection instead of failing the feed.
    def respond(conn: socket.socket) -> None:
        body = rss([item(1)])
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n")
        conn.sendall(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(0.2)  # long enough for the client to reuse the connection before the close

    with raw_server(respond) as base:
        feeds = [{"url": f"{base}/feed/{n}.xml", "category": "news"} for n in range(6)]
        summary = run_update(make_config(feeds, concurrency=1, per_host_concurrency=1))
    assert summary.count("ok") == 6, [o.error for o in summary.failed]


def test_host_names_asyncio_cannot_encode_fail_that_feed_only(make_config: Callable[..., Config]) -> None:
    # asyncio IDNA-encodes host names: an empty label ("a..b") raised UnicodeError from deep inside.
    config = make_config([{"url": "http://a..b/feed.xml", "category": "news"}], strict_network=False)
    [outcome] = run_update(config).outcomes
    assert outcome.status == "error"
    assert outcome.error.startswith("connection failed: invalid host name 'a..b'")


def test_tls_server_that_hangs_up_at_once_is_a_prompt_clear_error(make_config: Callable[..., Config]) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def hang_up() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{listener.getsockname()[1]}/feed.xml"
        started = time.monotonic()
        [outcome] = run_update(make_config([{"url": url, "category": "news"}], request_timeout="20s")).outcomes
        assert time.monotonic() - started < 10
    finally:
        stop.set()
        thread.join(2)
        listener.close()
    assert outcome.status == "error"
    assert outcome.error.startswith("TLS error: the server closed the connection"), outcome.error


def test_a_server_that_resets_every_connection_is_one_clear_line(make_config: Callable[..., Config]) -> None:
    def reset(conn: socket.socket) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close

    with raw_server(reset) as base:
        [outcome] = run_update(make_config([{"url": f"{base}/feed.xml", "category": "news"}])).outcomes
    assert outcome.status == "error"
    assert outcome.error.startswith(("connection lost", "broken response")), outcome.error
    assert "\n" not in outcome.error
