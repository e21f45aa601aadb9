"""Several writers on one archive: parser processes store the feeds they parse, the main process stores
feed states, and two runs may overlap. Real SQLite files, real parser processes, a real HTTP server."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from pytest_httpserver import HTTPServer

from aggregator.core.models import Config, ParsedFeed, PollRecord, StoreResult
from aggregator.core.schedule import poll_delay
from aggregator.parse_workers import ParseJob, StorageFailure, StoreJob, run_parse_job, run_store_batch
from aggregator.pipeline import RunSummary, update_feeds
from aggregator.store.archive import Archive
from tests.conftest import run_update
from tests.feeds import item, rss


def serve_feeds(httpserver: HTTPServer, prefix: str, count: int, items: int = 5) -> list[dict[str, str]]:
    feeds = []
    for n in range(count):
        body = rss([item(i, guid=f"{prefix}-{n}-{i}") for i in range(items)], title=f"{prefix} {n}")
        path = f"/{prefix}/{n}.xml"
        httpserver.expect_request(path).respond_with_data(body, content_type="application/rss+xml")
        feeds.append({"url": httpserver.url_for(path), "category": prefix})
    return feeds


def test_entries_reach_the_database_file_while_the_archive_stays_open(
    httpserver: HTTPServer, make_config: Callable[..., Config], tmp_path: Path
) -> None:
    # Parser processes leave checkpoints to the run: by its end, what they stored is in the database
    # file itself, not only in the write-ahead log (a copy of the file alone holds every entry).
    config = make_config(serve_feeds(httpserver, "news", 12))
    database = config.settings.database_path
    with Archive.open(database) as archive:
        summary = asyncio.run(update_feeds(config, list(config.feeds), archive))
        assert summary.count("ok") == 12 and summary.new == 60
        shutil.copy(database, tmp_path / "copy.db")
        with sqlite3.connect(tmp_path / "copy.db") as copy:
            assert copy.execute("SELECT count(*) FROM entries").fetchone() == (60,)
            assert copy.execute("SELECT count(*) FROM entries_fts").fetchone() == (60,)
        # The run leaves SQLite's automatic checkpoints as they were for whoever uses this connection next.
        assert archive.db.execute("PRAGMA wal_autocheckpoint").fetchone() == (1000,)


def test_overlapping_runs_on_one_archive_both_store_everything(
    httpserver: HTTPServer, make_config: Callable[..., Config]
) -> None:
    # Two runs at once (a fetch-now beside a daemon), each with its own parser processes: four processes
    # write to one archive, and none gives up with "database is locked".
    config = make_config(serve_feeds(httpserver, "left", 15) + serve_feeds(httpserver, "right", 15))
    halves = [[f for f in config.feeds if f.category == side] for side in ("left", "right")]
    summaries: list[RunSummary] = []

    def run(feeds: list[object]) -> None:
        summaries.append(run_update(config, feeds))

    threads = [threading.Thread(target=run, args=(half,)) for half in halves]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [s.count("ok") for s in summaries] == [15, 15], [s.failed for s in summaries]
    assert all(not s.storage_error for s in summaries)
    with sqlite3.connect(config.settings.database_path) as db:
        assert db.execute("SELECT count(*) FROM entries").fetchone() == (150,)
        assert db.execute("SELECT count(*) FROM feeds WHERE last_status = 'ok'").fetchone() == (30,)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_storing_the_same_poll_again_reports_the_same_news(tmp_path: Path) -> None:
    # A parser process killed after its commit has its job retried: the second attempt finds the entries
    # stored, and must still report them as this poll's new (or updated) ones, or the publisher would
    # never hear of them. A later poll of the same entries reports nothing new.
    when = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
    _, parsed, poll = _three_items_polled(when)
    edited = replace(
        poll,
        fetched_at=when + timedelta(minutes=5),
        body_hash="v2",
        entries=(replace(parsed.entries[0], content="<p>edited</p>", content_hash="edited"), *parsed.entries[1:]),
    )
    with Archive.open(tmp_path / "archive.db") as archive:
        first, again = archive.record([poll])[0], archive.record([replace(poll, retried=True)])[0]
        assert first.new == again.new == 3 and again.new_ids == first.new_ids
        # Another poll (not a retry) of the same document in the same second: nothing new.
        other = archive.record([replace(poll, fetched_at=when + timedelta(microseconds=800_000))])[0]
        assert (other.new, other.updated) == (0, 0)
        first, again = archive.record([edited])[0], archive.record([replace(edited, retried=True)])[0]
        assert (first.new, first.updated) == (again.new, again.updated) == (0, 1)
        assert again.updated_ids == first.updated_ids
        later = archive.record([replace(edited, fetched_at=when + timedelta(minutes=10), body_hash="v3")])[0]
        assert (later.new, later.updated) == (0, 0)
        assert archive.count_revisions() == 1


def test_the_event_loop_writer_never_waits_for_another_program(tmp_path: Path) -> None:
    # Another program (no flock) holds SQLite's write lock: `record_if_free` answers at once instead of
    # sitting out the 30 s busy timeout on the event loop, and writes once the lock is free.
    database = tmp_path / "archive.db"
    now = datetime.now(UTC)
    poll = PollRecord(
        url="https://site.example/f.xml", category="news", fetched_at=now, status="error", consecutive_errors=1
    )
    poll = replace(poll, error="HTTP 500")
    with Archive.open(database) as archive:
        other = sqlite3.connect(database)
        other.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        assert archive.record_if_free([poll]) is None
        assert time.monotonic() - started < 1
        other.rollback()
        other.close()
        [stored] = archive.record_if_free([poll]) or []
        assert stored.new == 0
        assert archive.db.execute("SELECT last_error FROM feeds").fetchone() == ("HTTP 500",)


def test_a_writer_waiting_for_another_program_leaves_the_connection_usable(tmp_path: Path) -> None:
    # The daemon's runs share one connection: a writer thread waiting for another program's lock must
    # not hold it (SQLite's busy handler would), or every read on the event loop waits as long.
    database = tmp_path / "archive.db"
    now = datetime.now(UTC)
    poll = PollRecord(
        url="https://site.example/f.xml", category="news", fetched_at=now, status="ok", consecutive_errors=0
    )
    with Archive.open(database) as archive:
        other = sqlite3.connect(database)
        other.execute("BEGIN IMMEDIATE")
        writer = threading.Thread(target=archive.record, args=([poll],))
        writer.start()
        time.sleep(0.2)  # the writer is waiting for the lock by now
        started = time.monotonic()
        assert archive.db.execute("SELECT count(*) FROM feeds").fetchone() == (0,)
        assert time.monotonic() - started < 0.5
        other.rollback()
        other.close()
        writer.join(10)
        assert not writer.is_alive()
        assert archive.db.execute("SELECT count(*) FROM feeds").fetchone() == (1,)


def test_a_batch_stores_each_feed_and_keeps_each_feeds_problem_its_own(tmp_path: Path) -> None:
    # Feeds that waited for a busy pool are parsed together and stored in one transaction. A document
    # that does not parse, or a feed the archive refuses, is that feed's outcome alone.
    when = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
    database = tmp_path / "archive.db"

    def job(name: str, body: bytes) -> StoreJob:
        url = f"https://{name}.example/feed.xml"
        return StoreJob(
            parse=ParseJob(body, url, url, "application/rss+xml", None, None, when),
            archive=database,
            poll=PollRecord(url=url, category="news", fetched_at=when, status="ok", consecutive_errors=0),
            title_override=None,
            delay=partial(poll_delay, interval=3600, min_interval=60, max_interval=86400),
        )

    def feed(name: str) -> bytes:
        return rss([item(i, guid=f"{name}-{i}") for i in range(3)], title=name)

    jobs = [job("one", feed("one")), job("junk", b"\x00 not a feed"), job("two", feed("two"))]
    first, junk, second = run_store_batch(jobs)
    assert isinstance(first, StoreResult) and isinstance(second, StoreResult)
    assert (first.new, second.new) == (3, 3) and isinstance(junk, str)
    with Archive.open(database) as archive:
        archive.db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON entries WHEN new.feed_url LIKE 'https://refused.%' "
            "BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END"
        )
    refused, three = run_store_batch([job("refused", feed("refused")), job("three", feed("three"))])
    assert isinstance(refused, StorageFailure) and "refused by a test trigger" in refused.message
    assert isinstance(three, StoreResult) and three.new == 3
    with Archive.open(database) as archive:
        assert archive.count_entries() == 9
        assert {status.url.split("/")[2] for status in archive.feed_statuses()} == {
            "one.example",
            "two.example",
            "three.example",
        }


def test_an_entry_stored_otherwise_since_its_fingerprint_was_read_has_the_feed_parsed_in_full_next_time(
    tmp_path: Path,
) -> None:
    # Two polls of one feed at once (fetch-now beside the daemon): this poll read the fingerprints, then
    # the other stored an edited version before this poll's turn to write.
    when = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
    job, parsed, poll = _three_items_polled(when)
    with Archive.open(tmp_path / "archive.db") as archive:
        archive.record([poll])
        later = replace(job, fetched_at=when + timedelta(minutes=5))
        again = run_parse_job(later, archive.fingerprints)
        assert isinstance(again, ParsedFeed) and len(again.unchanged) == 3 and again.entries == ()
        skipped = replace(poll, fetched_at=later.fetched_at, body_hash="v2", entries=(), unchanged=again.unchanged)
        assert archive.record([skipped])[0] == StoreResult()
        assert _body_hashes(tmp_path) == [("v2",)]  # every fingerprint still held: taken as stored
        other = replace(parsed.entries[1], title="Edited elsewhere", content_hash="other", raw_hash="other")
        archive.record([replace(poll, fetched_at=later.fetched_at, body_hash="v3", entries=(other,))])
        assert archive.record([replace(skipped, body_hash="v4")])[0] == StoreResult()
        assert _body_hashes(tmp_path) == [(None,)]  # the next poll parses the document again, whatever its hash


def _body_hashes(folder: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(folder / "archive.db") as db:
        return db.execute("SELECT body_hash FROM feeds").fetchall()


def _three_items_polled(when: datetime) -> tuple[ParseJob, ParsedFeed, PollRecord]:
    """A feed of three items, parsed, and its poll as the store takes it (first body hash "v1")."""
    url = "https://site.example/feed.xml"
    job = ParseJob(rss([item(i) for i in range(3)]), url, url, "application/rss+xml", None, None, when)
    parsed = run_parse_job(job)
    assert isinstance(parsed, ParsedFeed)
    poll = PollRecord(
        url=url,
        category="news",
        fetched_at=when,
        status="ok",
        consecutive_errors=0,
        body_hash="v1",
        entries=parsed.entries,
    )
    return job, parsed, poll
