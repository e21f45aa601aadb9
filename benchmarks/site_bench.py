"""Time the static archive: a full build and a rebuild for N entries, then one new entry (incremental).

    .venv/bin/python benchmarks/site_bench.py [--entries 100000] [--categories 10]

Entries go through the real Archive into a real SQLite file in a temporary folder; the site is written
to that folder's archive/site and archive/public.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aggregator.configuration.load import load_config
from aggregator.core.models import Entry, PollRecord
from aggregator.parsing.normalize import entry_identity
from aggregator.publishing.site import write_site
from aggregator.store.archive import Archive

BODY = "<p>" + "税收征管改革 news text " * 40 + "</p>"


def entry(feed_url: str, n: int, published: datetime) -> Entry:
    title = f"第{n}条 新闻 headline number {n}"
    return Entry(
        id=entry_identity(feed_url, str(n)),
        key=str(n),
        link=f"https://source.example.com/{n}",
        title=title,
        author="",
        summary="",
        content=BODY,
        published=published,
        updated=None,
        date_flag="",
        tags=(),
        enclosures=(),
        content_hash=hashlib.sha256(title.encode()).hexdigest(),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--categories", type=int, default=10)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="site-bench-"))
    categories = [f"c{i}" for i in range(args.categories)]
    feeds = "\n".join(f"  - url: https://source.example.com/{c}.xml\n    category: {c}" for c in categories)
    (root / "feeds.yaml").write_text(
        "settings:\n  archive_dir: archive\n  base_url: https://archive.example.org/\ncategories:\n"
        + "".join(f"  {c}:\n    title: 分类 {c}\n" for c in categories)
        + "feeds:\n"
        + feeds
        + "\n",
        encoding="utf-8",
    )
    config = load_config(root / "feeds.yaml")
    start = datetime(2020, 1, 1, tzinfo=UTC)
    started = time.perf_counter()
    with Archive.open(config.settings.database_path) as archive:
        per_category = args.entries // len(categories)
        for c in categories:
            url = f"https://source.example.com/{c}.xml"
            entries = tuple(entry(url, n, start + timedelta(minutes=37 * n)) for n in range(per_category))
            archive.record(
                [PollRecord(url=url, category=c, fetched_at=start, status="ok", consecutive_errors=0, entries=entries)]
            )
        print(f"stored {archive.count_entries():,} entries in {time.perf_counter() - started:.1f}s ({root})")

        started = time.perf_counter()
        report = write_site(config, archive)
        print(f"first build:   {time.perf_counter() - started:7.2f}s  ({report.written:,} files written)")
        started = time.perf_counter()
        report = write_site(config, archive, rebuild=True)
        print(f"rebuild:       {time.perf_counter() - started:7.2f}s  ({report.written:,} files written, unchanged)")

        url = f"https://source.example.com/{categories[0]}.xml"
        new = entry(url, 10**9, start + timedelta(days=10_000))
        stored = archive.record(
            [
                PollRecord(
                    url=url, category=categories[0], fetched_at=start, status="ok", consecutive_errors=0, entries=(new,)
                )
            ]
        )[0]
        started = time.perf_counter()
        report = write_site(config, archive, entry_ids=set(stored.new_ids))
        print(f"one new entry: {time.perf_counter() - started:7.2f}s  ({report.written} files written)")


if __name__ == "__main__":
    main()
