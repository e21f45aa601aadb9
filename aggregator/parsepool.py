"""Parse, normalise and store documents in worker processes: both cores busy, and a runaway parse killable.

A hostile document can make feedparser spin or balloon; a thread cannot be stopped, a process can.
Each worker has an address-space limit, and a job that overruns its deadline gets its pool torn
down and rebuilt (other jobs caught in the teardown are retried once on the new pool).

A worker also stores the feed it parsed (`run_store_job`), in its own connection to the archive: the
entries never travel back to the main process, whose event loop then only fetches (before, unpickling
the results and writing them made it the bottleneck of a first run, and its peak memory). The writers
take turns (see store.Archive._write_transaction); a worker killed mid-write leaves an uncommitted
transaction, which SQLite rolls back, and a job retried after its worker died once it had committed
still reports what that commit added.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.util
import os
import resource
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from .decide import next_poll_at
from .errors import ParseError, StorageError
from .models import ParsedFeed, PollRecord, StoreResult
from .store import Archive


@dataclass(frozen=True, slots=True)
class ParseJob:
    body: bytes
    feed_url: str
    fetched_from: str
    content_type: str | None
    charset: str | None
    timezone: str | None
    fetched_at: datetime


def run_parse_job(job: ParseJob) -> ParsedFeed | str:
    """Parse + normalise one document. A problem with the document is returned as a message."""
    # Imported here, in the worker (the forkserver preloads them): a run where every feed answers 304
    # never pays for importing feedparser, lxml and nh3 in the main process.
    from .normalize import normalize_feed
    from .parse import parse_document

    try:
        raw = parse_document(job.body, job.fetched_from, job.content_type, job.charset)
        zone: tzinfo = ZoneInfo(job.timezone) if job.timezone else UTC
        return normalize_feed(
            raw, feed_url=job.feed_url, fetched_from=job.fetched_from, fetched_at=job.fetched_at, naive_zone=zone
        )
    except ParseError as error:
        return str(error)
    except MemoryError:
        return "document too large to parse within the parser's memory limit"
    except RecursionError:
        return "document nested too deeply to parse"
    except Exception as error:  # a bug or a parser failure on one feed must never stop the others
        return f"parser failed: {type(error).__name__}: {error}"


@dataclass(frozen=True, slots=True)
class StoreJob:
    """Parse `parse` and store it as `poll` (the fetch's outcome, without what the document says)."""

    parse: ParseJob
    archive: Path
    poll: PollRecord
    title_override: str | None
    # Seconds until the next poll given the feed's RSS ttl (minutes): decide.poll_delay with this
    # feed's settings bound (a functools.partial, so it pickles).
    delay: Callable[..., int]


@dataclass(frozen=True, slots=True)
class StorageFailure:
    message: str


_archives: dict[Path, Archive] = {}


def _archive(path: Path) -> Archive:
    """This worker's connection to the archive at `path`, opened on first use and closed at exit."""
    archive = _archives.get(path)
    if archive is None:
        archive = _archives[path] = Archive.open(path)
        # Checkpoints are the main process's (update_feeds), in a thread: inside a worker's commit, the
        # checkpoint's copy and fsync kept the other writers waiting (per-feed writes cost 60% more).
        archive.set_auto_checkpoint(0)
        multiprocessing.util.Finalize(archive, archive.close, exitpriority=10)
    return archive


def run_store_job(job: StoreJob) -> StoreResult | StorageFailure | str:
    """Parse, normalise and store one document; a problem with the document is returned as a message."""
    parsed = run_parse_job(job.parse)
    if not isinstance(parsed, ParsedFeed):
        return parsed
    poll = replace(
        job.poll,
        title=job.title_override or parsed.title,
        site_url=parsed.link,
        format=parsed.format,
        ttl=parsed.ttl,
        next_due_at=next_poll_at(job.poll.fetched_at, job.delay(ttl_minutes=parsed.ttl)),
        entries=parsed.entries,
    )
    try:
        [stored] = _archive(job.archive).record([poll])
    except StorageError as error:
        return StorageFailure(str(error))
    return stored


def _limit_memory(limit_bytes: int) -> None:
    if limit_bytes > 0:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))


class ParserPool:
    """Worker processes for `run_store_job`, with a deadline per job. Use `async with`."""

    def __init__(self, workers: int = 0, timeout: float = 60.0, memory_limit: int = 1024**3) -> None:
        self.workers = workers or min(4, os.cpu_count() or 1)
        self.timeout = timeout
        self.memory_limit = memory_limit
        self._executor: ProcessPoolExecutor | None = None
        self._starting: asyncio.Future[None] | None = None
        self._in_flight = 0
        # Jobs handed over at once: one per worker and one waiting, so a worker never idles between
        # two jobs (exactly one per worker ran 5% slower), and a job's deadline counts little besides
        # its own work, not a wait behind a queue (a stuck worker's own deadline fires first, and the
        # job waiting behind it is retried on the new processes).
        self._slots = asyncio.Semaphore(self.workers + 1)

    async def _ready(self) -> ProcessPoolExecutor:
        """The running pool, started in a thread when there is none: starting one waits for the fork
        server to import the parser's modules (~0.2 s), which on the event loop stopped every fetch."""
        while self._executor is None:
            if self._starting is None or self._starting.done():
                self._starting = asyncio.ensure_future(asyncio.to_thread(self._spawn))
            await asyncio.shield(self._starting)
        return self._executor

    def _spawn(self) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(
            ["aggregator.parsepool", "aggregator.parse", "aggregator.normalize", "aggregator.store"]
        )
        executor = ProcessPoolExecutor(
            max_workers=self.workers, mp_context=context, initializer=_limit_memory, initargs=(self.memory_limit,)
        )
        try:
            # Starts the fork server and a first worker here; the others fork from the warm server when
            # jobs arrive (milliseconds each).
            executor.submit(int)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor = executor

    def _kill(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        for process in list(getattr(executor, "_processes", {}).values()):
            process.kill()
        # Jobs still queued on this pool fail as BrokenProcessPool and are retried on the next one;
        # cancelling them instead would cancel the tasks awaiting them, and with them the whole run.
        executor.shutdown(wait=False, cancel_futures=False)

    async def store(self, job: StoreJob) -> StoreResult | StorageFailure | str:
        """Parse, normalise and store one document; only the counts come back, or a message saying
        what was wrong. Parsing and storing together get twice `parse_timeout`: the deadline is for a
        parser that never returns, not for a busy archive. A job handed over while every worker is
        busy gets one `parse_timeout` more, for its wait."""
        loop = asyncio.get_running_loop()
        async with self._slots:
            deadline = 2 * self.timeout + (self.timeout if self._in_flight >= self.workers else 0)
            self._in_flight += 1
            try:
                for attempt in range(2):
                    executor = await self._ready()
                    try:
                        future = loop.run_in_executor(executor, run_store_job, job)
                        return await asyncio.wait_for(future, deadline)
                    except TimeoutError:
                        if executor is self._executor:
                            self._kill()
                        return (
                            f"parsing and storing took longer than {2 * self.timeout:g}s (twice parse_timeout); "
                            "document skipped"
                        )
                    except (BrokenProcessPool, asyncio.CancelledError):
                        task = asyncio.current_task()
                        if task is not None and task.cancelling():
                            raise  # we are being cancelled, not the job
                        if executor is self._executor:
                            self._kill()
                        if attempt == 1:
                            return "the parser process died on this document (out of memory or crashed)"
                        # Its process may have died after committing: the store reports that commit.
                        job = replace(job, poll=replace(job.poll, retried=True))
            finally:
                self._in_flight -= 1
        raise AssertionError("unreachable")

    async def __aenter__(self) -> ParserPool:
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._starting is not None and not self._starting.done():
            with contextlib.suppress(Exception):  # a pool still starting is shut down too, not leaked
                await asyncio.shield(self._starting)
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, True, cancel_futures=True)
