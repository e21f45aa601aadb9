"""The SQLite archive (sqlite-utils): feed state, entries, revisions and full-text search.

Writes are batched: one transaction for a batch of polls, executemany for every statement, so a
thousand feeds cost a handful of round trips rather than one per entry. Nothing is ever deleted: an
entry whose content changed has its previous version copied to `entry_revisions` first.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlite_utils import Database

from .dates import to_utc_text
from .errors import RecordRefusedError, StorageError
from .fulltext import index_text, split_cjk
from .migrations import INDEX_TEXT_SQL, SPLIT_CJK_SQL, apply_migrations, migrations, register_index_functions
from .models import Enclosure, Entry, FeedConfig, FeedState, FeedStatus, PollRecord, StoredEntry, StoreResult

T = TypeVar("T")
BUSY_TIMEOUT_MS = 30_000
DEFAULT_AUTO_CHECKPOINT = 1000  # pages: SQLite's own default
PAGE_SIZE = 16384
WRITER_LOCK_SUFFIX = ".writer-lock"  # aggregator.db.writer-lock: see Archive._write_transaction
_CHUNK = 500
_ENTRY_COLUMNS = (
    "id, feed_url, key, category, title, link, author, summary, content, published, published_utc, updated, "
    "date_flag, tags, enclosures, content_hash, revision, first_seen, last_seen, changed_at"
)
_ENTRY_WRITE_COLUMNS = _ENTRY_COLUMNS + ", raw_hash"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


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


def _now_text(value: datetime) -> str:
    return to_utc_text(value)


def _enclosures_json(enclosures: tuple[Enclosure, ...]) -> str:
    if not enclosures:
        return "[]"  # most entries: json.dumps costs microseconds even for nothing, and this runs per entry
    return json.dumps([{"url": e.url, "type": e.type, "length": e.length} for e in enclosures], ensure_ascii=False)


def _index_row(entry_id: str, entry: Entry) -> tuple[str, str, str]:
    return (entry_id, split_cjk(entry.title), entry.search_body or index_text(entry.summary, entry.content))


class Archive:
    """The archive database. Open with `Archive.open(path)`; use as a context manager to close it."""

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
    def open(cls, path: Path) -> Archive:
        archive: Archive | None = None
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
                _retry_locked(lambda: apply_migrations(db))
        except (sqlite3.Error, OSError) as error:
            if archive is not None:
                archive.close()
            # os.path.exists, not Path.exists: a folder this user may not enter must not raise here.
            writable = all(os.access(p, os.W_OK) for p in (path, path.parent) if os.path.exists(p))
            why = "" if writable else " (read-only: this user may not write the archive or its folder)"
            raise StorageError(f"{path}: cannot open archive database: {error}{why}") from None
        return archive

    @classmethod
    def open_for_reading(cls, path: Path) -> Archive:
        """The archive for a command that only reads it (status, search, export...). Opened as a writer
        where that is allowed, and read-only where this user may not write it (a read-only mount, an
        archive another user's daemon owns): `open` needs to write even to read."""
        if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
            return cls.open(path)
        return cls.open_read_only(path)

    @classmethod
    def open_read_only(cls, path: Path) -> Archive:
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

    def __enter__(self) -> Archive:
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

    # --- feed state ------------------------------------------------------------------------------

    def feed_states(self, feeds: Iterable[FeedConfig]) -> dict[str, FeedState]:
        """State for each configured feed; a feed never polled gets a fresh state."""
        wanted = {feed.url: feed for feed in feeds}
        states: dict[str, FeedState] = {}
        query = (
            "SELECT url, fetch_url, etag, last_modified, body_hash, consecutive_errors, gone, retry_after_until,"
            " ttl_seconds FROM feeds WHERE url"
        )
        for row in self._rows_where_in(query, list(wanted)):
            url, fetch_url, etag, last_modified, body_hash, errors, gone, retry_after, ttl_seconds = row
            states[url] = FeedState(
                url=url,
                fetch_url=fetch_url,
                etag=etag,
                last_modified=last_modified,
                body_hash=body_hash,
                consecutive_errors=errors,
                gone=bool(gone),
                retry_after_until=stored_time(retry_after),
                ttl_minutes=ttl_seconds // 60 if ttl_seconds is not None else None,
            )
        for url in wanted:
            states.setdefault(url, FeedState(url=url, fetch_url=url))
        return states

    # --- writing ---------------------------------------------------------------------------------

    def record(self, polls: Sequence[PollRecord]) -> list[StoreResult]:
        """Store a batch of polls in one transaction; results are in the same order as `polls`."""
        result = self._record(polls, wait=True)
        assert result is not None
        return result

    def record_if_free(self, polls: Sequence[PollRecord]) -> list[StoreResult] | None:
        """`record`, or None at once when another writer has its turn: for an event loop, which must
        not wait for a parser process's write (it would stop every fetch meanwhile)."""
        return self._record(polls, wait=False)

    def _record(self, polls: Sequence[PollRecord], *, wait: bool) -> list[StoreResult] | None:
        # The rows are built before taking a turn: writers wait for each other, so the turn holds
        # only the database's work.
        prepared = [_PreparedPoll.of(poll) for poll in polls]

        def write() -> list[StoreResult] | None:
            with self._write_transaction(wait=wait) as turn:
                if not turn:
                    return None
                stored = self._stored_feeds([poll.url for poll in polls])
                self._write_feeds(polls, stored)
                return [
                    self._write_entries(poll, repeated=poll.retried and _repeated(poll, stored.get(poll.url)))
                    for poll in prepared
                ]

        try:
            return _retry_locked(write)
        except _REFUSED_RECORD as error:
            raise RecordRefusedError(f"{self.path}: the archive refused this feed's data: {error}") from None
        except sqlite3.Error as error:
            raise StorageError(f"{self.path}: cannot write to archive: {error}") from None

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

    def _write_feeds(self, polls: Sequence[PollRecord], stored: dict[str, tuple[str, str | None, str | None]]) -> None:
        # A feed moved to another category in feeds.yaml takes its archived entries along, on its next
        # poll whatever the answer (a 304 too); the site then moves their posts. Only moved feeds pay
        # for the entries update: every feed's would cost a fifth of a run where all answer 304.
        moved = [
            (poll.category, poll.url) for poll in polls if poll.url in stored and stored[poll.url][0] != poll.category
        ]
        self._move_entries(moved)
        rows = []
        for poll in polls:
            fetched = _now_text(poll.fetched_at)
            ok = poll.status in ("ok", "not_modified", "unchanged")
            rows.append(
                {
                    "url": poll.url,
                    "category": poll.category,
                    "fetch_url": poll.fetch_url,
                    "title": poll.title,
                    "site_url": poll.site_url,
                    "format": poll.format,
                    "etag": poll.etag,
                    "last_modified": poll.last_modified,
                    "body_hash": poll.body_hash,
                    "ttl": poll.ttl * 60 if poll.ttl is not None else None,
                    "max_age": poll.max_age,
                    "fetched": fetched,
                    "ok_at": fetched if ok else None,
                    "status": poll.status,
                    "http_status": poll.http_status,
                    "error": poll.error,
                    "errors": poll.consecutive_errors,
                    "retry_after": _iso(poll.retry_after_until.astimezone(UTC)) if poll.retry_after_until else None,
                    "next_due": _iso(poll.next_due_at.astimezone(UTC)) if poll.next_due_at else None,
                    "gone": int(poll.gone),
                }
            )
        self.db.conn.executemany(
            """
            INSERT INTO feeds (url, category, fetch_url, title, site_url, format, etag, last_modified, body_hash,
                ttl_seconds, max_age_seconds, last_fetched_at, last_ok_at, last_status, last_http_status,
                last_error, consecutive_errors, retry_after_until, next_due_at, gone, created_at)
            VALUES (:url, :category, COALESCE(:fetch_url, :url), COALESCE(:title, ''), COALESCE(:site_url, ''),
                COALESCE(:format, ''), :etag, :last_modified, :body_hash, :ttl, :max_age, :fetched, :ok_at,
                :status, :http_status, :error, :errors, :retry_after, :next_due, :gone, :fetched)
            ON CONFLICT (url) DO UPDATE SET
                category = excluded.category,
                fetch_url = COALESCE(:fetch_url, feeds.fetch_url),
                title = COALESCE(:title, feeds.title),
                site_url = COALESCE(:site_url, feeds.site_url),
                format = COALESCE(:format, feeds.format),
                etag = CASE WHEN :status IN ('ok', 'unchanged', 'not_modified') THEN COALESCE(:etag, feeds.etag)
                            ELSE feeds.etag END,
                last_modified = CASE WHEN :status IN ('ok', 'unchanged', 'not_modified')
                            THEN COALESCE(:last_modified, feeds.last_modified) ELSE feeds.last_modified END,
                body_hash = COALESCE(:body_hash, feeds.body_hash),
                ttl_seconds = CASE WHEN :status = 'ok' THEN :ttl ELSE feeds.ttl_seconds END,
                max_age_seconds = CASE WHEN :status IN ('ok', 'unchanged', 'not_modified') THEN :max_age
                            ELSE feeds.max_age_seconds END,
                last_fetched_at = :fetched,
                last_ok_at = COALESCE(:ok_at, feeds.last_ok_at),
                last_status = :status,
                last_http_status = :http_status,
                -- The same document again (304, or an equal body): a warning about how it read still holds.
                last_error = CASE WHEN :status IN ('unchanged', 'not_modified') AND feeds.last_error LIKE 'warning: %'
                            THEN feeds.last_error ELSE :error END,
                consecutive_errors = :errors,
                retry_after_until = :retry_after,
                next_due_at = :next_due,
                gone = :gone
            """,
            rows,
        )

    def set_next_due(self, due: Mapping[str, datetime]) -> None:
        """Record when the daemon's scheduler will poll these feeds next (what `status` shows): later than
        a poll's own estimate when the adaptive interval or min_interval says so."""
        rows = [(_iso(when.astimezone(UTC)), url) for url, when in due.items()]
        try:
            self._in_write_turn(
                lambda: self.db.conn.executemany("UPDATE feeds SET next_due_at = ? WHERE url = ? AND gone = 0", rows)
            )
        except sqlite3.Error as error:
            raise StorageError(f"{self.path}: cannot record when feeds are due: {error}") from None

    def _in_write_turn(self, work: Callable[[], object]) -> None:
        """`work` in a write transaction of its own, taken in turn with the other writers."""

        def write() -> None:
            with self._write_transaction():
                work()

        _retry_locked(write)

    def _move_entries(self, moved: Sequence[tuple[str, str]]) -> None:
        """(category, feed url) pairs: each feed's archived entries go to its new category."""
        self.db.conn.executemany("UPDATE entries SET category = ? WHERE feed_url = ?", moved)

    def apply_categories(self, categories: Mapping[str, str]) -> None:
        """Move the entries of every archived feed whose category in feeds.yaml (`categories`, feed url ->
        category) is not the one it was stored under, and the feed with them: a publish right after the
        operator moved a feed shows the move without waiting for the feed's next poll."""

        def move() -> None:
            self._move_entries(moved)
            self.db.conn.executemany("UPDATE feeds SET category = ? WHERE url = ?", moved)

        try:
            stored = self._stored_feeds(list(categories))
            moved = [
                (category, url) for url, category in categories.items() if url in stored and stored[url][0] != category
            ]
            if moved:
                self._in_write_turn(move)
        except sqlite3.Error as error:
            raise StorageError(f"{self.path}: cannot move feeds to their new categories: {error}") from None

    def _stored_feeds(self, urls: list[str]) -> dict[str, tuple[str, str | None, str | None]]:
        """category, body_hash and last_fetched_at of the stored feeds among `urls`."""
        query = "SELECT url, category, body_hash, last_fetched_at FROM feeds WHERE url"
        return {
            url: (category, body_hash, fetched)
            for url, category, body_hash, fetched in self._rows_where_in(query, urls)
        }

    def _existing(self, ids: list[str]) -> dict[str, tuple[str, int, str, str]]:
        """content_hash, revision, first_seen and changed_at of the stored entries among `ids`."""
        query = "SELECT id, content_hash, revision, first_seen, changed_at FROM entries WHERE id"
        return {row[0]: (row[1], row[2], row[3], row[4]) for row in self._rows_where_in(query, ids)}

    def fingerprints(self, ids: list[str]) -> dict[str, str | None]:
        """The raw fingerprint (normalize.raw_fingerprint) stored with each of the entries among `ids`;
        None for an entry stored before fingerprints were kept."""
        try:
            return {row[0]: row[1] for row in self._rows_where_in("SELECT id, raw_hash FROM entries WHERE id", ids)}
        except sqlite3.Error as error:
            raise StorageError(f"{self.path}: cannot read the archive: {error}") from None

    def _rows_where_in(self, query: str, keys: list[str]) -> Iterator[Sequence[Any]]:
        """The rows of `query` (ending in the column to match, e.g. "... WHERE id") for `keys`, asked
        for in chunks that stay under SQLite's limit on bound parameters."""
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            yield from self.db.conn.execute(f"{query} IN ({','.join('?' * len(chunk))})", chunk).fetchall()

    def _write_entries(self, prepared: _PreparedPoll, *, repeated: bool) -> StoreResult:
        if not prepared.rows and not prepared.unchanged:
            return StoreResult()
        now = prepared.now
        existing = self._existing(list(prepared.rows))
        new_rows, changed_rows, seen_ids, fts_rows = [], [], [], []
        # When an earlier attempt of this same poll was stored (a parser process killed after its commit,
        # the job retried), what it added or changed is still this poll's news, for the summary and the
        # publisher.
        again_new: list[str] = []
        again_updated: list[str] = []
        for entry_id, row in prepared.rows.items():
            stored = existing.get(entry_id)
            if stored is None:
                new_rows.append(row)
                fts_rows.append(prepared.index_rows[entry_id])
            elif stored[0] != row["content_hash"]:
                row["revision"] = stored[1] + 1
                changed_rows.append(row)
                fts_rows.append(prepared.index_rows[entry_id])
            elif repeated and stored[2] == now:
                again_new.append(entry_id)
            elif repeated and stored[3] == now:
                again_updated.append(entry_id)
            else:
                # Also where the fingerprint differs (a change the normaliser removes): next time the
                # entry is recognised without being normalised.
                seen_ids.append((now, row["raw_hash"], entry_id))
        conn = self.db.conn
        if changed_rows:
            conn.executemany(
                """
                INSERT INTO entry_revisions (entry_id, revision, title, link, author, summary, content, published,
                    updated, tags, enclosures, content_hash, valid_from, superseded_at)
                SELECT id, revision, title, link, author, summary, content, published, updated, tags, enclosures,
                    content_hash, changed_at, :last_seen FROM entries WHERE id = :id
                """,
                changed_rows,
            )
            # The search index is contentless: the old version's row goes with the text it was indexed
            # with, recomputed from the HTML about to be replaced (see migrations.m_contentless_search).
            conn.executemany(
                f"""
                INSERT INTO entries_fts (entries_fts, rowid, title, body)
                SELECT 'delete', rowid, {SPLIT_CJK_SQL}(title), {INDEX_TEXT_SQL}(summary, content)
                FROM entries WHERE id = ?
                """,
                [(row["id"],) for row in changed_rows],
            )
            conn.executemany(
                """
                UPDATE entries SET title = :title, link = :link, author = :author, summary = :summary,
                    content = :content, published = :published, published_utc = :published_utc,
                    updated = :updated, date_flag = :date_flag, tags = :tags, enclosures = :enclosures,
                    content_hash = :content_hash, revision = :revision, last_seen = :last_seen,
                    changed_at = :changed_at, category = :category, raw_hash = :raw_hash
                WHERE id = :id
                """,
                changed_rows,
            )
        if new_rows:
            conn.executemany(
                f"INSERT INTO entries ({_ENTRY_WRITE_COLUMNS}) VALUES ("
                + ", ".join(":" + c.strip() for c in _ENTRY_WRITE_COLUMNS.split(","))
                + ")",
                new_rows,
            )
        if fts_rows:
            conn.executemany(
                "INSERT INTO entries_fts (rowid, title, body) VALUES ((SELECT rowid FROM entries WHERE id = ?), ?, ?)",
                fts_rows,
            )
        if seen_ids:
            conn.executemany(
                "UPDATE entries SET last_seen = ?, raw_hash = COALESCE(?, raw_hash) WHERE id = ?", seen_ids
            )
        if prepared.unchanged:
            # The fingerprints were read before this turn: another poll of the same feed (fetch-now beside
            # the daemon) may have stored another version since. The document is then parsed in full next
            # time, its body hash forgotten, rather than taken as already stored.
            moved_on = conn.executemany(
                "UPDATE entries SET last_seen = ? WHERE id = ? AND raw_hash = ?",
                [(now, entry_id, fingerprint) for entry_id, fingerprint in prepared.unchanged],
            )
            if moved_on.rowcount != len(prepared.unchanged):
                conn.execute("UPDATE feeds SET body_hash = NULL WHERE url = ?", (prepared.url,))
        new_ids = tuple(row["id"] for row in new_rows) + tuple(again_new)
        updated_ids = tuple(row["id"] for row in changed_rows) + tuple(again_updated)
        return StoreResult(new=len(new_ids), updated=len(updated_ids), new_ids=new_ids, updated_ids=updated_ids)

    # --- reading ---------------------------------------------------------------------------------

    def entries(
        self,
        *,
        category: str | None = None,
        feed_url: str | None = None,
        ids: Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        oldest_first: bool = False,
    ) -> Iterator[StoredEntry]:
        """Stored entries, newest first (by published date, then id for a stable order)."""
        where: list[str] = []
        params: list[Any] = []
        if category is not None:
            where.append("e.category = ?")
            params.append(category)
        if feed_url is not None:
            where.append("e.feed_url = ?")
            params.append(feed_url)
        if ids is not None:
            if not ids:
                return
            where.append(f"e.id IN ({','.join('?' * len(ids))})")
            params.extend(ids)
        order = "ASC" if oldest_first else "DESC"
        sql = (
            f"SELECT {', '.join('e.' + c.strip() for c in _ENTRY_COLUMNS.split(','))}, f.title, f.site_url "
            "FROM entries e JOIN feeds f ON f.url = e.feed_url"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY e.published_utc {order}, e.id {order}"
        )
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params.extend([limit, offset])
        for row in self.db.conn.execute(sql, params):
            yield _stored_entry(row)

    def count_entries(self, *, category: str | None = None, feed_url: str | None = None) -> int:
        if category is not None:
            return int(self.db.execute("SELECT count(*) FROM entries WHERE category = ?", [category]).fetchone()[0])
        if feed_url is not None:
            return int(self.db.execute("SELECT count(*) FROM entries WHERE feed_url = ?", [feed_url]).fetchone()[0])
        return int(self.db.execute("SELECT count(*) FROM entries").fetchone()[0])

    def publish_mark(self) -> tuple[int, int]:
        """The newest entry's rowid and the newest revision's id: how far a publish that starts now sees.
        Nothing is ever deleted, so both only grow."""
        row = self.db.execute(
            "SELECT (SELECT COALESCE(max(rowid), 0) FROM entries), (SELECT COALESCE(max(id), 0) FROM entry_revisions)"
        ).fetchone()
        return int(row[0]), int(row[1])

    def changed_since(self, mark: tuple[int, int]) -> dict[str, str]:
        """id -> category of every entry added or revised after `mark` (see publish_mark)."""
        rows = self.db.execute(
            """
            SELECT id, category FROM entries WHERE rowid > ?
            UNION SELECT e.id, e.category FROM entry_revisions r JOIN entries e ON e.id = r.entry_id WHERE r.id > ?
            """,
            mark,
        )
        return {entry_id: category for entry_id, category in rows}

    def count_revisions(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM entry_revisions").fetchone()[0])

    def feed_statuses(self) -> list[FeedStatus]:
        rows = self.db.execute(
            """
            SELECT f.url, f.category, f.fetch_url, f.title, f.last_fetched_at, f.last_status, f.last_http_status,
                   f.last_error, f.consecutive_errors, f.next_due_at, f.gone,
                   (SELECT count(*) FROM entries e WHERE e.feed_url = f.url)
            FROM feeds f ORDER BY f.category, f.url
            """
        ).fetchall()
        return [
            FeedStatus(
                url=r[0],
                category=r[1],
                fetch_url=r[2],
                title=r[3],
                last_fetched_at=r[4],
                last_status=r[5],
                last_http_status=r[6],
                last_error=r[7],
                consecutive_errors=r[8],
                next_due_at=r[9],
                gone=bool(r[10]),
                entries=r[11],
            )
            for r in rows
        ]


def _repeated(poll: _PreparedPoll, stored: tuple[str, str | None, str | None] | None) -> bool:
    """Whether the archive already holds this very poll: same document, fetched in the same second."""
    return stored is not None and poll.body_hash is not None and stored[1:] == (poll.body_hash, poll.now)


class _PreparedPoll:
    """A poll's entries as the rows `Archive._write_entries` writes, built before its write turn."""

    def __init__(
        self,
        url: str,
        retried: bool,
        body_hash: str | None,
        now: str,
        rows: dict[str, dict[str, Any]],
        index_rows: dict[str, tuple[str, str, str]],
        unchanged: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.url = url
        self.retried = retried
        self.body_hash = body_hash
        self.now = now
        self.rows = rows
        self.index_rows = index_rows
        self.unchanged = unchanged

    @classmethod
    def of(cls, poll: PollRecord) -> _PreparedPoll:
        now = _now_text(poll.fetched_at)
        rows: dict[str, dict[str, Any]] = {}
        index_rows: dict[str, tuple[str, str, str]] = {}
        for entry in poll.entries:
            if entry.id not in rows:
                rows[entry.id] = _entry_row(entry.id, poll, entry, now)
                index_rows[entry.id] = _index_row(entry.id, entry)
        unchanged = tuple(pair for pair in dict.fromkeys(poll.unchanged) if pair[0] not in rows)
        return cls(poll.url, poll.retried, poll.body_hash, now, rows, index_rows, unchanged)


def _entry_row(entry_id: str, poll: PollRecord, entry: Entry, now: str) -> dict[str, Any]:
    return {
        "id": entry_id,
        "feed_url": poll.url,
        "key": entry.key,
        "category": poll.category,
        "title": entry.title,
        "link": entry.link,
        "author": entry.author,
        "summary": entry.summary,
        "content": entry.content,
        "published": entry.published.isoformat(),
        "published_utc": to_utc_text(entry.published),
        "updated": _iso(entry.updated),
        "date_flag": entry.date_flag,
        "tags": json.dumps(list(entry.tags), ensure_ascii=False) if entry.tags else "[]",
        "enclosures": _enclosures_json(entry.enclosures),
        "content_hash": entry.content_hash,
        "revision": 1,
        "first_seen": now,
        "last_seen": now,
        "changed_at": now,
        "raw_hash": entry.raw_hash or None,
    }


def _stored_entry(row: Sequence[Any]) -> StoredEntry:
    (
        entry_id,
        feed_url,
        key,
        category,
        title,
        link,
        author,
        summary,
        content,
        published,
        _published_utc,
        updated,
        date_flag,
        tags,
        enclosures,
        content_hash,
        revision,
        first_seen,
        last_seen,
        changed_at,
        feed_title,
        feed_site_url,
    ) = row
    return StoredEntry(
        id=entry_id,
        feed_url=feed_url,
        category=category,
        key=key,
        link=link,
        title=title,
        author=author,
        summary=summary,
        content=content,
        published=datetime.fromisoformat(published),
        updated=datetime.fromisoformat(updated) if updated else None,
        date_flag=date_flag,
        tags=tuple(json.loads(tags)),
        enclosures=tuple(Enclosure(**e) for e in json.loads(enclosures)),
        content_hash=content_hash,
        revision=revision,
        first_seen=datetime.fromisoformat(first_seen),
        last_seen=datetime.fromisoformat(last_seen),
        changed_at=datetime.fromisoformat(changed_at),
        feed_title=feed_title or "",
        feed_site_url=feed_site_url or "",
    )


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
_REFUSED_RECORD = (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError, OverflowError)


def _retry_locked(operation: Callable[[], T], attempts: int = 5) -> T:
    """Run `operation`, retrying when another process holds the write lock past the busy timeout."""
    for attempt in range(attempts):
        try:
            return operation()
        except sqlite3.OperationalError as error:
            if ("locked" not in str(error) and "busy" not in str(error)) or attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")
