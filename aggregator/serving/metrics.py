"""What a running daemon says about itself: the /healthz document and the Prometheus exposition for /metrics
(prometheus-client, on a registry of the daemon's own: process metrics, escaping, histogram rules and
content negotiation come from the standard client), and `health_app`, the plain ASGI callable that answers
those two paths and hands every other request to the subscriber-facing app (or answers 404 without one).

The daemon tells it what happened (polls, publishes, a part of it degraded or recovered); the archive's
figures (feeds in error, entries) are read at each request by the daemon, which owns the I/O.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from datetime import UTC, datetime
from typing import Any

import prometheus_client
from prometheus_client.exposition import choose_encoder

from aggregator.core.models import UpdateOutcome
from aggregator.serving.status import summarize

# Upper bounds (seconds) of the update-duration histogram buckets.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
POLL_RESULTS = ("ok", "not_modified", "unchanged", "error", "gone", "skipped")
DEGRADABLE = ("archive", "publishing")  # the parts of the daemon that can fail as a whole


class DaemonMetrics:
    """Since the daemon started: polls by result, entries stored, update durations, publishes; and what
    is degraded now, and why."""

    def __init__(self) -> None:
        self.started = time.time()
        self.polls: Counter[str] = Counter()
        self.last_poll_at: float | None = None
        self.degraded: dict[str, tuple[str, float]] = {}  # part -> (why, since when)
        self.registry = registry = prometheus_client.CollectorRegistry()
        prometheus_client.ProcessCollector(registry=registry)
        prometheus_client.PlatformCollector(registry=registry)
        prometheus_client.GCCollector(registry=registry)
        self._polls = prometheus_client.Counter(
            "aggregator_polls", "Feed polls since the daemon started, by result.", ["result"], registry=registry
        )
        self._stored = prometheus_client.Counter(
            "aggregator_entries_stored",
            "Entries stored since the daemon started: new ones, and new revisions of known ones.",
            ["kind"],
            registry=registry,
        )
        self._duration = prometheus_client.Histogram(
            "aggregator_update_duration_seconds",
            "Time from a feed falling due to its poll being stored.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._publishes = prometheus_client.Counter(
            "aggregator_publishes", "Debounced republications of feeds and site.", ["result"], registry=registry
        )
        self._feeds = prometheus_client.Gauge("aggregator_feeds", "Feeds known to the daemon.", registry=registry)
        self._in_error = prometheus_client.Gauge(
            "aggregator_feeds_in_error", "Feeds whose last poll failed (gone feeds excluded).", registry=registry
        )
        self._gone = prometheus_client.Gauge(
            "aggregator_feeds_gone", "Feeds that answered 410 Gone and are no longer polled.", registry=registry
        )
        self._entries = prometheus_client.Gauge(
            "aggregator_archive_entries", "Entries in the archive.", registry=registry
        )
        self._degraded = prometheus_client.Gauge(
            "aggregator_degraded",
            "1 while a part of the daemon cannot do its work (the archive cannot be written, publishing fails).",
            ["part"],
            registry=registry,
        )
        uptime = prometheus_client.Gauge(
            "aggregator_uptime_seconds", "Seconds since the daemon started.", registry=registry
        )
        uptime.set_function(lambda: round(time.time() - self.started, 1))
        # Every series from the start, at 0: a rate over a series that appears late misses its first events.
        for result in POLL_RESULTS:
            self._polls.labels(result)
        for kind in ("new", "updated"):
            self._stored.labels(kind)
        for result in ("ok", "error"):
            self._publishes.labels(result)
        for part in DEGRADABLE:
            self._degraded.labels(part).set(0)

    def observe(self, outcome: UpdateOutcome, seconds: float) -> None:
        self.polls[outcome.status] += 1
        self._polls.labels(outcome.status).inc()
        self._stored.labels("new").inc(outcome.new)
        self._stored.labels("updated").inc(outcome.updated)
        if outcome.status != "skipped":
            self._duration.observe(seconds)
            self.last_poll_at = time.time()

    def published(self, ok: bool) -> None:
        self._publishes.labels("ok" if ok else "error").inc()

    def degrade(self, part: str, why: str) -> bool:
        """`part` cannot do its work, because `why`; True when it could until now."""
        fresh = part not in self.degraded
        self.degraded[part] = (why, self.degraded[part][1] if not fresh else time.time())
        self._degraded.labels(part).set(1)
        return fresh

    def recover(self, part: str) -> bool:
        """`part` works again; True when it was degraded."""
        self._degraded.labels(part).set(0)
        return self.degraded.pop(part, None) is not None

    def health(self, rows: Sequence[dict[str, Any]], *, stopping: bool = False) -> dict[str, Any]:
        """The /healthz document: the daemon's state (ok, degraded or stopping: only ok answers 200), what is
        degraded and why, the status summary, and every feed's row."""
        return {
            "status": "stopping" if stopping else "degraded" if self.degraded else "ok",
            "degraded": {part: {"reason": why, "since": _iso(since)} for part, (why, since) in self.degraded.items()},
            "started_at": _iso(self.started),
            "uptime_seconds": round(time.time() - self.started, 1),
            "last_poll_at": _iso(self.last_poll_at) if self.last_poll_at else None,
            "polls": dict(self.polls),
            "summary": summarize(rows),
            "feeds": list(rows),
        }

    def prometheus(self, rows: Sequence[dict[str, Any]], archive_entries: int, accept: str = "") -> tuple[bytes, str]:
        """The exposition in the format the scraper's Accept header asks for (text 0.0.4 by default, or
        OpenMetrics), and its content type."""
        summary = summarize(rows)
        self._feeds.set(summary["feeds"])
        self._in_error.set(summary["in_error"])
        self._gone.set(summary["gone"])
        self._entries.set(archive_entries)
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


# --- /healthz and /metrics over ASGI ---------------------------------------------------------------

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def health_app(
    health: Callable[[], Awaitable[dict[str, Any]]],
    metrics: Callable[[str], Awaitable[tuple[bytes, str]]],
    inner: ASGIApp | None = None,
) -> ASGIApp:
    """An ASGI app answering GET /healthz (JSON; 503 unless the daemon is ok, so that a load balancer or
    a container's health check notices) and GET /metrics (Prometheus exposition, given the request's Accept
    header); anything else goes to `inner` (the subscriber-facing app), or gets a 404 when there is none."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path in ("/healthz", "/metrics"):
            if scope.get("method") not in ("GET", "HEAD"):
                await _respond(send, 405, b"text/plain; charset=utf-8", b"method not allowed\n", [(b"allow", b"GET")])
                return
            status = 200
            if path == "/healthz":
                document = await health()
                body = json.dumps(document, ensure_ascii=False, indent=1).encode() + b"\n"
                content_type = b"application/json"
                status = 200 if document.get("status") == "ok" else 503
            else:
                accept = dict(scope.get("headers") or []).get(b"accept", b"").decode("latin-1")
                body, text_type = await metrics(accept)
                content_type = text_type.encode()
            await _respond(send, status, content_type, b"" if scope["method"] == "HEAD" else body, length=len(body))
            return
        if inner is not None:
            await inner(scope, receive, send)
        elif scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif scope["type"] == "http":
            await _respond(send, 404, b"text/plain; charset=utf-8", b"not found\n")

    return app


async def _respond(
    send: Send,
    status: int,
    content_type: bytes,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
    length: int | None = None,
) -> None:
    head = [
        (b"content-type", content_type),
        (b"content-length", str(len(body) if length is None else length).encode()),
        (b"cache-control", b"no-store"),
        *(headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
