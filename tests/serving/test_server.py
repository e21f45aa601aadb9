"""The HTTP server for subscribers: a real uvicorn server on a free 127.0.0.1 port in a thread, polled with
httpx (and raw sockets for paths httpx would normalise), serving a real published archive."""

from __future__ import annotations

import asyncio
import gzip
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from aggregator.cli.commands import main
from aggregator.cli.demo import DEMO_CONFIG, serve_samples
from aggregator.configuration.load import load_config
from aggregator.core.errors import AggregatorError
from aggregator.core.models import Config
from aggregator.pipeline import update_feeds
from aggregator.publishing.feeds import publish_feeds
from aggregator.serving.app import bind_socket, serve
from aggregator.store.archive import Archive
from tests.conftest import write_config


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """The bundled samples fetched over HTTP, published, plus a small static site with traps around it."""
    root = tmp_path_factory.mktemp("served")
    with serve_samples() as base:
        (root / "feeds.yaml").write_text(DEMO_CONFIG.format(base=base), encoding="utf-8")
        config = load_config(root / "feeds.yaml")
        with Archive.open(config.settings.database_path) as archive:
            asyncio.run(update_feeds(config, list(config.feeds), archive))
            publish_feeds(config, archive)
    public = config.settings.archive_dir / "public"
    (public / "tech").mkdir(parents=True)
    (public / "index.html").write_text("<!doctype html><title>首页</title>" + "<p>archive</p>" * 100, encoding="utf-8")
    (public / "tech" / "index.html").write_text("<!doctype html><title>tech</title>", encoding="utf-8")
    (public / "style.css").write_text("body { color: black }", encoding="utf-8")
    (public / ".hidden").write_text("secret", encoding="utf-8")
    secret = root / "secret.txt"
    secret.write_text("outside the served folders", encoding="utf-8")
    os.symlink(secret, public / "escape.txt")
    os.symlink(root, public / "escape-dir")
    os.symlink(public / "style.css", public / "inside.css")
    return config


class RunningServer:
    """`serve()` on its own event loop in a thread, stopped through its should_exit event."""

    def __init__(self, config: Config) -> None:
        self.sock = bind_socket("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(config,), daemon=True)

    def _run(self, config: Config) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            self.stop_event = asyncio.Event()
            self.ready.set()
            await serve(config, should_exit=self.stop_event, sock=self.sock)

        self.loop.run_until_complete(main())

    def __enter__(self) -> RunningServer:
        self.thread.start()
        self.ready.wait()
        # The socket already listens, so requests queue until uvicorn accepts them: no sleeping needed.
        return self

    def __exit__(self, *_: object) -> None:
        assert self.stop_event is not None
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join()
        self.loop.close()


@pytest.fixture(scope="module")
def server(published: Config) -> Iterator[RunningServer]:
    with RunningServer(published) as running:
        yield running


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base, timeout=30) as http:
        yield http


def raw_response(port: int, path: bytes) -> bytes:
    """Send the path exactly as given (httpx would normalise `..` and encodings); the whole response."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        response = b""
        while chunk := connection.recv(65536):
            response += chunk
    return response


def raw_status(port: int, path: bytes) -> int:
    return int(raw_response(port, path).split(b" ", 2)[1])


def raw_redirect_location(port: int, path: bytes) -> str:
    headers = raw_response(port, path).split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    return next(line.split(":", 1)[1].strip() for line in headers if line.lower().startswith("location:"))


def feeds_dir(config: Config) -> Path:
    return config.settings.archive_dir / "feeds"


def test_a_subscriber_polling_twice_gets_200_then_304(published: Config, client: httpx.Client) -> None:
    first = client.get("/feeds/zhongguoshuiwubao.atom")
    assert first.status_code == 200
    assert first.content == (feeds_dir(published) / "zhongguoshuiwubao.atom").read_bytes()
    assert "中国税务报新闻".encode() in first.content
    etag, last_modified = first.headers["etag"], first.headers["last-modified"]
    assert etag.startswith('"') and not etag.startswith("W/")
    second = client.get(
        "/feeds/zhongguoshuiwubao.atom", headers={"If-None-Match": etag, "If-Modified-Since": last_modified}
    )
    assert second.status_code == 304 and second.content == b""
    assert second.headers["etag"] == etag
    by_date = client.get("/feeds/zhongguoshuiwubao.atom", headers={"If-Modified-Since": last_modified})
    assert by_date.status_code == 304
    stale = client.get("/feeds/zhongguoshuiwubao.atom", headers={"If-None-Match": '"something-else"'})
    assert stale.status_code == 200
    older = formatdate(0, usegmt=True)
    assert client.get("/feeds/zhongguoshuiwubao.atom", headers={"If-Modified-Since": older}).status_code == 200
    future = formatdate(time.time() + 86400, usegmt=True)  # a client's clock ahead: ignored, not "unchanged"
    assert client.get("/feeds/zhongguoshuiwubao.atom", headers={"If-Modified-Since": future}).status_code == 200


def test_a_changed_feed_is_sent_again(tmp_path: Path, published: Config) -> None:
    """A subscriber's ETag stops matching once the file's bytes change."""
    config = replace(published, settings=replace(published.settings, archive_dir=tmp_path))
    shutil.copytree(feeds_dir(published), feeds_dir(config))
    with RunningServer(config) as running, httpx.Client(base_url=running.base, timeout=30) as http:
        first = http.get("/feeds/tech.rss")
        (feeds_dir(config) / "tech.rss").write_bytes(first.content.replace(b"<channel>", b"<channel>\n"))
        second = http.get("/feeds/tech.rss", headers={"If-None-Match": first.headers["etag"]})
        assert second.status_code == 200 and second.headers["etag"] != first.headers["etag"]
        assert http.get("/feeds/tech.rss", headers={"If-None-Match": second.headers["etag"]}).status_code == 304


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/feeds/tech.atom", "application/atom+xml; charset=utf-8"),
        ("/feeds/tech.rss", "application/rss+xml; charset=utf-8"),
        ("/feeds/tech.json", "application/feed+json; charset=utf-8"),
        ("/feeds/all.atom", "application/atom+xml; charset=utf-8"),
        ("/feeds/index.opml", "text/x-opml; charset=utf-8"),
        ("/", "text/html; charset=utf-8"),
        ("/tech/", "text/html; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/inside.css", "text/css; charset=utf-8"),
    ],
)
def test_content_types_and_caching_headers(client: httpx.Client, path: str, content_type: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert "max-age=" in response.headers["cache-control"]
    assert response.headers["last-modified"].endswith("GMT")


def test_directories_serve_their_index(published: Config, server: RunningServer, client: httpx.Client) -> None:
    assert client.get("/").content == (published.settings.archive_dir / "public" / "index.html").read_bytes()
    redirect = client.get("/tech", follow_redirects=False)
    # Relative, so that a proxy serving the site under a path of its own keeps it.
    assert redirect.status_code == 301 and redirect.headers["location"] == "tech/"
    assert client.get("/tech", follow_redirects=True).url.path == "/tech/"
    # Never a network-path reference ("//tech/" would send a browser to the host "tech").
    assert raw_redirect_location(server.port, b"//tech") == "tech/"
    assert b"<title>tech</title>" in client.get("/tech/").content
    # A folder without a page of its own is not found at once, with or without its slash (no redirect
    # to a 404); a file asked for as a folder is not found either.
    for path in ("/feeds", "/feeds/"):
        assert client.get(path, follow_redirects=False).status_code == 404, path
    assert client.get("/feeds/all.atom").status_code == 200
    assert client.get("/feeds/all.atom/", follow_redirects=False).status_code == 404


def test_gzip_when_accepted(published: Config, client: httpx.Client) -> None:
    expected = (feeds_dir(published) / "all.atom").read_bytes()
    plain = client.get("/feeds/all.atom", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == expected
    zipped = client.get("/feeds/all.atom", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.headers["vary"] == "Accept-Encoding"
    assert zipped.content == expected  # httpx decompresses
    assert int(zipped.headers["content-length"]) < len(expected)
    assert zipped.headers["etag"] != plain.headers["etag"]  # a strong ETag names one representation
    # Either representation's tag revalidates.
    for etag in (plain.headers["etag"], zipped.headers["etag"]):
        again = client.get("/feeds/all.atom", headers={"Accept-Encoding": "gzip", "If-None-Match": etag})
        assert again.status_code == 304
    refused = client.get("/feeds/all.atom", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers
    # An explicit refusal wins over a wildcard wherever it stands; x-gzip is gzip.
    assert "content-encoding" not in client.get("/feeds/all.atom", headers={"Accept-Encoding": "*, gzip;q=0"}).headers
    assert client.get("/feeds/all.atom", headers={"Accept-Encoding": "x-gzip"}).headers["content-encoding"] == "gzip"
    with client.stream("GET", "/feeds/all.atom", headers={"Accept-Encoding": "gzip"}) as stream:
        assert gzip.decompress(b"".join(stream.iter_raw())) == expected


def test_head_sends_headers_only(client: httpx.Client) -> None:
    get = client.get("/feeds/tech.atom", headers={"Accept-Encoding": "identity"})
    head = client.head("/feeds/tech.atom", headers={"Accept-Encoding": "identity"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(get.content))
    assert head.headers["etag"] == get.headers["etag"]
    assert head.headers["content-type"] == get.headers["content-type"]
    assert client.head("/feeds/tech.atom", headers={"If-None-Match": get.headers["etag"]}).status_code == 304


def test_only_get_and_head(client: httpx.Client) -> None:
    assert client.post("/feeds/tech.atom").status_code == 405
    assert client.delete("/").status_code == 405


@pytest.mark.parametrize(
    "path",
    [
        b"/nope.html",
        b"/feeds/nope.atom",
        b"/feeds/",
        b"/../feeds.yaml",
        b"/feeds/../../feeds.yaml",
        b"/%2e%2e/feeds.yaml",
        b"/%2E%2E/%2e%2e/feeds.yaml",
        b"/feeds/%2e%2e/aggregator.db",
        b"/feeds%2f..%2faggregator.db",
        b"/..%2faggregator.db",
        b"/..%5caggregator.db",
        b"/..\\aggregator.db",
        b"/tech%00/index.html",
        b"/escape.txt",
        b"/escape-dir/secret.txt",
        b"/escape-dir/feeds.yaml",
        b"/.hidden",
        b"/feeds/.publish-state.json",
        b"/feeds/.publish.lock",
        b"//etc/passwd",
        b"/feeds//etc/passwd",
    ],
)
def test_paths_outside_the_served_folders_are_404(server: RunningServer, path: bytes) -> None:
    assert raw_status(server.port, path) in (400, 404)


def test_traversal_never_leaks_a_file(server: RunningServer, client: httpx.Client) -> None:
    for path in ("/../aggregator.db", "/feeds/../../secret.txt", "/escape.txt"):
        response = client.get(path)
        assert b"outside the served folders" not in response.content and b"SQLite" not in response.content


def test_a_port_in_use_is_one_clear_error(server: RunningServer) -> None:
    with pytest.raises(AggregatorError, match=f"cannot listen on 127.0.0.1:{server.port}"):
        bind_socket("127.0.0.1", server.port)
    with pytest.raises(AggregatorError, match=r"cannot listen on no-such-host\.invalid:0"):
        bind_socket("no-such-host.invalid", 0)


def test_the_listening_socket_says_it_is_tcp() -> None:
    # asyncio disables Nagle's algorithm only on accepted sockets whose listener was made as IPPROTO_TCP;
    # left on, every response body after the first on a kept-alive connection waited ~40 ms for an ACK.
    for host in ("127.0.0.1", "localhost", "[::1]") if socket.has_ipv6 else ("127.0.0.1", "localhost"):
        try:
            sock = bind_socket(host, 0)
        except AggregatorError:
            assert host == "[::1]"  # a machine without IPv6 loopback
            continue
        with sock:
            assert sock.proto == socket.IPPROTO_TCP, host


def test_serving_an_archive_that_was_never_published_is_one_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, [], archive_dir=str(tmp_path / "nothing-here"))
    result = CliRunner().invoke(main, ["--config", str(path), "serve", "--port", "0"])
    assert result.exit_code == 1
    missing = tmp_path / "nothing-here"
    assert (
        result.output == f"error: nothing to serve: {missing} has no feeds/ or public/ yet (run: aggregator publish)\n"
    )
