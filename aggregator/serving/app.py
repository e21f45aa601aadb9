"""Serve the republished feeds and the static site over HTTP (starlette + uvicorn: the only module that
imports them).

    /feeds/<path>   archive_dir/feeds/<path>    (e.g. /feeds/tech.atom, /feeds/archive/tech/1.atom)
    /<path>         archive_dir/public/<path>   (/ -> index.html, /x/ -> x/index.html)

Cheap to poll: a strong ETag (hash of the bytes) and Last-Modified on every file, 304 for If-None-Match /
If-Modified-Since, gzip when the client accepts it (compressed once per file version, not per request),
Cache-Control. Only GET and HEAD. Paths are checked before touching the disk: `..`, dot files, encoded
slashes or backslashes, NUL and symlinks that lead outside the served folder all give 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import logging
import os
import re
import socket
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from threading import Lock
from urllib.parse import quote

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from aggregator.core.errors import AggregatorError
from aggregator.core.models import Config

log = logging.getLogger("aggregator.server")

PUBLIC_DIR = "public"
FEEDS_PREFIX = "/feeds/"
FEED_MAX_AGE = 300
ARCHIVE_PAGE_MAX_AGE = 86_400  # full RFC 5005 pages change only when an entry in them is edited
PAGE_MAX_AGE = 300
GZIP_MIN_BYTES = 512
_CACHE_SIZE = 512
EMBEDDED_STOP_TIMEOUT = 2  # seconds open connections get when the host stops an embedded server

CONTENT_TYPES = {
    ".atom": "application/atom+xml; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".opml": "text/x-opml; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}
FEED_JSON_TYPE = "application/feed+json; charset=utf-8"
_COMPRESSIBLE = re.compile(r"^(text/|application/(.+\+)?(xml|json)|image/svg\+xml|text/javascript)")
# Percent-encoded '/', '\' and NUL: decoded they would change which file a path names.
_ENCODED_DANGER = re.compile(rb"%(2f|5c|00)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _Representation:
    body: bytes
    etag: str
    gzip_body: bytes | None
    gzip_etag: str


class _FileCache:
    """Hash and compress each file once per version (path, size, mtime, inode), not on every poll."""

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self._items: OrderedDict[tuple[str, int, int, int], _Representation] = OrderedDict()
        self._size = size
        self._lock = Lock()

    def get(self, path: Path, stat: os.stat_result, content_type: str) -> _Representation:
        key = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        body = path.read_bytes()
        digest = hashlib.sha256(body).hexdigest()[:32]
        compress = len(body) >= GZIP_MIN_BYTES and bool(_COMPRESSIBLE.match(content_type))
        # mtime=0: the same bytes always give the same gzip bytes, so the gzip ETag stays valid.
        representation = _Representation(
            body=body,
            etag=f'"{digest}"',
            gzip_body=gzip.compress(body, compresslevel=6, mtime=0) if compress else None,
            gzip_etag=f'"{digest}-gzip"',
        )
        with self._lock:
            self._items[key] = representation
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return representation


def _content_type(path: Path, under_feeds: bool) -> str:
    suffix = path.suffix.lower()
    if suffix == ".json" and under_feeds:
        return FEED_JSON_TYPE
    return CONTENT_TYPES.get(suffix, "application/octet-stream")


def _safe_parts(raw_path: bytes, path: str) -> list[str] | None:
    """The path's segments, or None when the path tries anything but naming a file below the root."""
    if _ENCODED_DANGER.search(raw_path) or "\\" in path or "\x00" in path:
        return None
    parts = [part for part in path.split("/") if part]
    for part in parts:
        # ".." climbs out; "." and dot files (temp files, publish state, lock) are never published.
        if part.startswith("."):
            return None
    return parts


def _resolve(root: Path, parts: list[str]) -> Path | None:
    """The file `parts` names under `root`, following symlinks only when they stay inside root."""
    try:
        real_root = root.resolve(strict=True)
        target = root.joinpath(*parts).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if target != real_root and real_root not in target.parents:
        return None
    return target


def _etag_matches(header: str, representation: _Representation) -> bool:
    """If-None-Match uses the weak comparison: any listed tag naming these bytes (either encoding) matches."""
    candidates = {representation.etag.strip('"'), representation.gzip_etag.strip('"')}
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*":
            return True
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag.strip('"') in candidates:
            return True
    return False


def _not_modified_since(header: str, mtime: float) -> bool:
    try:
        since = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return False
    if since is None or since.tzinfo is None:
        return False
    # A date in the future says nothing about what the client holds (RFC 9110 13.1.3): ignored. It would
    # otherwise keep a file rewritten before that date "not modified" until then.
    return int(mtime) <= since.timestamp() <= time.time()


def _accepts_gzip(header: str) -> bool:
    """Whether Accept-Encoding allows gzip (RFC 9110 12.5.3): an explicit gzip (or x-gzip) entry decides,
    whatever its place in the list; else `*`; q=0 refuses."""
    qualities: dict[str, float] = {}
    for part in header.lower().split(","):
        coding, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if coding:
            qualities[coding] = max(quality, qualities.get(coding, 0.0))
    for coding in ("gzip", "x-gzip", "*"):
        if coding in qualities:
            return qualities[coding] > 0
    return False


def _cache_control(under_feeds: bool, parts: list[str]) -> str:
    if under_feeds and parts and parts[0] == "archive":
        return f"public, max-age={ARCHIVE_PAGE_MAX_AGE}"
    return f"public, max-age={FEED_MAX_AGE if under_feeds else PAGE_MAX_AGE}"


def create_app(config: Config) -> Starlette:
    """The ASGI app serving `archive_dir/feeds/` at /feeds/ and `archive_dir/public/` at /."""
    feeds_root = config.settings.archive_dir / "feeds"
    public_root = config.settings.archive_dir / PUBLIC_DIR
    cache = _FileCache()

    def not_found() -> Response:
        return PlainTextResponse("Not Found\n", status_code=404, headers={"Cache-Control": "no-cache"})

    async def serve_file(request: Request) -> Response:
        path = request.scope["path"]
        raw_path = request.scope.get("raw_path") or path.encode("utf-8", "surrogateescape")
        parts = _safe_parts(raw_path, path)
        if parts is None:
            return not_found()
        under_feeds = path.startswith(FEEDS_PREFIX) or path == FEEDS_PREFIX.rstrip("/")
        root = feeds_root if under_feeds else public_root
        if under_feeds:
            parts = parts[1:]
        target = _resolve(root, parts)
        if target is None:
            return not_found()
        if target.is_dir():
            # Only a folder with a page of its own is one: /feeds (no index) is simply not found, rather
            # than redirected to a /feeds/ that is not found either.
            target = _resolve(target, ["index.html"])
            if target is None or not target.is_file():
                return not_found()
            if not path.endswith("/"):
                query = request.url.query
                # Relative to the folder's own name: right behind a proxy that serves the site under a
                # path of its own (base_url's), and never a network-path reference ("//sub/", another host).
                location = quote(path.rstrip("/").rsplit("/", 1)[-1]) + "/" + (f"?{query}" if query else "")
                return RedirectResponse(location, status_code=301)
        elif not target.is_file() or path.endswith("/"):  # "x.atom/" names a folder, which x.atom is not
            return not_found()
        try:
            stat = target.stat()
            content_type = _content_type(target, under_feeds)
            representation = await asyncio.to_thread(cache.get, target, stat, content_type)
        except OSError:
            return not_found()
        use_gzip = representation.gzip_body is not None and _accepts_gzip(request.headers.get("accept-encoding", ""))
        etag = representation.gzip_etag if use_gzip else representation.etag
        headers = {
            "ETag": etag,
            "Last-Modified": formatdate(stat.st_mtime, usegmt=True),
            "Cache-Control": _cache_control(under_feeds, parts),
            "X-Content-Type-Options": "nosniff",
        }
        if representation.gzip_body is not None:
            headers["Vary"] = "Accept-Encoding"
        if_none_match = request.headers.get("if-none-match")
        if if_none_match is not None:
            if _etag_matches(if_none_match, representation):
                return Response(status_code=304, headers=headers)
        elif (since := request.headers.get("if-modified-since")) and _not_modified_since(since, stat.st_mtime):
            return Response(status_code=304, headers=headers)
        body = representation.gzip_body if use_gzip and representation.gzip_body is not None else representation.body
        if use_gzip:
            headers["Content-Encoding"] = "gzip"
        headers["Content-Length"] = str(len(body))
        # uvicorn sends no body for HEAD but keeps the Content-Length of the GET.
        return Response(body if request.method == "GET" else b"", headers=headers, media_type=content_type)

    return Starlette(routes=[Route("/{path:path}", serve_file, methods=["GET", "HEAD"])])


# --- running -------------------------------------------------------------------------------------


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its host (the daemon stops it via should_exit)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind_socket(host: str, port: int) -> socket.socket:
    """Listen on host:port (port 0 = any free port); a port in use is one clear error, not a traceback."""
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # "[::1]" as URLs write it
    try:
        found = socket.getaddrinfo(name or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as error:
        raise AggregatorError(f"cannot listen on {host}:{port}: {getattr(error, 'strerror', None) or error}") from None
    # IPv4 first where a name has both (as "localhost" always meant here); an IPv6-only name still works.
    family, _, _, _, address = sorted(found, key=lambda info: info[0] != socket.AF_INET)[0]
    # IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off only on sockets that say they are TCP, and
    # with it on, a response's body waited ~40 ms for the client's delayed ACK on a kept-alive connection.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as error:
        sock.close()
        raise AggregatorError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    sock.setblocking(False)
    return sock


def build_server(
    config: Config, *, embedded: bool = False, log_level: str = "warning", app: ASGIApp | None = None
) -> uvicorn.Server:
    """A uvicorn server for `app` (default: the subscriber app for `config`; the daemon wraps it to add
    /healthz and /metrics)."""
    uvicorn_config = uvicorn.Config(
        app or create_app(config),
        lifespan="off",
        log_level=log_level,
        access_log=log_level in ("debug", "info"),
        server_header=False,
        proxy_headers=False,
        # uvicorn's loggers propagate to the handler the command set up (cli/logsetup: text or JSON lines,
        # addresses redacted) instead of writing to stderr in uvicorn's own format.
        log_config=None,
        # Embedded, the host bounds its own stop (the daemon's shutdown_grace): a client still reading a
        # response after that long is cut off rather than waited for.
        timeout_graceful_shutdown=EMBEDDED_STOP_TIMEOUT if embedded else None,
    )
    return _EmbeddedServer(uvicorn_config) if embedded else uvicorn.Server(uvicorn_config)


async def serve(
    config: Config,
    host: str | None = None,
    port: int | None = None,
    should_exit: asyncio.Event | None = None,
    *,
    sock: socket.socket | None = None,
    log_level: str = "warning",
    app: ASGIApp | None = None,
) -> None:
    """Serve until `should_exit` is set (in-process use, e.g. the daemon; signals stay with the host), or,
    without it, until SIGINT/SIGTERM. Pass `sock` (from `bind_socket`) to serve on a socket bound already."""
    settings = config.settings
    listener = sock or bind_socket(host or settings.serve_host, settings.serve_port if port is None else port)
    server = build_server(config, embedded=should_exit is not None, log_level=log_level, app=app)
    if should_exit is None:
        await server.serve(sockets=[listener])
        return
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    stopping = asyncio.create_task(should_exit.wait())
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        stopping.cancel()
        await serving


def run_server(config: Config, host: str | None = None, port: int | None = None, log_level: str = "warning") -> None:
    """Serve in the foreground until Ctrl-C (`aggregator serve`)."""
    settings = config.settings
    host = host or settings.serve_host
    if not any((settings.archive_dir / folder).is_dir() for folder in ("feeds", "public")):
        raise AggregatorError(
            f"nothing to serve: {settings.archive_dir} has no feeds/ or public/ yet (run: aggregator publish)"
        )
    listener = bind_socket(host, settings.serve_port if port is None else port)
    bound_port = listener.getsockname()[1]
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    print(f"Serving {settings.archive_dir} at http://{shown}:{bound_port}/ (feeds under /feeds/); Ctrl-C stops.")
    asyncio.run(serve(config, sock=listener, log_level=log_level))
