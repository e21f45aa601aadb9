"""What the archive says about its feeds: the rows of `aggregator status` (table and JSON), and the summary
that /healthz repeats. Data in, text or dicts out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aggregator.core.dates import to_utc_text
from aggregator.core.models import Config, FeedStatus
from aggregator.core.redact import redact_url

_ERROR_WIDTH = 48
_URL_WIDTH = 56


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
