"""The one orchestrator: fetch -> parse -> decide -> store for one feed or many. fetch-now and the daemon
both call `update_feeds`; a feed's failure is recorded on that feed and never stops the others."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from .decide import body_fingerprint, next_poll_at, poll_delay
from .errors import StorageError
from .fetch import HostLimiter, HttpClient, fetch_feed
from .models import (
    Config,
    FeedConfig,
    FeedState,
    FetchFailure,
    NotModified,
    ParsedFeed,
    PollRecord,
    UpdateOutcome,
)
from .parsepool import ParseJob, ParserPool
from .store import Archive

log = logging.getLogger("aggregator")
WRITE_BATCH = 64
SMALL_WRITE = 100  # entries: a batch this small is written without leaving the event loop
QUEUED_ENTRIES = 1000  # parsed entries waiting for the writer before fetching waits for it


class WriteQueue:
    """Polls waiting to be stored, bounded by the entries they carry rather than by their number: a
    304 weighs nothing, so many of them still make one batch (one commit), while parsed feeds wait once
    about `limit` entries are queued (the peak memory stays flat; 128 queued feeds cost 40 MB)."""

    def __init__(self, limit: int, linger: float = 0.02) -> None:
        self.limit = limit
        self.linger = linger
        self._items: list[PollRecord] = []
        self._weight = 0
        self._closed = False
        self._changed = asyncio.Condition()

    async def put(self, poll: PollRecord) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._items or self._weight + len(poll.entries) <= self.limit)
            self._items.append(poll)
            self._weight += len(poll.entries)
            self._changed.notify_all()

    async def take(self, most: int) -> list[PollRecord] | None:
        """Up to `most` polls, waiting for at least one; None once closed and drained."""
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._items) or self._closed)
        if len(self._items) < most and self._weight < self.limit and not self._closed:
            # A moment for more to arrive: one commit for many feeds instead of one per feed.
            await asyncio.sleep(self.linger)
        async with self._changed:
            if not self._items:
                return None
            batch, self._items = self._items[:most], self._items[most:]
            self._weight -= sum(len(poll.entries) for poll in batch)
            self._changed.notify_all()
            return batch

    async def close(self) -> None:
        """No more puts: `take` drains what is left, then returns None."""
        async with self._changed:
            self._closed = True
            self._changed.notify_all()


@dataclass
class RunSummary:
    outcomes: list[UpdateOutcome] = field(default_factory=list)
    storage_error: str = ""

    def count(self, *statuses: str) -> int:
        return sum(1 for o in self.outcomes if o.status in statuses)

    @property
    def new(self) -> int:
        return sum(o.new for o in self.outcomes)

    @property
    def updated(self) -> int:
        return sum(o.updated for o in self.outcomes)

    @property
    def failed(self) -> list[UpdateOutcome]:
        return [o for o in self.outcomes if o.status in ("error", "gone")]

    @property
    def changed_categories(self) -> set[str]:
        return {o.category for o in self.outcomes if o.new or o.updated}


def select_feeds(config: Config, urls: Sequence[str] = (), category: str | None = None) -> list[FeedConfig]:
    feeds = [f for f in config.feeds if f.enabled or f.url in urls]
    if urls:
        feeds = [f for f in feeds if f.url in urls]
    if category:
        feeds = [f for f in feeds if f.category == category]
    return feeds


def _interval(config: Config, feed: FeedConfig) -> int:
    return feed.interval or config.settings.default_interval


async def _poll(
    config: Config,
    feed: FeedConfig,
    state: FeedState,
    client: HttpClient,
    limiter: HostLimiter,
    parser: ParserPool,
) -> PollRecord:
    settings = config.settings
    started = datetime.now(UTC)
    result = await fetch_feed(client, feed, state, settings, limiter)
    base = PollRecord(
        url=feed.url,
        category=feed.category,
        fetched_at=started,
        status="error",
        consecutive_errors=0,
        fetch_url=result.permanent_url,
    )

    def due(
        errors: int = 0, retry_after: int | None = None, ttl: int | None = None, max_age: int | None = None
    ) -> datetime:
        delay = poll_delay(
            interval=_interval(config, feed),
            min_interval=settings.min_interval,
            max_interval=settings.max_interval,
            consecutive_errors=errors,
            retry_after=retry_after,
            ttl_minutes=ttl,
            max_age=max_age,
        )
        return next_poll_at(started, delay)

    if isinstance(result, FetchFailure):
        errors = state.consecutive_errors + 1
        return replace(
            base,
            status="gone" if result.gone else "error",
            consecutive_errors=errors,
            http_status=result.status,
            error=result.message,
            retry_after_until=next_poll_at(started, result.retry_after) if result.retry_after else None,
            next_due_at=due(errors, result.retry_after),
            gone=result.gone,
        )
    if isinstance(result, NotModified):
        return replace(
            base,
            status="not_modified",
            http_status=304,
            etag=result.etag,
            last_modified=result.last_modified,
            max_age=result.max_age,
            next_due_at=due(max_age=result.max_age),
        )
    fetched = replace(
        base,
        http_status=result.status,
        etag=result.etag,
        last_modified=result.last_modified,
        max_age=result.max_age,
    )
    fingerprint = body_fingerprint(result.body)
    if fingerprint == state.body_hash:
        return replace(fetched, status="unchanged", next_due_at=due(max_age=result.max_age))
    parsed = await parser.parse(
        ParseJob(
            body=result.body,
            feed_url=feed.url,
            fetched_from=result.final_url,
            content_type=result.content_type,
            charset=feed.charset,
            timezone=feed.timezone,
            fetched_at=started,
        )
    )
    if not isinstance(parsed, ParsedFeed):
        errors = state.consecutive_errors + 1
        # Keep the old caching headers: the next poll must fetch the body again, not get a 304.
        return replace(
            base, http_status=result.status, consecutive_errors=errors, error=parsed, next_due_at=due(errors)
        )
    return replace(
        fetched,
        status="ok",
        body_hash=fingerprint,
        title=feed.title or parsed.title,  # the operator's title override wins
        site_url=parsed.link,
        format=parsed.format,
        ttl=parsed.ttl,
        next_due_at=due(ttl=parsed.ttl, max_age=result.max_age),
        entries=parsed.entries,
    )


def _outcome(poll: PollRecord, new: int, updated: int, changed: tuple[str, ...]) -> UpdateOutcome:
    return UpdateOutcome(
        url=poll.url,
        category=poll.category,
        status=poll.status,
        new=new,
        updated=updated,
        error=poll.error,
        moved_to=poll.fetch_url,
        changed_ids=changed,
    )


async def update_feeds(
    config: Config,
    feeds: Sequence[FeedConfig],
    archive: Archive,
    *,
    on_outcome: Callable[[UpdateOutcome], None] | None = None,
    skip_gone: bool = True,
    client: HttpClient | None = None,
    parser: ParserPool | None = None,
    limiter: HostLimiter | None = None,
) -> RunSummary:
    """Poll `feeds` once each, concurrently, storing results in batches as they arrive.

    A long-running caller (the daemon) passes its own `client`, `parser` and `limiter` so that many calls
    share one connection pool, one parser process pool and one per-host politeness budget; without
    them each call makes (and closes) its own."""
    settings = config.settings
    summary = RunSummary()
    states = archive.feed_states(feeds)
    queue = WriteQueue(QUEUED_ENTRIES)
    global_limit = asyncio.Semaphore(settings.concurrency)
    host_limiter = limiter or HostLimiter(settings.per_host_concurrency, settings.per_host_delay)

    def report(outcome: UpdateOutcome) -> None:
        summary.outcomes.append(outcome)
        if outcome.status in ("error", "gone"):
            log.warning("%s: %s", outcome.url, outcome.error, extra=_log_fields(outcome))
        elif outcome.status != "skipped":
            log.info(
                "%s: %s, %d new, %d updated",
                outcome.url,
                outcome.status,
                outcome.new,
                outcome.updated,
                extra=_log_fields(outcome),
            )
        if on_outcome is not None:
            on_outcome(outcome)

    async def writer() -> None:
        while True:
            batch = await queue.take(WRITE_BATCH)
            if batch is None:
                break
            if summary.storage_error:
                for poll in batch:
                    report(_failed(poll, summary.storage_error))
                continue
            try:
                if sum(len(poll.entries) for poll in batch) <= SMALL_WRITE:
                    # Feed-state rows only (304s, errors): quicker here than handing them to a thread,
                    # which would contend with this loop for the GIL once per row.
                    results = archive.record(batch)
                else:
                    results = await asyncio.to_thread(archive.record, batch)
            except StorageError as error:
                summary.storage_error = str(error)
                for poll in batch:
                    report(_failed(poll, summary.storage_error))
                continue
            except Exception as error:  # a bug must not stop the writer: pollers would wait on it forever
                log.exception("unexpected failure storing a batch of %d feeds", len(batch))
                for poll in batch:
                    report(_failed(poll, f"internal error while storing: {type(error).__name__}: {error}"))
                continue
            for poll, stored in zip(batch, results, strict=True):
                report(_outcome(poll, stored.new, stored.updated, stored.new_ids + stored.updated_ids))

    async def one(feed: FeedConfig, client: HttpClient, parser: ParserPool) -> None:
        state = states[feed.url]
        if skip_gone and state.gone:
            report(UpdateOutcome(url=feed.url, category=feed.category, status="skipped", error="gone (HTTP 410)"))
            return
        async with global_limit:
            try:
                poll = await _poll(config, feed, state, client, host_limiter, parser)
            except Exception as error:  # a bug in one feed's update must not stop the others
                log.exception("unexpected failure updating %s", feed.url)
                poll = PollRecord(
                    url=feed.url,
                    category=feed.category,
                    fetched_at=datetime.now(UTC),
                    status="error",
                    consecutive_errors=state.consecutive_errors + 1,
                    error=f"internal error: {type(error).__name__}: {error}",
                )
            # Still holding the slot: when the writer falls behind, fetching waits for it instead of
            # piling parsed feeds up in memory.
            await queue.put(poll)

    writer_task = asyncio.create_task(writer())
    try:
        async with contextlib.AsyncExitStack() as owned:
            if client is None:
                client = await owned.enter_async_context(HttpClient(settings))
            if parser is None:
                parser = await owned.enter_async_context(
                    ParserPool(settings.parse_workers, settings.parse_timeout, settings.parse_memory_limit)
                )
            await asyncio.gather(*(one(feed, client, parser) for feed in feeds))
    finally:
        # Also when the caller cancels us (a daemon whose grace period ran out): polls already fetched
        # are stored, and no write is left running in a thread after we return.
        await queue.close()
        await writer_task
    return summary


def _log_fields(outcome: UpdateOutcome) -> dict[str, object]:
    """Structured fields for `--log-format json`."""
    return {
        "feed": outcome.url,
        "category": outcome.category,
        "outcome": outcome.status,
        "new": outcome.new,
        "updated": outcome.updated,
    }


def _failed(poll: PollRecord, message: str) -> UpdateOutcome:
    return UpdateOutcome(url=poll.url, category=poll.category, status="error", error=message)
