"""Download feeds with httpx: conditional GET, bounded bodies, a total deadline, manual redirects.

Every outcome is a value (`Fetched`, `NotModified`, `FetchFailure`); nothing here raises to the caller.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import ssl
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from urllib.parse import urljoin

import httpx

from .domains import politeness_key
from .models import FeedConfig, FeedState, Fetched, FetchFailure, FetchResult, NotModified, Settings
from .netguard import exempt, peer_refusal, refusal

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
        if self.coding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.coding == "deflate":
            self._zlib = zlib.decompressobj()

    def feed(self, data: bytes) -> bytes:
        if self._zlib is None:
            return self._count(data)
        if self._first and self.coding == "deflate" and data:
            # Some servers send raw deflate without the zlib header the RFC asks for.
            self._first = False
            try:
                zlib.decompressobj().decompress(data[:64], 1)
            except zlib.error:
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        out = bytearray()
        while data:
            if self._zlib.eof:
                # A new gzip member after the end of the previous one (concatenated gzip).
                data = self._zlib.unused_data + data if self._zlib.unused_data else data
                self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                piece = self._zlib.decompress(data, self.limit - self.size + 1)
            except zlib.error as error:
                raise _BadEncodingError(f"corrupt {self.coding} body: {error}") from None
            out += self._count(piece)
            data = self._zlib.unconsumed_tail
            if self._zlib.eof and self._zlib.unused_data.strip(b"\0"):
                data = self._zlib.unused_data + data
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


Client = httpx.AsyncClient  # the HTTP client type other modules pass around without importing httpx


def make_client(settings: Settings) -> httpx.AsyncClient:
    timeout = httpx.Timeout(settings.request_timeout, connect=settings.connect_timeout)
    limits = httpx.Limits(
        max_connections=settings.concurrency,
        max_keepalive_connections=settings.concurrency,
        keepalive_expiry=30,
    )
    return httpx.AsyncClient(
        timeout=timeout,
        limits=limits,
        follow_redirects=False,
        headers={"User-Agent": settings.user_agent, "Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"},
    )


def parse_retry_after(value: str | None, now: datetime | None = None) -> int | None:
    """Retry-After as seconds from now: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0, int(delta))


def parse_max_age(cache_control: str | None) -> int | None:
    if not cache_control or "no-store" in cache_control.lower():
        return None
    match = _MAX_AGE.search(cache_control)
    return int(match.group(1)) if match else None


def _describe(error: BaseException) -> str:
    if isinstance(error, httpx.ConnectTimeout):
        return "timed out while connecting"
    if isinstance(error, httpx.ReadTimeout):
        return "timed out waiting for the server"
    if isinstance(error, httpx.ConnectError):
        cause = error.__cause__ or error.__context__
        if isinstance(cause, ssl.SSLError) or "SSL" in str(error) or "certificate" in str(error):
            return f"TLS error: {error}"
        return f"connection failed: {error}" if str(error) else "connection failed"
    if isinstance(error, httpx.RemoteProtocolError):
        return f"broken response: {error}" if str(error) else "broken response (connection closed early)"
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
    client: httpx.AsyncClient,
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
    client: httpx.AsyncClient,
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
                return FetchFailure(refused, permanent_url=permanent_url if hop else None)
        async with limiter.slot(url):
            started = time.monotonic()
            try:
                async with asyncio.timeout(budget), client.stream("GET", url, headers=headers) as response:
                    # DNS may answer differently at connect time than when checked: look at the peer.
                    refused = peer_refusal(url, _peer_address(response)) if guarded else None
                    if refused:
                        return FetchFailure(refused, permanent_url=permanent_url if hop else None)
                    status = response.status_code
                    if status not in _PERMANENT and status not in _TEMPORARY:
                        return await _finish(response, url, status, settings, permanent_url)
                    location = response.headers.get("Location")
            finally:
                budget -= time.monotonic() - started
        if not location:
            return FetchFailure(f"HTTP {status} redirect without a Location header", status=status)
        target = urljoin(url, location.strip())
        if target in visited:
            return FetchFailure(f"redirect loop: {url} -> {target}", status=status)
        visited.add(target)
        all_permanent = all_permanent and status in _PERMANENT
        if all_permanent:
            permanent_url = target
        url = target
    return FetchFailure(f"too many redirects (more than {settings.max_redirects})", permanent_url=permanent_url)


def _peer_address(response: httpx.Response) -> str | None:
    stream = response.extensions.get("network_stream")
    address = stream.get_extra_info("server_addr") if stream is not None else None
    return str(address[0]) if isinstance(address, tuple) and address else None


async def _finish(
    response: httpx.Response, url: str, status: int, settings: Settings, permanent_url: str | None
) -> FetchResult:
    headers = response.headers
    max_age = parse_max_age(headers.get("Cache-Control"))
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
        return FetchFailure(message, status=status, retry_after=retry_after, permanent_url=permanent_url)
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
