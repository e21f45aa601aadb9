"""Download feeds with httpx: conditional GET, bounded bodies, a total deadline, manual redirects.

Every outcome is a value (`Fetched`, `NotModified`, `FetchFailure`); nothing here raises to the caller.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import re
import ssl
import time
import urllib.request
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from aggregator.core.models import FeedConfig, FeedState, Fetched, FetchFailure, FetchResult, NotModified, Settings
from aggregator.core.numbers import ONE_YEAR_SECONDS, read_count
from aggregator.core.schedule import MAX_RETRY_AFTER
from aggregator.fetching.addresses import exempt, peer_refusal, refusal
from aggregator.fetching.backend import AsyncioBackend
from aggregator.fetching.domains import politeness_key

ACCEPT = (
    "application/atom+xml, application/rss+xml, application/feed+json, application/json;q=0.9, "
    "application/rdf+xml;q=0.9, application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1"
)
_PERMANENT = {301, 308}
_TEMPORARY = {302, 303, 307}
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


class _BodyTooLargeError(Exception):
    pass


class _BadEncodingError(Exception):
    pass


class BoundedDecoder:
    """Undo Content-Encoding chunk by chunk, refusing to produce more than `limit` bytes.

    httpx inflates a whole network chunk at once; doing it here with zlib's max_length keeps a gzip
    bomb from ever being held in memory past the limit.
    """

    def __init__(self, content_encoding: str, limit: int) -> None:
        codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if len(codings) > 1:
            raise _BadEncodingError(f"unsupported Content-Encoding {content_encoding!r}")
        self.coding = codings[0] if codings else ""
        if self.coding not in ("", "gzip", "x-gzip", "deflate"):
            raise _BadEncodingError(f"unsupported Content-Encoding {content_encoding!r}")
        self.limit = limit
        self.size = 0
        self._zlib: zlib._Decompress | None = None
        self._first = True
        self._carry = b""
        self._ignoring_rest = False
        if self.coding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.coding == "deflate":
            self._zlib = zlib.decompressobj()

    def feed(self, data: bytes) -> bytes:
        if self._zlib is None:
            return self._count(data)
        data = self._carry + data
        self._carry = b""
        if self._ignoring_rest:
            self._count(data)  # ignored, but an endless stream of it must still end at the limit
            return b""
        if self._first and self.coding == "deflate" and data:
            if len(data) < 2:
                self._carry = data  # the zlib header is two bytes
                return b""
            # Some servers send raw deflate without the zlib header the RFC asks for.
            self._first = False
            try:
                zlib.decompressobj().decompress(data[:64], 1)
            except zlib.error:
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        out = bytearray()
        while data:
            if self._zlib.eof:
                if len(data) < 2 and self.coding != "deflate":
                    self._carry = data  # too short yet to tell a next gzip member from padding
                    break
                if self.coding == "deflate" or not data.startswith(b"\x1f\x8b"):
                    # Padding or junk after the compressed body: browsers ignore it, and so do we.
                    self._ignoring_rest = True
                    self._count(data)
                    break
                # A next gzip member (concatenated gzip); an empty one adds nothing.
                self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                # One byte over the remaining allowance is enough to know the body is too large.
                piece = self._zlib.decompress(data, self.limit - self.size + 1)
            except zlib.error as error:
                raise _BadEncodingError(f"corrupt {self.coding} body: {error}") from None
            out += self._count(piece)
            data = self._zlib.unused_data if self._zlib.eof else self._zlib.unconsumed_tail
        return bytes(out)

    def finish(self) -> None:
        if self._zlib is not None and not self._zlib.eof and self.size == 0:
            raise _BadEncodingError(f"empty or truncated {self.coding} body")
        if self._zlib is not None and not self._zlib.eof:
            raise _BadEncodingError(f"truncated {self.coding} body")

    def _count(self, data: bytes) -> bytes:
        self.size += len(data)
        if self.size > self.limit:
            raise _BodyTooLargeError
        return data


class HostLimiter:
    """At most `per_host` requests in flight to one registrable domain (every host of one operator), and
    at least `delay` seconds between their starts."""

    def __init__(self, per_host: int, delay: float = 0.0) -> None:
        self.per_host = per_host
        self.delay = delay
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._next_start: dict[str, float] = {}

    @asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[None]:
        host = politeness_key(url)
        semaphore = self._semaphores.setdefault(host, asyncio.Semaphore(self.per_host))
        async with semaphore:
            if self.delay > 0:
                now = time.monotonic()
                start = max(now, self._next_start.get(host, now))
                self._next_start[host] = start + self.delay
                if start > now:
                    await asyncio.sleep(start - now)
            yield


SHARD_CONNECTIONS = 2
_STALE_CONNECTION = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
KEEPALIVE_EXPIRY = 30.0
_BACKEND = AsyncioBackend()
DRAIN_LIMIT = 64 * 1024


class HttpClient:
    """The fetcher's HTTP client: httpx transports used directly, each a small connection pool.

    httpcore scans its pool's every connection for every queued request, so one pool of 16 connections
    costs three times the CPU per request of eight pools of two (1,000 conditional GETs to one host at 16
    in flight: 1.13 s against 0.36 s, benchmarks/http_pools.py). A request goes to the pool its origin used
    last while that pool has room (its keep-alive connections are there), else to the least busy one.
    Going below httpx.AsyncClient also skips a cookie jar (no feed should see another's cookies) and
    per-request header merging. Environment proxies (HTTP_PROXY, NO_PROXY...) are honoured by sending
    through an httpx.AsyncClient instead, which implements their rules.
    """

    def __init__(self, settings: Settings) -> None:
        self.concurrency = settings.concurrency
        self.timeout = httpx.Timeout(settings.request_timeout, connect=settings.connect_timeout).as_dict()
        self.headers = {"User-Agent": settings.user_agent, "Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"}
        self._shards: dict[str, list[httpx.AsyncHTTPTransport]] = {}
        self._busy: dict[str, list[int]] = {}
        self._home: dict[str, int] = {}
        self._tls: asyncio.Future[ssl.SSLContext] | None = None
        proxies = urllib.request.getproxies()
        self._proxied = (
            httpx.AsyncClient(timeout=httpx.Timeout(**self.timeout), follow_redirects=False)
            if any(proxies.get(scheme) for scheme in ("http", "https", "all"))
            else None
        )

    async def _tls_context(self) -> ssl.SSLContext:
        # Loading the CA bundle takes tens of milliseconds: done once, off the event loop, and only
        # when a feed is fetched over https.
        if self._tls is None:
            self._tls = asyncio.ensure_future(asyncio.to_thread(httpx.create_ssl_context))
        return await self._tls

    async def _group(self, scheme: str) -> tuple[list[httpx.AsyncHTTPTransport], list[int]]:
        if scheme not in self._shards:
            # Plain http never uses TLS, but every transport wants a context: one cheap one for all.
            verify = await self._tls_context() if scheme == "https" else httpx.create_ssl_context(verify=False)
            if scheme not in self._shards:
                count = max(1, -(-self.concurrency // SHARD_CONNECTIONS))
                self._shards[scheme] = [_pool_transport(verify) for _ in range(count)]
                self._busy[scheme] = [0] * count
        return self._shards[scheme], self._busy[scheme]

    @asynccontextmanager
    async def get(self, url: str, headers: dict[str, str]) -> AsyncIterator[httpx.Response]:
        """GET `url` and yield the response with its body unread; it is closed on leaving."""
        target = httpx.URL(url)
        headers = {**self.headers, **headers}
        if target.userinfo:
            # Credentials written into the feed's address (user:password@host): the transports below do
            # not read them from the URL as httpx's client would. Only this address gets them: a redirect
            # elsewhere is a new URL without them.
            pair = f"{target.username}:{target.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
            target = target.copy_with(username=None, password=None)
        request = httpx.Request("GET", target, headers=headers, extensions={"timeout": self.timeout})
        if self._proxied is not None:
            response = await self._proxied.send(request, stream=True)
            try:
                yield response
            finally:
                await response.aclose()
            return
        scheme = request.url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        shards, busy = await self._group(scheme)
        origin = f"{scheme}://{request.url.netloc.decode('ascii')}"
        index = self._home.get(origin, -1)
        if index < 0 or busy[index] >= SHARD_CONNECTIONS:
            index = min(range(len(busy)), key=busy.__getitem__)
        self._home[origin] = index
        busy[index] += 1
        try:
            try:
                response = await shards[index].handle_async_request(request)
            except _STALE_CONNECTION:
                # Before any response: most often a keep-alive connection the server closed as we
                # reused it (one that closes after each response without saying so, or its idle
                # timeout). A GET is safe to send once more; the pool opens a new connection. (A
                # server that breaks every connection gets this second request too, and fails it.)
                response = await shards[index].handle_async_request(request)
            try:
                yield response
            finally:
                await response.aclose()
        finally:
            busy[index] -= 1

    async def aclose(self) -> None:
        for shards in self._shards.values():
            for transport in shards:
                await transport.aclose()
        self._shards.clear()
        if self._proxied is not None:
            await self._proxied.aclose()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


def _pool_transport(ssl_context: ssl.SSLContext) -> httpx.AsyncHTTPTransport:
    """An httpx transport over one small httpcore pool that runs on `backend.AsyncioBackend`.

    httpx's transport takes no network backend, so its pool is replaced by an identical one that does;
    the transport keeps mapping requests, responses and errors between httpx and httpcore."""
    transport = httpx.AsyncHTTPTransport(verify=ssl_context)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=SHARD_CONNECTIONS,
        max_keepalive_connections=SHARD_CONNECTIONS,
        keepalive_expiry=KEEPALIVE_EXPIRY,
        network_backend=_BACKEND,
    )
    return transport


def parse_retry_after(value: str | None, now: datetime | None = None) -> int | None:
    """Retry-After as seconds from now: either delta-seconds or an HTTP date; at most a week (beyond
    it the poll schedule clamps anyway, and a year-3000 date must not overflow the date arithmetic)."""
    if not value:
        return None
    value = value.strip()
    seconds = read_count(value, MAX_RETRY_AFTER)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0, min(int(delta), MAX_RETRY_AFTER))


def parse_max_age(cache_control: str | None) -> int | None:
    if not cache_control or "no-store" in cache_control.lower():
        return None
    match = _MAX_AGE.search(cache_control)
    return read_count(match.group(1), ONE_YEAR_SECONDS) if match else None


_BYTES_REPR = re.compile(r"bytearray\(b('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")\)")


def _describe(error: BaseException) -> str:
    if isinstance(error, httpx.ConnectTimeout):
        return "timed out while connecting"
    if isinstance(error, httpx.ReadTimeout):
        return "timed out waiting for the server"
    if isinstance(error, httpx.ConnectError):
        cause = error.__cause__ or error.__context__
        if isinstance(cause, ssl.SSLError) or any(word in str(error) for word in ("SSL", "TLS", "certificate")):
            return f"TLS error: {error}"
        return f"connection failed: {error}" if str(error) else "connection failed"
    if isinstance(error, httpx.ReadError | httpx.WriteError):
        return f"connection lost: {error}" if str(error) else "connection lost"
    if isinstance(error, httpx.RemoteProtocolError):
        # h11 quotes the offending bytes as a Python repr ("bytearray(b'ZZZZ\\r\\n')"): show them as text.
        detail = _BYTES_REPR.sub(r"\1", str(error))
        return f"broken response: {detail}" if detail else "broken response (connection closed early)"
    if isinstance(error, httpx.TooManyRedirects):
        return "too many redirects"
    if isinstance(error, httpx.HTTPError):
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return f"{type(error).__name__}: {error}"


def _size_text(size: int) -> str:
    if size % (1024 * 1024) == 0:
        return f"{size // (1024 * 1024)} MiB"
    if size % 1024 == 0:
        return f"{size // 1024} KiB"
    return f"{size} bytes"


async def fetch_feed(
    client: HttpClient,
    feed: FeedConfig,
    state: FeedState,
    settings: Settings,
    limiter: HostLimiter,
) -> FetchResult:
    """One conditional GET of `state.fetch_url`, following a few redirects; never raises.

    `request_timeout` bounds the time spent talking to servers (every hop and body together), not the
    time spent queueing for a per-host slot: many feeds on one polite host must not time out unasked."""
    try:
        return await _fetch(client, feed, state, settings, limiter)
    except TimeoutError:
        return FetchFailure(f"timed out after {settings.request_timeout:g}s (the whole request, body included)")
    except _BodyTooLargeError:
        return FetchFailure(f"body larger than the {_size_text(settings.max_body_bytes)} limit (max_body_bytes)")
    except _BadEncodingError as error:
        return FetchFailure(str(error))
    except (httpx.HTTPError, OSError, ssl.SSLError) as error:
        return FetchFailure(_describe(error))
    except httpx.InvalidURL as error:
        return FetchFailure(f"invalid URL: {error}")


async def _fetch(
    client: HttpClient,
    feed: FeedConfig,
    state: FeedState,
    settings: Settings,
    limiter: HostLimiter,
) -> FetchResult:
    url = state.fetch_url
    headers = dict(feed.headers)
    if state.etag:
        headers["If-None-Match"] = state.etag
    if state.last_modified:
        headers["If-Modified-Since"] = state.last_modified
    permanent_url: str | None = None
    all_permanent = True
    visited = {url}
    allow_hosts = frozenset(h.lower() for h in settings.allow_hosts)
    budget = settings.request_timeout
    for hop in range(settings.max_redirects + 1):
        guarded = (hop > 0 or url != feed.url or settings.strict_network) and not exempt(
            url, feed.url, allow_hosts, settings.strict_network
        )
        if guarded:
            refused = await refusal(url, feed.url, allow_hosts, settings.strict_network)
            if refused:
                return FetchFailure(refused)
        async with limiter.slot(url):
            started = time.monotonic()
            try:
                async with asyncio.timeout(budget), client.get(url, headers) as response:
                    # DNS may answer differently at connect time than when checked: look at the peer.
                    refused = peer_refusal(url, _peer_address(response)) if guarded else None
                    if refused:
                        return FetchFailure(refused)
                    status = response.status_code
                    if status not in _PERMANENT and status not in _TEMPORARY:
                        conditional = any(h.lower() in ("if-none-match", "if-modified-since") for h in headers)
                        return await _finish(response, url, status, settings, permanent_url, conditional)
                    location = response.headers.get("Location")
                    await _drain(response)
            finally:
                budget -= time.monotonic() - started
        if not location:
            return FetchFailure(f"HTTP {status} redirect without a Location header", status=status)
        target = _redirect_target(url, location)
        if target is None:
            return FetchFailure(f"HTTP {status} redirect to an invalid Location: {location[:200]!r}", status=status)
        if target in visited:
            return FetchFailure(f"redirect loop: {url} -> {target}", status=status)
        visited.add(target)
        all_permanent = all_permanent and status in _PERMANENT
        if all_permanent:
            permanent_url = target
        url = target
    return FetchFailure(f"too many redirects (more than {settings.max_redirects})")


def _redirect_target(url: str, location: str) -> str | None:
    """Where a redirect from `url` leads, or None when `location` cannot be read as an address. (What it
    may reach, a scheme or host, is the network guard's to say.)"""
    try:
        target = urljoin(url, location.strip())
        urlsplit(target).port  # noqa: B018 -- raises for a port out of range or not a number
    except ValueError:  # e.g. "http://[::1" or "http://[zzzz]/"
        return None
    return _keep_credentials(url, target)


def _keep_credentials(source: str, target: str) -> str:
    """`target` with the credentials written into `source` (user:password@), when the redirect stays on
    the same site: the same scheme, host and port, or http to https on the same host (as httpx's client
    does). Anywhere else they are not sent."""
    old, new = urlsplit(source), urlsplit(target)
    if "@" not in old.netloc or "@" in new.netloc or not new.hostname or old.hostname != new.hostname:
        return target
    try:
        same = (old.scheme, old.port) == (new.scheme, new.port)
        upgrade = (old.scheme, new.scheme) == ("http", "https") and old.port in (None, 80) and new.port in (None, 443)
    except ValueError:  # a port out of range: nothing to keep
        return target
    if not (same or upgrade):
        return target
    return new._replace(netloc=old.netloc.rpartition("@")[0] + "@" + new.netloc).geturl()


async def _drain(response: httpx.Response) -> None:
    """Read a small unwanted body (a 304's empty one, an error page) to its end: httpcore keeps a
    connection alive only after the whole response was read, and without this every conditional GET
    answered 304 opened a new connection. A large body is left unread; its connection is closed."""
    size = 0
    async for chunk in response.aiter_raw():
        size += len(chunk)
        if size > DRAIN_LIMIT:
            return


def _peer_address(response: httpx.Response) -> str | None:
    stream = response.extensions.get("network_stream")
    address = stream.get_extra_info("server_addr") if stream is not None else None
    return str(address[0]) if isinstance(address, tuple) and address else None


async def _finish(
    response: httpx.Response,
    url: str,
    status: int,
    settings: Settings,
    permanent_url: str | None,
    conditional: bool = True,
) -> FetchResult:
    headers = response.headers
    max_age = parse_max_age(headers.get("Cache-Control"))
    if status < 200 or status >= 300:
        await _drain(response)
    if status == 304 and not conditional:
        # Nothing was cached to be "not modified": taken as such, the feed would never be read.
        return FetchFailure("HTTP 304 Not Modified to a request that was not conditional", status=304)
    if status == 304:
        return NotModified(
            permanent_url=permanent_url,
            etag=headers.get("ETag"),
            last_modified=headers.get("Last-Modified"),
            max_age=max_age,
        )
    if status == 410:
        return FetchFailure("HTTP 410 Gone: the feed was removed; polling stopped", status=410, gone=True)
    if status >= 400 or status < 200:
        reason = response.reason_phrase or ""
        retry_after = parse_retry_after(headers.get("Retry-After")) if status in (429, 503) else None
        message = f"HTTP {status} {reason}".strip()
        if retry_after is not None:
            message += f" (Retry-After {retry_after}s)"
        # A permanent redirect is followed for good only to a URL that answers: a feed moved to an
        # address that fails (refused, 404) would never be asked at its own URL again.
        return FetchFailure(message, status=status, retry_after=retry_after)
    decoder = BoundedDecoder(headers.get("Content-Encoding", ""), settings.max_body_bytes)
    declared = headers.get("Content-Length")
    if declared and declared.isdigit() and not decoder.coding and int(declared) > settings.max_body_bytes:
        raise _BodyTooLargeError
    chunks = []
    async for chunk in response.aiter_raw():
        chunks.append(decoder.feed(chunk))
    decoder.finish()
    return Fetched(
        final_url=url,
        status=status,
        body=b"".join(chunks),
        content_type=headers.get("Content-Type"),
        etag=headers.get("ETag"),
        last_modified=headers.get("Last-Modified"),
        permanent_url=permanent_url,
        max_age=max_age,
    )
