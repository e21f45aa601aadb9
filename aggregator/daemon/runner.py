"""`aggregator daemon`: poll every feed on its own schedule, politely, until told to stop.

How it fits together (one asyncio loop, one process):
- apscheduler 3.x (AsyncIOScheduler, the only module importing it) keeps one job per feed. A job's
  nominal trigger is the feed's interval with jitter; after every poll the job is moved to the time the
  pipeline stored in `feeds.next_due_at` (interval, Retry-After, max-age, RSS ttl, error backoff), pushed
  later by the adaptive interval and min_interval, plus jitter (core.schedule.schedule_at). Because that time is
  in the database, a restarted daemon waits for it instead of polling everything at once.
- A due job does not fetch by itself: it puts its feed in a queue and waits. A batcher (daemon.batches)
  drains the queue into `pipeline.update_feeds` calls that share one HTTP client, one parser pool and one
  per-host limiter, so feeds falling due together reuse connections and never exceed `concurrency` in flight.
- A job that finds its feed polled meanwhile by another process (`fetch-now`: a later last_fetched_at than
  the daemon last read) moves to the due time that poll stored instead of polling. A poll the archive could
  not record backs its feed off in memory, and the daemon is degraded until the archive takes writes again
  (daemon.upkeep); a gone feed that `fetch-now URL` revived is scheduled again by the upkeep rounds.
- Outcomes with new or changed entries feed a debounced publisher: one republication per burst.
- SIGHUP reloads feeds.yaml (jobs added, removed, rescheduled; an invalid file is logged and ignored);
  SIGTERM/SIGINT stop scheduling and give in-flight polls and the publish under way `shutdown_grace`
  seconds; then parser processes are killed and a publish is abandoned (SHUTDOWN_MARGIN bounds the rest,
  and a watchdog ends the process past it). A second signal exits at once. One daemon per archive
  (daemon.lock.DaemonLock).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import random
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from aggregator.configuration.load import load_config
from aggregator.core.errors import ConfigError
from aggregator.core.models import Config, FeedConfig, UpdateOutcome
from aggregator.core.schedule import JITTER_FRACTION, MAX_JITTER
from aggregator.daemon.batches import DaemonBatches
from aggregator.daemon.publisher import DebouncedPublisher
from aggregator.daemon.schedule import feed_interval, held_back, next_run
from aggregator.fetching.client import HostLimiter, HttpClient
from aggregator.parse_workers import ParserPool
from aggregator.pipeline import update_feeds
from aggregator.serving.metrics import DaemonMetrics
from aggregator.store.archive import Archive
from aggregator.store.reads import ScheduleRow

log = logging.getLogger("aggregator.daemon")

# Seconds past shutdown_grace for what stopping does once the grace is over (killing parser processes,
# storing what was fetched, closing connections). Past it, a watchdog ends the process: deploy/ gives
# systemd and Docker shutdown_grace + 15 s before they kill it.
SHUTDOWN_MARGIN = 5.0
# Settings baked into the shared client, parser pool and limiter, or into the process: a reload logs
# that they need a restart instead of half-applying them.
RESTART_SETTINGS = (
    "archive_dir",
    "user_agent",
    "connect_timeout",
    "request_timeout",
    "concurrency",
    "per_host_concurrency",
    "per_host_delay",
    "parse_workers",
    "parse_timeout",
    "parse_memory_limit",
    "serve_host",
    "serve_port",
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


_early_reload = False


def catch_early_reloads() -> None:
    """From now until the daemon's event loop takes over SIGHUP, a reload signal is remembered rather
    than killing the process (SIGHUP's default): the daemon reloads once it runs."""

    def remember(_signal: int, _frame: object) -> None:
        global _early_reload
        _early_reload = True

    signal.signal(signal.SIGHUP, remember)


class Daemon(DaemonBatches):
    def __init__(self, config: Config, *, serve: bool = False) -> None:
        self.config = config
        self.serve = serve
        self.feeds: dict[str, FeedConfig] = {}  # the feeds with a job: enabled and not gone
        self.gone: dict[str, FeedConfig] = {}  # enabled, but gone (HTTP 410): no job until revived
        self.pending: dict[str, FeedConfig] = {}  # due, waiting for the batcher
        self.waiters: dict[str, asyncio.Future[UpdateOutcome | None]] = {}
        self.last_polled: dict[str, datetime] = {}  # the min_interval guard, whatever the database says
        self.in_flight = 0
        self.batches: set[asyncio.Task[None]] = set()
        self.metrics = DaemonMetrics()
        self.publisher = DebouncedPublisher(self._publish)
        self.stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._signals = 0
        self._stop_deadline = 0.0  # loop time at which the grace period ends
        self._reloading: asyncio.Task[None] | None = None
        self._reload_again = False
        self._next_due: dict[str, tuple[datetime, datetime | None]] = {}  # see DaemonUpkeep
        self._unstored: dict[str, int] = {}  # see DaemonUpkeep
        # The feed's last_fetched_at as the daemon last read it: a later one is a poll by another process.
        self._seen_fetch: dict[str, datetime | None] = {}
        self._rng = random.Random()

    # --- lifecycle ---------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        settings = self.config.settings
        # One connection shared by concurrent runs: Archive lets one write at a time (its thread lock).
        with Archive.open(settings.database_path) as opened:
            self.archive = opened
            async with (
                HttpClient(settings) as client,
                ParserPool(settings.parse_workers, settings.parse_timeout, settings.parse_memory_limit) as parser,
            ):
                self._parser = parser
                limiter = HostLimiter(settings.per_host_concurrency, settings.per_host_delay)
                self._update = functools.partial(update_feeds, client=client, parser=parser, limiter=limiter)
                self.scheduler = AsyncIOScheduler(
                    event_loop=loop,
                    timezone=UTC,
                    # A late job runs once (coalesce), however late (no misfire limit), never twice at once.
                    job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
                )
                server = await self._start_server() if self.serve else None
                self._apply_config(self.config)
                self.scheduler.start()
                # Reloads only once the first configuration is in force (until now catch_early_reloads
                # remembered them).
                loop.add_signal_handler(signal.SIGHUP, self._on_reload_signal)
                if _early_reload:  # signalled while starting: the file may have changed after it was read
                    self._on_reload_signal()
                batcher = asyncio.create_task(self._batch_loop())
                upkeep = asyncio.create_task(self._upkeep_loop())
                log.info(
                    "daemon started: %d feeds scheduled, archive %s (pid %d)",
                    len(self.feeds),
                    settings.database_path,
                    os.getpid(),
                    extra={"event": "started"},
                )
                await self.stopping.wait()
                await self._shutdown(batcher, server)
                upkeep.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await upkeep
                if "archive" not in self.metrics.degraded:
                    await self._record_next_due()
        return 0

    def _on_stop_signal(self, sig: int) -> None:
        self._signals += 1
        name = signal.Signals(sig).name
        if self._signals > 1:
            log.warning("%s again: exiting now without waiting", name, extra={"event": "killed"})
            logging.shutdown()
            os._exit(128 + sig)
        grace = self.config.settings.shutdown_grace
        log.info(
            "%s: stopping; in-flight polls get %gs (send it again to exit at once)",
            name,
            grace,
            extra={"event": "stopping"},
        )
        self._stop_deadline = asyncio.get_running_loop().time() + grace
        _arm_watchdog(grace + SHUTDOWN_MARGIN)
        self.stopping.set()

    def _on_reload_signal(self) -> None:
        if self.stopping.is_set():
            return
        if self._reloading is None or self._reloading.done():
            self._reloading = asyncio.create_task(self._reload())
        else:
            # A reload is reading the file: the edit that sent this signal may have come after that read.
            self._reload_again = True

    async def _reload(self) -> None:
        try:
            await self._reload_once()
        finally:
            if self._reload_again and not self.stopping.is_set():
                self._reload_again = False
                self._reloading = asyncio.create_task(self._reload())

    async def _reload_once(self) -> None:
        path = self.config.path
        self._reload_again = False
        try:
            config = await asyncio.to_thread(load_config, path)
        except ConfigError as error:
            log.error(
                "reload failed, still running on the previous configuration: %s",
                error,
                extra={"event": "reload_failed"},
            )
            return
        if not config.feeds and self.config.feeds:
            # An editor's half-written save reads as an empty file; stopping every poll takes a deliberate act.
            log.error(
                "reload refused, still running on the previous configuration: %s now lists no feeds "
                "(to stop polling, disable the feeds or stop the daemon)",
                path,
                extra={"event": "reload_failed"},
            )
            return
        changed = [
            name for name in RESTART_SETTINGS if getattr(config.settings, name) != getattr(self.config.settings, name)
        ]
        if changed:
            log.warning(
                "reload: changed settings take effect after a restart: %s",
                ", ".join(changed),
                extra={"event": "reload_partial"},
            )
            # Until then the running values stay in force everywhere (deadlines, batch sizes), and the
            # next reload compares against what actually runs.
            kept = {name: getattr(self.config.settings, name) for name in changed}
            config = dataclasses.replace(config, settings=dataclasses.replace(config.settings, **kept))
        self._apply_config(config)

    def _grace_left(self) -> float:
        return max(0.0, self._stop_deadline - asyncio.get_running_loop().time())

    async def _shutdown(
        self, batcher: asyncio.Task[None], server: tuple[asyncio.Event, asyncio.Task[None]] | None
    ) -> None:
        """Everything in flight shares the grace period: polls, then the publish under way and what is left
        to publish. Past it, parser processes are killed (one may be busy for long on a pathological
        document, or frozen) and a publish is abandoned (its files are replaced whole; the next publish,
        by the next daemon or any command, completes it)."""
        self.scheduler.shutdown(wait=False)  # no new polls; job coroutines waiting in the queue are cancelled
        batcher.cancel()
        self.pending.clear()
        if self.batches:
            log.info("waiting up to %gs for %d feed(s) in flight", self._grace_left(), self.in_flight)
            _done, late = await asyncio.wait(set(self.batches), timeout=self._grace_left())
            if late:
                log.warning(
                    "grace period over: abandoning %d feed(s) still in flight (they are polled again next time)",
                    self.in_flight,
                    extra={"event": "abandoned"},
                )
                self._parser.kill()  # first: a killed worker also gives up the archive's write turn it held
                for task in late:
                    task.cancel()
                # update_feeds stores what it had already fetched before it returns from a cancel.
                await asyncio.wait(late, timeout=SHUTDOWN_MARGIN)
        if self.publisher.busy:
            try:
                await asyncio.wait_for(self.publisher.flush(), self._grace_left())
            except TimeoutError:
                log.warning(
                    "grace period over: abandoning the publish under way (files are replaced whole; the next "
                    "publish completes it)",
                    extra={"event": "publish_abandoned"},
                )
        if server is not None:
            stop, task = server
            stop.set()
            _done, running = await asyncio.wait({task}, timeout=SHUTDOWN_MARGIN)
            for late_task in running:
                late_task.cancel()

    # --- configuration and scheduling --------------------------------------------------------------

    def _apply_config(self, config: Config) -> None:
        """Make the jobs match `config`: add new feeds, drop removed ones, reschedule changed ones."""
        first = not hasattr(self, "_applied")
        self._applied = True
        old, old_settings, self.config = self.feeds, self.config.settings, config
        wanted = {feed.url: feed for feed in config.feeds if feed.enabled}
        removed = [url for url in old if url not in wanted]
        for url in removed:
            self._remove(url)
        rows = self.archive.schedule_rows(list(wanted))
        added, rescheduled, self.gone = 0, 0, {}
        # Settings that shape every feed's schedule: a change reschedules them all now, not at their next poll.
        bounds = ("adaptive_interval", "min_interval", "max_interval")
        every_schedule = any(getattr(old_settings, name) != getattr(config.settings, name) for name in bounds)
        for url, feed in wanted.items():
            row = rows.get(url)
            if row is not None and row.gone:
                self.gone[url] = feed
                self._remove(url)
                continue
            previous = old.get(url)
            self.feeds[url] = feed
            if previous is not None and previous.category != feed.category:
                # The next publish moves its entries, posts and feed items (publish_outputs applies the
                # configured categories); without one the move would wait for an entry to change.
                self.publisher.add(previous.category, ())
                self.publisher.add(feed.category, ())
            same_interval = previous is not None and feed_interval(old_settings, previous) == feed_interval(
                config.settings, feed
            )
            if same_interval and not every_schedule:
                continue  # same schedule; other changes (title, tags, headers) apply at the next poll
            added += previous is None
            rescheduled += previous is not None
            self._add_job(feed, self._held_back(url, feed, row), interval_changed=previous is not None)
        verb = "configuration loaded" if first else "configuration reloaded"
        log.info(
            "%s: %d feeds scheduled (%d added, %d removed, %d rescheduled); %d gone (HTTP 410) not polled",
            verb,
            len(self.feeds),
            added,
            len(removed),
            rescheduled,
            len(self.gone),
            extra={"event": "config_loaded" if first else "config_reloaded"},
        )

    def _remove(self, url: str) -> None:
        self.feeds.pop(url, None)
        if self.pending.pop(url, None) is not None:
            # Its job waits on this future: unsettled, apscheduler counts it running for good and refuses
            # every run of the feed's job once the feed is back (max_instances), without a word.
            waiter = self.waiters.get(url)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        with contextlib.suppress(JobLookupError):
            self.scheduler.remove_job(url)

    def _add_job(
        self,
        feed: FeedConfig,
        row: ScheduleRow | None,
        *,
        interval_changed: bool = False,
    ) -> None:
        interval = feed_interval(self.config.settings, feed)
        jitter = int(min(MAX_JITTER, interval * JITTER_FRACTION))
        self._seen_fetch[feed.url] = row.last_fetched_at if row is not None else None
        self.scheduler.add_job(
            self._poll_job,
            IntervalTrigger(seconds=interval, jitter=jitter or None, timezone=UTC),
            args=[feed.url],
            id=feed.url,
            name=feed.url,
            next_run_time=next_run(
                self.config.settings,
                feed,
                row,
                self.last_polled.get(feed.url),
                self.archive.recent_published,
                self._rng,
                interval_changed=interval_changed,
            ),
            replace_existing=True,
        )

    def _held_back(self, url: str, feed: FeedConfig, row: ScheduleRow | None) -> ScheduleRow | None:
        """`row`, or, after polls the archive could not record, as it would read had it recorded them."""
        unstored = self._unstored.get(url)
        polled = self.last_polled.get(url)
        if not unstored or polled is None:
            return row
        return held_back(self.config.settings, feed, row, unstored, polled)

    def _reschedule(self, url: str) -> datetime | None:
        feed = self.feeds.get(url)
        if feed is None or self.stopping.is_set():
            return None
        row = self.archive.schedule_rows([url]).get(url)
        if row is not None and row.gone:
            # The poll's own outcome was the warning (HTTP 410 ...); this only says what the schedule did.
            log.info("%s: gone (HTTP 410); no longer polled", url, extra={"feed": url, "event": "gone"})
            self._remove(url)
            self.gone[url] = feed
            return None
        fetched = self._seen_fetch[url] = row.last_fetched_at if row is not None else None
        row = self._held_back(url, feed, row)
        when = next_run(
            self.config.settings, feed, row, self.last_polled.get(url), self.archive.recent_published, self._rng
        )
        with contextlib.suppress(JobLookupError):
            self.scheduler.modify_job(url, next_run_time=when)
        self._next_due[url] = (when, fetched)  # for `status`; written in batches (see _record_next_due)
        log.debug("%s: next poll at %s", url, when.isoformat(timespec="seconds"), extra={"feed": url})
        return when

    # --- polling -----------------------------------------------------------------------------------

    async def _poll_job(self, url: str) -> None:
        """The job apscheduler runs when a feed falls due: queue the feed, wait for its outcome, reschedule."""
        feed = self.feeds.get(url)
        if feed is None or self.stopping.is_set():
            return
        polled = self.last_polled.get(url)
        if polled is not None and (_utcnow() - polled).total_seconds() < self.config.settings.min_interval:
            self._reschedule(url)  # the nominal trigger fired early: never poll more often than min_interval
            return
        if self._polled_elsewhere(url, feed):
            return
        future: asyncio.Future[UpdateOutcome | None] = asyncio.get_running_loop().create_future()
        self.waiters[url] = future
        self.pending[url] = feed
        self._wake.set()
        outcome = None
        try:
            outcome = await future
        except asyncio.CancelledError:
            # The scheduler cancels waiting jobs when the daemon stops: a normal end, not an error to log.
            return
        finally:
            self.waiters.pop(url, None)
            if outcome is not None and outcome.unstored:
                self._unstored[url] = self._unstored.get(url, 0) + 1  # the backoff the archive cannot hold
            elif outcome is not None:
                self._unstored.pop(url, None)
                if outcome.status != "skipped" and "archive" in self.metrics.degraded:
                    self._probe_soon = True  # stored: the archive may take writes again
            self._reschedule(url)

    def _polled_elsewhere(self, url: str, feed: FeedConfig) -> bool:
        """Whether another process (fetch-now) polled the feed since the daemon last read its row: then its
        next poll counts from that one. fetch-now stores the due time by the daemon's own rule
        (daemon.schedule.next_run), so it is kept as it stands (no jitter again), and `status` showed it."""
        row = self.archive.schedule_rows([url]).get(url)
        fetched = row.last_fetched_at if row is not None else None
        if row is None or fetched is None or fetched == self._seen_fetch.get(url):
            return False
        self._seen_fetch[url] = fetched
        self._unstored.pop(url, None)  # the archive holds the feed's state as that poll left it
        settings = self.config.settings
        polled = self.last_polled.get(url)
        when = next_run(settings, feed, row, polled, self.archive.recent_published, self._rng, jitter=False)
        if when <= _utcnow():
            return False
        with contextlib.suppress(JobLookupError):
            self.scheduler.modify_job(url, next_run_time=when)
        self._next_due[url] = (when, fetched)
        log.info(
            "%s: polled meanwhile by another process (fetch-now); next poll at %s",
            url,
            when.isoformat(timespec="seconds"),
            extra={"feed": url, "event": "polled_elsewhere"},
        )
        return True


def _arm_watchdog(seconds: float) -> None:
    """End the process `seconds` from now if it is still running: the last resort of a bounded stop (a
    thread stuck in a system call, on a hung disk, cannot be cancelled)."""

    def overrun() -> None:
        log.error("still running %gs after the stop signal: exiting now", seconds, extra={"event": "overrun"})
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(1)

    timer = threading.Timer(seconds, overrun)
    timer.daemon = True
    timer.start()


def run_daemon(config_path: Path, *, serve: bool = False) -> int:
    """Entry point for `aggregator daemon`: take the lock, run until stopped, return the exit status."""
    from aggregator.daemon.lock import DaemonLock

    config = load_config(config_path)
    with DaemonLock(config.settings.archive_dir):
        status = asyncio.run(Daemon(config, serve=serve).run())
    # Only now is it true: the loop's threads are joined, parser processes gone, the lock released.
    log.info("daemon stopped", extra={"event": "stopped"})
    return status
