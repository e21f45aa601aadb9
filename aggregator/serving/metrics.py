"""What the archive and a running daemon can say about themselves: `status` rows, /healthz JSON and
Prometheus text for /metrics. Everything here is data in, text or dicts out; the daemon owns the I/O.

/healthz and /metrics are served by `health_app`, a plain ASGI callable that answers those two paths
and hands every other request to the subscriber-facing app (or answers 404 without one).
"""

from __future__ import annotations

import bisect
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aggregator.core.dates import to_utc_text
from aggregator.core.models import Config, FeedStatus, UpdateOutcome
from aggregator.core.redact import redact_url

# Upper bounds (seconds) of the update-duration histogram buckets.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_ERROR_WIDTH = 48
_URL_WIDTH = 56

# --- per-feed status rows --------------------------------------------------------------------------


def _utc_seconds(stored: str | None) -> str | None:
    """A stored UTC time in the form of the others (`2026-11-28T00:46:21Z`): the schedule keeps
    fractions of a second, which a reader of the status has no use for."""
    if not stored:
        return None
    try:
        return to_utc_text(datetime.fromisoformat(stored))
    except ValueError:
        return stored


def feed_rows(config: Config, statuses: Sequence[FeedStatus]) -> list[dict[str, Any]]:
    """One JSON-ready object per feed: every feed the archive knows, then configured feeds never polled.
    `configured` is false for a feed that was polled once but is no longer in feeds.yaml."""
    configured = {feed.url: feed for feed in config.feeds}
    rows: list[dict[str, Any]] = []
    for status in statuses:
        feed = configured.get(status.url)
        rows.append(
            {
                "url": status.url,
                "category": status.category,
                "title": status.title or (feed.title if feed and feed.title else ""),
                "fetch_url": status.fetch_url,
                "last_fetched_at": status.last_fetched_at,
                "last_status": status.last_status,
                "last_http_status": status.last_http_status,
                "consecutive_errors": status.consecutive_errors,
                "last_error": status.last_error,
                # Nothing is due for a feed that is not polled: gone, disabled, or no longer configured.
                "next_due_at": None
                if status.gone or feed is None or not feed.enabled
                else _utc_seconds(status.next_due_at),
                "gone": status.gone,
                "entries": status.entries,
                "configured": feed is not None,
                "enabled": feed.enabled if feed is not None else False,
            }
        )
    known = {status.url for status in statuses}
    for feed in config.feeds:
        if feed.url not in known:
            rows.append(
                {
                    "url": feed.url,
                    "category": feed.category,
                    "title": feed.title or "",
                    "fetch_url": feed.url,
                    "last_fetched_at": None,
                    "last_status": "new",
                    "last_http_status": None,
                    "consecutive_errors": 0,
                    "last_error": "",
                    "next_due_at": None,
                    "gone": False,
                    "entries": 0,
                    "configured": True,
                    "enabled": feed.enabled,
                }
            )
    for row in rows:  # `status` and /healthz show addresses, never the credentials or tokens in them
        for key in ("url", "fetch_url", "last_error"):
            if row[key]:
                row[key] = redact_url(row[key])
    rows.sort(key=lambda row: (row["category"], row["url"]))
    return rows


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    in_error = [r for r in rows if r["consecutive_errors"] > 0 and not r["gone"]]
    due = sorted(r["next_due_at"] for r in rows if r["next_due_at"] and r["enabled"])
    return {
        "feeds": len(rows),
        "ok": sum(1 for r in rows if r["last_status"] in ("ok", "not_modified", "unchanged")),
        "in_error": len(in_error),
        "gone": sum(1 for r in rows if r["gone"]),
        "never_polled": sum(1 for r in rows if r["last_fetched_at"] is None),
        "disabled": sum(1 for r in rows if r["configured"] and not r["enabled"]),
        "not_in_config": sum(1 for r in rows if not r["configured"]),
        "entries": sum(r["entries"] for r in rows),
        "next_due_at": due[0] if due else None,
    }


def summary_line(summary: dict[str, Any]) -> str:
    parts = [f"{summary['ok']} ok", f"{summary['in_error']} in error", f"{summary['gone']} gone"]
    parts.append(f"{summary['never_polled']} never polled")
    if summary["disabled"]:
        parts.append(f"{summary['disabled']} disabled")
    if summary["not_in_config"]:
        parts.append(f"{summary['not_in_config']} no longer in the config")
    line = f"{summary['feeds']} feeds: {', '.join(parts)}; {summary['entries']} entries archived"
    if summary["next_due_at"]:
        line += f"; next poll due {_short_time(summary['next_due_at'])}"
    return line + "."


def status_table(rows: Sequence[dict[str, Any]]) -> str:
    """A fixed-width table for a terminal; long URLs and errors are shortened (the JSON has them whole)."""
    header = ("CATEGORY", "FEED", "LAST FETCH", "STATUS", "ERRORS", "NEXT DUE", "ENTRIES", "LAST ERROR")
    lines = [header]
    for row in rows:
        status = row["last_status"]
        if row["last_http_status"] and status in ("error", "gone"):
            status += f" {row['last_http_status']}"
        if not row["configured"]:
            status += " (removed)"
        elif not row["enabled"]:
            status += " (disabled)"
        lines.append(
            (
                row["category"],
                _shorten(row["url"], _URL_WIDTH),
                _short_time(row["last_fetched_at"]) if row["last_fetched_at"] else "never",
                status,
                str(row["consecutive_errors"]),
                _short_time(row["next_due_at"]) if row["next_due_at"] else "-",
                str(row["entries"]),
                _shorten(row["last_error"], _ERROR_WIDTH),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _short_time(iso_utc: str) -> str:
    """'2025-03-01T08:00:00.123456+00:00' -> '2025-03-01 08:00:00Z'."""
    try:
        return datetime.fromisoformat(iso_utc).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    except ValueError:
        return iso_utc


# --- a running daemon's counters -------------------------------------------------------------------


class DaemonMetrics:
    """In-process counters since the daemon started: polls by result, entries stored, update durations."""

    def __init__(self) -> None:
        self.started = time.time()
        self.polls: Counter[str] = Counter()
        self.entries_new = 0
        self.entries_updated = 0
        self.bucket_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.duration_sum = 0.0
        self.last_poll_at: float | None = None
        self.publishes = 0
        self.publish_failures = 0

    def observe(self, outcome: UpdateOutcome, seconds: float) -> None:
        self.polls[outcome.status] += 1
        self.entries_new += outcome.new
        self.entries_updated += outcome.updated
        if outcome.status != "skipped":
            self.bucket_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self.duration_sum += seconds
            self.last_poll_at = time.time()

    def health(self, rows: Sequence[dict[str, Any]], *, stopping: bool = False) -> dict[str, Any]:
        """The /healthz document: the daemon's state, the status summary, and every feed's row."""
        return {
            "status": "stopping" if stopping else "ok",
            "started_at": _iso(self.started),
            "uptime_seconds": round(time.time() - self.started, 1),
            "last_poll_at": _iso(self.last_poll_at) if self.last_poll_at else None,
            "polls": dict(self.polls),
            "summary": summarize(rows),
            "feeds": list(rows),
        }

    def prometheus(self, rows: Sequence[dict[str, Any]], archive_entries: int) -> str:
        """Prometheus text exposition format 0.0.4."""
        out: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)

        results = ("ok", "not_modified", "unchanged", "error", "gone", "skipped")
        metric(
            "aggregator_polls_total",
            "counter",
            "Feed polls since the daemon started, by result.",
            [(f'{{result="{r}"}}', self.polls.get(r, 0)) for r in results],
        )
        metric(
            "aggregator_entries_stored_total",
            "counter",
            "Entries stored since the daemon started: new ones, and new revisions of known ones.",
            [('{kind="new"}', self.entries_new), ('{kind="updated"}', self.entries_updated)],
        )
        cumulative = 0
        samples: list[tuple[str, float]] = []
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), self.bucket_counts, strict=True):
            cumulative += count
            samples.append((f'_bucket{{le="{"+Inf" if bound == float("inf") else _number(bound)}"}}', cumulative))
        samples += [("_sum", self.duration_sum), ("_count", cumulative)]
        out.append("# HELP aggregator_update_duration_seconds Time from a feed falling due to its poll being stored.")
        out.append("# TYPE aggregator_update_duration_seconds histogram")
        out.extend(f"aggregator_update_duration_seconds{suffix} {_number(v)}" for suffix, v in samples)
        summary = summarize(rows)
        metric("aggregator_feeds", "gauge", "Feeds known to the daemon.", [("", summary["feeds"])])
        metric(
            "aggregator_feeds_in_error",
            "gauge",
            "Feeds whose last poll failed (gone feeds excluded).",
            [("", summary["in_error"])],
        )
        metric(
            "aggregator_feeds_gone",
            "gauge",
            "Feeds that answered 410 Gone and are no longer polled.",
            [("", summary["gone"])],
        )
        metric("aggregator_archive_entries", "gauge", "Entries in the archive.", [("", archive_entries)])
        metric(
            "aggregator_publishes_total",
            "counter",
            "Debounced republications of feeds and site.",
            [('{result="ok"}', self.publishes), ('{result="error"}', self.publish_failures)],
        )
        metric(
            "aggregator_uptime_seconds",
            "gauge",
            "Seconds since the daemon started.",
            [("", round(time.time() - self.started, 1))],
        )
        return "\n".join(out) + "\n"


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# --- /healthz and /metrics over ASGI ---------------------------------------------------------------

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
PROMETHEUS_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


def health_app(
    health: Callable[[], Awaitable[dict[str, Any]]],
    metrics: Callable[[], Awaitable[str]],
    inner: ASGIApp | None = None,
) -> ASGIApp:
    """An ASGI app answering GET /healthz (JSON) and GET /metrics (Prometheus text); anything else
    goes to `inner` (the subscriber-facing app), or gets a 404 when there is none."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path in ("/healthz", "/metrics"):
            if scope.get("method") not in ("GET", "HEAD"):
                await _respond(send, 405, b"text/plain; charset=utf-8", b"method not allowed\n", [(b"allow", b"GET")])
                return
            if path == "/healthz":
                body = json.dumps(await health(), ensure_ascii=False, indent=1).encode() + b"\n"
                content_type = b"application/json"
            else:
                body, content_type = (await metrics()).encode(), PROMETHEUS_TYPE
            await _respond(send, 200, content_type, b"" if scope["method"] == "HEAD" else body, length=len(body))
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
