"""What the daemon does every couple of seconds besides polling: record the scheduler's next runs (what `status`
shows), schedule again a gone feed that `fetch-now URL` revived, and, while a part of it is degraded, check
whether it works again.

A full or read-only disk: a poll the archive cannot record is that feed's failure, and the daemon backs it
off in memory (the archive cannot hold the error count); `/healthz` answers 503 with the reason. Every
PROBE_EVERY seconds the daemon writes PROBE_ROOM bytes beside the archive and a transaction into it; once
both succeed, the feeds held back only because of the archive are scheduled by their own schedule again.
A publish that failed is retried every PUBLISH_RETRY_EVERY seconds until one succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

from aggregator.core.errors import StorageError
from aggregator.core.models import FeedConfig
from aggregator.daemon.outputs import DaemonOutputs
from aggregator.store.reads import ScheduleRow

log = logging.getLogger("aggregator.daemon")

UPKEEP_EVERY = 2.0  # seconds between two rounds (writes of the next runs to the archive, checks)
PROBE_EVERY = 5.0  # seconds between two checks of an archive that could not be written
PROBE_ROOM = 1 << 20  # bytes that must fit beside the archive before it counts as writable again
PUBLISH_RETRY_EVERY = 60.0  # seconds between two attempts of a publish that failed


class DaemonUpkeep(DaemonOutputs):
    """The upkeep rounds, for the Daemon (runner.py) that owns these attributes and methods."""

    # url -> (next run, the feed's last_fetched_at when it was computed): for `status`, not yet written.
    _next_due: dict[str, tuple[datetime, datetime | None]]
    # url -> polls of the feed the archive could not record since its last recorded one.
    _unstored: dict[str, int]
    feeds: dict[str, FeedConfig]
    gone: dict[str, FeedConfig]
    _reschedule: Callable[[str], datetime | None]
    _add_job: Callable[[FeedConfig, ScheduleRow | None], None]
    _probe_soon = False  # a poll was stored while the archive counted as unwritable: check at the next round

    async def _upkeep_loop(self) -> None:
        last_probe = 0.0
        while True:
            await asyncio.sleep(UPKEEP_EVERY)
            try:
                if "archive" in self.metrics.degraded:
                    if self._probe_soon or time.monotonic() - last_probe >= PROBE_EVERY:
                        self._probe_soon, last_probe = False, time.monotonic()
                        await self._probe_archive()
                else:
                    await self._record_next_due()
                self._revive()
                self._retry_publish()
            except Exception:  # a bug here must not end the rounds, nor the daemon
                log.exception("unexpected failure in the daemon's upkeep")

    async def _record_next_due(self) -> None:
        """Store the scheduler's next runs, in one transaction for all that changed meanwhile, in a thread
        (it takes a write turn, which a parser process may hold). A feed polled by another process since
        (fetch-now) keeps the due time that poll stored."""
        if not self._next_due:
            return
        due, self._next_due = self._next_due, {}
        try:
            await asyncio.to_thread(self.archive.set_next_due, due)
        except StorageError as error:
            self._next_due = due | self._next_due  # written once the archive takes writes again
            self._degrade("archive", str(error))

    async def _probe_archive(self) -> None:
        try:
            await asyncio.to_thread(self.archive.check_writable, PROBE_ROOM)
        except StorageError as error:
            log.debug("the archive still cannot be written: %s", error)
            return
        self._recover("archive")
        # Held back because of the archive, not because of anything they did: their own schedule again
        # (an overdue feed lands within its startup spread, so they do not all come at once).
        held, self._unstored = self._unstored, {}
        for url in held:
            self._reschedule(url)
        await self._record_next_due()
        if self._failed_publish is not None:  # it most likely failed for the same reason: again now
            self._failed_publish = (*self._failed_publish[:2], 0.0)

    def _revive(self) -> None:
        """Schedule the gone feeds that answer again: `fetch-now URL` polled one and it answered anything
        but 410. One indexed read of a few rows (gone feeds are few), on the loop."""
        if not self.gone or self.stopping.is_set():
            return
        rows = self.archive.schedule_rows(list(self.gone))
        for url, row in rows.items():
            if row.gone or url not in self.gone:
                continue
            feed = self.feeds[url] = self.gone.pop(url)
            self._add_job(feed, row)
            log.info(
                "%s: answering again (polled by fetch-now): polled on its schedule again",
                url,
                extra={"feed": url, "event": "revived"},
            )

    def _retry_publish(self) -> None:
        failed = self._failed_publish
        if failed is None or self.publisher.busy or time.monotonic() - failed[2] < PUBLISH_RETRY_EVERY:
            return
        categories, entry_ids, _when = failed
        self._failed_publish = (categories, entry_ids, time.monotonic())  # the next retry, should this fail
        for category in categories:
            self.publisher.add(category, tuple(entry_ids))
