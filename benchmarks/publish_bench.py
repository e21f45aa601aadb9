"""Benchmark republishing: regenerate every feed for 100 categories x 1,000 entries, then the incremental
case where one category gained an entry, then a publish where nothing changed.

    .venv/bin/python benchmarks/publish_bench.py
    .venv/bin/python benchmarks/publish_bench.py --categories 20 --entries 500 --feed-entries 50

The archive is a real SQLite file filled through `Archive.record` (the path fetch-now takes), with
entries of a realistic size (about 1.5 KB of HTML each). Prints wall time and files written per phase.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator.core.models import Category, Config, Entry, FeedConfig, PollRecord, Settings
from aggregator.parsing.normalize import content_fingerprint, entry_identity
from aggregator.publishing.feeds import publish_feeds
from aggregator.store.archive import Archive

PARAGRAPH = "<p>" + "Lorem ipsum dolor sit amet, 中国税务报 consectetur adipiscing elit. " * 6 + "</p>"
SHANGHAI = timezone(timedelta(hours=8))


def make_entry(feed_url: str, number: int, published: datetime) -> Entry:
    key = f"https://source.example/{feed_url.rsplit('/', 1)[-1]}/{number}"
    title = f"Entry {number}: 征管改革见成效 & more"
    summary = PARAGRAPH
    content = PARAGRAPH * 3
    return Entry(
        id=entry_identity(feed_url, key),
        key=key,
        link=key,
        title=title,
        author="Reporter",
        summary=summary,
        content=content,
        published=published,
        updated=None,
        date_flag="",
        tags=("tax", "news"),
        enclosures=(),
        content_hash=content_fingerprint(title, key, "Reporter", summary, content, ("tax", "news"), ()),
    )


def build(root: Path, categories: int, entries: int, feed_entries: int) -> Config:
    cats = {f"cat{n:03d}": Category(slug=f"cat{n:03d}", title=f"Category {n}") for n in range(categories)}
    feeds = tuple(FeedConfig(url=f"https://source.example/{slug}.xml", category=slug) for slug in cats)
    config = Config(
        path=root / "feeds.yaml",
        settings=Settings(archive_dir=root / "archive", feed_entries=feed_entries),
        categories=cats,
        feeds=feeds,
    )
    start = datetime(2024, 1, 1, tzinfo=SHANGHAI)
    fetched = datetime(2024, 6, 1, tzinfo=UTC)
    with Archive.open(config.settings.database_path) as archive:
        polls = [
            PollRecord(
                url=feed.url,
                category=feed.category,
                fetched_at=fetched,
                status="ok",
                consecutive_errors=0,
                title=f"Source of {feed.category}",
                site_url="https://source.example/",
                entries=tuple(make_entry(feed.url, n, start + timedelta(minutes=n)) for n in range(entries)),
            )
            for feed in feeds
        ]
        for offset in range(0, len(polls), 10):
            archive.record(polls[offset : offset + 10])
    return config


def timed(label: str, config: Config, categories: set[str] | None, force: bool = False) -> None:
    with Archive.open(config.settings.database_path) as archive:
        started = time.perf_counter()
        report = publish_feeds(config, archive, categories, force=force)
        seconds = time.perf_counter() - started
    print(f"{label:<48} {seconds:8.2f} s   {len(report.written):6d} written  {report.skipped:6d} skipped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--categories", type=int, default=100)
    parser.add_argument("--entries", type=int, default=1000, help="entries per category")
    parser.add_argument("--feed-entries", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="publish-bench-") as directory:
        root = Path(directory)
        started = time.perf_counter()
        config = build(root, args.categories, args.entries, args.feed_entries)
        total = args.categories * args.entries
        built = time.perf_counter() - started
        print(f"archive: {total:,} entries in {args.categories} categories, built in {built:.1f} s")
        timed("full regeneration (publish --rebuild, cold)", config, None, force=True)
        timed("full regeneration again (bytes unchanged)", config, None, force=True)
        timed("publish everything, nothing changed", config, None)
        slug = next(iter(config.categories))
        feed = config.feeds[0]
        with Archive.open(config.settings.database_path) as archive:
            archive.record(
                [
                    PollRecord(
                        url=feed.url,
                        category=slug,
                        fetched_at=datetime(2024, 6, 2, tzinfo=UTC),
                        status="ok",
                        consecutive_errors=0,
                        entries=(make_entry(feed.url, args.entries, datetime(2024, 6, 2, tzinfo=SHANGHAI)),),
                    )
                ]
            )
        timed(f"incremental: one new entry in {slug} (+ all)", config, {slug})


if __name__ == "__main__":
    main()
