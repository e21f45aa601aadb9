"""Pure decisions about polling: when to poll a feed next, whether a body needs parsing at all."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

MAX_BACKOFF = 24 * 60 * 60
MAX_RETRY_AFTER = 7 * 24 * 60 * 60


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
