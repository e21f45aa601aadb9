"""Reading the archive: feed states, entries for publishing and the toolbox, status rows."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from aggregator.core.errors import StorageError
from aggregator.core.models import Enclosure, FeedConfig, FeedState, FeedStatus, StoredEntry
from aggregator.store.connection import ENTRY_COLUMNS, ArchiveConnection, stored_time


class ScheduleRow(NamedTuple):
    """What the daemon schedules a feed by, as its last recorded poll left it."""

    next_due_at: datetime | None
    last_fetched_at: datetime | None
    gone: bool
    consecutive_errors: int = 0


class ArchiveReads(ArchiveConnection):
    """What the archive answers: every read that publishing, `status` and the toolbox make."""

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

    def fingerprints(self, ids: list[str]) -> dict[str, str | None]:
        """The raw fingerprint (normalize.raw_fingerprint) stored with each of the entries among `ids`;
        None for an entry stored before fingerprints were kept."""
        try:
            return {row[0]: row[1] for row in self._rows_where_in("SELECT id, raw_hash FROM entries WHERE id", ids)}
        except sqlite3.Error as error:
            raise StorageError(f"{self.path}: cannot read the archive: {error}") from None

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
            f"SELECT {', '.join('e.' + c.strip() for c in ENTRY_COLUMNS.split(','))}, f.title, f.site_url "
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

    def schedule_rows(self, urls: list[str]) -> dict[str, ScheduleRow]:
        """url -> ScheduleRow for the feeds the archive knows: what the daemon schedules them by."""
        query = "SELECT url, next_due_at, last_fetched_at, gone, consecutive_errors FROM feeds WHERE url"
        return {
            url: ScheduleRow(stored_time(next_due), stored_time(fetched), bool(gone), errors or 0)
            for url, next_due, fetched, gone, errors in self._rows_where_in(query, urls)
        }

    def recent_published(self, url: str, limit: int = 20) -> list[datetime]:
        """When the feed's latest entries were published (entries whose date the source really gave; one
        whose zone was a guess is hours off at most, near enough for a posting rate)."""
        rows = self.db.execute(
            "SELECT published_utc FROM entries WHERE feed_url = ? AND date_flag IN ('', 'zone')"
            " ORDER BY published_utc DESC LIMIT ?",
            [url, limit],
        ).fetchall()
        return [t for t in (stored_time(row[0]) for row in rows) if t is not None]


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
