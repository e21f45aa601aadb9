"""Pure decisions about polling: when to poll a feed next, whether a body needs parsing at all."""

from __future__ import annotations

import hashlib
import itertools
import statistics
from collections.abc import Sequence
from datetime import datetime, timedelta

MAX_BACKOFF = 24 * 60 * 60
MAX_RETRY_AFTER = 7 * 24 * 60 * 60
ADAPTIVE_SAMPLE = 20  # how many of a feed's latest entries the posting frequency is judged from
JITTER_FRACTION = 0.05  # a scheduled poll moves later by up to this share of its delay...
MAX_JITTER = 300  # ...but by no more than five minutes
MAX_STARTUP_SPREAD = 300  # overdue feeds are spread over at most this many seconds after a (re)start


def body_fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def poll_delay(
    *,
    interval: int,
    min_interval: int,
    max_interval: int,
    consecutive_errors: int = 0,
    retry_after: int | None = None,
    ttl_minutes: int | None = None,
    max_age: int | None = None,
) -> int:
    """Seconds until the next poll: the latest of the feed's interval, the server's wishes (RSS ttl,
    Cache-Control max-age) kept within [min_interval, max_interval], error backoff and Retry-After."""

    def bounded(seconds: int) -> int:
        return max(min_interval, min(max_interval, seconds))

    delay = bounded(interval)
    if ttl_minutes:
        delay = max(delay, bounded(ttl_minutes * 60))
    if max_age:
        delay = max(delay, bounded(max_age))
    if consecutive_errors > 0:
        backoff = min(MAX_BACKOFF, bounded(interval) * 2 ** min(consecutive_errors - 1, 20))
        delay = max(delay, backoff)
    if retry_after:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


def next_poll_at(now: datetime, delay_seconds: int) -> datetime:
    return now + timedelta(seconds=delay_seconds)


def adaptive_interval(
    published: Sequence[datetime], now: datetime, *, min_interval: int, max_interval: int
) -> int | None:
    """How often a feed is worth polling, judged from when its latest entries were published: half the
    usual gap between its posts, or half the time since its last post when that is longer (a feed gone
    quiet drifts toward `max_interval`), within [min_interval, max_interval]. None without any date."""
    times = sorted(t for t in published if t <= now)[-ADAPTIVE_SAMPLE:]
    if not times:
        return None
    quiet = (now - times[-1]).total_seconds()
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(times)]
    usual = statistics.median(gaps) if gaps else quiet
    return int(max(min_interval, min(max_interval, max(usual, quiet) / 2)))


def schedule_at(
    *,
    now: datetime,
    next_due: datetime | None,
    last_fetched: datetime | None,
    min_interval: int,
    adaptive: int | None = None,
    spread: int = MAX_STARTUP_SPREAD,
    jitter: float = 0.0,
) -> datetime:
    """When the daemon polls a feed next: the latest of its stored due time (interval, server wishes,
    error backoff), last poll + min_interval and last poll + the adaptive interval. `jitter` in [0, 1)
    only ever moves a poll later: a feed already due (overdue after a restart, or never polled) lands
    somewhere in the next `spread` seconds so that a thousand of them do not fire at once; a feed due
    in the future moves by up to JITTER_FRACTION of its delay (at most MAX_JITTER seconds)."""
    due = now
    if next_due is not None:
        due = max(due, next_due)
    if last_fetched is not None:
        due = max(due, last_fetched + timedelta(seconds=min_interval))
        if adaptive:
            due = max(due, last_fetched + timedelta(seconds=adaptive))
    if due <= now:
        return now + timedelta(seconds=jitter * spread)
    delay = (due - now).total_seconds()
    return due + timedelta(seconds=jitter * min(MAX_JITTER, delay * JITTER_FRACTION))
