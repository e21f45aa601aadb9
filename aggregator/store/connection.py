"""The archive's SQLite connection: opening (read-write or read-only), the writers' turns, checkpoints.

Writers of one archive (parser processes, the main process, a `fetch-now` beside the daemon) take turns
through an flock beside the database; `writes` and `reads` build on this connection.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self, TypeVar

from sqlite_utils import Database

from aggregator.core.errors import StorageError
from aggregator.store.migrations import apply_migrations, migrations, register_index_functions

T = TypeVar("T")
BUSY_TIMEOUT_MS = 30_000
DEFAULT_AUTO_CHECKPOINT = 1000  # pages: SQLite's own default
PAGE_SIZE = 16384
WRITER_LOCK_SUFFIX = ".writer-lock"  # aggregator.db.writer-lock: see ArchiveConnection._write_transaction
_CHUNK = 500
ENTRY_COLUMNS = (
    "id, feed_url, key, category, title, link, author, summary, content, published, published_utc, updated, "
    "date_flag, tags, enclosures, content_hash, revision, first_seen, last_seen, changed_at"
)


def stored_time(text: str | None) -> datetime | None:
    """A time the archive holds, aware (UTC when written without an offset); None when missing or not
    one (written by hand, or by something else: no wait is better than no poll ever)."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class ArchiveConnection:
    """The archive database's connection and the writers' turns. Open with `Archive.open(path)`."""

    def __init__(self, db: Database, path: Path) -> None:
        self.db = db
        self.path = path
        # Writers of this archive take turns: other processes through the flock, this process's threads
        # (the daemon's concurrent runs share one connection) through the thread lock.
        self._writer_lock = _WriterLock(path)
        self._thread_lock = threading.Lock()
        self._checkpoint_lock = _WriterLock(path)  # its own file description: flock excludes per description
        self._checkpoint_mutex = threading.Lock()
        self._checkpointer: sqlite3.Connection | None = None
        self._deferring = 0  # runs that checkpoint themselves (see defer_checkpoints)

    @classmethod
    def open(cls, path: Path) -> Self:
        archive: Self | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
            # No sqlite-utils plugins on the archive's connections: what else is installed must not
            # change how the archive behaves (and finding them scans every installed package, ~10 ms
            # in each process that opens the archive).
            archive = cls(Database(conn, execute_plugins=False), path)
            db = archive.db
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # Only a new database takes it (an existing one keeps its page size). An entry's HTML is a few
            # KB: on 4 KB pages nearly every row spilled into overflow pages, and a first run's writes
            # cost 10% more.
            db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            db.enable_wal()
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
            # In turn with other writers: two processes opening a new archive at once would otherwise
            # both find the schema missing, and the second fail creating it ("table feeds already exists").
            with archive._writer_lock:
                retry_locked(lambda: apply_migrations(db))
        except (sqlite3.Error, OSError) as error:
            if archive is not None:
                archive.close()
            # os.path.exists, not Path.exists: a folder this user may not enter must not raise here.
            writable = all(os.access(p, os.W_OK) for p in (path, path.parent) if os.path.exists(p))
            why = "" if writable else " (read-only: this user may not write the archive or its folder)"
            raise StorageError(f"{path}: cannot open archive database: {error}{why}") from None
        return archive

    @classmethod
    def open_for_reading(cls, path: Path) -> Self:
        """The archive for a command that only reads it (status, search, export...). Opened as a writer
        where that is allowed, and read-only where this user may not write it (a read-only mount, an
        archive another user's daemon owns): `open` needs to write even to read."""
        if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
            return cls.open(path)
        return cls.open_read_only(path)

    @classmethod
    def open_read_only(cls, path: Path) -> Self:
        """The archive on a connection that never writes: no schema upgrade, no write-ahead-log switch."""
        location = urllib.parse.quote(str(path.resolve()))
        conn = None
        try:
            try:
                conn = sqlite3.connect(f"file:{location}?mode=ro", uri=True, check_same_thread=False)
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError:
                # A write-ahead-log archive whose -shm file is missing and cannot be made here: read as
                # it stands, unless its log holds commits (a writer that died), which only a writer may
                # fold into the database: read without them, the archive would look older than it is.
                if conn is not None:
                    conn.close()
                    conn = None
                wal = path.with_name(path.name + "-wal")
                if os.path.exists(wal) and os.path.getsize(wal) > 0:
                    raise StorageError(
                        f"{path}: its write-ahead log ({wal.name}) holds changes that only a user who may write"
                        " the archive can read in: run any aggregator command as that user, then try again"
                    ) from None
                conn = sqlite3.connect(f"file:{location}?immutable=1", uri=True, check_same_thread=False)
            archive = cls(Database(conn, execute_plugins=False), path)
            register_index_functions(archive.db)
            pending = migrations.pending(archive.db)
        except sqlite3.Error as error:
            if conn is not None:
                conn.close()
            raise StorageError(f"{path}: cannot read the archive (opened read-only: {error})") from None
        if pending:
            archive.close()
            raise StorageError(
                f"{path}: the archive needs an upgrade this user cannot write (read-only); run any aggregator"
                " command that writes it (fetch-now) as a user who may"
            )
        return archive

    def close(self) -> None:
        with self._checkpoint_mutex:
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None
        self.db.close()
        self._writer_lock.close()
        self._checkpoint_lock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- write-ahead log ---------------------------------------------------------------------------

    def set_auto_checkpoint(self, pages: int) -> None:
        """SQLite copies the write-ahead log into the database when a commit leaves more than `pages`
        in it, inside that commit (fsync included); 0 leaves it to `checkpoint`."""
        self.db.execute(f"PRAGMA wal_autocheckpoint = {int(pages)}")

    @contextmanager
    def defer_checkpoints(self) -> Iterator[None]:
        """While a run checkpoints the log itself (`checkpoint`, in a thread), this connection's commits
        do not: one would copy the parser processes' pages too, inside a commit on the event loop.
        Nested and overlapping runs (the daemon's) count; the last one out restores SQLite's default."""
        self._deferring += 1
        if self._deferring == 1:
            self.set_auto_checkpoint(0)
        try:
            yield
        finally:
            self._deferring -= 1
            if self._deferring == 0:
                self.set_auto_checkpoint(DEFAULT_AUTO_CHECKPOINT)

    def checkpoint(self) -> None:
        """Copy what the write-ahead log holds into the database, on a connection of its own (it runs in
        a thread while this one writes). The bulk is copied beside the writers (PASSIVE never waits for
        them); the rest between two writers' turns, so the copy is complete and the next writer starts
        the log over. Without that second step the log never stopped growing while parser processes
        wrote (900 MB in a first run of 1,000 feeds), and reads slow down as it grows."""
        with self._checkpoint_mutex:
            try:
                if self._checkpointer is None:
                    self._checkpointer = sqlite3.connect(
                        str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
                    )
                self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
                with self._checkpoint_lock:
                    self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except (sqlite3.Error, OSError) as error:
                raise StorageError(f"{self.path}: cannot checkpoint the archive: {error}") from None

    @contextmanager
    def _write_transaction(self, *, wait: bool = True) -> Iterator[bool]:
        """One write transaction, taken in turn with the other writers of this archive.

        Parser processes and the main process write concurrently. SQLite's busy handler waits for the
        write lock by sleeping (1, 2, 5, 10... ms), and those naps left both cores a third idle in a
        first run; an flock on a file beside the database wakes the next writer the moment the lock is
        released, and the kernel releases it when a process dies, however it dies. BEGIN IMMEDIATE
        because a deferred transaction that read first cannot upgrade to a write after another
        writer's commit (SQLITE_BUSY at once); writers that do not take the flock (an older process)
        still meet SQLite's own lock and busy timeout. Yields False, having written nothing, when `wait`
        is False and another writer has its turn."""
        if not self._thread_lock.acquire(blocking=wait):
            yield False
            return
        try:
            if not self._writer_lock.acquire(wait=wait):
                yield False
                return
            try:
                conn = self.db.conn
                if not self._begin_immediate(wait=wait):
                    yield False
                    return
                try:
                    yield True
                    conn.execute("COMMIT")
                except BaseException:
                    # A failed COMMIT (disk full, I/O error) too: the connection must not stay inside a
                    # transaction, or every later write on it would fail.
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            finally:
                self._writer_lock.release()
        finally:
            self._thread_lock.release()

    def _begin_immediate(self, *, wait: bool) -> bool:
        """BEGIN IMMEDIATE against a writer that does not take our flock (another program): without
        `wait`, False at once; with it, retried with short naps rather than in SQLite's busy handler,
        which holds this connection (shared with the event loop) for as long as it waits."""
        conn = self.db.conn
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
            nap = 0.001
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return True
                except sqlite3.OperationalError as error:
                    if "locked" not in str(error) and "busy" not in str(error):
                        raise
                    if not wait:
                        return False
                    if time.monotonic() > deadline:
                        raise
                time.sleep(nap)
                nap = min(nap * 2, 0.05)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    def _in_write_turn(self, work: Callable[[], object]) -> None:
        """`work` in a write transaction of its own, taken in turn with the other writers."""

        def write() -> None:
            with self._write_transaction():
                work()

        retry_locked(write)

    def _rows_where_in(self, query: str, keys: list[str]) -> Iterator[Sequence[Any]]:
        """The rows of `query` (ending in the column to match, e.g. "... WHERE id") for `keys`, asked
        for in chunks that stay under SQLite's limit on bound parameters."""
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            yield from self.db.conn.execute(f"{query} IN ({','.join('?' * len(chunk))})", chunk).fetchall()


_NO_FLOCK_HERE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOLCK, errno.EINVAL, errno.EOPNOTSUPP}


class _WriterLock:
    """The flock on `aggregator.db.writer-lock` that the archive's writers take in turn (see
    Archive._write_transaction); the file is opened on first use. Where the lock cannot be had at all
    (a read-only archive, a file system without flock), writers go on without it: SQLite's own locking
    still keeps them apart, only less promptly."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + WRITER_LOCK_SUFFIX)
        self._fd: int | None = None
        self._usable = True
        self._held = False

    def acquire(self, *, wait: bool = True) -> bool:
        """Take the lock; False only when `wait` is False and another process holds it."""
        if not self._usable:
            return True
        try:
            if self._fd is None:
                # Read-only is enough for flock, and works on a lock file created by another user.
                self._fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as error:
            # Without the lock only this once (out of file descriptors...), or for good where it can
            # never work (a read-only archive, a file system without flock).
            if error.errno in _NO_FLOCK_HERE:
                self._usable = False
            return True
        self._held = True
        return True

    def release(self) -> None:
        if self._held and self._fd is not None:
            self._held = False
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


# Errors about the values being written, not the archive: another batch may well be stored. (Not
# ProgrammingError: a closed connection is one, and nothing else would be stored either.)
REFUSED_RECORD = (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError, OverflowError)


def retry_locked(operation: Callable[[], T], attempts: int = 5) -> T:
    """Run `operation`, retrying when another process holds the write lock past the busy timeout."""
    for attempt in range(attempts):
        try:
            return operation()
        except sqlite3.OperationalError as error:
            if ("locked" not in str(error) and "busy" not in str(error)) or attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")
