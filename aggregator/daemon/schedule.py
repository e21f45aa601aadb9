"""When the daemon polls a feed next: its interval within the configured bounds and its next run."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from aggregator.core.models import FeedConfig, Settings
from aggregator.core.schedule import MAX_STARTUP_SPREAD, adaptive_interval, poll_delay, schedule_at
from aggregator.store.reads import ScheduleRow


def _utcnow() -> datetime:
    return datetime.now(UTC)


def feed_interval(settings: Settings, feed: FeedConfig) -> int:
    """The feed's own interval (else the default), within [min_interval, max_interval]."""
    return max(settings.min_interval, min(settings.max_interval, feed.interval or settings.default_interval))


def backoff(settings: Settings, feed: FeedConfig, consecutive_errors: int) -> int:
    """Seconds from a poll to the next after `consecutive_errors` failures in a row (the pipeline's rule)."""
    return poll_delay(
        interval=feed.interval or settings.default_interval,
        min_interval=settings.min_interval,
        max_interval=settings.max_interval,
        consecutive_errors=consecutive_errors,
    )


def held_back(
    settings: Settings, feed: FeedConfig, row: ScheduleRow | None, unstored: int, polled: datetime
) -> ScheduleRow:
    """`row` as the archive would hold it had it recorded the last `unstored` polls (from `polled` on) as the
    failures they were: their backoff counts on from the errors it holds."""
    errors = (row.consecutive_errors if row is not None else 0) + unstored
    due = polled + timedelta(seconds=backoff(settings, feed, errors))
    if row is None:
        return ScheduleRow(due, polled, False, errors)
    stored_due = row.next_due_at
    return row._replace(next_due_at=max(due, stored_due) if stored_due else due, consecutive_errors=errors)


def next_run(
    settings: Settings,
    feed: FeedConfig,
    row: ScheduleRow | None,
    polled: datetime | None,
    recent_published: Callable[[str], list[datetime]],
    rng: random.Random,
    *,
    interval_changed: bool = False,
    jitter: bool = True,
) -> datetime:
    """When to poll `feed` next: its stored due time (from the last poll's answer), never sooner than
    min_interval after the last poll (`polled`, this process's, wins over the archive's), stretched by the
    adaptive interval, spread at start-up and jittered (`jitter=False`: a due time computed by this rule
    already, such as the one fetch-now stores, stays as it is)."""
    next_due, last_fetched = (row[0], row[1]) if row else (None, None)
    if polled is not None and (last_fetched is None or polled > last_fetched):
        last_fetched = polled
    if interval_changed and next_due is not None and last_fetched is not None:
        # The stored due time came from the old interval: a shorter one applies from the last poll, not
        # after the old wait, and so does a failing feed's backoff, counted in the new interval. (A
        # server's Retry-After still holds: the poll itself honours it.)
        errors = row.consecutive_errors if row is not None else 0
        next_due = min(next_due, last_fetched + timedelta(seconds=backoff(settings, feed, errors)))
    now = _utcnow()
    adaptive = None
    if settings.adaptive_interval and last_fetched is not None:
        adaptive = adaptive_interval(
            recent_published(feed.url),
            now,
            min_interval=settings.min_interval,
            max_interval=settings.max_interval,
        )
    return schedule_at(
        now=now,
        next_due=next_due,
        last_fetched=last_fetched,
        min_interval=settings.min_interval,
        adaptive=adaptive,
        spread=min(feed_interval(settings, feed), MAX_STARTUP_SPREAD),
        jitter=rng.random() if jitter else 0.0,
    )
