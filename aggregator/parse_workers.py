"""Parse, normalise and store documents in worker processes: both cores busy, and a runaway parse killable.

A hostile document can make feedparser spin or balloon; a thread cannot be stopped, a process can.
Each worker has an address-space limit, and a batch that overruns its deadline gets its pool torn
down and rebuilt: the document its worker had been parsing for longer than `parse_timeout` is skipped,
and its other jobs, and those caught in the teardown, run again one by one on the new pool.

A worker also stores the feeds it parsed (`run_store_batch`), in its own connection to the archive: the
entries never travel back to the main process, whose event loop then only fetches (before, unpickling
the results and writing them made it the bottleneck of a first run, and its peak memory). The writers
take turns (see store.connection.ArchiveConnection._write_transaction); a worker killed mid-write leaves an uncommitted
transaction, which SQLite rolls back, and a job retried after its worker died once it had committed
still reports what that commit added.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import multiprocessing
import multiprocessing.util
import os
import resource
import select
import signal
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aggregator.core.errors import ParseError, RecordRefusedError, StorageError
from aggregator.core.models import ParsedFeed, PollRecord, StoreResult
from aggregator.core.schedule import next_poll_at
from aggregator.store.archive import Archive


@dataclass(frozen=True, slots=True)
class ParseJob:
    body: bytes
    feed_url: str
    fetched_from: str
    content_type: str | None
    charset: str | None
    timezone: str | None
    fetched_at: datetime


def run_parse_job(
    job: ParseJob, stored: Callable[[list[str]], Mapping[str, str | None]] | None = None
) -> ParsedFeed | str:
    """Parse + normalise one document. A problem with the document is returned as a message.

    `stored` looks up the fingerprints the archive holds for some entry ids: entries stored as they
    are now are not normalised again (see normalize_feed)."""
    # Imported here, in the worker (the forkserver preloads them): a run where every feed answers 304
    # never pays for importing feedparser, lxml and nh3 in the main process.
    from aggregator.parsing.document import parse_document
    from aggregator.parsing.normalize import declared_ids, normalize_feed

    try:
        raw = parse_document(job.body, job.fetched_from, job.content_type, job.charset)
        zone: tzinfo = ZoneInfo(job.timezone) if job.timezone else UTC
        known = stored(declared_ids(raw, feed_url=job.feed_url, fetched_from=job.fetched_from)) if stored else None
        return normalize_feed(
            raw,
            feed_url=job.feed_url,
            fetched_from=job.fetched_from,
            fetched_at=job.fetched_at,
            naive_zone=zone,
            known=known,
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
    # Seconds until the next poll given the feed's RSS ttl (minutes): core.schedule.poll_delay with this
    # feed's settings bound (a functools.partial, so it pickles).
    delay: Callable[..., int]
    # Whether the archive may hold entries of this feed: only then are their fingerprints looked up.
    stored_before: bool = True
    # When the server answered: the next poll counts from then (default: when the poll began).
    answered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StorageFailure:
    message: str
    # True when the archive itself failed (full disk, corruption, permissions): nothing else will be
    # stored either. False when it refused only this feed's data.
    archive_wide: bool = True


_archives: dict[Path, Archive] = {}
JOIN_TIMEOUT = 2.0  # seconds idle workers get to exit when the pool closes, before they are killed


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


# In a worker: the pool's progress board (see ParserPool._culprit), two numbers per batch slot: the index
# of the job being parsed (len(jobs) once storing) and when its parse began (time.monotonic(), which is
# the same clock in every process).
_progress: Any = None


def _mark(slot: int, index: int) -> None:
    if _progress is not None and slot >= 0:
        _progress[2 * slot + 1] = time.monotonic()  # the time first: a reader that sees the index sees it
        _progress[2 * slot] = index


def run_store_batch(jobs: list[StoreJob], slot: int = -1) -> list[StoreResult | StorageFailure | str]:
    """Parse and normalise each document, then store all that parsed in one transaction: per-feed
    commits rewrote the same index pages feed after feed (a cold benchmark run wrote 660 MB of
    write-ahead log for 170 MB of archive; batches of ten, 290 MB). A problem with one document is
    that document's message; a batch the archive refuses is stored again feed by feed, so that one
    feed's storage error is only that feed's."""
    results: list[StoreResult | StorageFailure | str] = []
    warnings: dict[int, str] = {}
    parsed_polls: dict[Path, list[tuple[int, PollRecord]]] = {}
    for index, job in enumerate(jobs):
        _mark(slot, index)
        # A retried poll is normalised whole: what its first attempt may have committed must be
        # recognised as this poll's news (store's `repeated`), not skipped as already stored.
        lookup = None
        if job.stored_before and not job.poll.retried:
            lookup = partial(_stored_fingerprints, job.archive, slot, index)
        parsed = run_parse_job(job.parse, lookup)
        if isinstance(parsed, ParsedFeed):
            if parsed.warning:
                warnings[index] = parsed.warning
            try:
                parsed_polls.setdefault(job.archive, []).append((index, _poll_of(job, parsed)))
            except Exception as error:  # a bug on one feed must not take its batch-mates with it
                parsed = f"parser failed: {type(error).__name__}: {error}"
        results.append(parsed if isinstance(parsed, str) else StoreResult())
    _mark(slot, len(jobs))
    for path, polls in parsed_polls.items():
        for (index, _), result in zip(polls, _store(path, [poll for _, poll in polls]), strict=True):
            results[index] = (
                replace(result, warning=warnings[index])
                if index in warnings and isinstance(result, StoreResult)
                else result
            )
    return results


def _stored_fingerprints(path: Path, slot: int, index: int, ids: list[str]) -> Mapping[str, str | None]:
    """The archive's fingerprints for `ids`; none when it cannot say (the write then reports why). Off the
    parse clock: opening the archive may wait for another writer's turn, which is no sign of a document
    that hangs its parser."""
    _mark(slot, -1)
    try:
        return _archive(path).fingerprints(ids)
    except StorageError:
        return {}
    finally:
        _mark(slot, index)


def _store(path: Path, polls: list[PollRecord]) -> list[StoreResult | StorageFailure]:
    """Store `polls` in one transaction; when the archive refuses, again one by one, so that each
    feed's failure is its own."""
    try:
        return list(_archive(path).record(polls))
    except StorageError as error:
        failure = StorageFailure(str(error), archive_wide=not isinstance(error, RecordRefusedError))
    except Exception as error:  # e.g. MemoryError: still only these feeds' outcome
        failure = StorageFailure(f"{path}: storing failed: {type(error).__name__}: {error}", archive_wide=False)
    if len(polls) == 1:
        return [failure]
    return [_store(path, [poll])[0] for poll in polls]


def _poll_of(job: StoreJob, parsed: ParsedFeed) -> PollRecord:
    return replace(
        job.poll,
        error=f"warning: {parsed.warning}" if parsed.warning else job.poll.error,  # `status` shows it beside "ok"
        title=job.title_override or parsed.title,
        site_url=parsed.link,
        format=parsed.format,
        ttl=parsed.ttl,
        next_due_at=next_poll_at(job.answered_at or job.poll.fetched_at, job.delay(ttl_minutes=parsed.ttl)),
        entries=parsed.entries,
        unchanged=parsed.unchanged,
    )


def _retried(job: StoreJob) -> StoreJob:
    return replace(job, poll=replace(job.poll, retried=True))


def _settle(waiting: _Waiting, result: StoreResult | StorageFailure | str) -> None:
    if not waiting.result.done():
        waiting.result.set_result(result)


def _start_worker(limit_bytes: int, owner: int, progress: Any = None) -> None:
    global _progress
    _progress = progress
    # Ctrl-C reaches the terminal's whole process group: stopping is the pool owner's to decide (it stores
    # what is in flight first), and a worker's KeyboardInterrupt traceback would only clutter the log.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if limit_bytes > 0:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    threading.Thread(target=_exit_with, args=(owner,), name="exit-with-owner", daemon=True).start()


def _exit_with(owner: int) -> None:
    """End this worker when the process that runs the pool ends, however it ends. A worker holds the
    write end of its own job queue (and the fork server's liveness pipe), so after a SIGKILL of the
    run or the daemon it would wait for a job forever, and the fork server with it."""
    try:
        handle = os.pidfd_open(owner)
    except (AttributeError, OSError):  # no pidfd (not Linux, or before 5.3): look every second
        while _alive(owner):
            time.sleep(1)
    else:
        select.select([handle], [], [])  # readable once the owner has exited
    os._exit(1)


def _join_or_kill(processes: list[Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or its pid now another user's process
        return False
    return True


@dataclass(slots=True)
class _Waiting:
    """A job handed to the pool, until its result comes back."""

    job: StoreJob
    result: asyncio.Future[StoreResult | StorageFailure | str]
    failures: int = 0  # times its worker died under it
    alone: bool = False  # after a failure it runs in a batch of its own, so a culprit fails alone


class ParserPool:
    """Worker processes for `run_store_batch`, with a deadline per batch. Use `async with`.

    Jobs that wait while every worker is busy go to the next free worker together, up to BATCH_JOBS
    of them and BATCH_BYTES of documents, and are stored in one transaction: under load the archive
    takes a few large writes instead of many small ones, and a lone feed (the daemon's usual case)
    still goes at once.
    """

    BATCH_JOBS = 8
    BATCH_BYTES = 4 * 1024 * 1024

    def __init__(self, workers: int = 0, timeout: float = 60.0, memory_limit: int = 1024**3) -> None:
        self.workers = workers or min(4, os.cpu_count() or 1)
        self.timeout = timeout
        self.memory_limit = memory_limit
        self._executor: ProcessPoolExecutor | None = None
        self._starting: asyncio.Future[None] | None = None
        self._waiting: collections.deque[_Waiting] = collections.deque()
        # Batches handed over at once: one per worker and one waiting, so a worker never idles between
        # two batches (exactly one per worker ran 5% slower), and a deadline counts little besides the
        # batch's own work (a stuck worker's own deadline fires first, and the batch waiting behind it
        # is run again on the new processes).
        self._in_flight = 0
        self._batches: dict[asyncio.Task[None], list[_Waiting]] = {}
        self._closed = False
        # Where the workers say which document of a batch they are parsing, one slot per batch in
        # flight: a batch stopped at its deadline then names the document that hung, instead of every
        # one of its documents being parsed again alone, the hanging one for a whole deadline more.
        self._progress: Any = None
        self._slots = self.workers + 1  # batches in flight: one per worker and one waiting
        self._free_slots = list(range(self._slots))

    async def _ready(self) -> ProcessPoolExecutor:
        """The running pool, started in a thread when there is none: starting one waits for the fork
        server to import the parser's modules (~0.2 s), which on the event loop stopped every fetch."""
        while self._executor is None:
            if self._closed:
                raise asyncio.CancelledError  # never a new pool once closing: nobody would shut it down
            if self._starting is None or self._starting.done():
                self._starting = asyncio.ensure_future(asyncio.to_thread(self._spawn))
            await asyncio.shield(self._starting)
        return self._executor

    def _spawn(self) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(
            [
                "aggregator.parse_workers",
                "aggregator.parsing.document",
                "aggregator.parsing.normalize",
                "aggregator.store.archive",
            ]
        )
        if self._progress is None:
            self._progress = context.Array("d", 2 * self._slots, lock=False)
        executor = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=context,
            initializer=_start_worker,
            initargs=(self.memory_limit, os.getpid(), self._progress),
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
        what was wrong. A batch gets twice `parse_timeout` for parsing and storing: the deadline is
        for a parser that never returns, not for a busy archive. A batch handed over while every
        worker is busy gets one `parse_timeout` more, for its wait. When a batch overruns its deadline,
        the document its worker had been parsing for longer than `parse_timeout` is skipped at once;
        when no document has (a slow archive) or its worker dies, its jobs run again one by one on new
        processes (the batches killed with that pool too), so that a document that hangs or crashes
        its parser is in the end stopped alone, at its own deadline or second death."""
        waiting = _Waiting(job, asyncio.get_running_loop().create_future())
        self._waiting.append(waiting)
        self._dispatch()
        try:
            return await asyncio.shield(waiting.result)
        except asyncio.CancelledError:
            waiting.result.cancel()  # not handed over again, whichever copy of it is queued
            raise

    def _dispatch(self) -> None:
        while self._waiting and self._in_flight <= self.workers and not self._closed:
            first = self._waiting.popleft()
            if first.result.done():  # its caller was cancelled
                continue
            batch = [first]
            size = len(first.job.parse.body)
            while not first.alone and self._waiting and len(batch) < self.BATCH_JOBS:
                following = self._waiting[0]
                if following.result.done():
                    self._waiting.popleft()
                    continue
                if following.alone or size + len(following.job.parse.body) > self.BATCH_BYTES:
                    break
                batch.append(self._waiting.popleft())
                size += len(following.job.parse.body)
            deadline = 2 * self.timeout + (self.timeout if self._in_flight >= self.workers else 0)
            self._in_flight += 1
            task = asyncio.ensure_future(self._run(batch, deadline))
            self._batches[task] = batch
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        batch = self._batches.pop(task, [])
        if task.cancelled():  # even before it started: its callers must not wait forever
            for waiting in batch:
                waiting.result.cancel()
        else:
            task.exception()  # _run settles or requeues every job itself; this only marks it seen
        self._in_flight -= 1
        self._dispatch()

    async def _run(self, batch: list[_Waiting], deadline: float) -> None:
        loop = asyncio.get_running_loop()
        retry: list[_Waiting] = []
        slot = self._free_slots.pop() if self._free_slots else -1
        try:
            executor = await self._ready()
            if slot >= 0:
                self._progress[2 * slot] = -1  # not started
                self._progress[2 * slot + 1] = time.monotonic()
            try:
                future = loop.run_in_executor(executor, run_store_batch, [waiting.job for waiting in batch], slot)
                results = await asyncio.wait_for(future, deadline)
            except TimeoutError:
                culprit = self._culprit(slot, len(batch))
                if executor is self._executor:
                    self._kill()
                if culprit is not None:
                    _settle(
                        batch[culprit],
                        f"parsing took longer than {self.timeout:g}s (parse_timeout); document skipped",
                    )
                    batch = batch[:culprit] + batch[culprit + 1 :]
                if culprit is not None or len(batch) > 1:
                    # Stopped mid-batch, perhaps after its commit: the store reports what that added.
                    retry = [replace(waiting, job=_retried(waiting.job), alone=True) for waiting in batch]
                else:
                    _settle(
                        batch[0],
                        f"parsing and storing took longer than {2 * self.timeout:g}s (twice parse_timeout); "
                        "document skipped",
                    )
            except BrokenProcessPool:
                # Only a batch on the pool that broke under it counts a death against its jobs: the
                # batches killed with the pool of another's timeout or crash simply run again.
                own = executor is self._executor
                if own:
                    self._kill()
                for waiting in batch:
                    if own and waiting.failures >= 1 and len(batch) == 1:
                        _settle(waiting, "the parser process died on this document (out of memory or crashed)")
                    else:
                        # Its process may have died after committing: the store reports that commit.
                        failures = waiting.failures + (1 if own else 0)
                        retry.append(replace(waiting, job=_retried(waiting.job), failures=failures, alone=True))
            else:
                for waiting, result in zip(batch, results, strict=True):
                    _settle(waiting, result)
        except Exception as error:  # the pool could not start: each job's caller reports it
            for waiting in batch:
                if not waiting.result.done():
                    waiting.result.set_exception(error)
                    # Retrieved even when its caller was cancelled meanwhile (no "never retrieved" log).
                    waiting.result.add_done_callback(lambda future: future.exception())
        finally:
            if slot >= 0:
                self._free_slots.append(slot)
            self._waiting.extendleft(reversed([waiting for waiting in retry if not waiting.result.done()]))

    def _culprit(self, slot: int, size: int) -> int | None:
        """The job of a batch past its deadline whose parse has run longer than parse_timeout, if any:
        that document hangs (its batch-mates are only behind it)."""
        if slot < 0 or self._progress is None:
            return None
        index, started = int(self._progress[2 * slot]), self._progress[2 * slot + 1]
        if int(self._progress[2 * slot]) != index:  # the worker moved on while we read
            return None
        if 0 <= index < size and time.monotonic() - started > self.timeout:
            return index
        return None

    async def __aenter__(self) -> ParserPool:
        return self

    def kill(self) -> None:
        """Kill the worker processes now, whatever they are doing (a daemon whose grace period is over):
        the batches they held fail and are not handed over again. A worker killed mid-write leaves an
        uncommitted transaction, which SQLite rolls back."""
        self._closed = True
        self._kill()

    async def __aexit__(self, *_: object) -> None:
        if self._starting is not None and not self._starting.done():
            with contextlib.suppress(Exception):  # a pool still starting is shut down too, not leaked
                await asyncio.shield(self._starting)
        self._closed = True
        for waiting in self._waiting:
            waiting.result.cancel()
        self._waiting.clear()
        batches = list(self._batches)
        for task in batches:
            task.cancel()
        await asyncio.gather(*batches, return_exceptions=True)
        if batches:
            # A batch was cut short (its caller cancelled): its worker may be busy for long on a huge or
            # pathological document, or frozen. Joining it would keep whoever stops waiting for as long.
            self._kill()
            return
        executor, self._executor = self._executor, None
        if executor is not None:
            processes = list(getattr(executor, "_processes", {}).values())
            executor.shutdown(wait=False, cancel_futures=True)
            # Idle workers exit at once; one that does not (stopped, or stuck in a system call) is killed
            # rather than waited for.
            await asyncio.to_thread(_join_or_kill, processes, JOIN_TIMEOUT)
