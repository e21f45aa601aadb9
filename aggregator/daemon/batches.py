"""The daemon's batcher: a due feed's job queues it and waits; the batcher drains the queue into
`pipeline.update_feeds` calls that share one HTTP client, one parser pool and one per-host limiter, so
that feeds falling due together reuse connections and never exceed `concurrency` in flight, and settles
each job with its feed's outcome."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aggregator.core.models import FeedConfig, UpdateOutcome
from aggregator.daemon.upkeep import DaemonUpkeep
from aggregator.pipeline import RunSummary

log = logging.getLogger("aggregator.daemon")

BATCH_WINDOW = 0.25  # feeds falling due within this many seconds of each other share one update_feeds call

Updater = Callable[..., Awaitable[RunSummary]]


class DaemonBatches(DaemonUpkeep):
    """The queue and the batches, for the Daemon (runner.py) that owns these attributes."""

    pending: dict[str, FeedConfig]  # due, waiting for the batcher
    waiters: dict[str, asyncio.Future[UpdateOutcome | None]]
    last_polled: dict[str, datetime]  # the min_interval guard, whatever the database says
    in_flight: int
    batches: set[asyncio.Task[None]]
    _wake: asyncio.Event
    _room: asyncio.Event
    _update: Updater

    async def _batch_loop(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(BATCH_WINDOW)  # let the feeds falling due together join one batch
            self._wake.clear()
            while self.pending:
                room = self.config.settings.concurrency - self.in_flight
                if room <= 0:
                    self._room.clear()
                    await self._room.wait()
                    continue
                urls = list(self.pending)[:room]
                feeds = [self.pending.pop(url) for url in urls]
                now = datetime.now(UTC)
                for url in urls:
                    self.last_polled[url] = now
                self.in_flight += len(feeds)
                task = asyncio.create_task(self._run_batch(feeds))
                self.batches.add(task)
                task.add_done_callback(self.batches.discard)

    async def _run_batch(self, feeds: list[FeedConfig]) -> None:
        started = time.monotonic()
        outstanding = {feed.url for feed in feeds}

        def on_outcome(outcome: UpdateOutcome) -> None:
            self.metrics.observe(outcome, time.monotonic() - started)
            if outcome.changed_ids:
                self.publisher.add(outcome.category, outcome.changed_ids)
            self._settle(outcome.url, outcome, outstanding)

        try:
            summary = await self._update(self.config, feeds, self.archive, on_outcome=on_outcome)
            if summary.storage_error:
                self._degrade("archive", summary.storage_error)
        except Exception:  # a bug must cost one batch, not the daemon
            log.exception("unexpected failure polling %d feed(s)", len(feeds))
        finally:
            for url in list(outstanding):
                self._settle(url, None, outstanding)

    def _settle(self, url: str, outcome: UpdateOutcome | None, outstanding: set[str]) -> None:
        if url not in outstanding:
            return
        outstanding.discard(url)
        self.in_flight -= 1
        self._room.set()
        future = self.waiters.get(url)
        if future is not None and not future.done():
            future.set_result(outcome)
