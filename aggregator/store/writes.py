"""Writing a batch of polls: feed state, new entries, revisions of changed ones, the search index.

Writes are batched: one transaction for a batch of polls, executemany for every statement, so a
thousand feeds cost a handful of round trips rather than one per entry. Nothing is ever deleted: an
entry whose content changed has its previous version copied to `entry_revisions` first.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aggregator.core.dates import to_utc_text
from aggregator.core.errors import RecordRefusedError, StorageError
from aggregator.core.fulltext import index_text, split_cjk
from aggregator.core.models import Enclosure, Entry, PollRecord, StoreResult
from aggregator.store.connection import ENTRY_COLUMNS, REFUSED_RECORD, ArchiveConnection, retry_locked, stored_time
from aggregator.store.migrations import INDEX_TEXT_SQL, SPLIT_CJK_SQL

_ENTRY_WRITE_COLUMNS = ENTRY_COLUMNS + ", raw_hash"
PROBE_SUFFIX = ".probe"  # aggregator.db.probe: written and removed by check_writable


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _now_text(value: datetime) -> str:
    return to_utc_text(value)


def _enclosures_json(enclosures: tuple[Enclosure, ...]) -> str:
    if not enclosures:
        return "[]"  # most entries: json.dumps costs microseconds even for nothing, and this runs per entry
    return json.dumps([{"url": e.url, "type": e.type, "length": e.length} for e in enclosures], ensure_ascii=False)


def _index_row(entry_id: str, entry: Entry) -> tuple[str, str, str]:
    return (entry_id, split_cjk(entry.title), entry.search_body or index_text(entry.summary, entry.content))


class ArchiveWrites(ArchiveConnection):
    """How a poll's outcome enters the archive, in one write turn per batch."""

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
            return retry_locked(write)
        except REFUSED_RECORD as error:
            raise RecordRefusedError(f"{self.path}: the archive refused this feed's data: {error}") from None
        except sqlite3.Error as error:
            raise StorageError(f"{self.path}: cannot write to archive: {error}") from None

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

    def set_next_due(self, due: Mapping[str, tuple[datetime, datetime | None]]) -> None:
        """Record when the daemon's scheduler will poll these feeds next (what `status` shows): later than
        a poll's own estimate when the adaptive interval or min_interval says so. Each time comes with the
        feed's last_fetched_at it was computed from: a feed polled since by another process (fetch-now)
        keeps the due time that poll stored."""

        def write() -> None:
            urls = list(due)
            query = "SELECT url, last_fetched_at FROM feeds WHERE url"
            fetched: dict[str, str | None] = {url: text for url, text in self._rows_where_in(query, urls)}
            rows = [
                (_iso(when.astimezone(UTC)), url)
                for url, (when, seen) in due.items()
                if url in fetched and stored_time(fetched[url]) == seen
            ]
            self.db.conn.executemany("UPDATE feeds SET next_due_at = ? WHERE url = ? AND gone = 0", rows)

        try:
            self._in_write_turn(write)
        except sqlite3.Error as error:
            raise StorageError(f"{self.path}: cannot record when feeds are due: {error}") from None

    def check_writable(self, room: int) -> None:
        """Raise StorageError unless the archive can take writes again: `room` bytes written beside it (and
        removed: a full disk may still report free blocks, and a read-only one cannot be asked), then a
        write transaction of its own (a database file that refuses writes, a lock that cannot be had)."""
        probe = self.path.with_name(self.path.name + PROBE_SUFFIX)
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                block, written = bytes(1 << 16), 0
                while written < room:
                    written += os.write(fd, block[: room - written])
                os.fsync(fd)
            finally:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(probe)
        except OSError as error:
            raise StorageError(f"{self.path.parent}: cannot write: {error.strerror or error}") from None
        try:
            self._in_write_turn(
                lambda: self.db.conn.execute(
                    "UPDATE feeds SET next_due_at = next_due_at WHERE rowid = (SELECT max(rowid) FROM feeds)"
                )
            )
        except sqlite3.Error as error:
            raise StorageError(f"{self.path}: cannot write to archive: {error}") from None

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
