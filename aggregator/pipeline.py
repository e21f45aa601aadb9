"""The one orchestrator: fetch -> parse -> decide -> store for one feed or many. fetch-now and the daemon
both call `update_feeds`; a feed's failure is recorded on that feed and never stops the others."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from aggregator.core.errors import RecordRefusedError, StorageError
from aggregator.core.models import (
    Config,
    FeedConfig,
    FeedState,
    FetchFailure,
    NotModified,
    PollRecord,
    StoreResult,
    UpdateOutcome,
)
from aggregator.core.schedule import body_fingerprint, next_poll_at, poll_delay
from aggregator.fetching.client import HostLimiter, HttpClient, fetch_feed
from aggregator.parse_workers import ParseJob, ParserPool, StorageFailure, StoreJob
from aggregator.store.archive import Archive

log = logging.getLogger("aggregator")
WRITE_BATCH = 64
QUEUED_POLLS = 1000  # feed-state rows waiting for the writer before fetching waits for it
CHECKPOINT_EVERY = 1.0  # seconds between write-ahead log checkpoints during a run that writes


class WriteQueue:
    """Polls whose feed state the main process stores (304s, unchanged bodies, failures: parsed feeds
    are stored by the parser processes), so that many make one commit. Bounded: fetching waits when
    `limit` polls are queued."""

    def __init__(self, limit: int, linger: float = 0.02) -> None:
        self.limit = limit
        self.linger = linger
        self._items: list[PollRecord] = []
        self._closed = False
        self._changed = asyncio.Condition()

    async def put(self, poll: PollRecord) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: len(self._items) < self.limit)
            self._items.append(poll)
            self._changed.notify_all()

    async def take(self, most: int) -> list[PollRecord] | None:
        """Up to `most` polls, waiting for at least one; None once closed and drained."""
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._items) or self._closed)
        if len(self._items) < most and not self._closed:
            # A moment for more to arrive: one commit for many feeds instead of one per feed.
            await asyncio.sleep(self.linger)
        async with self._changed:
            if not self._items:
                return None
            batch, self._items = self._items[:most], self._items[most:]
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


def _delay(config: Config, feed: FeedConfig) -> Callable[..., int]:
    """`poll_delay` for `feed`, waiting for the conditions of its poll (errors, ttl, server wishes)."""
    settings = config.settings
    return partial(
        poll_delay,
        interval=feed.interval or settings.default_interval,
        min_interval=settings.min_interval,
        max_interval=settings.max_interval,
    )


def _failure(
    config: Config,
    feed: FeedConfig,
    state: FeedState,
    message: str,
    fetched_at: datetime,
    http_status: int | None = None,
) -> PollRecord:
    """A poll that failed outside the fetch (a bug, a row the archive refused), as the archive records it:
    counted for backoff, and due again only after it."""
    errors = state.consecutive_errors + 1
    return PollRecord(
        url=feed.url,
        category=feed.category,
        fetched_at=fetched_at,
        status="error",
        http_status=http_status,
        consecutive_errors=errors,
        error=message,
        next_due_at=next_poll_at(datetime.now(UTC), _delay(config, feed)(consecutive_errors=errors)),
    )


async def _poll(
    config: Config,
    feed: FeedConfig,
    state: FeedState,
    client: HttpClient,
    limiter: HostLimiter,
    parser: ParserPool,
    archive_path: Path,
) -> PollRecord | StoredPoll:
    """Poll one feed. A new document is parsed and stored by a parser process (a `StoredPoll` comes
    back); anything else (304, an unchanged body, a failure) is a `PollRecord` for the writer."""
    settings = config.settings
    started = datetime.now(UTC)
    result = await fetch_feed(client, feed, state, settings, limiter)
    # Intervals, backoff and Retry-After count from the answer, not from the request: a request that
    # timed out after longer than the interval would otherwise be due again at once.
    answered = datetime.now(UTC)
    base = PollRecord(
        url=feed.url,
        category=feed.category,
        fetched_at=started,
        status="error",
        consecutive_errors=0,
        fetch_url=None if isinstance(result, FetchFailure) else result.permanent_url,
    )

    def due(
        errors: int = 0, retry_after: int | None = None, ttl: int | None = None, max_age: int | None = None
    ) -> datetime:
        delay = _delay(config, feed)(
            consecutive_errors=errors,
            retry_after=retry_after,
            ttl_minutes=ttl,
            max_age=max_age,
        )
        return next_poll_at(answered, delay)

    if isinstance(result, FetchFailure):
        errors = state.consecutive_errors + 1
        return replace(
            base,
            status="gone" if result.gone else "error",
            consecutive_errors=errors,
            http_status=result.status,
            error=result.message,
            retry_after_until=next_poll_at(answered, result.retry_after) if result.retry_after else None,
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
            next_due_at=due(max_age=result.max_age, ttl=state.ttl_minutes),
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
        return replace(fetched, status="unchanged", next_due_at=due(max_age=result.max_age, ttl=state.ttl_minutes))
    stored = await parser.store(
        StoreJob(
            parse=ParseJob(
                body=result.body,
                feed_url=feed.url,
                fetched_from=result.final_url,
                content_type=result.content_type,
                charset=feed.charset,
                timezone=feed.timezone,
                fetched_at=started,
            ),
            archive=archive_path,
            poll=replace(fetched, status="ok", body_hash=fingerprint),
            title_override=feed.title,  # the operator's title override wins
            delay=partial(_delay(config, feed), max_age=result.max_age),
            stored_before=state.body_hash is not None,
            answered_at=answered,
        )
    )
    if isinstance(stored, StoreResult) or (isinstance(stored, StorageFailure) and stored.archive_wide):
        return StoredPoll(replace(fetched, status="ok"), stored)
    message = stored.message if isinstance(stored, StorageFailure) else stored
    errors = state.consecutive_errors + 1
    # Keep the old caching headers: the next poll must fetch the body again, not get a 304.
    return replace(base, http_status=result.status, consecutive_errors=errors, error=message, next_due_at=due(errors))


@dataclass(frozen=True, slots=True)
class StoredPoll:
    """A poll whose document a parser process parsed and stored itself (or failed to store)."""

    poll: PollRecord
    result: StoreResult | StorageFailure


def _outcome(poll: PollRecord, new: int, updated: int, changed: tuple[str, ...], warning: str = "") -> UpdateOutcome:
    return UpdateOutcome(
        url=poll.url,
        category=poll.category,
        status=poll.status,
        new=new,
        updated=updated,
        error=poll.error,
        moved_to=poll.fetch_url,
        changed_ids=changed,
        warning=warning,
    )


def _log_outcome(outcome: UpdateOutcome) -> None:
    if outcome.status in ("error", "gone"):
        log.warning("%s: %s", outcome.url, outcome.error, extra=_log_fields(outcome))
    elif outcome.warning:
        log.warning(
            "%s: %s, %d new, %d updated; %s",
            outcome.url,
            outcome.status,
            outcome.new,
            outcome.updated,
            outcome.warning,
            extra=_log_fields(outcome),
        )
    elif outcome.status != "skipped":
        log.info(
            "%s: %s, %d new, %d updated",
            outcome.url,
            outcome.status,
            outcome.new,
            outcome.updated,
            extra=_log_fields(outcome),
        )


async def update_feeds(
    config: Config,
    feeds: Sequence[FeedConfig],
    archive: Archive,
    *,
    on_outcome: Callable[[UpdateOutcome], None] | None = None,
    log_outcomes: bool = True,
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
    queue = WriteQueue(QUEUED_POLLS)
    writes = [0]  # commits since the last checkpoint, by parser processes and the writer
    global_limit = asyncio.Semaphore(settings.concurrency)
    host_limiter = limiter or HostLimiter(settings.per_host_concurrency, settings.per_host_delay)

    def report(outcome: UpdateOutcome) -> None:
        summary.outcomes.append(outcome)
        if log_outcomes:  # unless the caller reports each outcome itself (fetch-now's bar or lines)
            _log_outcome(outcome)
        if on_outcome is not None:
            on_outcome(outcome)

    async def store(batch: list[PollRecord]) -> None:
        if summary.storage_error:
            for poll in batch:
                report(_failed(poll, summary.storage_error))
            return
        try:
            # Feed-state rows only: quicker here than handing them to a thread, which would
            # contend with this loop for the GIL once per row; but never waiting here for a parser
            # process's turn to write, which would stop every fetch meanwhile.
            results = archive.record_if_free(batch)
            if results is None:
                results = await asyncio.to_thread(archive.record, batch)
            writes[0] += 1
        except RecordRefusedError as error:
            if len(batch) > 1:  # again feed by feed, so that the refusal is only its own feed's
                for poll in batch:
                    await store([poll])
                return
            poll = batch[0]
            if poll.status != "error":  # the feed's state says it failed, and it backs off (unless refused too)
                feed = configured[poll.url]
                failed = _failure(config, feed, states[poll.url], str(error), poll.fetched_at, poll.http_status)
                await store([failed])
                return
            report(_failed(poll, str(error)))
            return
        except StorageError as error:
            summary.storage_error = str(error)
            for poll in batch:
                report(_failed(poll, summary.storage_error))
            return
        except Exception as error:  # a bug must not stop the writer: pollers would wait on it forever
            log.exception("unexpected failure storing a batch of %d feeds", len(batch))
            for poll in batch:
                report(_failed(poll, f"internal error while storing: {type(error).__name__}: {error}"))
            return
        for poll, stored in zip(batch, results, strict=True):
            report(_outcome(poll, stored.new, stored.updated, stored.new_ids + stored.updated_ids))

    configured = {feed.url: feed for feed in feeds}

    async def writer() -> None:
        while True:
            batch = await queue.take(WRITE_BATCH)
            if batch is None:
                break
            await store(batch)

    async def one(feed: FeedConfig, client: HttpClient, parser: ParserPool) -> None:
        state = states[feed.url]
        if skip_gone and state.gone:
            report(
                UpdateOutcome(
                    url=feed.url,
                    category=feed.category,
                    status="skipped",
                    error="gone (HTTP 410); to try it again: aggregator fetch-now URL",
                )
            )
            return
        if state.retry_after_until is not None and datetime.now(UTC) < state.retry_after_until:
            # Asked by the server (429/503 Retry-After) of whichever process polled it last: the daemon's
            # schedule knows its own polls, not fetch-now's, and the other way round.
            wait = f"the server asked for no request before {state.retry_after_until:%Y-%m-%d %H:%M:%S} UTC"
            report(UpdateOutcome(url=feed.url, category=feed.category, status="skipped", error=f"{wait} (Retry-After)"))
            return
        async with global_limit:
            try:
                polled = await _poll(config, feed, state, client, host_limiter, parser, archive.path)
            except Exception as error:  # a bug in one feed's update must not stop the others
                log.exception("unexpected failure updating %s", feed.url)
                message = f"internal error: {type(error).__name__}: {error}"
                polled = _failure(config, feed, state, message, datetime.now(UTC))
            if isinstance(polled, StoredPoll):
                writes[0] += 1
                if isinstance(polled.result, StorageFailure):
                    summary.storage_error = summary.storage_error or polled.result.message
                    report(_failed(polled.poll, polled.result.message))
                else:
                    stored = polled.result
                    changed = stored.new_ids + stored.updated_ids
                    report(_outcome(polled.poll, stored.new, stored.updated, changed, stored.warning))
                return
            # Still holding the slot: when the writer falls behind, fetching waits for it.
            await queue.put(polled)

    async def checkpointer() -> None:
        # Parser processes commit feed after feed and leave the write-ahead log to us: copying it into
        # the database here, in a thread, keeps its fsyncs out of their commits.
        while not finished.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), CHECKPOINT_EVERY)
            if writes[0]:
                writes[0] = 0
                try:
                    await asyncio.to_thread(archive.checkpoint)
                except StorageError as error:
                    log.warning("%s", error)

    finished = asyncio.Event()
    with archive.defer_checkpoints():
        checkpoint_task = asyncio.create_task(checkpointer())
        try:
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
                # Also when the caller cancels us (a daemon whose grace period ran out): polls already
                # fetched are stored, and no write is left running in a thread after we return.
                await queue.close()
                await writer_task
        finally:
            finished.set()
            await checkpoint_task
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
    """A poll the archive could not record: what it fetched is not stored, nor is its feed's new state
    (its error count, its next due time): whoever polls the feed next sees the previous poll's state."""
    return UpdateOutcome(url=poll.url, category=poll.category, status="error", error=message, unstored=True)
